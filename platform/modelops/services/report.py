"""The gate report a reviewer reads: headline, side-by-side table, every rule with its reason.

Deltas are candidate minus reference everywhere; the mark says whether that is better (✓) or
worse (✗) for the business, following each metric's direction (a higher false-alarm rate is
worse, a lower log loss is better). A metric without a direction (alert rate) gets no mark.
"""

from __future__ import annotations

from typing import Any

from modelops.config.project import Project
from modelops.core.gate_rules import in_words, reference_name
from modelops.core.metrics import COMPARED_METRICS, direction
from modelops.core.verdict import Verdict


def _fmt(metric: str, value: float) -> str:
    if metric == "cost_per_1000":
        return f"{value:,.0f}"
    if metric in ("precision", "recall", "false_positive_rate", "alert_rate"):
        return f"{value:.1%}"
    return f"{value:.4f}"


def mark(metric: str, delta: float) -> str:
    """✓ when the delta (candidate minus reference) is better for the business, ✗ when worse."""
    sign = direction(metric)
    if sign == 0 or delta == 0:
        return ""
    return "✓" if delta * sign > 0 else "✗"


def _interval_sentence(evidence: dict[str, Any], metric: str, ref_name: str) -> str:
    interval = evidence.get("primary_interval") or {}
    low, high = interval.get("low"), interval.get("high")
    if low is None or high is None:
        return (
            f"No interval for the {metric} gain vs {ref_name}: "
            f"{interval.get('reason') or 'it could not be computed'} (the rule fails closed)."
        )
    sub = (
        f" (a stratified subsample of {interval.get('rows_used', 0):,} of "
        f"{interval.get('rows_total', 0):,} rows)"
        if interval.get("subsampled")
        else ""
    )
    noise = "within sampling noise" if low <= 0 <= high else "larger than sampling noise"
    return (
        f"{metric} gain {interval.get('estimate', float('nan')):+.4f} vs {ref_name}: "
        f"{interval.get('level', 0.95):.0%} {interval.get('method', 'bootstrap')} interval "
        f"{low:+.4f} to {high:+.4f} over {interval.get('resamples', 0):,} paired resamples{sub}; "
        f"the difference is {noise}."
    )


def _reused(evidence: dict[str, Any]) -> list[str]:
    """The sentence of a verdict reused from another environment (nothing re-scored)."""
    reused = evidence.get("reused_from")
    if not reused:
        return []
    return [
        f"Reused verdict `{reused.get('verdict_id')}` of {reused.get('environment')} "
        f"(ledger entry {reused.get('seq')}): the same candidate, reference and holdout, "
        "so nothing was scored again.",
        "",
    ]


def to_markdown(verdict: Verdict, project: Project) -> str:
    c, r = verdict.candidate, verdict.reference
    event = project.spec.label.event_name
    ref_name = reference_name(r)
    status = "PASSED" if verdict.passed else "FAILED"
    evidence = verdict.evidence
    costs = project.spec.decision_costs
    lines = [
        f"## {verdict.model_name} v{c.version} vs {ref_name} ({verdict.environment}): {status}",
        "",
        *(f"**Warning:** {warning}." for warning in verdict.warnings),
        *([""] if verdict.warnings else []),
        *_reused(evidence),
        f"Candidate {in_words(c, event)}, vs {r.metrics['recall']:.0%} at "
        f"{r.metrics['false_positive_rate']:.1%} for {ref_name}. Business cost "
        f"{c.metrics['cost_per_1000']:,.0f} vs {costs.amount(r.metrics['cost_per_1000'])} "
        f"per 1,000 decisions. The two models decide differently "
        f"on {verdict.decisions_differ:.1%} of the rows.",
        "",
        _interval_sentence(evidence, project.spec.primary_metric, ref_name),
        "",
        f"Holdout: {verdict.holdout.rows:,} rows, {verdict.holdout.start} .. {verdict.holdout.end}"
        f", sha256 `{verdict.holdout.sha256[:16]}`. Verdict `{verdict.id}`, inputs "
        f"`{verdict.inputs_key[:16]}` (a re-run with the same inputs returns this verdict).",
        "",
        f"| metric | candidate v{c.version} | {ref_name} | delta (candidate − reference) |",
        "|---|---|---|---|",
    ]
    for metric in COMPARED_METRICS:
        if metric in c.metrics and metric in r.metrics:
            delta = c.metrics[metric] - r.metrics[metric]
            lines.append(
                f"| {metric} | {_fmt(metric, c.metrics[metric])} | "
                f"{_fmt(metric, r.metrics[metric])} | {delta:+.4g} {mark(metric, delta)} |"
            )
    lines += [
        f"| threshold | {c.threshold:.6g} | {r.threshold:.6g} | |",
        f"| latency p50 / p95 (ms per row, serving scorer) | {c.latency_ms_p50:.3f} / "
        f"{c.latency_ms_p95:.3f} | {r.latency_ms_p50:.3f} / {r.latency_ms_p95:.3f} | |",
        f"| model size (KiB) | {c.size_bytes / 1024:,.0f} | {r.size_bytes / 1024:,.0f} | |",
        "",
        "| rule | result | why |",
        "|---|---|---|",
    ]
    lines += [
        f"| {rule.name} | {'pass' if rule.passed else '**FAIL**'} | {rule.detail} |"
        for rule in verdict.rules
    ]
    leakage = evidence.get("leakage") or {}
    ran, not_run = leakage.get("checks_run") or [], leakage.get("checks_not_run") or []
    if ran or not_run:
        lines += ["", f"Leakage checks run: {', '.join(ran) or 'none'}."]
        if not_run:
            lines.append(f"Could not run: {'; '.join(not_run)}.")
    for name, (reason, waived) in (leakage.get("acknowledged") or {}).items():
        lines.append(f"Acknowledged dominant feature '{name}' ({reason}): {waived}.")
    scorers = evidence.get("scorers") or {}
    if scorers:
        lines += [
            "",
            "Scored and timed on the serving path: "
            + "; ".join(
                f"{role} {info.get('kind')} (max |diff| vs pipeline "
                f"{float(info.get('max_abs_diff', 0.0)):.2g} on {info.get('rows', 0):,} rows)"
                for role, info in scorers.items()
            )
            + ".",
        ]
    changes = evidence.get("feature_changes") or {}
    if changes:
        said = "; ".join(f"{who}: {', '.join(views)}" for who, views in changes.items())
        lines += ["", f"Feature definitions changed since training, allowed explicitly: {said}."]
    segments = evidence.get("segments") or {}
    skipped = segments.get("skipped") or {}
    if skipped:
        lines += [
            "",
            "Segments not judged: "
            + "; ".join(f"{name} ({why})" for name, why in sorted(skipped.items())),
        ]
    primary = project.spec.primary_metric
    rows = [
        (column, value, seg, r.segments.get(column, {}).get(value))
        for column, values in c.segments.items()
        for value, seg in values.items()
    ]
    if rows:
        lines += [
            "",
            f"| segment | rows | {primary} candidate | {primary} {ref_name} | recall |",
            "|---|---|---|---|---|",
        ]
        for column, value, seg, ref in rows:
            ref_value = _fmt(primary, ref[primary]) if ref else "-"
            lines.append(
                f"| {column}={value} | {int(seg['rows']):,} | "
                f"{_fmt(primary, seg[primary])} | {ref_value} | {seg['recall']:.0%} |"
            )
    return "\n".join(lines) + "\n"
