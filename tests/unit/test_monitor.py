"""``modelops monitor`` end to end on real models, MLflow, Feast, Evidently and the ledger.

One module-scoped workspace (fraud example data, one training run: a LightGBM candidate and a
logistic baseline) keeps the suite short; each test gets its own ledger and prediction log.
Traffic is constructed: the November and December payments joined point-in-time, scored by the
serving version and written to the prediction log with the service's own writer, as they were
made (logged at their event time); drift and concept drift are applied to those rows.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from modelops.cli.main import main
from modelops.config.project import load_project
from modelops.config.settings import Settings, load_settings
from modelops.core import ledger as chain
from modelops.core import monitor_record, tags
from modelops.core import monitoring as policy
from modelops.core.scorer import build_scorer
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import Ledger, LedgerEntry
from modelops.services import data, datasets, features, judged, monitor, promote, train
from modelops.services.context import tracking
from modelops.serving.prediction_log import ParquetSink, PredictionRecord
from support import copy_workspace

PROJECT = "fraud"
REPO = Path(__file__).resolve().parents[2]
ROWS = 60_000
SHIFT = timedelta(days=-35)  # the serving versions were trained on older windows
TRAFFIC = (date(2025, 11, 1), date(2025, 12, 31))
MONITORING = {
    "window_hours": 168,
    "performance_window_days": 60,
    "probation_days": 30,
    "min_labels": 200,
    "min_positives": 10,
    "max_drop_in_probation": 0.15,  # ~70 frauds in the traffic: PR-AUC noise is large
    "max_decay": 0.2,
    "drift_windows": 2,
    "drift_sample_rows": 5_000,
    "reference_rows": 20_000,
    "cooldown_hours": 240,  # the runs below are a week apart in data time
    "label_maturity_days": 0,  # every label known is judged (test_label_maturity: inferred)
}
GATE = {  # a gate this small data can pass: a few dozen frauds per holdout
    "margin": 0.5,
    "max_drop": 0.5,
    "max_segment_drop": 0.5,
    "min_segment_positives": 3,
    "max_ece_increase": 0.5,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = copy_workspace(tmp_path_factory.mktemp("monitor") / "repo")
    (root / "modelops.yaml").write_text(
        "environments: [staging, production]\napproval_required: [production]\n"
    )
    spec_file = root / "projects" / PROJECT / "project.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["monitoring"] = MONITORING
    spec["promotion"].update(GATE)
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("MODELOPS_")]:
            env.delenv(name)
        settings = load_settings(root)
        data.generate(settings, [PROJECT], rows=ROWS, seed=5)
        features.apply(settings)
        project = load_project(settings.resolved_projects_dir, PROJECT)
        windows = {
            w: (
                getattr(project.spec.windows, w).start + SHIFT,
                getattr(project.spec.windows, w).end + SHIFT,
            )
            for w in ("train", "validation", "holdout")
        }
        result = train.train(settings, PROJECT, windows=windows)
        traffic_project = train.with_windows(
            project,
            {
                "train": (date(2025, 7, 8), date(2025, 8, 31)),
                "validation": (date(2025, 9, 1), date(2025, 9, 30)),
                "holdout": TRAFFIC,
            },
        )
        joined = datasets.build_training_set(
            settings, traffic_project, datetime(2026, 6, 1, tzinfo=UTC), windows=("holdout",)
        ).frames["holdout"]
        with mlflow_io.session(tracking(settings)) as client:
            names = (
                client.get_model_version(PROJECT, result.candidate.version)
                .tags["modelops.features"]
                .split(",")
            )
            scorers = {
                v: build_scorer(mlflow_io.load_model(f"models:/{PROJECT}/{v}"), names)
                for v in (result.baseline.version, result.candidate.version)
            }
    return {
        "root": root,
        "old": result.baseline.version,  # the version served before
        "new": result.candidate.version,  # the version serving now
        "features": names,
        "traffic": joined,
        "scorers": scorers,
    }


@pytest.fixture
def platform_(trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The trained workspace with an empty ledger and log and no aliases; the monitor's ledger
    actions allowed (``modelops.core.ledger.ACTIONS`` may not list them yet in this tree)."""
    for name in [n for n in os.environ if n.startswith("MODELOPS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MODELOPS_ROOT", str(trained["root"]))
    monkeypatch.setenv("MODELOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'platform.db'}")
    monkeypatch.setenv("MODELOPS_PREDICTION_LOG_URL", str(tmp_path / "predictions"))
    monkeypatch.setenv("MODELOPS_ACTOR", "tester")
    missing = [a for a in policy.LEDGER_ACTIONS if a not in chain.ACTIONS]
    monkeypatch.setattr(chain, "ACTIONS", (*chain.ACTIONS, *missing))
    settings = load_settings()
    with mlflow_io.session(tracking(settings)) as client:
        for alias in list(mlflow_io.aliases(client, PROJECT)):
            mlflow_io.delete_alias(client, PROJECT, alias)
    return settings


def _seed(settings: Settings, environment: str, *versions: str) -> None:
    """Given: ``versions`` were promoted to ``environment`` in that order (an operator's setup)."""
    ledger = Ledger(settings.platform_database_url)
    for version in versions:
        held = ledger.holder(PROJECT, environment)
        ledger.transition(
            LedgerEntry("promote", PROJECT, environment, "setup", "setup", held.version, version),
            expected=held,
        )
        with mlflow_io.session(tracking(settings)) as client:
            mlflow_io.set_alias(client, PROJECT, environment, version)


def _traffic(trained: dict[str, Any], *, drifted_from: date | None = None) -> pd.DataFrame:
    """The November/December payments; from ``drifted_from`` on with covariate drift: amounts
    up 40 %, busy hours two hours later, 30 % of payments moved to online retail."""
    frame = trained["traffic"].copy()
    if drifted_from is not None:
        rows = frame["event_timestamp"] >= pd.Timestamp(drifted_from, tz="UTC")
        rng = np.random.default_rng(1)
        for column in ("txn_amount", "amount_to_avg_24h", "amount_to_avg_7d"):
            scaled = rows & (frame[column] > 0)  # -1: no earlier payment to compare with
            frame.loc[scaled, column] = frame.loc[scaled, column] * 1.4
        frame.loc[rows, "txn_hour"] = (frame.loc[rows, "txn_hour"] + 2) % 24
        moved = rows & (rng.random(len(frame)) < 0.3)
        frame.loc[moved, "txn_merchant_category"] = "online_retail"
    return frame


def _log(
    settings: Settings,
    trained: dict[str, Any],
    frame: pd.DataFrame,
    version: str,
    *,
    until: date | None = None,
    broken: dict[str, Any] | None = None,
) -> None:
    """Write ``frame``'s rows to the prediction log as served by ``version`` (scored by it), with
    the service's writer; ``broken``: feature -> value replacing it on 40 % of the rows."""
    if until is not None:
        frame = frame[frame["event_timestamp"] < pd.Timestamp(until, tz="UTC")]
    names = trained["features"]
    values = frame[names].astype(object).where(frame[names].notna(), None)
    if broken:
        hit = np.random.default_rng(2).random(len(values)) < 0.4
        for column, value in broken.items():
            values.loc[hit, column] = value
    scores = trained["scorers"][version].score_columns({f: frame[f].to_numpy() for f in names})
    records = [
        PredictionRecord(
            request_id=f"r{i}",
            logged_at=stamp.to_pydatetime(),
            project=PROJECT,
            environment="production",
            model_version=version,
            entity={"account_id": int(account)},
            features=row,
            score=float(score),
            decision="block" if score >= 0.5 else "allow",
        ).row()
        for i, (stamp, account, row, score) in enumerate(
            zip(
                frame["event_timestamp"],
                frame["account_id"],
                values.to_dict("records"),
                scores,
                strict=True,
            )
        )
    ]
    ParquetSink(Path(settings.resolved_prediction_log)).write(records)


def _ledger(settings: Settings) -> list[Any]:
    return Ledger(settings.platform_database_url).entries(PROJECT)


def _aliases(settings: Settings) -> dict[str, str]:
    with mlflow_io.session(tracking(settings)) as client:
        return mlflow_io.aliases(client, PROJECT)


def _versions(settings: Settings) -> int:
    with mlflow_io.session(tracking(settings)) as client:
        return len(mlflow_io.list_versions(client, PROJECT))


def _at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def _known_labels(trained: dict[str, Any]) -> pd.DataFrame:
    """The payments' own labels, every one known at once."""
    frame = trained["traffic"][["account_id", "event_timestamp", "is_fraud"]].copy()
    frame["label_available_at"] = frame["event_timestamp"]
    return frame


def _shuffled_labels(settings: Settings, trained: dict[str, Any]) -> pd.DataFrame:
    """Concept drift: the payments look the same, but which of them are fraud no longer follows
    from them (labels permuted), and every label is known at once."""
    frame = trained["traffic"][["account_id", "event_timestamp", "is_fraud"]].copy()
    frame["is_fraud"] = np.random.default_rng(7).permutation(frame["is_fraud"].to_numpy())
    frame["label_available_at"] = frame["event_timestamp"]
    return frame


# --- healthy -----------------------------------------------------------------------------------


def test_healthy_traffic_leads_to_no_action(platform_: Settings, trained: dict[str, Any]) -> None:
    _seed(platform_, "production", trained["old"], trained["new"])
    _log(platform_, trained, _traffic(trained), trained["new"])
    before = _ledger(platform_)

    run = monitor.run(platform_, PROJECT, as_of=_at(date(2025, 12, 29)))

    assert run.decision.actions == (), run.decision.to_dict()
    assert run.outcomes == [] and _ledger(platform_) == before
    assert run.findings.quality.rows > 1000
    drift = run.findings.drift
    assert drift is not None and drift.share < 0.3
    assert drift.rows_used == min(5_000, drift.rows_total) == min(5_000, run.findings.quality.rows)
    assert drift.prediction_score is not None
    perf = run.findings.performance
    assert perf is not None and perf.rows >= 200 and perf.positives >= 10
    assert perf.gate_source == "registered holdout metrics"
    assert "cost_per_1000" in perf.metrics
    summary = json.loads(run.summary_json.read_text())
    assert summary["action"] == "none" and summary["run_id"] == run.run_id
    assert {"project", "environment", "started_at", "findings"} <= set(summary)
    assert (run.run_dir / "report.html").stat().st_size > 100_000
    assert (run.run_dir / "evidently.json").is_file()
    assert run.performance_html is not None and run.performance_html.is_file()
    assert run.mlflow_run_id is not None
    with mlflow_io.session(tracking(platform_)) as client:
        logged = client.get_run(run.mlflow_run_id)
        artifacts = {a.path for a in client.list_artifacts(run.mlflow_run_id)}
    assert logged.data.tags["modelops.monitor.version"] == trained["new"]
    assert math.isclose(logged.data.metrics["drift_share"], drift.share)
    assert {"report.html", "summary.json", "evidently.json"} <= artifacts
    out = Path(platform_.root) / "monitor.json"
    assert (
        _cli(
            "monitor",
            PROJECT,
            "--once",
            "--dry-run",
            "--as-of",
            "2025-12-29T00:00:00",
            "--json-out",
            str(out),
        )
        == 0
    )
    assert json.loads(out.read_text())["dry_run"] is True and _ledger(platform_) == before
    text = run.prometheus.read_text() if run.prometheus else ""
    # prometheus_client writes labels in name order: the series are read back, not matched as text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert any(
        sample.labels["project"] == PROJECT and sample.labels["environment"] == "production"
        for sample in families["modelops_monitor_drift_share"].samples
    )
    assert families["modelops_monitor_live_metric"].type == "gauge"


