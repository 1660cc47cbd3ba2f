"""The feature repo's source tables a simulation continues: where the period starts, the
entities renumbered clear of existing ones, rows appended atomically, the online store loaded."""

from __future__ import annotations

import logging
import math
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.integrations.parquet import write_table
from modelops.services.simulate.errors import SimulationError
from modelops.services.simulate.period import KEEP_DAYS, GeneratedPeriod, day_start

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


def table_path(settings: Settings, name: str) -> Path:
    return settings.data_dir / f"{name}.parquet"


def existing(settings: Settings, project: Project, name: str) -> Path:
    """The source table ``name``; a simulation never starts one of its own."""
    path = table_path(settings, name)
    if not path.is_file():
        raise SimulationError(
            f"{path}: not found; a simulation continues the data the model was trained on: run "
            f"'modelops data generate --project {project.spec.name}' first"
        )
    return path


def _latest_label(settings: Settings, project: Project) -> tuple[Path, datetime | None]:
    """The label table and the time of its last event (None when it holds none)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    label = project.spec.label
    path = existing(settings, project, label.table)
    times = pq.read_table(path, columns=[label.timestamp])[label.timestamp]
    latest = pc.max(times).as_py() if len(times) else None
    return path, latest if isinstance(latest, datetime) else None


def default_start(settings: Settings, project: Project) -> date:
    """The day after the later of the holdout window's end and the label table's last event."""
    start = project.spec.windows.holdout.end + timedelta(days=1)
    _, latest = _latest_label(settings, project)
    if latest is not None:
        start = max(start, latest.date() + timedelta(days=1))
    return start


def check_overlap(settings: Settings, project: Project, start: date) -> None:
    """Refuse a period that starts before the label table's last event."""
    path, latest = _latest_label(settings, project)
    if latest is not None and latest >= day_start(start):
        raise SimulationError(
            f"--start {start}: {path.name} already holds events up to {latest:%Y-%m-%d %H:%M} "
            f"(the example data or an earlier simulation); start on "
            f"{latest.date() + timedelta(days=1)} or later, so the log and the labels stay one "
            "timeline"
        )


def entity_offset(
    settings: Settings, project: Project, period: GeneratedPeriod
) -> int | str | None:
    """What renumbers the period's entities above every entity the tables hold: an integer to
    add, or a string prefix; None when nothing collides."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    entity = project.spec.entity
    if entity not in period.events.column_names or len(period.events) == 0:
        return None
    kind = period.events.schema.field(entity).type
    if not pa.types.is_integer(kind):
        return f"sim{period.start:%Y%m%d}s{period.seed}-"
    generated: list[int] = []
    present: list[int] = []
    for name, table in [(period.label_table, period.events), *period.features.items()]:
        if entity not in table.column_names:
            continue
        if len(table):
            generated.append(int(pc.min(table[entity]).as_py()))
        path = table_path(settings, name)
        if path.is_file() and entity in pq.read_schema(path).names:
            column = pq.read_table(path, columns=[entity])[entity]
            if len(column):
                present.append(int(pc.max(column).as_py()))
    if not generated or not present or min(generated) > max(present):
        return None
    return max(present) + 1 - min(generated)


def shift(table: pa.Table, entity: str, offset: int | str | None) -> pa.Table:
    """``table`` with its ``entity`` column renumbered by ``offset`` (see :func:`entity_offset`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if offset is None or entity not in table.column_names:
        return table
    index = table.column_names.index(entity)
    column = table[entity]
    if isinstance(offset, str):
        shifted = pc.binary_join_element_wise(
            pa.scalar(offset), pc.cast(column, pa.string()), pa.scalar("")
        )
    else:
        shifted = pc.add(column, pa.scalar(offset, column.type))
    return table.set_column(index, table.schema.field(entity).with_type(shifted.type), shifted)


def append(path: Path, rows: pa.Table) -> None:
    """Append ``rows`` to the parquet file at ``path`` (its schema kept), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    current = pq.read_table(path)
    missing = [n for n in current.schema.names if n not in rows.column_names]
    if missing:
        raise SimulationError(f"{path}: simulated rows lack column(s) {', '.join(missing)}")
    try:
        added = rows.select(current.schema.names).cast(current.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SimulationError(f"{path}: simulated rows do not fit its schema: {exc}") from exc
    combined = pa.concat_tables([current, added])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_table(combined, tmp)  # timestamps as microseconds, UTC (Spark reads them)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def append_features(
    settings: Settings, project: Project, period: GeneratedPeriod, offset: int | str | None
) -> list[Path]:
    """Append the period's feature rows (renumbered) to their source tables; returns them."""
    paths: list[Path] = []
    for name, table in period.features.items():
        path = existing(settings, project, name)
        append(path, shift(table, project.spec.entity, offset))
        paths.append(path)
    return paths


def keep_days(settings: Settings, project: Project) -> int:
    """The longest TTL of the feature service's views, in whole days (else :data:`KEEP_DAYS`)."""
    from modelops.integrations import feast as feast_io
    from modelops.services.context import feature_repo

    try:
        store = feast_io.open_store(feature_repo(settings))
        service = feast_io.feature_service(store, project.spec.feature_service)
        longest = timedelta(0)
        for projection in service.feature_view_projections:
            try:
                ttl = store.get_feature_view(projection.name).ttl
            except Exception:  # an on-demand view: no TTL of its own
                continue
            if ttl:
                longest = max(longest, ttl)
    except Exception as exc:
        log.info("feature TTLs unreadable (%s); keeping %d days of feature rows", exc, KEEP_DAYS)
        return KEEP_DAYS
    return max(1, math.ceil(longest.total_seconds() / 86_400)) if longest else KEEP_DAYS


def request_fields(project: Project, events: pa.Table, store: Any, service: Any) -> list[str]:
    """The request-time fields the feature service needs, all of which the events must carry."""
    from modelops.integrations import feast as feast_io

    fields = feast_io.service_request_fields(store, service)
    missing = [f for f in fields if f not in events.column_names]
    if missing:
        raise SimulationError(
            f"{project.spec_file}: field 'label.request_columns' lacks {missing}, needed by "
            f"feature service '{project.spec.feature_service}'"
        )
    return fields


def materialize(settings: Settings, end: datetime) -> None:
    """Load the feature rows up to ``end`` into the online store (as ``features materialize``)."""
    from modelops.services import features as features_service

    features_service.materialize(settings, end)
