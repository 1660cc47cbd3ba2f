"""The prediction service without a server: request validation, decisions, the missing-features
policy, shadow scoring, reloads and the prediction log."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import yaml
from starlette.testclient import TestClient

from modelops.config.project import Decisions, Serving
from modelops.core.errors import ConfigError, ServiceUnavailableError
from modelops.core.features import FeatureStep
from modelops.core.modeling import logistic_baseline, with_feature_step
from modelops.serving import artifact
from modelops.serving.config import load_config
from modelops.serving.http import RequestGuard, build_models
from modelops.serving.log_reader import (
    WINDOW_COLUMNS,
    LogReadError,
    decode_json,
    read_log,
    read_prediction_log,
)
from modelops.serving.manifest import (
    FeastConfig,
    InputField,
    Manifest,
    ModelEntry,
    locate_release,
    read_pointer,
    write_manifest,
    write_pointer,
)
from modelops.serving.online import OnlineRead
from modelops.serving.policy import DecisionPolicy, NonFiniteScoreError
from modelops.serving.prediction_log import (
    COLUMNS,
    ParquetSink,
    PredictionLog,
    PredictionRecord,
    open_sink,
)
from modelops.serving.predictor import Predictor, RequestError, load_release

FEATURES = ["segment", "amount", "tenure"]
DECISIONS = Decisions(positive="block", review="review", negative="allow", review_ratio=0.5)


# --------------------------------------------------------------------------- fixtures


def _fit(seed: int) -> Any:
    rng = np.random.default_rng(seed)
    n = 600
    frame = pd.DataFrame(
        {
            "segment": rng.choice(["a", "b", "c"], n).astype(object),
            "amount": rng.lognormal(3, 1, n),
            "tenure": rng.integers(0, 100, n),
        }
    )
    logit = -1 + 0.8 * (frame["segment"] == "a") + 0.01 * frame["amount"] - 0.02 * frame["tenure"]
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    step = FeatureStep(categorical=("segment",))
    return with_feature_step(step, FEATURES, logistic_baseline(step(frame, FEATURES), label))


def _save(folder: Path, model: Any) -> str:
    """An MLflow sklearn folder (what the registry stores), and its SHA-256."""
    folder.mkdir(parents=True)
    with (folder / "model.pkl").open("wb") as handle:
        cloudpickle.dump(model, handle)
    (folder / "MLmodel").write_text(
        yaml.safe_dump(
            {
                "flavors": {
                    "sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}
                }
            }
        )
    )
    return artifact.tree_sha256(folder)


ENTITIES = {
    1: {"segment": "a", "amount": 200.0, "tenure": 1},
    2: {"segment": "b", "amount": 5.0, "tenure": 90},
    3: {"segment": "c", "amount": 40.0, "tenure": 10},
}


def _samples() -> pd.DataFrame:
    return pd.DataFrame([{**row} for row in ENTITIES.values()] * 5)


def _manifest(
    release: Path,
    sha: str,
    shadow_sha: str | None = None,
    *,
    missing: str = "error",
    max_batch: int = 3,
    version: str = "7",
) -> Manifest:
    def entry(v: str, digest: str, directory: str) -> ModelEntry:
        return ModelEntry(
            version=v,
            artifact_sha256=digest,
            threshold=0.5,
            feature_names=tuple(FEATURES),
            directory=directory,
            scorer_kind="logistic",
            scorer_max_abs_diff=0.0,
        )

    return Manifest(
        project="payments",
        registered_model="payments",
        bento_tag=f"modelops-payments:v{version}-{sha[:12]}",
        feature_service="payments_v1",
        entity=InputField(name="account_id", type="int"),
        request_fields=(
            InputField(name="amount_sent", type="float"),
            InputField(name="channel", type="str"),
        ),
        model=entry(version, sha, "model"),
        shadow=entry("3", shadow_sha, "shadow") if shadow_sha else None,
        decisions=DECISIONS,
        serving=Serving(
            missing_features=missing,
            fallback_decision="review" if missing == "fallback" else None,
            max_batch=max_batch,
        ),
        feast=FeastConfig(batch_views={"activity": ("amount", "tenure", "segment")}),
        packaged_at=datetime.now(UTC),
    )


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return {"served": _fit(1), "shadow": _fit(2)}


def _release_dir(
    root: Path, models: dict[str, Any], *, shadow: bool = False, **manifest: Any
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    sha = _save(root / "model", models["served"])
    shadow_sha = _save(root / "shadow", models["shadow"]) if shadow else None
    write_manifest(root, _manifest(root, sha, shadow_sha, **manifest))
    _samples().to_parquet(root / "samples.parquet", index=False)
    return root


class FakeOnline:
    """The online store: ENTITIES hold a row; any other entity has none."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.reads: list[list[dict[str, Any]]] = []

    def read(self, rows: Sequence[Mapping[str, Any]]) -> OnlineRead:
        if self.down:
            raise ServiceUnavailableError("online store unavailable: connection refused")
        self.reads.append([dict(r) for r in rows])
        columns: dict[str, list[Any]] = {name: [] for name in FEATURES}
        missing = []
        for row in rows:
            found = ENTITIES.get(row["account_id"])
            for name in FEATURES:
                columns[name].append(found[name] if found else None)
            missing.append(() if found else ("activity",))
        return OnlineRead(columns=columns, missing=missing)

    def probe(self) -> None:
        if self.down:
            raise ServiceUnavailableError("down")


