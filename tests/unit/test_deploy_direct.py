"""``modelops deploy --direct`` at the HTTP level, against a mock Kubernetes API server (kmock).

No live cluster runs in this suite: kmock's ``KubernetesEmulator`` serves the API over real HTTP
on localhost, the official ``kubernetes`` client talks to it through a kubeconfig, and the tests
assert the request it received (method, path, content type, query, body) and the one line a 404
or a 403 turns into. The client is synchronous, so it runs in a thread while the server answers
on the test's event loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kmock as km
import pytest
import yaml
from test_deploy import promote, settings  # noqa: F401  # the fixture, and ledger set-up

from modelops.config.settings import Settings
from modelops.core.errors import ConfigError
from modelops.integrations import kubernetes as kubernetes_io
from modelops.services import deploy as service

pytestmark = pytest.mark.asyncio

DEPLOYMENTS = km.resource("apps", "v1", "deployments")
NAMESPACE = "models"
NAME = "fraud-production-model-service"
PATH = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{NAME}"
TOKEN = "test-token-not-a-secret"


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "mock", "cluster": {"server": server}}],
                "users": [{"name": "deployer", "user": {"token": TOKEN}}],
                "contexts": [{"name": "mock", "context": {"cluster": "mock", "user": "deployer"}}],
                "current-context": "mock",
            }
        )
    )
    return path


def seed(handler: Any, name: str = NAME) -> None:
    """A Deployment as the chart renders it (trimmed)."""
    handler.objects[DEPLOYMENTS, NAMESPACE, name] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "generation": 1},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/instance": "fraud-production"}},
            "template": {
                "metadata": {"labels": {"modelops.io/model-version": "2"}},
                "spec": {"containers": [{"name": "bentoml", "image": "old:v2"}]},
            },
        },
    }


@pytest.fixture
def server(kmock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return kubeconfig(tmp_path, str(kmock.url).rstrip("/"))


def patches(handler: Any) -> list[Any]:
    return list(handler["patch"])


async def test_direct_patches_image_version_label_annotation_and_env(
    kmock: Any,
    server: Path,
    settings: Settings,  # noqa: F811
) -> None:
    seed(kmock)
    promote(settings, "fraud", "production", "4")

    result = await asyncio.to_thread(
        service.deploy, settings, "fraud", "production", direct=True, kubeconfig=server, actor="eve"
    )

    [request] = patches(kmock)
    assert request.url.path == PATH
    assert request.headers["Content-Type"] == "application/strategic-merge-patch+json"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert dict(request.params) == {"fieldManager": "modelops"}
    image = "registry.local/modelops/modelops-fraud:v4-444444444444"
    annotations = {
        "modelops.io/model-version": "4",
        "modelops.io/bento-tag": "modelops-fraud:v4-444444444444",
        "modelops.io/deployed-by": "eve",
    }
    assert request.data == {
        "metadata": {"labels": {"modelops.io/model-version": "4"}, "annotations": annotations},
        "spec": {
            "template": {
                "metadata": {
                    "labels": {"modelops.io/model-version": "4"},
                    "annotations": annotations,
                },
                "spec": {
                    "containers": [
                        {
                            "name": "bentoml",
                            "image": image,
                            "env": [{"name": "MODELOPS_MODEL_VERSION", "value": "4"}],
                        }
                    ]
                },
            }
        },
    }
    assert result.direct is not None and result.direct["deployment"] == NAME
    assert result.commit is None and not settings.resolved_gitops_repo.exists()
    stored = kmock.objects[DEPLOYMENTS, NAMESPACE, NAME]
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == image


async def test_replicas_and_namespace_reach_the_patch(
    kmock: Any,
    server: Path,
    settings: Settings,  # noqa: F811
) -> None:
    kmock.objects[DEPLOYMENTS, "fraud-prod", NAME] = {"metadata": {"name": NAME}}
    promote(settings, "fraud", "production", "4")

    await asyncio.to_thread(
        service.deploy,
        settings,
        "fraud",
        "production",
        direct=True,
        kubeconfig=server,
        replicas=5,
        namespace="fraud-prod",
    )

    [request] = patches(kmock)
    assert request.url.path == f"/apis/apps/v1/namespaces/fraud-prod/deployments/{NAME}"
    assert request.data["spec"]["replicas"] == 5


async def test_a_missing_deployment_is_one_clear_line(
    kmock: Any,
    server: Path,
    settings: Settings,  # noqa: F811
) -> None:
    promote(settings, "fraud", "production", "4")

    with pytest.raises(kubernetes_io.KubernetesError) as caught:
        await asyncio.to_thread(
            service.deploy, settings, "fraud", "production", direct=True, kubeconfig=server
        )

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"Kubernetes API: deployment {NAMESPACE}/{NAME} not found: is the chart installed there"
    )
    assert "(HTTP 404" in message
    assert [r.url.path for r in patches(kmock)] == [PATH]


async def test_a_forbidden_patch_is_one_clear_line(
    kmock: Any,
    server: Path,
    settings: Settings,  # noqa: F811
) -> None:
    seed(kmock)
    status = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "reason": "Forbidden",
        "code": 403,
        "message": f'deployments.apps "{NAME}" is forbidden: User "ci" cannot patch resource\n'
        "second line",
    }
    kmock["patch", km.name(NAME)] << 403 << status
    promote(settings, "fraud", "production", "4")

    with pytest.raises(kubernetes_io.KubernetesError) as caught:
        await asyncio.to_thread(
            service.deploy, settings, "fraud", "production", direct=True, kubeconfig=server
        )

    message = str(caught.value)
    assert "\n" not in message
    assert "forbidden: the credentials may not patch deployments.apps" in message
    assert message.endswith(
        f'(HTTP 403: deployments.apps "{NAME}" is forbidden: User "ci" cannot patch resource)'
    )


async def test_a_dry_run_or_a_refusal_sends_nothing(
    kmock: Any,
    server: Path,
    settings: Settings,  # noqa: F811
) -> None:
    seed(kmock)
    with pytest.raises(service.DeployError, match="nothing holds production"):
        await asyncio.to_thread(
            service.deploy, settings, "fraud", "production", direct=True, kubeconfig=server
        )
    promote(settings, "fraud", "production", "4")
    result = await asyncio.to_thread(
        service.deploy,
        settings,
        "fraud",
        "production",
        direct=True,
        dry_run=True,
        kubeconfig=server,
    )
    assert result.direct is not None and result.direct["generation"] is None
    assert result.direct["patch"]["spec"]["template"]["spec"]["containers"][0]["name"] == "bentoml"
    assert patches(kmock) == []
    with pytest.raises(service.DeployError, match="drop --push"):
        service.deploy(settings, "fraud", "production", direct=True, push=True)


async def test_the_command_reports_the_patched_deployment(
    kmock: Any,
    server: Path,
    settings: Settings,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from modelops.cli.main import main

    seed(kmock)
    promote(settings, "fraud", "production", "4")
    monkeypatch.setenv("MODELOPS_ROOT", str(settings.root))

    def run() -> int:
        try:
            main(
                ["deploy", "fraud", "--env", "production", "--direct", "--kubeconfig", str(server)]
            )
        except SystemExit as done:
            return int(done.code or 0)
        return 0

    assert await asyncio.to_thread(run) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"fraud production v4: patched deployment {NAMESPACE}/{NAME} to "
        "registry.local/modelops/modelops-fraud:v4-444444444444"
    )
    assert len(patches(kmock)) == 1


async def test_unusable_credentials_are_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    patch = kubernetes_io.DeploymentPatch(namespace="m", name="d", container="c", image="i:1")
    with pytest.raises(ConfigError, match=f"kubeconfig {missing}"):
        await asyncio.to_thread(kubernetes_io.patch_deployment, patch, kubeconfig=missing)
