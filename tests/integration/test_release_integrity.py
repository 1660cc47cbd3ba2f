"""A signed release, for real: train, ``modelops package``, then tamper with the built Bento the
way the issue did and start it with ``bentoml serve`` and ``modelops serve``.

- each of the three tampers (the model swapped for a refused version with its hash edited to
  match; thresholds raised to 0.999; the feature views emptied) is refused by ``package`` when
  it would reuse the Bento, and by ``bentoml serve`` at start: exit code 3 once, one line naming
  what differs, the port closed;
- ``modelops serve`` refuses a tampered Bento before it starts anything;
- a worker that cannot start stops the server once instead of being restarted forever;
- SIGTERM to ``modelops serve`` stops its whole process tree (no listener, no child left).

Embedded profile (SQLite online store); BentoML must be installed (skipped with the reason
otherwise, failed under CI).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import psutil
import pytest

from modelops.config.settings import load_settings
from modelops.core.release_record import ReleaseRefusedError
from modelops.integrations import bentoml as bentoml_io
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import LedgerEntry
from modelops.services import data, features, train
from modelops.services import package as package_service
from modelops.services.context import ledger as ledger_for
from modelops.services.context import tracking
from modelops.services.serve import server_environment
from modelops.services.signing import bento_release, recorded_release
from modelops.serving import artifact
from support import copy_workspace

pytestmark = pytest.mark.integration

PROJECT = "fraud"
ROWS = 20_000
ENV = "staging"
EXIT_REFUSED = 3
START_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def packaged(
    tmp_path_factory: pytest.TempPathFactory, unavailable: Callable[[str], NoReturn]
) -> Iterator[dict[str, Any]]:
    if importlib.util.find_spec("bentoml") is None:
        unavailable("bentoml is not installed")
    root = copy_workspace(tmp_path_factory.mktemp("release") / "repo")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("MODELOPS_", "BENTOML_")):
                patch.delenv(name)
        patch.setenv("MODELOPS_ROOT", str(root))
        patch.setenv("MODELOPS_ACTOR", "tester")
        settings = load_settings(root)
        summaries = data.generate(settings, [PROJECT], rows=ROWS, seed=5)
        features.apply(settings)
        end = max(t.end for s in summaries for t in s.tables) + timedelta(seconds=1)
        features.materialize(settings, end)
        result = train.train(settings, PROJECT)
        version, baseline = result.candidate.version, result.baseline.version
        ledger = ledger_for(settings)  # the platform's ledger: keyed, as every command opens it
        ledger.transition(
            LedgerEntry("promote", PROJECT, ENV, "tester", "test", None, version),
            expected=ledger.holder(PROJECT, ENV),
        )
        packed = package_service.package(settings, PROJECT, version, environment=ENV, entities=40)
        store = package_service.bento_store(settings)
        bento = bentoml_io.find_bento(store, packed.bento_tag)
        assert bento is not None
        env = {
            **os.environ,
            **store.environment(),
            **server_environment(settings, ENV),
            "MODELOPS_ROOT": str(root),
        }
        yield {
            "settings": settings,
            "root": root,
            "result": packed,
            "store": store,
            "bento": bento,
            "version": version,
            "baseline": baseline,
            "env": env,
        }


# ----------------------------------------------------------------------------- tampers


def _edit_manifest(release: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = release / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def _swap_model(ctx: dict[str, Any]) -> None:
    """The issue's first attack: the served model file replaced by the version the gate refused,
    and the manifest's ``artifact_sha256`` edited to the new folder's hash, so the artifact
    check alone passes."""
    import mlflow

    release = bento_release(ctx["bento"])
    manifest = json.loads((release / "manifest.json").read_text())
    folder = bentoml_io.model_folder(ctx["store"], manifest["model"]["bentoml_model"])
    assert folder is not None
    with mlflow_io.session(tracking(ctx["settings"])):
        refused = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{manifest['registered_model']}/{ctx['baseline']}"
        )
    shutil.copy2(Path(refused) / "model.pkl", folder / "model.pkl")
    digest = artifact.tree_sha256(folder)

    def edit(m: dict[str, Any]) -> None:
        m["model"]["artifact_sha256"] = digest

    _edit_manifest(release, edit)


def _raise_thresholds(ctx: dict[str, Any]) -> None:
    def edit(m: dict[str, Any]) -> None:
        m["model"]["threshold"] = 0.999
        m["decisions"]["review_ratio"] = 0.999

    _edit_manifest(bento_release(ctx["bento"]), edit)


def _empty_views(ctx: dict[str, Any]) -> None:
    def edit(m: dict[str, Any]) -> None:
        m["feast"]["batch_views"] = {}

    _edit_manifest(bento_release(ctx["bento"]), edit)


TAMPERS: dict[str, tuple[Callable[[dict[str, Any]], None], tuple[str, ...]]] = {
    "model swapped, hash edited": (
        _swap_model,
        ("manifest model.artifact_sha256:", "models/served/model.pkl changed"),
    ),
    "thresholds raised": (
        _raise_thresholds,
        (
            "manifest decisions.review_ratio:",
            "0.999 found",
            "manifest model.threshold:",
            "release/manifest.json changed",
        ),
    ),
    "feature views emptied": (_empty_views, ("manifest feast.batch_views.", "removed")),
}


@contextlib.contextmanager
def _tampered(ctx: dict[str, Any], tamper: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """The store's Bento and model folder tampered with, restored afterwards."""
    bento_dir: Path = ctx["bento"].path
    manifest = json.loads((bento_release(ctx["bento"]) / "manifest.json").read_text())
    model_dir = bentoml_io.model_folder(ctx["store"], manifest["model"]["bentoml_model"])
    assert model_dir is not None
    saved = bento_dir.parent / "saved"
    shutil.copytree(bento_dir, saved / "bento")
    shutil.copytree(model_dir, saved / "model")
    try:
        tamper(ctx)
        yield
    finally:
        for original, copy in ((bento_dir, saved / "bento"), (model_dir, saved / "model")):
            shutil.rmtree(original)
            shutil.copytree(copy, original)
        shutil.rmtree(saved)


