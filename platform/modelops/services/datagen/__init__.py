"""Seeded, realistic event and label tables for the example projects.

``generate("credit_risk", out_dir)`` writes ``credit_company_monthly.parquet`` and
``credit_applications.parquet``; ``generate("fraud", out_dir)`` writes
``fraud_account_activity.parquet`` and ``fraud_transactions.parquet``. The same seed and arguments
give byte-identical files. Memory stays bounded whatever ``rows`` is: entities are simulated in
chunks and streamed to parquet.

Scenarios inject drift from ``drift_start`` (00:00 UTC; default: the first day of the last third
of the window, see :func:`drift_start_for`). Events before it are exactly those of the healthy
scenario with the same seed:

* ``healthy``: no drift.
* ``covariate-drift``: inputs shift (credit: a downturn; fraud: higher amounts, more online
  retail, later hours); the way labels follow from inputs does not change.
* ``concept-drift``: inputs stay put; the way labels follow from them changes (credit: sector
  risks reorder, days below zero and overdraft depth stop mattering, revenue trend counts double;
  fraud: fraudsters mimic normal payments and show mainly as many distinct merchants in 24 h).

The module docstrings of :mod:`.credit_risk` and :mod:`.fraud` describe how each table comes about.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import ModuleType

from modelops.services.datagen._common import (
    PROJECTS,
    SCENARIOS,
    GeneratedTable,
    GenerationSummary,
    Window,
    default_drift_start,
    validate,
)

__all__ = [
    "PROJECTS",
    "SCENARIOS",
    "GeneratedTable",
    "GenerationSummary",
    "default_rows",
    "default_window",
    "drift_start_for",
    "generate",
]


def _module(project: str) -> ModuleType:
    if project == "credit_risk":
        from modelops.services.datagen import credit_risk

        return credit_risk
    if project == "fraud":
        from modelops.services.datagen import fraud

        return fraud
    raise ValueError(f"--project {project}: unknown project (available: {', '.join(PROJECTS)})")


def default_window(project: str) -> tuple[date, date]:
    """First and last day of events when none are given."""
    return _module(project).DEFAULT_WINDOW


def default_rows(project: str) -> int:
    """Rows of the label table (applications / transactions) when none is given."""
    return _module(project).DEFAULT_ROWS


def drift_start_for(start: date, end: date) -> date:
    """Default ``drift_start``: the first day of the last third of ``[start, end]``."""
    return default_drift_start(start, end)


def generate(
    project: str,
    out_dir: Path,
    *,
    start: date | None = None,
    end: date | None = None,
    rows: int | None = None,
    scenario: str = "healthy",
    seed: int = 42,
    drift_start: date | None = None,
) -> GenerationSummary:
    """Write ``project``'s source and label tables into ``out_dir`` (created if missing).

    Args:
        project: ``credit_risk`` or ``fraud``.
        out_dir: Folder for the parquet files; existing files of the same name are replaced
            atomically, and only once every table of the project is complete.
        start: First day of events (UTC); default :func:`default_window`.
        end: Last day of events, inclusive; default :func:`default_window`.
        rows: Rows of the label table; default :func:`default_rows`, at least 100.
        scenario: One of :data:`SCENARIOS`.
        seed: Same seed and arguments, byte-identical files.
        drift_start: Day the drift begins; ignored for ``healthy``; default
            :func:`drift_start_for`. Returned in the summary.

    Raises:
        ValueError: An argument is out of range; the message names it and its value.
    """
    module = _module(project)
    default_start, default_end = module.DEFAULT_WINDOW
    start = default_start if start is None else start
    end = default_end if end is None else end
    rows = module.DEFAULT_ROWS if rows is None else rows
    validate(project, scenario, rows, start, end, seed, drift_start)
    if scenario == "healthy":
        drift_start = None
    elif drift_start is None:
        drift_start = default_drift_start(start, end)
    window = Window(start, end, drift_start)
    tables, positive_rate = module.generate(Path(out_dir), window, rows, scenario, seed)
    return GenerationSummary(project, scenario, seed, tables, positive_rate, drift_start)
