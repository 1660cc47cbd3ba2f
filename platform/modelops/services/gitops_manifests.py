"""What a deploy writes to the GitOps repository: the names (release, Application, values
path), the Helm values of charts/model-service and the Argo CD Application, built from a
:class:`Release` (what the ledger says should serve). Pure building; ``deploy`` commits them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from modelops.config.settings import Settings
from modelops.core.errors import ModelopsError
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
BENTO_TAG_ANNOTATION = "modelops.io/bento-tag"
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
# modelops owns project, environment, modelVersion, image.repository, image.tag and the
# podAnnotation {annotation}; edit anything else here (by pull request): later deploys keep it.
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

    @property
    def image(self) -> str:
        return f"{self.image_repository}:{self.image_tag}"


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


def build_values(
    settings: Settings,
    release: Release,
    existing: dict[str, Any] | None,
    replicas: int | None = None,
) -> dict[str, Any]:
    """The values file after this deploy: ``existing`` (or the environment's defaults) with the
    keys modelops owns set to ``release``, and ``replicas`` when given (the fixed count, or the
    autoscaler's floor when autoscaling is on)."""
    import copy

    base = copy.deepcopy(existing) if existing is not None else {}
    values: dict[str, Any] = {
        "project": release.project,
        "environment": release.environment,
        "modelVersion": release.version,
    }
    found = base.pop("image", None)
    image = dict(found) if isinstance(found, dict) else {}
    if image.get("tag") != release.image_tag:
        image.pop("digest", None)  # it pinned the previous image
    image.update(repository=release.image_repository, tag=release.image_tag)
    values["image"] = {"repository": image.pop("repository"), "tag": image.pop("tag"), **image}
    found = base.pop("podAnnotations", None)
    annotations = dict(found) if isinstance(found, dict) else {}
    annotations[BENTO_TAG_ANNOTATION] = release.bento_tag
    values["podAnnotations"] = annotations
    for key in ("project", "environment", "modelVersion"):
        base.pop(key, None)
    if existing is None:
        base = copy.deepcopy(_size(settings, release.environment))
    values.update(base)
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
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values and the files (path -> text) this deploy writes."""
    values_file = values_path(release.environment, release.project)
    app_file = application_path(release.environment, release.project)
    exists = repo.exists()
    existing_text = repo.read(values_file) if exists else None
    where = str(repo.path / values_file)
    values = build_values(settings, release, load_values(existing_text, where), replicas)
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
    return values, {values_file: render_values(values), app_file: rendered_app}


# ----------------------------------------------------------------------------- messages
