"""The ``project.yaml`` schema: what a project trains, on which data, judged by which costs."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from modelops.config.monitoring import CategoricalDrift, Monitoring, NumericalDrift
from modelops.config.strict import Strict as _Strict
from modelops.config.yaml_file import read_mapping, unknown_field
from modelops.core.errors import ConfigError, ProjectNotFoundError
from modelops.core.metrics import FLOOR_METRICS

PROJECT_FILE = "project.yaml"
MODEL_FILE = "model.py"
DATA_FILE = "data.py"
Metric = Literal["roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1"]
"""``core.metrics.PRIMARY_METRICS`` as a type (a test keeps the two equal)."""
__all__ = ["CategoricalDrift", "Monitoring", "NumericalDrift"]  # re-exported: a section


class Window(_Strict):
    """A closed range of whole days, in UTC."""

    start: date = Field(description="First day of the window (YYYY-MM-DD), included.")
    end: date = Field(description="Last day of the window (YYYY-MM-DD), included.")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    @property
    def start_ts(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def end_ts(self) -> datetime:
        """Exclusive upper bound: midnight after ``end``."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"


class Windows(_Strict):
    """Time-ordered, non-overlapping windows: train < validation < holdout."""

    train: Window = Field(description="Rows the models are fitted on.")
    validation: Window = Field(
        description="Rows that choose the decision threshold (and stop the platform's LightGBM "
        "early); after train, before holdout."
    )
    holdout: Window = Field(
        description="Rows the holdout metrics and every gate are computed on; the latest window."
    )

    @model_validator(mode="after")
    def _no_overlap(self) -> Windows:
        if self.validation.start <= self.train.end:
            raise ValueError(
                f"validation starts {self.validation.start}, not after train ends {self.train.end}"
            )
        if self.holdout.start <= self.validation.end:
            raise ValueError(
                f"holdout starts {self.holdout.start}, not after validation ends "
                f"{self.validation.end}"
            )
        return self


class LabelSource(_Strict):
    """The table of labelled events, one row per prediction the model would have made."""

    table: str = Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$",
        description="Parquet table under feature_repo/data/, without extension: a plain name, "
        "no path separators.",
    )
    column: str = Field(
        description="Label column: 0/1, booleans, or two classes with 'positive' naming the costly "
        "one."
    )
    positive: str | int | bool | None = Field(
        None,
        description="The label value that means the costly event (e.g. 'Yes'); needed when the "
        "column holds anything other than 0/1 or booleans.",
    )
    timestamp: str = Field("event_timestamp", description="When the prediction is made.")
    available_at: str | None = Field(
        None, description="When the label became known; rows not yet known are left out."
    )
    request_columns: tuple[str, ...] = Field(
        (), description="Request-time fields passed to on-demand features."
    )
    event_name: str = Field("positives", description="What a 1 is, in reports: 'defaults'.")


class Costs(_Strict):
    """Business cost of one wrong decision, in the project's currency."""

    false_negative: float = Field(
        gt=0, description="Cost of missing a positive (the score was below the threshold)."
    )
    false_positive: float = Field(
        gt=0, description="Cost of flagging a negative (the score was at or above the threshold)."
    )
    currency: str | None = Field(
        None,
        min_length=1,
        description="Currency of both costs, shown beside every cost in reports (e.g. 'EUR'); "
        "null: costs are shown as plain numbers.",
    )

    def amount(self, value: float) -> str:
        """``value`` as reports show a cost: ``1,234 EUR``, or ``1,234`` without a currency."""
        return f"{value:,.0f} {self.currency}" if self.currency else f"{value:,.0f}"


PLACEHOLDER_COSTS = Costs(false_negative=1.0, false_positive=1.0)
"""What a project without ``costs`` is judged with: 1:1, no currency. A placeholder carries a
model to the lower environments with a warning; the last environment (production) refuses it."""


class ThresholdPolicy(_Strict):
    """How the decision threshold is chosen on the validation window.

    ``min_cost`` picks the score threshold that minimises business cost; ``fixed`` uses ``value``;
    ``max_alert_rate`` picks the lowest threshold that flags at most ``value`` of the decisions.
    """

    type: Literal["min_cost", "fixed", "max_alert_rate"] = Field(
        "min_cost",
        description="'min_cost': the threshold with the lowest business cost on the validation "
        "window; 'fixed': the score 'value'; 'max_alert_rate': the lowest threshold that flags at "
        "most 'value' of the decisions.",
    )
    value: float | None = Field(
        None,
        ge=0,
        le=1,
        description="The threshold ('fixed') or the largest share of decisions flagged "
        "('max_alert_rate'); required by both, unused by 'min_cost'.",
    )

    @model_validator(mode="after")
    def _value_when_needed(self) -> ThresholdPolicy:
        if self.type != "min_cost" and self.value is None:
            raise ValueError(f"threshold policy '{self.type}' needs a value between 0 and 1")
        return self


