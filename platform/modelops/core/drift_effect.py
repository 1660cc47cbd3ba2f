"""Which drifted features count toward a window's drifted share. Pure logic, no I/O.

Evidently's per-feature test says whether a feature's distribution in the window differs from
the reference. On a large window almost any difference is detected, and some features differ
by construction (counts over rolling windows compared with a reference spread over months:
weekly seasonality, account age). So a feature **counts as drifted** only when

1. it is not exempt (``monitoring.drift_exempt`` names it, with the reason it drifts by
   construction): it is still measured and reported, marked exempt, but never counted;
2. Evidently's test says it drifted; and
3. its **effect size** is at least ``monitoring.drift_min_effect``: the Wasserstein distance
   between the window's and the reference's values divided by the reference's standard
   deviation for a numerical feature, the Jensen-Shannon distance (natural logarithm, as
   Evidently's) between their category shares for a categorical one.

A feature whose test says it drifted but whose effect size could not be computed (no values on
one side) counts: a check that cannot be evaluated fails. The window's drifted share is the
counted features over the features that are not exempt; with every feature exempt it is 0 and
a note says that drift cannot trigger anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NUMERICAL_EFFECT = "wasserstein_norm"
"""Effect size of a numerical feature: Wasserstein distance over the reference's std."""
CATEGORICAL_EFFECT = "jensenshannon"
"""Effect size of a categorical feature: Jensen-Shannon distance of the category shares."""
DEFAULT_MIN_EFFECT = 0.12
"""``monitoring.drift_min_effect``'s default (see docs/monitoring.md for how it was chosen)."""


@dataclass(frozen=True)
class FeatureTest:
    """Evidently's verdict on one feature: its statistic and whether the test says drift."""

    score: float
    drifted: bool


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift as the rule reads it, and whether it counts."""

    score: float
    test_drifted: bool
    effect: float | None
    measure: str
    exempt: str | None
    counted: bool
    why: str


@dataclass(frozen=True)
class DriftCount:
    """The features that count (``counted``, in feature order), the share they make of the
    ``considered`` (not exempt) features, every feature's record, and notes."""

    features: dict[str, FeatureDrift]
    counted: tuple[str, ...]
    considered: int
    share: float
    notes: tuple[str, ...] = ()


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _judge(
    test: FeatureTest, effect: float | None, exempt: str | None, min_effect: float
) -> tuple[bool, str]:
    """Whether one feature counts, and why (or why not), in a few words."""
    if exempt is not None:
        return False, f"exempt: {exempt}"
    if not test.drifted:
        return False, "the test finds no drift"
    if effect is None or not math.isfinite(effect):
        return True, "the test finds drift and its effect size cannot be computed"
    if effect < min_effect:
        return False, f"effect {effect:.3g} below drift_min_effect {min_effect:g}"
    return True, f"the test finds drift with effect {effect:.3g} >= {min_effect:g}"


def count_drift(
    tests: Mapping[str, FeatureTest],
    effects: Mapping[str, float | None],
    measures: Mapping[str, str],
    exempt: Mapping[str, str],
    min_effect: float,
) -> DriftCount:
    """Apply this module's rule to every feature Evidently tested (in ``tests``' order).

    Args:
        tests: Evidently's statistic and verdict per feature.
        effects: effect size per feature (missing, None or NaN: not computable).
        measures: the effect measure per feature (:data:`NUMERICAL_EFFECT` or
            :data:`CATEGORICAL_EFFECT`).
        exempt: feature -> the reason it drifts by construction (``monitoring.drift_exempt``).
        min_effect: ``monitoring.drift_min_effect``.
    """
    if not math.isfinite(min_effect) or min_effect < 0:
        raise ValueError(f"min_effect must be a number >= 0, got {min_effect!r}")
    features: dict[str, FeatureDrift] = {}
    for name, test in tests.items():
        effect = effects.get(name)
        reason = exempt.get(name)
        counted, why = _judge(test, effect, reason, min_effect)
        features[name] = FeatureDrift(
            score=test.score,
            test_drifted=test.drifted,
            effect=effect if _finite(effect) else None,
            measure=measures.get(name, ""),
            exempt=reason,
            counted=counted,
            why=why,
        )
    counted_names = tuple(n for n, f in features.items() if f.counted)
    considered = sum(1 for f in features.values() if f.exempt is None)
    notes: list[str] = []
    unknown = sorted(set(exempt) - set(tests))
    if unknown:
        notes.append(
            f"drift_exempt names {', '.join(unknown)}, not measured in this window (no values)"
        )
    uncomputable = [n for n, f in features.items() if f.counted and f.effect is None]
    if uncomputable:
        notes.append(
            f"effect size of {', '.join(uncomputable)} could not be computed (no values on one "
            "side): counted as drifted since the test found drift"
        )
    if tests and considered == 0:
        notes.append("every measured feature is exempt from drift: drift cannot trigger retraining")
    share = len(counted_names) / considered if considered else 0.0
    return DriftCount(features, counted_names, considered, share, tuple(notes))


def drift_evidence(
    features: Mapping[str, FeatureDrift], drifted: Sequence[str], min_effect: float | None
) -> dict[str, Any]:
    """The effect sizes behind a drift trigger: the counted features', the minimum, and the
    exempt features (for a retraining's evidence)."""
    return {
        "min_effect": min_effect,
        "effects": {n: features[n].effect for n in drifted if n in features},
        "exempt": {n: f.exempt for n, f in features.items() if f.exempt is not None},
    }


def drift_sentence(
    features: Mapping[str, FeatureDrift],
    scores: Mapping[str, float],
    drifted: Sequence[str],
    share: float,
    drift_share: float,
    min_effect: float | None,
) -> str:
    """What drifted, as a retraining's reason states it: the counted features with their
    effect sizes, the share against its threshold, the minimum effect, and the exempt ones.
    Without per-feature records (``features`` empty): Evidently's verdicts alone."""
    if not features or min_effect is None:
        return (
            f"{len(drifted)} of {len(scores)} features drifted "
            f"({', '.join(drifted)}; share {share:.2f} >= drift_share {drift_share:g})"
        )
    considered = sum(1 for f in features.values() if f.exempt is None)
    effects = ", ".join(
        f"{n} {features[n].measure} {_shown(features[n].effect)}" for n in drifted if n in features
    )
    said = (
        f"{len(drifted)} of {considered} features drifted with effect >= drift_min_effect "
        f"{min_effect:g} ({effects}; share {share:.2f} >= drift_share {drift_share:g})"
    )
    exempt = [n for n, f in features.items() if f.exempt is not None]
    if exempt:
        said += f"; {len(exempt)} exempt ({', '.join(exempt)})"
    return said


def _shown(effect: float | None) -> str:
    return "n/a" if effect is None else f"{effect:.3g}"
