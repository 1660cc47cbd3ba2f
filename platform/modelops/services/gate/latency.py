"""judge, the latency: the median of interleaved calls of both serving scorers, one feature row
(a dict, as the service receives it) at a time: the path a request takes, without pandas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelops.config.project import Promotion
from modelops.core.latency import LatencyComparison, interleaved_latency, judge_latency
from modelops.services.gate.models import GateModel

if TYPE_CHECKING:
    import pandas as pd

LATENCY_SAMPLES = 100  # interleaved pairs; their median ratio is stable well before this
LATENCY_SAMPLES_CONSTANT = 30
"""Timed calls when the reference is the prevalence constant: only the candidate's median is
judged, against the absolute ceiling, and no ratio has to be stable. The median of 30 calls
varies between repeated measurements about as much as that of 100 (the machine's load decides:
20 to 32 ms against 28 to 32 ms for a bundled LightGBM on a busy machine, 4 ms on a quiet one),
for a third of the time."""
LATENCY_FLOOR_SHARE = 0.1
"""Share of ``max_latency_ms`` under which the latency ratio is not judged."""


def measure_latency(
    frame: pd.DataFrame, candidate: GateModel, reference: GateModel
) -> LatencyComparison:
    """Both serving scorers timed on the first holdout rows, interleaved call by call."""
    samples = LATENCY_SAMPLES if reference.scorer is not None else LATENCY_SAMPLES_CONSTANT
    records = frame.iloc[: min(samples, len(frame))]
    rows = [{f: records[f].iat[i] for f in candidate.features} for i in range(len(records))]
    candidate_scorer = candidate.scorer
    assert candidate_scorer is not None  # loaded by lookup.load
    reference_scorer = reference.scorer
    if reference_scorer is not None:
        ref_rows = {
            id(r): {f: records[f].iat[i] for f in reference.features} for i, r in enumerate(rows)
        }

        def score_reference(row: Any) -> Any:
            return reference_scorer.score_one(ref_rows[id(row)])

    else:

        def score_reference(row: Any) -> Any:
            return reference.threshold_free_score

    return interleaved_latency(
        candidate_scorer.score_one,
        score_reference,
        rows,
        warmup=10 if reference_scorer is not None else 5,
        samples=samples,
    )


def latency_finding(
    latency: LatencyComparison, reference: GateModel, p: Promotion
) -> tuple[bool, str]:
    """The latency rule's input: the ceiling, and the ratio when the reference is a model."""
    if reference.model is not None:
        # A candidate within a tenth of the latency budget is never refused for being relatively
        # slower: on the serving scorer both models take microseconds, where a ratio measures
        # the machine's load more than the models.
        return judge_latency(
            latency,
            max_ms=p.max_latency_ms,
            max_ratio=p.max_latency_ratio,
            floor_ms=p.max_latency_ms * LATENCY_FLOOR_SHARE,
        )
    # a constant costs nothing: only the absolute ceiling applies
    return (
        latency.samples > 0 and latency.candidate_p50 <= p.max_latency_ms,
        f"median {latency.candidate_p50:.2f} ms per row (p95 {latency.candidate_p95:.2f}) "
        f"over {latency.samples} calls; limit {p.max_latency_ms:g} ms (no ratio: the "
        "reference is a constant)",
    )