class Decisions(_Strict):
    """Names of the three actions a score leads to, most severe first.

    A score at or above the threshold gets ``positive``; at or above ``review_ratio`` times the
    threshold gets ``review``; anything lower gets ``negative``.
    """

    positive: str = Field(description="Action for a score at or above the threshold.")
    review: str = Field(
        description="Action for a score below the threshold but at or above review_ratio times it."
    )
    negative: str = Field(description="Action for any lower score.")
    review_ratio: float = Field(
        0.5, gt=0, lt=1, description="Where the review band starts, as a fraction of the threshold."
    )


class DataChecks(_Strict):
    """Checks on every point-in-time join, at training and inside every gate."""

    max_missing_share: float = Field(
        0.01,
        ge=0,
        le=1,
        description="A feature the join left empty on more rows than this (and than at training) "
        "stops the run.",
    )
    max_unavailable_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of joined rows allowed to use a feature row created after the "
        "prediction time (a point-in-time leak).",
    )


class Promotion(_Strict):
    """Rules the gate applies to a candidate; used by ``modelops validate`` and ``promote``.

    Differences are absolute (0.01 = one point of ROC-AUC); the primary metric's direction comes
    from the metric (lower is better for log loss and Brier).
    """

    decision: Literal["non_inferiority", "superiority"] = Field(
        "non_inferiority",
        description="How the primary metric decides: 'non_inferiority' passes when the 95% "
        "interval of the candidate's gain stays above -margin; 'superiority' when it lies above "
        "+margin.",
    )
    margin: float | None = Field(
        None,
        ge=0,
        description="Margin of the primary-metric decision; default: max_drop.",
    )
    max_drop: float = Field(
        0.01, ge=0, description="Largest tolerated drop in any other ranking metric."
    )
    max_segment_drop: float = Field(
        0.05, ge=0, description="Largest tolerated primary-metric drop in any single segment."
    )
    min_segment_rows: int = Field(100, ge=1, description="Segments smaller than this are skipped.")
    min_segment_positives: int = Field(
        30,
        ge=1,
        description="Segments with fewer positive labels are skipped: their ranking metrics are "
        "too noisy to compare.",
    )
    max_ece_increase: float = Field(0.02, ge=0, description="Calibration error may not rise more.")
    max_latency_ms: float = Field(50.0, gt=0, description="Median single-row latency ceiling.")
    max_latency_ratio: float = Field(3.0, gt=0, description="Latency vs the reference, at most.")
    leakage_auc_ceiling: float = Field(
        0.99, gt=0.5, le=1, description="A holdout ROC-AUC above this is suspected leakage."
    )
    dominant_features: dict[str, str] = Field(
        {},
        description="Features known to be legitimately dominant, each with the reason: "
        "exempt from the near-deterministic feature rule (alone ROC-AUC >= 0.97, or the label "
        "decided on most rows), never from the ROC-AUC ceiling, the comparison with validation "
        "and baseline, or the availability check. Recorded in the verdict.",
    )
    verdict_max_age_days: float = Field(
        7, gt=0, description="A verdict older than this no longer allows a promotion."
    )
    floors: dict[str, float] = Field(
        {"roc_auc": 0.6},
        description="Absolute minimums on the holdout, applied to every candidate.",
    )
    auto_promote_staging: bool = Field(
        True,
        description="A candidate that passes 'modelops validate --against staging' is promoted "
        "to staging at once.",
    )
    approval_required: tuple[str, ...] = Field(
        ("production",),
        description="Environments whose promotions need an approval; added to the platform's "
        "approval_required, never removing from it. Each must be a configured environment.",
    )

    @property
    def decision_margin(self) -> float:
        return self.max_drop if self.margin is None else self.margin

    @model_validator(mode="before")
    @classmethod
    def _removed_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_feature_share" in data:
            raise ValueError(
                "max_feature_share was removed: the gate now fails a feature only when it alone "
                "nearly decides the label; acknowledge a legitimately dominant feature with "
                "dominant_features: {name: reason} instead"
            )
        return data

    @model_validator(mode="after")
    def _reasons_given(self) -> Promotion:
        blank = sorted(k for k, v in self.dominant_features.items() if not str(v).strip())
        if blank:
            raise ValueError(f"dominant_features: give the reason for {blank}")
        return self

    @model_validator(mode="after")
    def _known_floor_metrics(self) -> Promotion:
        known = set(FLOOR_METRICS)
        unknown = sorted(set(self.floors) - known)
        if unknown:
            raise ValueError(f"floors: unknown metric(s) {unknown} (known: {sorted(known)})")
        return self


