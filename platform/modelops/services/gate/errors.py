"""What the gate raises: it could not evaluate (exit 2), or the candidate failed (exit 1)."""

from __future__ import annotations

from modelops.core.errors import ModelopsError


class EvaluationError(ModelopsError):
    """The gate could not evaluate; never a pass."""


class GateFailedError(ModelopsError):
    """The candidate failed at least one rule."""

    exit_code = 1
