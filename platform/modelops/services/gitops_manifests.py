"""What a deploy writes to the GitOps repository: the names (release, Application, values
path), the Helm values of charts/model-service and the Argo CD Application, built from a
:class:`Release` (what the ledger says should serve). Pure building; ``deploy`` commits them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from modelops.config.settings import Settings
from modelops.core import gitops_fields
from modelops.core.errors import ModelopsError
from modelops.core.gitops_fields import BENTO_TAG_ANNOTATION, ExpectedValues
from modelops.core.release import values_path
from modelops.integrations import gitops as gitops_io
from modelops.integrations.database import RecordedEntry
from modelops.services.context import approval_required
from modelops.services.context import project as project_for

CHART_PATH = "charts/model-service"
CHART_NAME = "model-service"
CONTAINER = "bentoml"
"""The container of the chart's Deployment that serves the Bento."""
DEFAULT_NAMESPACE = "models"
ARGOCD_NAMESPACE = "argocd"
DESTINATION_SERVER = "https://kubernetes.default.svc"
MODEL_VERSION_KEY = "modelops.io/model-version"
VERSION_VARIABLE = "MODELOPS_MODEL_VERSION"
LEDGER_HEAD_TRAILER = "Modelops-Ledger-Head"
LEDGER_ENTRY_TRAILER = "Modelops-Ledger-Entry"
MODEL_VERSION_TRAILER = "Modelops-Model-Version"

Sync = Literal["auto", "manual"]

# Sizes of a new values file, by the environment's place in the promotion order: the first
# environment (dev), the last (production) and every one in between (staging). A file that
# exists keeps whatever it says.
_SIZES: dict[str, dict[str, Any]] = {
    "first": {
        "replicaCount": 1,
        "autoscaling": {"enabled": False},
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
    },
    "middle": {
        "replicaCount": 2,
        "autoscaling": {"enabled": False},
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
    },
    "last": {
        "replicaCount": 3,
        "autoscaling": {
            "enabled": True,
            "minReplicas": 3,
            "maxReplicas": 10,
            "targetCPUUtilizationPercentage": 70,
        },
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        },
    },
}

_VALUES_HEADER = """\
# Helm values of {project} in {environment} for charts/model-service, written by modelops deploy.
# modelops owns chartVersion, project, environment, modelVersion, image.repository, image.tag,
# image.digest and the podAnnotation {annotation}, and MODELOPS_SERVING_* variables come from the
# chart alone (none in extraEnv or secretEnv): 'modelops history --verify' reports any difference
# and the next deploy restores them. Edit anything else here (by pull request): deploys keep it.
"""


class DeployError(ModelopsError):
    """A deploy that must not happen: nothing holds the environment, a mismatch, a bad file."""


@dataclass(frozen=True)
class Release:
    """What the ledger says should serve (project, environment), and how to find its image."""

    project: str
    environment: str
    version: str
    artifact_sha256: str
    bento_tag: str
    image_repository: str
    image_tag: str
    verdict_id: str | None
    moved_by: RecordedEntry
    """The promote or rollback entry that made ``version`` the holder."""
    image_digest: str | None = None
    """The image's ``sha256:`` digest recorded for this release (``modelops ledger
    record-image``); None when none was: the values then pin none, and a digest added by hand is
    a difference."""
    release_key_id: str | None = None
    """The key that signed the release record this release was read from."""

    @property
    def image(self) -> str:
        """``repository:tag``: what CI builds and pushes."""
        return f"{self.image_repository}:{self.image_tag}"

    @property
    def pinned_image(self) -> str:
        """``repository:tag@digest`` when a digest was recorded, else :attr:`image`."""
        return self.image if self.image_digest is None else f"{self.image}@{self.image_digest}"


# ----------------------------------------------------------------------------- names


def application_path(environment: str, project: str) -> str:
    """Where the GitOps repository keeps the Argo CD Application of (project, environment)."""
    return f"apps/{environment}-{project}.yaml"


def release_name(project: str, environment: str) -> str:
    """The Helm release (and Argo CD Application) name, ``<project>-<environment>`` made a
    DNS label: lower case, ``_`` as ``-``, at most 53 characters (Helm's limit)."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"{project}-{environment}".lower()).strip("-")
    return name[:53].rstrip("-")


def deployment_name(project: str, environment: str) -> str:
    """The chart's Deployment: ``<release>-model-service`` (its ``model-service.fullname``)."""
    release = release_name(project, environment)
    name = release if CHART_NAME in release else f"{release}-{CHART_NAME}"
    return name[:63].rstrip("-")


