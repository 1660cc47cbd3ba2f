"""The gate's rules: pure functions from two evaluations to pass/fail with plain-words reasons.

Nothing here loads models or data; ``services.gate`` measures, these judge. Every rule fails
closed: a metric that could not be computed (NaN, missing) is a failure, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from modelops.core.metrics import LOWER_IS_BETTER


@dataclass(frozen=True)
class Evaluation:
    """One model measured on the gate's holdout rows."""

    role: str  # "candidate", "production", "baseline" ...
    version: str
    threshold: float
    metrics: dict[str, float]
    segments: dict[str, dict[str, dict[str, float]]]
    latency_ms_p50: float
    latency_ms_p95: float
    size_bytes: int
    features: list[str]
    feature_share: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class RuleSettings:
    primary_metric: str
    min_improvement: float
    max_drop: float
    max_segment_drop: float
    min_segment_rows: int
    min_segment_positives: int
    max_ece_increase: float
    max_latency_ms: float
    max_latency_ratio: float
    leakage_auc_ceiling: float
    max_feature_share: float
    floors: dict[str, float]
    event_name: str
    currency: str


def _ok(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def gain(metric: str, candidate: float, reference: float) -> float:
    """Improvement of candidate over reference, positive is better, for any metric direction."""
    return reference - candidate if metric in LOWER_IS_BETTER else candidate - reference


def _pct(value: float) -> str:
    return f"{value:.0%}"


def in_words(evaluation: Evaluation, event: str) -> str:
    m = evaluation.metrics
    return (
        f"catches {_pct(m['recall'])} of {event} at a {m['false_positive_rate']:.1%} "
        f"false-alarm rate"
    )


def judge(
    candidate: Evaluation,
    reference: Evaluation,
    rules: RuleSettings,
    servable: tuple[bool, str],
) -> list[Rule]:
    """Every rule, in the order a reviewer reads them."""
    results: list[Rule] = []
    primary = rules.primary_metric
    cm, rm = candidate.metrics, reference.metrics
    name_ref = f"{reference.role} v{reference.version}"

    c, r = cm.get(primary), rm.get(primary)
    if _ok(c) and _ok(r):
        delta = gain(primary, c, r)  # type: ignore[arg-type]
        results.append(
            Rule(
                f"{primary} improves by at least {rules.min_improvement:g}",
                delta >= rules.min_improvement,
                f"{primary} {c:.4f} vs {r:.4f} for {name_ref} ({delta:+.4f})",
            )
        )
    else:
        results.append(
            Rule(
                f"{primary} improves",
                False,
                f"{primary} could not be computed (candidate {c}, reference {r})",
            )
        )

    for metric in ("roc_auc", "pr_auc", "log_loss", "brier"):
        if metric == primary:
            continue
        c, r = cm.get(metric), rm.get(metric)
        if not (_ok(c) and _ok(r)):
            results.append(Rule(f"{metric} does not drop", False, f"{metric} missing"))
            continue
        delta = gain(metric, c, r)  # type: ignore[arg-type]
        results.append(
            Rule(
                f"{metric} drops no more than {rules.max_drop:g}",
                delta >= -rules.max_drop,
                f"{metric} {c:.4f} vs {r:.4f} ({delta:+.4f})",
            )
        )

    c, r = cm.get("cost_per_1000"), rm.get("cost_per_1000")
    if _ok(c) and _ok(r):
        results.append(
            Rule(
                "business cost does not rise",
                c <= r,  # type: ignore[operator]
                f"{c:,.0f} vs {r:,.0f} {rules.currency} per 1,000 decisions; candidate "
                f"{in_words(candidate, rules.event_name)}, vs {_pct(rm['recall'])} at "
                f"{rm['false_positive_rate']:.1%} for {name_ref}",
            )
        )
    else:
        results.append(Rule("business cost does not rise", False, "cost could not be computed"))

    worst: tuple[float, str] | None = None
    compared = 0
    for column, values in candidate.segments.items():
        for value, seg in values.items():
            ref_seg = reference.segments.get(column, {}).get(value)
            if (
                ref_seg is None
                or seg.get("rows", 0) < rules.min_segment_rows
                or seg.get("positives", 0) < rules.min_segment_positives
            ):
                continue
            cs, rs = seg.get(primary), ref_seg.get(primary)
            if not (_ok(cs) and _ok(rs)):
                continue
            compared += 1
            delta = gain(primary, cs, rs)  # type: ignore[arg-type]
            if worst is None or delta < worst[0]:
                worst = (delta, f"{column}={value}: {primary} {cs:.4f} vs {rs:.4f}")
    if worst is None:
        results.append(
            Rule(
                "no segment loses more than the tolerance",
                True,
                f"no segment has {rules.min_segment_rows} rows and "
                f"{rules.min_segment_positives} {rules.event_name} to compare",
            )
        )
    else:
        results.append(
            Rule(
                f"no segment loses more than {rules.max_segment_drop:g} {primary}",
                worst[0] >= -rules.max_segment_drop,
                f"worst of {compared} segments: {worst[1]} ({worst[0]:+.4f})",
            )
        )

    c, r = cm.get("ece"), rm.get("ece")
    results.append(
        Rule(
            f"calibration error rises by at most {rules.max_ece_increase:g}",
            _ok(c) and _ok(r) and c - r <= rules.max_ece_increase,  # type: ignore[operator]
            f"expected calibration error {c:.4f} vs {r:.4f}; Brier {cm.get('brier', math.nan):.4f} "
            f"vs {rm.get('brier', math.nan):.4f}",
        )
    )

    latency_cap = max(rules.max_latency_ratio * reference.latency_ms_p50, 0.0)
    results.append(
        Rule(
            "prediction latency within bounds",
            _ok(candidate.latency_ms_p50)
            and candidate.latency_ms_p50 <= rules.max_latency_ms
            and candidate.latency_ms_p50 <= max(latency_cap, 1.0),
            f"median {candidate.latency_ms_p50:.2f} ms per row "
            f"(p95 {candidate.latency_ms_p95:.2f})"
            f" vs {reference.latency_ms_p50:.2f} ms; limits {rules.max_latency_ms:g} ms and "
            f"{rules.max_latency_ratio:g}x the reference",
        )
    )

    auc = cm.get("roc_auc")
    top = max(candidate.feature_share.items(), key=lambda kv: kv[1], default=("-", 0.0))
    suspicious = []
    if not _ok(auc) or auc > rules.leakage_auc_ceiling:  # type: ignore[operator]
        suspicious.append(f"holdout ROC-AUC {auc:.4f} above {rules.leakage_auc_ceiling:g}")
    if top[1] > rules.max_feature_share:
        suspicious.append(f"'{top[0]}' carries {top[1]:.0%} of the model's gain")
    results.append(
        Rule(
            "no suspected leakage",
            not suspicious,
            "; ".join(suspicious) + " - check that no feature is computed after the event"
            if suspicious
            else f"ROC-AUC {auc:.4f}, top feature '{top[0]}' {top[1]:.0%} of gain",
        )
    )

    for metric, floor in sorted(rules.floors.items()):
        measured = cm.get(metric, math.nan)
        higher = metric not in LOWER_IS_BETTER
        passed = _ok(measured) and (measured >= floor if higher else measured <= floor)
        results.append(
            Rule(
                f"{metric} {'>=' if higher else '<='} {floor:g} (floor)",
                passed,
                f"{metric} {measured:.4f}",
            )
        )

    results.append(Rule("inputs servable by the feature service", servable[0], servable[1]))
    return results


def as_dict(evaluation: Evaluation) -> dict[str, Any]:
    return asdict(evaluation)
