"""Gate, promotion, rollback and ledger end to end on real models, MLflow and Feast (embedded)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from gate_models import BrokenModel, NoisyScores, SegmentBlind

from modelops.cli.main import main
from modelops.config.settings import Settings, load_settings
from modelops.core.errors import ModelopsError
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import Ledger, LedgerEntry
from modelops.services import data, features, gate, promote, train
from modelops.services.context import tracking
from support import copy_workspace

PROJECT = "credit_risk"
ROWS = 20_000  # enough holdout defaults per sector for the segment rule to judge


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Credit data, one real training run, and designed variants registered beside it."""
    root = copy_workspace(tmp_path_factory.mktemp("gate") / "repo")
    settings = load_settings(root)
    data.generate(settings, [PROJECT], rows=ROWS, seed=5)
    features.apply(settings)
    result = train.train(settings, PROJECT)
    with mlflow_io.session(tracking(settings)) as client:
        source = client.get_model_version(PROJECT, result.candidate.version)
        model = mlflow_io.load_model(f"models:/{PROJECT}/{source.version}")
        biggest_sector = _sector_with_most_holdout_defaults(settings)
        variants = {
            "noisy": NoisyScores(model, noise=0.9),
            "segment_blind": SegmentBlind(model, "sector", biggest_sector),
            "broken": BrokenModel(model),
            "twin": model,  # the same model registered again, as a retrain with a fixed seed
        }
        example = _example(settings)
        versions = {
            name: _register(client, settings, variant, dict(source.tags), example)
            for name, variant in variants.items()
        }
    return {
        "root": root,
        "baseline": result.baseline.version,
        "candidate": result.candidate.version,
        "sector": biggest_sector,
        **versions,
    }


def _sector_with_most_holdout_defaults(settings: Settings) -> str:
    sectors = pd.read_parquet(
        settings.data_dir / "credit_company_monthly.parquet", columns=["company_id", "sector"]
    ).drop_duplicates("company_id")
    applications = pd.read_parquet(settings.data_dir / "credit_applications.parquet")
    stamps = applications["event_timestamp"]
    defaults = applications[
        (stamps >= pd.Timestamp("2025-01-01", tz="UTC"))
        & (stamps < pd.Timestamp("2025-07-01", tz="UTC"))
        & (applications["default_12m"] == 1)
    ]
    return str(defaults.merge(sectors, on="company_id")["sector"].value_counts().index[0])


def _example(settings: Settings) -> pd.DataFrame:
    from modelops.config.project import load_project

    project = load_project(settings.resolved_projects_dir, PROJECT)
    module = train.load_train_module(project)
    frame = train.build_training_set(
        settings, project, datetime.now(UTC), windows=("validation",)
    ).frames["validation"]
    features_ = train.feast_io.service_features(
        train.feast_io.feature_service(
            train.feast_io.open_store(train.feature_repo(settings)), "credit_risk_v1"
        )
    )
    return module.build_features(frame.head(20), features_)


def _register(
    client: Any, settings: Settings, model: Any, tags: dict[str, str], example: pd.DataFrame
) -> str:
    record = mlflow_io.RunRecord(
        experiment=f"modelops/{PROJECT}",
        run_name=f"{PROJECT}-{type(model).__name__}",
        tags=tags,
    )
    logged = mlflow_io.log_run(client, tracking(settings), record, model, example)
    return str(mlflow_io.register_version(client, PROJECT, logged, tags, "test variant").version)


