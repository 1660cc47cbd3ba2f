"""The generated text files, rendered from the Jinja2 templates in ``templates/``: the Feast
feature module, project.yaml, the data test and (with ``--monotone``) the behaviour test.

The generated Python passes the repository's ruff check and format as it is written: strings
are double-quoted literals, dicts that do not fit one line are split one item a line, and a
``key="long text",`` line over 100 columns becomes implicitly concatenated pieces. project.yaml
is a commented document (comments at fixed columns, as in the bundled projects), so it is a
template too, with each value that YAML could misread ('Yes', 'No') dumped by ``yaml``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import ProjectSpec
from modelops.services.project_init.entities import Entity
from modelops.services.project_init.features import Feature, MissingTolerance
from modelops.services.project_init.layout import Layout
from modelops.services.project_init.options import moment
from modelops.services.project_init.windows import WindowProposal

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).parent / "templates"
BEHAVIOUR_SAMPLE = 200  # feature rows the behaviour test scores per step of a feature
WIDTH = 100  # ruff's line length in pyproject.toml


@dataclass(frozen=True)
class Plan:
    """Everything the templates say, decided from the data and the options."""

    layout: Layout
    source_name: str
    entity: Entity
    synthetic_ids: bool
    synthetic_time: tuple[datetime, datetime] | None
    label: str
    positive: Any
    label_values: list[Any]
    delay_text: str
    features: list[Feature]
    auto_categorical: list[str]
    windows: list[WindowProposal]
    gap_days: int
    ttl_days: int
    missing: MissingTolerance
    costs: tuple[float, float] | None
    monotone: dict[str, int]
    first_day: date
    last_day: date
    command: str
    feature_types: dict[str, str]
    label_types: dict[str, str]


def render_all(plan: Plan) -> dict[Path, str]:
    """Every generated text file by its path; project.yaml checked against its schema."""
    layout = plan.layout
    yaml_text = project_yaml(plan)
    check_spec(yaml_text, layout)
    return {
        layout.feature_module: feature_module(plan),
        layout.project_file: yaml_text,
        **tests(plan),
    }


def project_yaml(plan: Plan) -> str:
    categorical = [f.name for f in plan.features if f.categorical]
    positive = plan.positive
    others = [v for v in plan.label_values if v != positive]
    span = None
    if plan.synthetic_time:
        start, end = plan.synthetic_time
        span = f"{moment(start)}..{moment(end)}"
    return (
        _environment()
        .get_template("project.yaml.j2")
        .render(
            plan=plan,
            layout=plan.layout,
            event=f"{plan.label}={positive}" if positive is not None else f"{plan.label}=1",
            other=others[0] if others else None,
            synthetic_span=span,
            costs=plan.costs,
            categorical=categorical,
            categorical_why=_categorical_why(categorical, plan.auto_categorical),
        )
    )


def _categorical_why(categorical: list[str], auto_categorical: list[str]) -> str:
    auto = [c for c in auto_categorical if c in categorical]
    declared = [c for c in categorical if c not in auto]
    why = []
    if auto:
        why.append("text columns")
    if declared:
        why.append(f"--categorical {', '.join(declared)}")
    return " and ".join(why)


def feature_module(plan: Plan) -> str:
    entity = plan.entity
    imports = {"feast": ["FeatureService", "FeatureView", "Field", "FileSource"]}
    if entity.reused_from is None:
        imports["feast"] = ["Entity", *imports["feast"], "ValueType"]
    else:
        imports[entity.reused_from] = [entity.variable]
    imports["feast.types"] = sorted({f.feast_type for f in plan.features})
    text = (
        _environment()
        .get_template("feature_module.py.j2")
        .render(
            plan=plan,
            layout=plan.layout,
            entity=entity,
            imports=[(module, imports[module]) for module in sorted(imports, key=str.lower)],
        )
    )
    return _within_width(text)


def tests(plan: Plan) -> dict[Path, str]:
    """The data test, and the behaviour test when features are declared monotone."""
    layout = plan.layout
    environment = _environment()
    files = {
        layout.data_test: environment.get_template("test_data.py.j2").render(
            plan=plan,
            layout=layout,
            missing={f.name: round(f.missing_share, 6) for f in plan.features},
            regenerate=plan.command + " --force",
        )
    }
    if plan.monotone:
        files[layout.behaviour_test] = environment.get_template("test_behaviour.py.j2").render(
            plan=plan, layout=layout, sample=BEHAVIOUR_SAMPLE
        )
    return {path: _within_width(text) for path, text in files.items()}


def check_spec(text: str, layout: Layout) -> None:
    """The rendered project.yaml must read back as a valid spec (a bug here, not the user's)."""
    import yaml
    from pydantic import ValidationError

    try:
        ProjectSpec(**yaml.safe_load(text))
    except ValidationError as exc:  # pragma: no cover - a bug in the template
        raise AssertionError(f"generated {layout.project_file} is invalid: {exc}") from exc


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,  # Python and YAML, not HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        py=py_string,
        literal=_literal,
        dict_literal=_dict_literal,
        yaml=_yaml,
        g=lambda number: f"{number:g}",
        thousands=lambda number: f"{number:,}",
        percent=lambda share: f"{share:.1%}",
    )
    return environment


def _yaml(value: Any) -> str:
    """One YAML scalar or flow collection, quoted where YAML would misread it ('Yes')."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def py_string(text: str) -> str:
    """A Python string literal in the double quotes ruff format prefers."""
    return json.dumps(text, ensure_ascii=False)


def _literal(value: Any) -> str:
    return py_string(value) if isinstance(value, str) else repr(value)


def _dict_literal(mapping: Mapping[str, Any]) -> str:
    """A dict literal, one item per line when it does not fit on one (as ruff formats it)."""
    items = [f"{_literal(k)}: {_literal(v)}" for k, v in mapping.items()]
    flat = "{" + ", ".join(items) + "}"
    if len(flat) <= 60:
        return flat
    return "{" + "".join(f"\n    {item}," for item in items) + "\n}"


def _within_width(text: str) -> str:
    return "\n".join(_wrap(line) for line in text.splitlines()) + "\n"


def _wrap(line: str) -> str:
    """Keep a generated ``key="text",`` or ``NAME = "text"`` line within ruff's 100 columns:
    a long string becomes implicitly concatenated pieces inside parentheses."""
    if len(line) <= WIDTH:
        return line
    match = re.match(r'^(\s*)(\w+(?:=| = ))(".*")(,?)$', line)
    if not match:
        return line
    indent, key, literal, comma = match.groups()
    text = json.loads(literal)
    width = WIDTH - len(indent) - 6
    pieces, current = [], ""
    for word in re.split(r"(?<= )", text):
        if current and len(py_string(current + word)) > width:
            pieces.append(current)
            current = ""
        current += word
    pieces.append(current)
    inner = "\n".join(f"{indent}    {py_string(p)}" for p in pieces)
    return f"{indent}{key}(\n{inner}\n{indent}){comma}"
