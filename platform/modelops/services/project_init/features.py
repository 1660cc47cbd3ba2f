"""The feature columns: typed for Feast (int64 / float64 / string / bool), categorical where
declared or text, the rows worth writing, and the missing-value tolerance the data needs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import ConfigError, DataError
from modelops.services.project_init.columns import Roles, to_numpy

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

DEFAULT_MISSING_SHARE = 0.01  # DataChecks.max_missing_share's default
FEAST_TYPES = {"int64": "Int64", "double": "Float64", "string": "String", "bool": "Bool"}


@dataclass(frozen=True)
class Feature:
    name: str
    feast_type: str  # Int64, Float64, String, Bool
    categorical: bool
    missing_share: float


@dataclass(frozen=True)
class FeatureColumns:
    values: dict[str, pa.ChunkedArray]  # name -> the column as written, in the table's order
    categorical: set[str]  # declared with --categorical, or text
    auto: list[str]  # text columns not declared: categorical by their type


@dataclass(frozen=True)
class MissingTolerance:
    """``data_checks.max_missing_share`` when the emptiest feature needs more than the default."""

    share: float | None
    worst: Feature | None  # the feature that needs it


def select_features(
    table: pa.Table, roles: Roles, names: Sequence[str], source: Path, notes: list[str]
) -> FeatureColumns:
    """Every column without a role, typed; the declared categorical and monotone ones checked.

    Raises:
        ConfigError: a ``--monotone`` column that holds text.
        DataError: a declared column that cannot be a feature, or no feature left.
    """
    import pyarrow as pa

    kept = prepare_features(table, roles.feature_columns(names), notes)
    for column in [*roles.categorical, *roles.monotone]:
        if column not in kept:
            raise DataError(
                f"{source}: column '{column}' cannot be a feature (see the columns left out)"
            )
    for column in roles.monotone:
        if pa.types.is_string(kept[column].type):
            raise ConfigError(f"--monotone '{column}': holds text; only numbers can be monotone")
    if not kept:
        raise DataError(f"{source}: no feature columns left besides the label, ids and times")
    auto = [c for c, v in kept.items() if pa.types.is_string(v.type) and c not in roles.categorical]
    if auto:
        notes.append(f"categorical (text columns): {', '.join(auto)}")
    return FeatureColumns(kept, set(roles.categorical) | set(auto), auto)


def prepare_features(
    table: pa.Table, columns: Sequence[str], notes: list[str]
) -> dict[str, pa.ChunkedArray]:
    """Feature columns cast to int64 / float64 / string / bool; dropped columns are noted.

    Integers and booleans with missing values become float64 (NaN survives the join and the
    models; nullable integers do not).
    """
    kept: dict[str, pa.ChunkedArray] = {}
    dropped: list[str] = []
    for name in columns:
        values, why = _typed(table.column(name), name, notes)
        if values is None:
            dropped.append(f"'{name}' ({why})")
        else:
            kept[name] = values
    if dropped:
        notes.append(
            "left out of the features (the platform's features are numbers or categories): "
            + ", ".join(dropped)
        )
    return kept


def _typed(
    values: pa.ChunkedArray, name: str, notes: list[str]
) -> tuple[pa.ChunkedArray | None, str]:
    """The column cast for Feast, or None and why it cannot be a feature."""
    import pyarrow as pa

    kind = values.type
    if pa.types.is_dictionary(kind):
        values, kind = values.cast(kind.value_type), kind.value_type
    if pa.types.is_null(kind) or values.null_count == len(values):
        return None, "empty"
    if pa.types.is_large_string(kind):
        values = values.cast(pa.string())
    elif pa.types.is_boolean(kind):
        if values.null_count:
            values = values.cast(pa.float64())
            notes.append(f"'{name}': booleans with missing values stored as 1.0/0.0/NaN")
    elif pa.types.is_integer(kind):
        if values.null_count:
            values = values.cast(pa.float64())
        else:
            try:
                values = values.cast(pa.int64())
            except pa.ArrowInvalid:
                values = values.cast(pa.float64())
    elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = values.cast(pa.float64())
    elif not pa.types.is_string(kind):
        return None, "dates or times" if pa.types.is_temporal(kind) else f"{kind} values"
    return values, ""


def rows_to_keep(
    labelled: pa.Array, features: FeatureColumns, unlabelled: int, source: Path, notes: list[str]
) -> np.ndarray:
    """True on the rows with a label and at least one feature value; the others are noted.

    Raises:
        DataError: no row has both.
    """
    import numpy as np
    import pyarrow.compute as pc

    all_empty = None
    for values in features.values.values():
        empty = pc.is_null(values, nan_is_null=True)
        all_empty = empty if all_empty is None else pc.and_(all_empty, empty)
    assert all_empty is not None
    no_features = int(pc.sum(all_empty).as_py() or 0)
    keep = pc.and_(labelled, pc.invert(all_empty))
    if unlabelled:
        notes.append(f"{unlabelled:,} row(s) without a label left out")
    if no_features:
        notes.append(f"{no_features:,} row(s) without any feature value left out")
    mask = np.asarray(to_numpy(keep), dtype=bool)
    if not mask.any():
        raise DataError(f"{source}: no row has both a label and a feature value")
    return mask


@dataclass(frozen=True)
class Rows:
    """The rows init writes: labelled, with at least one feature value."""

    read: int
    written: int
    entity: pa.ChunkedArray
    value_type: str  # INT64 / STRING
    label: pa.Array
    features: dict[str, pa.ChunkedArray]
    event_us: np.ndarray
    known_us: np.ndarray


def keep_rows(
    mask: np.ndarray,
    ids: pa.ChunkedArray,
    value_type: str,
    label: pa.Array,
    selected: FeatureColumns,
    event_us: np.ndarray,
    known_us: np.ndarray,
) -> Rows:
    """The rows ``mask`` keeps, of every column init writes."""
    import pyarrow as pa

    read, written = len(mask), int(mask.sum())

    def kept(values: Any) -> Any:
        return values.filter(pa.array(mask)) if written < read else values

    return Rows(
        read=read,
        written=written,
        entity=kept(ids),
        value_type=value_type,
        label=kept(label),
        features={c: kept(v) for c, v in selected.values.items()},
        event_us=event_us[mask],
        known_us=known_us[mask],
    )


def describe_features(
    values: dict[str, pa.ChunkedArray], categorical: set[str], warnings: list[str]
) -> list[Feature]:
    """Each kept feature's Feast type and missing share; a warning for text that looks like an
    id (a different value on every one of at least 100 rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    features = [
        Feature(c, FEAST_TYPES[str(v.type)], c in categorical, _missing_share(v))
        for c, v in values.items()
    ]
    for feature in features:
        column = values[feature.name]
        rows = len(column)
        if (
            feature.categorical
            and pa.types.is_string(column.type)
            and rows >= 100
            and pc.count_distinct(column).as_py() == rows
        ):
            warnings.append(
                f"'{feature.name}' has a different value on every row: an id, not a feature? "
                f"pass --entity {feature.name} or --exclude {feature.name}"
            )
    return features


def missing_tolerance(features: list[Feature], notes: list[str]) -> MissingTolerance:
    """Room above the emptiest feature's missing share when the default would fail it."""
    worst = max(features, key=lambda f: f.missing_share)
    if worst.missing_share <= DEFAULT_MISSING_SHARE:
        return MissingTolerance(None, None)
    tolerance = min(1.0, math.ceil((worst.missing_share * 1.5 + 0.01) * 100) / 100)
    notes.append(
        f"'{worst.name}' is empty on {worst.missing_share:.1%} of the rows: "
        f"data_checks.max_missing_share set to {tolerance:g} (default "
        f"{DEFAULT_MISSING_SHARE:g})"
    )
    return MissingTolerance(tolerance, worst)


def _missing_share(values: pa.ChunkedArray) -> float:
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = values.null_count
    if pa.types.is_floating(values.type):
        missing += int(pc.sum(pc.is_nan(pc.fill_null(values, 0.0))).as_py() or 0)
    return missing / len(values) if len(values) else 0.0
