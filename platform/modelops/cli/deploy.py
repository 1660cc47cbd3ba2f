"""``modelops deploy``: write an environment's holder to the GitOps repository (or the cluster)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from modelops.cli.state import STATE


class SyncPolicy(StrEnum):
    auto = "auto"
    manual = "manual"


# The options of `deploy`, named once so that the command reads as its steps.
_Project = Annotated[str, typer.Argument(help="Project name.")]
_Env = Annotated[str, typer.Option("--env", help="Environment whose holder is deployed.")]
_Push = Annotated[
    bool, typer.Option("--push", help="Push the GitOps commit to the repo's remote (origin).")
]
_Direct = Annotated[
    bool,
    typer.Option(
        "--direct",
        help="No GitOps: patch the Deployment <project>-<env>-model-service through the "
        "Kubernetes API (kubeconfig or in-cluster credentials).",
    ),
]
_Replicas = Annotated[
    int | None,
    typer.Option(
        min=1, help="Replicas: the fixed count, or the autoscaler's floor when it is enabled."
    ),
]
_DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="Show the files (or patch) and commit message; change nothing."),
]
_ExpectVersion = Annotated[
    str | None,
    typer.Option(help="Refuse unless the ledger's holder is this version (CI: the image built)."),
]
_Namespace = Annotated[
    str | None,
    typer.Option(help="Kubernetes namespace of the service (default: models)."),
]
_Sync = Annotated[
    SyncPolicy | None,
    typer.Option(
        help="Argo CD sync of the Application: auto (prune, self-heal) or manual. Default: "
        "manual where promotions need an approval (production), else auto."
    ),
]
_Kubeconfig = Annotated[
    Path | None, typer.Option(help="With --direct: the kubeconfig (default: $KUBECONFIG).")
]
_Context = Annotated[str | None, typer.Option(help="With --direct: the kubeconfig context.")]
_Actor = Annotated[str | None, typer.Option(help="Who deploys (default: you).")]
_AsJson = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document (keys: docs/deploy-gitops.md)."),
]


def deploy(
    project: _Project,
    env: _Env,
    push: _Push = False,
    direct: _Direct = False,
    replicas: _Replicas = None,
    dry_run: _DryRun = False,
    expect_version: _ExpectVersion = None,
    namespace: _Namespace = None,
    sync: _Sync = None,
    kubeconfig: _Kubeconfig = None,
    context: _Context = None,
    actor: _Actor = None,
    as_json: _AsJson = False,
) -> None:
    """Deploy the version holding ENV in the ledger: Helm values and an Argo CD Application in
    the GitOps repository, one commit naming version, verdict, actor and the ledger's head."""
    from modelops.services import deploy as service

    result = service.deploy(
        STATE.settings,
        project,
        env,
        push=push,
        direct=direct,
        replicas=replicas,
        dry_run=dry_run,
        actor=actor,
        expect_version=expect_version,
        namespace=namespace,
        sync=None if sync is None else sync.value,
        kubeconfig=kubeconfig,
        kube_context=context,
    )
    if as_json:
        from modelops.cli.state import echo_json

        echo_json(result.to_dict())
        return
    release = result.release
    what = f"{release.project} {release.environment} v{release.version}"
    if result.direct is not None:
        import json

        target = f"{result.direct['namespace']}/{result.direct['deployment']}"
        if result.dry_run:
            typer.echo(f"would patch deployment {target} (strategic merge):")
            typer.echo(json.dumps(result.direct["patch"], indent=2))
            return
        typer.secho(
            f"{what}: patched deployment {target} to {release.image} "
            f"(generation {result.direct['generation']})",
            fg=typer.colors.GREEN,
        )
        return
    if result.dry_run:
        for path, text in result.files.items():
            typer.echo(f"--- {path}")
            typer.echo(text.rstrip("\n"))
        typer.echo("--- commit message")
        typer.echo(result.message.rstrip("\n"))
        typer.echo(f"(dry run: nothing written to {result.repo})")
        return
    short = (result.commit or "")[:12]
    for difference in result.restored:
        typer.echo(f"restored {difference.describe()}")
    if result.already_deployed:
        typer.echo(f"{what} already deployed (commit {short} in {result.repo})")
    else:
        typer.secho(
            f"{what} deployed: commit {short} in {result.repo} ({result.values_path}), "
            f"image {release.image}",
            fg=typer.colors.GREEN,
        )
    if result.pushed:
        typer.echo("pushed to origin")
