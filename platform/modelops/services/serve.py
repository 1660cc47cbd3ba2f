"""Serving a packaged release locally (``modelops serve``): stage the holder's release, plan the
``bentoml serve`` process, start and stop it, and follow promotions by swapping in the new
holder's verified release.

A Bento found in the store is verified against its signed record before it is served; a staged
release is signed like a package. ``bentoml serve`` runs in a process group of its own, and
:func:`run_server` stops that whole group when it is stopped itself (SIGINT or SIGTERM), or when
the server exits on its own (naming the server's last line).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from modelops.config.settings import Settings
from modelops.core import tags
from modelops.core.errors import ModelopsError
from modelops.core.release import bento_tag
from modelops.integrations import bentoml as bentoml_io
from modelops.integrations import mlflow as mlflow_io
from modelops.services.context import check_environment, tracking, verified_ledger
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for
from modelops.services.package import (
    PACKAGE_ENTITIES,
    PackageRefusedError,
    PackageResult,
    _import_models,
    _prepare,
    _write_release,
    bento_store,
    package,
)
from modelops.services.signing import model_folders, public_key, sign_release, verify_bento
from modelops.services.skew import SkewResult
from modelops.serving.manifest import (
    Manifest,
    ModelEntry,
    write_pointer,
)


@dataclass(frozen=True)
class StagedRelease:
    directory: Path
    version: str
    manifest: Manifest
    skew: SkewResult


@dataclass(frozen=True)
class ServePlan:
    project: str
    environment: str
    version: str
    bento_tag: str
    store: bentoml_io.Store
    server_env: dict[str, str]
    packaged: PackageResult | None = None
    pointer: Path | None = None
    shadow: str | None = None
    entities: int = PACKAGE_ENTITIES
    staged: list[StagedRelease] = field(default_factory=list)


def stage_release(
    settings: Settings,
    project_name: str,
    version: str,
    directory: Path,
    *,
    environment: str,
    shadow: str | None = None,
    entities: int = PACKAGE_ENTITIES,
) -> StagedRelease:
    """A release directory for a running service to swap in: the same checks as a package,
    the model folders copied next to the manifest."""
    prepared = _prepare(settings, project_name, version, environment, shadow, entities)
    folders = _import_models(settings, prepared)
    entries: list[ModelEntry | None] = []
    for entry in (prepared.manifest.model, prepared.manifest.shadow):
        if entry is None:
            entries.append(None)
            continue
        relative = f"models/v{entry.version}"
        assert entry.bentoml_model is not None
        shutil.copytree(folders[entry.bentoml_model], directory / relative, dirs_exist_ok=True)
        entries.append(entry.model_copy(update={"directory": relative}))
    manifest = prepared.manifest.model_copy(update={"model": entries[0], "shadow": entries[1]})
    _write_release(directory, prepared, manifest)
    store = bento_store(settings)
    sign_release(settings, directory, manifest, model_folders(store, directory), None)
    return StagedRelease(directory, prepared.primary.version, manifest, prepared.skew)


def server_environment(
    settings: Settings, environment: str, pointer: Path | None = None
) -> dict[str, str]:
    """What ``bentoml serve`` needs to read this platform's feature store and log predictions
    where monitoring reads them."""
    env = {
        "MODELOPS_SERVING_FEATURE_REPO": str(settings.resolved_feature_repo),
        "MODELOPS_SERVING_FEATURE_STORE_YAML": str(settings.resolved_feature_store_yaml),
        "MODELOPS_SERVING_PREDICTION_LOG": settings.resolved_prediction_log,
        "MODELOPS_SERVING_ENVIRONMENT": environment,
        "MODELOPS_SERVING_RELEASE_PUBLIC_KEY": public_key(settings),
        **settings.feast_variables(),
    }
    if pointer is not None:
        env["MODELOPS_SERVING_WATCH"] = str(pointer)
    return env


def _serving_dir(settings: Settings, project: str, environment: str) -> Path:
    return settings.resolved_state_dir / "serving" / f"{project}-{environment}"


def plan_serve(
    settings: Settings,
    project_name: str,
    environment: str,
    *,
    shadow: str | None = None,
    reload_on_promotion: bool = False,
    entities: int = PACKAGE_ENTITIES,
) -> ServePlan:
    """The Bento serving ``environment``'s holder, packaged now when the store lacks it."""
    check_environment(settings, environment)
    project = project_for(settings, project_name)
    spec = project.spec
    holder = verified_ledger(settings, "serve").holder(spec.name, environment).version
    if holder is None:
        raise PackageRefusedError(
            f"no version of {spec.name} holds {environment}; promote one first"
        )
    with mlflow_io.session(tracking(settings)) as client:
        found = dict(mlflow_io.get_version(client, spec.registered_model, holder).tags)
        shadow_sha = (
            dict(mlflow_io.get_version(client, spec.registered_model, shadow).tags).get(
                tags.ARTIFACT_SHA256, ""
            )
            if shadow
            else ""
        )
    sha256 = found.get(tags.ARTIFACT_SHA256, "")
    store = bento_store(settings)
    packaged = None
    tag = None
    if sha256 and (not shadow or shadow_sha):
        tag = bento_tag(spec.name, holder, sha256)
        if shadow:
            tag = f"{tag}-shadow-v{shadow}-{shadow_sha[:12]}"
        bento = bentoml_io.find_bento(store, tag)
        if bento is None:
            tag = None
        else:
            verify_bento(settings, store, bento, holder)  # refused: one line, nothing started
    if tag is None:
        packaged = package(
            settings, spec.name, holder, environment=environment, shadow=shadow, entities=entities
        )
        tag = packaged.bento_tag
    pointer = None
    if reload_on_promotion:
        folder = _serving_dir(settings, spec.name, environment)
        folder.mkdir(parents=True, exist_ok=True)
        pointer = folder / "current.json"
        pointer.unlink(missing_ok=True)  # start from the Bento's own release
    return ServePlan(
        project=spec.name,
        environment=environment,
        version=holder,
        bento_tag=tag,
        store=store,
        server_env=server_environment(settings, environment, pointer),
        packaged=packaged,
        pointer=pointer,
        shadow=shadow,
        entities=entities,
    )