def _bentoml_serve(ctx: dict[str, Any], port: int, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        bentoml_io.serve_command(ctx["result"].bento_tag, port),
        env={**ctx["env"], **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float) -> tuple[int | None, str]:
    """The exit code within ``timeout`` (None: still running, then killed) and the output."""
    try:
        out, _ = process.communicate(timeout=timeout)
        return process.returncode, out
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate(timeout=30)
        return None, out


# ----------------------------------------------------------------------------- tests


def test_package_signs_records_and_reverifies_the_release(packaged: dict[str, Any]) -> None:
    result = packaged["result"]
    record = result.record
    assert record is not None and record.model_version == packaged["version"]
    assert "release/manifest.json" in record.files and "models/served/model.pkl" in record.files
    assert any(p.startswith("code/serving/") for p in record.files)
    ledger = ledger_for(packaged["settings"])
    assert recorded_release(ledger, PROJECT, packaged["version"]) == record
    assert ledger.verify().ok
    again = package_service.package(
        packaged["settings"], PROJECT, packaged["version"], environment=ENV, entities=40
    )
    assert again.reused and again.record == record


@pytest.mark.parametrize("name", list(TAMPERS))
def test_a_tampered_bento_is_refused_by_package_and_at_start(
    packaged: dict[str, Any], name: str
) -> None:
    tamper, named = TAMPERS[name]
    with _tampered(packaged, tamper):
        with pytest.raises(ReleaseRefusedError) as raised:
            package_service.package(
                packaged["settings"], PROJECT, packaged["version"], environment=ENV, entities=40
            )
        message = str(raised.value)
        assert "\n" not in message and message.startswith("release refused: Bento ")
        assert all(part in message for part in named), message

        port = _free_port()
        started = time.monotonic()
        code, out = _finish(_bentoml_serve(packaged, port), START_TIMEOUT_S)
        assert code == EXIT_REFUSED, out[-3000:]
        refusals = [line for line in out.splitlines() if line.startswith("release refused:")]
        assert len(refusals) == 1, out[-3000:]  # once: no worker was ever started
        assert all(part in refusals[0] for part in named), refusals[0]
        assert not _listening(port)
        print(f"{name}: bentoml serve refused in {time.monotonic() - started:.1f} s")


def test_modelops_serve_refuses_a_tampered_bento_before_starting(packaged: dict[str, Any]) -> None:
    port = _free_port()
    with _tampered(packaged, _raise_thresholds):
        process = subprocess.Popen(
            [sys.executable, "-m", "modelops", "serve", PROJECT, "--env", ENV, "--port", str(port)],
            env=packaged["env"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        code, out = _finish(process, START_TIMEOUT_S)
    assert code == 1, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "release refused: Bento " in errors[0], out[-3000:]
    assert "manifest model.threshold:" in errors[0]
    assert "Starting production" not in out and not _listening(port)


def test_a_worker_that_cannot_start_stops_the_server_once(packaged: dict[str, Any]) -> None:
    """The release verifies, but the worker cannot open its feature store: the arbiter is
    stopped instead of restarting the worker, and ``bentoml serve`` exits 3 with the reason."""
    port = _free_port()
    process = _bentoml_serve(
        packaged, port, MODELOPS_SERVING_FEATURE_STORE_YAML="/nonexistent/feature_store.yaml"
    )
    code, out = _finish(process, START_TIMEOUT_S)
    assert code == EXIT_REFUSED, out[-3000:]
    assert "a worker refused to start: start refused:" in out, out[-3000:]
    assert out.count("start refused:") <= 2, out[-3000:]  # the worker's line and the summary
    assert not _listening(port)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_sigterm_to_modelops_serve_stops_its_whole_tree(
    packaged: dict[str, Any], tmp_path: Path
) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelops", "serve", PROJECT, "--env", ENV, "--port", str(port)],
            env=packaged["env"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _ready(f"http://127.0.0.1:{port}"):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        tree = psutil.Process(process.pid).children(recursive=True)
        assert len(tree) >= 2, tree  # bentoml serve and its worker(s)
        os.kill(process.pid, signal.SIGTERM)  # to modelops serve alone, not to its group
        assert process.wait(60) == 0, log.read_text()[-3000:]
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert alive == [], alive
        assert not _listening(port)
    finally:
        for leftover in [*tree, psutil.Process(process.pid)] if process.poll() is None else tree:
            with contextlib.suppress(psutil.Error):
                leftover.kill()
