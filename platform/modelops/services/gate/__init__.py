"""``modelops validate``: a candidate against what holds an environment, on the same rows.

lookup → join → score → judge → record, one module each:

- **lookup** (:mod:`.lookup`): the candidate and the reference (the environment's holder, or a
  prevalence-only model when the environment is empty) with the artifact hashes and
  feature-definition digests recorded at registration. A replaced artifact, or a reference whose
  features are no longer computed the way it was trained, is refused before anything is scored.
- **join** (:mod:`.join`): the holdout rows, point-in-time, through the same checks as training.
- **score** (:mod:`.score`): every model with its own registered code (the artifact holds
  ``build_features``).
- **judge** (:mod:`.judge`, :mod:`.statistics`, :mod:`.latency`, :mod:`.leakage`): paired
  bootstrap intervals decide the primary metric and the segments; latency is the median of
  interleaved measurements; leakage is each feature's power alone and without it, and the
  holdout ROC-AUC against the ceiling and the training-time validation scores.
- **record** (:mod:`.record`): the whole verdict goes to the ledger first, then to the run's
  artifacts and tags. The same inputs give the same verdict: a re-run returns the recorded one.

What the steps need from the settings (project, ledger, tracking, the opened feature store and
the project's feature service) is resolved once at the start into a :class:`GateContext`
(:mod:`.context`). :mod:`.validation` runs the steps in order.

Any error while evaluating is an :class:`EvaluationError` (exit 2), recorded in the ledger as a
failed validation: the gate fails closed, and an error after a pass withdraws that pass.
"""

from __future__ import annotations

from modelops.core.gate_rules import Evaluation
from modelops.services.gate.context import GateContext, open_context
from modelops.services.gate.errors import EvaluationError, GateFailedError
from modelops.services.gate.judge import rule_settings
from modelops.services.gate.latency import (
    LATENCY_FLOOR_SHARE,
    LATENCY_SAMPLES,
    LATENCY_SAMPLES_CONSTANT,
)
from modelops.services.gate.models import PREVALENCE, SCORE_CHUNK_ROWS, GateModel
from modelops.services.gate.score import SCORER_CHECK_ROWS, SCORER_TOLERANCE
from modelops.services.gate.statistics import LEAKAGE_SAMPLE
from modelops.services.gate.validation import validate

__all__ = [
    "LATENCY_FLOOR_SHARE",
    "LATENCY_SAMPLES",
    "LATENCY_SAMPLES_CONSTANT",
    "LEAKAGE_SAMPLE",
    "PREVALENCE",
    "SCORER_CHECK_ROWS",
    "SCORER_TOLERANCE",
    "SCORE_CHUNK_ROWS",
    "Evaluation",
    "EvaluationError",
    "GateContext",
    "GateFailedError",
    "GateModel",
    "open_context",
    "rule_settings",
    "validate",
]
