"""The verdict: what the gate decided, on which inputs, and the evidence behind it.

A verdict is recorded whole in the ledger, so a re-run with the same inputs returns it instead of
measuring again (a gate cannot be retried until it passes), and promotion reads it from the
tamper-evident chain, not from tags anyone can edit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelops.core.fingerprint import DatasetFingerprint
from modelops.core.gate_rules import Evaluation, Rule
from modelops.core.metrics import COMPARED_METRICS


def inputs_key(parts: dict[str, Any]) -> str:
    """SHA-256 of everything a verdict depends on (canonical JSON)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def judgement_key(inputs: dict[str, Any]) -> str | None:
    """What a judgement depends on wherever it is recorded: the inputs without the environment,
    the reference named by version and artifact (its role is its environment's name). Two
    environments with the same key would measure the same thing: the same candidate, the same
    reference version, the same holdout, project.yaml and feature definitions.

    Every other input counts as it is. None (never reuse) when the inputs name no environment
    or the reference is not ``[role, version, artifact]``: what cannot be compared is not the
    same.
    """
    if "environment" not in inputs:
        return None
    reference = inputs.get("reference")
    if not isinstance(reference, list | tuple) or len(reference) != 3:
        return None
    parts = {k: v for k, v in inputs.items() if k != "environment"}
    parts["reference"] = list(reference[1:])
    return inputs_key(parts)


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None (the ledger's canonical JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True)
class Verdict:
    id: str
    project: str
    model_name: str
    environment: str
    candidate: Evaluation
    reference: Evaluation
    rules: list[Rule]
    passed: bool
    decisions_differ: float
    holdout: DatasetFingerprint
    as_of: str
    created_at: str
    actor: str
    inputs_key: str
    inputs: dict[str, Any]
    evidence: dict[str, Any] = field(default_factory=dict)
    #: What a reviewer must know although every rule may pass (placeholder costs), one line each.
    warnings: list[str] = field(default_factory=list)

    @property
    def failed_rules(self) -> list[str]:
        return [r.name for r in self.rules if not r.passed]

    def deltas(self) -> dict[str, float]:
        """Candidate minus reference for every compared metric both have."""
        return {
            m: self.candidate.metrics[m] - self.reference.metrics[m]
            for m in COMPARED_METRICS
            if m in self.candidate.metrics and m in self.reference.metrics
        }

    def expires_at(self, max_age_days: float) -> datetime:
        return datetime.fromisoformat(self.created_at) + timedelta(days=max_age_days)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["deltas"] = self.deltas()
        return dict(_clean(data))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        def evaluation(raw: dict[str, Any]) -> Evaluation:
            values = dict(raw)
            values["metrics"] = {
                k: math.nan if v is None else float(v) for k, v in values["metrics"].items()
            }
            values["segments"] = {
                column: {
                    value: {k: math.nan if v is None else float(v) for k, v in seg.items()}
                    for value, seg in segs.items()
                }
                for column, segs in values["segments"].items()
            }
            for key in ("latency_ms_p50", "latency_ms_p95"):
                values[key] = math.nan if values.get(key) is None else float(values[key])
            return Evaluation(**values)

        return cls(
            id=data["id"],
            project=data["project"],
            model_name=data["model_name"],
            environment=data["environment"],
            candidate=evaluation(data["candidate"]),
            reference=evaluation(data["reference"]),
            rules=[Rule(**r) for r in data["rules"]],
            passed=bool(data["passed"]),
            decisions_differ=float(data["decisions_differ"]),
            holdout=DatasetFingerprint(**data["holdout"]),
            as_of=data["as_of"],
            created_at=data["created_at"],
            actor=data["actor"],
            inputs_key=data["inputs_key"],
            inputs=data["inputs"],
            evidence=data.get("evidence", {}),
            warnings=list(data.get("warnings", [])),
        )


def reused_elsewhere(
    verdict: Verdict,
    *,
    environment: str,
    inputs: dict[str, Any],
    new_id: str,
    actor: str,
    source_seq: int,
) -> Verdict:
    """``verdict`` (recorded for another environment, at ledger entry ``source_seq``) as the
    verdict of ``environment`` for ``inputs``: the same measurements and rules, a new id, and
    ``evidence.reused_from`` naming where it was measured. Its ``created_at`` stays the
    measurement's, so it expires when the original does.

    Raises:
        ValueError: the two inputs do not have the same :func:`judgement_key`.
    """
    theirs, ours = judgement_key(verdict.inputs), judgement_key(inputs)
    if theirs is None or theirs != ours:
        raise ValueError(f"verdict {verdict.id} judged other inputs; it cannot be reused")
    reference = verdict.reference
    if reference.role == verdict.environment:  # the holder of that environment, named by it
        reference = dataclasses.replace(reference, role=environment)
    return dataclasses.replace(
        verdict,
        id=new_id,
        environment=environment,
        reference=reference,
        actor=actor,
        inputs=dict(inputs),
        inputs_key=inputs_key(inputs),
        evidence={
            **verdict.evidence,
            "reused_from": {
                "verdict_id": verdict.id,
                "environment": verdict.environment,
                "seq": source_seq,
                "actor": verdict.actor,
            },
        },
    )
