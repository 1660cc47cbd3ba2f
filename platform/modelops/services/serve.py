"""Serving a packaged release locally (``modelops serve``): stage the holder's release, plan the
``bentoml serve`` process, start and stop it, and follow promotions by swapping in the new
holder's verified release."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
        if bentoml_io.find_bento(store, tag) is None:
            tag = None
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
    """Stop the server and its workers (``first`` to its process group, then SIGKILL)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, first)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
    return int(process.returncode or 0)
