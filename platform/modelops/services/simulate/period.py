"""The period a simulation covers: the project's own generator run over its history and the
period, cut down to the period's events and the feature rows of their entities."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.core import synthetic
from modelops.services.simulate.errors import SimulationError

if TYPE_CHECKING:
    import pyarrow as pa

    from modelops.core.plugins import DataModule

EVENT_TIME = "event_timestamp"
"""The time column of every table a generator writes (``integrations.parquet.TableWriter``)."""
KEEP_DAYS = 92
"""Feature rows kept before the period when the feature views' TTLs cannot be read."""
MAX_DAYS = 366


@dataclass(frozen=True)
class GeneratedPeriod:
    """A scenario's events of one period and the feature rows they need (Arrow tables)."""

    scenario: str
    seed: int
    start: date
    end: date
    drift_start: date | None
    rate: float
    label_table: str
    events: pa.Table
    features: dict[str, pa.Table]
    positive_rate: float


def day_start(day: date) -> datetime:
    """Midnight UTC of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def load_module(project: Project) -> DataModule:
    """The project's example-data generator (``data.py``)."""
    from modelops.services.data import load_data_module

    module = load_data_module(project)
    if module is None:
        raise SimulationError(
            f"{project.directory / 'data.py'}: none; simulation replays a project's example-"
            "data generator (docs/adding-a-project.md)"
        )
    return module


def _history_days(module: DataModule) -> int:
    first, last = module.DEFAULT_WINDOW
    return (last - first).days + 1


def default_rate(module: DataModule) -> float:
    """Events a day of the example data: the generator's default rows over its default window."""
    return module.DEFAULT_ROWS / _history_days(module)


def _checked_rate(module: DataModule, scenario: str, days: int, rate: float | None) -> float:
    if scenario not in synthetic.SCENARIOS:
        raise SimulationError(
            f"--scenario {scenario}: unknown traffic scenario (available: "
            f"{', '.join(synthetic.SCENARIOS)})"
        )
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise SimulationError(f"--days {days}: must be a whole number from 1 to {MAX_DAYS}")
    per_day = default_rate(module) if rate is None else float(rate)
    if not math.isfinite(per_day) or per_day <= 0:
        raise SimulationError(f"--rate {rate}: must be a positive number of events a day")
    return per_day


def _generate_tables(
    module: DataModule,
    project: Project,
    scenario: str,
    first: date,
    end: date,
    rows: int,
    seed: int,
    drift_start: date | None,
) -> tuple[dict[str, pa.Table], float]:
    """Every table the generator writes for ``[first, end]``, read back from a temporary
    folder, and the positive rate it reports."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="modelops-simulate-") as folder:
        summary = synthetic.generate(
            module,
            project.spec.name,
            Path(folder),
            start=first,
            end=end,
            rows=rows,
            scenario=scenario,
            seed=seed,
            drift_start=drift_start,
        )
        tables = {t.name: pq.read_table(t.path) for t in summary.tables}
    return tables, summary.positive_rate


def _between(column: Any, lo: datetime, hi: datetime) -> Any:
    """``lo <= column < hi``, as an Arrow boolean mask."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.and_(
        pc.greater_equal(column, pa.scalar(lo, column.type)),
        pc.less(column, pa.scalar(hi, column.type)),
    )


def _period_features(
    tables: dict[str, pa.Table], entity: str, entities: Any, since: datetime, hi: datetime
) -> dict[str, pa.Table]:
    """The feature rows of ``entities`` from ``since`` to the period's end, per table."""
    import pyarrow.compute as pc

    features: dict[str, pa.Table] = {}
    for name, table in tables.items():
        if EVENT_TIME not in table.column_names:
            continue
        keep = _between(table[EVENT_TIME], since, hi)
        if entities is not None and entity in table.column_names:
            keep = pc.and_(keep, pc.is_in(table[entity], value_set=entities))
        features[name] = table.filter(keep)
    return features


def generate_period(
    module: DataModule,
    project: Project,
    scenario: str,
    start: date,
    days: int,
    *,
    rate: float | None = None,
    seed: int = 42,
    keep_days: int = KEEP_DAYS,
) -> GeneratedPeriod:
    """The events of ``[start, start + days)`` under ``scenario`` and their entities' feature
    rows (see the package docstring); writes only into a temporary folder.

    Raises:
        SimulationError: the scenario, days or rate is out of range; the generator writes no
            label table named as project.yaml's ``label.table``.
    """
    import pyarrow.compute as pc

    per_day = _checked_rate(module, scenario, days, rate)
    spec = project.spec
    end = start + timedelta(days=days - 1)
    first = start - timedelta(days=_history_days(module))
    rows = max(synthetic.MIN_ROWS, math.ceil(per_day * ((end - first).days + 1)))
    drift_start = None if scenario == "healthy" else start
    tables, positive_rate = _generate_tables(
        module, project, scenario, first, end, rows, seed, drift_start
    )
    label_name = spec.label.table
    if label_name not in tables:
        raise SimulationError(
            f"{project.spec_file}: field 'label.table' = '{label_name}': the generator writes "
            f"no such table (it writes {', '.join(sorted(tables))})"
        )
    lo, hi = day_start(start), day_start(end + timedelta(days=1))
    labels = tables.pop(label_name)
    events = labels.filter(_between(labels[spec.label.timestamp], lo, hi))
    events = events.sort_by([(spec.label.timestamp, "ascending"), (spec.entity, "ascending")])
    entities = pc.unique(events[spec.entity]) if spec.entity in events.column_names else None
    since = lo - timedelta(days=keep_days)
    return GeneratedPeriod(
        scenario=scenario,
        seed=seed,
        start=start,
        end=end,
        drift_start=drift_start,
        rate=per_day,
        label_table=label_name,
        events=events,
        features=_period_features(tables, spec.entity, entities, since, hi),
        positive_rate=positive_rate,
    )


def plain(values: Sequence[Any]) -> list[Any]:
    """JSON-ready Python values: numpy scalars unwrapped, NaN/NA/NaT as None."""
    out: list[Any] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        item = value.item() if hasattr(value, "item") and not isinstance(value, str) else value
        missing = isinstance(item, float) and not math.isfinite(item)
        if missing or type(item).__name__ in ("NAType", "NaTType"):
            out.append(None)
        else:
            out.append(item)
    return out