def _size(settings: Settings, environment: str) -> dict[str, Any]:
    order = settings.environments
    if len(order) > 1 and environment == order[-1]:
        return _SIZES["last"]
    if environment == order[0]:
        return _SIZES["first"]
    return _SIZES["middle"]


def load_values(text: str | None, where: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise DeployError(f"{where}:{line} not valid YAML; fix or delete it") from error
    if loaded is None:
        return None
    if not isinstance(loaded, dict):
        raise DeployError(f"{where}: not a mapping of Helm values; fix or delete it")
    return loaded


def chart_version(settings: Settings) -> str:
    """The ``version`` of ``charts/model-service/Chart.yaml`` in the platform repository: the
    chart the Argo CD Application renders, which a deploy pins in ``chartVersion``.

    Raises:
        DeployError: the chart is not there, or its Chart.yaml has no version.
    """
    path = settings.root / CHART_PATH / "Chart.yaml"
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        reason = "missing" if isinstance(error, FileNotFoundError) else "unreadable"
        raise DeployError(
            f"{path}: {reason}; the Application renders {CHART_PATH} from the platform "
            "repository, so its chart version cannot be pinned or checked"
        ) from error
    version = loaded.get("version") if isinstance(loaded, dict) else None
    if not version:
        raise DeployError(f"{path}: no chart version; the chart cannot be pinned or checked")
    return str(version)


def expected_values(settings: Settings, release: Release) -> ExpectedValues:
    """The owned fields of ``release``'s values file: what a deploy writes and what ``history
    --verify`` compares, from this one function.

    Raises:
        DeployError: the chart version cannot be read (:func:`chart_version`).
    """
    return ExpectedValues(
        project=release.project,
        environment=release.environment,
        model_version=release.version,
        image_repository=release.image_repository,
        image_tag=release.image_tag,
        image_digest=release.image_digest,
        chart_version=chart_version(settings),
        bento_tag=release.bento_tag,
    )


def build_values(
    settings: Settings,
    release: Release,
    existing: dict[str, Any] | None,
    replicas: int | None = None,
) -> dict[str, Any]:
    """The values file after this deploy: ``existing`` (or the environment's defaults) with the
    fields modelops owns set to ``release`` (:func:`modelops.core.gitops_fields.apply`), and
    ``replicas`` when given (the fixed count, or the autoscaler's floor when autoscaling is on)."""
    import copy

    base = existing if existing is not None else copy.deepcopy(_size(settings, release.environment))
    values = gitops_fields.apply(base, expected_values(settings, release))
    if replicas is not None:
        # the chart's default is an enabled autoscaler (2 to 10 pods), which owns the count
        autoscaling = values.setdefault("autoscaling", {})
        if not isinstance(autoscaling, dict) or autoscaling.get("enabled", True) is False:
            values["replicaCount"] = replicas
        else:
            autoscaling["minReplicas"] = replicas
            autoscaling["maxReplicas"] = max(int(autoscaling.get("maxReplicas", 10)), replicas)
    return values


def render_values(values: dict[str, Any]) -> str:
    header = _VALUES_HEADER.format(
        project=values["project"],
        environment=values["environment"],
        annotation=BENTO_TAG_ANNOTATION,
    )
    return header + yaml.safe_dump(values, sort_keys=False, default_flow_style=False)


def _sync(settings: Settings, project_name: str, environment: str, sync: Sync | None) -> Sync:
    """Manual sync where promotions need an approval (production), automated elsewhere."""
    if sync is not None:
        return sync
    project = project_for(settings, project_name)
    return "manual" if environment in approval_required(settings, project) else "auto"


def build_application(
    release: Release,
    *,
    chart_repo: str,
    chart_revision: str,
    gitops_repo: str,
    gitops_revision: str,
    namespace: str,
    sync: Sync,
) -> dict[str, Any]:
    """The Argo CD Application: the chart from the platform repository, the values file from the
    GitOps repository (a multi-source Application, Argo CD >= 2.6)."""
    name = release_name(release.project, release.environment)
    spec: dict[str, Any] = {
        "project": "default",
        "destination": {"server": DESTINATION_SERVER, "namespace": namespace},
        "sources": [
            {
                "repoURL": chart_repo,
                "targetRevision": chart_revision,
                "path": CHART_PATH,
                "helm": {
                    "releaseName": name,
                    "valueFiles": [f"$values/{values_path(release.environment, release.project)}"],
                },
            },
            {"repoURL": gitops_repo, "targetRevision": gitops_revision, "ref": "values"},
        ],
        "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
    }
    if sync == "auto":
        spec["syncPolicy"] = {"automated": {"prune": True, "selfHeal": True}, **spec["syncPolicy"]}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": ARGOCD_NAMESPACE,
            "labels": {
                "app.kubernetes.io/part-of": "modelops",
                "modelops.io/project": release.project,
                "modelops.io/environment": release.environment,
            },
        },
        "spec": spec,
    }


