"""Leakage evidence and its rules: which feature is near-deterministic, which model is too good.

A strong honest feature and a leak both carry much of a model's signal, so "one feature carries
most of the importance" cannot tell them apart. What separates a leak is the shape of its
relation with the label: a label copy (even with some values flipped) or a column computed after
the event *decides* the label on most rows, where an honest feature only shifts the odds. The
rules here read evidence measured by the gate (:mod:`modelops.services.gate.leakage`):

* **alone**: the feature's own ROC-AUC on the holdout (numeric: oriented, the better of the two
  directions; categorical: each category scored by its label rate on the *training* rows, so a
  holdout row never scores itself). At or above :data:`NEAR_DETERMINISTIC_AUC` it fails.
* **decided rows**: the feature's values split into bins (numeric: up to 20 quantile bins of the
  holdout; categorical: the categories). A bin is *decided* when its class-balanced label rate
  (the rate after weighting both classes to the same size, so that rare events do not make every
  rate look like 0) is at most ``1 - DECIDED_RATE`` or at least :data:`DECIDED_RATE`. When the
  decided bins hold at least :data:`DECIDED_SHARE` ("most") of the class-balanced rows, the
  feature fails: that needs most positives *and* most negatives in decided bins, which a label
  copy with up to ~15 % of its values flipped does and an honest feature with a single-feature
  ROC-AUC up to ~0.97 does not (its decided share stays under 0.75 on binormal data).
* **without it**: the model's ROC-AUC on the permutation-importance sample with the column
  shuffled (drop-column without a retrain), recorded beside the above as evidence.
* **model level**: the holdout ROC-AUC above ``leakage_auc_ceiling``; or far above (more than
  :data:`FAR_ABOVE`) both the candidate's validation ROC-AUC at training and its baseline's.

``promotion.dominant_features`` acknowledges a feature by name: it exempts that feature from the
two univariate rules (alone and decided rows), never from the model-level rules nor from the
availability check (a data check of the join); the acknowledgement and the evidence it waived
are recorded in the verdict. Nothing here measures anything; each check that could not be made
is listed in ``checks_not_run`` and the gate fails closed on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

NEAR_DETERMINISTIC_AUC = 0.97
DECIDED_RATE = 0.85
DECIDED_SHARE = 0.9
FAR_ABOVE = 0.05
LEAK_HINT = "check that no feature is computed after the event"


@dataclass(frozen=True)
class FeatureEvidence:
    """One feature's relation with the label on the holdout, as the gate measured it.

    ``auc_alone``: ROC-AUC of the feature alone (NaN when not measured, ``reason`` says why);
    ``direction``: how it was oriented; ``decided_share``: the class-balanced share of rows whose
    bin decides the label; ``auc_without``/``auc_with``: the model's ROC-AUC on the
    permutation sample with this column shuffled / as is (NaN when not measured).
    """

    feature: str
    kind: str  # "numeric" or "categorical"
    auc_alone: float
    direction: str
    decided_share: float
    rows: int
    auc_with: float = math.nan
    auc_without: float = math.nan
    reason: str = ""

    @property
    def measured(self) -> bool:
        return not self.reason and math.isfinite(self.auc_alone)

    def near_deterministic(self) -> bool:
        return self.measured and (
            self.auc_alone >= NEAR_DETERMINISTIC_AUC or self.decided_share >= DECIDED_SHARE
        )

    def sentence(self) -> str:
        """What was measured, in one clause naming the feature."""
        said = (
            f"'{self.feature}' alone reaches ROC-AUC {self.auc_alone:.3f} ({self.direction}) and "
            f"decides the label on {self.decided_share:.0%} of the class-balanced rows "
            f"({self.rows:,} holdout rows)"
        )
        if math.isfinite(self.auc_with) and math.isfinite(self.auc_without):
            said += (
                f"; the model's ROC-AUC falls from {self.auc_with:.3f} to "
                f"{self.auc_without:.3f} without it"
            )
        return said


@dataclass(frozen=True)
class ModelEvidence:
    """The candidate's holdout ROC-AUC and what it is compared with.

    ``validation_auc``: the candidate's ROC-AUC on the validation window at training;
    ``baseline_auc``: its training baseline's (the logistic model trained beside it) on the same
    window; NaN when not recorded (``missing`` says which tag was absent).
    """

    holdout_auc: float
    ceiling: float
    validation_auc: float = math.nan
    baseline_auc: float = math.nan
    missing: str = ""


@dataclass(frozen=True)
class LeakageFinding:
    """What the leakage checks found.

    ``suspected`` is True when a check that ran found leakage; ``flagged`` names the features it
    found near-deterministic. ``checks_not_run`` lists checks that were wanted but could not be
    made, with the reason: the gate fails closed on them. ``acknowledged``: features exempted by
    ``promotion.dominant_features`` -> (reason given, what the evidence said).
    """

    suspected: bool
    checks_run: list[str]
    checks_not_run: list[str]
    detail: str
    flagged: list[str] = field(default_factory=list)
    acknowledged: dict[str, list[str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No leakage suspected and every check ran (fail closed)."""
        return not self.suspected and not self.checks_not_run


