"""``modelops models``: registered versions, aliases, metrics and lineage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelops.cli.state import JSON_HELP, STATE, echo_json, echo_table

if TYPE_CHECKING:
    from modelops.services.registry import VersionInfo

app = typer.Typer(help="Registered model versions.", no_args_is_help=True)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _created(v: VersionInfo) -> datetime | None:
    return datetime.fromtimestamp(v.created / 1000, UTC) if v.created else None


def version_json(project: str, v: VersionInfo) -> dict[str, Any]:
    """One version as ``models show --json`` prints it (and ``models list --json`` lists it)."""
    return {
        "project": project,
        "model_name": v.model_name,
        "version": v.version,
        "role": None if v.role == "?" else v.role,
        "kind": v.kind,
        "aliases": list(v.aliases),
        "created_at": _created(v),
        "run_id": v.run_id or None,
        "description": v.description or None,
        "metrics": dict(sorted(v.metrics.items())),
        "tags": dict(sorted(v.tags.items())),
    }


@app.command("list")
def list_versions(
    project: Annotated[str, typer.Argument(help="Project name.")],
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Every version of the project's model with aliases and headline holdout metrics."""
    from modelops.services import registry

    versions = registry.list_versions(STATE.settings, project)
    if as_json:
        from modelops.services.context import project as project_for

        echo_json(
            {
                "project": project,
                "model_name": project_for(STATE.settings, project).spec.registered_model,
                "versions": [version_json(project, v) for v in versions],
            }
        )
        return
    echo_table(
        ["version", "role", "kind", "aliases", "created (UTC)", "ROC-AUC", "PR-AUC", "cost/1000"],
        [
            [
                v.version,
                v.role,
                v.kind or "-",
                ",".join(v.aliases) or "-",
                f"{_created(v) or datetime.fromtimestamp(0, UTC):%Y-%m-%d %H:%M}",
                _fmt(v.metrics.get("holdout_roc_auc")),
                _fmt(v.metrics.get("holdout_pr_auc")),
                _fmt(v.metrics.get("holdout_cost_per_1000"), ",.0f"),
            ]
            for v in versions
        ],
    )


@app.command()
def sync(project: Annotated[str, typer.Argument(help="Project name.")]) -> None:
    """Repair MLflow aliases that lag behind the ledger (after MLflow failed mid-promotion),
    and close registrations a killed ``train`` left open on any host."""
    from modelops.services import promote, registry

    changed = promote.sync_aliases(STATE.settings, project)
    if not changed:
        typer.echo(f"{project}: every alias already matches the ledger")
    for environment, (before, holder) in changed.items():
        typer.echo(
            f"{project}: alias '{environment}' "
            f"{'v' + before if before else '(none)'} -> {'v' + holder if holder else '(none)'}"
        )
    for line in registry.clean_up_interrupted(STATE.settings, project):
        typer.echo(f"{project}: {line}")


@app.command()
def show(
    project: Annotated[str, typer.Argument(help="Project name.")],
    version: Annotated[str, typer.Argument(help="Version number.")],
    as_json: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """One version: description, aliases, every metric and its full lineage."""
    from modelops.services import registry

    v = registry.show_version(STATE.settings, project, version)
    if as_json:
        echo_json(version_json(project, v))
        return
    typer.echo(f"{v.model_name} version {v.version} ({v.role}, {v.kind or 'kind not recorded'})")
    typer.echo(f"  {v.description}")
    typer.echo(f"  aliases: {', '.join(v.aliases) or '-'}")
    typer.echo(f"  run: {v.run_id}")
    typer.echo("lineage:")
    for key in sorted(v.tags):
        typer.echo(f"  {key.removeprefix('modelops.')}: {v.tags[key]}")
    typer.echo("metrics:")
    for key in sorted(v.metrics):
        typer.echo(f"  {key}: {v.metrics[key]:.4g}")
