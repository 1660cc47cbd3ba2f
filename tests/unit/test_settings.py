"""Settings: defaults, file values, environment overrides, errors that name their source."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.config.settings import load_settings
from modelops.core.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)


def test_embedded_defaults_live_under_state_dir(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    state = tmp_path.resolve() / ".modelops"
    assert settings.profile == "embedded"
    assert settings.tracking_uri == f"sqlite:///{state / 'mlflow.db'}"
    assert settings.registry_uri == settings.tracking_uri
    assert settings.artifact_root == (state / "mlartifacts").as_uri()
    assert settings.platform_database_url == f"sqlite:///{state / 'platform.db'}"
    assert settings.resolved_gitops_repo == state / "gitops"
    assert settings.resolved_feature_store_yaml == tmp_path.resolve() / "feature_repo" / (
        "feature_store.yaml"
    )


def test_loading_has_no_side_effects(tmp_path: Path) -> None:
    load_settings(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_file_values_then_environment_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "modelops.yaml").write_text(
        "profile: production\nstate_dir: /var/lib/modelops\nenvironments: [dev, production]\n"
    )
    settings = load_settings(tmp_path)
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.artifact_root is None
    assert settings.platform_database_url.startswith("postgresql+psycopg://")
    assert settings.resolved_feature_store_yaml.name == "feature_store.production.yaml"
    assert settings.environments == ("dev", "production")
    assert settings.resolved_state_dir == Path("/var/lib/modelops")

    monkeypatch.setenv("MODELOPS_MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("MODELOPS_PROFILE", "embedded")
    overridden = load_settings(tmp_path)
    assert overridden.tracking_uri == "http://mlflow.internal:5000"
    assert overridden.profile == "embedded"


def test_unknown_field_in_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "modelops.yaml").write_text("tracking: sqlite:///x.db\n")
    with pytest.raises(ConfigError, match=r"modelops\.yaml: field 'tracking'"):
        load_settings(tmp_path)


def test_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_PROFILE", "cloud")
    with pytest.raises(
        ConfigError, match=r"environment MODELOPS_PROFILE: field 'profile'.*'cloud'"
    ):
        load_settings(tmp_path)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "modelops.yaml").write_text("profile: embedded\nstate_dir: [unclosed\n")
    with pytest.raises(ConfigError, match=r"modelops\.yaml line \d+: not valid YAML"):
        load_settings(tmp_path)


def test_importing_the_package_does_not_touch_mlflow_or_logging() -> None:
    import subprocess
    import sys

    code = (
        "import logging, sys, modelops.cli.main, modelops.services.train;"
        "heavy = [m for m in ('mlflow', 'feast', 'bentoml', 'evidently', 'lightgbm', 'sklearn')"
        " if m in sys.modules];"
        "assert not heavy, heavy;"
        "assert not logging.getLogger().handlers"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_misspelled_variable_is_an_error_with_a_suggestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_DATABSE_URL", "sqlite:///x.db")
    with pytest.raises(ConfigError, match="MODELOPS_DATABSE_URL: not a modelops setting; did you"):
        load_settings(tmp_path)


def test_a_variable_that_does_not_parse_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELOPS_ENVIRONMENTS", "notjson")
    with pytest.raises(ConfigError, match=r"environment MODELOPS_ENVIRONMENTS: cannot be parsed"):
        load_settings(tmp_path)


def test_a_typo_in_approval_required_is_refused(tmp_path: Path) -> None:
    (tmp_path / "modelops.yaml").write_text("approval_required: [prod]\n")
    with pytest.raises(ConfigError, match=r"approval_required names \['prod'\], not configured"):
        load_settings(tmp_path)


def test_secrets_never_appear_in_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "modelops.yaml").write_text(
        "mlflow_tracking_uri: postgresql://admin:hunter2@db:5432/mlflow\n"
        "database_urll: postgresql://admin:hunter2@db/modelops\n"
    )
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path)
    assert "database_urll" in str(error.value)
    assert "hunter2" not in str(error.value) and "admin:***@db" in str(error.value)


def test_yaml_aliases_and_oversized_files_are_refused_unread(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    (tmp_path / "modelops.yaml").write_text(bomb)
    with pytest.raises(ConfigError, match="line 1: YAML anchors and aliases"):
        load_settings(tmp_path)
    (tmp_path / "modelops.yaml").write_text("# " + "x" * (1024 * 1024) + "\nprofile: embedded\n")
    with pytest.raises(ConfigError, match="configuration files are limited to 1,048,576"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql+psycopg://u:s3cret@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
        (
            "connect https://token:abc@example/x failed",
            "connect https://token:***@example/x failed",
        ),
        ("password=s3cret host=h", "password=*** host=h"),
        ("no secret here://host/path", "no secret here://host/path"),
    ],
)
def test_redact_masks_credentials(text: str, shown: str) -> None:
    from modelops.core.redact import redact

    assert redact(text) == shown