def _model_checks(
    model: ModelEvidence, run: list[str], not_run: list[str], findings: list[str]
) -> list[str]:
    """The model-level rules; returns the notes of those that passed."""
    notes: list[str] = []
    auc = model.holdout_auc
    ceiling = f"holdout ROC-AUC ceiling {model.ceiling:g}"
    if not math.isfinite(auc):
        not_run.append(f"{ceiling}: the holdout ROC-AUC is {auc}, not a number")
        return notes
    run.append(ceiling)
    if auc > model.ceiling:
        findings.append(f"holdout ROC-AUC {auc:.4f} is above the {model.ceiling:g} ceiling")
    else:
        notes.append(f"ROC-AUC {auc:.4f} is within the {model.ceiling:g} ceiling")
    gap = f"holdout ROC-AUC at most {FAR_ABOVE:g} above validation or baseline"
    if not (math.isfinite(model.validation_auc) and math.isfinite(model.baseline_auc)):
        not_run.append(f"{gap}: {model.missing or 'the training-time ROC-AUC is not recorded'}")
        return notes
    run.append(gap)
    above_valid = auc - model.validation_auc
    above_base = auc - model.baseline_auc
    said = (
        f"{above_valid:+.3f} vs the validation ROC-AUC {model.validation_auc:.3f} and "
        f"{above_base:+.3f} vs the baseline's {model.baseline_auc:.3f}"
    )
    if above_valid > FAR_ABOVE and above_base > FAR_ABOVE:
        findings.append(f"holdout ROC-AUC {auc:.4f} is far above both ({said})")
    else:
        notes.append(f"{said} at training")
    return notes


def assess_leakage(
    model: ModelEvidence,
    features: Sequence[FeatureEvidence],
    *,
    acknowledged: Mapping[str, str] | None = None,
) -> LeakageFinding:
    """Judge the evidence; ``detail`` is the one sentence a reviewer reads.

    Args:
        acknowledged: ``promotion.dominant_features`` (feature -> reason): those features are
            exempt from the univariate rules; a name that is not among ``features`` is said.
    """
    acknowledged = dict(acknowledged or {})
    run: list[str] = []
    not_run: list[str] = []
    findings: list[str] = []  # the features first: the column to look at
    model_findings: list[str] = []
    notes = _model_checks(model, run, not_run, model_findings)

    univariate = (
        f"no feature near-deterministic (alone ROC-AUC < {NEAR_DETERMINISTIC_AUC:g}, decided rows "
        f"< {DECIDED_SHARE:.0%})"
    )
    unmeasured = [f"'{e.feature}': {e.reason}" for e in features if not e.measured]
    if unmeasured:
        not_run.append(f"{univariate}: " + "; ".join(unmeasured))
    elif not features:
        not_run.append(f"{univariate}: no feature was measured")
    else:
        run.append(univariate)
    flagged: list[str] = []
    waived: dict[str, list[str]] = {}
    for e in features:
        if e.feature in acknowledged:
            waived[e.feature] = [acknowledged[e.feature], e.sentence() if e.measured else e.reason]
            continue
        if e.near_deterministic():
            flagged.append(e.feature)
            findings.append(e.sentence())
    strongest = max(
        (e for e in features if e.measured and e.feature not in acknowledged),
        key=lambda e: (e.auc_alone, e.feature),
        default=None,
    )
    if strongest is not None and not flagged:
        notes.append(f"the strongest feature {strongest.sentence()}")
    for name in sorted(set(acknowledged) - {e.feature for e in features}):
        notes.append(f"dominant_features names '{name}', which is not an input of this model")
    said_waived = (
        "acknowledged as legitimately dominant by promotion.dominant_features: "
        + ", ".join(f"'{name}' ({reason})" for name, (reason, _) in waived.items())
        if waived
        else ""
    )

    findings += model_findings
    if findings:
        detail = "; ".join(findings) + f" - {LEAK_HINT}"
        if not_run:
            detail += f" (also not run: {'; '.join(not_run)})"
    elif not_run:
        detail = "leakage check could not run (" + "; ".join(not_run) + ")"
    else:
        detail = "; ".join(notes)
    if said_waived:
        detail += f"; {said_waived}"
    return LeakageFinding(
        suspected=bool(findings),
        checks_run=run,
        checks_not_run=not_run,
        detail=detail + ".",
        flagged=flagged,
        acknowledged=waived,
    )
