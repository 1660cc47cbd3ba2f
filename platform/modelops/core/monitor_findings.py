"""The findings of one monitoring run, as the policy (:mod:`modelops.core.monitoring`) reads
them: data quality, drift, realised and estimated performance, the serving version's tenure.
Pure records, no I/O; re-exported by :mod:`modelops.core.monitoring`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from modelops.core.drift_effect import FeatureDrift
from modelops.core.estimated_judgement import EstimateCheck, Estimated
from modelops.core.live_judgement import LiveDrop, SameRows, Shadow

if TYPE_CHECKING:
    from modelops.core.monitoring import Policy


@dataclass(frozen=True)
class FeatureQuality:
    """Shares of the window's predictions; None where the check does not apply to the type."""

    missing_share: float
    reference_missing_share: float = 0.0
    unseen_share: float | None = None
    out_of_range_share: float | None = None


@dataclass(frozen=True)
class Quality:
    rows: int
    features: dict[str, FeatureQuality] = field(default_factory=dict)
    schema_problems: tuple[str, ...] = ()


def quality_problems(quality: Quality, policy: Policy) -> list[str]:
    """One sentence per data-quality failure of the window, in feature order."""
    problems = list(quality.schema_problems)
    for name, q in quality.features.items():
        if q.missing_share > policy.max_missing_share and q.missing_share > (
            q.reference_missing_share
        ):
            problems.append(
                f"{name} missing on {q.missing_share:.1%} of predictions (reference "
                f"{q.reference_missing_share:.1%}; max_missing_share {policy.max_missing_share:g})"
            )
        if q.unseen_share is not None and q.unseen_share > policy.max_unseen_share:
            problems.append(
                f"{name}: {q.unseen_share:.1%} of values never seen in the reference "
                f"(max_unseen_share {policy.max_unseen_share:g})"
            )
        if q.out_of_range_share is not None and q.out_of_range_share > (
            policy.max_out_of_range_share
        ):
            problems.append(
                f"{name}: {q.out_of_range_share:.1%} of values outside the reference's range "
                f"(max_out_of_range_share {policy.max_out_of_range_share:g})"
            )
    return problems


@dataclass(frozen=True)
class Drift:
    """Evidently's per-feature drift of the window against the reference.

    ``drifted``: the features that count (:mod:`modelops.core.drift_effect`: not exempt, the
    test finds drift and the effect size reaches ``min_effect``); ``share``: their share of the
    features that are not exempt; ``scores``: Evidently's statistic of every feature;
    ``features``: every feature's test, effect size, exemption and whether it counts."""

    method: str
    share: float
    drifted: tuple[str, ...]
    scores: dict[str, float]
    threshold: float | None = None
    prediction_score: float | None = None
    prediction_drifted: bool | None = None
    rows_used: int = 0
    rows_total: int = 0
    reference_rows: int = 0
    features: dict[str, FeatureDrift] = field(default_factory=dict)
    min_effect: float | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Performance:
    """Live metrics of the serving version on its labelled predictions, and what to compare
    them with: the metrics its verdict measured (``gate``), the interval of the live primary
    metric against it (``drop``, None without a gate-time value) and, when that shows a
    drop on probation, the previous version scored on the same rows (``previous``)."""

    version: str
    rows: int
    positives: int
    metrics: dict[str, float]
    gate: dict[str, float] | None = None
    gate_source: str = ""
    drop: LiveDrop | None = None
    previous: SameRows | None = None


@dataclass(frozen=True)
class Tenure:
    """How the serving version got there and for how long it has been serving."""

    moved_by: str | None  # "promote", "rollback" or None (no recorded move)
    moved_at: datetime | None
    first_seen: datetime | None  # its first logged prediction within the run's look-back
    as_of: datetime
    rollback_target: str | None = None  # the version a rollback would return to


def in_probation(tenure: Tenure, policy: Policy) -> bool:
    """Promoted (a rollback starts no probation) and first seen less than ``probation_days``
    before the run's time (or not seen yet)."""
    if tenure.moved_by != "promote" or policy.probation_days <= 0:
        return False
    if tenure.first_seen is None:
        return True
    return tenure.as_of - tenure.first_seen < timedelta(days=policy.probation_days)


@dataclass(frozen=True)
class Findings:
    project: str
    environment: str
    version: str
    quality: Quality
    tenure: Tenure
    drift: Drift | None = None
    performance: Performance | None = None
    shadow: Shadow | None = None
    estimated: Estimated | None = None
    estimate_check: EstimateCheck | None = None


def findings_dict(findings: Findings) -> dict[str, Any]:
    """JSON-ready findings (NaN becomes None)."""
    return _clean(asdict(findings))


def _clean(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _clean(value.model_dump())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
