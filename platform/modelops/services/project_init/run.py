"""The whole step: :func:`init_project` reads the table, decides each column's role, the rows
and the windows, then renders and writes the project. Each step lives in its own module."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.settings import Settings
from modelops.services.project_init.columns import Roles, read_columns, resolve_roles
from modelops.services.project_init.entities import (
    Entity,
    check_names,
    check_unique,
    choose_entity,
    entity_ids,
    existing_definitions,
)
from modelops.services.project_init.features import (
    Feature,
    Rows,
    describe_features,
    keep_rows,
    missing_tolerance,
    rows_to_keep,
    select_features,
)
from modelops.services.project_init.labels import positives, read_label, sorted_values
from modelops.services.project_init.layout import Layout, check_free, layout_for
from modelops.services.project_init.options import (
    InitOptions,
    check_options,
    command_line,
    shown,
)
from modelops.services.project_init.render import Plan, render_all
from modelops.services.project_init.timestamps import US_PER_DAY, day, epoch_us, read_times
from modelops.services.project_init.windows import WindowProposal, propose_windows
from modelops.services.project_init.write import output_tables, write

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class InitResult:
    """What init wrote and decided, for the CLI to render."""

    project: str
    source: Path
    rows_read: int
    rows_written: int
    entity: str
    entity_object: str
    entity_reused_from: str | None
    label: str
    positive: Any
    label_delay: str
    features: list[Feature]
    auto_categorical: list[str]
    windows: list[WindowProposal]
    gap_days: int
    written: list[Path]
    replaced: list[Path]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_in_windows(self) -> int:
        return sum(w.rows for w in self.windows)

    @property
    def rows_in_gaps(self) -> int:
        """Rows written but in no window: in the gaps left for the label delay between them."""
        return self.rows_written - self.rows_in_windows

    @property
    def prevalence(self) -> float:
        rows = sum(w.rows for w in self.windows)
        return sum(w.positives for w in self.windows) / rows if rows else 0.0


def init_project(settings: Settings, options: InitOptions) -> InitResult:
    """Onboard a table as project ``options.name``; see the package docstring for what is
    written.

    Raises:
        ConfigError: a bad name or option, an existing project or file without ``force``, a
            Feast name already taken.
        DataError: a column missing, a label that is not binary, timestamps or entities that
            cannot be read, or data too short for three windows.
    """
    import pyarrow.compute as pc

    check_options(options)
    layout = layout_for(settings, options.name)
    replaced = check_free(layout, settings, options.force)
    source = options.source
    notes: list[str] = []
    warnings: list[str] = []
    table, columns = read_columns(options, notes)
    roles = resolve_roles(table, columns, options)
    label = read_label(table, roles.label, options.positive, source)
    times = read_times(table, roles, options, source, notes)
    ids, value_type = entity_ids(table, roles.entity, source)
    selected = select_features(table, roles, columns.names, source, notes)
    mask = rows_to_keep(pc.is_valid(label.values), selected, label.unlabelled, source, notes)
    rows = keep_rows(mask, ids, value_type, label.values, selected, times.event_us, times.known_us)
    if roles.entity is not None:
        check_unique(rows.entity, rows.event_us, roles.entity, source)
    features = describe_features(rows.features, selected.categorical, warnings)
    missing = missing_tolerance(features, notes)
    windows, gap = propose_windows(
        rows.event_us, rows.known_us, positives(rows.label, label.positive), source
    )
    _warn_unknown_labels(rows.known_us, warnings)
    entity = _entity(settings, layout, roles.join_key, rows.value_type, source, notes)
    if options.costs is None:
        warnings.append(
            "no costs given: placeholder 1:1 costs carry a model to dev and staging, not to "
            "production; set 'costs' (false_negative, false_positive) in "
            f"{shown(layout.project_file, settings.root)}, or pass --costs FN,FP"
        )
    features_table, labels_table = output_tables(roles.join_key, roles.label, rows)
    first_us, last_us = int(rows.event_us.min()), int(rows.event_us.max())
    plan = Plan(
        layout=layout,
        source_name=source.name,
        entity=entity,
        synthetic_ids=roles.entity is None,
        synthetic_time=options.synthesize_time,
        label=roles.label,
        positive=label.positive,
        label_values=sorted_values(pc.unique(rows.label).to_pylist()),
        delay_text=times.delay_text,
        features=features,
        auto_categorical=selected.auto,
        windows=windows,
        gap_days=gap,
        ttl_days=max(1, (last_us - first_us) // US_PER_DAY + 2),
        missing=missing,
        costs=options.costs,
        monotone=roles.monotone,
        first_day=day(first_us),
        last_day=day(last_us),
        command=command_line(options, settings.root),
        feature_types={f.name: str(f.type) for f in features_table.schema},
        label_types={f.name: str(f.type) for f in labels_table.schema},
    )
    written = write(layout, features_table, labels_table, render_all(plan))
    return _result(options, roles, rows, plan, written, replaced, notes, warnings)


def _warn_unknown_labels(known_us: np.ndarray, warnings: list[str]) -> None:
    unknown = int((known_us > epoch_us(datetime.now(UTC))).sum())
    if unknown:
        warnings.append(
            f"{unknown:,} label(s) are not known yet (label_available_at after now); training "
            "leaves them out"
        )


def _entity(
    settings: Settings,
    layout: Layout,
    join_key: str,
    value_type: str,
    source: Path,
    notes: list[str],
) -> Entity:
    """The Feast entity: the repo's own when one joins on ``join_key`` (noted), else a new one."""
    definitions = existing_definitions(settings.resolved_feature_repo, skip=layout.feature_module)
    entity = choose_entity(definitions, layout, join_key, value_type, str(source))
    check_names(definitions, layout, entity)
    if entity.reused_from is not None:
        notes.append(
            f"entity '{entity.name}' reused from feature_repo/"
            f"{entity.reused_from.replace('.', '/')}.py (same join key '{join_key}')"
        )
    return entity


def _result(
    options: InitOptions,
    roles: Roles,
    rows: Rows,
    plan: Plan,
    written: list[Path],
    replaced: list[Path],
    notes: list[str],
    warnings: list[str],
) -> InitResult:
    behaviour_test = plan.layout.behaviour_test
    return InitResult(
        project=options.name,
        source=options.source,
        rows_read=rows.read,
        rows_written=rows.written,
        entity=roles.join_key,
        entity_object=plan.entity.name,
        entity_reused_from=plan.entity.reused_from,
        label=roles.label,
        positive=plan.positive,
        label_delay=plan.delay_text,
        features=plan.features,
        auto_categorical=plan.auto_categorical,
        windows=plan.windows,
        gap_days=plan.gap_days,
        written=written,
        replaced=[p for p in replaced if p in written or p == behaviour_test],
        notes=notes,
        warnings=warnings,
    )
