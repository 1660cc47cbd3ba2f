"""What every command shares: settings (loaded on first use) and output helpers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import typer

from modelops.config.settings import Settings, load_settings


@dataclass
class CliState:
    verbose: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    def reset(self) -> None:
        self.verbose = False
        self._settings = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings


STATE = CliState()

QUIET_LOGGERS = (
    "mlflow",
    "feast",
    "alembic",
    "urllib3",
    "git",
    "bentoml",
    "evidently",
    "numexpr",
    "botocore",
    "httpx",
)


def configure_logging(verbose: bool) -> None:
    """Log to stderr for humans; library chatter and warnings only with ``--verbose``."""
    import os

    # Libraries add their own warning filters when imported (Feast shows some warnings "once"),
    # so warnings are routed to logging and shown only with --verbose.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if verbose else logging.ERROR)
    # MLflow configures its own loggers on import from this variable.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if verbose else "ERROR")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname).1s %(name)s: %(message)s" if verbose else "· %(message)s",
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)


def echo_table(headers: list[str], rows: list[list[str]]) -> None:
    """A plain, aligned text table (readable in CI logs and terminals alike)."""
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    typer.echo(line)
    typer.echo("  ".join("-" * w for w in widths))
    for row in rows:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