class Recorder:
    """Metrics that remember what they were told."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, *args))


class MemorySink:
    def __init__(self, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.gate = gate
        self.fail = fail

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise OSError("disk full")
        self.batches.append(rows)

    def close(self) -> None:
        return None


def _predictor(
    tmp_path: Path, models: dict[str, Any], *, online: Any = None, **manifest: Any
) -> tuple[Predictor, PredictionLog, MemorySink, Recorder]:
    release = load_release(_release_dir(tmp_path / "release", models, **manifest))
    sink = MemorySink()
    log = PredictionLog(sink, flush_rows=100, flush_seconds=0.05)
    metrics = Recorder()
    predictor = Predictor(
        release, online or FakeOnline(), prediction_log=log, metrics=metrics, environment="dev"
    )
    return predictor, log, sink, metrics


# --------------------------------------------------------------------------- validation

VALID = {"account_id": 1, "amount_sent": 12.5, "channel": "web"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    api = build_models(_manifest(Path("."), "0" * 64, max_batch=3))
    received: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        received.append(message["body"])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    guard = RequestGuard(
        app,
        routes={"/predict": api.predict_request, "/predict_batch": api.batch_request},
        max_body={"/predict": 2048, "/predict_batch": 64 * 1024},
    )
    test_client = TestClient(guard)
    test_client.received = received  # type: ignore[attr-defined]
    return test_client


def _post(client: TestClient, path: str, body: str | bytes, ctype: str | None = None) -> Any:
    headers = {} if ctype is None else {"content-type": ctype}
    return client.post(path, content=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ('{"amount_sent": 1.0, "channel": "web"}', "account_id", "missing"),
        (
            '{"account_id": 1, "amount_sent": 1.0, "channel": "web", "color": 1}',
            "color",
            "extra_forbidden",
        ),
        ('{"account_id": "1", "amount_sent": 1.0, "channel": "web"}', "account_id", "int_type"),
        ('{"account_id": 1.5, "amount_sent": 1.0, "channel": "web"}', "account_id", "int_type"),
        ('{"account_id": true, "amount_sent": 1.0, "channel": "web"}', "account_id", "int_type"),
        ('{"account_id": 1, "amount_sent": "1.0", "channel": "web"}', "amount_sent", "float_type"),
        ('{"account_id": 1, "amount_sent": 1.0, "channel": 5}', "channel", "string_type"),
        ('{"account_id": 1, "amount_sent": NaN, "channel": "web"}', "amount_sent", "finite_number"),
        (
            '{"account_id": 1, "amount_sent": Infinity, "channel": "web"}',
            "amount_sent",
            "finite_number",
        ),
        (
            '{"account_id": 1, "amount_sent": -Infinity, "channel": "web"}',
            "amount_sent",
            "finite_number",
        ),
        (
            '{"account_id": 1, "amount_sent": 1e400, "channel": "web"}',
            "amount_sent",
            "finite_number",
        ),
        (
            '{"account_id": 9223372036854775808, "amount_sent": 1, "channel": "web"}',
            "account_id",
            "less_than_equal",
        ),
        ('{"account_id": 1, "amount_sent": 1, "channel": ""}', "channel", "string_too_short"),
        (
            '{"account_id": 1, "amount_sent": 1, "channel": "web", "request_id": "a b"}',
            "request_id",
            "string_pattern_mismatch",
        ),
        ("[]", "(body)", "model_type"),
        ("null", "(body)", "model_type"),
    ],
)
def test_bad_fields_are_422_naming_the_field(
    client: TestClient, body: str, field: str, kind: str
) -> None:
    response = _post(client, "/predict", body, "application/json")
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["field"] == field
    assert field in payload["error"] or field == "(body)"
    assert payload["detail"][0]["type"] == kind


def test_malformed_json_is_400(client: TestClient) -> None:
    for body in ('{"account_id": 1,', "{'account_id': 1}", "", '{"a": "\\ud800"}'):
        response = _post(client, "/predict", body, "application/json")
        assert response.status_code == 400, (body, response.text)
        assert response.json()["field"] == "(body)"
        assert "malformed JSON" in response.json()["error"]


@pytest.mark.parametrize(
    "ctype", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_wrong_content_type_is_415(client: TestClient, ctype: str | None) -> None:
    response = _post(client, "/predict", '{"account_id": 1}', ctype)
    assert response.status_code == 415
    assert response.json()["field"] == "content-type"


def test_oversized_batch_and_body_are_413(client: TestClient) -> None:
    body = '{"entities": [' + ",".join(['{"account_id": 1, "amount_sent": 1, "channel": "w"}'] * 4)
    response = _post(client, "/predict_batch", body + "]}", "application/json")
    assert response.status_code == 413
    assert response.json()["field"] == "entities"
    assert "at most 3" in response.json()["error"]
    big = '{"account_id": 1, "amount_sent": 1, "channel": "' + "x" * 5000 + '"}'
    response = _post(client, "/predict", big, "application/json")
    assert response.status_code == 413
    assert response.json()["field"] == "(body)"


def test_batch_items_are_named_by_position(client: TestClient) -> None:
    body = (
        '{"entities": [{"account_id": 1, "amount_sent": 1, "channel": "w"}, '
        '{"account_id": 2, "amount_sent": NaN, "channel": "w"}]}'
    )
    response = _post(client, "/predict_batch", body, "application/json")
    assert response.status_code == 422
    assert response.json()["field"] == "entities.1.amount_sent"
    empty = _post(client, "/predict_batch", '{"entities": []}', "application/json")
    assert empty.status_code == 422 and empty.json()["field"] == "entities"


def test_valid_requests_pass_through_unchanged(client: TestClient) -> None:
    body = '{"account_id": 1, "amount_sent": 3, "channel": "web", "request_id": "r-1"}'
    response = _post(client, "/predict", body, "application/json; charset=utf-8")
    assert response.status_code == 200
    assert client.received[-1] == body.encode()  # type: ignore[attr-defined]
    assert client.get("/healthz").status_code == 200  # other routes are not guarded


# --------------------------------------------------------------------------- decisions


def test_decisions_follow_the_thresholds() -> None:
    policy = DecisionPolicy.of(0.4, DECISIONS)
    assert policy.review_from == pytest.approx(0.2)
    assert policy.decide(0.4) == "block"  # at the threshold: positive, as the gate counts
    assert policy.decide(0.39999) == "review"
    assert policy.decide(0.2) == "review"
    assert policy.decide(0.19999) == "allow"
    assert policy.decide(0.0) == "allow"
    with pytest.raises(NonFiniteScoreError):
        policy.decide(float("nan"))


def test_predict_scores_from_online_features(tmp_path: Path, models: dict[str, Any]) -> None:
    predictor, log, sink, metrics = _predictor(tmp_path, models)
    answer = predictor.predict(
        {"account_id": 1, "amount_sent": 9.0, "channel": "web", "request_id": "r-1"}
    )
    expected = float(models["served"].predict_proba(pd.DataFrame([ENTITIES[1]]))[:, 1][0])
    assert answer["score"] == pytest.approx(expected, abs=1e-12)
    assert answer["decision"] == DecisionPolicy.of(0.5, DECISIONS).decide(expected)
    assert answer["request_id"] == "r-1" and answer["model_version"] == "7"
    assert answer["account_id"] == 1 and answer["fallback"] is False
    assert metrics.calls[-1][:4] == ("request", "predict", "7", "ok")
    assert log.flush()
    row = sink.batches[-1][-1]
    assert row["request_id"] == "r-1" and row["model_version"] == "7"
    assert '"amount":200.0' in row["features"] and '"amount_sent":9.0' in row["request"]
    assert row["score"] == answer["score"] and row["environment"] == "dev"


def test_missing_entity_is_404_naming_it_under_error(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    predictor, log, sink, metrics = _predictor(tmp_path, models)
    with pytest.raises(RequestError) as raised:
        predictor.predict({"account_id": 404, "amount_sent": 1.0, "channel": "web"})
    assert raised.value.status == 404
    assert raised.value.field == "account_id"
    assert "account_id=404" in raised.value.message
    assert ("missing", "7", "error", 1) in metrics.calls
    with pytest.raises(RequestError) as batch:
        predictor.predict_batch(
            [
                {"account_id": 1, "amount_sent": 1.0, "channel": "w"},
                {"account_id": 99, "amount_sent": 1.0, "channel": "w"},
            ]
        )
    assert batch.value.status == 404 and batch.value.field == "entities.1.account_id"
    assert log.flush() and not sink.batches  # nothing answered, nothing logged


def test_missing_entity_falls_back_flagged_under_fallback(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    predictor, log, sink, metrics = _predictor(tmp_path, models, missing="fallback")
    answer = predictor.predict({"account_id": 404, "amount_sent": 1.0, "channel": "web"})
    assert answer["fallback"] is True and answer["score"] is None
    assert answer["decision"] == "review" and "activity" in answer["reason"]
    batch = predictor.predict_batch(
        [
            {"account_id": 1, "amount_sent": 1.0, "channel": "w"},
            {"account_id": 99, "amount_sent": 1.0, "channel": "w"},
        ],
        "b-1",
    )
    first, second = batch["predictions"]
    assert first["fallback"] is False and first["score"] is not None
    assert second["fallback"] is True and second["request_id"] == "b-1-1"
    assert ("missing", "7", "fallback", 1) in metrics.calls
    assert log.flush()
    rows = [row for rows in sink.batches for row in rows]
    assert [r["fallback"] for r in rows] == [True, False, True]
    assert rows[0]["score"] is None and rows[0]["features"] is None


def test_unavailable_online_store_is_503(tmp_path: Path, models: dict[str, Any]) -> None:
    predictor, *_ = _predictor(tmp_path, models, online=FakeOnline(down=True))
    with pytest.raises(RequestError) as raised:
        predictor.predict({"account_id": 1, "amount_sent": 1.0, "channel": "web"})
    assert raised.value.status == 503


def test_shadow_is_logged_never_answered(tmp_path: Path, models: dict[str, Any]) -> None:
    predictor, log, sink, _ = _predictor(tmp_path, models, shadow=True)
    answer = predictor.predict({"account_id": 2, "amount_sent": 1.0, "channel": "web"})
    assert "shadow" not in str(sorted(answer))
    assert log.flush()
    row = sink.batches[-1][-1]
    shadow = float(models["shadow"].predict_proba(pd.DataFrame([ENTITIES[2]]))[:, 1][0])
    assert row["shadow_version"] == "3"
    assert row["shadow_score"] == pytest.approx(shadow, abs=1e-12)
    assert row["shadow_decision"] in DECISIONS.model_dump().values()
    assert row["score"] == answer["score"] != row["shadow_score"]


def test_batch_scores_equal_single_scores(tmp_path: Path, models: dict[str, Any]) -> None:
    predictor, *_ = _predictor(tmp_path, models)
    items = [{"account_id": k, "amount_sent": 1.0, "channel": "w"} for k in ENTITIES]
    batch = predictor.predict_batch(items)["predictions"]
    for item, got in zip(items, batch, strict=True):
        assert got["score"] == pytest.approx(predictor.predict(item)["score"], abs=1e-12)
    with pytest.raises(RequestError) as raised:
        predictor.predict_batch(items * 2)
    assert raised.value.status == 413


def test_release_with_a_replaced_artifact_is_refused(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    directory = _release_dir(tmp_path / "release", models)
    (directory / "model" / "MLmodel").write_text(
        (directory / "model" / "MLmodel").read_text() + "\n# edited\n"
    )
    with pytest.raises(artifact.ArtifactError, match="does not match its registration"):
        load_release(directory)


def test_tree_hash_is_the_registration_hash(tmp_path: Path, models: dict[str, Any]) -> None:
    from modelops.integrations.mlflow import _tree_sha256

    folder = tmp_path / "m"
    digest = _save(folder, models["served"])
    (folder / "registered_model_meta").write_text("name: x\nversion: 1\n")  # not hashed
    (folder / "sub").mkdir()
    (folder / "sub" / "extra.txt").write_text("x")
    assert artifact.tree_sha256(folder) == _tree_sha256(folder) != digest


def test_reload_swaps_atomically_and_refuses_another_api(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    predictor, *_ = _predictor(tmp_path, models)
    newer = load_release(_release_dir(tmp_path / "v8", models, version="8"))
    predictor.swap(newer)
    assert (
        predictor.predict({"account_id": 1, "amount_sent": 1.0, "channel": "w"})["model_version"]
        == "8"
    )
    other = load_release(_release_dir(tmp_path / "v9", models, version="9", max_batch=10))
    with pytest.raises(Exception, match="different request"):
        predictor.swap(other)
    assert predictor.release.model.version == "8"


def test_pointer_names_the_release_to_start_with(tmp_path: Path, models: dict[str, Any]) -> None:
    bundled = _release_dir(tmp_path / "a", models)
    staged = _release_dir(tmp_path / "b", models, version="8")
    pointer = tmp_path / "current.json"
    assert locate_release(bundled, pointer) == bundled  # no pointer yet
    write_pointer(pointer, staged)
    assert read_pointer(pointer) == staged.resolve()
    assert locate_release(bundled, pointer) == staged.resolve()
    with pytest.raises(ConfigError, match="MODELOPS_SERVING_RELEASE"):
        locate_release(tmp_path / "nowhere", None)


def test_the_release_must_be_the_one_the_deployment_declares() -> None:
    config = load_config(
        {"MODELOPS_SERVING_PROJECT": "fraud", "MODELOPS_SERVING_MODEL_VERSION": "4"}
    )
    config.check_release("fraud", "4", "/release")
    with pytest.raises(ConfigError, match=r"MODELOPS_SERVING_MODEL_VERSION: '4', but the release"):
        config.check_release("fraud", "5", "/release")
    with pytest.raises(ConfigError, match=r"MODELOPS_SERVING_PROJECT: 'fraud'.*'credit_risk'"):
        config.check_release("credit_risk", "4", "/release")
    load_config({}).check_release("anything", "1", "/release")  # nothing declared: any release


def test_prediction_routes_are_untraced_unless_asked() -> None:
    assert load_config({}).tracing == {"excluded_urls": ["predict", "predict_batch"]}
    traced = load_config({"MODELOPS_SERVING_TRACE_PREDICTIONS": "true"})
    assert traced.tracing == {}
    with pytest.raises(ConfigError, match="MODELOPS_SERVING_TRACE_PREDICTIONS"):
        load_config({"MODELOPS_SERVING_TRACE_PREDICTIONS": "sometimes"})


def test_serving_variables_are_checked() -> None:
    config = load_config({"MODELOPS_SERVING_THREADS": "8", "MODELOPS_SERVING_ACCESS_LOG": "true"})
    assert config.threads == 8 and config.access_log and config.workers == 1
    with pytest.raises(ConfigError, match="did you mean MODELOPS_SERVING_WORKERS"):
        load_config({"MODELOPS_SERVING_WORKER": "2"})
    with pytest.raises(ConfigError, match="MODELOPS_SERVING_LOG_QUEUE"):
        load_config({"MODELOPS_SERVING_LOG_QUEUE": "many"})


# --------------------------------------------------------------------------- prediction log


def _record(i: int, at: datetime | None = None, project: str = "payments") -> PredictionRecord:
    return PredictionRecord(
        request_id=f"r-{i}",
        logged_at=at or datetime.now(UTC),
        project=project,
        model_version="7",
        entity={"account_id": i},
        request={"channel": "web"},
        features={"amount": float(i), "segment": "a"},
        score=i / 100,
        decision="allow",
    )


def test_a_log_row_holds_every_column_with_the_json_ones_as_text() -> None:
    record = _record(3, datetime(2026, 3, 1, tzinfo=UTC))
    record.shadow_version, record.latency_ms = "8", 1.5
    row = record.row()
    assert set(row) == set(COLUMNS)
    assert json.loads(row["entity"]) == {"account_id": 3}
    assert json.loads(row["request"]) == {"channel": "web"}
    assert json.loads(row["features"]) == {"amount": 3.0, "segment": "a"}
    plain = {k: v for k, v in row.items() if k not in ("entity", "request", "features")}
    assert plain == {k: getattr(record, k) for k in plain}
    assert dataclasses.replace(record, features=None).row()["features"] is None


def test_log_writes_in_batches(tmp_path: Path) -> None:
    sink = MemorySink()
    log = PredictionLog(sink, flush_rows=5, flush_seconds=60)
    for i in range(12):
        assert log.submit(_record(i))
    deadline = time.monotonic() + 5
    while sum(len(b) for b in sink.batches) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(b) for b in sink.batches] == [5, 5]  # two full batches, two rows waiting
    log.close()
    assert [len(b) for b in sink.batches] == [5, 5, 2]
    assert log.stats.written == 12 and log.stats.writes == 3


def test_log_flushes_after_flush_seconds() -> None:
    sink = MemorySink()
    log = PredictionLog(sink, flush_rows=1000, flush_seconds=0.1)
    log.submit(_record(1))
    deadline = time.monotonic() + 5
    while not sink.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(b) for b in sink.batches] == [1]
    log.close()


def test_log_wakes_its_writer_per_batch_not_per_record() -> None:
    """A thread woken per request costs a context switch and a GIL hand-over on the request
    path; the writer wakes when a batch is full, on its timer, or when asked to flush."""
    sink = MemorySink()
    log = PredictionLog(sink, flush_rows=50, flush_seconds=60)
    time.sleep(0.05)  # the writer is waiting
    for i in range(49):
        assert log.submit(_record(i))
    time.sleep(0.05)
    assert log.stats.wakeups == 0 and not sink.batches  # 49 records: nobody woken
    assert log.submit(_record(49))  # the 50th fills a batch
    deadline = time.monotonic() + 5
    while not sink.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [len(b) for b in sink.batches] == [50] and log.stats.wakeups == 1
    for i in range(3):
        log.submit(_record(100 + i))
    assert log.flush()
    assert [len(b) for b in sink.batches] == [50, 3] and log.stats.wakeups == 2
    log.close()
    assert log.stats.written == 53


def test_settle_heap_puts_what_start_up_loaded_out_of_the_collectors_reach() -> None:
    """A full collection walks every tracked object; after ``settle_heap`` the ones alive at
    start-up are frozen, so a collection during traffic no longer walks them."""
    import gc

    from modelops.serving.startup import settle_heap

    loaded = [{"row": i, "values": [i, str(i)]} for i in range(100_000)]  # a start-up's objects
    before = gc.get_freeze_count()
    try:
        settle_heap()
        assert gc.get_freeze_count() >= before + 2 * len(loaded)
        assert not any(o is loaded[0] for o in gc.get_objects(generation=2))
    finally:
        gc.unfreeze()


def test_log_never_blocks_the_request_path() -> None:
    gate = threading.Event()
    counted: list[tuple[str, int]] = []
    sink = MemorySink(gate=gate)
    log = PredictionLog(
        sink,
        flush_rows=1,
        flush_seconds=0.01,
        max_queue=3,
        on_rows=lambda outcome, n: counted.append((outcome, n)),
    )
    started = time.perf_counter()
    accepted = [log.submit(_record(i)) for i in range(50)]  # the sink is stuck
    assert time.perf_counter() - started < 0.5
    assert accepted.count(False) >= 46 and log.stats.dropped == accepted.count(False)
    assert ("dropped", 1) in counted
    gate.set()
    log.close()
    assert log.stats.written == accepted.count(True)


def test_log_survives_a_failing_sink() -> None:
    log = PredictionLog(MemorySink(fail=True), flush_rows=1, flush_seconds=0.01)
    log.submit(_record(1))
    assert log.flush()
    assert log.stats.failed == 1 and log.alive
    log.close()


def test_parquet_log_is_partitioned_by_date_and_read_by_range(tmp_path: Path) -> None:
    directory = tmp_path / "predictions"
    day = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    log = PredictionLog(open_sink(str(directory)), flush_rows=100, flush_seconds=60)
    assert isinstance(log._sink, ParquetSink)
    for i in range(3):
        log.submit(_record(i, day))
    log.submit(_record(10, day + timedelta(seconds=2)))  # the next day
    log.submit(_record(20, day + timedelta(seconds=2), project="other"))
    log.close()
    assert sorted(p.name for p in directory.iterdir()) == ["date=2026-03-01", "date=2026-03-02"]
    assert all(p.suffix == ".parquet" for p in directory.glob("date=*/*"))
    frame = read_prediction_log(directory, day - timedelta(hours=1), day + timedelta(days=1))
    assert len(frame) == 5
    second_day = read_prediction_log(
        directory, datetime(2026, 3, 2), datetime(2026, 3, 3), project="payments"
    )
    assert second_day["request_id"].tolist() == ["r-10"]
    assert second_day["account_id"].tolist() == [10]  # expanded from the entity JSON
    assert second_day["amount"].tolist() == [10.0] and second_day["segment"].tolist() == ["a"]
    assert str(second_day["logged_at"].dt.tz) == "UTC"
    assert read_prediction_log(tmp_path / "none", day, day + timedelta(days=1)).empty


def test_the_monitor_reader_opens_only_the_partitions_of_its_range(tmp_path: Path) -> None:
    """read_log reads the hive partitions of ``[start, end)`` only: a damaged file in another
    day's partition and a write in progress (a hidden file) are never opened."""
    directory = tmp_path / "predictions"
    day = datetime(2026, 3, 1, 12, tzinfo=UTC)
    log = PredictionLog(open_sink(str(directory)), flush_rows=100, flush_seconds=60)
    for i in range(3):
        log.submit(_record(i, day + timedelta(minutes=i)))
    log.submit(_record(9, day, project="other"))
    log.close()
    (directory / "date=2026-03-01" / ".part-unfinished.parquet.tmp").write_bytes(b"half")
    (directory / "date=2026-03-05").mkdir()
    (directory / "date=2026-03-05" / "part-damaged.parquet").write_bytes(b"not parquet")

    table = read_log(str(directory), "payments", "production", day, day + timedelta(minutes=2))
    assert table.column_names == list(WINDOW_COLUMNS)
    assert table.num_rows == 2 and table["score"].to_pylist() == [0.0, 0.01]
    features = decode_json(table["features"]).to_pylist()
    assert features == [{"amount": 0.0, "segment": "a"}, {"amount": 1.0, "segment": "a"}]
    with pytest.raises(LogReadError):
        read_log(str(directory), "payments", "production", day, day + timedelta(days=5))


