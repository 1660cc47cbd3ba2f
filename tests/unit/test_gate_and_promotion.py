"""Gate, promotion, rollback and ledger end to end on real models, MLflow and Feast (embedded)."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from gate_models import BrokenModel, GoodInOneSegment, NoisyScores, SegmentBlind

from modelops.cli.main import main
from modelops.config.settings import Settings, load_settings
from modelops.core.errors import ModelopsError
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import LedgerEntry
from modelops.services import data, datasets, features, gate, promote, train
from modelops.services.context import ledger as ledger_for
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
            "good_in_segment": GoodInOneSegment(
                model, NoisyScores(model, noise=1.0), "sector", biggest_sector
            ),
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
    frame = datasets.build_training_set(
        settings, project, datetime.now(UTC), windows=("validation",)
    ).frames["validation"]
    features_ = train.feast_io.service_features(
        train.feast_io.feature_service(
            train.feast_io.open_store(train.feature_repo(settings)), "credit_risk_v1"
        )
    )
    return frame[features_].head(20)


def _register(
    client: Any, settings: Settings, model: Any, tags: dict[str, str], example: pd.DataFrame
) -> str:
    record = mlflow_io.RunRecord(
        experiment=f"modelops/{PROJECT}",
        run_name=f"{PROJECT}-{type(model).__name__}",
        tags=tags,
    )
    logged = mlflow_io.log_run(client, tracking(settings), record, model, example)
    tags = {**tags, "modelops.artifact_sha256": mlflow_io.artifact_sha256(logged.model_uri)}
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
    """Given: ``version`` serves these environments (set up directly, as an operator would,
    through the platform's ledger handle and so with its key)."""
    ledger = ledger_for(settings)
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
    assert "BCa interval" in text and "larger than sampling noise" in text
    assert (
        _cli(
            "promote",
            PROJECT,
            version,
            "--to",
            "production",
            "--approve",
            "--approver",
            "reviewer",
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
    assert tags["modelops.env.production.by"] == "reviewer"
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
    assert stored["decisions_differ"] > 0.01  # the noisy reference decides differently

    joins = sorted((platform_.resolved_state_dir / "holdout-joins").glob("*.parquet"))
    assert joins, "the holdout join is kept for the next validation"
    again = gate.validate(platform_, PROJECT, trained["candidate"])
    assert again.holdout == verdict.holdout  # same rows, same hash, read back from the join cache
    assert sorted((platform_.resolved_state_dir / "holdout-joins").glob("*.parquet")) == joins
    assert "cost_per_1000" in stored["deltas"]
    interval = stored["evidence"]["primary_interval"]
    assert 0 < interval["low"] <= stored["deltas"]["pr_auc"] <= interval["high"]
    assert interval["resamples"] >= 2000 and interval["method"] == "BCa"
    latency = stored["evidence"]["latency"]
    assert len(latency["candidate_ms"]) == len(latency["reference_ms"]) >= 100
    assert stored["candidate"]["size_bytes"] > 0 and stored["candidate"]["latency_ms_p50"] > 0


def test_better_overall_but_worse_in_one_segment_is_rejected_for_that_segment(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    # production is weak overall but good in the one segment the candidate is blind in
    _seed(platform_, trained["good_in_segment"], ("production",))
    verdict = gate.validate(platform_, PROJECT, trained["segment_blind"])
    failed = {r.name: r.detail for r in verdict.rules if not r.passed}
    assert not verdict.passed
    assert list(failed) == ["no segment significantly worse"]
    assert f"sector={trained['sector']}" in failed["no segment significantly worse"]
    primary = next(r for r in verdict.rules if r.name.startswith("pr_auc non-inferior"))
    assert primary.passed, "the candidate must be better overall for this test to mean anything"


def test_evaluation_error_exits_2_records_no_pass_and_blocks_promotion(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(platform_, trained["noisy"], ("dev",))
    assert _cli("validate", PROJECT, trained["broken"], "--against", "dev") == 2
    err = capsys.readouterr().err
    assert "native scoring library crashed" in err and "Traceback" not in err
    assert _cli("promote", PROJECT, trained["broken"], "--to", "dev") == 2
    assert "could not evaluate" in capsys.readouterr().err
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
    # MODELOPS_ACTOR=tester ran the gate: tester may not approve the promotion it judged
    assert (
        _cli("promote", PROJECT, candidate, "--to", "production", "--approve", "--reason", "x") == 2
    )
    assert "tester validated v" in capsys.readouterr().err

    refusals = [e for e in promote.history(platform_, PROJECT) if e.action == "refuse"]
    assert len(refusals) == 5 and all(e.to_version == candidate for e in refusals)
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
    with sqlite3.connect(db) as conn:  # someone with the file gets past the guard trigger
        conn.execute("DROP TRIGGER modelops_ledger_no_update")
        conn.execute("UPDATE modelops_ledger SET to_version = '1' WHERE seq = 1")
    assert _cli("history", PROJECT, "--verify") == 1
    assert "entry 1: HMAC does not match its content" in capsys.readouterr().err  # keyed


def test_sync_repairs_an_alias_that_lags_behind_the_ledger(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    noisy, candidate = trained["noisy"], trained["candidate"]
    _seed(platform_, noisy, ("production",))
    with mlflow_io.session(tracking(platform_)) as client:  # MLflow lost the last move
        mlflow_io.set_alias(client, PROJECT, "production", candidate)
    with pytest.raises(gate.EvaluationError, match="modelops models sync"):
        gate.validate(platform_, PROJECT, trained["twin"])

    assert _cli("models", "sync", PROJECT) == 0
    assert f"alias 'production' v{candidate} -> v{noisy}" in capsys.readouterr().out
    with mlflow_io.session(tracking(platform_)) as client:
        assert mlflow_io.aliases(client, PROJECT)["production"] == noisy
    assert gate.validate(platform_, PROJECT, trained["twin"]).reference.version == noisy
    assert promote.sync_aliases(platform_, PROJECT) == {}


# --- trust in the verdict: artifacts, reruns, expiry, first model, definitions, cache ----------


def _artifact_file(settings: Settings, version: str) -> Path:
    """Where the registry keeps a version's pickled model (the embedded store is local files)."""
    from urllib.parse import urlparse

    with mlflow_io.session(tracking(settings)) as client:
        uri = client.get_model_version_download_uri(PROJECT, version)
    folder = Path(urlparse(uri).path) if "://" in uri else Path(uri)
    return folder / "model.pkl"


def test_a_swapped_artifact_is_refused_before_it_is_scored_and_cannot_be_promoted(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    candidate, twin, noisy = trained["candidate"], trained["twin"], trained["noisy"]
    _seed(platform_, noisy, ("dev",))
    assert gate.validate(platform_, PROJECT, candidate, against="dev").passed
    stored = _artifact_file(platform_, candidate)
    original = stored.read_bytes()
    try:
        # a valid pickle of another version: it would load and score without complaint
        stored.write_bytes(_artifact_file(platform_, twin).read_bytes() + b"\0")
        assert _cli("promote", PROJECT, candidate, "--to", "dev") == 2
        err = capsys.readouterr().err
        assert "artifact is not the one verdict" in err
        assert _cli("validate", PROJECT, candidate, "--against", "dev") == 2
        err = capsys.readouterr().err
        assert f"{PROJECT} v{candidate} (candidate): artifact does not match" in err
        assert "refusing to score" in err and "Traceback" not in err
    finally:
        stored.write_bytes(original)
    assert promote.holders(platform_, PROJECT)["dev"] == noisy


def test_same_inputs_return_the_recorded_verdict_so_a_gate_cannot_be_retried_to_a_pass(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    _seed(platform_, trained["good_in_segment"], ("dev",))
    first = gate.validate(platform_, PROJECT, trained["segment_blind"], against="dev")
    again = gate.validate(platform_, PROJECT, trained["segment_blind"], against="dev")
    assert not first.passed
    assert again.id == first.id and again.to_dict() == first.to_dict()
    entries = [e for e in promote.history(platform_, PROJECT) if e.action == "validate"]
    assert [e.details["reused"] for e in entries[-2:]] == [False, True]
    assert entries[-1].verdict_id == first.id


def test_an_errored_validation_after_a_pass_withdraws_the_pass(
    platform_: Settings,
    trained: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _seed(platform_, trained["noisy"], ("dev",))
    assert gate.validate(platform_, PROJECT, trained["candidate"], against="dev").passed
    repo = copy_workspace(tmp_path / "copy")  # same registries, but no feature data at all
    (repo / ".modelops").symlink_to(Path(trained["root"]) / ".modelops")
    monkeypatch.setenv("MODELOPS_ROOT", str(repo))
    assert _cli("validate", PROJECT, trained["candidate"], "--against", "dev") == 2
    assert _cli("promote", PROJECT, trained["candidate"], "--to", "dev") == 2
    assert "could not evaluate (label table" in capsys.readouterr().err


def test_an_expired_verdict_no_longer_promotes(
    platform_: Settings, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(platform_, trained["noisy"], ("dev",))
    verdict = gate.validate(platform_, PROJECT, trained["candidate"], against="dev")
    assert verdict.passed
    later = datetime.now(UTC) + pd.Timedelta(days=8).to_pytimedelta()

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return later

    monkeypatch.setattr(promote, "datetime", Later)
    with pytest.raises(promote.PromotionRefusedError, match="expired after 7 days"):
        promote.promote(platform_, PROJECT, trained["candidate"], "dev")


def test_first_model_is_judged_against_prevalence_and_its_training_sibling(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    """Nothing serves dev: each of the two versions trained together is compared with the
    prevalence-only reference and with its sibling; the baseline can be validated too."""
    verdicts = {
        role: gate.validate(platform_, PROJECT, trained[role], against="dev")
        for role in ("candidate", "baseline")
    }
    for role, verdict in verdicts.items():
        assert verdict.reference.role == "prevalence", role
        assert verdict.reference.metrics["roc_auc"] == pytest.approx(0.5)
        names = [r.name for r in verdict.rules]
        assert "preferred over its training sibling" in names
        sibling = next(r for r in verdict.rules if r.name == "preferred over its training sibling")
        assert f"candidate v{trained['candidate']} vs baseline v{trained['baseline']}" in (
            sibling.detail
        )
    preferred = {
        role: next(r.passed for r in v.rules if r.name == "preferred over its training sibling")
        for role, v in verdicts.items()
    }
    assert sorted(preferred.values()) == [False, True], "exactly one of the two is preferred"
    assert any(v.passed for v in verdicts.values()), {
        role: v.failed_rules for role, v in verdicts.items()
    }
    winner = next(role for role, v in verdicts.items() if v.passed)
    move = promote.promote(platform_, PROJECT, trained[winner], "dev")
    assert move.from_version is None and move.to_version == trained[winner]


def test_changed_feature_definitions_are_refused_unless_allowed_and_recorded(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(platform_, trained["noisy"], ("dev",))
    definitions = Path(trained["root"]) / "feature_repo" / "credit_risk_features.py"
    original = definitions.read_text()
    try:
        definitions.write_text(original.replace("ttl=timedelta(days=62)", "ttl=timedelta(days=93)"))
        features.apply(platform_)
        assert _cli("validate", PROJECT, trained["candidate"], "--against", "dev") == 2
        err = capsys.readouterr().err
        assert "feature definitions changed since training" in err
        assert "company_monthly_financials" in err and "--allow-feature-change" in err
        verdict = gate.validate(
            platform_, PROJECT, trained["candidate"], against="dev", allow_feature_change=True
        )
        changes = verdict.evidence["feature_changes"]
        assert changes[f"candidate v{trained['candidate']}"] == ["company_monthly_financials"]
        assert verdict.inputs["allow_feature_change"] is True
    finally:
        definitions.write_text(original)
        features.apply(platform_)


def test_a_corrupted_join_cache_entry_is_discarded_and_rebuilt(
    platform_: Settings, trained: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    _seed(platform_, trained["noisy"], ("dev",))
    first = gate.validate(platform_, PROJECT, trained["twin"], against="dev")
    cache = platform_.resolved_state_dir / "holdout-joins"
    for entry in cache.glob("*.parquet"):
        entry.write_bytes(b"not a parquet file")
    with caplog.at_level("WARNING"):
        again = gate.validate(platform_, PROJECT, trained["twin"], against="dev")
    assert again.holdout == first.holdout
    assert "discarded the cached join" in caplog.text and ".parquet" in caplog.text
    rebuilt = [e for e in cache.glob("*.parquet") if e.read_bytes()[:4] == b"PAR1"]
    assert len(rebuilt) == 1  # the join this holdout needs; others stay until they are used


def test_an_identical_retrain_decides_identically_and_is_non_inferior(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    """Invariance: the same model registered again scores the same rows the same way."""
    _seed(platform_, trained["candidate"], ("dev",))
    verdict = gate.validate(platform_, PROJECT, trained["twin"], against="dev")
    assert verdict.decisions_differ == 0.0
    assert all(delta == 0.0 for delta in verdict.deltas().values()), verdict.deltas()
    interval = verdict.evidence["primary_interval"]
    assert interval["estimate"] == 0.0 and interval["low"] <= 0.0 <= interval["high"]
    assert verdict.passed, verdict.failed_rules


def test_only_verdicts_from_the_trusted_branch_allow_a_promotion(
    platform_: Settings, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verdict computed by code that is not a clean commit on main (a pull request's, or a
    workspace outside git) is refused in the production profile's default."""
    _seed(platform_, trained["noisy"], ("dev",))
    assert gate.validate(platform_, PROJECT, trained["candidate"], against="dev").passed
    monkeypatch.setenv("MODELOPS_TRUSTED_BRANCH", "main")
    with pytest.raises(promote.PromotionRefusedError, match="not a clean commit on 'main'"):
        promote.promote(load_settings(), PROJECT, trained["candidate"], "dev")


def test_no_record_computes_a_verdict_and_writes_nothing(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(platform_, trained["noisy"], ("dev",))
    before = promote.history(platform_, PROJECT)
    code = _cli("validate", PROJECT, trained["candidate"], "--against", "dev", "--no-record")
    assert code == 0 and "allows no promotion" in capsys.readouterr().out
    assert promote.history(platform_, PROJECT) == before
    with pytest.raises(promote.PromotionRefusedError, match="no verdict"):
        promote.promote(platform_, PROJECT, trained["candidate"], "dev")


def test_when_mlflow_fails_after_the_move_the_move_stands_and_says_the_alias_lags(
    platform_: Settings,
    trained: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _seed(platform_, trained["noisy"], ("dev",))
    assert gate.validate(platform_, PROJECT, trained["candidate"], against="dev").passed

    def unreachable(*args: object, **kwargs: object) -> None:
        raise mlflow_io.ServiceUnavailableError("MLflow tracking server unreachable")

    original = mlflow_io.set_alias
    monkeypatch.setattr(mlflow_io, "set_alias", unreachable)
    assert _cli("promote", PROJECT, trained["candidate"], "--to", "dev") == 3
    err = capsys.readouterr().err
    assert "promoted (credit_risk dev = v" in err and "MLflow alias lags" in err
    assert "modelops models sync credit_risk" in err
    assert promote.holders(platform_, PROJECT)["dev"] == trained["candidate"]  # the move stands
    monkeypatch.setattr(mlflow_io, "set_alias", original)
    assert promote.sync_aliases(platform_, PROJECT) == {
        "dev": (trained["noisy"], trained["candidate"])
    }


# ----------------------------------------------------------------------------- the one walk


def test_walk_tries_the_next_candidate_only_after_a_failed_first_gate_and_waits_where_told(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    from modelops.services.workflows import promotion

    # segment_blind fails against good_in_segment (see the segment test above); the real
    # candidate is the same model everywhere and passes
    _seed(platform_, trained["good_in_segment"], ("dev", "staging", "production"))
    result = promotion.walk(
        platform_,
        PROJECT,
        promotion.WalkOptions(
            target="production",
            candidates=[trained["segment_blind"], trained["candidate"]],
            reason=lambda version, env, step: f"walked v{version} to {env} on {step.verdict_id}",
            actor="monitor",
            waits={"production": "needs an approval"},
        ),
    )
    gated = [(g.version, g.environment, g.passed) for g in result.gates]
    assert gated[0] == (trained["segment_blind"], "dev", False)
    assert gated[1:] == [
        (trained["candidate"], env, True) for env in ("dev", "staging", "production")
    ]
    assert result.chosen == trained["candidate"] and not result.reached
    assert [m.environment for m in result.moves] == ["dev", "staging"]
    assert result.pending is not None and result.pending.environment == "production"
    assert result.pending.verdict_id == result.gates[-1].verdict_id
    assert "production needs an approval: pending" in result.stopped
    holders = promote.holders(platform_, PROJECT)
    assert (holders["dev"], holders["staging"]) == (trained["candidate"], trained["candidate"])
    assert holders["production"] == trained["good_in_segment"]
    moved = [e for e in promote.history(platform_, PROJECT) if e.action == "promote"]
    assert (
        moved[-1].reason
        == f"walked v{trained['candidate']} to staging on {result.gates[2].verdict_id}"
    )


def test_walk_with_an_approver_reaches_the_target_and_skips_what_the_version_held(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    from modelops.services.workflows import promotion

    _seed(platform_, trained["noisy"], ("staging", "production"))
    _seed(platform_, trained["candidate"], ("dev",))
    moved: list[str] = []
    result = promotion.walk(
        platform_,
        PROJECT,
        promotion.WalkOptions(
            target="production",
            candidates=[trained["candidate"]],
            reason=lambda *_: "drill",
            actor="tester",
            approver="reviewer",
            skip_held=True,
            after_move=lambda env, version: moved.append(env) or f"deployed {env}",
        ),
    )
    assert result.reached and [g.environment for g in result.gates] == ["staging", "production"]
    assert [m.after for m in result.moves] == ["deployed staging", "deployed production"]
    assert moved == ["staging", "production"]
    moves = [e for e in promote.history(platform_, PROJECT) if e.action in ("approve", "promote")]
    assert [(e.action, e.environment, e.actor) for e in moves[-3:]] == [
        ("promote", "staging", "tester"),  # no approval needed: the walk's actor moves it
        ("approve", "production", "reviewer"),
        ("promote", "production", "reviewer"),
    ]


def test_walk_fails_closed_on_a_gate_that_cannot_be_evaluated(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    from modelops.services.workflows import promotion

    _seed(platform_, trained["noisy"], ("dev",))
    options = promotion.WalkOptions(
        target="dev", candidates=[trained["broken"]], reason=lambda *_: "x", actor="monitor"
    )
    with pytest.raises(ModelopsError, match="native scoring library crashed"):
        promotion.walk(platform_, PROJECT, options)
    result = promotion.walk(platform_, PROJECT, dataclasses.replace(options, gate_errors_fail=True))
    assert result.chosen is None and not result.moves
    assert result.gates[0].verdict_id is None
    assert result.gates[0].failed.startswith("could not evaluate: ")
    assert result.stopped == "no offered version passed the gate against dev"
    assert promote.holders(platform_, PROJECT)["dev"] == trained["noisy"]


def test_one_validation_opens_the_feature_store_once(
    platform_: Settings,
    trained: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the gate needs is resolved once at its start: one feature store opened and one
    feature-service lookup per validation, whether the holdout is joined or read back from the
    join cache."""
    from modelops.integrations import feast as feast_io
    from modelops.services.gate import context as gate_context

    calls = {"open_store": 0, "project_service": 0}

    def counting(name: str, real: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)

        return counted

    monkeypatch.setattr(feast_io, "open_store", counting("open_store", feast_io.open_store))
    for module in (gate_context, datasets):
        monkeypatch.setattr(
            module, "project_service", counting("project_service", module.project_service)
        )
    monkeypatch.setattr(gate_context, "JOIN_CACHE", f"holdout-joins-{tmp_path.name}")

    first = gate.validate(platform_, PROJECT, trained["candidate"], against="dev")
    assert calls == {"open_store": 1, "project_service": 1}, "joining the holdout"
    calls.update(open_store=0, project_service=0)
    again = gate.validate(platform_, PROJECT, trained["candidate"], against="dev")
    assert calls == {"open_store": 1, "project_service": 1}, "reading the join back"
    assert again.id == first.id  # the same inputs: the recorded verdict


def _no_scoring(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the holdout was scored again")


def test_a_verdict_is_reused_where_the_reference_and_holdout_are_the_same(
    platform_: Settings,
    trained: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """dev and staging both held by the same version: the staging verdict is dev's, not a
    second scoring; recorded as reused, with its origin, and it promotes. The progress line
    names the verdict it reuses (not the new id as if it had been recorded before)."""
    import logging

    from modelops.services.gate import validation

    _seed(platform_, trained["noisy"], ("dev", "staging"))
    candidate = trained["candidate"]
    measured = gate.validate(platform_, PROJECT, candidate, against="dev")
    assert measured.passed, measured.failed_rules
    monkeypatch.setattr(validation, "score", _no_scoring)
    with caplog.at_level(logging.INFO, logger=validation.log.name):
        reused = gate.validate(platform_, PROJECT, candidate, against="staging")
    said = [r.getMessage() for r in caplog.records if r.name == validation.log.name]
    assert said == [
        f"verdict {measured.id} of dev judged the same candidate, reference and holdout: "
        f"reusing its measurements as verdict {reused.id}"
    ]
    assert (reused.environment, reused.passed) == ("staging", True)
    assert reused.id != measured.id and reused.rules == measured.rules
    assert reused.reference.role == "staging" and reused.reference.version == trained["noisy"]
    assert reused.evidence["reused_from"]["verdict_id"] == measured.id
    assert reused.evidence["reused_from"]["environment"] == "dev"
    entry = [e for e in promote.history(platform_, PROJECT) if e.action == "validate"][-1]
    assert (entry.environment, entry.verdict_id, entry.details["reused"]) == (
        "staging",
        reused.id,
        True,
    )
    assert entry.details["reused_from"]["verdict_id"] == measured.id
    assert entry.reason.startswith(f"same inputs as verdict {measured.id} of dev: ")
    promote.promote(platform_, PROJECT, candidate, "dev")
    move = promote.promote(platform_, PROJECT, candidate, "staging")
    assert move.to_version == candidate


def test_another_reference_version_is_scored_again(
    platform_: Settings, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelops.services.gate import validation

    _seed(platform_, trained["noisy"], ("dev",))
    _seed(platform_, trained["twin"], ("staging",))
    assert gate.validate(platform_, PROJECT, trained["candidate"], against="dev").passed
    monkeypatch.setattr(validation, "score", _no_scoring)
    with pytest.raises(gate.EvaluationError, match="scored again"):
        gate.validate(platform_, PROJECT, trained["candidate"], against="staging")


def _without_costs(root: Path) -> tuple[Path, str]:
    spec_file = root / "projects" / PROJECT / "project.yaml"
    original = spec_file.read_text()
    lines = original.splitlines(keepends=True)
    start = lines.index("costs:\n")
    end = start + 1
    while lines[end].startswith("  "):
        end += 1
    spec_file.write_text("".join(lines[:start] + lines[end:]))
    return spec_file, original


def test_placeholder_costs_warn_in_the_verdict_and_production_refuses_them(
    platform_: Settings, trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    candidate, noisy = trained["candidate"], trained["noisy"]
    _seed(platform_, noisy, ("production",))
    _seed(platform_, candidate, ("dev", "staging"))
    assert gate.validate(platform_, PROJECT, candidate, against="production").passed
    spec_file, original = _without_costs(Path(trained["root"]))
    try:
        # the twin against the candidate in dev, judged on 1:1 placeholders
        _cli("validate", PROJECT, trained["twin"], "--against", "dev")
        captured = capsys.readouterr()
        assert "warning: placeholder costs: the gate judged cost with 1:1 costs" in captured.err
        assert "**Warning:** placeholder costs" in captured.out and "EUR" not in captured.out
        entry = [e for e in promote.history(platform_, PROJECT) if e.action == "validate"][-1]
        assert entry.details["costs_placeholder"] is True
        assert entry.details["verdict"]["evidence"]["costs"]["judged_with_placeholder"] is True
        code = _cli(
            "promote",
            PROJECT,
            candidate,
            "--to",
            "production",
            "--approve",
            "--approver",
            "reviewer",
            "--reason",
            "x",
        )
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1
        assert "production needs the business's costs, not placeholders" in err
        assert f"in projects/{PROJECT}/project.yaml, then train and validate again" in err
    finally:
        spec_file.write_text(original)
    assert promote.holders(platform_, PROJECT)["production"] == noisy
