"""``modelops simulate``: traffic and delayed labels from the generators, in process, through a
service, and the bad-model drill through the gate and the ledger."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pandas as pd
import pytest
from scipy import stats

from modelops.config.project import load_project
from modelops.config.settings import Settings, load_settings
from modelops.core.errors import ConfigError
from modelops.core.sabotage import BrokenFeatures
from modelops.integrations import mlflow as mlflow_io
from modelops.integrations.database import LedgerEntry
from modelops.services import data, features, monitor, prediction_log, promote, simulate, train
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for
from modelops.services.context import tracking
from modelops.services.data import load_data_module
from modelops.services.simulate import through_service
from support import REPO, copy_workspace

PROJECT = "credit_risk"  # the gate decides fastest on it
ROWS = 20_000  # enough holdout defaults per sector for the gate's segment rule


# ----------------------------------------------------------------------------- generation


def _fraud_period(scenario: str, start: date = date(2026, 1, 1)) -> simulate.GeneratedPeriod:
    project = load_project(REPO / "projects", "fraud")
    module = load_data_module(project)
    assert module is not None
    return simulate.generate_period(module, project, scenario, start, 7, rate=1500.0, seed=11)


def test_a_period_holds_its_days_with_labels_known_later() -> None:
    period = _fraud_period("healthy")
    events = period.events.to_pandas()
    assert period.drift_start is None
    assert len(events) == pytest.approx(7 * 1500, rel=0.2)
    assert events["event_timestamp"].min() >= pd.Timestamp("2026-01-01", tz="UTC")
    assert events["event_timestamp"].max() < pd.Timestamp("2026-01-08", tz="UTC")
    assert (events["label_available_at"] > events["event_timestamp"]).all()
    activity = period.features["fraud_account_activity"].to_pandas()
    assert set(activity["account_id"]) >= set(events["account_id"])
    assert activity["event_timestamp"].max() < pd.Timestamp("2026-01-08", tz="UTC")


def test_covariate_drift_shifts_the_inputs_of_the_same_seed() -> None:
    healthy = _fraud_period("healthy").events.to_pandas()
    drifted_period = _fraud_period("covariate-drift")
    drifted = drifted_period.events.to_pandas()
    assert drifted_period.drift_start == date(2026, 1, 1)
    ratio = drifted["amount"].median() / healthy["amount"].median()
    assert 1.25 < ratio < 1.6  # amounts rise by 40 % and shift towards online retail
    assert stats.ks_2samp(healthy["amount"], drifted["amount"]).pvalue < 1e-6
    online = (drifted["merchant_category"] == "online_retail").mean()
    assert online > (healthy["merchant_category"] == "online_retail").mean() + 0.1
    # a second healthy draw of the same seed is the same traffic
    again = _fraud_period("healthy").events.to_pandas()
    pd.testing.assert_frame_equal(healthy, again)


def test_batches_hold_each_entity_once() -> None:
    keys = [1, 2, 3, 1, 4, 5, 6, 7, 8, 2]
    batches = list(through_service._batches(keys, 3))
    assert batches == [(0, 3), (3, 6), (6, 9), (9, 10)]
    for lo, hi in batches:
        assert len(set(keys[lo:hi])) == hi - lo


# ----------------------------------------------------------------------------- platform


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Credit data, one training run, and a twin of its baseline registered beside it (a
    version the gate passes against the baseline)."""
    root = copy_workspace(tmp_path_factory.mktemp("simulate") / "repo")
    settings = load_settings(root)
    data.generate(settings, [PROJECT], rows=ROWS, seed=5)
    features.apply(settings)
    result = train.train(settings, PROJECT)
    good = result.baseline.version
    with mlflow_io.session(tracking(settings)) as client:
        source = client.get_model_version(PROJECT, good)
        uri = f"models:/{PROJECT}/{good}"
        model = mlflow_io.load_model(uri)
        example = _input_example(uri)
        record = mlflow_io.RunRecord(experiment=f"modelops/{PROJECT}", run_name="twin")
        logged = mlflow_io.log_run(client, tracking(settings), record, model, example)
        twin_tags = {
            **dict(source.tags),
            "modelops.artifact_sha256": mlflow_io.artifact_sha256(logged.model_uri),
        }
        twin = mlflow_io.register_version(client, PROJECT, logged, twin_tags, "twin").version
    return {
        "root": root,
        "good": good,
        "other": result.candidate.version,
        "twin": str(twin),
    }


def _input_example(uri: str) -> pd.DataFrame:
    import mlflow
    from mlflow.models import Model

    folder = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    example = Model.load(folder).load_input_example(folder)
    assert isinstance(example, pd.DataFrame)
    return example


