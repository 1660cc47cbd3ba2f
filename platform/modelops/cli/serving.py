"""Serving verbs: ``package``, ``serve``, ``skew``."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

from modelops.cli.state import STATE, echo_table
from modelops.core.errors import ModelopsError

ENTITIES_HELP = "Entities whose offline and online features are compared."


class SkewExceededError(ModelopsError):
    """More entities differ between the stores than serving.max_skew_share allows."""

    exit_code = 1


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    return repr(value) if isinstance(value, str) else str(value)


def _print_skew(result: Any) -> None:
    report = result.report
    typer.echo(
        f"{result.project}: {report.entities} entities compared as of "
        f"{result.as_of:%Y-%m-%d %H:%M:%S} UTC (offline store vs online store, feature service "
        f"'{result.feature_service}', numbers within {report.rel_tol:g} relative)"
    )
    rows = []
    for f in report.features:
        worst = "; ".join(
            f"{m.entity}: {_value(m.offline)} vs {_value(m.online)}"
            + (f" (rel {m.difference:.2g})" if math.isfinite(m.difference) else "")
            for m in f.worst
        )
        rows.append([f.feature, f"{f.mismatches}/{f.compared}", worst or "-"])
    echo_table(["feature", "mismatches", "worst (offline vs online)"], rows)
    typer.echo(
        f"{report.mismatched_entities} of {report.entities} entities differ "
        f"({report.share:.1%}; serving.max_skew_share {result.max_share:.1%})"
    )


def _print_package(result: Any) -> None:
    skew_ = result.skew.report
    high, review, low = result.actions
    typer.echo(
        f"checked: artifact sha256 {result.artifact_sha256[:12]}…; skew "
        f"{skew_.mismatched_entities}/{skew_.entities} entities; {result.scorer.detail}"
    )
    typer.echo(
        f"decisions: {high} at score >= {result.threshold:.6g}, {review} at >= "
        f"{result.review_from:.6g}, else {low}"
        + (f"; shadow v{result.shadow_version}" if result.shadow_version else "")
    )
    if result.ranges:
        typer.echo(f"ranges: {result.ranges}")
    verb = "kept existing" if result.reused else "built"
    typer.secho(f"{verb} Bento {result.bento_tag}", fg=typer.colors.GREEN)
    if result.record is not None:
        typer.echo(
            f"  release record: {len(result.record.files)} files and the manifest verified, "
            f"signed by release key {result.record.key_id}"
            + ("" if result.reused else "; recorded in the ledger")
        )
    typer.echo(f"  store: {result.bentoml_home} (export BENTOML_HOME={result.bentoml_home})")


def skew(
    project: Annotated[str, typer.Argument(help="Project name.")],
    entities: Annotated[int, typer.Option(min=1, help=ENTITIES_HELP)] = 100,
) -> None:
    """Compare offline (training) and online (serving) features of the latest entities.

    Exit code 0: within serving.max_skew_share; 1: above it.
    """
    from modelops.services.skew import check_skew

    result = check_skew(STATE.settings, project, entities)
    _print_skew(result)
    if result.exceeded:
        raise SkewExceededError(
            f"train/serve skew in {', '.join(result.report.skewed_features)}; "
            f"{result.report.share:.1%} of entities differ (serving.max_skew_share "
            f"{result.max_share:.1%})"
        )


def package(
    project: Annotated[str, typer.Argument(help="Project name.")],
    version: Annotated[str, typer.Argument(help="Registered model version.")],
    env: Annotated[
        str | None,
        typer.Option("--env", help="Package for this environment: the version must hold it."),
    ] = None,
    shadow: Annotated[
        str | None,
        typer.Option(help="Also carry this version, scored on every request and logged only."),
    ] = None,
    entities: Annotated[int, typer.Option(min=1, help=ENTITIES_HELP)] = 200,
    rebuild: Annotated[
        bool, typer.Option(help="Build again when a Bento of the same tag exists.")
    ] = False,
) -> None:
    """Build the BentoML prediction service (a Bento) of a registered version.

    Checks first: the version holds --env, the artifact matches its registered SHA-256, the
    offline and online features agree (serving.max_skew_share), and the serving scorer gives
    the pipeline's scores on those rows.
    """
    from modelops.services import package as service

    result = service.package(
        STATE.settings,
        project,
        version,
        environment=env,
        shadow=shadow,
        entities=entities,
        rebuild=rebuild,
    )
    _print_package(result)
    typer.echo(
        f"  serve: modelops serve {result.project} --env <env> (or bentoml serve "
        f"{result.bento_tag}); image: bentoml containerize {result.bento_tag}"
    )


def serve(
    project: Annotated[str, typer.Argument(help="Project name.")],
    env: Annotated[str, typer.Option("--env", help="Serve the version holding this environment.")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    reload_on_promotion: Annotated[
        bool,
        typer.Option(
            "--reload-on-promotion",
            help="Poll the ledger; swap in a new holder without a restart or a dropped request.",
        ),
    ] = False,
    shadow: Annotated[
        str | None, typer.Option(help="Also score every request with this version (logged only).")
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option(min=0.5, help="Ledger poll interval with --reload-on-promotion.")
    ] = 5.0,
    entities: Annotated[int, typer.Option(min=1, help=ENTITIES_HELP)] = 200,
) -> None:
    """Run the prediction service of an environment's holder locally (bentoml serve).

    The Bento is packaged first when the store lacks it, and verified against its signed release
    record when it is there. Ctrl-C or SIGTERM stops the server and its workers; a server that
    exits by itself (a refused release) ends this command with its reason.
    """
    from modelops.services import serve as service

    settings = STATE.settings
    plan = service.plan_serve(
        settings,
        project,
        env,
        shadow=shadow,
        reload_on_promotion=reload_on_promotion,
        entities=entities,
    )
    if plan.packaged is not None:
        _print_package(plan.packaged)
    typer.echo(
        f"serving {plan.project} v{plan.version} ({env}) from Bento {plan.bento_tag} at "
        f"http://{host}:{port} (POST /predict, /predict_batch; GET /healthz, /readyz, "
        "/metrics); Ctrl-C stops"
    )
    colours = {"staged": typer.colors.GREEN, "stopping": None}

    def notify(kind: str, message: str) -> None:
        if kind in colours:
            typer.secho(message, fg=colours[kind])
        else:
            typer.secho(message, fg=typer.colors.RED, err=True)

    service.run_server(
        settings, plan, port, host, poll_seconds=poll_seconds, notify=notify, output=_stdout()
    )


def _stdout() -> Any:
    """Where the server's own output goes: this process's standard output, unbuffered."""
    import sys

    return getattr(sys.stdout, "buffer", None)
