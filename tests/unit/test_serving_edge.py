"""The service's edge without BentoML: header limits and timeouts on a real socket (uvicorn with
the edge protocol), one answer for unknown paths, the body timeout, the OpenAPI document against
the answers the service gives, and training ranges (recorded, refused, flagged, logged)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cloudpickle
import jsonschema
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from modelops.config.project import Decisions, Serving
from modelops.core.errors import ConfigError
from modelops.core.features import FeatureStep
from modelops.core.modeling import logistic_baseline, with_feature_step
from modelops.core.ranges import FeatureRange, format_ranges, outside, parse_ranges
from modelops.services.train import _feature_ranges
from modelops.serving import artifact, edge
from modelops.serving.http import RequestGuard
from modelops.serving.log_reader import read_prediction_log
from modelops.serving.manifest import FeastConfig, InputField, Manifest, ModelEntry, write_manifest
from modelops.serving.online import OnlineRead
from modelops.serving.openapi import contract
from modelops.serving.prediction_log import TABLE, PredictionLog, PredictionRecord, open_sink
from modelops.serving.predictor import Predictor, RequestError, load_release

FEATURES = ["segment", "amount", "tenure"]
ROWS = {
    1: {"segment": "a", "amount": 200.0, "tenure": 1},
    2: {"segment": "b", "amount": 5.0, "tenure": 90},
    3: {"segment": "c", "amount": 40.0, "tenure": 500},  # tenure outside [0, 100] + 10 %
}
RANGES = {
    "amount": FeatureRange(low=1.0, high=300.0),
    "tenure": FeatureRange(low=0.0, high=100.0),
    "amount_sent": FeatureRange(low=0.0, high=50.0),
    "hour": FeatureRange(low=0.0, high=23.0),
}


# --------------------------------------------------------------------------- ranges (core)


def test_ranges_widen_by_the_margin_and_name_what_is_outside() -> None:
    span = FeatureRange(low=10.0, high=20.0)
    assert span.widened(0.1) == pytest.approx((9.0, 21.0))
    assert FeatureRange(low=5.0, high=5.0).widened(0.1) == pytest.approx((4.5, 5.5))
    assert FeatureRange(low=0.0, high=0.0).widened(0.5) == pytest.approx((-0.5, 0.5))
    row = {"x": 21.5, "y": None, "z": float("nan"), "flag": True, "name": "a", "inf": np.inf}
    ranges = {name: span for name in ("x", "y", "z", "flag", "name", "inf")}
    found = outside(ranges, 0.1, row)
    assert [o.feature for o in found] == ["x", "inf"]  # missing values are the model's
    assert "'x' = 21.5 is outside [9, 21]" in found[0].describe()
    assert outside(ranges, 0.1, {"x": np.float32(20.5)}) == []
    with pytest.raises(ValueError, match="exceeds"):
        FeatureRange(low=2.0, high=1.0)


def test_ranges_round_trip_through_the_tag_and_a_bad_tag_is_named() -> None:
    text = format_ranges(RANGES)
    assert parse_ranges(text, "v1") == RANGES and len(text) < 200
    for bad in ("[1, 2]", '{"a": [1]}', '{"a": [2, 1]}', "not json", '{"a": [null, 1]}'):
        with pytest.raises(ConfigError, match="v1: feature ranges unreadable"):
            parse_ranges(bad, "v1")


def test_training_records_numeric_features_and_request_fields_only() -> None:
    frame = pd.DataFrame(
        {
            "amount": [3.0, np.nan, 7.5, np.inf],
            "count": pd.array([1, None, 4, 2], dtype="Int64"),
            "is_new": [True, False, True, False],
            "segment": ["a", "b", "a", "c"],
            "hour": [0, 23, 5, 7],
            "empty": [np.nan] * 4,
        }
    )
    data = SimpleNamespace(
        frames={"train": frame},
        features=["amount", "count", "is_new", "segment", "empty"],
        request_fields=["hour", "amount"],
    )
    ranges = parse_ranges(_feature_ranges(data), "test")  # type: ignore[arg-type]
    assert ranges == {
        "amount": FeatureRange(low=3.0, high=7.5),
        "count": FeatureRange(low=1, high=4),
        "hour": FeatureRange(low=0, high=23),
    }


# --------------------------------------------------------------------------- request models


def _manifest(
    sha: str = "0" * 64,
    *,
    ranges: dict[str, FeatureRange] | None = None,
    out_of_range: str = "refuse",
    missing: str = "error",
) -> Manifest:
    return Manifest(
        project="payments",
        registered_model="payments",
        bento_tag=f"modelops-payments:v7-{sha[:12]}",
        feature_service="payments_v1",
        entity=InputField(name="account_id", type="int"),
        request_fields=(
            InputField(name="amount_sent", type="float"),
            InputField(name="channel", type="str"),
            InputField(name="hour", type="int"),
        ),
        model=ModelEntry(
            version="7",
            artifact_sha256=sha,
            threshold=0.5,
            feature_names=tuple(FEATURES),
            directory="model",
            scorer_kind="logistic",
            scorer_max_abs_diff=0.0,
            feature_ranges=ranges,
        ),
        decisions=Decisions(positive="block", review="review", negative="allow", review_ratio=0.5),
        serving=Serving(
            missing_features=missing,
            fallback_decision="review" if missing == "fallback" else None,
            max_batch=3,
            out_of_range=out_of_range,
        ),
        feast=FeastConfig(batch_views={"activity": ("amount", "tenure", "segment")}),
        packaged_at=datetime.now(UTC),
    )


def test_refuse_mode_puts_the_training_ranges_in_the_request_schema() -> None:
    routes = contract(_manifest(ranges=RANGES), "svc").routes
    model = routes["/predict"]
    ok = {"account_id": 1, "amount_sent": 54.0, "channel": "web", "hour": 25}
    assert model.model_validate_json(json.dumps(ok)).hour == 25  # 23 + 10 % of 23, floored
    assert model.model_validate_json(json.dumps({**ok, "hour": 7.0})).hour == 7
    for field, value in (("amount_sent", 1e308), ("hour", -5), ("hour", 10**12), ("hour", 26)):
        with pytest.raises(ValueError, match=field):
            model.model_validate_json(json.dumps({**ok, field: value}))
    with pytest.raises(ValueError, match="valid integer"):
        model.model_validate_json(json.dumps({**ok, "hour": 7.5}))
    batch = routes["/predict_batch"]
    with pytest.raises(ValueError, match=r"entities\.1\.amount_sent"):
        batch.model_validate_json(json.dumps({"entities": [ok, {**ok, "amount_sent": -6.0}]}))

    unbounded = contract(_manifest(ranges=RANGES, out_of_range="flag"), "svc").routes["/predict"]
    assert unbounded.model_validate_json(json.dumps({**ok, "amount_sent": 1e308}))
    no_ranges = contract(_manifest(ranges=None), "svc").routes["/predict"]
    assert no_ranges.model_validate_json(json.dumps({**ok, "hour": 10**12}))


# --------------------------------------------------------------------------- the OpenAPI document


def _document(manifest: Manifest) -> dict[str, Any]:
    return json.loads(contract(manifest, "svc").documents["/docs.json"])


def _validator(document: dict[str, Any], name: str) -> jsonschema.protocols.Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_the_document_lists_every_status_with_its_body_and_null_where_answered() -> None:
    document = _document(_manifest(ranges=RANGES, missing="fallback"))
    assert document["openapi"] == "3.1.0"
    for path in ("/predict", "/predict_batch"):
        responses = document["paths"][path]["post"]["responses"]
        assert set(responses) == {"200", "400", "404", "408", "413", "415", "422", "431", "503"}
    for path in ("/healthz", "/livez", "/readyz"):
        assert set(document["paths"][path]["get"]["responses"]) == {"200", "503", "408", "431"}
    scored = {
        "request_id": "r",
        "project": "payments",
        "model_version": "7",
        "account_id": 1,
        "score": 0.2,
        "decision": "allow",
        "fallback": False,
        "reason": None,
        "out_of_range": [],
    }
    fallback = {**scored, "score": None, "decision": "review", "fallback": True, "reason": "x"}
    response = _validator(document, "PredictResponse")
    for answer in (scored, fallback):
        assert list(response.iter_errors(answer)) == []  # BentoML's document refused both
    assert list(response.iter_errors({**scored, "out_of_range": None}))
    error = _validator(document, "Error")
    not_found = {"error": "no online features for account_id=4", "field": "account_id"}
    assert list(error.iter_errors({**not_found, "detail": []})) == []
    assert list(error.iter_errors({**not_found, "detail": "a string"}))
    request = _validator(document, "PredictRequest")
    valid = {"account_id": 1, "amount_sent": 5.0, "channel": "web", "hour": 3}
    assert list(request.iter_errors({**valid, "request_id": None})) == []
    assert list(request.iter_errors({**valid, "hour": -5}))


# --------------------------------------------------------------------------- the request guard


async def _echo(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_a_body_that_does_not_arrive_in_time_is_408_and_closes() -> None:
    routes = contract(_manifest(), "svc").routes
    guard = RequestGuard(_echo, routes, {"/predict": 4096}, body_timeout=0.3)
    sent: list[dict[str, Any]] = []

    async def trickle() -> dict[str, Any]:
        if not sent:
            sent.append({})
            return {"type": "http.request", "body": b'{"account_id"', "more_body": True}
        await asyncio.sleep(30)
        raise AssertionError("the guard waited past its body timeout")

    answers: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        answers.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-type", b"application/json")],
    }
    started = time.monotonic()
    asyncio.run(guard(scope, trickle, send))
    assert time.monotonic() - started < 5
    assert answers[0]["status"] == 408 and (b"connection", b"close") in answers[0]["headers"]
    assert json.loads(answers[1]["body"])["field"] == "(body)"


def test_the_guard_answers_valid_predictions_itself_with_the_model_it_validated() -> None:
    """The fast path: BentoML's handler (a second parse and validation, a thread hop, the
    response model) never runs for a request the guard can answer; the answer gets the request
    model the guard validated (``7.0`` already the integer 7), a batch on another thread."""
    loop_thread = threading.get_ident()
    seen: list[tuple[str, Any, bool]] = []

    async def bentoml(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("path") in ("/predict", "/predict_batch"):
            raise AssertionError("BentoML's route ran for a request the guard answers")
        await _echo(scope, receive, send)

    def answer(path: str, request: Any) -> tuple[int, dict[str, Any]] | None:
        seen.append((path, request.model_dump(), threading.get_ident() == loop_thread))
        if path == "/predict" and request.account_id == 404:
            return 404, {"error": "no online features", "field": "account_id", "detail": []}
        return 200, {"path": path, "score": 0.25}

    def run(guard: RequestGuard, path: str, body: bytes) -> tuple[int, Any]:
        """One request through the guard on this thread's event loop."""
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [(b"content-type", b"application/json")],
        }
        asyncio.run(guard(scope, receive, send))
        return messages[0]["status"], json.loads(messages[1]["body"])

    routes = contract(_manifest(), "svc").routes
    limits = {"/predict": 4096, "/predict_batch": 4096}
    guard = RequestGuard(
        bentoml, routes, limits, answer=answer, threaded=frozenset({"/predict_batch"})
    )
    item = {"account_id": 7.0, "amount_sent": 12.5, "channel": "web", "hour": 3}
    assert run(guard, "/predict", json.dumps(item).encode()) == (
        200,
        {"path": "/predict", "score": 0.25},
    )
    path, request, on_loop = seen[-1]
    assert (path, request["account_id"], type(request["account_id"]), on_loop) == (
        "/predict",
        7,
        int,
        True,
    )
    status, body = run(guard, "/predict", json.dumps({**item, "account_id": 404}).encode())
    assert status == 404 and body["field"] == "account_id"
    batch = json.dumps({"entities": [item, {**item, "account_id": 8}]}).encode()
    assert run(guard, "/predict_batch", batch)[0] == 200
    path, request, on_loop = seen[-1]
    assert path == "/predict_batch" and not on_loop
    assert [e["account_id"] for e in request["entities"]] == [7, 8]
    assert request["request_id"] is None
    calls = len(seen)
    assert run(guard, "/predict", b'{"account_id": "x"}')[0] == 422  # refused before any answer
    assert len(seen) == calls
    # an answer that declines (None: the service not started, or BentoML's access log or spans
    # asked for) passes the request on with its body replayed
    passed = RequestGuard(_echo, routes, limits, answer=lambda path, request: None)
    assert run(passed, "/predict", json.dumps(item).encode()) == (200, {})


