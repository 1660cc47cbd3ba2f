"""``modelops models``: what the registry holds for a project, with lineage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelops.config.settings import Settings
from modelops.core import tags as tag_keys
from modelops.integrations import mlflow as mlflow_io
from modelops.services.context import project as project_for
from modelops.services.context import tracking

HEADLINE = (
    "holdout_roc_auc",
    "holdout_pr_auc",
    "holdout_cost_per_1000",
    "holdout_recall",
    "holdout_precision",
)


@dataclass(frozen=True)
class VersionInfo:
    model_name: str
    version: str
    role: str
    aliases: list[str]
    created: int
    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str]
    description: str
    #: What the model is (``lightgbm``, ``logistic regression``); None for versions trained
    #: before the platform recorded it.
    kind: str | None = None


def _info(
    client: Any,
    model_name: str,
    version: Any,
    alias_map: dict[str, str],
    with_metrics: bool = True,
) -> VersionInfo:
    run_id = str(getattr(version, "run_id", "") or "")
    metrics = mlflow_io.run_metrics(client, run_id) if with_metrics and run_id else {}
    tags = dict(getattr(version, "tags", {}) or {})
    number = str(version.version)
    return VersionInfo(
        model_name=model_name,
        version=number,
        role=tags.get(tag_keys.ROLE, "?"),
        kind=tags.get(tag_keys.KIND) or None,
        aliases=sorted(a for a, v in alias_map.items() if v == number),
        created=int(getattr(version, "creation_timestamp", 0) or 0),
        run_id=run_id,
        metrics=metrics,
        tags=tags,
        description=str(getattr(version, "description", "") or ""),
    )


def list_versions(settings: Settings, project_name: str) -> list[VersionInfo]:
    project = project_for(settings, project_name)
    name = project.spec.registered_model
    with mlflow_io.session(tracking(settings)) as client:
        versions = mlflow_io.list_versions(client, name)
        alias_map = mlflow_io.aliases(client, name)
        return [_info(client, name, v, alias_map) for v in versions]


def show_version(settings: Settings, project_name: str, version: str) -> VersionInfo:
    project = project_for(settings, project_name)
    name = project.spec.registered_model
    with mlflow_io.session(tracking(settings)) as client:
        found = mlflow_io.get_version(client, name, version)
        return _info(client, name, found, mlflow_io.aliases(client, name))


def clean_up_interrupted(settings: Settings, project_name: str) -> list[str]:
    """Close registrations a killed ``train`` left open on any host (what the next train does
    first); one line per change or per version left alone with its reason."""
    project = project_for(settings, project_name)
    with mlflow_io.session(tracking(settings)) as client:
        return mlflow_io.clean_up_interrupted(
            client, f"modelops/{project.spec.name}", project.spec.registered_model
        )