def test_a_run_pushes_its_gauges_to_the_configured_pushgateway(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    """``pushgateway_url`` set: the run's gauges reach a real HTTP endpoint as one PUT of the
    project's and environment's group, the same series as the textfile."""
    from test_monitor_pushgateway import serving_gateway

    _seed(platform_, "production", trained["old"], trained["new"])
    _log(platform_, trained, _traffic(trained), trained["new"])
    with serving_gateway() as gateway:
        settings = platform_.model_copy(update={"pushgateway_url": gateway.url})
        run = monitor.run(settings, PROJECT, as_of=_at(date(2025, 12, 29)))
    (request,) = gateway.requests
    assert request["method"] == "PUT"
    assert request["path"].endswith("/environment/production/project/fraud")
    assert f"metrics pushed to {gateway.url}" in run.notes
    pushed = {f.name: f for f in text_string_to_metric_families(request["body"])}
    assert run.prometheus is not None  # the textfile is still written
    written = {f.name: f for f in text_string_to_metric_families(run.prometheus.read_text())}
    assert set(pushed) == set(written) and "modelops_monitor_action" in pushed
    (rows,) = pushed["modelops_monitor_rows"].samples
    assert rows.value == run.findings.quality.rows and rows.labels["version"] == trained["new"]


def test_label_maturity_leaves_out_predictions_whose_labels_are_still_arriving(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    """Frauds are confirmed after 2-30 days, genuine payments at 30: judged on the labels known
    so far, the last 30 days would count nearly every fraud and few genuine payments."""
    _seed(platform_, "production", trained["old"], trained["new"])
    _log(platform_, trained, _traffic(trained), trained["new"])
    as_of = _at(date(2025, 12, 29))
    everything = monitor.run(platform_, PROJECT, as_of=as_of, dry_run=True)

    spec_file = Path(trained["root"]) / "projects" / PROJECT / "project.yaml"
    original = spec_file.read_text()
    spec = yaml.safe_load(original)
    spec["monitoring"]["label_maturity_days"] = None  # inferred from the label table
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        mature = monitor.run(platform_, PROJECT, as_of=as_of, dry_run=True)
    finally:
        spec_file.write_text(original)

    young, old = everything.findings.performance, mature.findings.performance
    assert young is not None and old is not None
    assert old.rows < young.rows
    assert old.positives / old.rows < young.positives / young.rows  # the early frauds left out
    note = next(n for n in mature.notes if "labels mature after" in n)
    assert "30 days (the longest label delay known)" in note and "2025-11-29 00:00:00" in note
    assert not any("labels mature after" in n for n in everything.notes)


# --- covariate drift ---------------------------------------------------------------------------


@pytest.fixture
def without_estimation(trained: dict[str, Any]) -> Any:
    """project.yaml with ``monitoring.estimation.enabled: false`` for one test. The drifted
    traffic below moves the payments' features but keeps their labels: P(y|x) changes with
    it, and the realised-against-estimated check rightly reports concept drift in the first
    window (realised cost about twice the estimate). A test of the drift-window rule alone
    switches the estimate off; the estimate's own rules are tested further down."""
    spec_file = Path(trained["root"]) / "projects" / PROJECT / "project.yaml"
    original = spec_file.read_text()
    spec = yaml.safe_load(original)
    spec["monitoring"]["estimation"] = {"enabled": False}
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        yield
    finally:
        spec_file.write_text(original)


@pytest.mark.usefixtures("without_estimation")
def test_sustained_covariate_drift_retrains_gates_and_respects_the_cooldown(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    _seed(platform_, "staging", trained["new"])
    _seed(platform_, "production", trained["new"])
    _log(platform_, trained, _traffic(trained, drifted_from=date(2025, 12, 8)), trained["new"])
    versions = _versions(platform_)

    first = monitor.run(platform_, PROJECT, as_of=_at(date(2025, 12, 22)))
    assert first.findings.drift is not None and first.findings.drift.share >= 0.3
    assert first.decision.actions == () and first.decision.drift_streak == 1
    assert {"txn_amount", "txn_hour"} <= set(first.findings.drift.drifted)

    second = monitor.run(platform_, PROJECT, as_of=_at(date(2025, 12, 29)))
    assert second.decision.kinds == [policy.RETRAIN], second.decision.to_dict()
    assert second.decision.drift_streak == 2
    (outcome,) = second.outcomes
    assert _versions(platform_) == versions + 2  # a candidate and its baseline
    entries = _ledger(platform_)
    retrain = next(e for e in entries if e.action == "retrain")
    assert retrain.details["run_id"] == second.run_id
    assert retrain.details["evidence"]["drift"]["streak"] == 2
    assert Path(retrain.details["report_html"]).is_file()
    gated = [e for e in entries if e.action == "validate" and e.to_version == retrain.to_version]
    assert gated, "the retrained version was gated"
    start, end = retrain.details["windows"]["holdout"]  # judged on its own latest holdout
    assert all(start <= e.details["verdict"]["holdout"]["start"][:10] for e in gated)
    assert all(e.details["verdict"]["holdout"]["end"][:10] <= end for e in gated)
    assert {v["environment"] for v in retrain.details["verdicts"]} >= {"staging"}
    holders = promote.holders(platform_, PROJECT)
    assert holders["production"] == trained["new"]  # production needs an approval
    if outcome.done:  # passed its gates: staging serves it, production waits for approval
        assert holders["staging"] == retrain.to_version
        pending = second.pending_promotion
        assert pending is not None and pending["environment"] == "production"
        proposal = next(e for e in entries if e.action == "propose")
        assert proposal.to_version == retrain.to_version and proposal.verdict_id
    else:
        assert holders["staging"] == trained["new"]
        assert retrain.details["stopped"]

    third = monitor.run(platform_, PROJECT, as_of=_at(date(2026, 1, 5)))
    assert third.decision.actions == ()
    assert [h.action.kind for h in third.decision.held] == [policy.RETRAIN]
    # The cooldown runs on the data clock: the retrain's run time, not the ledger's wall clock.
    assert retrain.details["as_of"] == second.as_of.isoformat()
    assert "cooldown: a retrain at 2025-12-29 00:00 UTC" in third.decision.held[0].why
    assert _versions(platform_) == versions + 2


# --- concept drift after a promotion -----------------------------------------------------------


def test_a_promotion_worse_than_its_predecessor_rolls_back_with_evidence_and_dry_run_does_nothing(
    platform_: Settings, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = trained["old"], trained["new"]
    _seed(platform_, "production", old, new)
    _log(
        platform_,
        trained,
        _traffic(trained)[lambda f: f["event_timestamp"] >= pd.Timestamp("2025-12-01", tz="UTC")],
        new,
    )
    """v-new (the gradient-boosted candidate, gate-time PR-AUC 0.46 on its holdout) scores 0.23
    on December's payments, where v-old (the logistic baseline) scores 0.44 on the same rows."""
    labels = _known_labels(trained)
    monkeypatch.setattr(monitor.labels, "read_known_labels", lambda s, p, as_of: labels)
    as_of = _at(date(2025, 12, 29))
    before, aliases = _ledger(platform_), _aliases(platform_)

    dry = monitor.run(platform_, PROJECT, as_of=as_of, dry_run=True)
    assert dry.decision.kinds == [policy.ROLLBACK] and dry.decision.in_probation
    assert dry.outcomes == [] and dry.mlflow_run_id is None and dry.prometheus is None
    assert _ledger(platform_) == before and _aliases(platform_) == aliases
    assert promote.holders(platform_, PROJECT)["production"] == new
    assert json.loads(dry.summary_json.read_text())["dry_run"] is True

    run = monitor.run(platform_, PROJECT, as_of=as_of)
    assert run.decision.kinds == [policy.ROLLBACK]
    assert run.outcomes[0].done and run.exit_code == 0
    assert promote.holders(platform_, PROJECT)["production"] == old
    assert _aliases(platform_)["production"] == old
    assert promote.alias_drift(platform_, PROJECT) == []
    entry = _ledger(platform_)[-1]
    assert entry.action == "rollback" and entry.to_version == old and entry.from_version == new
    assert entry.actor == monitor.MONITOR_ACTOR
    assert f"monitor run {run.run_id}" in entry.reason and "pr_auc" in entry.reason
    assert str(run.report_html) in entry.reason
    evidence = run.decision.actions[0].evidence
    drop = evidence["drop_vs_gate"]
    assert drop["worse"] and drop["drop"] > 0.15 and drop["interval"]["high"] < 0
    assert evidence["labelled_predictions"] >= 200
    same = evidence["previous_on_same_rows"]
    assert same["better"] and same["previous_version"] == old and same["interval"]["low"] > 0
    assert same["rows"] == evidence["labelled_predictions"]
    summary = json.loads(run.summary_json.read_text())
    assert summary["action"] == "rollback" and summary["outcomes"][0]["done"]
    if "details" in entry.details or entry.details:
        assert entry.details["evidence"]["metric"] == "pr_auc"

    after = monitor.run(platform_, PROJECT, as_of=as_of)  # v-old serves again: not on probation
    assert policy.ROLLBACK not in after.decision.kinds


def test_concept_drift_that_hurts_both_versions_retrains_instead_of_rolling_back(
    platform_: Settings, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which payments are fraud no longer follows from them (labels permuted): v-new falls far
    below its gate-time value, but v-old, scored on the same rows, is no better. Rolling back
    would not help; the decision is a retraining (shown in a dry run)."""
    old, new = trained["old"], trained["new"]
    _seed(platform_, "production", old, new)
    december = _traffic(trained)[
        lambda f: f["event_timestamp"] >= pd.Timestamp("2025-12-01", tz="UTC")
    ]
    _log(platform_, trained, december, new)
    labels = _shuffled_labels(platform_, trained)
    monkeypatch.setattr(monitor.labels, "read_known_labels", lambda s, p, as_of: labels)

    dry = monitor.run(platform_, PROJECT, as_of=_at(date(2025, 12, 29)), dry_run=True)

    assert dry.decision.kinds == [policy.RETRAIN], dry.decision.to_dict()
    reason = dry.decision.actions[0].reason
    assert "rolling back would not help" in reason and f"v{old}" in reason
    perf = dry.findings.performance
    assert perf is not None and perf.drop is not None and perf.drop.worse
    assert perf.previous is not None and perf.previous.evaluated and not perf.previous.better


@pytest.fixture
def gate_cost(trained: dict[str, Any]) -> Any:
    """Sets a version's registered holdout cost per 1,000 (the gate-time cost the monitor reads
    without a promoting verdict) for one test, and puts the recorded one back."""
    key = tags.holdout_metric("cost_per_1000")
    saved: dict[str, str] = {}

    def set_cost(settings: Settings, version: str, factor: float) -> float:
        with mlflow_io.session(tracking(settings)) as client:
            recorded = client.get_model_version(PROJECT, version).tags[key]
            saved.setdefault(version, recorded)
            value = float(saved[version]) * factor
            client.set_model_version_tag(PROJECT, version, key, str(value))
        return value

    yield set_cost
    settings = load_settings(trained["root"])
    with mlflow_io.session(tracking(settings)) as client:
        for version, value in saved.items():
            client.set_model_version_tag(PROJECT, version, key, value)


@pytest.fixture
def threshold_tag(trained: dict[str, Any]) -> Any:
    """Sets a version's registered threshold for one test, and puts the recorded one back."""
    saved: dict[str, str] = {}

    def set_threshold(settings: Settings, version: str, value: float) -> None:
        with mlflow_io.session(tracking(settings)) as client:
            recorded = client.get_model_version(PROJECT, version).tags[tags.THRESHOLD]
            saved.setdefault(version, recorded)
            client.set_model_version_tag(PROJECT, version, tags.THRESHOLD, str(value))

    yield set_threshold
    settings = load_settings(trained["root"])
    with mlflow_io.session(tracking(settings)) as client:
        for version, value in saved.items():
            client.set_model_version_tag(PROJECT, version, tags.THRESHOLD, value)


def _december_without_labels(
    settings: Settings, trained: dict[str, Any], version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """December's payments logged as served by ``version``; no label known yet."""
    december = _traffic(trained)[
        lambda f: f["event_timestamp"] >= pd.Timestamp("2025-12-01", tz="UTC")
    ]
    _log(settings, trained, december, version)
    none = _known_labels(trained).iloc[0:0]
    monkeypatch.setattr(monitor.labels, "read_known_labels", lambda s, p, as_of: none)


def test_a_promotion_estimated_worse_rolls_back_before_any_label(
    platform_: Settings,
    trained: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    threshold_tag: Any,
) -> None:
    """v-new goes to production with its threshold edited after its gate (0: every payment
    blocked). No label is known, so the realised rule cannot judge; the estimate can: v-new's
    expected cost is far above its gate-time cost, v-old estimated on the same logged
    payments (its own model on the logged features, its own holdout calibration and
    threshold) is shown better, and the monitor rolls back through the usual move."""
    old, new = trained["old"], trained["new"]
    _seed(platform_, "production", old, new)
    _december_without_labels(platform_, trained, new, monkeypatch)
    threshold_tag(platform_, new, 0.0)
    as_of = _at(date(2025, 12, 29))
    before = _ledger(platform_)

    dry = monitor.run(platform_, PROJECT, as_of=as_of, dry_run=True)
    assert dry.decision.kinds == [policy.ROLLBACK], dry.decision.to_dict()
    assert dry.findings.performance is None and _ledger(platform_) == before
    est = dry.findings.estimated
    assert est is not None and est.judged and est.worse and est.threshold == 0.0
    assert est.gate_cost_per_1000 is not None
    assert est.window.cost_per_1000_low > est.gate_cost_per_1000
    assert est.window.rows == sum(c.rows for c in est.chunks) and len(est.chunks) >= 20
    assert est.calibration["rows"] > 0  # the holdout rows of the reference, only those
    previous = est.previous
    assert previous is not None and previous.evaluated and previous.better
    assert previous.previous_version == old and previous.interval is not None
    assert previous.interval["low"] > 0 and previous.rows == est.window.rows

    run = monitor.run(platform_, PROJECT, as_of=as_of)
    assert run.decision.kinds == [policy.ROLLBACK] and run.outcomes[0].done
    assert promote.holders(platform_, PROJECT)["production"] == old
    assert _aliases(platform_)["production"] == old
    entry = _ledger(platform_)[-1]
    assert entry.action == "rollback" and (entry.from_version, entry.to_version) == (new, old)
    assert "before labels" in entry.reason
    assert entry.details["evidence"]["estimated"]["previous_on_same_rows"]["better"] is True
    summary = monitor_record.MonitorSummary.model_validate_json(run.summary_json.read_text())
    assert summary.findings.estimated is not None and summary.findings.estimated.worse
    assert summary.findings.estimated.previous is not None
    assert summary.findings.estimate_check is None  # no label matured


def test_an_estimated_drop_both_versions_share_retrains_before_any_label(
    platform_: Settings, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch, gate_cost: Any
) -> None:
    """v-new's gate-time cost recorded at 40 % of what it was: December's estimate is worse
    than that, but v-old, estimated on the same payments, is not shown better (the interval
    of the gain holds 0): rolling back would not help; a retraining."""
    old, new = trained["old"], trained["new"]
    _seed(platform_, "production", old, new)
    _december_without_labels(platform_, trained, new, monkeypatch)
    gate_cost(platform_, new, 0.4)

    dry = monitor.run(platform_, PROJECT, as_of=_at(date(2025, 12, 29)), dry_run=True)

    assert dry.decision.kinds == [policy.RETRAIN], dry.decision.to_dict()
    assert "rolling back would not help" in dry.decision.actions[0].reason
    est = dry.findings.estimated
    assert est is not None and est.worse and est.previous is not None
    assert est.previous.evaluated and not est.previous.better
    assert est.previous.interval is not None and est.previous.interval["low"] < 0


def test_a_real_runs_summary_and_ledger_details_follow_their_models(
    platform_: Settings, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """summary.json of a run that rolled back validates against the committed JSON Schema and
    its typed model; the rollback's ledger details against theirs."""
    old, new = trained["old"], trained["new"]
    _seed(platform_, "production", old, new)
    _log(
        platform_,
        trained,
        _traffic(trained)[lambda f: f["event_timestamp"] >= pd.Timestamp("2025-12-01", tz="UTC")],
        new,
    )
    labels = _known_labels(trained)
    monkeypatch.setattr(monitor.labels, "read_known_labels", lambda s, p, as_of: labels)

    run = monitor.run(platform_, PROJECT, as_of=_at(date(2025, 12, 29)))

    summary = json.loads(run.summary_json.read_text())
    schema = json.loads((REPO / "docs/schemas/monitor-summary.schema.json").read_text())
    jsonschema.validate(summary, schema)
    assert monitor_record.MonitorSummary.model_validate(summary).dump() == summary
    assert [o["kind"] for o in summary["outcomes"]] == [policy.ROLLBACK]
    entry = _ledger(platform_)[-1]
    assert entry.action == "rollback"
    assert monitor_record.RollbackDetails.model_validate(entry.details).run_id == run.run_id


# --- bad data ----------------------------------------------------------------------------------


def test_bad_data_alerts_and_blocks_retraining(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    _seed(platform_, "staging", trained["new"])
    _seed(platform_, "production", trained["new"])
    frame = _traffic(trained, drifted_from=date(2025, 12, 8))
    _log(
        platform_,
        trained,
        frame,
        trained["new"],
        broken={"txn_amount_7d": None, "txn_merchant_category": "??"},
    )
    versions = _versions(platform_)

    first = monitor.run(platform_, PROJECT, as_of=_at(date(2025, 12, 22)))
    second = monitor.run(platform_, PROJECT, as_of=_at(date(2025, 12, 29)))

    assert first.decision.kinds == [policy.ALERT] and first.decision.retraining_blocked
    reason = first.decision.actions[0].reason
    assert "txn_amount_7d missing" in reason and "txn_merchant_category" in reason
    assert second.decision.drift_streak == 2 and second.decision.actions == ()
    held = {h.action.kind: h.why for h in second.decision.held}
    assert "bad data" in held[policy.RETRAIN] and "cooldown" in held[policy.ALERT]
    entries = _ledger(platform_)
    assert [e.action for e in entries if e.action in policy.LEDGER_ACTIONS] == ["alert"]
    alert = next(e for e in entries if e.action == "alert")
    assert alert.details["run_id"] == first.run_id and alert.details["evidence"]["problems"]
    assert _versions(platform_) == versions
    assert promote.holders(platform_, PROJECT) == {
        "staging": trained["new"],
        "production": trained["new"],
    }


# --- crashes -----------------------------------------------------------------------------------


def test_a_crash_in_the_middle_of_a_rollback_leaves_a_repairable_state(
    platform_: Settings, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = trained["old"], trained["new"]
    _seed(platform_, "production", old, new)
    _log(
        platform_,
        trained,
        _traffic(trained)[lambda f: f["event_timestamp"] >= pd.Timestamp("2025-12-01", tz="UTC")],
        new,
    )
    labels = _known_labels(trained)
    monkeypatch.setattr(monitor.labels, "read_known_labels", lambda s, p, as_of: labels)
    as_of = _at(date(2025, 12, 29))

    # 1. the process dies inside the ledger's move: nothing moved, nothing recorded
    def die(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("killed")

    with monkeypatch.context() as crash:
        crash.setattr(Ledger, "transition", die)
        before = _ledger(platform_)
        with pytest.raises(RuntimeError, match="killed"):
            monitor.run(platform_, PROJECT, as_of=as_of)
    assert _ledger(platform_) == before
    assert promote.holders(platform_, PROJECT)["production"] == new
    assert promote.alias_drift(platform_, PROJECT) == []

    # 2. MLflow is down after the ledger moved: the move stands, the alias lags, exit 3;
    #    models sync repairs it
    real_set_alias = mlflow_io.set_alias

    def mlflow_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("mlflow down")

    with monkeypatch.context() as outage:
        outage.setattr(mlflow_io, "set_alias", mlflow_down)
        run = monitor.run(platform_, PROJECT, as_of=as_of)  # the crash above held nothing back
    assert run.decision.kinds == [policy.ROLLBACK]
    assert run.exit_code == 3 and "models sync" in run.outcomes[0].detail
    assert promote.holders(platform_, PROJECT)["production"] == old
    assert promote.alias_drift(platform_, PROJECT)  # the alias lags behind the ledger
    assert mlflow_io.set_alias is real_set_alias
    assert promote.sync_aliases(platform_, PROJECT) == {"production": (new, old)}
    assert promote.alias_drift(platform_, PROJECT) == []
    assert Ledger(platform_.platform_database_url).verify().ok


# --- pieces ------------------------------------------------------------------------------------


def test_a_retraining_whose_alias_lags_ends_the_run_with_exit_code_3(
    platform_: Settings, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger moved staging but MLflow did not follow: the move stands, is recorded as
    lagging, and the run ends with 3 (``modelops models sync``), as a rollback's would."""
    from modelops.services import gate

    _seed(platform_, "staging", trained["new"])
    _seed(platform_, "production", trained["new"])
    project = load_project(platform_.resolved_projects_dir, PROJECT)
    retrained = SimpleNamespace(
        candidate=SimpleNamespace(version=trained["old"]),
        baseline=SimpleNamespace(version=trained["new"]),
    )
    monkeypatch.setattr(train, "train", lambda *args, **kwargs: retrained)
    passing = SimpleNamespace(id="verdict-1", passed=True, failed_rules=[])
    monkeypatch.setattr(gate, "validate", lambda *args, **kwargs: passing)

    def lagging(*args: Any, **kwargs: Any) -> None:
        raise promote.AliasLagError("staging moved in the ledger; the MLflow alias lags")

    monkeypatch.setattr(promote, "promote", lagging)
    as_of = _at(date(2026, 1, 5))
    action = policy.Action(policy.RETRAIN, "drift", None, {"drift": {"streak": 2}})
    outcome = monitor.runner._execute(
        platform_,
        project,
        "production",
        action,
        monitor.read_lineage(platform_, project, trained["new"]),
        as_of,
        "tester",
        False,
        {"run_id": "run-1", "as_of": as_of.isoformat(), "summary_json": "summary.json"},
        expect=judged.snapshot(
            Ledger(platform_.platform_database_url), PROJECT, "production"
        ).expectation,
    )
    assert outcome.done and outcome.exit_code == 3
    assert "the MLflow alias lags" in outcome.detail
    (staging,) = outcome.details["promotions"]
    assert staging["environment"] == "staging" and "alias_lags" in staging
    assert outcome.details["pending_promotion"]["environment"] == "production"


# --- races: every move is a compare-and-swap on what the run judged ---------------------------


@pytest.fixture(scope="module")
def persons_version(trained: dict[str, Any]) -> str:
    """A third registered version (a copy of the serving one) that a person promotes."""
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("MODELOPS_")]:
            env.delenv(name)
        settings = load_settings(trained["root"])
        with mlflow_io.session(tracking(settings)) as client:
            serving = client.get_model_version(PROJECT, trained["new"])
            copy = client.create_model_version(PROJECT, serving.source, run_id=serving.run_id)
    return str(copy.version)


def _by_person(settings: Settings, environment: str, version: str, action: str = "promote") -> None:
    """A person's move, as ``modelops promote``/``rollback`` records it (ledger, then alias)."""
    ledger = Ledger(settings.platform_database_url)
    held = ledger.holder(PROJECT, environment)
    ledger.transition(
        LedgerEntry(action, PROJECT, environment, "alice", "by hand", held.version, version),
        expected=held,
    )
    with mlflow_io.session(tracking(settings)) as client:
        mlflow_io.set_alias(client, PROJECT, environment, version)


def _fresh_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trial: int) -> Settings:
    monkeypatch.setenv("MODELOPS_DATABASE_URL", f"sqlite:///{tmp_path / f'trial-{trial}.db'}")
    return load_settings()


def _unjudged_moves(entries: list[Any], judged_version: str) -> list[Any]:
    """The monitor's moves out of a version it did not judge."""
    return [
        e
        for e in entries
        if e.action in ("promote", "rollback")
        and e.actor == monitor.MONITOR_ACTOR
        and e.from_version != judged_version
    ]


def test_a_person_moving_production_after_judgement_refuses_the_monitors_rollback_20_times(
    platform_: Settings,
    trained: dict[str, Any],
    persons_version: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The monitor judges v-new on probation and decides to roll back to v-old; a person moves
    production in between, at four points of the interleaving (after judgement; inside the
    rollback's write; away and back; to the rollback's own target). Every time the rollback is
    refused and recorded with the judged and the current state, the person's holder stays, and
    no monitor move starts from a version the monitor did not judge."""
    from modelops.services.monitor import act

    old, new, third = trained["old"], trained["new"], persons_version
    _log(
        platform_,
        trained,
        _traffic(trained)[lambda f: f["event_timestamp"] >= pd.Timestamp("2025-12-01", tz="UTC")],
        new,
    )
    labels = _known_labels(trained)
    monkeypatch.setattr(monitor.labels, "read_known_labels", lambda s, p, as_of: labels)
    real_rollback, real_transition = act.rollback, Ledger.transition
    interleavings: dict[str, tuple[str, str]] = {  # where: (holder after, wording)
        "after judgement": (third, f"production is now held by v{third}"),
        "inside the write": (third, f"production is now held by v{third}"),
        "away and back": (new, f"held by v{new} again"),
        "to the target": (old, f"production is now held by v{old}"),
    }
    kinds = list(interleavings)
    unjudged: list[Any] = []
    for trial in range(20):
        kind = kinds[trial % len(kinds)]
        settings = _fresh_ledger(tmp_path, monkeypatch, trial)
        _seed(settings, "production", old, new)

        def person_then_rollback(
            *args: Any, kind: str = kind, settings: Settings = settings, **kwargs: Any
        ) -> Any:
            if kind == "after judgement":
                _by_person(settings, "production", third)
            elif kind == "away and back":
                _by_person(settings, "production", third)
                _by_person(settings, "production", new, action="rollback")
            elif kind == "to the target":
                _by_person(settings, "production", old)
            return real_rollback(*args, **kwargs)

        def person_inside(
            self: Ledger, entry: LedgerEntry, settings: Settings = settings, **kwargs: Any
        ) -> Any:
            if entry.actor == monitor.MONITOR_ACTOR:
                _by_person(settings, "production", third)
            return real_transition(self, entry, **kwargs)

        with monkeypatch.context() as race:
            race.setattr(act, "rollback", person_then_rollback)
            if kind == "inside the write":
                race.setattr(Ledger, "transition", person_inside)
            run = monitor.run(settings, PROJECT, as_of=_at(date(2025, 12, 29)))

        holder, wording = interleavings[kind]
        assert run.version == new and run.decision.kinds == [policy.ROLLBACK], kind
        (outcome,) = run.outcomes
        assert not outcome.done and "rollback of production to v" in outcome.detail, kind
        assert promote.holders(settings, PROJECT)["production"] == holder, kind
        entries = _ledger(settings)
        refusal = entries[-1]
        assert refusal.action == "refuse" and refusal.actor == monitor.MONITOR_ACTOR, kind
        assert refusal.reason.startswith(f"decided on v{new} at head "), refusal.reason
        assert wording in refusal.reason, (kind, refusal.reason)
        assert refusal.details["attempted"] == "rollback"
        assert refusal.details["judged"]["holder"] == new
        assert refusal.details["current"]["holder"] == holder
        assert not [e for e in entries if e.action == "rollback" and e.actor != "alice"], kind
        unjudged += _unjudged_moves(entries, new)
        assert Ledger(settings.platform_database_url).verify().ok
    print(
        f"rollback races: 20 trials, {len(unjudged)} moves of a version the monitor did not judge"
    )
    assert unjudged == []


def test_a_person_moving_the_environment_around_the_retrainings_gate_refuses_its_promotion(
    platform_: Settings,
    trained: dict[str, Any],
    persons_version: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The monitor judges v-new in staging and retrains; a person moves staging before the
    retraining's gate, between the gate and the move, or away and back. The retrained version's
    promotion is refused and recorded every time (20 trials), and the retraining's own entry
    says where the walk stopped."""
    from modelops.services import gate

    old, new, third = trained["old"], trained["new"], persons_version
    loaded = load_project(platform_.resolved_projects_dir, PROJECT)
    automatic = loaded.spec.monitoring.model_copy(update={"auto_promote_production": True})
    project = loaded.model_copy(
        update={"spec": loaded.spec.model_copy(update={"monitoring": automatic})}
    )
    retrained = SimpleNamespace(
        candidate=SimpleNamespace(version=old), baseline=SimpleNamespace(version=new)
    )
    passing = SimpleNamespace(id="verdict-1", passed=True, failed_rules=[])
    as_of = _at(date(2026, 1, 5))
    action = policy.Action(policy.RETRAIN, "drift", None, {"drift": {"streak": 2}})
    lineage = monitor.read_lineage(platform_, project, new)
    kinds = ["before the gate", "between the gate and the move", "away and back"]
    unjudged: list[Any] = []
    for trial in range(20):
        kind = kinds[trial % len(kinds)]
        settings = _fresh_ledger(tmp_path, monkeypatch, 100 + trial)
        _seed(settings, "staging", new)
        judged_state = judged.snapshot(
            Ledger(settings.platform_database_url), PROJECT, "staging"
        ).expectation

        def person_then_train(
            *args: Any, kind: str = kind, settings: Settings = settings, **kwargs: Any
        ) -> Any:
            if kind == "before the gate":
                _by_person(settings, "staging", third)
            return retrained

        def gate_then_person(
            *args: Any, kind: str = kind, settings: Settings = settings, **kwargs: Any
        ) -> Any:
            if kind == "between the gate and the move":
                _by_person(settings, "staging", third)
            elif kind == "away and back":
                _by_person(settings, "staging", third)
                _by_person(settings, "staging", new, action="rollback")
            return passing

        with monkeypatch.context() as race:
            race.setattr(train, "train", person_then_train)
            race.setattr(gate, "validate", gate_then_person)
            outcome = monitor.runner._execute(
                settings,
                project,
                "staging",
                action,
                lineage,
                as_of,
                monitor.MONITOR_ACTOR,
                False,
                {"run_id": f"run-{trial}", "as_of": as_of.isoformat(), "summary_json": "s.json"},
                expect=judged_state,
            )

        holder = new if kind == "away and back" else third
        assert promote.holders(settings, PROJECT)["staging"] == holder, kind
        assert (
            f"v{old} passed the gate against staging but was not moved"
            in outcome.details["stopped"]
        ), (kind, outcome.details)
        entries = _ledger(settings)
        refusal = next(e for e in entries if e.action == "refuse")
        assert refusal.actor == monitor.MONITOR_ACTOR and refusal.to_version == old
        assert refusal.reason.startswith(f"decided on v{new} at head "), refusal.reason
        assert refusal.details["attempted"] == "promote"
        record = entries[-1]
        assert record.action == "retrain" and "was not moved" in record.details["stopped"]
        unjudged += _unjudged_moves(entries, new)
    print(f"retraining races: 20 trials, {len(unjudged)} moves of a version not judged")
    assert unjudged == []


def _cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return int(exit_info.value.code or 0)


def test_watch_runs_on_schedule_and_survives_a_failed_run(monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes: list[Any] = ["first", monitor.MonitorError("log unreadable"), "third"]

    def fake_run(*args: Any, **kwargs: Any) -> Any:
        result = outcomes.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    slept: list[float] = []
    monkeypatch.setattr(monitor.runner, "run", fake_run)
    results = list(
        monitor.watch(
            Settings(),
            PROJECT,
            interval=60,
            runs=3,
            sleep=slept.append,  # type: ignore[arg-type]
        )
    )
    assert results[0] == "first" and isinstance(results[1], monitor.MonitorError)
    assert results[2] == "third"
    assert len(slept) == 2 and all(55 < s <= 60 for s in slept)


def test_the_latest_windows_end_on_the_last_completely_labelled_day(
    platform_: Settings,
) -> None:
    project = load_project(platform_.resolved_projects_dir, PROJECT)
    labels = datasets.read_labels(platform_, project)
    windows = monitor.latest_windows(project, labels, _at(date(2025, 12, 29)))
    waiting = labels[
        (labels["label_available_at"] > pd.Timestamp("2025-12-29", tz="UTC"))
        & (labels["event_timestamp"] <= pd.Timestamp("2025-12-29", tz="UTC"))
    ]
    first_waiting = waiting["event_timestamp"].min().date()
    assert windows["holdout"][1] == first_waiting - timedelta(days=1)
    spec = project.spec.windows
    assert windows["train"][1] - windows["train"][0] == spec.train.end - spec.train.start
    assert (
        windows["holdout"][0] - windows["validation"][1] == spec.holdout.start - spec.validation.end
    )
