"""BentoML: the model store, Bento builds and ``bentoml serve``.

Importing BentoML configures its home directory once per process and pulls in much of its
stack, so everything here that needs the library runs in a child process
(``python -m modelops.integrations.bentoml``, one JSON request on stdin, one JSON answer on
stdout): the CLI stays light, and each build sees exactly the ``BENTOML_HOME`` it was given.
Reading what a store holds (``bento.yaml``, model folders) only needs the store's layout,
``<home>/bentos/<name>/<version>`` and ``<home>/models/<name>/<version>``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from modelops.core.errors import ModelopsError
from modelops.core.telemetry import TELEMETRY_OFF

MLFLOW_MODEL_FOLDER = "mlflow_model"
_ANSWER = "MODELOPS-BENTOML-ANSWER "
# What a prediction service imports at run time, pinned to the versions packaging ran with.
RUNTIME_PACKAGES = (
    "bentoml",
    "httptools",  # the HTTP parser of the service's edge protocol (modelops.serving.edge)
    "feast[redis,postgres]",
    "lightgbm",
    "scikit-learn",
    "numpy",
    "pandas",
    "pyarrow",
    "cloudpickle",
    "cryptography",  # the release record's Ed25519 signature
    "pydantic",
    "pyyaml",
    "sqlalchemy",
    "psycopg[binary]",
)


class BentoMLError(ModelopsError):
    """A BentoML build, import or server failed; the message carries its last error line."""


@dataclass(frozen=True)
class Store:
    """A BentoML home: ``bentos/`` and ``models/``."""

    home: Path

    def environment(self) -> dict[str, str]:
        return {"BENTOML_HOME": str(self.home), **TELEMETRY_OFF}


@dataclass(frozen=True)
class ModelImport:
    """An MLflow model to copy into the model store under ``tag`` (kept when already there)."""

    tag: str
    model_uri: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BentoSpec:
    """What ``bentoml build`` gets: the context directory and every option of a bentofile."""

    build_ctx: Path
    service: str
    name: str
    version: str
    labels: dict[str, str]
    models: list[str]
    include: list[str]
    description: str = ""
    exclude: list[str] = field(default_factory=lambda: ["**/__pycache__", "**/*.pyc"])
    packages: list[str] = field(default_factory=list)
    python_version: str = f"{sys.version_info.major}.{sys.version_info.minor}"
    build_env: dict[str, str] = field(default_factory=dict)  # environment of the build only


@dataclass(frozen=True)
class Bento:
    tag: str
    path: Path
    labels: dict[str, str]


def _split(tag: str) -> tuple[str, str]:
    name, _, version = tag.partition(":")
    if not name or not version:
        raise BentoMLError(f"'{tag}' is not a name:version tag")
    return name, version


def find_bento(store: Store, tag: str) -> Bento | None:
    """The Bento of that exact tag in the store, or None."""
    name, version = _split(tag)
    path = store.home / "bentos" / name / version
    info = path / "bento.yaml"
    if not info.is_file():
        return None
    data = yaml.safe_load(info.read_text(encoding="utf-8")) or {}
    labels = {str(k): str(v) for k, v in (data.get("labels") or {}).items()}
    return Bento(tag=tag, path=path, labels=labels)


def model_folder(store: Store, tag: str) -> Path | None:
    """The MLflow files of a model in the store, or None when it is not there."""
    name, version = _split(tag)
    path = store.home / "models" / name / version / MLFLOW_MODEL_FOLDER
    return path if path.is_dir() else None


def delete_model(store: Store, tag: str) -> None:
    name, version = _split(tag)
    shutil.rmtree(store.home / "models" / name / version, ignore_errors=True)


def delete_bento(store: Store, tag: str) -> None:
    name, version = _split(tag)
    shutil.rmtree(store.home / "bentos" / name / version, ignore_errors=True)


def runtime_requirements() -> list[str]:
    """``RUNTIME_PACKAGES`` pinned to what is installed here (the versions that were tested)."""
    pinned = []
    for requirement in RUNTIME_PACKAGES:
        distribution = requirement.split("[")[0]
        try:
            pinned.append(f"{requirement}=={metadata.version(distribution)}")
        except metadata.PackageNotFoundError:
            pinned.append(requirement)
    return pinned


def _run(store: Store, request: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    environment = {**os.environ, **store.environment(), **env}
    done = subprocess.run(
        [sys.executable, "-m", "modelops.integrations.bentoml"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_ANSWER):
            answer: dict[str, Any] = json.loads(line[len(_ANSWER) :])
            if "error" in answer:
                raise BentoMLError(answer["error"])
            return answer
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    last = next(
        (line for line in reversed(lines) if "Error" in line or "error" in line),
        lines[-1] if lines else "",
    )
    raise BentoMLError(f"BentoML failed (exit {done.returncode}): {last.strip()[:400]}")


def import_models(
    store: Store, imports: Sequence[ModelImport], tracking_env: Mapping[str, str]
) -> dict[str, Path]:
    """Copy MLflow models into the model store (``bentoml.mlflow.import_model``); a tag that is
    already there is kept. Returns each tag's MLflow folder; the caller checks its hash.

    Args:
        tracking_env: ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` of the registry.
    """
    request = {"imports": [asdict(i) for i in imports]}
    answer = _run(store, request, tracking_env)
    return {tag: Path(path) for tag, path in answer["models"].items()}


def build(store: Store, spec: BentoSpec) -> Bento:
    """Build a Bento from a prepared context directory; the context's own packages come first
    on the import path, so the build proves the Bento imports what it carries."""
    request = {"build": {**asdict(spec), "build_ctx": str(spec.build_ctx)}}
    request["build"].pop("build_env")
    pythonpath = os.pathsep.join(
        p for p in (str(spec.build_ctx), os.environ.get("PYTHONPATH", "")) if p
    )
    answer = _run(store, request, {"PYTHONPATH": pythonpath, **spec.build_env})
    return Bento(tag=answer["bento"]["tag"], path=Path(answer["bento"]["path"]), labels=spec.labels)


def serve_command(target: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """``bentoml serve`` of a Bento tag (or a service import path) on ``host:port``."""
    return [sys.executable, "-m", "bentoml", "serve", target, "--host", host, "--port", str(port)]


def start_server(
    store: Store,
    target: str,
    port: int,
    env: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    stdout: Any = None,
) -> subprocess.Popen[bytes]:
    """Start ``bentoml serve`` in its own process group (so that stopping it stops its
    workers too). On Linux the server is also told to stop (SIGTERM) when the process that
    started it dies, even by SIGKILL."""
    return subprocess.Popen(
        serve_command(target, port, host),
        env={**os.environ, **store.environment(), **env},
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        start_new_session=True,
        preexec_fn=_parent_death_signal(),  # one prctl call in the child, no locks taken
    )


def _parent_death_signal() -> Any:
    """A ``preexec_fn`` asking Linux to send SIGTERM to the child when its parent dies; None
    elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return preexec


def _child(request: dict[str, Any]) -> dict[str, Any]:
    """Runs in the child process: imports, then an optional build."""
    import bentoml
    from bentoml.exceptions import NotFound

    answer: dict[str, Any] = {"models": {}}
    for item in request.get("imports", []):
        tag = item["tag"]
        try:
            model = bentoml.models.get(tag)
        except NotFound:
            bentoml.mlflow.import_model(tag, item["model_uri"], labels=item["labels"])
            model = bentoml.models.get(tag)
        answer["models"][tag] = model.path_of(MLFLOW_MODEL_FOLDER)
    spec = request.get("build")
    if spec:
        from bentoml._internal.bento.build_config import BentoEnvSchema

        bento = bentoml.bentos.build(
            service=spec["service"],
            name=spec["name"],
            version=spec["version"],
            labels=spec["labels"],
            description=spec["description"],
            include=spec["include"],
            exclude=spec["exclude"],
            models=spec["models"],
            # A Bento run outside the charts (bentoml serve, its image) reports nothing either.
            # bentoml.bentos.build takes the schema objects only (no converter for dicts).
            envs=[BentoEnvSchema(name=k, value=v) for k, v in TELEMETRY_OFF.items()],
            python={"packages": spec["packages"], "lock_packages": False},
            docker={"python_version": spec["python_version"], "distro": "debian"},
            build_ctx=spec["build_ctx"],
        )
        answer["bento"] = {"tag": str(bento.tag), "path": bento.path}
    return answer


def _main() -> None:
    request = json.loads(sys.stdin.read())
    try:
        answer = _child(request)
    except Exception as exc:
        text = str(exc).strip().splitlines()
        answer = {"error": f"{type(exc).__name__}: {text[0] if text else ''}"[:500]}
    sys.stdout.write("\n" + _ANSWER + json.dumps(answer, default=str) + "\n")


if __name__ == "__main__":
    _main()
