"""A registered model folder, verified and loaded without MLflow.

The service runs in an image that must stay small and start fast, so it reads the MLflow
``sklearn`` flavour itself: ``MLmodel`` names the pickle and its format. The folder's SHA-256 is
the one MLflow's registration recorded (both use
:func:`modelops.core.fingerprint.model_folder_sha256`), checked before anything is unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelops.core.errors import ModelopsError
from modelops.core.fingerprint import model_folder_sha256
from modelops.serving.manifest import ModelEntry

MLMODEL = "MLmodel"
MLFLOW_MODEL_FOLDER = "mlflow_model"  # where bentoml.mlflow.import_model keeps the MLflow files


class ArtifactError(ModelopsError):
    """The model folder is not the registered artifact, or cannot be read."""


def model_folder(release: Path, entry: ModelEntry) -> Path:
    """The MLflow model folder of an entry: in the release, or in the BentoML model store."""
    if entry.directory:
        return release / entry.directory
    if entry.bentoml_model:
        import bentoml

        return Path(bentoml.models.get(entry.bentoml_model).path_of(MLFLOW_MODEL_FOLDER))
    raise ArtifactError(f"v{entry.version}: the manifest names no model folder")


def tree_sha256(folder: Path) -> str:
    """The folder's SHA-256 as registration computed it (:func:`model_folder_sha256`)."""
    return model_folder_sha256(folder)


def verify(folder: Path, expected_sha256: str, label: str) -> None:
    """Raises ArtifactError unless the folder's files hash to ``expected_sha256``."""
    if not (folder / MLMODEL).is_file():
        raise ArtifactError(f"{label}: {folder} holds no {MLMODEL}")
    actual = tree_sha256(folder)
    if actual != expected_sha256:
        raise ArtifactError(
            f"{label}: artifact does not match its registration: sha256 {actual} found in "
            f"{folder}, {expected_sha256} recorded; refusing to serve a replaced model"
        )


def load(folder: Path, expected_sha256: str, label: str) -> Any:
    """The fitted model of a verified MLflow ``sklearn`` folder.

    Raises:
        ArtifactError: the hash differs, or the flavour is not a pickled scikit-learn model.
    """
    verify(folder, expected_sha256, label)
    try:
        meta = yaml.safe_load((folder / MLMODEL).read_text(encoding="utf-8"))
        flavour = meta["flavors"]["sklearn"]
        pickled = folder / flavour["pickled_model"]
        fmt = flavour.get("serialization_format", "cloudpickle")
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ArtifactError(f"{label}: {folder / MLMODEL} has no sklearn flavour ({exc})") from exc
    if fmt not in ("cloudpickle", "pickle"):
        raise ArtifactError(f"{label}: serialization format '{fmt}' is not served")
    if flavour.get("code"):
        raise ArtifactError(f"{label}: models logged with code paths are not served")
    if fmt == "cloudpickle":
        import cloudpickle

        with pickled.open("rb") as handle:
            return cloudpickle.load(handle)
    import pickle

    with pickled.open("rb") as handle:
        return pickle.load(handle)
