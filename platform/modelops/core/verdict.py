"""The verdict: what the gate decided, on which inputs, and the evidence behind it.

A verdict is recorded whole in the ledger, so a re-run with the same inputs returns it instead of
measuring again (a gate cannot be retried until it passes), and promotion reads it from the
tamper-evident chain, not from tags anyone can edit.
"""

from __future__ import annotations

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
        )
