"""``modelops package`` refuses what must not serve: a version not holding the environment, and
features that differ between the offline and online store.

Unit tests of the checks and of their order; packaging and serving a trained model for real is
tests/integration/test_service_http.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from modelops.cli.main import main
from modelops.config.settings import Settings
from modelops.core.errors import ModelopsError
from modelops.core.release import bento_name, bento_tag
from modelops.core.skew import compare
from modelops.integrations.database import Ledger, LedgerEntry
from modelops.services import package as package_service
from modelops.services.package import (
    PackageRefusedError,
    _Version,
    check_holder,
    check_skew_allowed,
    model_tag,
    release_tag,
)
from modelops.services.serve import server_environment
from modelops.services.skew import SkewResult

PROJECT = "credit_risk"
SHA = "ab" * 32


def _hold(settings: Settings, environment: str, version: str) -> None:
    settings.resolved_state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(settings.platform_database_url)
    held = ledger.holder(PROJECT, environment)
    ledger.transition(
        LedgerEntry("promote", PROJECT, environment, "setup", "test setup", held.version, version),
        expected=held,
    )


def _cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return int(exit_info.value.code or 0)


def test_only_the_holder_is_packaged_for_an_environment(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _hold(workspace, "staging", "1")
    check_holder(workspace, PROJECT, "staging", "1")  # the holder passes
    with pytest.raises(PackageRefusedError, match=r"^v2 does not hold staging \(v1 holds it\)"):
        package_service.package(workspace, PROJECT, "2", environment="staging")
    with pytest.raises(PackageRefusedError, match=r"v1 does not hold production \(nothing"):
        check_holder(workspace, PROJECT, "production", "1")
    with pytest.raises(ModelopsError, match="unknown environment"):
        check_holder(workspace, PROJECT, "qa", "1")

    monkeypatch.setenv("MODELOPS_ROOT", str(workspace.root))
    capsys.readouterr()
    assert _cli("package", PROJECT, "2", "--env", "staging") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: v2 does not hold staging (v1 holds it); only an environment's holder "
        "is packaged for it"
    ]


def _skew(offline: list[float], online: list[float], max_share: float) -> SkewResult:
    keys = [{"company_id": i} for i in range(len(offline))]
    report = compare(
        keys,
        {"inflow": offline, "segment": ["a"] * len(offline)},
        {"inflow": online, "segment": ["a"] * len(offline)},
        ["inflow", "segment"],
    )
    return SkewResult(
        project=PROJECT,
        feature_service="svc_v1",
        entity="company_id",
        as_of=datetime(2026, 1, 1, tzinfo=UTC),
        report=report,
        max_share=max_share,
        offline=pd.DataFrame({"inflow": offline, "segment": ["a"] * len(offline)}),
    )


def test_skew_above_the_tolerance_refuses_naming_the_features() -> None:
    skewed = _skew([1.0, 2.0, 3.0, 4.0], [1.0, 2.5, 3.0, 4.0], max_share=0.0)
    with pytest.raises(PackageRefusedError) as raised:
        check_skew_allowed(skewed)
    message = str(raised.value)
    assert "1 of 4 entities (25.0%)" in message and "features: inflow;" in message
    assert "serving.max_skew_share 0.0%" in message and "\n" not in message
    check_skew_allowed(_skew([1.0, 2.0, 3.0, 4.0], [1.0, 2.5, 3.0, 4.0], max_share=0.25))
    check_skew_allowed(_skew([1.0, 2.0], [1.0, 2.0 + 1e-13], max_share=0.0))


def test_package_checks_skew_before_importing_or_building(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order of the checks in ``package`` only, not the service path: the registry lookup,
    the feature store and the skew measurement are replaced by canned answers, and a skew above
    the tolerance must stop the package before any model is imported or Bento built. The real
    path (registry, Feast, skew, scorer check, build, serve) runs end to end in
    tests/integration/test_service_http.py."""
    version = _Version("3", 0.5, ("inflow", "segment"), SHA, model=object())

    @contextlib.contextmanager
    def session(_: Any) -> Iterator[None]:
        yield None

    class Service:
        name = "svc_v1"

    built: list[Any] = []
    monkeypatch.setattr(package_service.mlflow_io, "session", session)
    monkeypatch.setattr(package_service, "_lookup", lambda *a: version)
    monkeypatch.setattr(package_service.feast_io, "open_store", lambda repo: object())
    monkeypatch.setattr(package_service, "project_service", lambda *a: Service())
    monkeypatch.setattr(
        package_service.feast_io, "service_features", lambda s: ["inflow", "segment"]
    )
    monkeypatch.setattr(
        package_service,
        "check_skew",
        lambda *a, **k: _skew([1.0, 2.0, 3.0], [1.0, 9.0, 3.0], max_share=0.1),
    )
    monkeypatch.setattr(package_service.bentoml_io, "build", lambda *a: built.append(a))
    monkeypatch.setattr(package_service.bentoml_io, "import_models", lambda *a: built.append(a))
    with pytest.raises(PackageRefusedError, match="features: inflow;"):
        package_service.package(workspace, PROJECT, "3")
    assert built == []


def test_a_shadow_must_be_another_version(workspace: Settings) -> None:
    with pytest.raises(PackageRefusedError, match="the shadow must be another version"):
        package_service.package(workspace, PROJECT, "3", shadow="3")


def test_tags_name_the_version_and_the_artifact() -> None:
    name = bento_name("p_1")
    assert model_tag("p_1", "3", SHA) == f"{name}-model:v3-abababababab"
    shadow = _Version("2", 0.5, (), "cd" * 32, model=None)
    assert release_tag("p_1", "3", SHA, None) == bento_tag("p_1", "3", SHA)
    assert release_tag("p_1", "3", SHA, shadow) == f"{name}:v3-abababababab-shadow-v2-cdcdcdcdcdcd"


def test_server_environment_points_at_the_platform_stores(workspace: Settings) -> None:
    env = server_environment(workspace, "staging", workspace.resolved_state_dir / "p.json")
    assert env["MODELOPS_SERVING_FEATURE_REPO"] == str(workspace.resolved_feature_repo)
    assert env["MODELOPS_SERVING_PREDICTION_LOG"] == workspace.resolved_prediction_log
    assert env["MODELOPS_SERVING_ENVIRONMENT"] == "staging"
    assert env["MODELOPS_STATE_DIR"] == str(workspace.resolved_state_dir)
    assert env["MODELOPS_SERVING_WATCH"].endswith("p.json")
    from modelops.serving.config import load_config

    load_config(env)  # every variable is one the service knows
