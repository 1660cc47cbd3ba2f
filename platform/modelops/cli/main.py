"""Entry point: builds the Typer app and turns ``ModelopsError`` into one red line."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from modelops import __version__
from modelops.cli import (
    data,
    demo,
    deploy,
    features,
    ledger,
    lifecycle,
    models,
    monitor,
    project,
    serving,
    simulate,
    status,
    train,
)
from modelops.cli.state import STATE, configure_logging
from modelops.core.errors import ModelopsError
from modelops.core.redact import redact, redacted_traceback
from modelops.core.telemetry import disable_telemetry

app = typer.Typer(
    name="modelops",
    help="Ship models safely: features, training, registry, gates, promotion, deploys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(models.app, name="models")
app.add_typer(ledger.app, name="ledger")
app.add_typer(project.app, name="project")
app.command("train")(train.train)
app.command("validate")(lifecycle.validate)
app.command("promote")(lifecycle.promote)
app.command("rollback")(lifecycle.rollback)
app.command("history")(lifecycle.history)
app.command("package")(serving.package)
app.command("serve")(serving.serve)
app.command("skew")(serving.skew)
app.command("deploy")(deploy.deploy)
app.command("demo")(demo.demo)
app.command("report")(status.report)
app.command("monitor")(monitor.monitor)
app.command("simulate")(simulate.simulate)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelops {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """modelops: from feature definitions to a gated, traceable production model."""


def _record_verbose(value: bool) -> None:
    if value:
        STATE.verbose = True


def _verbose_option() -> Any:
    """``--verbose``/``-v`` as Typer builds it: a flag that records itself in ``STATE``."""
    flag = typer.Typer()

    @flag.command()
    def verbose(
        verbose: Annotated[
            bool,
            typer.Option(
                "--verbose",
                "-v",
                help="Debug logs and full tracebacks.",
                callback=_record_verbose,
                expose_value=False,
            ),
        ] = False,
    ) -> None:
        """Only here to have Typer build the option."""

    return typer.main.get_command(flag).params[0]


def _logging_first(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        configure_logging(STATE.verbose)
        return callback(*args, **kwargs)

    return run


def accept_verbose(group: TyperGroup, option: Any = None) -> TyperGroup:
    """Give ``group`` and every command under it ``--verbose``/``-v``.

    ``modelops --verbose train x`` and ``modelops train x --verbose`` are the same: the flag of
    whichever level it is given at records itself, and logging is configured once, from it, as
    the command that runs starts (after every level has been parsed).
    """
    option = option or _verbose_option()
    group.params.insert(0, option)
    for command in group.commands.values():
        if isinstance(command, TyperGroup):
            accept_verbose(command, option)
        else:
            command.params.append(option)
            if command.callback is not None:
                command.callback = _logging_first(command.callback)
    return group


def command_tree() -> TyperGroup:
    """The click command of :data:`app`, every command taking ``--verbose``."""
    return accept_verbose(typer.main.get_group(app))


# Errors raised inside these libraries are about the systems they talk to (a read-only database,
# a server that refused): one line without --verbose, like every user-facing error.
SYSTEM_LIBRARIES = frozenset(
    {"mlflow", "sqlalchemy", "feast", "psycopg", "psycopg2", "redis", "duckdb", "alembic"}
)


def _one_line(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return redact(first[:500])


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors exit with their code and one line, bugs with a traceback.

    Every line shown goes through :func:`~modelops.core.redact.redact`, tracebacks and log
    records included, so a password in a URI or a configuration value never reaches the
    terminal or a CI log. Usage reporting of the
    libraries is turned off first, before any of them is imported (:mod:`modelops.core.telemetry`).
    """
    disable_telemetry(os.environ)
    STATE.reset()
    try:
        command_tree()(args=argv, prog_name="modelops")
    except ModelopsError as error:
        if STATE.verbose:
            sys.stderr.write(redacted_traceback(error))
        typer.secho(f"error: {redact(str(error))}", fg=typer.colors.RED, err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg=typer.colors.RED, err=True)
        sys.exit(130)
    except Exception as error:
        library = type(error).__module__.split(".")[0]
        if library in SYSTEM_LIBRARIES and not STATE.verbose:
            typer.secho(
                f"error: {library}: {_one_line(str(error)) or type(error).__name__} "
                "(--verbose shows the traceback)",
                fg=typer.colors.RED,
                err=True,
            )
            sys.exit(2)
        # a bug, not a user error: keep the traceback, fail closed with code 2
        sys.stderr.write(redacted_traceback(error))
        typer.secho(
            "error: internal error (traceback above); please report it",
            fg=typer.colors.RED,
            err=True,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
