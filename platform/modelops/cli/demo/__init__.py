"""``modelops demo``: the whole lifecycle that exists so far, on embedded defaults.

data -> features -> train v1 -> gate -> promote -> package -> GitOps deploy -> serve -> traffic ->
drift -> retrain v2 -> gate -> promote -> a bad promotion -> degradation -> automatic rollback ->
status page, with a timeline of wall-clock and simulated times.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from modelops.cli.demo.common import DEMO_ACTOR, DEMO_APPROVER, DEMO_REQUESTS, TIMELINE, _step
from modelops.cli.demo.local import _send, _Service, _start_service, _stop_service
from modelops.cli.demo.story import _labels_in_time, _monitoring_story, estimated_over_time
from modelops.cli.state import STATE, echo_table


def _walk_to_production(project: str, version: str, reason: str) -> bool:
    """Gate and promote through every environment (the platform's one promotion path); False at
    the first failed gate."""
    from modelops.services.workflows import promotion

    settings = STATE.settings

    def said_gate(step: promotion.GateStep) -> None:
        verdict = step.verdict
        reference = (
            "the prevalence-only reference"
            if verdict.reference.version == "-"
            else f"{verdict.reference.role} v{verdict.reference.version}"
        )
        status = "passed" if step.passed else "FAILED"
        typer.echo(f"  gate v{version} vs {reference} ({step.environment}): {status}")
        if not step.passed:
            typer.echo(f"    failed: {'; '.join(verdict.failed_rules)}")

    result = promotion.walk(
        settings,
        project,
        promotion.WalkOptions(
            target=settings.environments[-1],
            candidates=[version],
            reason=lambda *_: reason,
            actor=DEMO_ACTOR,
            approver=DEMO_APPROVER,
            on_gate=said_gate,
            on_move=lambda m: typer.echo(f"  {m.environment} now serves v{m.version}"),
        ),
    )
    return result.reached


def _package_production(projects: list[str]) -> list[str]:
    """Package each project's production holder; the projects that have one."""
    from modelops.services import package, promote

    settings = STATE.settings
    done = []
    for project in projects:
        holder = promote.holders(settings, project).get("production")
        if not holder:
            typer.echo(f"  {project}: nothing holds production; nothing to package")
            continue
        result = package.package(settings, project, holder, environment="production")
        skew = result.skew.report
        typer.echo(
            f"  {project} v{holder}: Bento {result.bento_tag} (skew: {skew.mismatched_entities} "
            f"of {skew.entities} entities differ online; {result.scorer.detail})"
        )
        done.append(project)
    return done


def _deploy(project: str) -> None:
    from modelops.services import deploy, promote

    settings = STATE.settings
    for environment, holder in promote.holders(settings, project).items():
        if not holder or environment == settings.environments[0]:
            continue
        result = deploy.deploy(settings, project, environment, actor=DEMO_ACTOR)
        subject = result.message.splitlines()[0] if result.message else ""
        said = "already deployed" if result.commit is None else f"commit {result.commit[:12]}"
        typer.echo(f"  {result.values_path}: {said}  {subject}")


def demo(
    rows: Annotated[
        int | None, typer.Option(help="Labelled events per project (default: generator's).")
    ] = None,
) -> None:
    """The whole lifecycle: data to production, serving, then drift, a monitor-driven retraining,
    a bad promotion and its automatic rollback, with a timeline and the status page.

    Every project under the projects folder that has a data.py (an example-data generator) goes
    to production and is served; the monitoring story (steps 8-12) runs for the projects whose
    labels arrive within their probation window.
    """
    TIMELINE.reset()
    projects = _data_and_features(rows)
    _first_models_to_production(projects)
    _step("5. packaging each production version as a BentoML prediction service")
    packaged = _package_production(projects)
    _step("6. deploying through GitOps commits: staging and production")
    for project in packaged:
        _deploy(project)
        TIMELINE.mark(f"{project}: GitOps commits for staging and production")
    _serve_and_monitor(packaged)
    _status_and_history(projects)


def _data_and_features(rows: int | None) -> list[str]:
    """Steps 1-2: seeded data for every project with a generator, features applied and
    materialized; the projects."""
    from modelops.services import data, features

    settings = STATE.settings
    projects = data.projects_with_data(settings)  # none: generate says so, naming the folder
    _step("1. generating seeded example data")
    summaries = data.generate(settings, projects, rows=rows)
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
    return projects


def _first_models_to_production(projects: list[str]) -> None:
    """Steps 3-4: v1 trained, then the candidate or its baseline walked to production."""
    from modelops.services import train

    settings = STATE.settings
    _step("3. training v1 and registering it with its lineage")
    first = {p: train.train(settings, p) for p in projects}
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
    TIMELINE.mark(f"v1 trained and registered: {', '.join(projects)}")
    _step(
        "4. first model: the candidate or its logistic baseline, whichever the gate prefers, "
        "dev -> staging -> production"
    )
    for project, result in first.items():
        typer.echo(f"{project}:")
        for first_model in (result.candidate, result.baseline):
            reason = f"demo: first model ({first_model.role}), preferred by the gate"
            if _walk_to_production(project, first_model.version, reason):
                TIMELINE.mark(f"{project}: v{first_model.version} gated and promoted to production")
                break
            typer.secho(
                f"  {project} v{first_model.version} ({first_model.role}) stays out of production",
                fg=typer.colors.YELLOW,
            )


def _serve_and_monitor(packaged: list[str]) -> None:
    """Step 7, then the monitoring story for the projects whose labels arrive in time."""
    monitored = []
    for project in packaged:
        in_time, said = _labels_in_time(project)
        if in_time:
            monitored.append(project)
        else:
            typer.echo(f"  {project}: not monitored in the demo ({said})")
    _step(
        "7. serving production locally (modelops serve --reload-on-promotion): online features, "
        "the serving scorer, a prediction log"
    )
    services: dict[str, _Service] = {}
    try:
        for project in packaged:
            service = _start_service(project)
            try:
                _send(service, DEMO_REQUESTS)
            finally:
                if project in monitored:
                    services[project] = service
                else:
                    _stop_service(service)
        _monitoring_story(monitored, services)
        late = [p for p in packaged if p not in monitored]
        if late:
            _step("12b. labels a year late: the monitor's estimated cost per 1,000 over time")
            for project in late:
                estimated_over_time(project)
    finally:
        for service in services.values():
            _stop_service(service)


def _status_and_history(projects: list[str]) -> None:
    """Steps 13-14: the status page, who serves where, the verified ledger and the timeline."""
    from modelops.cli.lifecycle import history
    from modelops.services import promote, status_page

    settings = STATE.settings
    _step("13. status page")
    site = status_page.build(settings)
    typer.echo(
        f"  {site.index} ({site.ledger_entries} ledger entries, {site.gate_reports} gate reports, "
        f"{site.monitoring_runs} monitoring runs)"
    )
    TIMELINE.mark(f"status page written: {site.index}")
    _step("14. history")
    for project in projects:
        serving = promote.holders(settings, project)
        typer.echo(
            f"{project}: "
            + ", ".join(f"{env}=v{version}" for env, version in serving.items() if version)
        )
    history(project=None, verify=True, env=None, at=None)
    typer.echo("\nTimeline (wall clock, since start, simulated time):")
    TIMELINE.echo()
    typer.echo(f"\nMLflow UI: mlflow ui --backend-store-uri {settings.tracking_uri}")
