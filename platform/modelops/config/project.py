"""The ``project.yaml`` schema: what a project trains, on which data, judged by which costs."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelops.config.yaml_file import read_mapping
from modelops.core.errors import ConfigError, ProjectNotFoundError

PROJECT_FILE = "project.yaml"
Metric = Literal["roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    """A closed range of whole days, in UTC."""

    start: date
    end: date

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

    train: Window
    validation: Window
    holdout: Window

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

    false_negative: float = Field(gt=0)
    false_positive: float = Field(gt=0)
    currency: str = "EUR"


class ThresholdPolicy(_Strict):
    """How the decision threshold is chosen on the validation window.

    ``min_cost`` picks the score threshold that minimises business cost; ``fixed`` uses ``value``;
    ``max_alert_rate`` picks the lowest threshold that flags at most ``value`` of the decisions.
    """

    type: Literal["min_cost", "fixed", "max_alert_rate"] = "min_cost"
    value: float | None = Field(None, ge=0, le=1)

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

    positive: str
    review: str
    negative: str
    review_ratio: float = Field(0.5, gt=0, lt=1)


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
    max_feature_share: float | None = Field(
        0.6,
        gt=0,
        le=1,
        description="One feature carrying more of the permutation importance is suspected "
        "leakage; null turns the check off for a project with a legitimate dominant feature.",
    )
    verdict_max_age_days: float = Field(
        7, gt=0, description="A verdict older than this no longer allows a promotion."
    )
    floors: dict[str, float] = Field(
        default_factory=lambda: {"roc_auc": 0.6},
        description="Absolute minimums on the holdout, applied to every candidate.",
    )
    auto_promote_staging: bool = True
    approval_required: tuple[str, ...] = ("production",)

    @property
    def decision_margin(self) -> float:
        return self.max_drop if self.margin is None else self.margin

    @model_validator(mode="after")
    def _known_floor_metrics(self) -> Promotion:
        known = {
            "roc_auc",
            "pr_auc",
            "log_loss",
            "brier",
            "precision",
            "recall",
            "f1",
            "cost_per_1000",
            "ece",
        }
        unknown = sorted(set(self.floors) - known)
        if unknown:
            raise ValueError(f"floors: unknown metric(s) {unknown} (known: {sorted(known)})")
        return self


class Model(_Strict):
    """Hyper-parameters handed to the project's ``fit``."""

    params: dict[str, Any] = Field(default_factory=dict)


class ProjectSpec(_Strict):
    """A validated ``project.yaml``."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    registered_model: str
    entity: str
    feature_service: str
    label: LabelSource
    windows: Windows
    primary_metric: Metric = "pr_auc"
    costs: Costs
    threshold_policy: ThresholdPolicy = ThresholdPolicy()
    decisions: Decisions
    segments: tuple[str, ...] = ()
    data_checks: DataChecks = DataChecks()
    promotion: Promotion = Promotion()
    model: Model = Model()


class Project(BaseModel):
    """A project folder: its spec, its ``train.py`` and the hash of its ``project.yaml``."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    spec: ProjectSpec
    directory: Path
    spec_hash: str

    @property
    def spec_file(self) -> Path:
        return self.directory / PROJECT_FILE

    @property
    def train_module(self) -> Path:
        return self.directory / "train.py"


def available_projects(projects_dir: Path) -> list[str]:
    if not projects_dir.is_dir():
        return []
    return sorted(p.name for p in projects_dir.iterdir() if (p / PROJECT_FILE).is_file())


def _field_error(spec_file: Path, exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
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
    if not (directory / "train.py").is_file():
        raise ConfigError(f"{directory / 'train.py'}: missing; a project needs fit functions")
    return Project(spec=spec, directory=directory, spec_hash=hashlib.sha256(raw).hexdigest())
