"""The gate's rules: pure functions from two evaluations to pass/fail with plain-words reasons.

Nothing here loads models or data; ``services.gate`` measures, these judge. Every rule fails
closed: a metric that could not be computed (NaN, missing) is a failure, never a pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from modelops.core.metrics import LOWER_IS_BETTER, RANKING_METRICS


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
    decision: str
    margin: float
    max_drop: float
    max_ece_increase: float
    floors: dict[str, float]
    event_name: str
    #: Shown beside costs (``costs.currency``); None: costs are plain numbers.
    currency: str | None = None


@dataclass(frozen=True)
class Findings:
    """What the gate measured with statistics, each as (passed, one-sentence reason).

    ``segments`` is None when the project names no segments; ``sibling`` is None unless the
    environment is empty and the version has a training sibling to be preferred over.
    """

    primary: tuple[bool, str]
    latency: tuple[bool, str]
    leakage: tuple[bool, str]
    servable: tuple[bool, str]
    segments: tuple[bool, str] | None = None
    sibling: tuple[bool, str] | None = None


def _ok(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def gain(metric: str, candidate: float, reference: float) -> float:
    """Improvement of candidate over reference, positive is better, for any metric direction."""
    return reference - candidate if metric in LOWER_IS_BETTER else candidate - reference


def _pct(value: float) -> str:
    return f"{value:.0%}"


def reference_name(reference: Evaluation) -> str:
    """How reports name a reference: 'production v4', or the prevalence-only model."""
    if reference.version == "-":
        return "the prevalence-only reference"
    return f"{reference.role} v{reference.version}"


def in_words(evaluation: Evaluation, event: str) -> str:
    m = evaluation.metrics
    return (
        f"catches {_pct(m['recall'])} of {event} at a {m['false_positive_rate']:.1%} "
        f"false-alarm rate"
    )


ACTS = "the candidate acts: its threshold flags decisions and catches some"


def acts(candidate: Evaluation, event: str) -> Rule:
    """A candidate whose chosen threshold never flags (alert rate 0), or flags but catches no
    positive of a holdout that has some (recall 0), never acts: it fails whatever the costs say
    (placeholder 1:1 costs with rare positives make "flag no one" the cheapest threshold)."""
    m = candidate.metrics
    alert, recall, positives = m.get("alert_rate"), m.get("recall"), m.get("positives")
    at = f"at threshold {candidate.threshold:.6g}"
    if not (_ok(alert) and _ok(recall) and _ok(positives)):
        return Rule(
            ACTS,
            False,
            f"alert rate, recall or positives could not be computed {at} (alert rate {alert}, "
            f"recall {recall}, positives {positives})",
        )
    assert alert is not None and recall is not None and positives is not None
    rows = m.get("rows", math.nan)
    on = f"the {rows:,.0f} holdout rows" if _ok(rows) else "the holdout"
    if alert <= 0:
        return Rule(
            ACTS,
            False,
            f"{at} it flags no decision on {on} (alert rate 0%; {positives:,.0f} {event} "
            "there, none caught): a model that never acts, whatever the costs",
        )
    if positives > 0 and recall <= 0:
        return Rule(
            ACTS,
            False,
            f"{at} it flags {alert:.1%} of decisions but catches none of the {positives:,.0f} "
            f"{event} (recall 0%)",
        )
    return Rule(
        ACTS, True, f"{at} it flags {alert:.1%} of decisions and catches {recall:.0%} of {event}"
    )


def placeholder_costs_warning(judged: bool, trained: bool) -> str | None:
    """The warning a verdict carries when its decisions rest on placeholder costs: ``judged``,
    the gate's project.yaml sets no ``costs``; ``trained``, the candidate's threshold was chosen
    without them. None when both were the project's own."""
    if not (judged or trained):
        return None
    where = " and ".join(
        part
        for part, flag in (
            ("the gate judged cost", judged),
            ("the candidate's threshold was chosen", trained),
        )
        if flag
    )
    return (
        f"placeholder costs: {where} with 1:1 costs, not the project's (no 'costs:' in "
        "project.yaml); fine for dev and staging, refused for production: set costs "
        "(false_negative, false_positive), train and validate again"
    )


def judge(
    candidate: Evaluation,
    reference: Evaluation,
    rules: RuleSettings,
    findings: Findings,
) -> list[Rule]:
    """Every rule, in the order a reviewer reads them. A rule that could not be evaluated
    fails with the reason."""
    results: list[Rule] = []
    primary = rules.primary_metric
    cm, rm = candidate.metrics, reference.metrics
    name_ref = reference_name(reference)
    wording = "superior to" if rules.decision == "superiority" else "non-inferior to"
    results.append(
        Rule(
            f"{primary} {wording} the reference (margin {rules.margin:g})",
            findings.primary[0],
            findings.primary[1],
        )
    )
    if findings.sibling is not None:
        results.append(Rule("preferred over its training sibling", *findings.sibling))

    for metric in RANKING_METRICS:
        if metric == primary:
            continue
        c, r = cm.get(metric), rm.get(metric)
        if not (_ok(c) and _ok(r)):
            results.append(
                Rule(
                    f"{metric} drops no more than {rules.max_drop:g}",
                    False,
                    f"{metric} could not be computed (candidate {c}, reference {r})",
                )
            )
            continue
        delta = gain(metric, c, r)  # type: ignore[arg-type]
        results.append(
            Rule(
                f"{metric} drops no more than {rules.max_drop:g}",
                delta >= -rules.max_drop,
                f"{metric} {c:.4f} vs {r:.4f} for {name_ref} (gain {delta:+.4f})",
            )
        )

    c, r = cm.get("cost_per_1000"), rm.get("cost_per_1000")
    if _ok(c) and _ok(r):
        unit = f" {rules.currency}" if rules.currency else ""
        results.append(
            Rule(
                "business cost does not rise",
                c <= r,  # type: ignore[operator]
                f"{c:,.0f} vs {r:,.0f}{unit} per 1,000 decisions; candidate "
                f"{in_words(candidate, rules.event_name)}, vs {_pct(rm['recall'])} at "
                f"{rm['false_positive_rate']:.1%} for {name_ref}",
            )
        )
    else:
        results.append(Rule("business cost does not rise", False, "cost could not be computed"))
    results.append(acts(candidate, rules.event_name))

    if findings.segments is not None:
        results.append(Rule("no segment significantly worse", *findings.segments))

    c, r = cm.get("ece"), rm.get("ece")
    ece_ok = _ok(c) and _ok(r)
    results.append(
        Rule(
            f"calibration error rises by at most {rules.max_ece_increase:g}",
            ece_ok and c - r <= rules.max_ece_increase,  # type: ignore[operator]
            f"expected calibration error {c:.4f} vs {r:.4f}; Brier {cm.get('brier', math.nan):.4f} "
            f"vs {rm.get('brier', math.nan):.4f}"
            if ece_ok
            else f"calibration error could not be computed (candidate {c}, reference {r})",
        )
    )
    results.append(Rule("prediction latency within bounds", *findings.latency))
    results.append(Rule("no suspected leakage", *findings.leakage))

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

    results.append(Rule("inputs servable by the feature service", *findings.servable))
    return results


def as_dict(evaluation: Evaluation) -> dict[str, Any]:
    return asdict(evaluation)
