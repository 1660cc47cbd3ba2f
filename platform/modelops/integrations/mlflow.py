"""MLflow: experiment runs, the model registry, aliases and version tags."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from modelops.core import registration
from modelops.core import tags as tag_keys
from modelops.core.errors import RegistryError, ServiceUnavailableError
from modelops.core.redact import redact

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


_TRACKING_VARIABLE = "MLFLOW_TRACKING_URI"
_REGISTRY_VARIABLE = "MLFLOW_REGISTRY_URI"
_S3_ENDPOINT_VARIABLE = "MLFLOW_S3_ENDPOINT_URL"


@dataclass(frozen=True)
class Tracking:
    """Where runs and registered models live."""

    tracking_uri: str
    registry_uri: str
    artifact_location: str | None = None
    s3_endpoint_url: str | None = None  # an S3-compatible store's endpoint (MinIO, moto...)


@dataclass
class RunRecord:
    """Everything a training run logs; filled by the train service, written by ``log_run``."""

    experiment: str
    run_name: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    json_artifacts: dict[str, Any] = field(default_factory=dict)
    datasets: list[tuple[pd.DataFrame, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    model_uri: str
    model_id: str | None = None


def check_reachable(tracking: Tracking, timeout: float = 3.0) -> None:
    """Fail fast, in one line, when a tracking server is configured but not answering."""
    uri = tracking.tracking_uri
    if not uri.startswith(("http://", "https://")):
        return
    import httpx

    # httpx sends a URI's user:password@ as basic auth, as MLflow's own client (requests) does;
    # a server that answers at all is reachable, whatever the status.
    try:
        httpx.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except (httpx.HTTPError, OSError, ValueError) as exc:
        shown = redact(uri)
        raise ServiceUnavailableError(
            f"MLflow tracking server {shown} unreachable: {redact(str(exc))}"
        ) from exc


@contextlib.contextmanager
def session(tracking: Tracking) -> Iterator[MlflowClient]:
    """Point MLflow at ``tracking`` for the duration of the block and yield a client."""
    import os

    import mlflow

    check_reachable(tracking)
    # MLflow mirrors explicitly set URIs in these variables; restoring them (rather than the
    # resolved defaults, e.g. ``sqlite:///mlflow.db`` in the working directory) leaves the
    # process exactly as it was.
    previous = {name: os.environ.get(name) for name in (_TRACKING_VARIABLE, _REGISTRY_VARIABLE)}
    endpoint = os.environ.get(_S3_ENDPOINT_VARIABLE)
    if tracking.s3_endpoint_url:  # the setting wins over the variable, for the block only
        os.environ[_S3_ENDPOINT_VARIABLE] = tracking.s3_endpoint_url
    mlflow.set_tracking_uri(tracking.tracking_uri)
    mlflow.set_registry_uri(tracking.registry_uri)
    try:
        yield mlflow.MlflowClient(tracking.tracking_uri, tracking.registry_uri)
    finally:
        if tracking.s3_endpoint_url:
            if endpoint is None:
                os.environ.pop(_S3_ENDPOINT_VARIABLE, None)
            else:
                os.environ[_S3_ENDPOINT_VARIABLE] = endpoint
        mlflow.set_tracking_uri(previous[_TRACKING_VARIABLE])  # type: ignore[arg-type]  # None unsets
        registry = previous[_REGISTRY_VARIABLE]
        if registry is None:
            mlflow.set_registry_uri(None)  # type: ignore[arg-type]  # None resets it
            os.environ.pop(_REGISTRY_VARIABLE, None)
        else:
            mlflow.set_registry_uri(registry)


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_location))


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}


def log_run(
    client: MlflowClient,
    tracking: Tracking,
    record: RunRecord,
    model: Any,
    input_example: pd.DataFrame,
) -> LoggedModel:
    """Log one training run with its sklearn-compatible model (``predict`` gives probabilities)."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    experiment_id = ensure_experiment(client, record.experiment, tracking.artifact_location)
    with mlflow.start_run(experiment_id=experiment_id, run_name=record.run_name) as run:
        mlflow.set_tags(record.tags)
        mlflow.log_params({k: str(v)[:6000] for k, v in record.params.items()})
        mlflow.log_metrics(_finite(record.metrics))
        for name, payload in record.json_artifacts.items():
            mlflow.log_dict(payload, name)
        for frame, context, source in record.datasets:
            dataset = from_pandas(frame, source=source, name=context)
            mlflow.log_input(dataset, context=context)
        example = input_example.head(5)
        signature = infer_signature(example, model.predict_proba(example)[:, 1])
        info = _log_sklearn_by_value(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            serialization_format="cloudpickle",
        )
        return LoggedModel(run_id=run.info.run_id, model_uri=info.model_uri, model_id=info.model_id)


