"""``modelops demo``: the whole lifecycle that exists so far, on embedded defaults."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

import typer

from modelops.cli.state import STATE, echo_table
from modelops.core.errors import ModelopsError

PROJECTS = ["credit_risk", "fraud"]
DEMO_ACTOR = "demo-ci"  # runs the gates, as a CI job would
DEMO_APPROVER = "demo-platform-team"  # approves production: never who trained or validated
# v2 retrains on a later window; train and validation labels stay known before the holdout.
LATER_WINDOWS: dict[str, dict[str, tuple[date, date]]] = {
    "credit_risk": {
        "train": (date(2021, 9, 1), date(2023, 6, 30)),
        "validation": (date(2023, 7, 1), date(2023, 12, 31)),
    },
    "fraud": {
        "train": (date(2025, 7, 22), date(2025, 10, 10)),
        "validation": (date(2025, 10, 11), date(2025, 10, 31)),
    },
}


def _step(text: str) -> None:
    typer.secho(f"\n== {text}", bold=True)


def _walk_to_production(project: str, version: str, reason: str) -> bool:
    """Gate and promote through every environment; False at the first failed gate."""
    from modelops.services import gate, promote

    settings = STATE.settings
    for environment in settings.environments:
        verdict = gate.validate(settings, project, version, against=environment, actor=DEMO_ACTOR)
        status = "passed" if verdict.passed else "FAILED"
        reference = (
            "the prevalence-only reference"
            if verdict.reference.version == "-"
            else f"{verdict.reference.role} v{verdict.reference.version}"
        )
        typer.echo(f"  gate v{version} vs {reference} ({environment}): {status}")
        if not verdict.passed:
            typer.echo(f"    failed: {'; '.join(verdict.failed_rules)}")
        if not verdict.passed:
            return False
        move = promote.promote(
            settings,
            project,
            version,
            environment,
            approve=True,
            approver=DEMO_APPROVER,
            reason=reason,
        )
        typer.echo(f"  {environment} now serves v{move.to_version}")
    return True


def _rollback_drill(project: str) -> None:
    """Roll production back where an earlier version served it; say why not elsewhere."""
    from modelops.services import promote

    settings = STATE.settings
    past = promote.past_holders(settings, project, "production")
    if len(past) < 2:
        serving = f"v{past[0]}" if past else "nothing"
        typer.echo(
            f"  {project}: production has only ever served {serving}; nothing to roll back to "
            f"(on a real incident: modelops rollback {project} --env production --reason ...)"
        )
        return
    move = promote.rollback(
        settings,
        project,
        "production",
        reason="demo: rollback drill",
        actor=DEMO_ACTOR,
    )
    typer.echo(
        f"  {project}: production rolled back from v{move.from_version} to v{move.to_version} "
        f"(ledger entry {move.entry.seq})"
    )


def demo(
    rows: Annotated[
        int | None, typer.Option(help="Labelled events per project (default: generator's).")
    ] = None,
) -> None:
    """Data, features, train v1, gate and promote it, train v2, gate it against production."""
    from modelops.config.project import load_project
    from modelops.services import data, features, gate, promote, train
    from modelops.services.report import to_markdown

    settings = STATE.settings
    _step("1. generating seeded example data")
    summaries = data.generate(settings, PROJECTS, rows=rows)
    for s in summaries:
        typer.echo(
            f"  {s.project}: {sum(t.rows for t in s.tables):,} rows, "
            f"positive rate {s.positive_rate:.2%}"
        )
    _step("2. applying feature definitions and materializing the online store")
    typer.echo(f"  {len(features.apply(settings))} Feast objects registered")
    end = max(t.end for s in summaries for t in s.tables) + timedelta(seconds=1)
    for view in features.materialize(settings, end):
        typer.echo(f"  {view.name}: {view.start:%Y-%m-%d} .. {view.end:%Y-%m-%d}")

    _step("3. training v1 and registering it with its lineage")
    first = {p: train.train(settings, p) for p in PROJECTS}
    echo_table(
        ["project", "version", "role", "holdout ROC-AUC", "PR-AUC", "cost/1000"],
        [
            [
                r.project,
                t.version,
                t.role,
                f"{t.metrics['holdout_roc_auc']:.3f}",
                f"{t.metrics['holdout_pr_auc']:.3f}",
                f"{t.metrics['holdout_cost_per_1000']:,.0f}",
            ]
            for r in first.values()
            for t in (r.baseline, r.candidate)
        ],
    )

    _step(
        "4. first model: the candidate or its logistic baseline, whichever the gate prefers, "
        "dev -> staging -> production"
    )
    for project, result in first.items():
        typer.echo(f"{project}:")
        for first_model in (result.candidate, result.baseline):
            reason = f"demo: first model ({first_model.role}), preferred by the gate"
            if _walk_to_production(project, first_model.version, reason):
                break
            typer.secho(
                f"  {project} v{first_model.version} ({first_model.role}) stays out of production",
                fg=typer.colors.YELLOW,
            )

    _step("5. training v2 on a later window and gating it against production")
    for project in PROJECTS:
        second = train.train(settings, project, windows=LATER_WINDOWS[project])
        version = second.candidate.version
        try:
            verdict = gate.validate(
                settings, project, version, against="production", actor=DEMO_ACTOR
            )
        except ModelopsError as exc:
            typer.secho(
                f"  {project} v{version}: gate could not evaluate: {exc}", fg=typer.colors.RED
            )
            continue
        typer.echo("")
        typer.echo(to_markdown(verdict, load_project(settings.resolved_projects_dir, project)))
        if verdict.passed:
            typer.secho(f"{project} v{version} beats production: promoting it", bold=True)
            _walk_to_production(
                project, version, f"demo: v{version} passed verdict {verdict.id} against production"
            )
        else:
            try:
                promote.promote(
                    settings,
                    project,
                    version,
                    "production",
                    approve=True,
                    approver=DEMO_APPROVER,
                    reason="demo: try anyway",
                )
            except ModelopsError as exc:
                typer.secho(f"{project} v{version} refused: {exc}", fg=typer.colors.YELLOW)

    _step("6. rollback drill: production back to its previous holder, no gate, recorded")
    for project in PROJECTS:
        _rollback_drill(project)

    _step("7. history")
    for project in PROJECTS:
        serving = promote.holders(settings, project)
        typer.echo(
            f"{project}: "
            + ", ".join(f"{env}=v{version}" for env, version in serving.items() if version)
        )
    from modelops.cli.lifecycle import history

    history(project=None, verify=True, env=None, at=None)
    typer.echo(f"\nMLflow UI: mlflow ui --backend-store-uri {settings.tracking_uri}")
