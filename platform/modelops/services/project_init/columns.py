"""The input table and its columns: read, renamed to snake_case, and given their roles (label,
entity, times, excluded, categorical, monotone) from the options."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import ConfigError, DataError
from modelops.services.project_init.intake import header_hint, read_table
from modelops.services.project_init.options import MAX_SHOWN, InitOptions

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

EVENT = "event_timestamp"
CREATED = "created_timestamp"
AVAILABLE = "label_available_at"


def snake_case(name: str) -> str:
    """``MonthlyCharges`` → ``monthly_charges``, ``customerID`` → ``customer_id``,
    ``Total Charges ($)`` → ``total_charges``."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    if not text:
        text = "column"
    return f"c_{text}" if text[0].isdigit() else text


def to_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of an Arrow array, chunked or not, as one numpy array."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    result: np.ndarray = values.to_numpy(zero_copy_only=False)
    return result


class Columns:
    """The input's columns under snake_case names, found by their original or new name."""

    def __init__(self, table: pa.Table, source: Path) -> None:
        self.source = source
        self.original = list(table.column_names)
        self.names: list[str] = []
        seen: dict[str, str] = {}
        for original in self.original:
            new = snake_case(original)
            if new in seen:
                raise DataError(
                    f"{source}: columns '{seen[new]}' and '{original}' both become '{new}'; "
                    "rename one of them"
                )
            seen[new] = original
            self.names.append(new)
        self._lookup = dict(zip(self.original, self.names, strict=True))
        self._lookup.update({n: n for n in self.names})
        self._lookup.update({o.lower(): n for o, n in zip(self.original, self.names, strict=True)})

    @property
    def renamed(self) -> list[tuple[str, str]]:
        return [(o, n) for o, n in zip(self.original, self.names, strict=True) if o != n]

    def find(self, name: str) -> str | None:
        return (
            self._lookup.get(name)
            or self._lookup.get(name.lower())
            or (self._lookup.get(snake_case(name)))
        )

    def listing(self) -> str:
        shown = ", ".join(self.original[:12])
        return shown + (f" and {len(self.original) - 12} more" if len(self.original) > 12 else "")

    def require(self, name: str, option: str) -> str:
        found = self.find(name)
        if found is None:
            hint = header_hint(self.original)
            raise DataError(
                f"{option} '{name}': no such column in {self.source} (columns: {self.listing()})"
                + (f"; {hint}" if hint else "")
            )
        return found


def read_columns(options: InitOptions, notes: list[str]) -> tuple[pa.Table, Columns]:
    """The table with its columns renamed to snake_case (noted), and the names' lookup. A
    header holding ``;`` or a tab (a separator not recognised?) is noted, and named in the
    refusal of any option whose column is not found.

    Raises:
        DataError: no rows, two names that become one.
    """
    source = options.source
    table = read_table(source, options.encoding, options.separator, notes)
    if table.num_rows == 0:
        raise DataError(f"{source}: no rows")
    hint = header_hint(table.column_names)
    if hint:
        notes.append(hint)
    columns = Columns(table, source)
    table = table.rename_columns(columns.names)
    if columns.renamed:
        shown = ", ".join(f"'{o}' → {n}" for o, n in columns.renamed[:MAX_SHOWN])
        more = (
            f" and {len(columns.renamed) - MAX_SHOWN} more"
            if len(columns.renamed) > MAX_SHOWN
            else ""
        )
        notes.append(f"column names in snake_case: {shown}{more}")
    return table, columns


@dataclass(frozen=True)
class Roles:
    """The columns the options name, under their snake_case names."""

    label: str
    entity: str | None  # None: synthetic ids
    timestamp: str | None  # None: synthetic times
    available_at: str | None  # None: --label-delay
    excluded: frozenset[str]
    categorical: list[str]
    monotone: dict[str, int]
    join_key: str  # the entity column, or the synthetic id column init writes
    taken: dict[str, str]  # column -> the option that named it (--label, --entity, ...)

    def feature_columns(self, names: Sequence[str]) -> list[str]:
        """The columns left for features, in the table's order."""
        return [
            c
            for c in names
            if c not in self.taken and c not in self.excluded and c != self.join_key
        ]


