"""``modelops data generate``: seeded, realistic event data for the example projects."""

from __future__ import annotations

from datetime import date

from modelops.config.settings import Settings
from modelops.core.errors import DataError
from modelops.services import datagen


def generate(
    settings: Settings,
    projects: list[str],
    *,
    start: date | None = None,
    end: date | None = None,
    rows: int | None = None,
    scenario: str = "healthy",
    seed: int = 42,
    drift_start: date | None = None,
) -> list[datagen.GenerationSummary]:
    """Write each project's source and label tables into the feature repo's ``data/``."""
    unknown = [p for p in projects if p not in datagen.PROJECTS]
    if unknown:
        raise DataError(
            f"--project {unknown[0]}: no data generator (available: {', '.join(datagen.PROJECTS)})"
        )
    summaries = []
    for project in projects:
        try:
            summaries.append(
                datagen.generate(
                    project,
                    settings.data_dir,
                    start=start,
                    end=end,
                    rows=rows,
                    scenario=scenario,
                    seed=seed,
                    drift_start=drift_start,
                )
            )
        except ValueError as exc:
            raise DataError(str(exc)) from exc
    return summaries
