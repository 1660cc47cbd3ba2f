"""Reading the platform's YAML files with errors that name the file and line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

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


def _model_at(model: type[BaseModel], path: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model that holds the mapping at ``path`` (an error's ``loc`` without its
    last part), following nested models, optional ones and the values of dicts, lists and
    tuples of them; None when the path leads elsewhere."""
    current: Any = model
    for part in path:
        while get_origin(current) in (Union, UnionType):  # X | None
            members = [a for a in get_args(current) if a is not NoneType]
            if len(members) != 1:
                return None
            current = members[0]
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) in (dict, list, tuple) and get_args(current):
            current = get_args(current)[-1 if get_origin(current) is dict else 0]
        else:
            return None
    while get_origin(current) in (Union, UnionType):
        members = [a for a in get_args(current) if a is not NoneType]
        if len(members) != 1:
            return None
        current = members[0]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def unknown_field(model: type[BaseModel], loc: Sequence[str | int]) -> str:
    """The message for a key the schema forbids at ``loc``, with the closest field of the
    mapping it sits in: ``unknown field; did you mean 'max_drop'?``, or the fields there are."""
    import difflib

    holder = _model_at(model, loc[:-1])
    if holder is None or not loc:
        return "unknown field"
    known = list(holder.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"unknown field; did you mean '{close[0]}'?"
    return f"unknown field (fields here: {', '.join(known)})"