class Clip(_Strict):
    """Bounds a numeric feature is clipped to before scoring; null leaves that side open."""

    lower: float | None = Field(None, description="Smaller values become this; null: no bound.")
    upper: float | None = Field(None, description="Larger values become this; null: no bound.")

    @model_validator(mode="after")
    def _ordered(self) -> Clip:
        if self.lower is not None and self.upper is not None and self.upper < self.lower:
            raise ValueError(f"upper {self.upper} is below lower {self.lower}")
        return self


class Features(_Strict):
    """How the feature service's columns become model inputs (the platform's ``build_features``).

    A project whose ``model.py`` defines its own ``build_features`` ignores this section. Kept
    declarative so the serving scorer can apply it without pandas.
    """

    categorical: tuple[str, ...] = Field(
        (),
        description="Feature columns that hold categories: compared as strings, a missing value "
        "becomes 'unknown'. Every other feature must be numeric.",
    )
    clip: dict[str, Clip] = Field(
        {},
        description="Numeric features clipped to [lower, upper] so outliers cannot dominate.",
    )

    @model_validator(mode="after")
    def _disjoint(self) -> Features:
        both = sorted(set(self.categorical) & set(self.clip))
        if both:
            raise ValueError(f"clip: {both} are declared categorical; only numbers are clipped")
        return self


class Serving(_Strict):
    """How the project's prediction service answers (``modelops package`` / ``serve``)."""

    missing_features: Literal["error", "fallback"] = Field(
        "error",
        description="An entity the online store has no features for: 'error' answers 404 "
        "naming the entity; 'fallback' answers with fallback_decision, flagged "
        "(fallback: true) and counted. Never a score from defaults.",
    )
    fallback_decision: str | None = Field(
        None,
        description="The decision returned with missing_features: fallback (usually the "
        "review action); required then.",
    )
    max_batch: int = Field(
        1000, ge=1, le=100_000, description="Largest number of entities in one /predict_batch."
    )
    max_skew_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Largest share of entities whose online features may differ from the "
        "offline store's (modelops skew); package refuses above it.",
    )
    out_of_range: Literal["refuse", "flag"] = Field(
        "refuse",
        description="A request field or feature outside its training range (the training "
        "rows' [min, max], widened by range_margin): 'refuse' answers 422 naming it (request "
        "fields' ranges are in the OpenAPI schema); 'flag' scores it and names it in the "
        "answer's out_of_range and the prediction log. Versions trained without recorded "
        "ranges are served unchecked (package says so).",
    )
    range_margin: float = Field(
        0.1,
        ge=0,
        le=100,
        description="Share of a feature's training range added on each side before a value "
        "counts as outside it (0.1: 10% of max - min; a constant feature: of its magnitude).",
    )

    @model_validator(mode="after")
    def _fallback_named(self) -> Serving:
        if self.missing_features == "fallback" and not self.fallback_decision:
            raise ValueError("missing_features 'fallback' needs a fallback_decision")
        return self


class Model(_Strict):
    """Hyper-parameters handed to the project's ``fit`` (or the platform's LightGBM)."""

    params: dict[str, Any] = Field(
        {},
        description="LightGBM parameters; monotone_constraints may map feature names to -1/0/1.",
    )


