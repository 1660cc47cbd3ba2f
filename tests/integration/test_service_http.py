"""The prediction service over HTTP: train, package, ``modelops serve`` (``bentoml serve``), send
requests, fuzz its OpenAPI with schemathesis, promote another version and watch it swap in.

Embedded profile (SQLite online store, parquet prediction log), so nothing outside this machine is
needed; BentoML and schemathesis must be installed (skipped with the reason otherwise, failed
under CI: support.skip_or_fail).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import pytest
import yaml

from modelops.cli.main import main
from modelops.config.settings import Settings, load_settings
from modelops.integrations.database import LedgerEntry
from modelops.services import data, features, train
from modelops.services.context import ledger as ledger_for
from modelops.serving.log_reader import read_prediction_log
from support import copy_workspace

pytestmark = pytest.mark.integration

PROJECT = "fraud"
ROWS = 20_000  # enough frauds in the holdout for the training run's own checks
KEY = "account_id"
READY_TIMEOUT_S = 240.0
SCHEMATHESIS_EXAMPLES = 25
EDGE_TIMEOUT_S = 3.0  # header and body timeouts of the served service (10 s by default)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _hold(settings: Settings, environment: str, version: str) -> None:
    ledger = ledger_for(settings)  # keyed, as every command opens it: packaging signs with it
    held = ledger.holder(PROJECT, environment)
    ledger.transition(
        LedgerEntry("promote", PROJECT, environment, "tester", "test", held.version, version),
        expected=held,
    )


def _request(
    url: str, body: Any = None, *, raw: bytes | None = None, ctype: str = "application/json"
) -> tuple[int, Any]:
    payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=payload, method="POST" if payload else "GET")
    if payload is not None:
        request.add_header("content-type", ctype)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        text, status = error.read().decode(), error.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, unavailable: Callable[[str], NoReturn]
) -> Iterator[dict[str, Any]]:
    for module in ("bentoml", "schemathesis"):
        if importlib.util.find_spec(module) is None:
            unavailable(f"{module} is not installed")
    root = copy_workspace(tmp_path_factory.mktemp("serving") / "repo")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("MODELOPS_", "BENTOML_")):
                patch.delenv(name)
        patch.setenv("MODELOPS_ROOT", str(root))
        patch.setenv("MODELOPS_ACTOR", "tester")
        settings = load_settings(root)
        summaries = data.generate(settings, [PROJECT], rows=ROWS, seed=5)
        features.apply(settings)
        end = max(t.end for s in summaries for t in s.tables) + timedelta(seconds=1)
        features.materialize(settings, end)
        result = train.train(settings, PROJECT)
        _hold(settings, "staging", result.candidate.version)
        labels = pd.read_parquet(settings.data_dir / "fraud_transactions.parquet")
        latest = labels.sort_values("event_timestamp").drop_duplicates(KEY, keep="last").tail(60)
        items = [
            {
                KEY: int(r[KEY]),
                "amount": float(r["amount"]),
                "merchant_category": str(r["merchant_category"]),
                "hour_of_day": int(r["hour_of_day"]),
            }
            for r in latest.to_dict("records")
        ]
        yield {
            "settings": settings,
            "root": root,
            "candidate": result.candidate.version,
            "baseline": result.baseline.version,
            "items": items,
        }


@pytest.fixture(scope="module")
def server(trained: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``modelops serve`` (which packages the holder first) with reload on promotion."""
    root: Path = trained["root"]
    port = _free_port()
    log_path = root / "serve.log"
    env = {
        **os.environ,
        "MODELOPS_ROOT": str(root),
        "MODELOPS_ACTOR": "tester",
        "MODELOPS_SERVING_HEADER_TIMEOUT_SECONDS": str(EDGE_TIMEOUT_S),
        "MODELOPS_SERVING_BODY_TIMEOUT_SECONDS": str(EDGE_TIMEOUT_S),
    }
    for name in list(env):
        if name.startswith("BENTOML_"):
            del env[name]
    started = datetime.now(UTC)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelops",
                "serve",
                PROJECT,
                "--env",
                "staging",
                "--port",
                str(port),
                "--reload-on-promotion",
                "--poll-seconds",
                "1",
                "--entities",
                "60",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while True:
            try:
                if _request(f"{url}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the service did not become ready:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield {"url": url, "log": log_path, "started": started, "pid": process.pid, **trained}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # the CLI stops bentoml serve and its workers
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def test_skew_is_zero_and_only_the_holder_is_packaged(
    trained: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["skew", PROJECT, "--entities", "40"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "0 of 40 entities differ" in out and "txn_count_24h" in out

    with pytest.raises(SystemExit) as exit_info:
        main(["package", PROJECT, trained["candidate"], "--env", "production"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"v{trained['candidate']} does not hold production (nothing holds it)" in err


def test_the_served_bento_sends_no_usage_reports(server: dict[str, Any]) -> None:
    """The Bento's own environment turns usage reporting off, so ``bentoml serve`` or its image
    run outside the platform's CLI and charts reports nothing either."""
    from modelops.core.telemetry import TELEMETRY_OFF

    built = list(Path(server["root"]).rglob("bentos/*/*/bento.yaml"))
    assert built, "no Bento was built"
    for path in built:
        envs = {e["name"]: e["value"] for e in yaml.safe_load(path.read_text()).get("envs", [])}
        assert envs == {**envs, **TELEMETRY_OFF}, path


def test_predictions_from_online_features(server: dict[str, Any]) -> None:
    url, items = server["url"], server["items"]
    assert "skew 0/60 entities" in server["log"].read_text()  # the package's skew check
    status, answer = _request(f"{url}/predict", {**items[0], "request_id": "it-1"})
    assert status == 200, answer
    assert answer["model_version"] == server["candidate"] and answer["request_id"] == "it-1"
    assert answer[KEY] == items[0][KEY] and 0.0 <= answer["score"] <= 1.0
    assert answer["decision"] in ("block", "review", "allow") and answer["fallback"] is False

    status, batch = _request(f"{url}/predict_batch", {"entities": items[:50]})
    assert status == 200, batch
    assert len(batch["predictions"]) == 50
    assert batch["predictions"][0]["score"] == pytest.approx(answer["score"], abs=1e-12)

    status, body = _request(f"{url}/predict", {**items[0], KEY: 1})
    assert status == 404 and body["field"] == KEY and f"{KEY}=1" in body["error"]
    status, body = _request(f"{url}/predict", raw=b'{"%s": 1, "amount": NaN}' % KEY.encode())
    assert status == 422 and body["field"] == "amount"
    status, body = _request(f"{url}/predict", raw=b"{", ctype="application/json")
    assert status == 400 and body["field"] == "(body)"
    status, body = _request(f"{url}/predict", raw=json.dumps(items[0]).encode(), ctype="text/csv")
    assert status == 415 and body["field"] == "content-type"
    status, body = _request(f"{url}/predict_batch", {"entities": items[:1] * 1001})
    assert status == 413 and body["field"] == "entities"

    assert _request(f"{url}/healthz")[0] == 200
    metrics = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    version = f'model_version="{server["candidate"]}"'
    assert "modelops_requests_total{" in metrics and version in metrics
    assert "modelops_score_bucket{" in metrics and "modelops_missing_features_total{" in metrics
    assert "modelops_request_latency_seconds_bucket{" in metrics
    assert "bentoml_service_request_duration_seconds_bucket{" in metrics

    deadline = time.monotonic() + 20
    logged = pd.DataFrame()
    while time.monotonic() < deadline:
        logged = read_prediction_log(
            server["settings"].resolved_prediction_log,
            server["started"],
            datetime.now(UTC) + timedelta(minutes=1),
        )
        if "it-1" in set(logged.get("request_id", [])):
            break
        time.sleep(0.5)
    row = logged[logged["request_id"] == "it-1"].iloc[0]
    assert row["score"] == pytest.approx(answer["score"]) and row[KEY] == items[0][KEY]
    assert row["model_version"] == server["candidate"] and row["environment"] == "staging"


def test_schemathesis_finds_nothing_with_every_check(
    server: dict[str, Any], tmp_path: Path
) -> None:
    """The service's own OpenAPI document is exact: every status it answers is listed with its
    body, null where the service answers null, and schema-valid requests are accepted."""
    command = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert command, "schemathesis CLI next to the interpreter"
    done = subprocess.run(
        [
            command,
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{server['url']}/docs.json",
            "--checks",
            "all",
            "--max-examples",
            str(SCHEMATHESIS_EXAMPLES),
            "--workers",
            "1",
            "--seed",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--no-color",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(done.stdout[-4000:])  # shown with -s: operations, cases and status codes seen
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Tested: 6" in done.stdout and "No issues found" in done.stdout


def _raw(url: str, data: bytes, wait: float = 30.0) -> tuple[float, bytes]:
    """Send ``data`` on a new connection; seconds until the server closed it, and its answer."""
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    answer = b""
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before the end
            sock.sendall(data)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return time.monotonic() - started, answer


def test_slow_and_oversized_headers_and_bodies_get_4xx(server: dict[str, Any]) -> None:
    url = server["url"]
    waited, answer = _raw(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2**20)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(10_000))
    waited, answer = _raw(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ") and b"header fields" in answer, answer[:200]

    waited, answer = _raw(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
    assert answer.startswith(b"HTTP/1.1 408 ") and b"headers" in answer, answer[:200]
    assert EDGE_TIMEOUT_S - 0.5 < waited < EDGE_TIMEOUT_S + 5, waited

    head = b"POST /predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
    waited, answer = _raw(url, head + b'content-length: 100\r\n\r\n{"account_id"')
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"field": "(body)"' in answer, answer[:300]
    assert EDGE_TIMEOUT_S - 0.5 < waited < EDGE_TIMEOUT_S + 5, waited
    assert _request(f"{url}/healthz")[0] == 200  # and the service still answers


def test_out_of_range_inputs_are_refused_naming_the_field(server: dict[str, Any]) -> None:
    url, item = server["url"], server["items"][0]
    for field, value in (("amount", 1e308), ("hour_of_day", -5), ("hour_of_day", 10**12)):
        status, body = _request(f"{url}/predict", {**item, field: value})
        assert status == 422 and body["field"] == field, (field, value, body)
    status, body = _request(f"{url}/predict_batch", {"entities": [item, {**item, "amount": 1e308}]})
    assert status == 422 and body["field"] == "entities.1.amount", body
    schema = _request(f"{url}/docs.json")[1]["components"]["schemas"]["PredictRequest"]
    assert schema["properties"]["hour_of_day"]["maximum"] < 30, schema["properties"]


def _worker_rss(server: dict[str, Any]) -> int:
    import psutil

    children = psutil.Process(server["pid"]).children(recursive=True)
    workers = [p for p in children if "_bentoml_impl.worker" in " ".join(p.cmdline())]
    assert len(workers) == 1, [p.cmdline() for p in children]
    return int(workers[0].memory_info().rss)


def test_metrics_stay_flat_after_thousands_of_unknown_paths(server: dict[str, Any]) -> None:
    import random
    import string

    url = server["url"]
    rng = random.Random(17)

    def scrape() -> list[str]:
        return urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode().splitlines()

    def unknown(count: int) -> None:
        for _ in range(count):
            path = "/" + "".join(rng.choices(string.ascii_lowercase + "/", k=16))
            status, body = _request(f"{url}{path}")
            assert status == 404 and body["field"] == "(path)", (path, status, body)

    unknown(500)  # the worker's allocations settle
    lines, rss = len(scrape()), _worker_rss(server)
    unknown(5000)
    after = scrape()
    assert len(after) == lines, f"{lines} -> {len(after)} lines"
    counted = [m for m in after if m.startswith("modelops_unmatched_requests_total{")]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 5500, counted
    assert abs(_worker_rss(server) - rss) <= 0.05 * rss, (rss, _worker_rss(server))


def test_no_warning_is_logged_per_request(server: dict[str, Any]) -> None:
    url, items = server["url"], server["items"]
    before = len(server["log"].read_text().splitlines())
    for i in range(200):
        status, answer = _request(f"{url}/predict", items[i % len(items)])
        assert status == 200, answer
    time.sleep(1)
    logged = server["log"].read_text().splitlines()[before:]
    warned = [line for line in logged if "Warning" in line or "[WARNING]" in line]
    assert warned == [], warned[:5]


def test_promotion_is_swapped_in_without_dropping_requests(server: dict[str, Any]) -> None:
    url, items = server["url"], server["items"]
    failures: list[Any] = []
    versions: set[str] = set()
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            status, answer = _request(f"{url}/predict", items[1])
            if status != 200:
                failures.append((status, answer))
            else:
                versions.add(answer["model_version"])
            time.sleep(0.05)

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        _hold(server["settings"], "staging", server["baseline"])
        deadline = time.monotonic() + READY_TIMEOUT_S
        while server["baseline"] not in versions and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop.set()
        sender.join()
    assert server["baseline"] in versions, server["log"].read_text()[-3000:]
    assert failures == []
    metrics = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    reloads = [m for m in metrics.splitlines() if m.startswith("modelops_reloads_total{")]
    assert any('outcome="swapped"' in line for line in reloads), reloads


def test_sigterm_writes_every_logged_prediction_before_the_service_exits(
    trained: dict[str, Any],
) -> None:
    """The prediction log is written in batches off the request path; a service stopped
    (SIGTERM to ``modelops serve``, as Kubernetes stops a pod) writes what it still holds before
    it exits. The flush interval here is an hour: every row found was written at shutdown."""
    root: Path = trained["root"]
    settings: Settings = trained["settings"]
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BENTOML_")},
        "MODELOPS_ROOT": str(root),
        "MODELOPS_ACTOR": "tester",
        "MODELOPS_SERVING_LOG_FLUSH_SECONDS": "3600",
        "MODELOPS_SERVING_LOG_FLUSH_ROWS": "100000",
    }
    started = datetime.now(UTC)
    log_path = root / "serve-sigterm.log"
    command = [sys.executable, "-m", "modelops", "serve", PROJECT, "--env", "staging"]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--entities", "60"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    items = trained["items"]
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError):
                if _request(f"{url}/readyz")[0] == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the service did not become ready:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        expected = set()
        for i in range(40):
            request_id = f"sigterm-{i}"
            status, answer = _request(f"{url}/predict", {**items[i % len(items)], "request_id": i})
            assert status == 422, answer  # a number is not a request id: refused, not logged
            status, answer = _request(
                f"{url}/predict", {**items[i % len(items)], "request_id": request_id}
            )
            assert status == 200, answer
            expected.add(request_id)
        status, answer = _request(
            f"{url}/predict_batch", {"entities": items[:5], "request_id": "sigterm-batch"}
        )
        assert status == 200, answer
        expected |= {f"sigterm-batch-{i}" for i in range(5)}
        before = read_prediction_log(
            settings.resolved_prediction_log, started, datetime.now(UTC) + timedelta(minutes=1)
        )
        assert not expected & set(before.get("request_id", [])), "written before the shutdown"
        os.kill(process.pid, signal.SIGTERM)  # to modelops serve alone, as in a pod
        assert process.wait(60) is not None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    logged = read_prediction_log(
        settings.resolved_prediction_log, started, datetime.now(UTC) + timedelta(minutes=1)
    )
    found = expected & set(logged.get("request_id", []))
    assert found == expected, (
        f"{len(expected - found)} predictions lost at shutdown:\n{log_path.read_text()[-3000:]}"
    )