def _log_sklearn_by_value(model: Any, **kwargs: Any) -> Any:
    """``mlflow.sklearn.log_model`` with the platform's feature step pickled by value.

    A registered artifact must score the same after the platform is upgraded, so the class that
    turns feature rows into model inputs travels inside the pickle rather than by reference.
    """
    import cloudpickle
    import mlflow.sklearn

    from modelops.core import features

    cloudpickle.register_pickle_by_value(features)
    try:
        return mlflow.sklearn.log_model(model, **kwargs)
    finally:
        cloudpickle.unregister_pickle_by_value(features)


def register_version(
    client: MlflowClient,
    model_name: str,
    logged: LoggedModel,
    tags: Mapping[str, str],
    description: str,
) -> ModelVersion:
    """Create a new version of ``model_name`` (and the registered model on first use)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException:
        with contextlib.suppress(MlflowException):
            client.create_registered_model(model_name, tags={tag_keys.MANAGED: "true"})
    version = client.create_model_version(
        model_name,
        source=logged.model_uri,
        run_id=logged.run_id,
        tags={k: str(v) for k, v in tags.items()},
        description=description,
        model_id=logged.model_id,
    )
    return version


def list_versions(client: MlflowClient, model_name: str) -> list[ModelVersion]:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException as exc:
        raise RegistryError(f"no registered model '{model_name}'; train it first") from exc
    versions = client.search_model_versions(f"name = '{model_name}'", max_results=10_000)
    return sorted(versions, key=lambda v: int(v.version))


def get_version(client: MlflowClient, model_name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"model '{model_name}' has no version '{version}'") from exc


def aliases(client: MlflowClient, model_name: str) -> dict[str, str]:
    """``{alias: version}`` of a registered model.

    Raises:
        RegistryError: no registered model of that name.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise RegistryError(f"no registered model '{model_name}'; train it first") from exc
    return {str(k): str(v) for k, v in model.aliases.items()}


def run_metrics(client: MlflowClient, run_id: str) -> dict[str, float]:
    return dict(client.get_run(run_id).data.metrics)


def load_json_artifact(client: MlflowClient, run_id: str, name: str) -> Any:
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name)
    with open(path) as handle:
        return json.load(handle)


def _tree_sha256(folder: Any) -> str:
    from modelops.core.fingerprint import model_folder_sha256

    return model_folder_sha256(folder)


def artifact_sha256(model_uri: str) -> str:
    """SHA-256 of the model's stored files (weights, MLmodel, environment files)."""
    import mlflow

    return _tree_sha256(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))


def load_model(model_uri: str) -> Any:
    """The sklearn-compatible model behind a ``models:/`` or ``runs:/`` URI, unverified."""
    import mlflow

    return mlflow.sklearn.load_model(model_uri)


def load_verified_model(model_uri: str, expected_sha256: str | None, label: str) -> tuple[Any, int]:
    """Download the model, check its files against the SHA-256 recorded at registration, and
    load exactly the files that were checked; returns the model and its size in bytes (the
    same files, so nothing is downloaded twice).

    Raises:
        RegistryError: no hash was recorded, or the files do not match it; nothing is loaded.
    """
    from pathlib import Path

    import mlflow

    if not expected_sha256:
        raise RegistryError(
            f"{label} has no recorded artifact SHA-256 (tag '{tag_keys.ARTIFACT_SHA256}'); "
            "register it again with 'modelops train'"
        )
    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri)
    actual = _tree_sha256(local)
    if actual != expected_sha256:
        raise RegistryError(
            f"{label}: artifact does not match its registration: sha256 {actual} found, "
            f"{expected_sha256} recorded; refusing to score a replaced or corrupted model"
        )
    size = sum(f.stat().st_size for f in Path(local).rglob("*") if f.is_file())
    return mlflow.sklearn.load_model(local), size


def input_names(model_uri: str) -> list[str]:
    """Column names of the model signature's inputs."""
    from mlflow.models import get_model_info

    schema = get_model_info(model_uri).signature
    return [] if schema is None else list(schema.inputs.input_names())


def set_version_tags(
    client: MlflowClient, model_name: str, version: str, tags: Mapping[str, str]
) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, str(value))


def log_run_artifacts(
    client: MlflowClient, run_id: str, folder: str, files: Mapping[str, str]
) -> None:
    """Write text files under ``folder`` in a finished run's artifacts."""
    for name, text in files.items():
        client.log_text(run_id, text, f"{folder}/{name}")


