"""What every command shares: settings (loaded on first use) and output helpers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from modelops.config.settings import Settings, load_settings

if TYPE_CHECKING:
    from rich.console import Console


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

JSON_HELP = "Print one JSON document instead (keys: docs/cli-json.md)."

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
    from modelops.core.redact import RedactingFilter

    for handler in logging.getLogger().handlers:  # a handler's filter sees every logger's records
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def _console() -> Console:
    """A console on the current stdout. When stdout is not a terminal (CI logs, pipes, tests)
    it is as wide as any table, so nothing is wrapped or cut, and it writes no colour codes."""
    from rich.console import Console

    console = Console(highlight=False, markup=False, emoji=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(
            width=1_000_000, highlight=False, markup=False, emoji=False, no_color=True
        )
    return console


def echo_table(headers: list[str], rows: list[list[str]]) -> None:
    """An aligned table (rich): bold headers on a terminal, plain text in CI logs and pipes.

    Cells are shown as given (no markup): a reason such as ``[x]`` stays ``[x]``. Off a
    terminal, columns are never wrapped or truncated, one row a line, the first column at the
    start of the line and columns two spaces apart.
    """
    from rich.box import Box
    from rich.table import Table
    from rich.text import Text

    underline = Box("    \n    \n -  \n    \n    \n    \n    \n    \n")
    table = Table(
        box=underline,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        header_style="bold",
        highlight=False,
    )
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    _console().print(table)


def _jsonable(value: Any) -> Any:
    """``value`` in JSON terms: datetimes as ISO-8601 UTC (``...Z``), dates as ISO dates, NaN
    and infinities as null, tuples and sets as lists, numpy scalars as numbers."""
    import math
    from datetime import UTC, date, datetime
    from pathlib import PurePath

    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    raise TypeError(f"not JSON output: {type(value).__name__}")


def echo_json(document: Any) -> None:
    """The one way commands print machine-readable output (``--json``): one JSON document on
    stdout, no colour, dates ISO-8601 UTC, numbers as numbers, missing values as null."""
    import json

    typer.echo(json.dumps(_jsonable(document), indent=2, ensure_ascii=False, allow_nan=False))