def test_the_guard_serves_the_document_of_the_current_contract() -> None:
    current = [contract(_manifest(ranges=RANGES), "svc")]
    guard = RequestGuard(
        _echo,
        lambda: current[0].routes,
        {"/predict": 4096, "/predict_batch": 4096},
        documents=lambda: current[0].documents,
    )
    client = TestClient(guard)
    body = {"account_id": 1, "amount_sent": 1e308, "channel": "web", "hour": 3}
    assert client.post("/predict", json=body).status_code == 422
    hour = client.get("/docs.json").json()["components"]["schemas"]["PredictRequest"]
    assert hour["properties"]["hour"]["maximum"] == 25
    current[0] = contract(_manifest(ranges=RANGES, out_of_range="flag"), "svc")  # a reload
    assert client.post("/predict", json=body).status_code == 200
    hour = client.get("/docs.json").json()["components"]["schemas"]["PredictRequest"]
    assert hour["properties"]["hour"]["maximum"] == 2**63 - 1  # int64 only


# --------------------------------------------------------------------------- the edge protocol


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """uvicorn with the edge protocol in front of a Starlette app with a static mount."""
    import uvicorn
    from uvicorn.config import HTTP_PROTOCOLS

    auto = HTTP_PROTOCOLS["auto"]
    static = tmp_path_factory.mktemp("static")
    (static / "app.js").write_text("1")
    seen: list[str] = []

    async def hello(request: Any) -> PlainTextResponse:
        seen.append(request.url.path)
        return PlainTextResponse("hi")

    app = Starlette(
        routes=[
            Route("/healthz", hello),
            Route("/predict", hello, methods=["POST"]),
            Mount("/static", StaticFiles(directory=static)),
        ]
    )
    unmatched: list[int] = []
    limits = edge.EdgeLimits(header_timeout=0.5, max_header_bytes=4096, max_headers=20)
    edge.install(limits, lambda: unmatched.append(1))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield {"port": port, "seen": seen, "unmatched": unmatched}
    finally:
        server.should_exit = True
        thread.join(10)
        HTTP_PROTOCOLS["auto"] = auto  # other tests' uvicorn servers keep uvicorn's own
        edge.EdgeProtocol.limits = edge.EdgeLimits()