def set_alias(client: MlflowClient, model_name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(model_name, alias, version)


def delete_alias(client: MlflowClient, model_name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):
        client.delete_registered_model_alias(model_name, alias)


_HOST_TAG, _PID_TAG = tag_keys.HOST, tag_keys.PID


def process_tags() -> dict[str, str]:
    """Which process logs a run: lets a later run tell whether it is still alive."""
    import os
    import socket

    return {_HOST_TAG: socket.gethostname(), _PID_TAG: str(os.getpid())}


def _dead_here(tags: Mapping[str, str]) -> bool:
    """True when the tagged process ran on this host and no longer exists."""
    import os
    import socket

    if tags.get(_HOST_TAG) != socket.gethostname() or not str(tags.get(_PID_TAG, "")).isdigit():
        return False
    pid = int(tags[_PID_TAG])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def clear_version_tag(client: MlflowClient, model_name: str, version: str, key: str) -> None:
    client.delete_model_version_tag(model_name, version, key)


def clean_up_interrupted(
    client: MlflowClient,
    experiment: str,
    model_name: str,
    *,
    now: datetime | None = None,
    grace: timedelta = registration.GRACE,
) -> list[str]:
    """What an interrupted ``train`` (``kill -9``) left, on this host or any other.

    A run still RUNNING ends FAILED when its process is gone from this host, or when a train
    started it more than ``grace`` ago. A registration whose marker is older than ``grace`` is
    closed (:func:`modelops.core.registration.plan`): the pair completed, or a version without
    its partner deleted. Versions registered before markers existed keep the old rule (deleted
    when their process is gone from this host). Returns what was done, in words.
    """
    from mlflow.exceptions import MlflowException

    now = now or datetime.now(UTC)
    done = _fail_dead_runs(client, experiment, now - grace)
    try:
        versions = client.search_model_versions(f"name = '{model_name}'", max_results=10_000)
    except MlflowException:
        return done
    done += _close_registrations(client, model_name, versions, now, grace)
    done += _clean_up_unmarked(client, model_name, versions)
    for line in done:
        logging.getLogger(__name__).warning("cleaned up an interrupted train: %s", line)
    return done


def _fail_dead_runs(client: MlflowClient, experiment: str, started_before: datetime) -> list[str]:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    done = []
    cutoff_ms = started_before.timestamp() * 1000
    running = client.search_runs(
        [found.experiment_id], "attributes.status = 'RUNNING'", max_results=1000
    )
    for run in running:
        tags_ = run.data.tags
        abandoned = tag_keys.TRAIN_ID in tags_ and (run.info.start_time or 0) < cutoff_ms
        if abandoned or _dead_here(tags_):
            client.set_terminated(run.info.run_id, "FAILED")
            done.append(f"run {run.info.run_id} of a killed process marked FAILED")
    return done


def _close_registrations(
    client: MlflowClient,
    model_name: str,
    versions: list[ModelVersion],
    now: datetime,
    grace: timedelta,
) -> list[str]:
    found = registration.plan(
        [
            registration.Registered(
                str(v.version), dict(v.tags), tuple(getattr(v, "aliases", ()) or ())
            )
            for v in versions
        ],
        now,
        grace,
        gone={str(v.version) for v in versions if _dead_here(v.tags)},
    )
    done = list(found.notes)
    for baseline, candidate in found.pair:
        client.set_model_version_tag(model_name, baseline, tag_keys.CANDIDATE_VERSION, candidate)
        done.append(f"v{baseline}: paired with its candidate v{candidate}")
    for version in found.clear:
        clear_version_tag(client, model_name, version, tag_keys.REGISTRATION_PENDING)
    for version in found.delete:
        client.delete_model_version(model_name, version)
        done.append(f"v{version}: registration never completed, deleted")
    return done


def _clean_up_unmarked(
    client: MlflowClient, model_name: str, versions: list[ModelVersion]
) -> list[str]:
    """Versions from before registration markers: only this host can tell their train died."""
    done: list[str] = []
    baselines_of = {
        v.tags.get(tag_keys.BASELINE_VERSION): v for v in versions if v.tags.get(tag_keys.ROLE)
    }
    for version in versions:
        tags_ = version.tags
        if (
            tags_.get(tag_keys.ROLE) != "baseline"
            or tags_.get(tag_keys.CANDIDATE_VERSION)
            or tag_keys.REGISTRATION_PENDING in tags_
        ):
            continue
        partner = baselines_of.get(str(version.version))
        if partner is not None:
            client.set_model_version_tag(
                model_name, version.version, tag_keys.CANDIDATE_VERSION, str(partner.version)
            )
            done.append(f"v{version.version}: paired with its candidate v{partner.version}")
        elif _dead_here(tags_):
            client.delete_model_version(model_name, version.version)
            done.append(f"v{version.version}: baseline without its candidate deleted")
    return done
