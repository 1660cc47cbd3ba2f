"""What ``modelops project init`` was asked: the options, their checks before any data is read,
and the command line that regenerates the project (recorded in project.yaml and the data test).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from modelops.core.errors import ConfigError

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_SHOWN = 5  # values, columns or renames named in one message


@dataclass(frozen=True)
class InitOptions:
    """What ``modelops project init`` was asked; column names as the user typed them."""

    name: str
    source: Path
    label: str
    positive: str | None = None
    entity: str | None = None
    timestamp: str | None = None
    available_at: str | None = None
    label_delay: timedelta | None = None
    categorical: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    costs: tuple[float, float] | None = None
    monotone: Mapping[str, int] = field(default_factory=dict)
    synthesize_ids: bool = False
    synthesize_time: tuple[datetime, datetime] | None = None
    force: bool = False
    encoding: str | None = None  # None: UTF-8, or detected when the bytes are not UTF-8
    separator: str | None = None  # None: sniffed from the first lines


def check_options(options: InitOptions) -> None:
    """The checks that need no data: the name, and options that exclude or require each other.

    Raises:
        ConfigError: naming the option (or pair of options) at fault.
    """
    name = options.name
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"project name '{name}': use lowercase letters, digits and underscores, starting "
            "with a letter"
        )
    if options.entity and options.synthesize_ids:
        raise ConfigError("--entity and --synthesize-ids: pass one of them, not both")
    if options.timestamp and options.synthesize_time:
        raise ConfigError("--timestamp and --synthesize-time: pass one of them, not both")
    if (options.available_at is None) == (options.label_delay is None):
        got = "both" if options.available_at else "neither"
        raise ConfigError(
            "when does a label become known? pass exactly one of --available-at COL or "
            f"--label-delay DURATION (e.g. 30d); got {got}"
        )
    if options.label_delay is not None and options.label_delay < timedelta(0):
        raise ConfigError(f"--label-delay {options.label_delay}: must not be negative")
    if options.synthesize_time and options.synthesize_time[1] <= options.synthesize_time[0]:
        raise ConfigError("--synthesize-time START..END: END must be after START")


def shown(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it is inside it, as given otherwise."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def command_line(options: InitOptions, root: Path) -> str:
    """The ``modelops project init`` command that asks for ``options`` again."""
    words = ["modelops", "project", "init", options.name, "--from-csv"]
    words.append(shown(options.source.resolve(), root))
    words += ["--label", options.label]
    if options.encoding is not None:
        words += ["--encoding", options.encoding]
    if options.separator is not None:
        words += ["--sep", options.separator]
    pairs: list[tuple[str, str | None]] = [
        ("--positive", options.positive),
        ("--entity", options.entity),
        ("--timestamp", options.timestamp),
        ("--available-at", options.available_at),
    ]
    if options.label_delay is not None:
        pairs.append(("--label-delay", _delay_option(options.label_delay)))
    for flag, value in pairs:
        if value is not None:
            words += [flag, value]
    for column in options.categorical:
        words += ["--categorical", column]
    for column in options.exclude:
        words += ["--exclude", column]
    if options.costs:
        words += ["--costs", f"{options.costs[0]:g},{options.costs[1]:g}"]
    for column, sign in options.monotone.items():
        words += ["--monotone", f"{column}={sign:+d}"]
    if options.synthesize_ids:
        words.append("--synthesize-ids")
    if options.synthesize_time:
        start, end = options.synthesize_time
        words += ["--synthesize-time", f"{moment(start)}..{moment(end)}"]
    return shlex.join(words)


def moment(value: datetime) -> str:
    """A ``--synthesize-time`` bound as typed: a date at midnight, else the UTC time."""
    if value.time() == datetime.min.time():
        return value.date().isoformat()
    return value.astimezone(UTC).replace(tzinfo=None).isoformat()


def _delay_option(delay: timedelta) -> str:
    seconds = int(delay.total_seconds())
    for suffix, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


def describe_delay(delay: timedelta) -> str:
    """``30 days``, ``12 hours``, ``1 day 6 hours``."""
    seconds = int(delay.total_seconds())
    parts = []
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 seconds"
