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
