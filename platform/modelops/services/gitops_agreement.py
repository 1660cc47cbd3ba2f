"""Does the GitOps repository deploy, in every environment, what the ledger recorded?

Git is the truth for what should run, the ledger for what was decided (docs/deploy-gitops.md).
A values file naming another version than the ledger's holder is a disagreement, except when
the ledger moved after the deploy that wrote it: then the environment is ``deploy pending``, a
promotion not deployed yet, reported as a warning by ``history --verify``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from modelops.config.settings import Settings
from modelops.core.release import values_path
from modelops.integrations import gitops as gitops_io
from modelops.integrations.database import Ledger
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for
from modelops.services.deploy import (
    LEDGER_ENTRY_TRAILER,
    MODEL_VERSION_TRAILER,
    DeployError,
    load_values,
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
    """Compare, per environment, the model version in the GitOps values file (``modelVersion``
    and the ``v<version>-`` prefix of ``image.tag``) with the ledger's holder.

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
        row = _agreement(environment, held, text, str(repo.path / relative))
        if row.status == "differs" and row.gitops_version not in (None, held):
            row = _pending_or_differs(row, spec.name, repo, relative, ledger)
        rows.append(row)
    return GitOpsAgreement(project=spec.name, repo=repo.path, environments=rows)


def _pending_or_differs(
    row: EnvironmentAgreement,
    project: str,
    repo: gitops_io.GitOpsRepo,
    relative: str,
    ledger: Ledger,
) -> EnvironmentAgreement:
    """``deploy pending`` when the values file holds exactly what the last modelops commit of it
    deployed, that commit names a ledger move to that version, and the ledger moved the
    environment since; otherwise the disagreement stands (a hand edit, a forged or foreign
    commit, a version the ledger never put there)."""
    last = _last_deploy(repo, relative)
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
    current = moves[-1]
    detail = (
        f"promoted, deploy pending: ledger entry {current.seq} ({current.action}) moved it to "
        f"v{current.to_version}; GitOps still deploys v{version} (ledger entry {seq}); run "
        f"'modelops deploy {project} --env {row.environment}'"
    )
    return dataclasses.replace(row, status="deploy pending", detail=detail)


_TRAILER = re.compile(r"^(Modelops-[A-Za-z-]+): *(.*)$")


DEPLOYS_READ = 50
"""Modelops commits of one values file read to check that the newest one is not a step back."""


def _last_deploy(repo: gitops_io.GitOpsRepo, relative: str) -> tuple[str, int] | None:
    """``(model version, ledger entry)`` from the trailers of the newest modelops commit that
    changed ``relative``. None when there is none, its trailers are not readable, or an older
    modelops commit of the file names a later ledger entry (a copied trailer block: deploys
    follow the ledger forward)."""
    try:
        found = repo.recent_commits(
            DEPLOYS_READ, touching=relative, message_contains=f"{LEDGER_ENTRY_TRAILER}: "
        )
    except gitops_io.GitOpsError:
        return None
    deploys = [_deploy_trailers(commit.body) for commit in found]
    if not deploys or deploys[0] is None:
        return None
    newest = deploys[0]
    if any(older is not None and older[1] > newest[1] for older in deploys[1:]):
        return None
    return newest


def _deploy_trailers(body: str) -> tuple[str, int] | None:
    last_paragraph = body.strip().split("\n\n")[-1]
    trailers: dict[str, str] = {
        match[1]: match[2]
        for line in last_paragraph.splitlines()
        if (match := _TRAILER.match(line))
    }
    version = trailers.get(MODEL_VERSION_TRAILER, "")
    entry = trailers.get(LEDGER_ENTRY_TRAILER, "")
    return (version, int(entry)) if version and entry.isdigit() else None


def _agreement(
    environment: str, held: str | None, text: str | None, where: str
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
    image = values.get("image")
    tag = str(image.get("tag", "")) if isinstance(image, dict) else ""
    if version != held:
        detail = f"GitOps modelVersion {version!r} in {where}, ledger {ledger_says}"
        return EnvironmentAgreement(environment, held, version, "differs", detail)
    if held is not None and not tag.startswith(f"v{held}-"):
        detail = f"GitOps image.tag {tag!r} in {where} is not a v{held} Bento (ledger v{held})"
        return EnvironmentAgreement(environment, held, version, "differs", detail)
    return EnvironmentAgreement(environment, held, version, "agrees")