@pytest.fixture
def platform_(trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The trained workspace with an empty ledger and no aliases: nothing serves anywhere."""
    monkeypatch.setenv("MODELOPS_ROOT", str(trained["root"]))
    monkeypatch.setenv("MODELOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'platform.db'}")
    monkeypatch.setenv("MODELOPS_ACTOR", "tester")
    settings = load_settings()
    with mlflow_io.session(tracking(settings)) as client:
        for alias in list(mlflow_io.aliases(client, PROJECT)):
            mlflow_io.delete_alias(client, PROJECT, alias)
    return settings


def _seed(settings: Settings, version: str, environments: tuple[str, ...]) -> None:
    """Given: ``version`` serves these environments (set up directly, as an operator would)."""
    ledger = Ledger(settings.platform_database_url)
    for env in environments:
        held = ledger.holder(PROJECT, env)
        ledger.transition(
            LedgerEntry("promote", PROJECT, env, "setup", "test setup", held.version, version),
            expected=held,
        )
        with mlflow_io.session(tracking(settings)) as client:
            mlflow_io.set_alias(client, PROJECT, env, version)


def _cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return int(exit_info.value.code or 0)


def test_better_candidate_passes_and_promotes_through_every_environment(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(platform_, trained["noisy"], ("dev", "staging", "production"))
    version = trained["candidate"]
    for env in ("dev", "staging"):
        verdict = gate.validate(platform_, PROJECT, version, against=env)
        assert verdict.passed, [r for r in verdict.rules if not r.passed]
        promote.promote(platform_, PROJECT, version, env)
    report = Path(platform_.root) / "report.md"
    assert _cli("validate", PROJECT, version, "--report-out", str(report)) == 0
    text = report.read_text()
    assert f"v{version} vs production v{trained['noisy']}" in text and "PASSED" in text
    assert "catches" in text and "of defaults at a" in text
    assert "paired bootstrap" in text and "larger than sampling noise" in text
    assert (
        _cli(
            "promote",
            PROJECT,
            version,
            "--to",
            "production",
            "--approve",
            "--reason",
            "better on cost and PR-AUC",
        )
        == 0
    )
    assert promote.holders(platform_, PROJECT)["production"] == version
    with mlflow_io.session(tracking(platform_)) as client:
        assert mlflow_io.aliases(client, PROJECT)["production"] == version
        assert mlflow_io.aliases(client, PROJECT)["production-previous"] == trained["noisy"]
        tags = client.get_model_version(PROJECT, version).tags
    assert tags["modelops.gate.production.verdict"] == "pass"
    assert tags["modelops.env.production.action"] == "promote"
    assert tags["modelops.env.production.reason"] == "better on cost and PR-AUC"
    assert tags["modelops.env.production.by"] == "tester"
    actions = [e.action for e in promote.history(platform_, PROJECT) if e.actor != "setup"]
    assert actions[-2:] == ["approve", "promote"]


def test_verdict_is_stored_on_the_candidate_with_the_same_rows_for_both(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    _seed(platform_, trained["noisy"], ("production",))
    verdict = gate.validate(platform_, PROJECT, trained["candidate"])
    with mlflow_io.session(tracking(platform_)) as client:
        run_id = client.get_model_version(PROJECT, trained["candidate"]).run_id
        stored = mlflow_io.load_json_artifact(client, run_id, f"gate/{verdict.id}/verdict.json")
    assert stored["passed"] is True
    assert stored["candidate"]["metrics"]["rows"] == stored["reference"]["metrics"]["rows"]
    assert stored["holdout"]["rows"] == stored["candidate"]["metrics"]["rows"]
    assert stored["holdout"]["sha256"] == verdict.holdout.sha256
    assert 0 <= stored["decisions_differ"] <= 1

    joins = sorted((platform_.resolved_state_dir / "holdout-joins").glob("*.parquet"))
    assert joins, "the holdout join is kept for the next validation"
    again = gate.validate(platform_, PROJECT, trained["candidate"])
    assert again.holdout == verdict.holdout  # same rows, same hash, read back from the join cache
    assert sorted((platform_.resolved_state_dir / "holdout-joins").glob("*.parquet")) == joins
    assert "cost_per_1000" in stored["deltas"]
    low, high = stored["primary_delta_interval"]
    assert 0 < low <= stored["deltas"]["pr_auc"] <= high  # far better than the noisy reference
    assert stored["candidate"]["size_bytes"] > 0 and stored["candidate"]["latency_ms_p50"] > 0


def test_better_overall_but_worse_in_one_segment_is_rejected_for_that_segment(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    _seed(platform_, trained["noisy"], ("production",))
    verdict = gate.validate(platform_, PROJECT, trained["segment_blind"])
    failed = {r.name: r.detail for r in verdict.rules if not r.passed}
    assert not verdict.passed
    assert "no segment loses more than 0.05 pr_auc" in failed
    assert f"sector={trained['sector']}" in failed["no segment loses more than 0.05 pr_auc"]
    primary = next(r for r in verdict.rules if r.name.startswith("pr_auc improves"))
    assert primary.passed, "the candidate must be better overall for this test to mean anything"


def test_evaluation_error_exits_2_records_no_pass_and_blocks_promotion(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(platform_, trained["noisy"], ("dev",))
    assert _cli("validate", PROJECT, trained["broken"], "--against", "dev") == 2
    err = capsys.readouterr().err
    assert "native scoring library crashed" in err and "Traceback" not in err
    assert _cli("promote", PROJECT, trained["broken"], "--to", "dev") == 2
    assert "no verdict" in capsys.readouterr().err
    assert promote.holders(platform_, PROJECT)["dev"] == trained["noisy"]


def test_gate_fails_closed_when_the_holdout_cannot_be_built(
    platform_: Settings,
    trained: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = copy_workspace(tmp_path / "copy")  # same registries, but no feature data at all
    (repo / ".modelops").symlink_to(Path(trained["root"]) / ".modelops")
    monkeypatch.setenv("MODELOPS_ROOT", str(repo))
    assert _cli("validate", PROJECT, trained["candidate"], "--against", "dev") == 2
    assert "label table" in capsys.readouterr().err


def test_promotion_refusals_are_explained_and_recorded(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    candidate, noisy, twin = trained["candidate"], trained["noisy"], trained["twin"]
    assert _cli("promote", PROJECT, candidate, "--to", "dev") == 2
    assert "no verdict for v" in capsys.readouterr().err

    _seed(platform_, noisy, ("dev",))
    verdict = gate.validate(platform_, PROJECT, candidate, against="dev")
    assert verdict.passed, [r for r in verdict.rules if not r.passed]
    _seed(platform_, twin, ("dev",))  # dev changed hands after the verdict
    assert _cli("promote", PROJECT, candidate, "--to", "dev") == 2
    assert "is stale" in capsys.readouterr().err

    _seed(platform_, noisy, ("staging", "production"))
    _seed(platform_, candidate, ("dev", "staging"))
    assert gate.validate(platform_, PROJECT, candidate, against="production").passed
    assert _cli("promote", PROJECT, candidate, "--to", "production") == 2
    assert "needs an explicit approval" in capsys.readouterr().err
    assert _cli("promote", PROJECT, candidate, "--to", "production", "--approve") == 2
    assert "needs a reason" in capsys.readouterr().err

    refusals = [e for e in promote.history(platform_, PROJECT) if e.action == "refuse"]
    assert len(refusals) == 4 and all(e.to_version == candidate for e in refusals)
    assert promote.holders(platform_, PROJECT)["production"] == noisy


def test_promotion_skipping_an_environment_is_refused(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    _seed(platform_, trained["noisy"], ("staging",))
    assert gate.validate(platform_, PROJECT, trained["candidate"], against="staging").passed
    with pytest.raises(promote.PromotionRefusedError, match="never held dev"):
        promote.promote(platform_, PROJECT, trained["candidate"], "staging")


def test_concurrent_promotions_exactly_one_wins(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    versions = [trained["candidate"], trained["twin"]]
    _seed(platform_, trained["noisy"], ("dev",))
    for version in versions:
        assert gate.validate(platform_, PROJECT, version, against="dev").passed
    env = {k: v for k, v in __import__("os").environ.items()}
    command = [sys.executable, "-m", "modelops", "promote", PROJECT]
    processes = [
        subprocess.Popen(
            [*command, version, "--to", "dev"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for version in versions
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in processes]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    loser = next(err for code, err in outcomes if code == 2)
    assert "changed" in loser or "is stale" in loser
    winner = versions[[code for code, _ in outcomes].index(0)]
    assert promote.holders(platform_, PROJECT)["dev"] == winner
    assert promote.verify(platform_).ok


def test_rollback_restores_previous_and_history_answers_holder_at_time(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    noisy, candidate = trained["noisy"], trained["candidate"]
    _seed(platform_, noisy, ("production",))
    t_noisy = datetime.now(UTC)
    time.sleep(0.01)
    _seed(platform_, candidate, ("production",))
    t_candidate = datetime.now(UTC)
    time.sleep(0.01)
    assert _cli("rollback", PROJECT, "--env", "production", "--reason", "latency spike") == 0
    t_rolled = datetime.now(UTC)
    assert promote.holders(platform_, PROJECT)["production"] == noisy
    with mlflow_io.session(tracking(platform_)) as client:
        assert mlflow_io.aliases(client, PROJECT)["production"] == noisy
        restored = client.get_model_version(PROJECT, noisy).tags
        replaced = client.get_model_version(PROJECT, candidate).tags
    assert restored["modelops.env.production.action"] == "rollback"
    assert restored["modelops.env.production.reason"] == "latency spike"
    assert "modelops.env.production.left_at" in replaced
    last = promote.history(platform_, PROJECT)[-1]
    assert (last.action, last.from_version, last.to_version, last.reason) == (
        "rollback",
        candidate,
        noisy,
        "latency spike",
    )

    assert promote.holder_at(platform_, PROJECT, "production", t_noisy) == noisy
    assert promote.holder_at(platform_, PROJECT, "production", t_candidate) == candidate
    assert promote.holder_at(platform_, PROJECT, "production", t_rolled) == noisy
    assert (
        promote.holder_at(platform_, PROJECT, "production", datetime(2000, 1, 1, tzinfo=UTC))
        is None
    )
    capsys.readouterr()
    assert (
        _cli(
            "history",
            PROJECT,
            "--env",
            "production",
            "--at",
            t_candidate.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        )
        == 0
    )
    assert capsys.readouterr().out.strip().endswith(f"v{candidate}")
    with pytest.raises(ModelopsError, match="v999 never held production"):
        promote.rollback(platform_, PROJECT, "production", reason="x", to_version="999")


def test_edited_ledger_row_is_detected_by_history_verify(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(platform_, trained["noisy"], ("dev", "staging"))
    assert _cli("history", PROJECT, "--verify") == 0
    assert "hash chain intact" in capsys.readouterr().out
    db = platform_.platform_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE modelops_ledger SET to_version = '1' WHERE seq = 1")
    assert _cli("history", PROJECT, "--verify") == 1
    assert "entry 1: content does not match its hash" in capsys.readouterr().err


def test_sync_repairs_an_alias_that_lags_behind_the_ledger(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    noisy, candidate = trained["noisy"], trained["candidate"]
    _seed(platform_, noisy, ("production",))
    with mlflow_io.session(tracking(platform_)) as client:  # MLflow lost the last move
        mlflow_io.set_alias(client, PROJECT, "production", candidate)
    with pytest.raises(gate.EvaluationError, match="fix the alias"):
        gate.validate(platform_, PROJECT, trained["twin"])

    assert _cli("models", "sync", PROJECT) == 0
    assert f"alias 'production' v{candidate} -> v{noisy}" in capsys.readouterr().out
    with mlflow_io.session(tracking(platform_)) as client:
        assert mlflow_io.aliases(client, PROJECT)["production"] == noisy
    assert gate.validate(platform_, PROJECT, trained["twin"]).reference.version == noisy
    assert promote.sync_aliases(platform_, PROJECT) == {}
