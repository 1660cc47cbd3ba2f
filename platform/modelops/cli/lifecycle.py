"""Lifecycle verbs: ``validate``, ``promote``, ``rollback``, ``history``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from modelops.cli.state import STATE, echo_table
from modelops.core.errors import ModelopsError


def validate(
    project: Annotated[str, typer.Argument(help="Project name.")],
    version: Annotated[str, typer.Argument(help="Candidate version.")],
    against: Annotated[
        str, typer.Option(help="Environment whose holder the candidate must beat.")
    ] = "production",
    report_out: Annotated[
        Path | None, typer.Option(help="Also write the Markdown report here.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option(help="Also write the verdict JSON here.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who runs the gate (default: you).")] = None,
    allow_feature_change: Annotated[
        bool,
        typer.Option(
            help="Compare even though feature definitions changed since a model was trained "
            "(recorded in the verdict)."
        ),
    ] = False,
    no_record: Annotated[
        bool,
        typer.Option(
            "--no-record",
            help="Compute and print the verdict, write nothing to the ledger or MLflow "
            "(pull-request jobs: their code is not trusted to record verdicts).",
        ),
    ] = False,
) -> None:
    """Gate a candidate against an environment's holder on the same holdout rows.

    Exit code 0: passed; 1: a rule failed; 2: the gate could not evaluate (never a pass).
    """
    from modelops.cli.progress import shown
    from modelops.config.project import load_project
    from modelops.services import gate, promote
    from modelops.services.report import to_markdown

    settings = STATE.settings
    with shown():
        verdict = gate.validate(
            settings,
            project,
            version,
            against=against,
            actor=actor,
            allow_feature_change=allow_feature_change,
            record=not no_record,
        )
    spec = load_project(settings.resolved_projects_dir, project)
    report = to_markdown(verdict, spec)
    if report_out:
        report_out.write_text(report)
    if json_out:
        json_out.write_text(verdict.to_json())
    typer.echo(report)
    for warning in verdict.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if not verdict.passed:
        failed = [r.name for r in verdict.rules if not r.passed]
        raise gate.GateFailedError(
            f"{verdict.model_name} v{version} failed the gate against {against}: "
            + "; ".join(failed)
        )
    typer.secho(f"verdict {verdict.id}: passed", fg=typer.colors.GREEN)
    if no_record:
        typer.echo("not recorded (--no-record): this verdict allows no promotion")
        return
    move = promote.apply_policy(settings, project, verdict)
    if move is not None:
        typer.secho(
            f"staging now serves v{move.to_version} (project policy auto_promote_staging)",
            fg=typer.colors.GREEN,
        )


def promote(
    project: Annotated[str, typer.Argument(help="Project name.")],
    version: Annotated[str, typer.Argument(help="Version to promote.")],
    to: Annotated[str, typer.Option("--to", help="Target environment.")],
    approve: Annotated[
        bool, typer.Option(help="Approve it (required where the project says so).")
    ] = False,
    approver: Annotated[
        str | None, typer.Option(help="Approver (default: MODELOPS_ACTOR, then git user).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why; required with --approve.")] = None,
) -> None:
    """Move an environment to a version that passed the gate against its current holder."""
    from modelops.services import promote as service

    move = service.promote(
        STATE.settings, project, version, to, approve=approve, approver=approver, reason=reason
    )
    was = f"v{move.from_version}" if move.from_version else "nothing"
    typer.secho(
        f"{move.model_name}: {move.environment} now serves v{move.to_version} "
        f"(was {was}); ledger entry {move.entry.seq}",
        fg=typer.colors.GREEN,
    )


def rollback(
    project: Annotated[str, typer.Argument(help="Project name.")],
    env: Annotated[str, typer.Option("--env", help="Environment to roll back.")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    to: Annotated[str | None, typer.Option("--to", help="A version that held env before.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who (default: you).")] = None,
) -> None:
    """Restore the previous holder of an environment; no gate, always recorded."""
    from modelops.services import deploy as deploy_service
    from modelops.services import promote as service

    move = service.rollback(STATE.settings, project, env, reason=reason, to_version=to, actor=actor)
    typer.secho(
        f"{move.model_name}: {move.environment} rolled back from v{move.from_version} "
        f"to v{move.to_version}; ledger entry {move.entry.seq}",
        fg=typer.colors.GREEN,
    )
    if not deploy_service.is_deployed(STATE.settings, project, env):
        typer.echo(f"GitOps: {project} was never deployed to {env}; no values to rewrite")
        return
    try:
        recorded = deploy_service.record_rollback(
            STATE.settings,
            project,
            env,
            from_version=move.from_version,
            to_version=move.to_version,
            reason=reason,
            actor=move.entry.actor,
        )
    except ModelopsError as error:
        typer.secho(
            f"ledger moved; GitOps not updated: {error}; run 'modelops deploy {project} "
            f"--env {env}'",
            fg=typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(3) from error
    typer.echo(
        "GitOps: "
        + (
            "already recorded"
            if recorded.already_deployed
            else f"commit {(recorded.commit or '?')[:12]}"
        )
        + f" in {recorded.repo}"
    )


def history(
    project: Annotated[str | None, typer.Argument(help="Project (default: all).")] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Check the hash chain, the holder table, the MLflow aliases and the GitOps "
            "values; exit 1 when anything disagrees (a promotion not deployed yet is a "
            "warning).",
        ),
    ] = False,
    anchor: Annotated[
        bool,
        typer.Option(
            "--anchor",
            help="Print the ledger's head (<seq>:<hash>) to keep outside its database.",
        ),
    ] = False,
    expect_anchor: Annotated[
        str | None,
        typer.Option(
            "--expect-anchor",
            help="With --verify: a head printed earlier; truncation or a rewrite before it fails.",
        ),
    ] = None,
    env: Annotated[str | None, typer.Option(help="Only this environment.")] = None,
    at: Annotated[
        datetime | None,
        typer.Option(help="Which version held --env at this time (UTC)?"),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON document instead (keys: docs/cli-json.md)."),
    ] = False,
) -> None:
    """The ledger: every validation, approval, promotion, refusal and rollback."""
    if at is not None:
        _holder_at(project, env, at, as_json)
    elif as_json:
        _history_json(project, env, verify, anchor, expect_anchor)
    else:
        _history_table(project, env, verify, anchor, expect_anchor)


def _holder_at(project: str | None, env: str | None, at: datetime, as_json: bool) -> None:
    from modelops.cli.state import echo_json
    from modelops.services import promote as service

    if not (project and env):
        raise ModelopsError("--at needs a project and --env")
    when = at if at.tzinfo else at.replace(tzinfo=UTC)
    holder = service.holder_at(STATE.settings, project, env, when)
    if as_json:
        echo_json({"project": project, "environment": env, "at": when, "version": holder})
        return
    typer.echo(
        f"{project} {env} at {when:%Y-%m-%d %H:%M:%S}: "
        + (f"v{holder}" if holder else "no version")
    )


def _history_json(
    project: str | None, env: str | None, verify: bool, anchor: bool, expect_anchor: str | None
) -> None:
    from modelops.cli.state import echo_json
    from modelops.services import promote as service

    settings = STATE.settings
    entries = service.history(settings, project, env)
    head = service.anchor(settings) if anchor else None
    result = service.verify(settings, project, expect_anchor) if verify and not anchor else None
    echo_json(
        {
            "entries": [
                {
                    "seq": e.seq,
                    "at": e.at,
                    "action": e.action,
                    "project": e.project,
                    "environment": e.environment,
                    "from_version": e.from_version,
                    "to_version": e.to_version,
                    "actor": e.actor,
                    "verdict_id": e.verdict_id,
                    "reason": e.reason or None,
                    "details": e.details,
                    "hash": e.hash,
                }
                for e in entries
            ],
            "anchor": head,
            "verification": None
            if result is None
            else {
                "ok": result.ok,
                "checked": result.checked,
                "anchor": result.anchor or None,
                "keyed_from": result.keyed_from,
                "problems": list(result.problems),
                "deploys_pending": list(result.deploys_pending),
            },
        }
    )
    if result is not None and not result.ok:
        raise LedgerBrokenError(f"ledger verification failed: {len(result.problems)} problem(s)")


def _history_table(
    project: str | None, env: str | None, verify: bool, anchor: bool, expect_anchor: str | None
) -> None:
    from modelops.services import promote as service

    settings = STATE.settings
    echo_table(
        ["#", "time (UTC)", "action", "project", "env", "from", "to", "actor", "verdict", "reason"],
        [
            [
                str(e.seq),
                f"{e.at:%Y-%m-%d %H:%M:%S}",
                e.action,
                e.project,
                e.environment,
                e.from_version or "-",
                e.to_version or "-",
                e.actor,
                (e.verdict_id or "-")[:8],
                e.reason[:80],
            ]
            for e in service.history(settings, project, env)
        ],
    )
    if anchor:
        typer.echo(service.anchor(settings))
        return
    if not verify:
        return
    result = service.verify(settings, project, expect_anchor)
    for warning in result.deploys_pending:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if not result.ok:
        for problem in result.problems:
            typer.secho(problem, fg=typer.colors.RED, err=True)
        raise LedgerBrokenError(f"ledger verification failed: {len(result.problems)} problem(s)")
    typer.secho(
        f"ledger verified: {result.checked} entries, hash chain intact; anchor "
        f"{result.anchor or '-'} (keep it elsewhere: --expect-anchor next time)",
        fg=typer.colors.GREEN,
    )


class LedgerBrokenError(ModelopsError):
    exit_code = 1
