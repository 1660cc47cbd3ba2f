"""What a simulation raises when it cannot run, or when the gate refuses the drill's version."""

from __future__ import annotations

from modelops.core.errors import ModelopsError


class SimulationError(ModelopsError):
    """A simulation cannot run: no generator, no data to continue, a period that overlaps."""


class DrillRefusedError(ModelopsError):
    """The gate (or the promotion rules) refused the drill's version: nothing was bypassed."""
