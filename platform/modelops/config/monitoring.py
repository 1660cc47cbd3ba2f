"""The ``monitoring`` section of ``project.yaml`` (docs/monitoring.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from modelops.config.strict import Strict as _Strict
from modelops.core.drift_effect import DEFAULT_MIN_EFFECT

_CHUNK = r"^[1-9][0-9]*(h|D)$"


class Estimation(_Strict):
    """Estimated performance of the serving version before its labels arrive
    (docs/monitoring.md, "Estimated performance"): its scores, calibrated on its holdout rows,
    give the expected confusion matrix and cost per 1,000 decisions of every chunk of the
    look-back, "expected performance if P(y|x) is unchanged"."""

    enabled: bool = Field(
        True,
        description="Estimate the serving version's cost per 1,000 and ROC-AUC per chunk of "
        "its logged predictions from its holdout-calibrated scores.",
    )
    chunk: str = Field(
        "1D",
        pattern=_CHUNK,
        description="Length of one chunk of logged predictions: a whole number of hours ('6h') "
        "or days ('1D').",
    )
    z: float = Field(
        1.96,
        gt=0,
        le=5,
        description="Width of the sampling band in standard errors (1.96: about 95 %), for the "
        "estimate's band and for the realised-against-estimated check.",
    )
    min_rows_per_chunk: int = Field(
        200,
        ge=1,
        description="Chunks with fewer logged predictions are reported but not plotted as "
        "judged; the look-back window needs as many to be judged at all.",
    )
    act_in_probation: bool = Field(
        True,
        description="On probation, roll back before any label arrives when the look-back "
        "window's estimated cost per 1,000 is worse than the gate-time cost with the band "
        "excluding it (and the previous version's estimate on the same logged rows is "
        "better); false: report only.",
    )


NumericalDrift = Literal["wasserstein", "psi", "jensenshannon", "hellinger", "ks"]
CategoricalDrift = Literal["jensenshannon", "psi", "hellinger", "chisquare"]


class Monitoring(_Strict):
    """What ``modelops monitor`` watches in production and how it reacts (docs/monitoring.md).

    Every run reads the prediction log of the last ``window_hours``, compares it with the serving
    version's training and holdout rows, joins the labels known by then, and maps what it finds
    to at most one action: a rollback, a retraining through the gate, or a proposal; bad data
    only raises an alert and blocks retraining. ``cooldown_hours`` makes one incident one action.
    """

    window_hours: float = Field(
        24,
        gt=0,
        le=24 * 90,
        description="Prediction-log window of one run (drift and data quality), ending at the "
        "run's time.",
    )
    performance_window_days: float = Field(
        30,
        gt=0,
        description="How far back logged predictions are joined with the labels known by the "
        "run's time; must exceed the labels' delay to measure anything.",
    )
    label_maturity_days: float | None = Field(
        None,
        ge=0,
        description="Predictions younger than this are not judged: their labels are still "
        "arriving (positives often confirmed early, negatives only when the delay has passed), "
        "and the labels known so far over-count one class. null: the longest delay "
        "among the labels known by the run (label.available_at - label.timestamp; 0 without "
        "available_at). Must stay below performance_window_days.",
    )
    label_join_tolerance_seconds: float = Field(
        1.0,
        ge=0,
        description="A logged prediction gets the label of the same entity whose label.timestamp "
        "is at most this far from the logged time.",
    )
    min_labels: int = Field(
        200,
        ge=1,
        description="Labelled predictions needed before performance is judged (rollback, decay, "
        "shadow).",
    )
    min_positives: int = Field(
        20,
        ge=1,
        description="Positive labels (and as many negatives) needed among them: ranking metrics "
        "are noise below that.",
    )
    probation_days: float = Field(
        30,
        ge=0,
        description="After a promotion (not a rollback), how long the new version is on "
        "probation, from its first logged prediction; 0 turns automatic rollback off.",
    )
    max_drop_in_probation: float = Field(
        0.05,
        ge=0,
        description="X: on probation, a primary-metric drop larger than this below its gate-time "
        "value, or below the previous version's monitored value, rolls back.",
    )
    max_decay: float = Field(
        0.05,
        ge=0,
        description="After probation, a primary-metric drop larger than this below the "
        "gate-time value triggers retraining.",
    )
    drift_share: float = Field(
        0.3,
        gt=0,
        le=1,
        description="D: a window drifts when at least this share of the model's features drift.",
    )
    drift_windows: int = Field(
        3,
        ge=1,
        description="K: consecutive drifting windows (runs of the same version, distinct "
        "windows) that trigger retraining.",
    )
    drift_method: NumericalDrift = Field(
        "wasserstein",
        description="Evidently drift method for numerical features and the score: "
        "'wasserstein' (distance normed by the reference's std), 'psi', 'jensenshannon', "
        "'hellinger' (distances) or 'ks' (p-value).",
    )
    drift_method_categorical: CategoricalDrift = Field(
        "jensenshannon",
        description="Evidently drift method for categorical features: 'jensenshannon', 'psi', "
        "'hellinger' (distances) or 'chisquare' (p-value).",
    )
    drift_threshold: float | None = Field(
        None,
        gt=0,
        description="A feature drifts at a distance at or above this (a p-value below it); null: "
        "each method's Evidently default (0.1 for distances and PSI, 0.05 for p-values).",
    )
    drift_min_effect: float = Field(
        DEFAULT_MIN_EFFECT,
        ge=0,
        description="A feature whose test finds drift counts toward drift_share only when its "
        "effect size reaches this: the Wasserstein distance divided by the reference's standard "
        "deviation (numerical), the Jensen-Shannon distance of the category shares, natural "
        "logarithm (categorical).",
    )
    drift_exempt: dict[str, str] = Field(
        {},
        description="Features that drift by construction (e.g. counts over rolling windows "
        "compared with a reference spread over months), each with the reason: measured and "
        "reported, never counted toward drift_share.",
    )
    drift_sample_rows: int | None = Field(
        20_000,
        ge=1_000,
        description="Rows of the window (and of the reference) the Evidently drift report "
        "uses, drawn uniformly at random; null: every row. Data quality and performance always "
        "use every row.",
    )
    reference_rows: int = Field(
        100_000,
        ge=1_000,
        description="Training and holdout rows kept per version as the drift reference (a "
        "seeded uniform sample, cached under the state directory).",
    )
    max_missing_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="A feature missing on a larger share of the window's predictions (and more "
        "often than in the reference) is a data-quality failure.",
    )
    max_unseen_share: float = Field(
        0.02,
        ge=0,
        le=1,
        description="A categorical feature whose values were never seen in the reference on a "
        "larger share of the window is a data-quality failure.",
    )
    max_out_of_range_share: float = Field(
        0.02,
        ge=0,
        le=1,
        description="A numerical feature outside the reference's [min, max] on a larger share "
        "of the window is a data-quality failure.",
    )
    cooldown_hours: float = Field(
        24,
        ge=0,
        description="After an action, the same kind of action (rollback, retrain, propose, "
        "alert) is held for this long: one incident, one action. Measured on the runs' data "
        "time (--as-of; the wall clock in production), so simulated periods keep it.",
    )
    auto_rollback: bool = Field(
        True,
        description="Roll back by itself on probation; false: raise an alert instead.",
    )
    auto_retrain: bool = Field(
        True,
        description="Retrain by itself on sustained drift or decay; false: raise an alert instead.",
    )
    auto_promote_production: bool = Field(
        False,
        description="A retrained candidate that passes the gate against production is promoted "
        "there by the monitor; only where production needs no approval, otherwise it waits "
        "as a pending promotion.",
    )

    estimation: Estimation = Field(
        default_factory=Estimation,
        description="Estimated performance before the labels arrive, and what the monitor does "
        'with it (docs/monitoring.md, "Estimated performance").',
    )

    @field_validator("drift_exempt")
    @classmethod
    def _exemptions_explained(cls, exempt: dict[str, str]) -> dict[str, str]:
        for name, reason in exempt.items():
            if not name.strip():
                raise ValueError("an empty feature name")
            if not reason.strip():
                raise ValueError(f"'{name}' needs a reason (why it drifts by construction)")
        return exempt

    @model_validator(mode="after")
    def _judgeable(self) -> Monitoring:
        if (
            self.label_maturity_days is not None
            and self.label_maturity_days >= self.performance_window_days
        ):
            raise ValueError(
                f"label_maturity_days {self.label_maturity_days:g} must be below "
                f"performance_window_days {self.performance_window_days:g}: no prediction could "
                "ever be judged"
            )
        return self
