"""The version a rollback would return to, scored on the serving version's own matured,
labelled predictions: both versions' registered models (artifacts verified) score the
features the service logged with each prediction, and
:func:`modelops.core.live_judgement.compare_on_same_rows` says whether the previous one is
better. Anything that keeps the comparison from being like for like (a version that cannot
be loaded, features the log does not hold, logged features that do not reproduce the logged
scores) makes it *not evaluated*: the rollback is then not decided, and the run alerts."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core.errors import ModelopsError
from modelops.core.live_judgement import SameRows, compare_on_same_rows, not_compared
from modelops.core.metrics import CostModel
from modelops.integrations import mlflow as mlflow_io
from modelops.services.gate.models import GateModel, registered_model
from modelops.services.monitor import window

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SCORE_TOLERANCE = 1e-6
"""How far the serving version's scores, recomputed from its logged features, may be from the
scores it logged: further, and the logged features are not what it scored."""


def compare_previous(
    settings: Settings,
    client: Any,
    project: Project,
    environment: str,
    served: pd.DataFrame,
    current: str,
    previous: str,
) -> SameRows:
    """``previous`` against ``current`` on ``served`` (the current version's labelled rows,
    with ``request_id``, ``logged_at``, ``score`` and ``label``)."""
    spec = project.spec
    name = spec.registered_model
    try:
        models = [
            registered_model("served", mlflow_io.get_version(client, name, current)),
            registered_model("previous", mlflow_io.get_version(client, name, previous)),
        ]
    except ModelopsError as exc:
        return not_compared(previous, current, f"v{previous} not compared: {exc}")
    served_model, previous_model = models
    costs = CostModel(spec.decision_costs.false_negative, spec.decision_costs.false_positive)
    compare = _comparison(spec.primary_metric, served, served_model, previous_model, costs)
    sha = served_model.artifact_sha256
    if sha and sha == previous_model.artifact_sha256:
        return compare(None, None, True)
    try:
        frame = _logged_features(settings, spec.name, environment, served, models)
        _load(models, name)
    except ModelopsError as exc:
        return not_compared(previous, current, f"v{previous} not compared: {exc}")
    rescored = served_model.scores(frame)
    differs = float(abs(rescored - frame["score"].to_numpy(dtype="float64")).max())
    if differs > SCORE_TOLERANCE:
        return not_compared(
            previous,
            current,
            f"v{previous} not compared: v{current}'s logged features do not reproduce its "
            f"logged scores (largest difference {differs:.3g}); the comparison would not be "
            "like for like",
        )
    return compare(rescored, previous_model.scores(frame), False)


def _comparison(
    metric: str,
    served: pd.DataFrame,
    current: GateModel,
    previous: GateModel,
    costs: CostModel,
) -> Any:
    labels = served["label"].to_numpy()

    def compare(current_scores: Any, previous_scores: Any, identical: bool) -> SameRows:
        if identical:
            current_scores = previous_scores = served["score"].to_numpy(dtype="float64")
        return compare_on_same_rows(
            metric,
            labels,
            current_scores,
            previous_scores,
            current=(current.version, current.threshold),
            previous=(previous.version, previous.threshold),
            costs=costs,
            identical=identical,
        )

    return compare


def _load(models: list[GateModel], model_name: str) -> None:
    from modelops.services.gate.lookup import load

    load(models, model_name)


def _logged_features(
    settings: Settings,
    project: str,
    environment: str,
    served: pd.DataFrame,
    models: list[GateModel],
) -> pd.DataFrame:
    """``served`` with the features every model needs, as the service logged them (the
    estimate of a rollback target uses it too, on predictions without labels).

    Raises:
        ModelopsError: rows without a request id, or features the log does not hold.
    """
    import pandas as pd

    from modelops.serving.log_reader import decode_json

    if "request_id" not in served.columns or served["request_id"].isna().any():
        raise ModelopsError("the labelled predictions carry no request ids to find features by")
    start = served["logged_at"].min().to_pydatetime()
    end = served["logged_at"].max().to_pydatetime() + timedelta(microseconds=1)
    table = window.read_log(
        settings, project, environment, start, end, columns=("request_id", "features")
    )
    if "features" not in table.column_names or "request_id" not in table.column_names:
        raise ModelopsError("the prediction log holds no features")
    logged = decode_json(table["features"]).to_pandas()
    logged["request_id"] = table["request_id"].to_pandas().astype("string")
    logged = logged.drop_duplicates("request_id")
    needed = sorted({f for m in models for f in m.features})
    absent = [f for f in needed if f not in logged.columns]
    if absent:
        raise ModelopsError(f"the prediction log holds no values of {', '.join(absent)}")
    keys = served[[c for c in ("request_id", "score", "label") if c in served.columns]]
    keys = keys.astype({"request_id": "string"})
    frame = keys.merge(logged[["request_id", *needed]], on="request_id", how="left")
    if len(frame) != len(served) or frame[needed].isna().all(axis=1).any():
        raise ModelopsError("some labelled predictions have no logged features")
    return pd.DataFrame(frame)


logged_features = _logged_features
load_models = _load
