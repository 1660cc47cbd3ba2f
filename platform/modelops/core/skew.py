"""Train/serve skew: the same entities' features from the offline and the online store, compared.

Pure: two sets of columns in, per-feature mismatch counts with the worst examples out. Numbers
agree when they are within a relative tolerance (``1e-9`` by default, with an absolute floor of
``1e-12`` so that ``0`` and ``1e-300`` agree); strings, booleans and anything else must be
equal; two missing values (None, NaN, ``pd.NA``, ``NaT``) agree, one missing value never does.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REL_TOL = 1e-9
ABS_TOL = 1e-12
WORST = 3


@dataclass(frozen=True)
class Mismatch:
    """One entity whose feature differs between the stores."""

    entity: str  # e.g. "account_id=7"
    offline: Any
    online: Any
    difference: float  # relative difference of two numbers; inf for anything else


@dataclass(frozen=True)
class FeatureSkew:
    feature: str
    compared: int
    mismatches: int
    worst: tuple[Mismatch, ...]


@dataclass(frozen=True)
class SkewReport:
    """Per feature: how many of the compared entities differ, and the worst examples."""

    entities: int
    mismatched_entities: int
    features: tuple[FeatureSkew, ...]
    rel_tol: float = REL_TOL

    @property
    def share(self) -> float:
        """Share of the compared entities with at least one differing feature."""
        return self.mismatched_entities / self.entities if self.entities else 0.0

    @property
    def skewed_features(self) -> list[str]:
        return [f.feature for f in self.features if f.mismatches]


def is_missing(value: Any) -> bool:
    """None, NaN and pandas' missing markers (``pd.NA``, ``NaT``)."""
    if value is None:
        return True
    if isinstance(value, numbers.Real) and value != value:
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def _number(value: Any) -> float | None:
    """A real number as float; None for strings, booleans and everything else."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def difference(offline: Any, online: Any, rel_tol: float = REL_TOL) -> float | None:
    """None when the values agree; otherwise how far apart they are (relative for numbers,
    ``inf`` for a missing value, a type mismatch or differing strings)."""
    missing = is_missing(offline), is_missing(online)
    if all(missing):
        return None
    if any(missing):
        return math.inf
    a, b = _number(offline), _number(online)
    if a is not None and b is not None:
        if math.isclose(a, b, rel_tol=rel_tol, abs_tol=ABS_TOL):
            return None
        if math.isinf(a) or math.isinf(b):
            return math.inf
        return abs(a - b) / max(abs(a), abs(b))
    if (a is None) != (b is None):
        return math.inf
    try:
        return None if bool(offline == online) else math.inf
    except (TypeError, ValueError):
        return math.inf


def describe_entity(keys: Mapping[str, Any]) -> str:
    """``account_id=7`` (several keys joined with ``, ``)."""
    return ", ".join(f"{name}={value!r}" for name, value in keys.items())


def compare(
    entities: Sequence[Mapping[str, Any]],
    offline: Mapping[str, Sequence[Any]],
    online: Mapping[str, Sequence[Any]],
    features: Sequence[str],
    *,
    rel_tol: float = REL_TOL,
    worst: int = WORST,
) -> SkewReport:
    """Compare ``offline[f][i]`` with ``online[f][i]`` for every feature and entity ``i``.

    Args:
        entities: the entity keys of each row, in the same order as both stores' columns.
        offline, online: one sequence per feature, as long as ``entities``; a feature absent
            from a store counts as missing there.
        worst: examples kept per feature, the largest differences first.
    """
    n = len(entities)
    for source, columns in (("offline", offline), ("online", online)):
        for feature in features:
            if feature in columns and len(columns[feature]) != n:
                raise ValueError(
                    f"{source} column '{feature}' has {len(columns[feature])} values for {n} "
                    "entities"
                )
    mismatched: set[int] = set()
    results = []
    for feature in features:
        left = offline.get(feature)
        right = online.get(feature)
        found: list[tuple[float, int, Any, Any]] = []
        for i in range(n):
            a = None if left is None else left[i]
            b = None if right is None else right[i]
            diff = difference(a, b, rel_tol)
            if diff is not None:
                found.append((diff, i, a, b))
                mismatched.add(i)
        found.sort(key=lambda item: (-item[0], item[1]))
        examples = tuple(
            Mismatch(describe_entity(entities[i]), a, b, diff) for diff, i, a, b in found[:worst]
        )
        results.append(FeatureSkew(feature, n, len(found), examples))
    return SkewReport(
        entities=n, mismatched_entities=len(mismatched), features=tuple(results), rel_tol=rel_tol
    )
