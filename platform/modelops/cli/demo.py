"""``modelops demo``: the whole lifecycle that exists so far, on embedded defaults."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from modelops.cli.state import STATE, echo_table
from modelops.core.errors import ModelopsError

if TYPE_CHECKING:
    from modelops.config.project import Windows

DEMO_ACTOR = "demo-ci"  # runs the gates, as a CI job would
DEMO_APPROVER = "demo-platform-team"  # approves production: never who trained or validated
DEMO_REQUESTS = 300  # single-entity requests sent to each local service


def later_windows(windows: Windows) -> dict[str, tuple[date, date]]:
    """v2's windows: train moves forward by a third of the validation window, validation keeps
    its end.

    Validation still ends where project.yaml ends it, so its labels stay known before the holdout
    starts, and the holdout (what the gate compares on) is unchanged.
    """
    validation_days = (windows.validation.end - windows.validation.start).days + 1
    shift = timedelta(days=max(1, validation_days // 3))
    train_end = windows.train.end + shift
    return {
        "train": (windows.train.start + shift, train_end),
        "validation": (train_end + timedelta(days=1), windows.validation.end),
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


def _serve_and_send(project: str, requests: int) -> None:
    """Start the production service, send ``requests`` single-entity requests, stop it."""
    import socket

    from modelops.services import package, traffic

    settings = STATE.settings
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    plan = package.plan_serve(settings, project, "production")
    log_file = settings.resolved_state_dir / "serving" / f"{project}-production.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as server_log:
        process = package.start_server(plan, port, "127.0.0.1", stdout=server_log)
    base = f"http://127.0.0.1:{port}"
    try:
        ready = traffic.wait_ready(base, timeout=180, process=process)
        bodies = traffic.request_bodies(settings, project, requests)
        result = traffic.send(base, bodies, concurrency=8)
    finally:
        package.stop_server(process)
    typer.echo(f"  {project}: server output in {log_file}")
    typer.echo(
        f"  {project} v{plan.version} at {base} (ready in {ready:.1f} s): {result.sent} requests, "
        f"{result.failed} failed, p50 {result.percentile(50):.1f} ms, p99 "
        f"{result.percentile(99):.1f} ms, {result.per_second:.0f} req/s at concurrency 8"
    )
    for body, answer in result.samples:
        typer.echo(
            f"    {json.dumps(body)} -> score {answer.get('score')}, decision "
            f"{answer.get('decision')}, v{answer.get('model_version')}"
        )
    for error in result.errors:
        typer.secho(f"    {error}", fg=typer.colors.RED)


def _labels_in_time(project: str) -> tuple[bool, str]:
    """Whether labels arrive within the project's probation window (else no monitored
    performance can judge a new version while it is on probation)."""
    from modelops.services.context import project as project_for
    from modelops.services.datasets import read_labels

    settings = STATE.settings
    loaded = project_for(settings, project)
    spec = loaded.spec
    if not spec.label.available_at:
        return False, "labels carry no availability time"
    labels = read_labels(settings, loaded)
    delay = labels[spec.label.available_at] - labels[spec.label.timestamp]
    longest = delay.max().total_seconds() / 86400
    probation = spec.monitoring.probation_days
    said = f"labels up to {longest:.0f} days late, probation {probation:g} days"
    return longest < probation, said


def _monitoring_loop(project: str) -> None:
    """A week of simulated production traffic, logged as the service logs it, then one
    monitoring run of production against the version's own training data."""
    from modelops.services import monitor, simulate

    settings = STATE.settings
    in_time, said = _labels_in_time(project)
    if not in_time:
        typer.echo(f"  {project}: skipped ({said})")
        return
    typer.echo(f"  {project}: {said}")
    healthy = simulate.simulate(settings, project, scenario="healthy", days=7)
    run = monitor.run(settings, project, as_of=healthy.period[1], actor=DEMO_ACTOR)
    typer.echo(
        f"  {healthy.start}..{healthy.end}: {healthy.logged:,} predictions of healthy traffic "
        f"logged; monitor run {run.run_id}: {run.decision.headline()}"
    )
    typer.echo(f"  Evidently report: {run.report_html or run.summary_json}")


def demo(
    rows: Annotated[
        int | None, typer.Option(help="Labelled events per project (default: generator's).")
    ] = None,
) -> None:
    """Data, features, train v1, gate and promote it, train v2, gate it against production.

    The demo runs every project under the projects folder that has a data.py (an example-data
    generator); v2 retrains on windows moved forward from project.yaml's (:func:`later_windows`).
    """
    from modelops.config.project import load_project
    from modelops.services import data, features, gate, promote, train
    from modelops.services.report import to_markdown

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
    for project in projects:
        loaded = load_project(settings.resolved_projects_dir, project)
        second = train.train(settings, project, windows=later_windows(loaded.spec.windows))
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
        typer.echo(to_markdown(verdict, loaded))
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
    for project in projects:
        _rollback_drill(project)

    _step("7. packaging each production version as a BentoML prediction service")
    packaged = _package_production(projects)
    _step("8. deploying through GitOps commits: staging and production")
    for project in packaged:
        _deploy(project)
    _step("9. serving production locally: online features, the serving scorer, a prediction log")
    for project in packaged:
        _serve_and_send(project, requests=DEMO_REQUESTS)

    _step(
        "10. monitoring production: a week of simulated traffic, then Evidently drift, data "
        "quality and performance against the version's training data"
    )
    for project in packaged:
        _monitoring_loop(project)
    _step("11. status page")
    from modelops.services import status_page

    site = status_page.build(settings)
    typer.echo(
        f"  {site.index} ({site.ledger_entries} ledger entries, {site.gate_reports} gate reports, "
        f"{site.monitoring_runs} monitoring runs)"
    )

    _step("12. history")
    for project in projects:
        serving = promote.holders(settings, project)
        typer.echo(
            f"{project}: "
            + ", ".join(f"{env}=v{version}" for env, version in serving.items() if version)
        )
    from modelops.cli.lifecycle import history

    history(project=None, verify=True, env=None, at=None)
    typer.echo(f"\nMLflow UI: mlflow ui --backend-store-uri {settings.tracking_uri}")