def test_sql_log_round_trips(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    log = PredictionLog(open_sink(url), flush_rows=10, flush_seconds=60)
    for i in range(4):
        log.submit(_record(i, at + timedelta(minutes=i)))
    log.close()
    frame = read_prediction_log(url, at + timedelta(minutes=1), at + timedelta(minutes=3))
    assert frame["request_id"].tolist() == ["r-1", "r-2"]
    assert frame["score"].tolist() == [0.01, 0.02]
    assert frame["account_id"].tolist() == [1, 2]


# --------------------------------------------------------------------------- online read


class _Proto:
    """The parts of Feast's GetOnlineFeaturesResponse the reader uses."""

    def __init__(self, statuses: dict[str, list[int]]) -> None:
        from types import SimpleNamespace

        self.metadata = SimpleNamespace(feature_names=SimpleNamespace(val=list(statuses)))
        self.results = [SimpleNamespace(statuses=s) for s in statuses.values()]


class _Store:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[Any] = []

    def get_online_features(self, features: Any, entity_rows: list[dict[str, Any]]) -> Any:
        from types import SimpleNamespace

        self.calls.append((features, entity_rows))
        if self.error is not None:
            raise self.error
        present, not_found, null = 1, 3, 2
        statuses = {
            "account_id": [present, present],
            "amount": [present, not_found],  # view "activity": entity 2 has no row
            "tenure": [null, not_found],  # a null value in a present row is not missing
            "ratio": [present, present],  # on demand: computed for both
        }
        columns = {"amount": [1.0, None], "tenure": [None, None], "ratio": [0.5, None]}
        return SimpleNamespace(to_dict=lambda: columns, proto=_Proto(statuses))


def test_feast_online_read_tells_missing_rows_from_null_values() -> None:
    from modelops.integrations.feast import SdkReader
    from modelops.serving.online import FeastOnline

    store = _Store()
    views = {"activity": ("amount", "tenure")}
    online = FeastOnline(SdkReader(store, "svc", views), "account_id", views)
    read = online.read([{"account_id": 1}, {"account_id": 2}])
    assert read.missing == [(), ("activity",)]
    assert read.columns["ratio"] == [0.5, None]
    online.probe()
    assert store.calls[-1] == (["activity:amount"], [{"account_id": 0}])


def test_feast_online_errors_are_named() -> None:
    from modelops.core.errors import FeatureStoreError
    from modelops.integrations.feast import SdkReader
    from modelops.serving.online import FeastOnline

    views = {"v": ("f",)}
    down = FeastOnline(
        SdkReader(_Store(ConnectionError("Connection refused")), "s", views), "k", views
    )
    with pytest.raises(ServiceUnavailableError, match="online store unavailable"):
        down.read([{"k": 1}])
    with pytest.raises(ServiceUnavailableError):
        down.probe()
    broken = FeastOnline(SdkReader(_Store(ValueError("bad type for k")), "s", views), "k", views)
    with pytest.raises(FeatureStoreError, match="online feature read failed"):
        broken.read([{"k": 1}])
