"""project.yaml: the bundled projects validate; mistakes name the file and field."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from modelops.config.project import available_projects, load_project
from modelops.core.errors import ConfigError, ProjectNotFoundError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "projects", tmp_path / "projects")
    return tmp_path / "projects"


def _edit(projects: Path, change: dict[str, object], name: str = "credit_risk") -> None:
    path = projects / name / "project.yaml"
    data = yaml.safe_load(path.read_text())
    for dotted, value in change.items():
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    path.write_text(yaml.safe_dump(data))


def test_bundled_projects_are_valid() -> None:
    names = available_projects(REPO / "projects")
    assert {"credit_risk", "fraud"} <= set(names)
    definitions = "".join(p.read_text() for p in (REPO / "feature_repo").glob("*.py"))
    for name in names:
        project = load_project(REPO / "projects", name)
        raw = (REPO / "projects" / name / "project.yaml").read_bytes()
        assert project.spec_hash == hashlib.sha256(raw).hexdigest()
        assert f'name="{project.spec.feature_service}"' in definitions, name
        assert project.spec.promotion.decision_margin == project.spec.promotion.margin


def test_unknown_project_lists_the_known_ones(projects: Path) -> None:
    with pytest.raises(ProjectNotFoundError, match=r"unknown project 'credit'.*credit_risk"):
        load_project(projects, "credit")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"costs.false_negative": -5}, r"field 'costs\.false_negative'.*greater than 0.*-5"),
        ({"primary_metric": "accuracy"}, r"field 'primary_metric'.*'accuracy'"),
        ({"windows.validation.start": "2022-06-01"}, r"field 'windows'.*validation starts"),
        ({"windows.train.end": "2020-01-01"}, r"field 'windows\.train'.*before start"),
        ({"feature_service": None}, r"field 'feature_service': Field required"),
        ({"threshold_policy": {"type": "fixed"}}, r"field 'threshold_policy'.*needs a value"),
        ({"colour": "blue"}, r"field 'colour': unknown field \(fields here: name, description, "),
        (
            {"promotion.max_dorp": 0.1},
            r"field 'promotion\.max_dorp': unknown field; did you mean 'max_drop'\?$",
        ),
        ({"feature_servise": "x"}, r"field 'feature_servise': .*did you mean 'feature_service'\?$"),
        ({"windows.train.strat": "2021-01-01"}, r"field 'windows\.train\.strat': .*'start'\?$"),
        ({"features.clip.amount.uper": 5}, r"field 'features\.clip\.amount\.uper': .*'upper'\?$"),
        ({"name": "fraud"}, r"field 'name': 'fraud' does not match its folder"),
        ({"label.table": "../../x"}, r"field 'label\.table'.*pattern.*'\.\./\.\./x'"),
        ({"promotion.decision": "superior"}, r"field 'promotion\.decision'.*'superior'"),
        ({"promotion.margin": -0.1}, r"field 'promotion\.margin'.*greater than or equal to 0"),
        ({"data_checks.max_missing_share": 2}, r"field 'data_checks\.max_missing_share'"),
        (
            {"promotion.max_feature_share": 0.75},
            r"field 'promotion': max_feature_share was removed: .*dominant_features: "
            r"\{name: reason\} instead$",
        ),
        (
            {"promotion.dominant_features": {"balance": " "}},
            r"field 'promotion'.*dominant_features: give the reason for \['balance'\]",
        ),
    ],
)
def test_schema_errors_name_file_and_field(
    projects: Path, change: dict[str, object], message: str
) -> None:
    _edit(projects, change)
    with pytest.raises(ConfigError, match=r"credit_risk/project\.yaml: " + message):
        load_project(projects, "credit_risk")


def test_malformed_yaml_names_the_line(projects: Path) -> None:
    (projects / "credit_risk" / "project.yaml").write_text("name: credit_risk\ncosts: {a: [\n")
    with pytest.raises(ConfigError, match=r"project\.yaml line \d+: not valid YAML"):
        load_project(projects, "credit_risk")


def test_hash_changes_with_the_file(projects: Path) -> None:
    before = load_project(projects, "credit_risk").spec_hash
    _edit(projects, {"costs.false_positive": 251})
    assert load_project(projects, "credit_risk").spec_hash != before


def test_a_typo_in_the_project_approval_list_is_refused(
    projects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelops.config.settings import load_settings
    from modelops.services.context import approval_required, project

    for name in [n for n in __import__("os").environ if n.startswith("MODELOPS_")]:
        monkeypatch.delenv(name)
    settings = load_settings(projects.parent)
    assert approval_required(settings, project(settings, "credit_risk")) == ("production",)
    _edit(projects, {"promotion.approval_required": ["prod"]})
    with pytest.raises(ConfigError, match=r"'promotion\.approval_required': \['prod'\] are not"):
        project(settings, "credit_risk")
    _edit(projects, {"promotion.approval_required": ["staging"]})
    # a project adds to the platform's list; it can never remove production from it
    assert approval_required(settings, project(settings, "credit_risk")) == (
        "production",
        "staging",
    )