def _update_application(
    existing: dict[str, Any], namespace: str | None, sync: Sync | None
) -> dict[str, Any]:
    """An existing Application is left as it is, except what the command line asks to change."""
    import copy

    app = copy.deepcopy(existing)
    spec = app.setdefault("spec", {})
    if namespace is not None:
        spec.setdefault("destination", {})["namespace"] = namespace
    if sync is not None:
        policy = spec.setdefault("syncPolicy", {}) or {}
        spec["syncPolicy"] = policy
        if sync == "auto":
            policy["automated"] = {"prune": True, "selfHeal": True}
        else:
            policy.pop("automated", None)
    return app


def _render_application(app: dict[str, Any]) -> str:
    return (
        "# Argo CD Application written by modelops deploy; edits are kept by later deploys.\n"
        + yaml.safe_dump(app, sort_keys=False, default_flow_style=False)
    )


def _files(
    settings: Settings,
    repo: gitops_io.GitOpsRepo,
    release: Release,
    *,
    replicas: int | None,
    namespace: str | None,
    sync: Sync | None,
    baseline: ExpectedValues | None = None,
) -> tuple[dict[str, Any], dict[str, str], list[gitops_fields.FieldDifference]]:
    """The values, the files (path -> text) this deploy writes, and the owned fields of the
    values file that it restores: those that differ from ``baseline`` (what the last deploy
    wrote), else :func:`modelops.core.gitops_fields.repairs`."""
    values_file = values_path(release.environment, release.project)
    app_file = application_path(release.environment, release.project)
    exists = repo.exists()
    existing_text = repo.read(values_file) if exists else None
    where = str(repo.path / values_file)
    existing = load_values(existing_text, where)
    if existing is not None and baseline is not None:
        restored = gitops_fields.differences(existing, baseline)
    else:
        restored = gitops_fields.repairs(existing, expected_values(settings, release))
    values = build_values(settings, release, existing, replicas)
    app_text = repo.read(app_file) if exists else None
    app_existing = load_values(app_text, str(repo.path / app_file))
    if app_existing is not None:
        app = _update_application(app_existing, namespace, sync)
        rendered_app = app_text if app == app_existing else _render_application(app)
    else:
        chart_repo = gitops_io.remote_url(settings.root) or settings.root.resolve().as_uri()
        gitops_url = (repo.remote_url() if exists else None) or repo.path.resolve().as_uri()
        app = build_application(
            release,
            chart_repo=chart_repo,
            chart_revision=settings.resolved_trusted_branch or "main",
            gitops_repo=gitops_url,
            gitops_revision=repo.branch() if exists else gitops_io.DEFAULT_BRANCH,
            namespace=namespace or DEFAULT_NAMESPACE,
            sync=_sync(settings, release.project, release.environment, sync),
        )
        rendered_app = _render_application(app)
    assert rendered_app is not None
    return values, {values_file: render_values(values), app_file: rendered_app}, restored


_TRAILER = re.compile(r"^(Modelops-[A-Za-z-]+): *(.*)$")


DEPLOYS_READ = 50
"""Modelops commits of one values file read to check that the newest one is not a step back."""


def last_deploy(repo: gitops_io.GitOpsRepo, relative: str) -> tuple[str, int] | None:
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


# ----------------------------------------------------------------------------- messages
