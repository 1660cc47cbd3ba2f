"""Does the GitOps repository deploy, in every environment, what the ledger recorded?

Git is the truth for what should run, the ledger for what was decided (docs/deploy-gitops.md).
Each values file is compared, field by field, with what ``modelops deploy`` writes for the
ledger's holder, read from its verified signed release record and recorded image digest
(:func:`modelops.services.gitops_manifests.expected_values` over
:func:`modelops.services.deploy.release_from`, the functions both use; a record that is missing
or does not verify makes the environment differ, saying why): chart version, project,
environment, model version, image repository, tag and digest, the Bento tag annotation, and no
``MODELOPS_SERVING_*`` set through ``extraEnv`` or ``secretEnv``. Any difference is a
disagreement, named by field, except one: when the values file holds exactly what the last
deploy wrote for an earlier holder and the ledger moved since, the environment is ``deploy
pending``, a promotion not deployed yet, reported as a warning."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from modelops.config.settings import Settings
from modelops.core import gitops_fields
from modelops.core.gitops_fields import FieldDifference
from modelops.core.release import values_path
from modelops.integrations import gitops as gitops_io
from modelops.integrations.database import Ledger
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for
from modelops.services.deploy import (
    DeployError,
    Release,
    expected_values,
    last_deploy,
    load_values,
    release_from,
)


@dataclass(frozen=True)
class EnvironmentAgreement:
    environment: str
    ledger_version: str | None
    gitops_version: str | None
    status: Literal["agrees", "differs", "not deployed", "deploy pending"]
    """``deploy pending``: the values file still holds what the last ``modelops deploy`` wrote,
    and the ledger moved the environment after that deploy (a promotion not deployed yet)."""
    detail: str = ""
    differences: tuple[FieldDifference, ...] = ()
    """The owned fields that differ from the ledger's release (empty when the model version
    alone already differs, or the file cannot be read)."""


@dataclass(frozen=True)
class GitOpsAgreement:
    """Whether the GitOps repository deploys, in every environment, the ledger's holder.

    ``ok`` is False when a values file names another version (or is unreadable, or deploys
    something where the ledger has no holder) than the ledger recorded, unless the ledger moved
    after the deploy that wrote it; an environment promoted but never deployed, or promoted
    again since its last deploy, is ``pending``, not a disagreement.
    """

    project: str
    repo: Path
    environments: list[EnvironmentAgreement] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [
            f"{self.project} {e.environment}: {e.detail}"
            for e in self.environments
            if e.status == "differs"
        ]

    @property
    def pending(self) -> list[str]:
        return [
            e.environment
            for e in self.environments
            if e.status in ("not deployed", "deploy pending")
        ]

    @property
    def warnings(self) -> list[str]:
        """One line per environment whose deploy lags behind a promotion."""
        return [
            f"{self.project} {e.environment}: {e.detail}"
            for e in self.environments
            if e.status == "deploy pending"
        ]

    @property
    def ok(self) -> bool:
        return not self.problems


def gitops_agrees(settings: Settings, project_name: str) -> GitOpsAgreement:
    """Compare, per environment, the GitOps values file with what a deploy of the ledger's
    holder writes, field by field (see the module docstring).

    Reads the working tree of the GitOps repository (fetch first to compare with a remote); never
    creates it.
    """
    spec = project_for(settings, project_name).spec
    ledger = ledger_for(settings)
    repo = gitops_io.GitOpsRepo(settings.resolved_gitops_repo)
    exists = repo.exists()
    rows: list[EnvironmentAgreement] = []
    for environment in settings.environments:
        held = ledger.holder(spec.name, environment).version
        relative = values_path(environment, spec.name)
        text = repo.read(relative) if exists else None
        where = str(repo.path / relative)

        expected = functools.partial(_release_of, settings, ledger, spec.name, environment)
        row = _agreement(settings, environment, held, text, where, expected)
        if row.status == "differs" and row.gitops_version not in (None, held):
            row = _pending_or_differs(row, spec.name, repo, relative, ledger, settings, expected)
        rows.append(row)
    return GitOpsAgreement(project=spec.name, repo=repo.path, environments=rows)


def _release_of(
    settings: Settings, ledger: Ledger, project: str, environment: str, move_seq: int | None
) -> Release:
    """The release the ledger move ``move_seq`` (None: the last move) put in ``environment``.

    Raises:
        DeployError: no such move, or the ledger records no artifact SHA-256 for its version.
    """
    entries = ledger.entries(project, environment)
    moves = [e for e in entries if e.action in ("promote", "rollback")]
    if move_seq is not None:
        moves = [e for e in moves if e.seq == move_seq]
    if not moves:
        raise DeployError(f"the ledger records no such move of {project} {environment}")
    return release_from(settings, ledger, project, environment, entries, moves[-1])


def _fields(
    settings: Settings, values: dict[str, object], release: Release
) -> list[FieldDifference]:
    """The owned fields of ``values`` that differ from ``release``.

    Raises:
        DeployError: what ``release`` should deploy cannot be known (the chart version cannot
            be read): the caller reports the environment as differing, saying why.
    """
    return gitops_fields.differences(values, expected_values(settings, release))


def _pending_or_differs(
    row: EnvironmentAgreement,
    project: str,
    repo: gitops_io.GitOpsRepo,
    relative: str,
    ledger: Ledger,
    settings: Settings,
    expected: Callable[[int | None], Release],
) -> EnvironmentAgreement:
    """``deploy pending`` when the values file holds exactly what the last modelops commit of it
    deployed (every owned field as that deploy wrote it), that commit names a ledger move to
    that version, and the ledger moved the environment since; otherwise the disagreement stands
    (a hand edit, a forged or foreign commit, a version the ledger never put there)."""
    last = last_deploy(repo, relative)
    moves = [
        e for e in ledger.entries(project, row.environment) if e.action in ("promote", "rollback")
    ]
    if last is None or not moves or moves[-1].to_version != row.ledger_version:
        return row
    version, seq = last
    deployed = next((e for e in moves if e.seq == seq), None)
    if (
        version != row.gitops_version
        or deployed is None
        or deployed.to_version != version
        or deployed.seq >= moves[-1].seq
    ):
        return row
    values = load_values(repo.read(relative), relative) or {}
    try:
        drift = _fields(settings, values, expected(seq))
    except DeployError as error:
        return dataclasses.replace(row, detail=f"{row.detail}; cannot be checked: {error}")
    if drift:
        return dataclasses.replace(
            row, detail=f"{row.detail}; {_listed(drift)}", differences=tuple(drift)
        )
    current = moves[-1]
    detail = (
        f"promoted, deploy pending: ledger entry {current.seq} ({current.action}) moved it to "
        f"v{current.to_version}; GitOps still deploys v{version} (ledger entry {seq}); run "
        f"'modelops deploy {project} --env {row.environment}'"
    )
    return dataclasses.replace(row, status="deploy pending", detail=detail)


def _listed(drift: list[FieldDifference]) -> str:
    return "; ".join(d.describe() for d in drift)


def _agreement(
    settings: Settings,
    environment: str,
    held: str | None,
    text: str | None,
    where: str,
    expected: Callable[[int | None], Release],
) -> EnvironmentAgreement:
    ledger_says = f"v{held}" if held else "nothing"
    if text is None:
        if held is None:
            return EnvironmentAgreement(environment, None, None, "agrees")
        return EnvironmentAgreement(
            environment, held, None, "not deployed", f"ledger {ledger_says}, GitOps nothing"
        )
    try:
        values = load_values(text, where) or {}
    except DeployError as error:
        return EnvironmentAgreement(environment, held, None, "differs", str(error))
    raw = values.get("modelVersion")
    version = None if raw is None else str(raw)
    if version != held:
        detail = f"GitOps modelVersion {version!r} in {where}, ledger {ledger_says}"
        return EnvironmentAgreement(environment, held, version, "differs", detail)
    if held is None:
        return EnvironmentAgreement(environment, held, version, "agrees")
    try:
        release = expected(None)
        drift = _fields(settings, values, release)
    except DeployError as error:  # fail closed: what should be there cannot be known
        detail = f"{where} cannot be checked: {error}"
        return EnvironmentAgreement(environment, held, version, "differs", detail)
    if drift:
        detail = (
            f"{_listed(drift)} in {where}; 'modelops deploy {release.project} --env "
            f"{environment}' restores them"
        )
        return EnvironmentAgreement(environment, held, version, "differs", detail, tuple(drift))
    return EnvironmentAgreement(environment, held, version, "agrees")