def resolve_roles(table: pa.Table, columns: Columns, options: InitOptions) -> Roles:
    """Each option's column found in the table, checked against the others.

    Raises:
        ConfigError: one column named by two options, or a role column as a feature.
        DataError: a named column missing, no entity or time column and nothing synthesised, a
            column with a name init writes itself.
    """
    label = columns.require(options.label, "--label")
    taken: dict[str, str] = {label: "--label"}

    def role(column: str | None, option: str) -> str | None:
        if column is None:
            return None
        found = columns.require(column, option)
        if found in taken:
            raise ConfigError(f"{option} '{column}': already used by {taken[found]}")
        taken[found] = option
        return found

    entity = role(options.entity, "--entity")
    timestamp = role(options.timestamp, "--timestamp")
    available_at = role(options.available_at, "--available-at")
    excluded = {columns.require(c, "--exclude") for c in options.exclude}
    for column in excluded:
        if column in taken:
            raise ConfigError(f"--exclude '{column}': it is the {taken[column]} column")
    _require_entity_and_time(table, columns, options, entity, timestamp)
    join_key = entity or f"{options.name}_row_id"
    _refuse_reserved(columns, label, join_key, taken, excluded)
    categorical = _categorical(columns, options, taken, excluded)
    return Roles(
        label=label,
        entity=entity,
        timestamp=timestamp,
        available_at=available_at,
        excluded=frozenset(excluded),
        categorical=categorical,
        monotone=_monotone(columns, options, taken, excluded, categorical),
        join_key=join_key,
        taken=taken,
    )


def _require_entity_and_time(
    table: pa.Table,
    columns: Columns,
    options: InitOptions,
    entity: str | None,
    timestamp: str | None,
) -> None:
    import pyarrow as pa

    source = columns.source
    if entity is None and not options.synthesize_ids:
        hint = _candidates(columns.names, lambda c: c == "id" or c.endswith("_id"))
        raise DataError(
            f"{source}: no entity column: pass --entity COL (the id each prediction is made "
            f"for{hint}) or --synthesize-ids (one synthetic id per row)"
        )
    if timestamp is None and not options.synthesize_time:
        kinds = {n: table.column(n).type for n in columns.names}
        hint = _candidates(
            columns.names,
            lambda c: pa.types.is_temporal(kinds[c]) or any(w in c for w in ("time", "date")),
        )
        raise DataError(
            f"{source}: no timestamp column: pass --timestamp COL (when each prediction is "
            f"made{hint}) or --synthesize-time START..END (spread evenly, in row order)"
        )


def _refuse_reserved(
    columns: Columns, label: str, join_key: str, taken: dict[str, str], excluded: set[str]
) -> None:
    source = columns.source
    reserved = {EVENT, CREATED, AVAILABLE, join_key}
    if label in reserved:
        raise DataError(f"{source}: the label column may not be called '{label}'; rename it")
    for column in columns.names:
        if column in reserved and column not in taken and column not in excluded:
            raise DataError(
                f"{source}: column '{column}' is a name init writes itself; pass it as the "
                f"column it is (--timestamp / --available-at / --entity) or --exclude it"
            )


def _categorical(
    columns: Columns, options: InitOptions, taken: dict[str, str], excluded: set[str]
) -> list[str]:
    categorical: list[str] = []
    for column in options.categorical:
        found = columns.require(column, "--categorical")
        if found in taken or found in excluded:
            raise ConfigError(
                f"--categorical '{column}': it is the {taken.get(found, '--exclude')} column, "
                "not a feature"
            )
        categorical.append(found)
    return categorical


def _monotone(
    columns: Columns,
    options: InitOptions,
    taken: dict[str, str],
    excluded: set[str],
    categorical: list[str],
) -> dict[str, int]:
    monotone: dict[str, int] = {}
    for column, sign in options.monotone.items():
        found = columns.require(column, "--monotone")
        if found in taken or found in excluded or found in categorical:
            what = taken.get(found) or ("excluded" if found in excluded else "categorical")
            raise ConfigError(
                f"--monotone '{column}': only numeric features can be monotone ('{found}' is "
                f"{what})"
            )
        if sign not in (-1, 1):
            raise ConfigError(f"--monotone {column}={sign}: the direction is +1 or -1")
        monotone[found] = sign
    return monotone


def _candidates(names: Sequence[str], test: Any) -> str:
    found = [n for n in names if test(n)]
    return f"; candidates: {', '.join(found[:MAX_SHOWN])}" if found else ""
