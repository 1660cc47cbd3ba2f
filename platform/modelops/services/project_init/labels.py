"""The label column: kept as found, checked to hold two classes, and its positive (costly) class
from ``--positive`` read as a value of the column's type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core.errors import DataError
from modelops.services.project_init.columns import to_numpy
from modelops.services.project_init.options import MAX_SHOWN

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


@dataclass(frozen=True)
class Label:
    """The label column as it will be written."""

    values: pa.Array
    positive: Any  # None for 0/1 and booleans: 1 / True is the positive class
    unlabelled: int  # rows without a label (dropped)


def values_found(values: Sequence[Any]) -> str:
    """``3 distinct value(s) 'A', 'B', 'C'``, naming at most a few."""
    shown = ", ".join(repr(v) for v in values[:MAX_SHOWN])
    more = f" and {len(values) - MAX_SHOWN} more" if len(values) > MAX_SHOWN else ""
    return f"{len(values)} distinct value(s) {shown}{more}"


def sorted_values(values: list[Any]) -> list[Any]:
    """``values`` sorted when they can be, as given when they cannot (mixed types)."""
    try:
        return sorted(values)
    except TypeError:
        return values


def _coerce_positive(text: str, kind: str, values: list[Any]) -> Any:
    """``--positive`` as a value of the label column's type."""
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return text
    if kind in ("int", "float"):
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() else number
    return text if text in values else next((v for v in values if str(v) == text), text)


def _kind(values: pa.Array) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(values.type):
        return "bool"
    if pa.types.is_integer(values.type):
        return "int"
    if pa.types.is_floating(values.type):
        return "float"
    return "text"


def read_label(table: pa.Table, column: str, positive_text: str | None, source: Path) -> Label:
    """The label column as it will be written, its positive value (None for 0/1 and booleans),
    and the number of rows without a label (dropped).

    Raises:
        DataError: not two classes (the values are shown), or ``--positive`` is not one of them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    values = table.column(column).combine_chunks()
    missing = values.null_count
    kind = _kind(values)
    if pa.types.is_dictionary(values.type):
        values = values.cast(pa.string())
    if kind == "float":
        finite = pc.drop_null(values)
        if len(finite) and pc.all(pc.equal(pc.floor(finite), finite)).as_py():
            values, kind = values.cast(pa.int64()), "int"
    distinct = sorted_values(pc.unique(pc.drop_null(values)).to_pylist())
    where = f"{source}: label '{column}'"
    if kind == "float" and len(distinct) <= 2:
        raise DataError(f"{where} holds fractional numbers {distinct}: not a binary label")
    if len(distinct) > 2:
        raise DataError(f"{where} is not binary: {values_found(distinct)}")
    if len(distinct) < 2:
        raise DataError(f"{where} has a single class: {values_found(distinct)}; nothing to learn")
    if positive_text is None:
        if kind == "bool" or (kind == "int" and set(distinct) == {0, 1}):
            return Label(values, None, missing)
        raise DataError(
            f"{where} has two classes {distinct[0]!r} and {distinct[1]!r}: name the positive "
            "(costly) one with --positive"
        )
    positive = _coerce_positive(positive_text, kind, distinct)
    if positive not in distinct:
        raise DataError(
            f"--positive {positive_text!r} is not a value of {where}: {values_found(distinct)}"
        )
    if kind == "bool" and positive is True:
        positive = None  # True is the positive class already
    elif kind == "int" and set(distinct) == {0, 1} and positive == 1:
        positive = None
    return Label(values, positive, missing)


def positives(label: pa.ChunkedArray, positive: Any) -> np.ndarray:
    """True on the rows of the positive class."""
    import numpy as np

    values = to_numpy(label)
    if positive is None:
        return np.asarray(values, dtype=bool) if values.dtype != object else values == 1
    result: np.ndarray = values == positive
    return result
