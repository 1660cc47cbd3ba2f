"""Kubernetes: patch a Deployment in place through the official ``kubernetes`` Python client.

For clusters without GitOps (``modelops deploy --direct``). One request: a strategic merge patch
(``application/strategic-merge-patch+json``) of the Deployment, which merges containers and their
environment variables by name, so only what is named changes. Credentials come from a kubeconfig
(``--kubeconfig``/``$KUBECONFIG``/``~/.kube/config``, optionally a context) or, inside a pod, from
its service account.

What to set (the image, which labels) is decided by the caller; the ``kubernetes`` package is
imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelops.core.errors import ConfigError, ModelopsError, ServiceUnavailableError

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
FIELD_MANAGER = "modelops"
REQUEST_TIMEOUT_S = 30.0


class KubernetesError(ModelopsError):
    """The Kubernetes API refused the change (not found, forbidden, invalid)."""


@dataclass(frozen=True)
class DeploymentPatch:
    """What to change in one Deployment; empty mappings change nothing."""

    namespace: str
    name: str
    container: str
    image: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    """Set on the Deployment and on its pod template (never on the immutable selector)."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    """Set on the Deployment and on its pod template (a changed value rolls the pods)."""
    replicas: int | None = None


@dataclass(frozen=True)
class PatchResult:
    namespace: str
    name: str
    generation: int | None
    images: list[str]


def patch_body(patch: DeploymentPatch) -> dict[str, Any]:
    """The strategic merge patch that makes ``patch`` so."""
    meta: dict[str, Any] = {}
    if patch.labels:
        meta["labels"] = dict(patch.labels)
    if patch.annotations:
        meta["annotations"] = dict(patch.annotations)
    container: dict[str, Any] = {"name": patch.container}
    if patch.image:
        container["image"] = patch.image
    if patch.env:
        container["env"] = [{"name": k, "value": v} for k, v in patch.env.items()]
    spec: dict[str, Any] = {"template": {"spec": {"containers": [container]}}}
    if meta:
        spec["template"]["metadata"] = json.loads(json.dumps(meta))
    if patch.replicas is not None:
        spec["replicas"] = patch.replicas
    body: dict[str, Any] = {"spec": spec}
    if meta:
        body["metadata"] = meta
    return body


def _api_client(kubeconfig: Path | None, context: str | None) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    in_cluster = kubeconfig is None and context is None and "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (config.ConfigException, OSError, ValueError, TypeError) as error:
        where = (
            "in-cluster service account"
            if in_cluster
            else f"kubeconfig {kubeconfig or '(default)'}"
        )
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"Kubernetes credentials from {where} unusable: {detail}") from error
    return client.ApiClient(configuration)


def _status_message(body: str | None) -> str:
    try:
        status = json.loads(body or "")
    except ValueError:
        return ""
    if not isinstance(status, dict):
        return ""
    message = str(status.get("message") or "").strip()
    return message.splitlines()[0] if message else ""


def patch_deployment(
    patch: DeploymentPatch,
    *,
    kubeconfig: Path | None = None,
    context: str | None = None,
) -> PatchResult:
    """Send ``patch`` as one strategic merge PATCH of the Deployment.

    Raises:
        ConfigError: no usable kubeconfig or in-cluster credentials.
        KubernetesError: the API answered with an error (404: no such Deployment; 403: not
            allowed), in one line.
        ServiceUnavailableError: the API server cannot be reached.
    """
    from kubernetes import client
    from urllib3.exceptions import HTTPError

    target = f"deployment {patch.namespace}/{patch.name}"
    api_client = _api_client(kubeconfig, context)
    try:
        apps = client.AppsV1Api(api_client)
        # Without preloading the answer is the raw HTTP response: its JSON is read as is, not
        # validated into the client's typed models (which differ between client versions).
        response: Any = apps.patch_namespaced_deployment(
            patch.name,
            patch.namespace,
            patch_body(patch),
            field_manager=FIELD_MANAGER,
            _content_type=STRATEGIC_MERGE_PATCH,
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT_S,
        )
        document = json.loads(response.data or b"{}")
    except client.ApiException as error:
        detail = _status_message(error.body)
        hint = {
            404: "not found: is the chart installed there (namespace and release name)?",
            403: "forbidden: the credentials may not patch deployments.apps in this namespace",
            401: "unauthorized: the credentials were rejected",
            422: "rejected as invalid",
        }.get(error.status or 0, f"refused ({error.reason})")
        raise KubernetesError(
            f"Kubernetes API: {target} {hint} (HTTP {error.status}"
            + (f": {detail})" if detail else ")")
        ) from error
    except (HTTPError, OSError) as error:
        host = getattr(api_client.configuration, "host", "?")
        raise ServiceUnavailableError(
            f"Kubernetes API at {host} unreachable while patching {target}: {type(error).__name__}"
        ) from error
    finally:
        api_client.close()
    containers = document.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    return PatchResult(
        namespace=patch.namespace,
        name=patch.name,
        generation=document.get("metadata", {}).get("generation"),
        images=[str(c.get("image")) for c in containers if isinstance(c, dict) and c.get("image")],
    )