@dataclass(frozen=True)
class Reload:
    """A new holder seen by :func:`follow_promotion`: staged, or refused with the reason."""

    version: str
    staged: StagedRelease | None = None
    error: str | None = None


def follow_promotion(
    settings: Settings, plan: ServePlan, current: str, refused: str | None = None
) -> Reload | None:
    """One poll of the ledger: when ``plan.environment`` has a new holder (neither ``current``
    nor the already ``refused`` one), run the package checks on it, stage its release and
    point the running service at it. None when nothing changed.

    A holder that fails a check is returned with the reason; the service keeps serving.
    """
    holder = ledger_for(settings).holder(plan.project, plan.environment).version
    if holder is None or holder in (current, refused) or plan.pointer is None:
        return None
    try:
        verified_ledger(settings, f"reload to v{holder}")
    except ModelopsError as exc:
        return Reload(holder, error=str(exc))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    directory = plan.pointer.parent / "releases" / f"v{holder}-{stamp}"
    try:
        staged = stage_release(
            settings,
            plan.project,
            holder,
            directory,
            environment=plan.environment,
            shadow=plan.shadow if plan.shadow != holder else None,
            entities=plan.entities,
        )
    except ModelopsError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        return Reload(holder, error=str(exc))
    except Exception:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    write_pointer(plan.pointer, directory)
    return Reload(holder, staged=staged)


def start_server(
    plan: ServePlan, port: int, host: str = "127.0.0.1", stdout: Any = None
) -> subprocess.Popen[bytes]:
    """``bentoml serve`` of the plan's Bento in its own process group."""
    return bentoml_io.start_server(
        plan.store, plan.bento_tag, port, plan.server_env, host=host, stdout=stdout
    )


