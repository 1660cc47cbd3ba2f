"""The ``project.yaml`` reference, rendered from the JSON Schema of the pydantic model, and the
JSON Schemas of the records other programs read.

``docs/project-yaml.md``, ``docs/project.schema.json``,
``docs/schemas/monitor-summary.schema.json`` (a monitoring run's ``summary.json``, from
:class:`modelops.core.monitor_record.MonitorSummary`) and
``docs/schemas/release-record.schema.json`` (a release's signed ``release-record.json``, also the
details of a ledger ``package`` entry, from :class:`modelops.core.release_record.ReleaseRecord`)
are generated, never edited by hand:

    python -m modelops.config.schema_docs [REPO_ROOT]

rewrites them all (a unit test fails when any is stale). Every field's type, default and meaning
come from :class:`modelops.config.project.ProjectSpec`: its annotations, defaults, constraints and
``Field(description=...)``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REGENERATE = "python -m modelops.config.schema_docs"
MARKDOWN_FILE = Path("docs/project-yaml.md")
SCHEMA_FILE = Path("docs/project.schema.json")
MONITOR_SUMMARY_SCHEMA_FILE = Path("docs/schemas/monitor-summary.schema.json")
RELEASE_RECORD_SCHEMA_FILE = Path("docs/schemas/release-record.schema.json")
IMAGE_RECORD_SCHEMA_FILE = Path("docs/schemas/image-record.schema.json")
SCHEMA_COMMENT = "# yaml-language-server: $schema=../../docs/project.schema.json"
"""First line of every bundled ``projects/<name>/project.yaml``: editors that run the YAML
language server complete and check the file against :data:`SCHEMA_FILE`."""

_BOUNDS = (
    ("minimum", ">="),
    ("exclusiveMinimum", ">"),
    ("maximum", "<="),
    ("exclusiveMaximum", "<"),
)


def render_schema(schema: dict[str, Any]) -> str:
    """``docs/project.schema.json``: the schema, pretty, keys sorted, with a final newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with a local ``$ref`` replaced by its definition (its own keys, such as the
    field's description and default, kept on top)."""
    ref = node.get("$ref")
    if not ref:
        return node
    name = ref.removeprefix("#/$defs/")
    merged = dict(schema["$defs"][name])
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged


def _non_null(node: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The alternatives of ``node`` other than null, and whether null is allowed."""
    options = node.get("anyOf") or node.get("oneOf")
    if not options:
        return [node], node.get("type") == "null"
    rest = [o for o in options if o.get("type") != "null"]
    return rest, len(rest) < len(options)


def _is_object(schema: dict[str, Any], node: dict[str, Any]) -> bool:
    """A section: a mapping with fixed fields (a nested model), documented field by field."""
    return "properties" in _resolve(schema, node)


def _type(schema: dict[str, Any], node: dict[str, Any]) -> str:
    """A short, readable type: ``number, > 0``, ``list of string``, ``map of string to number``."""
    options, nullable = _non_null(node)
    names = [_one_type(schema, _resolve(schema, o)) for o in options]
    names += ["null"] if nullable else []
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _one_type(schema: dict[str, Any], node: dict[str, Any]) -> str:
    if "enum" in node or "const" in node:
        values = node.get("enum", [node.get("const")])
        shown = [f"`{v}`" for v in values]
        return "one of " + ", ".join(shown) if len(shown) > 1 else shown[0]
    kind = node.get("type", "any")
    if "properties" in node:
        return "section"
    if kind == "array":
        items = node.get("items")
        return f"list of {_type(schema, items)}" if items else "list"
    if kind == "object":
        values = node.get("additionalProperties")
        if isinstance(values, dict) and values:
            inner = "section" if _is_object(schema, values) else _type(schema, values)
            return f"map of name to {inner}"
        return "mapping"
    text = {"number": "number", "integer": "integer", "boolean": "boolean"}.get(kind, kind)
    if kind == "string" and node.get("format") in ("date", "date-time"):
        text = "date (YYYY-MM-DD)" if node["format"] == "date" else "date-time (ISO 8601)"
    bounds = [f"{op} {node[key]}" for key, op in _BOUNDS if key in node]
    if bounds:
        text += " (" + ", ".join(bounds) + ")"
    if "pattern" in node:
        text += f", matching `{node['pattern']}`"
    return text


def _yaml_value(value: Any) -> str:
    """A default as it would be written in ``project.yaml`` (YAML flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _cell(text: str) -> str:
    """Table-safe text: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _rows(
    schema: dict[str, Any], node: dict[str, Any], prefix: str
) -> Iterator[tuple[str, str, str, str]]:
    """(dotted path, type, default, meaning) of every field under ``node``, depth first."""
    required = set(node.get("required", ()))
    for name, field in node["properties"].items():
        path = f"{prefix}{name}"
        resolved = _resolve(schema, field)
        options, _ = _non_null(resolved)
        section = len(options) == 1 and "properties" in _resolve(schema, options[0])
        if name in required:
            default = "required"
        elif section and "default" in resolved and resolved["default"] is None:
            default = "`null` (left out)"
        elif section:
            default = "(see its fields)"
        elif "default" in resolved:
            default = f"`{_yaml_value(resolved['default'])}`"
        else:
            default = "(none)"
        meaning = field.get("description") or resolved.get("description") or ""
        yield path, _type(schema, field), default, meaning
        if section:
            yield from _rows(schema, _resolve(schema, options[0]), f"{path}.")
            continue
        values = resolved.get("additionalProperties")
        if isinstance(values, dict) and _is_object(schema, values):
            yield from _rows(schema, _resolve(schema, values), f"{path}.<name>.")


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    lines = ["| field | type | default | meaning |", "|---|---|---|---|"]
    lines += [
        f"| `{path}` | {_cell(kind)} | {_cell(default)} | {_cell(meaning)} |"
        for path, kind, default, meaning in rows
    ]
    return lines


def _paragraph(text: str) -> str:
    """A docstring as Markdown: reST double backticks become single ones."""
    return text.replace("``", "`").strip()


def render_markdown(schema: dict[str, Any]) -> str:
    """``docs/project-yaml.md``: every field of ``project.yaml`` with its dotted path, type,
    default and meaning. Top-level scalars first, then one section per nested mapping."""
    lines = [
        "# `project.yaml` reference",
        "",
        f"Generated from the pydantic model by `{REGENERATE}`; do not edit. The same schema is "
        f"in [`project.schema.json`](project.schema.json) (printed by `modelops project schema`): "
        f"editors running the YAML language server check a file whose first line is "
        f"`{SCHEMA_COMMENT}`.",
        "",
        _paragraph(schema.get("description", "")),
        "",
        "Unknown keys are errors that name the closest field. A field marked *required* has no "
        "default; `<name>` stands for a key you choose.",
        "",
        "## Top level",
        "",
    ]
    top = [row for row in _rows(schema, schema, "") if "." not in row[0]]
    lines += _table(top)
    required = set(schema.get("required", ()))
    for name, field in schema["properties"].items():
        options, _ = _non_null(_resolve(schema, field))
        section = _resolve(schema, options[0])
        if len(options) != 1 or "properties" not in section:
            continue
        lines += ["", f"## `{name}`", ""]
        definition = schema["$defs"].get(field.get("$ref", "").removeprefix("#/$defs/"), {})
        intro = definition.get("description") or section.get("description")
        if intro:
            lines += [_paragraph(intro), ""]
        if name not in required and field.get("default", {}) is None:
            lines += [
                "Optional as a whole; when given, a field marked *required* must be set.",
                "",
            ]
        elif name not in required:
            lines += ["Optional: every field below has a default.", ""]
        lines += _table(list(_rows(schema, section, f"{name}.")))
    return "\n".join(lines) + "\n"


def expected_files() -> dict[Path, str]:
    """Relative path -> the text it must hold, rendered from the current pydantic models."""
    from modelops.config.project import json_schema
    from modelops.core import image_record, monitor_record, release_record

    schema = json_schema()
    return {
        MARKDOWN_FILE: render_markdown(schema),
        SCHEMA_FILE: render_schema(schema),
        MONITOR_SUMMARY_SCHEMA_FILE: render_schema(monitor_record.json_schema()),
        RELEASE_RECORD_SCHEMA_FILE: render_schema(release_record.json_schema()),
        IMAGE_RECORD_SCHEMA_FILE: render_schema(image_record.json_schema()),
    }


def write(root: Path) -> list[Path]:
    """Regenerate every file under the repository ``root``; returns the paths written."""
    written = []
    for relative, text in expected_files().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    """``python -m modelops.config.schema_docs [REPO_ROOT]`` (default: working directory)."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path.cwd()
    if not (root / MARKDOWN_FILE.parent).is_dir():
        sys.exit(f"{root}: no {MARKDOWN_FILE.parent}/ folder; run from the repository root")
    for path in write(root):
        sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