@pytest.fixture
def platform_(
    trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> Settings:
    """The trained workspace with a fresh ledger in which the good version holds every
    environment, and a fresh prediction log."""
    monkeypatch.setenv("MODELOPS_ROOT", str(trained["root"]))
    monkeypatch.setenv("MODELOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'platform.db'}")
    monkeypatch.setenv("MODELOPS_PREDICTION_LOG_URL", str(tmp_path / "predictions"))
    monkeypatch.setenv("MODELOPS_ACTOR", "tester")
    settings = load_settings()
    ledger = ledger_for(settings)
    for environment in settings.environments:
        ledger.transition(
            LedgerEntry(
                action="promote",
                project=PROJECT,
                environment=environment,
                actor="seed",
                reason="test seed",
                to_version=trained["good"],
            ),
            expected=ledger.holder(PROJECT, environment),
        )
    promote.sync_aliases(settings, PROJECT)  # the gate checks that MLflow agrees
    return settings


def _labels(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(settings.data_dir / "credit_applications.parquet")


def _log(settings: Settings) -> pd.DataFrame:
    return prediction_log.read(
        settings,
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2100, 1, 1, tzinfo=UTC),
        project=PROJECT,
    )


def test_healthy_traffic_is_logged_at_event_time_with_labels_known_later(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    settings = platform_
    before = _labels(settings)
    monthly_before = len(pd.read_parquet(settings.data_dir / "credit_company_monthly.parquet"))
    start = simulate.default_start(settings, load_project(settings.resolved_projects_dir, PROJECT))

    result = simulate.simulate(settings, PROJECT, scenario="healthy", days=4, rate=60.0)

    assert result.start == start and result.end == start + timedelta(days=3)
    assert result.served_versions == (trained["good"],) and result.drift_start is None
    assert result.events == result.labels == result.logged + result.refused > 150
    after = _labels(settings)
    added = after.iloc[len(before) :]
    assert len(added) == result.labels
    assert (added["label_available_at"] > added["event_timestamp"]).all()
    assert added["company_id"].min() > before["company_id"].max()  # never an existing company
    monthly = pd.read_parquet(settings.data_dir / "credit_company_monthly.parquet")
    assert len(monthly) > monthly_before

    logged = _log(settings)
    assert len(logged) == result.logged
    assert set(logged["model_version"]) == {trained["good"]}
    assert set(logged["environment"]) == {"production"}
    assert logged["score"].between(0, 1).all()
    assert set(logged["decision"]) <= {"high", "medium", "low"}
    assert logged["request_id"].is_unique
    times = set(pd.to_datetime(added["event_timestamp"], utc=True))
    assert set(pd.to_datetime(logged["logged_at"], utc=True)) <= times
    features_ = json.loads(logged["features"].iloc[0])
    assert "balance_mean" in features_ and "sector" in features_
    assert json.loads(logged["request"].iloc[0]).keys() == {"requested_amount"}

    # the next simulation continues the timeline; one that overlaps it is refused
    follow = simulate.simulate(
        settings, PROJECT, scenario="healthy", days=1, rate=60.0, shadow=trained["twin"]
    )
    assert follow.start == result.end + timedelta(days=1)
    assert follow.shadow_version == trained["twin"]
    shadowed = _log(settings).iloc[len(logged) :]
    assert shadowed["shadow_version"].eq(trained["twin"]).all()
    assert shadowed["shadow_score"].notna().all()
    with pytest.raises(simulate.SimulationError, match=r"--start .* already holds events"):
        simulate.simulate(settings, PROJECT, days=1, rate=60.0, start=result.start)


class _FakeService(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append({"path": self.path, **body})
        predictions = [
            {
                "request_id": f"{body.get('request_id')}-{i}",
                "company_id": item["company_id"],
                "score": 0.1,
                "decision": "low",
                "fallback": i == 0,
                "reason": None,
            }
            for i, item in enumerate(body["entities"])
        ]
        payload = json.dumps(
            {
                "request_id": body.get("request_id"),
                "project": PROJECT,
                "model_version": "7",
                "predictions": predictions,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        text = (
            b'modelops_model_info{project="credit_risk",model_version="7",artifact_sha256="x",'
            b'shadow="",environment="production"} 1.0\n'
            b'modelops_model_info{project="credit_risk",model_version="6",artifact_sha256="y",'
            b'shadow="",environment="production"} 0.0\n'
        )
        self.send_response(200)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def fake_service() -> Iterator[str]:
    _FakeService.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def small_batches(platform_: Settings) -> Iterator[int]:
    spec = platform_.resolved_projects_dir / PROJECT / "project.yaml"
    original = spec.read_text()
    spec.write_text(original + "serving:\n  max_batch: 40\n")
    try:
        yield 40
    finally:
        spec.write_text(original)


def test_through_a_service_posts_batches_and_labels_follow_its_clock(
    platform_: Settings, fake_service: str, small_batches: int
) -> None:
    settings = platform_
    before = len(_labels(settings))
    sent = datetime.now(UTC)
    result = simulate.simulate(
        settings,
        PROJECT,
        scenario="covariate-drift",
        days=2,
        rate=60.0,
        start=date(2027, 3, 1),
        through_service=fake_service,
        materialize=False,
    )

    bodies = _FakeService.bodies
    assert len(bodies) >= 3 and {b["path"] for b in bodies} == {"/predict_batch"}
    items = [item for body in bodies for item in body["entities"]]
    assert len(items) == result.events == result.logged
    for body in bodies:
        keys = [item["company_id"] for item in body["entities"]]
        assert len(keys) == len(set(keys)) <= small_batches  # serving.max_batch, entities once
        assert body["request_id"].startswith("sim-")
    assert all(set(item) == {"company_id", "requested_amount"} for item in items)
    assert all(isinstance(item["company_id"], int) for item in items)
    assert all(isinstance(item["requested_amount"], float) for item in items)
    assert result.fallbacks == len(bodies) and result.served_versions == ("7",)
    assert len(_log(settings)) == 0  # the service writes the log, not the simulation

    added = _labels(settings).iloc[before:]
    assert len(added) == result.labels == result.events
    stamps = pd.to_datetime(added["event_timestamp"], utc=True)
    assert stamps.min() >= pd.Timestamp(sent) - pd.Timedelta(seconds=1)
    assert stamps.max() <= pd.Timestamp(datetime.now(UTC))
    delay = pd.to_datetime(added["label_available_at"], utc=True) - stamps
    assert (delay == pd.Timedelta(days=365)).all()  # the generator's delay, kept

    assert simulate.service_version(fake_service) == "7"


def _signed_release(settings: Settings, version: str) -> None:
    """``version``'s signed release in the ledger, as ``modelops package`` records it (no Bento
    is built here: the drill's deploy reads the record, never the Bento)."""
    from modelops.core import release_record
    from modelops.core.release import bento_tag
    from modelops.services import signing

    sha = _sha(settings, version)
    tag = bento_tag(PROJECT, version, sha)
    record = release_record.sign(
        signing.signing_key(settings),
        project=PROJECT,
        registered_model=PROJECT,
        model_version=version,
        bento_tag=tag,
        manifest={
            "project": PROJECT,
            "bento_tag": tag,
            "model": {"version": version, "artifact_sha256": sha},
        },
        files={},
        signed_at=datetime.now(UTC),
    )
    signing.record_release(settings, record, "ci")


def test_bad_model_goes_through_the_gate_and_an_approval_that_says_so(
    platform_: Settings, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = platform_
    for version in (trained["other"], trained["twin"]):  # packaged by CI, as a deploy needs
        _signed_release(settings, version)
    offered = SimpleNamespace(
        candidate=SimpleNamespace(version=trained["other"]),
        baseline=SimpleNamespace(version=trained["twin"]),
    )
    asked: dict[str, Any] = {}

    def trains(settings: Settings, project: str, **kwargs: Any) -> SimpleNamespace:
        asked.update(kwargs)
        return offered

    monkeypatch.setattr(train, "train", trains)

    result = simulate.simulate(
        settings,
        PROJECT,
        scenario="bad-model",
        days=2,
        rate=60.0,
        break_features=("balance_mean",),
    )

    # Trained as the holder was, so the gate judges it on the holder's own holdout, with the
    # named feature broken in the rows it learns from.
    held = monitor.read_lineage(settings, project_for(settings, PROJECT), trained["good"])
    assert asked == {
        "as_of": held.as_of,
        "windows": held.windows,
        "sabotage": BrokenFeatures(("balance_mean",)),
    }

    drill = result.drill
    assert drill is not None and drill.trained
    assert drill.previous_version == trained["good"]
    bad = drill.bad_version
    assert bad in (trained["other"], trained["twin"])
    assert result.traffic == "concept-drift" and result.drift_start == result.start
    assert result.served_versions == (bad,)
    assert set(_log(settings)["model_version"]) == {bad}

    ledger = ledger_for(settings)
    assert ledger.holder(PROJECT, "production").version == bad
    entries = ledger.entries(PROJECT, "production")
    approval = next(e for e in entries if e.action == "approve" and e.to_version == bad)
    move = next(e for e in entries if e.action == "promote" and e.to_version == bad)
    assert approval.actor == simulate.DRILL_APPROVER
    for entry in (approval, move):
        assert entry.reason.startswith("simulation: bad-model drill")
        assert f"rollback to v{trained['good']}" in entry.reason
        assert "balance_mean broken" in entry.reason
    assert drill.broken == ("balance_mean",)
    assert move.verdict_id == drill.verdicts["production"] == approval.verdict_id
    assert move.seq == drill.moves["production"]
    assert drill.gitops.startswith("GitOps commit")  # deployed, so a rollback has one to undo
    passed = [e for e in entries if e.action == "validate" and e.verdict_id == move.verdict_id]
    assert passed and passed[0].details.get("passed")
    if bad == trained["twin"]:  # the gate refused the other one first, and said so
        refused = [
            e
            for e in ledger.entries(PROJECT)
            if e.action == "validate" and e.to_version == trained["other"]
        ]
        assert refused and not refused[0].details.get("passed")


def _sha(settings: Settings, version: str) -> str:
    with mlflow_io.session(tracking(settings)) as client:
        return str(client.get_model_version(PROJECT, version).tags["modelops.artifact_sha256"])


def test_a_drill_refuses_a_copy_of_the_holder(
    platform_: Settings, trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version with the holder's artifact is a copy, whatever its number: a rollback to the
    holder would swap in the same model. Refused before the gate, with nothing in the ledger."""
    settings = platform_
    ledger = ledger_for(settings)
    before = len(ledger.entries(PROJECT))
    good_sha = _sha(settings, trained["good"])
    with mlflow_io.session(tracking(settings)) as client:
        twin_sha = _sha(settings, trained["twin"])
        client.set_model_version_tag(PROJECT, trained["twin"], "modelops.artifact_sha256", good_sha)
        try:
            with pytest.raises(simulate.SimulationError, match="a copy, not a bad model"):
                simulate.simulate(
                    settings, PROJECT, scenario="bad-model", days=1, bad_version=trained["twin"]
                )
            # a training run that gave back the holder's artifact is refused the same way
            offered = SimpleNamespace(
                candidate=SimpleNamespace(version=trained["twin"]),
                baseline=SimpleNamespace(version=trained["other"]),
            )
            monkeypatch.setattr(train, "train", lambda *a, **k: offered)
            with pytest.raises(simulate.SimulationError, match=f"v{trained['twin']} has the"):
                simulate.simulate(
                    settings, PROJECT, scenario="bad-model", days=1, break_features=("x",)
                )
        finally:
            client.set_model_version_tag(
                PROJECT, trained["twin"], "modelops.artifact_sha256", twin_sha
            )
    assert len(ledger.entries(PROJECT)) == before


def test_a_drill_version_is_trained_with_its_feature_broken_and_says_so(
    platform_: Settings, trained: dict[str, Any]
) -> None:
    settings = platform_
    with mlflow_io.session(tracking(settings)) as client:
        features_ = client.get_model_version(PROJECT, trained["good"]).tags["modelops.features"]
    feature = features_.split(",")[0]
    with pytest.raises(ConfigError, match="--break-feature no_such: not a feature"):
        train.train(settings, PROJECT, sabotage=BrokenFeatures(("no_such",)))
    result = train.train(settings, PROJECT, sabotage=BrokenFeatures((feature,)))
    for version in (result.candidate.version, result.baseline.version):
        with mlflow_io.session(tracking(settings)) as client:
            tags_ = client.get_model_version(PROJECT, version).tags
        assert tags_["modelops.drill.broken_features"] == (
            f"{feature} written as 0 in the train and validation rows (drill)"
        )
    assert _sha(settings, result.baseline.version) != _sha(settings, trained["good"])
    assert any("drill: " in note for note in result.notes)
    # an ordinary training run carries no such tag
    with mlflow_io.session(tracking(settings)) as client:
        assert (
            "modelops.drill.broken_features"
            not in client.get_model_version(PROJECT, trained["good"]).tags
        )


def test_a_drill_needs_a_version_to_return_to(platform_: Settings) -> None:
    with pytest.raises(simulate.SimulationError, match="unknown scenario"):
        simulate.simulate(platform_, PROJECT, scenario="bad-data", days=1)
    with pytest.raises(simulate.SimulationError, match="already holds production"):
        simulate.simulate(
            platform_,
            PROJECT,
            scenario="bad-model",
            days=1,
            bad_version=ledger_for(platform_).holder(PROJECT, "production").version,
        )
    with pytest.raises(simulate.SimulationError, match="no feature to break"):
        simulate.simulate(platform_, PROJECT, scenario="bad-model", days=1)
    with pytest.raises(simulate.SimulationError, match="pass one"):
        simulate.simulate(
            platform_, PROJECT, scenario="bad-model", days=1, bad_version="1", break_features=("x",)
        )
