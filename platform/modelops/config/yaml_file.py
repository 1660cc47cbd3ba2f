"""Reading the platform's YAML files with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelops.core.errors import ConfigError


def read_mapping(path: Path) -> dict[str, Any]:
    """The mapping at the top of ``path``; an empty file is an empty mapping.

    Raises:
        ConfigError: the file is not valid YAML (naming the line) or not a mapping.
    """
    try:
        loaded = yaml.safe_load(path.read_bytes())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(loaded).__name__}")
    return loaded
