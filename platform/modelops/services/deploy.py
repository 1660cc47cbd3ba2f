"""``modelops deploy``: the version the ledger says holds an environment, written to GitOps.

The ledger decides what serves where; the GitOps repository says what should run, and Argo CD
makes it so. A deploy writes, for one project and environment:

- ``environments/<env>/<project>/values.yaml``: the Helm values of ``charts/model-service``:
  the chart version, the image (``<image_registry>/<bento name>:<bento version>``, and the
  digest recorded for it by ``modelops ledger record-image``, none when none was), the model
  version, the Bento tag (pod annotation ``modelops.io/bento-tag``), replicas and
  resources (per-environment defaults when the file is new; later edits by hand are kept, only
  the fields modelops owns change, and ``MODELOPS_SERVING_*`` entries leave ``extraEnv`` and
  ``secretEnv``: :mod:`modelops.core.gitops_fields`; a deploy restoring drifted fields names
  them in its commit);
- ``apps/<env>-<project>.yaml``: the Argo CD ``Application`` that renders the chart from the
  platform repository with that values file (written when missing; see docs/deploy-gitops.md);

and commits them with a message naming the project, version, verdict and actor, whose trailer
``Modelops-Ledger-Head: <seq>:<hash>`` anchors the ledger outside its database. Nothing changed,
nothing committed. Only the ledger is read: the release is the signed release record that
``modelops package`` recorded for the artifact SHA-256 the promoting verdict judged, verified
under the platform's release key and checked against the move field by field
(:mod:`modelops.services.release_ledger`); a version never packaged, or a record that does not
verify, is refused.

``--direct`` patches the running Deployment instead, for clusters without GitOps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from modelops.config.settings import Settings
from modelops.core.gitops_fields import ExpectedValues, FieldDifference
from modelops.core.release import values_path
from modelops.core.release_record import ReleaseRefusedError
from modelops.integrations import gitops as gitops_io
from modelops.integrations.database import Ledger, RecordedEntry
from modelops.services.context import check_environment, verified_ledger
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for
from modelops.services.gitops_manifests import (  # noqa: F401 (re-exported)
    ARGOCD_NAMESPACE,
    BENTO_TAG_ANNOTATION,
    CHART_NAME,
    CHART_PATH,
    CONTAINER,
    DEFAULT_NAMESPACE,
    DESTINATION_SERVER,
    LEDGER_ENTRY_TRAILER,
    LEDGER_HEAD_TRAILER,
    MODEL_VERSION_KEY,
    MODEL_VERSION_TRAILER,
    VERSION_VARIABLE,
    DeployError,
    Release,
    Sync,
    _files,
    application_path,
    build_application,
    build_values,
    chart_version,
    deployment_name,
    expected_values,
    last_deploy,
    load_values,
    release_name,
    render_values,
)
from modelops.services.identity import resolve_actor
from modelops.services.release_ledger import recorded_image, signed_release


@dataclass(frozen=True)
class DeployResult:
    """What a deploy (or a recorded rollback) did; ``commit`` is None when nothing was committed
    (already deployed, a dry run, or ``--direct``)."""

    release: Release
    repo: Path | None
    values_path: str
    application_path: str
    values: dict[str, Any]
    files: dict[str, str]
    message: str
    commit: str | None = None
    already_deployed: bool = False
    pushed: bool = False
    dry_run: bool = False
    created_repo: bool = False
    direct: dict[str, Any] | None = None
    """With ``--direct``: namespace, deployment, patch body, and (unless a dry run) generation."""
    restored: tuple[FieldDifference, ...] = ()
    """Owned fields of the values file that differed from the ledger's release and that this
    deploy restores (:func:`modelops.core.gitops_fields.repairs`)."""

    def to_dict(self) -> dict[str, Any]:
        """The ``modelops deploy --json`` document (keys: docs/deploy-gitops.md)."""
        r = self.release
        return {
            "project": r.project,
            "environment": r.environment,
            "model_version": r.version,
            "bento_tag": r.bento_tag,
            "image": r.image,
            "image_repository": r.image_repository,
            "image_tag": r.image_tag,
            "image_digest": r.image_digest,
            "release_key_id": r.release_key_id,
            "artifact_sha256": r.artifact_sha256,
            "verdict_id": r.verdict_id,
            "ledger_entry": r.moved_by.seq,
            "gitops_repo": None if self.repo is None else str(self.repo),
            "values_path": self.values_path,
            "application_path": self.application_path,
            "commit": self.commit,
            "already_deployed": self.already_deployed,
            "pushed": self.pushed,
            "dry_run": self.dry_run,
            "direct": self.direct,
            "restored": [
                {"field": d.field, "found": d.found, "expected": d.expected} for d in self.restored
            ],
        }


# ----------------------------------------------------------------------------- the ledger


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def resolve_release(settings: Settings, project_name: str, environment: str) -> Release:
    """The holder of ``environment`` in the ledger and the image that serves it.

    Raises:
        DeployError: nothing holds the environment; the holder table and the chain disagree;
            the ledger has no artifact SHA-256 for the holder.
    """
    check_environment(settings, environment)
    spec = project_for(settings, project_name).spec
    return _release(settings, ledger_for(settings), spec.name, environment)


def _release(settings: Settings, ledger: Ledger, project: str, environment: str) -> Release:
    holder = ledger.holder(project, environment).version
    if holder is None:
        raise DeployError(
            f"nothing holds {environment} for {project} in the ledger; promote a version there "
            f"first (modelops promote {project} VERSION --to {environment})"
        )
    entries = ledger.entries(project, environment)
    moves = [e for e in entries if e.action in ("promote", "rollback")]
    if not moves or moves[-1].to_version != holder:
        chain = f"v{moves[-1].to_version}" if moves else "nothing"
        raise DeployError(
            f"{project} {environment}: the holder table says v{holder} but the ledger's chain "
            f"says {chain}; run 'modelops history --verify' before deploying"
        )
    return release_from(settings, ledger, project, environment, entries, moves[-1])


def release_from(
    settings: Settings,
    ledger: Ledger,
    project: str,
    environment: str,
    entries: list[RecordedEntry],
    moved_by: RecordedEntry,
) -> Release:
    """The release the promote or rollback ``moved_by`` put in ``environment``, from the ledger
    ``entries`` of (project, environment) up to it and the signed release record of the bytes
    its verdict judged (:func:`modelops.services.release_ledger.signed_release`): the model
    version, Bento tag, image repository and tag are the record's, the digest the newest one
    recorded for it (``modelops ledger record-image``).

    Raises:
        DeployError: the ledger records no artifact SHA-256 for that version, no signed release
            of it, or a record that does not verify or names another release (fail closed).
    """
    holder = str(moved_by.to_version)
    known = [e for e in entries if e.seq <= moved_by.seq]
    moves = [e for e in known if e.action in ("promote", "rollback")]
    verdict_id = moved_by.verdict_id
    if verdict_id is None:  # a rollback: the verdict that promoted this version here before
        verdict_id = next(
            (
                e.verdict_id
                for e in reversed(moves)
                if e.action == "promote" and e.to_version == holder and e.verdict_id
            ),
            None,
        )
    sha = _judged_sha256(known, holder, verdict_id)
    if sha is None:
        raise DeployError(
            f"{project} v{holder} holds {environment}, but the ledger records no artifact "
            f"SHA-256 for it (verdict {verdict_id or 'none'}); the image tag cannot be derived"
        )
    try:
        record = signed_release(settings, ledger, project, holder, sha)
        name, _, tag = record.bento_tag.partition(":")
        repository = f"{settings.image_registry.rstrip('/')}/{name}"
        image = recorded_image(ledger, record, repository)
    except ReleaseRefusedError as error:
        raise DeployError(f"{project} {environment}: {error}") from None
    return Release(
        project=record.project,
        environment=environment,
        version=record.model_version,
        artifact_sha256=sha,
        bento_tag=record.bento_tag,
        image_repository=repository,
        image_tag=tag,
        verdict_id=verdict_id,
        moved_by=moved_by,
        image_digest=None if image is None else image[1].digest,
        release_key_id=record.key_id,
    )


def _judged_sha256(
    entries: list[RecordedEntry], version: str, verdict_id: str | None
) -> str | None:
    """The artifact SHA-256 the verdict ``verdict_id`` judged (else any passing verdict of it)."""
    validations = [
        e
        for e in reversed(entries)
        if e.action == "validate"
        and e.to_version == version
        and re.fullmatch(r"[0-9a-f]{64}", str(e.details.get("candidate_artifact_sha256") or ""))
    ]
    for entry in validations:
        if verdict_id is not None and entry.verdict_id == verdict_id:
            return str(entry.details["candidate_artifact_sha256"])
    for entry in validations:
        if entry.details.get("passed"):
            return str(entry.details["candidate_artifact_sha256"])
    return None


# ----------------------------------------------------------------------------- files


def _trailers(pairs: list[tuple[str, str | None]]) -> str:
    return "\n".join(f"{key}: {_one_line(value) or 'none'}" for key, value in pairs)


def commit_message(
    release: Release,
    *,
    actor: str,
    anchor: str,
    action: Literal["deploy", "rollback"] = "deploy",
    from_version: str | None = None,
    reason: str | None = None,
    restored: list[FieldDifference] | tuple[FieldDifference, ...] = (),
) -> str:
    """Subject, a body saying how the version got there (and which drifted fields the commit
    restores), and ``Modelops-*`` trailers (the last, ``Modelops-Ledger-Head``, is the ledger's
    head when the commit was made)."""
    r, moved = release, release.moved_by
    verdict = r.verdict_id or "none"
    if action == "rollback":
        was = f"v{from_version}" if from_version else "nothing"
        subject = f"rollback {r.project} {r.environment} {was} → v{r.version}: {_one_line(reason)}"
    else:
        subject = f"deploy {r.project} {r.environment} v{r.version} (verdict {verdict}, by {actor})"
    names = ", ".join(d.field for d in restored)
    if restored and action == "deploy":
        subject += f": restore {names}"
    was = f"v{moved.from_version}" if moved.from_version else "nothing"
    body = (
        f"Ledger entry {moved.seq} ({moved.action} by {_one_line(moved.actor)}: "
        f"{_one_line(moved.reason)}) moved {r.environment} from {was} to v{r.version}.\n"
        f"Image: {r.pinned_image}"
    )
    if restored:
        lines = "\n".join(f"- {d.describe()}" for d in restored)
        body += f"\n\nRestores what differed from the ledger's release:\n{lines}"
    trailers = _trailers(
        [
            ("Modelops-Action", action),
            ("Modelops-Project", r.project),
            ("Modelops-Environment", r.environment),
            (MODEL_VERSION_TRAILER, r.version),
            ("Modelops-Bento-Tag", r.bento_tag),
            ("Modelops-Verdict", verdict),
            ("Modelops-Actor", actor),
            (LEDGER_ENTRY_TRAILER, str(moved.seq)),
            *([("Modelops-Restored", names)] if restored else []),
            (LEDGER_HEAD_TRAILER, anchor),
        ]
    )
    return f"{subject}\n\n{body}\n\n{trailers}\n"


# ----------------------------------------------------------------------------- deploy


def deploy(
    settings: Settings,
    project_name: str,
    environment: str,
    *,
    push: bool = False,
    direct: bool = False,
    replicas: int | None = None,
    dry_run: bool = False,
    actor: str | None = None,
    expect_version: str | None = None,
    namespace: str | None = None,
    sync: Sync | None = None,
    kubeconfig: Path | None = None,
    kube_context: str | None = None,
) -> DeployResult:
    """Write ``environment``'s holder to the GitOps repository and commit (or, ``direct``, patch
    the Deployment); see the module docstring.

    Raises:
        DeployError: nothing holds the environment, ``expect_version`` is not the holder, a file
            in the GitOps repository is not valid YAML, or ``push`` with ``direct``.
        GitOpsError: git failed; ``push`` without a remote.
        KubernetesError, ConfigError, ServiceUnavailableError: (``direct``) the API's answer.
    """
    if replicas is not None and replicas < 1:
        raise DeployError(f"--replicas {replicas}: at least 1")
    if direct and push:
        raise DeployError("--direct patches the cluster and writes no GitOps commit: drop --push")
    check_environment(settings, environment)
    spec = project_for(settings, project_name).spec
    ledger = verified_ledger(settings, "deploy")
    who = resolve_actor(actor, settings.root) or "unknown"
    release = _release(settings, ledger, spec.name, environment)  # refuse before any write
    _expect(release, expect_version)
    if direct:
        return _direct(release, replicas, dry_run, namespace, kubeconfig, kube_context, who)
    repo = gitops_io.GitOpsRepo(settings.resolved_gitops_repo)
    if dry_run:
        values, files, restored = _files(
            settings,
            repo,
            release,
            replicas=replicas,
            namespace=namespace,
            sync=sync,
            baseline=_baseline(settings, ledger, repo, release),
        )
        message = commit_message(release, actor=who, anchor=ledger.anchor(), restored=restored)
        return _result(
            release, repo, values, files, message, dry_run=True, restored=tuple(restored)
        )
    created = repo.ensure()
    if push:
        repo.require_remote()
    with repo.locked():
        if push:
            repo.pull()
        # again under the lock: a promotion may have moved the holder meanwhile
        release = _release(settings, ledger, spec.name, environment)
        _expect(release, expect_version)
        values, files, restored = _files(
            settings,
            repo,
            release,
            replicas=replicas,
            namespace=namespace,
            sync=sync,
            baseline=_baseline(settings, ledger, repo, release),
        )
        repo.write(files)
        message = commit_message(release, actor=who, anchor=ledger.anchor(), restored=restored)
        return _commit(
            repo, release, values, files, message, push=push, created=created, restored=restored
        )


def _baseline(
    settings: Settings, ledger: Ledger, repo: gitops_io.GitOpsRepo, release: Release
) -> ExpectedValues | None:
    """What the values file holds if nobody edited it since the last modelops deploy of it: the
    owned fields of the release that deploy wrote. None when there is no such deploy, or it
    cannot be told (then :func:`modelops.core.gitops_fields.repairs` decides what is restored)."""
    if not repo.exists():
        return None
    last = last_deploy(repo, values_path(release.environment, release.project))
    if last is None:
        return None
    entries = ledger.entries(release.project, release.environment)
    move = next((e for e in entries if e.seq == last[1] and e.to_version == last[0]), None)
    if move is None or move.action not in ("promote", "rollback"):
        return None
    try:
        previous = release_from(
            settings, ledger, release.project, release.environment, entries, move
        )
        return expected_values(settings, previous)
    except DeployError:
        return None


def is_deployed(settings: Settings, project_name: str, environment: str) -> bool:
    """Whether the GitOps repository holds values for ``project_name`` in ``environment``.

    An environment never deployed through GitOps has nothing for a rollback to rewrite: its
    rollback stays a ledger and alias move until the first ``modelops deploy``.
    """
    repo = gitops_io.GitOpsRepo(settings.resolved_gitops_repo)
    spec = project_for(settings, project_name).spec
    return repo.exists() and repo.read(values_path(environment, spec.name)) is not None


def record_rollback(
    settings: Settings,
    project_name: str,
    environment: str,
    *,
    from_version: str | None,
    to_version: str,
    reason: str,
    actor: str | None = None,
    push: bool = False,
) -> DeployResult:
    """After ``modelops rollback`` moved the ledger: write ``to_version``'s values and commit
    ``rollback <project> <env> v<from> → v<to>: <reason>``.

    Raises:
        DeployError: the ledger's holder of ``environment`` is not ``to_version``.
        GitOpsError: git failed; ``push`` without a remote.
    """
    check_environment(settings, environment)
    spec = project_for(settings, project_name).spec
    ledger = verified_ledger(settings, "rollback")
    who = resolve_actor(actor, settings.root) or "unknown"
    _rolled_back(_release(settings, ledger, spec.name, environment), to_version)
    repo = gitops_io.GitOpsRepo(settings.resolved_gitops_repo)
    created = repo.ensure()
    if push:
        repo.require_remote()
    with repo.locked():
        if push:
            repo.pull()
        release = _release(settings, ledger, spec.name, environment)
        _rolled_back(release, to_version)
        values, files, restored = _files(
            settings,
            repo,
            release,
            replicas=None,
            namespace=None,
            sync=None,
            baseline=_baseline(settings, ledger, repo, release),
        )
        repo.write(files)
        message = commit_message(
            release,
            actor=who,
            anchor=ledger.anchor(),
            action="rollback",
            from_version=from_version,
            reason=reason,
            restored=restored,
        )
        return _commit(
            repo, release, values, files, message, push=push, created=created, restored=restored
        )


def _rolled_back(release: Release, to_version: str) -> None:
    if release.version != str(to_version):
        raise DeployError(
            f"{release.project} {release.environment}: the ledger's holder is "
            f"v{release.version}, not v{to_version}; record the rollback only after the ledger "
            "moved"
        )


def _expect(release: Release, expect_version: str | None) -> None:
    if expect_version is not None and str(expect_version) != release.version:
        raise DeployError(
            f"--expect-version {expect_version}: {release.environment} of {release.project} is "
            f"held by v{release.version} in the ledger now; nothing deployed"
        )


def _result(
    release: Release,
    repo: gitops_io.GitOpsRepo | None,
    values: dict[str, Any],
    files: dict[str, str],
    message: str,
    **fields: Any,
) -> DeployResult:
    return DeployResult(
        release=release,
        repo=None if repo is None else repo.path,
        values_path=values_path(release.environment, release.project),
        application_path=application_path(release.environment, release.project),
        values=values,
        files=files,
        message=message,
        **fields,
    )


def _commit(
    repo: gitops_io.GitOpsRepo,
    release: Release,
    values: dict[str, Any],
    files: dict[str, str],
    message: str,
    *,
    push: bool,
    created: bool,
    restored: list[FieldDifference],
) -> DeployResult:
    made = repo.commit(sorted(files), message)
    if push:
        repo.push()
    head = repo.head()
    return _result(
        release,
        repo,
        values,
        files,
        message if made else head.message,
        commit=head.sha,
        already_deployed=made is None,
        pushed=push,
        created_repo=created,
        restored=tuple(restored) if made is not None else (),
    )


def _direct(
    release: Release,
    replicas: int | None,
    dry_run: bool,
    namespace: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
    actor: str,
) -> DeployResult:
    from modelops.integrations import kubernetes as kubernetes_io

    patch = kubernetes_io.DeploymentPatch(
        namespace=namespace or DEFAULT_NAMESPACE,
        name=deployment_name(release.project, release.environment),
        container=CONTAINER,
        image=release.pinned_image,
        env={VERSION_VARIABLE: release.version},
        labels={MODEL_VERSION_KEY: release.version},
        annotations={
            MODEL_VERSION_KEY: release.version,
            BENTO_TAG_ANNOTATION: release.bento_tag,
            "modelops.io/deployed-by": actor,
        },
        replicas=replicas,
    )
    direct: dict[str, Any] = {
        "namespace": patch.namespace,
        "deployment": patch.name,
        "patch": kubernetes_io.patch_body(patch),
        "generation": None,
    }
    if not dry_run:
        done = kubernetes_io.patch_deployment(patch, kubeconfig=kubeconfig, context=kube_context)
        direct["generation"] = done.generation
    message = (
        f"patch deployment {patch.namespace}/{patch.name}: {release.project} "
        f"{release.environment} v{release.version} (verdict {release.verdict_id or 'none'}, "
        f"by {actor}), image {release.image}"
    )
    return DeployResult(
        release=release,
        repo=None,
        values_path=values_path(release.environment, release.project),
        application_path=application_path(release.environment, release.project),
        values={},
        files={},
        message=message,
        dry_run=dry_run,
        direct=direct,
    )
