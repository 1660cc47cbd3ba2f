"""Reading the platform's YAML files with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelops.core.errors import ConfigError

MAX_BYTES = 1024 * 1024
"""Configuration files are small; a larger one is a mistake or an attack, refused unread."""


def _refuse_aliases(path: Path, text: bytes) -> None:
    """Anchors and aliases let a few bytes expand into gigabytes (a "billion laughs" file);
    platform configuration never needs them."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor:
            line = event.start_mark.line + 1 if event.start_mark else 0
            raise ConfigError(
                f"{path} line {line}: YAML anchors and aliases (&{anchor} / *{anchor}) are not "
                "allowed in configuration files"
            )


def read_mapping(path: Path) -> dict[str, Any]:
    """The mapping at the top of ``path``; an empty file is an empty mapping.

    Raises:
        ConfigError: the file is larger than 1 MiB, uses anchors or aliases, is not valid YAML
            (naming the line) or not a mapping.
    """
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                f"{path}: {size:,} bytes; configuration files are limited to {MAX_BYTES:,}"
            )
        text = path.read_bytes()
        _refuse_aliases(path, text)
        loaded = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(loaded).__name__}")
    return loaded