def _send(port: int, data: bytes) -> tuple[float, bytes]:
    started = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return time.monotonic() - started, answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_the_edge_protocol_is_uvicorns_choice_after_install(edge_server: dict[str, Any]) -> None:
    from uvicorn.config import HTTP_PROTOCOLS

    assert HTTP_PROTOCOLS["auto"] == "modelops.serving.edge:EdgeProtocol"
    _, answer = _send(edge_server["port"], b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(answer) == 200 and answer.endswith(b"hi")


def test_oversized_headers_are_431(edge_server: dict[str, Any]) -> None:
    port = edge_server["port"]
    _, answer = _send(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2**20)
    assert _status(answer) == 431 and b"exceed 4096 bytes" in answer
    assert b"connection: close" in answer
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(10_000))
    _, answer = _send(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert _status(answer) == 431 and b"more than 20 header fields" in answer
    _, answer = _send(port, b"GET /healthz?" + b"q" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(answer) == 431
    fine = b"".join(b"X-H%d: 1\r\n" % i for i in range(15))
    _, answer = _send(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fine + b"\r\n")
    assert _status(answer) == 200


def test_headers_that_do_not_arrive_in_time_are_408(edge_server: dict[str, Any]) -> None:
    port = edge_server["port"]
    waited, answer = _send(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    assert _status(answer) == 408 and 0.4 < waited < 3, (waited, answer)
    waited, answer = _send(port, b"")  # connected, silent
    assert _status(answer) == 408 and 0.4 < waited < 3, (waited, answer)


def test_unknown_paths_share_one_answer_and_never_reach_the_app(
    edge_server: dict[str, Any],
) -> None:
    port, seen, unmatched = edge_server["port"], edge_server["seen"], edge_server["unmatched"]
    before, count = len(seen), len(unmatched)
    for path in (b"/nope", b"/healthz/x", b"/static/missing.js", b"/predictions"):
        _, answer = _send(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _status(answer) == 404 and b'"field": "(path)"' in answer, (path, answer)
    assert len(seen) == before and len(unmatched) == count + 4
    _, answer = _send(port, b"GET /static/app.js HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(answer) == 200  # a file of a static mount is a route
    _, answer = _send(port, b"GET /predict HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _status(answer) == 405  # a route, another method: the app's answer
    assert len(unmatched) == count + 4


# --------------------------------------------------------------------------- the predictor


def _fit() -> Any:
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame(
        {
            "segment": rng.choice(["a", "b", "c"], n).astype(object),
            "amount": rng.lognormal(3, 1, n),
            "tenure": rng.integers(0, 100, n),
        }
    )
    label = (rng.random(n) < 0.3).astype(int)
    step = FeatureStep(categorical=("segment",))
    return with_feature_step(step, FEATURES, logistic_baseline(step(frame, FEATURES), label))


class Online:
    def read(self, rows: Sequence[Mapping[str, Any]]) -> OnlineRead:
        columns: dict[str, list[Any]] = {name: [] for name in FEATURES}
        for row in rows:
            for name in FEATURES:
                columns[name].append(ROWS[row["account_id"]][name])
        return OnlineRead(columns=columns, missing=[() for _ in rows])

    def probe(self) -> None:
        return None


class Sink:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)

    def close(self) -> None:
        return None


def _predictor(tmp_path: Path, **manifest: Any) -> tuple[Predictor, PredictionLog, Sink]:
    folder = tmp_path / "release" / "model"
    folder.mkdir(parents=True)
    with (folder / "model.pkl").open("wb") as handle:
        cloudpickle.dump(_fit(), handle)
    flavor = {"sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}}
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": flavor}))
    write_manifest(folder.parent, _manifest(artifact.tree_sha256(folder), **manifest))
    sink = Sink()
    log = PredictionLog(sink, flush_rows=100, flush_seconds=0.05)
    return Predictor(load_release(folder.parent), Online(), prediction_log=log), log, sink


REQUEST = {"amount_sent": 10.0, "channel": "web", "hour": 3}


def test_refuse_mode_answers_422_naming_the_feature(tmp_path: Path) -> None:
    predictor, log, sink = _predictor(tmp_path, ranges=RANGES)
    assert predictor.predict({"account_id": 1, **REQUEST})["out_of_range"] == []
    with pytest.raises(RequestError) as online:
        predictor.predict({"account_id": 3, **REQUEST})  # tenure 500 from the online store
    assert online.value.status == 422 and online.value.field is None
    assert "'tenure' = 500 is outside [-10, 110]" in online.value.message
    with pytest.raises(RequestError) as batch:
        predictor.predict_batch(
            [{"account_id": 1, **REQUEST}, {"account_id": 2, **REQUEST, "amount_sent": 99.0}]
        )
    assert batch.value.status == 422 and batch.value.field == "entities.1.amount_sent"
    assert log.flush() and len(sink.rows) == 1  # refused requests are not logged


def test_flag_mode_scores_and_names_the_features_in_the_answer_and_the_log(
    tmp_path: Path,
) -> None:
    predictor, log, sink = _predictor(tmp_path, ranges=RANGES, out_of_range="flag")
    answer = predictor.predict({"account_id": 3, **REQUEST, "hour": -5})
    assert answer["score"] is not None and answer["out_of_range"] == ["tenure", "hour"]
    batch = predictor.predict_batch([{"account_id": 1, **REQUEST}, {"account_id": 3, **REQUEST}])
    assert [p["out_of_range"] for p in batch["predictions"]] == [[], ["tenure"]]
    assert log.flush()
    assert [r["out_of_range"] for r in sink.rows] == ["tenure,hour", None, "tenure"]


def test_a_version_without_recorded_ranges_is_served_unchecked(tmp_path: Path) -> None:
    predictor, *_ = _predictor(tmp_path, ranges=None)
    assert predictor.predict({"account_id": 3, **REQUEST})["out_of_range"] == []


# --------------------------------------------------------------------------- the prediction log


def _record(flagged: str | None) -> PredictionRecord:
    return PredictionRecord(
        request_id="r",
        logged_at=datetime.now(UTC),
        project="payments",
        model_version="7",
        entity={"account_id": 1},
        decision="allow",
        score=0.1,
        out_of_range=flagged,
    )


def test_the_log_keeps_out_of_range_and_an_older_sql_table_gets_the_column(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # the table as the previous release created it
        connection.execute(
            sa.text(
                f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, request_id VARCHAR(128) NOT NULL, "
                "logged_at DATETIME NOT NULL, project VARCHAR(128) NOT NULL, environment "
                "VARCHAR(64), model_version VARCHAR(64) NOT NULL, endpoint VARCHAR(32) NOT NULL, "
                "entity TEXT NOT NULL, request TEXT, features TEXT, score FLOAT, decision "
                "VARCHAR(64) NOT NULL, fallback BOOLEAN NOT NULL, shadow_version VARCHAR(64), "
                "shadow_score FLOAT, shadow_decision VARCHAR(64), latency_ms FLOAT)"
            )
        )
    start = datetime.now(UTC) - timedelta(minutes=1)
    assert read_prediction_log(url, start, start + timedelta(hours=1)).empty  # reads the old one
    for target in (url, str(tmp_path / "parquet")):
        sink = open_sink(target)
        sink.write([_record("tenure,hour").row(), _record(None).row()])
        sink.close()
        logged = read_prediction_log(target, start, start + timedelta(hours=1))
        assert sorted(logged["out_of_range"].fillna("-")) == ["-", "tenure,hour"], target
    engine.dispose()