class ProjectSpec(_Strict):
    """A validated ``project.yaml``: what a project trains, on which data, judged by which costs.

    The file is ``projects/<name>/project.yaml``; ``model.py`` (modelling functions) and
    ``data.py`` (an example-data generator) beside it are optional.
    """

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="The project's name: lower case, digits and underscores; must equal its "
        "folder's name.",
    )
    description: str = Field("", description="What the model predicts and how it is used.")
    registered_model: str = Field(
        description="Name of the model in the MLflow registry; its versions are the candidates."
    )
    entity: str = Field(
        description="Entity key column of the label table, the join key of the feature service "
        "(e.g. company_id)."
    )
    feature_service: str = Field(
        description="Feast feature service, defined in the feature repo, whose features the model "
        "is trained and served on."
    )
    label: LabelSource = Field(description="Where the labels come from.")
    windows: Windows = Field(description="Time windows of the labelled rows, by label.timestamp.")
    primary_metric: Metric = Field(
        "pr_auc",
        description="The holdout metric the gate decides on (promotion.decision); the others may "
        "drop by at most promotion.max_drop.",
    )
    costs: Costs | None = Field(
        None,
        description="Business cost of each kind of wrong decision, a business decision: "
        "omitted, placeholder 1:1 costs choose the threshold and judge the gate, with a warning; "
        "such a model may reach dev and staging but is refused promotion to production.",
    )
    threshold_policy: ThresholdPolicy = Field(
        ThresholdPolicy(), description="How the decision threshold is chosen."
    )
    decisions: Decisions = Field(description="Names of the actions a score leads to.")
    segments: tuple[str, ...] = Field(
        (),
        description="Columns (of the label table or the feature service) whose values are "
        "compared one by one: metrics per segment, and promotion.max_segment_drop in the gate.",
    )
    features: Features = Field(
        Features(), description="How the feature service's columns become model inputs."
    )
    data_checks: DataChecks = Field(DataChecks(), description="Checks on the point-in-time join.")
    promotion: Promotion = Field(Promotion(), description="Rules of the promotion gate.")
    serving: Serving = Field(Serving(), description="How the prediction service answers.")
    monitoring: Monitoring = Field(
        Monitoring(), description="What modelops monitor watches and how it reacts."
    )
    model: Model = Field(Model(), description="Model hyper-parameters.")

    @property
    def decision_costs(self) -> Costs:
        """The costs that choose thresholds and judge the gate: the project's, or the
        placeholder when it sets none (see :attr:`placeholder_costs`)."""
        return self.costs if self.costs is not None else PLACEHOLDER_COSTS

    @property
    def placeholder_costs(self) -> bool:
        """True when ``project.yaml`` sets no ``costs``: decisions rest on 1:1 placeholders."""
        return self.costs is None


class Project(BaseModel):
    """A project folder: its spec, its optional ``model.py`` and ``data.py``, and the hash of
    its ``project.yaml``."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    spec: ProjectSpec
    directory: Path
    spec_hash: str

    @property
    def spec_file(self) -> Path:
        return self.directory / PROJECT_FILE

    @property
    def model_module(self) -> Path | None:
        """``model.py`` when the project has one; otherwise the platform's defaults are used."""
        path = self.directory / MODEL_FILE
        return path if path.is_file() else None

    @property
    def data_module(self) -> Path | None:
        """``data.py`` (the example-data generator) when the project has one."""
        path = self.directory / DATA_FILE
        return path if path.is_file() else None


def available_projects(projects_dir: Path) -> list[str]:
    if not projects_dir.is_dir():
        return []
    return sorted(p.name for p in projects_dir.iterdir() if (p / PROJECT_FILE).is_file())


def _field_error(spec_file: Path, exc: ValidationError) -> ConfigError:
    """One line naming the file, the dotted field and the value; a misspelt key gets the
    closest field of its section (``did you mean 'max_drop'?``)."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return ConfigError(
            f"{spec_file}: field '{field}': {unknown_field(ProjectSpec, first['loc'])}"
        )
    value = first.get("input")
    shown = "" if isinstance(value, dict) or first["type"] == "missing" else f" (got {value!r})"
    message = first["msg"].removeprefix("Value error, ")
    return ConfigError(f"{spec_file}: field '{field}': {message}{shown}")


def load_project(projects_dir: Path, name: str) -> Project:
    """Load and validate ``<projects_dir>/<name>/project.yaml``.

    Raises:
        ProjectNotFoundError: no such project folder.
        ConfigError: the file is not valid YAML or breaks the schema; names file and field.
    """
    directory = projects_dir / name
    spec_file = directory / PROJECT_FILE
    if not spec_file.is_file():
        known = ", ".join(available_projects(projects_dir)) or "none"
        raise ProjectNotFoundError(f"unknown project '{name}': no {spec_file} (projects: {known})")
    raw = spec_file.read_bytes()
    data = read_mapping(spec_file)
    try:
        spec = ProjectSpec(**data)
    except ValidationError as exc:
        raise _field_error(spec_file, exc) from exc
    if spec.name != name:
        raise ConfigError(
            f"{spec_file}: field 'name': '{spec.name}' does not match its folder '{name}'"
        )
    if (directory / "train.py").is_file() and not (directory / MODEL_FILE).is_file():
        raise ConfigError(
            f"{directory / 'train.py'}: renamed; a project's modelling functions live in "
            f"{MODEL_FILE} (optional)"
        )
    return Project(spec=spec, directory=directory, spec_hash=hashlib.sha256(raw).hexdigest())


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``project.yaml``, from the pydantic model (``modelops project schema``,
    ``docs/project.schema.json``)."""
    schema = ProjectSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "modelops project.yaml"
    return schema
