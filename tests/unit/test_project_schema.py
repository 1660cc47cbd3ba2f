"""The project.yaml reference is generated from the pydantic model and kept current."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from modelops.config import schema_docs
from modelops.config.project import json_schema
from modelops.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
BUNDLED = sorted((REPO / "projects").glob("*/project.yaml"))


def _as_editor_sees_it(path: Path) -> Any:
    """The YAML as JSON values: an unquoted date is a string to the YAML language server."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


def _fields(schema: dict[str, Any], node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted path -> property schema, for every field (nested models and maps of models)."""

    def resolve(item: dict[str, Any]) -> dict[str, Any]:
        ref = item.get("$ref")
        return schema["$defs"][ref.removeprefix("#/$defs/")] if ref else item

    found: dict[str, Any] = {}
    for name, field in node["properties"].items():
        found[prefix + name] = field
        for option in field.get("anyOf", [field]):
            target = resolve(option)
            if "properties" in target:
                found |= _fields(schema, target, f"{prefix}{name}.")
            values = target.get("additionalProperties")
            if isinstance(values, dict) and "properties" in resolve(values):
                found |= _fields(schema, resolve(values), f"{prefix}{name}.<name>.")
    return found


def test_the_generated_docs_are_current() -> None:
    for relative, expected in schema_docs.expected_files().items():
        on_disk = (
            (REPO / relative).read_text(encoding="utf-8") if (REPO / relative).is_file() else ""
        )
        assert on_disk == expected, (
            f"{relative} is stale: run '{schema_docs.REGENERATE}' from the repository root"
        )


def test_the_reference_says_it_is_generated_and_how() -> None:
    text = (REPO / schema_docs.MARKDOWN_FILE).read_text()
    head = "\n".join(text.splitlines()[:4])
    assert f"`{schema_docs.REGENERATE}`; do not edit" in head


def test_every_field_has_a_description_and_a_row() -> None:
    schema = json_schema()
    markdown = schema_docs.render_markdown(schema)
    fields = _fields(schema, schema)
    assert {"promotion.max_drop", "windows.train.start", "features.clip.<name>.upper"} <= set(
        fields
    )
    undocumented = [path for path, field in fields.items() if not field.get("description")]
    assert not undocumented, f"fields without a description in config/project.py: {undocumented}"
    rows = {line.split(" | ")[0].removeprefix("| ") for line in markdown.splitlines()}
    assert {f"`{path}`" for path in fields} <= rows


def test_rows_give_type_default_and_meaning() -> None:
    lines = schema_docs.render_markdown(json_schema()).splitlines()

    def row(path: str) -> list[str]:
        (line,) = [line for line in lines if line.startswith(f"| `{path}` |")]
        return [cell.strip() for cell in line.strip("|").split(" | ")]

    assert row("name")[1:3] == ["string, matching `^[a-z][a-z0-9_]*$`", "required"]
    assert row("primary_metric")[1].startswith("one of `roc_auc`, `pr_auc`")
    assert row("primary_metric")[2] == "`pr_auc`"
    assert row("promotion.floors")[1:3] == ["map of name to number", "`{roc_auc: 0.6}`"]
    assert row("promotion.dominant_features")[1:3] == ["map of name to string", "`{}`"]
    assert row("promotion.approval_required")[1:3] == ["list of string", "`[production]`"]
    assert row("label.positive")[1] == "string, integer, boolean or null"
    assert row("windows.train.start")[1:3] == ["date (YYYY-MM-DD)", "required"]
    assert row("features.clip")[1] == "map of name to section"
    assert "never from the ROC-AUC ceiling" in row("promotion.dominant_features")[3]
    assert not [line for line in lines if "max_feature_share" in line]


@pytest.mark.parametrize("path", BUNDLED, ids=[p.parent.name for p in BUNDLED])
def test_bundled_project_yaml_points_editors_at_the_schema(path: Path) -> None:
    assert path.read_text().splitlines()[0] == schema_docs.SCHEMA_COMMENT
    target = path.parent / schema_docs.SCHEMA_COMMENT.split("$schema=")[1]
    assert target.resolve() == (REPO / schema_docs.SCHEMA_FILE).resolve()


@pytest.mark.parametrize("path", BUNDLED, ids=[p.parent.name for p in BUNDLED])
def test_the_schema_validates_bundled_project_yaml(path: Path) -> None:
    schema = json.loads((REPO / schema_docs.SCHEMA_FILE).read_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    document = _as_editor_sees_it(path)
    assert not [e.message for e in validator.iter_errors(document)]
    document["promotion"]["max_dorp"] = 0.1  # what an editor flags as you type
    (error,) = validator.iter_errors(document)
    assert "max_dorp" in error.message


def test_regenerating_writes_both_files(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    schema_docs.main([str(tmp_path)])
    for relative, expected in schema_docs.expected_files().items():
        assert (tmp_path / relative).read_text() == expected
    written = json.loads((tmp_path / schema_docs.SCHEMA_FILE).read_text())
    assert written == json_schema()
    assert (tmp_path / schema_docs.SCHEMA_FILE).read_text().endswith("}\n")
    with pytest.raises(SystemExit, match="no docs/ folder"):
        schema_docs.main([str(tmp_path / "elsewhere")])


def test_a_misspelt_setting_in_modelops_yaml_suggests_the_field(
    tmp_path: Path, clean_env: None
) -> None:
    from modelops.config.settings import load_settings

    (tmp_path / "modelops.yaml").write_text("databse_url: sqlite:///x.db\n")
    with pytest.raises(
        ConfigError,
        match=r"modelops\.yaml: field 'databse_url': unknown field; did you mean 'database_url'\? "
        r"\(got 'sqlite:///x\.db'\)$",
    ):
        load_settings(tmp_path)