def stop_server(
    process: subprocess.Popen[bytes], timeout: float = 20.0, first: int = signal.SIGTERM
) -> int:
    """Stop the server and its workers: ``first`` to its process group, then SIGKILL to what is
    left of the group (also when the server itself had already exited)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, first)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
    _reap_group(process.pid, timeout)
    return int(process.returncode or 0)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_group(pgid: int, timeout: float) -> None:
    """Workers the server left behind in its group: SIGTERM, then SIGKILL after ``timeout``."""
    if not _group_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class ServerExitedError(ModelopsError):
    """``bentoml serve`` exited by itself (it refused to start, or crashed)."""

    exit_code = 1


class _Stopped(BaseException):
    """SIGTERM (or SIGHUP) to ``modelops serve``: stop the server, like Ctrl-C."""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`_Stopped` in the main thread (SIGINT already raises
    KeyboardInterrupt), so that the server's process group is stopped on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise _Stopped(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_stops() -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)


def _forward(source: IO[bytes], sink: IO[bytes] | None, tail: deque[str]) -> None:
    """Copy the server's output to ``sink`` line by line, keeping its last lines."""
    for raw in iter(source.readline, b""):
        if sink is not None:
            with contextlib.suppress(OSError, ValueError):
                sink.write(raw)
                sink.flush()
        text = raw.decode("utf-8", "replace").strip()
        if text:
            tail.append(text)


def _exit_reason(code: int, tail: deque[str]) -> str:
    refused = [line for line in tail if "refused" in line]
    last = refused[-1] if refused else (tail[-1] if tail else "")
    return f"bentoml serve exited with code {code}" + (f": {last}" if last else "")


Notify = Callable[[str, str], None]
"""``(kind, message)``: ``staged``, ``refused``, ``poll_failed`` or ``stopping``."""


def run_server(
    settings: Settings,
    plan: ServePlan,
    port: int,
    host: str,
    *,
    poll_seconds: float,
    notify: Notify,
    output: IO[bytes] | None = None,
) -> None:
    """Run ``bentoml serve`` of ``plan`` until it exits or this process is stopped (SIGINT,
    SIGTERM, SIGHUP); either way its whole process group is stopped before returning. With a
    ``plan.pointer``, poll the ledger every ``poll_seconds`` and stage each new holder.

    Raises:
        ServerExitedError: the server exited by itself; names its refusal (or last line).
    """
    tail: deque[str] = deque(maxlen=40)
    with _stop_on_signals():
        process = start_server(plan, port, host, stdout=subprocess.PIPE)
        assert process.stdout is not None
        copier = threading.Thread(
            target=_forward, args=(process.stdout, output, tail), name="serve-output", daemon=True
        )
        copier.start()
        try:
            _supervise(settings, plan, process, poll_seconds, notify)
            copier.join(5)
            raise ServerExitedError(_exit_reason(int(process.returncode or 0), tail))
        except (KeyboardInterrupt, _Stopped):
            notify("stopping", "stopping the server and its workers")
        finally:
            _ignore_stops()  # a second SIGTERM must not cut the stop short
            stop_server(process)
            copier.join(5)


def _supervise(
    settings: Settings,
    plan: ServePlan,
    process: subprocess.Popen[bytes],
    poll_seconds: float,
    notify: Notify,
) -> None:
    """Wait for the server to exit, following promotions meanwhile when the plan says so."""
    current, refused = plan.version, None
    while True:
        try:
            process.wait(timeout=poll_seconds if plan.pointer is not None else 3600)
            return
        except subprocess.TimeoutExpired:
            pass
        if plan.pointer is None:
            continue
        try:
            seen = follow_promotion(settings, plan, current, refused)
        except ModelopsError as exc:  # the ledger or registry did not answer this time
            notify("poll_failed", f"promotion poll failed: {exc}")
            continue
        if seen is None:
            continue
        if seen.staged is None:
            refused = seen.version
            notify("refused", f"kept v{current}: new holder v{seen.version} refused: {seen.error}")
            continue
        notify(
            "staged",
            f"{plan.environment} now held by v{seen.version}: staged {seen.staged.directory}; "
            "the service swaps it in once it verifies",
        )
        current, refused = seen.version, None
