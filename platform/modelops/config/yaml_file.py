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
# libyaml's parser when PyYAML was built with it (the wheels are): the pure-Python one takes
# about 25 s for a 200 KB flow list, so a hostile file near the size limit would stall a command.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_DEPTH = 32
"""Nesting deeper than this is refused before it is built (PyYAML builds nodes recursively)."""


def _read_bounded(path: Path) -> bytes:
    """At most :data:`MAX_BYTES` of ``path``, read as a stream: a file that grows, a device or a
    pipe is never read whole before its size is known."""
    with path.open("rb") as stream:
        text = stream.read(MAX_BYTES + 1)
    if len(text) > MAX_BYTES:
        raise ConfigError(
            f"{path}: more than {MAX_BYTES:,} bytes; configuration files are limited to "
            f"{MAX_BYTES:,}"
        )
    return text


def _check_events(path: Path, text: bytes) -> None:
    """Refuse anchors and aliases, which let a few bytes expand into gigabytes (a "billion
    laughs" file) and which platform configuration never needs, and nesting deeper than
    :data:`MAX_DEPTH`, from the parser's event stream, before any node is built."""
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        line = event.start_mark.line + 1 if event.start_mark else 0
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor:
            raise ConfigError(
                f"{path} line {line}: YAML anchors and aliases (&{anchor} / *{anchor}) are not "
                "allowed in configuration files"
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(
                    f"{path} line {line}: nested more than {MAX_DEPTH} levels deep; "
                    "configuration files are limited to that"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def read_mapping(path: Path) -> dict[str, Any]:
    """The mapping at the top of ``path``; an empty file is an empty mapping.

    Raises:
        ConfigError: the file is larger than 1 MiB, nested deeper than 32 levels, uses anchors
            or aliases, is not valid YAML (naming the line) or not a mapping.
    """
    try:
        text = _read_bounded(path)
        _check_events(path, text)
        loaded = yaml.load(text, Loader=_LOADER)
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
