"""The prediction service under load, next to ``mlflow models serve`` and the in-process floor.

Run with ``make bench`` (``pytest tests/benchmarks -s -p no:cacheprovider``) or alone::

    .venv/bin/python -m pytest tests/benchmarks/test_serving_benchmark.py -s -p no:cacheprovider

Not part of ``make test``. Needs ``wrk`` (Debian: ``apt-get install wrk``; skipped without it,
failed under CI). It builds its own workspace in a temporary directory: default-size
credit_risk data, ``features apply``, ``features materialize``, ``train credit_risk``; the
LightGBM candidate is recorded as production's holder (ledger and alias). Then, on this machine,
with one load generator (``wrk``, one thread, keep-alive connections, a small Lua script that
cycles POST bodies over the latest 2,000 credit applications' companies):

(a) the modelops service: :func:`~modelops.services.serve.plan_serve` (which packages the
    holder: skew check, scorer check, Bento) and ``bentoml serve`` of its Bento, as ``modelops
    serve credit_risk --env production`` runs it (1 worker, 4 threads, access log off);
(b) ``mlflow models serve -m models:/credit_risk/<v> --env-manager local`` (1 uvicorn worker)
    of the same version, each request carrying the features the service would read online: the
    ``dataframe_split`` payloads are built from one online read of every entity beforehand;
(c) the in-process floor, in a fresh process: the online read the service runs (the reader
    :func:`~modelops.integrations.feast.online_reader` picks: direct on SQLite and Redis) plus
    the serving scorer (:func:`~modelops.core.scorer.build_scorer` of the verified artifact), no
    HTTP, one call after the other; Feast's ``get_online_features`` is timed beside it.

(a) and (b) run side by side and are measured in turn (a, b at 1 connection, a, b at 8, ...),
so that both see the same machine, which is shared with other test runs; (c) runs right after,
with no server up. For (a) and (b): p50/p99 latency and requests/s of single-entity requests at
1, 8 and 32 connections, ``BENCH_SERVING_SECONDS`` (10) each after a 2 s warm-up at the same
concurrency;
rows/s of 1,000-entity batches (``/predict_batch``; for (b) a 1,000-row ``dataframe_split``)
on one connection; the resident memory (``VmRSS``, peak ``VmHWM``) and CPU time of the server
process and its descendants (BentoML's worker, uvicorn), read from ``/proc``. For (c): the same
single and batch calls, and where the time of a request goes without HTTP (the Feast read, the
scorer, the service's own predictor with its prediction log, the request and response models of
the API). Then (a) restarted at 8 connections, as shipped and with one setting changed at a
time, to show what each buys: BentoML's defaults (access log on; 1 thread; an OpenTelemetry
span on the prediction routes, ``MODELOPS_SERVING_TRACE_PREDICTIONS=true``) and 2 workers.

Targets at 8 connections: (a) requests/s >= 5x (b); (a) p99 <= 10 ms (on a quiet machine);
(a) server CPU <= 1.0 ms per request; (a) batch rows/s >= 70 % of (c)'s; RSS <= 400 MiB per
worker. Asserted always: everything ran and no request failed
(wrk's socket errors and non-2xx answers are counted), and (a) and (b) give the same score for
the same entity. ``BENCH_ASSERT_SERVING=1`` also asserts the targets.

Every server runs in its own process group and is stopped by that group (SIGTERM, then
SIGKILL), its descendants too, on failure as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

PROJECT = "credit_risk"
ENVIRONMENT = "production"
CONCURRENCY = (1, 8, 32)
TARGET_CONCURRENCY = 8
BATCH = 1000
ENTITIES = 2000
WARMUP_SECONDS = 2
READY_TIMEOUT_S = 300.0
TARGET_RATIO = 5.0
TARGET_P99_MS = 10.0
TARGET_BATCH_SHARE = 0.7
TARGET_CPU_MS = 1.0
TARGET_RSS_MIB = 400.0
MIB = 2**20
WORKERS_2 = "2 workers (4 threads each)"
WRK = shutil.which("wrk")

# Read at import: the workspace fixture clears every MODELOPS_* variable while it runs.
ASSERT_TARGETS = os.environ.get("BENCH_ASSERT_SERVING") == "1"
SECONDS = int(os.environ.get("BENCH_SERVING_SECONDS", "10"))
VARIANTS = os.environ.get("BENCH_SERVING_VARIANTS", "1") != "0"
"""``BENCH_SERVING_VARIANTS=0`` skips the runs of (a) with one setting changed."""

LUA = """
-- POST bodies read from WRK_BODIES (one JSON document a line), cycled per request.
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "mean_us": %.1f, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""


# --------------------------------------------------------------------------------------------
# (c) the in-process floor, in a fresh process (this file run as a script, ``--worker``)
# --------------------------------------------------------------------------------------------


def _percentiles(ms: list[float]) -> dict[str, float]:
    import numpy as np

    values = np.asarray(ms)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
        "per_s": float(1000.0 / values.mean()),
        "n": len(ms),
    }


def _timed(calls: int, function: Any, warmup: int = 50) -> dict[str, float]:
    for i in range(warmup):
        function(i)
    ms = []
    for i in range(calls):
        started = time.perf_counter()
        function(i)
        ms.append((time.perf_counter() - started) * 1000)
    return _percentiles(ms)


def _worker(spec: dict[str, Any]) -> None:
    """(c): the floor and the parts of a request, without HTTP; JSON to ``spec["out"]``."""
    from modelops.integrations.feast import (
        FeatureRepo,
        online_reader,
        open_store,
        service_batch_features,
    )
    from modelops.serving.config import load_config
    from modelops.serving.http import build_models
    from modelops.serving.online import FeastOnline
    from modelops.serving.prediction_log import PredictionLog, open_sink
    from modelops.serving.predictor import Predictor, load_release

    release_dir = Path(spec["release"])
    bodies: list[dict[str, Any]] = spec["bodies"]
    calls = int(spec["calls"])
    release = load_release(release_dir)
    manifest = release.manifest
    scorer = release.model.scorer
    names = list(release.model.entry.feature_names)
    repo = Path(os.environ["MODELOPS_SERVING_FEATURE_REPO"])
    store = open_store(
        FeatureRepo(
            path=repo,
            config_file=Path(os.environ["MODELOPS_SERVING_FEATURE_STORE_YAML"]),
            variables=os.environ,
        )
    )
    service = store.get_feature_service(manifest.feature_service)
    n = len(bodies)

    reader = online_reader(store, service, service_batch_features(store, service))

    def sdk_read(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        return store.get_online_features(features=service, entity_rows=rows).to_dict()

    def read(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        return reader.read(rows).columns

    def floor_one(i: int) -> float:
        columns = read([bodies[i % n]])
        return scorer.score_one({name: columns[name][0] for name in names})

    batches = [bodies[(k * BATCH) % n :][:BATCH] for k in range(4)]
    batches = [b if len(b) == BATCH else (b + bodies)[:BATCH] for b in batches]

    def floor_batch(k: int) -> Any:
        columns = read(batches[k % len(batches)])
        return scorer.score_columns({name: columns[name] for name in names})

    result: dict[str, Any] = {"scorer": scorer.kind, "features": names, "reader": reader.kind}
    result["floor_single"] = _timed(calls, floor_one)
    result["floor_batch"] = _timed(int(spec["batch_calls"]), floor_batch, warmup=2)

    # Where a request's time goes without HTTP.
    features = [
        {name: values[0] for name, values in read([b]).items()} for b in bodies[: min(n, 500)]
    ]
    batch_columns = read(batches[0])
    online = FeastOnline.open(release_dir, manifest, load_config())
    log_dir = Path(spec["scratch"]) / "worker-predictions"
    prediction_log = PredictionLog(open_sink(str(log_dir)))
    predictor = Predictor(release, online, prediction_log=prediction_log)
    api = build_models(manifest)
    body_json = [json.dumps(b) for b in bodies[:500]]
    batch_body = json.dumps({"entities": batches[0]})
    answer = predictor.predict(bodies[0])
    batch_answer = predictor.predict_batch(batches[0])

    def respond_one(_: int) -> bytes:
        return api.predict_response.model_validate(answer).model_dump_json().encode()

    def respond_batch(_: int) -> bytes:
        return api.batch_response.model_validate(batch_answer).model_dump_json().encode()

    def request_batch(_: int) -> Any:
        parsed = api.batch_request.model_validate_json(batch_body)
        return [e.model_dump() for e in parsed.entities]  # type: ignore[attr-defined]

    result["parts_single"] = {
        "Feast get_online_features + to_dict": _timed(calls, lambda i: sdk_read([bodies[i % n]])),
        f"online read, {reader.kind} reader": _timed(calls, lambda i: read([bodies[i % n]])),
        "service online read (FeastOnline.read)": _timed(
            calls, lambda i: online.read([bodies[i % n]])
        ),
        "scorer.score_one": _timed(calls, lambda i: scorer.score_one(features[i % len(features)])),
        "Predictor.predict (read, score, decide, log)": _timed(
            calls, lambda i: predictor.predict(bodies[i % n])
        ),
        "request model (validate JSON)": _timed(
            calls, lambda i: api.predict_request.model_validate_json(body_json[i % len(body_json)])
        ),
        "response model (validate + dump JSON)": _timed(calls, respond_one),
    }
    batch_calls = int(spec["batch_calls"])
    result["parts_batch"] = {
        "Feast get_online_features + to_dict": _timed(
            batch_calls, lambda k: sdk_read(batches[k % len(batches)]), warmup=2
        ),
        f"online read, {reader.kind} reader": _timed(
            batch_calls, lambda k: read(batches[k % len(batches)]), warmup=2
        ),
        "service online read (FeastOnline.read)": _timed(
            batch_calls, lambda k: online.read(batches[k % len(batches)]), warmup=2
        ),
        "scorer.score_columns": _timed(
            batch_calls,
            lambda k: scorer.score_columns({name: batch_columns[name] for name in names}),
            warmup=2,
        ),
        "Predictor.predict_batch (read, score, decide, log)": _timed(
            batch_calls, lambda k: predictor.predict_batch(batches[k % len(batches)]), warmup=2
        ),
        "request model (validate JSON, dump items)": _timed(batch_calls, request_batch, warmup=2),
        "response model (validate + dump JSON)": _timed(batch_calls, respond_batch, warmup=2),
    }
    prediction_log.close()
    # the scores the service will give, to compare the three answers for the same entity
    result["scores"] = [floor_one(i) for i in range(5)]
    Path(spec["out"]).write_text(json.dumps(result))


# --------------------------------------------------------------------------------------------
# servers, processes and wrk
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def _tree(root: int) -> list[int]:
    """A process and all its descendants (BentoML's workers run in a session of their own, so
    the server's process group alone misses them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}").exists():
            found.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(found)


@dataclass
class ProcessInfo:
    pid: int
    command: str
    rss: int = 0
    peak: int = 0
    cpu_s: float = 0.0


def _process(pid: int) -> ProcessInfo | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    words = [w.decode(errors="replace") for w in raw if w]
    command = " ".join(Path(w).name if i == 0 else w for i, w in enumerate(words))[:120]
    info = ProcessInfo(pid, command)
    for line in status:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            kib = int(value.split()[0]) * 1024
            if key == "VmRSS":
                info.rss = kib
            else:
                info.peak = kib
    fields = stat[stat.rindex(")") + 2 :].split()
    info.cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return info


def _processes(root: int) -> list[ProcessInfo]:
    return [p for p in (_process(pid) for pid in _tree(root)) if p is not None]


def _cpu_seconds(root: int) -> float:
    return sum(p.cpu_s for p in _processes(root))


def _stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM to the server's process group, SIGKILL after ``timeout``; then SIGKILL to any
    of its descendants still alive (a worker in a session of its own)."""
    descendants = [pid for pid in _tree(process.pid) if pid != process.pid]
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in descendants):
        time.sleep(0.2)
    for pid in descendants:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")[:500]


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise AssertionError(
                f"{url}: the server exited ({process.returncode}):\n{log.read_text()[-4000:]}"
            )
        with contextlib.suppress(OSError):
            if _get(url) == 200:
                return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(
        f"{url}: not ready after {READY_TIMEOUT_S:.0f} s:\n{log.read_text()[-4000:]}"
    )


@dataclass
class Run:
    """One wrk run: latencies in ms, throughput per second, failures, server CPU per request."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    failed: int
    errors: dict[str, int]
    cpu_ms_per_request: float

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan


def _wrk(url: str, bodies: Path, connections: int, seconds: int, script: Path, root: int) -> Run:
    command = [
        str(WRK),
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    env = {**os.environ, "WRK_BODIES": str(bodies)}
    cpu_before = _cpu_seconds(root)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 90)
    cpu = _cpu_seconds(root) - cpu_before
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise AssertionError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    errors = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")}
    return Run(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        failed=sum(errors.values()),
        errors=errors,
        cpu_ms_per_request=cpu * 1000 / max(int(data["requests"]), 1),
    )


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    single: Path
    batch: Path
    predict_path: str
    batch_path: str
    runs: dict[int, Run] = field(default_factory=dict)
    batch_run: Run | None = None
    processes: list[ProcessInfo] = field(default_factory=list)
    ready_s: float = 0.0

    def measure(self, script: Path, levels: tuple[int, ...], batch: bool = True) -> None:
        root = self.process.pid
        for connections in levels:
            target = f"{self.url}{self.predict_path}"
            _wrk(target, self.single, connections, WARMUP_SECONDS, script, root)
            self.runs[connections] = _wrk(target, self.single, connections, SECONDS, script, root)
            self._alive()
        if batch:
            target = f"{self.url}{self.batch_path}"
            _wrk(target, self.batch, 1, WARMUP_SECONDS, script, root)
            self.batch_run = _wrk(target, self.batch, 1, SECONDS, script, root)
            self._alive()
        self.processes = _processes(root)

    def _alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name}: the server exited ({self.process.returncode})")


@contextlib.contextmanager
def _serving(
    name: str,
    command_or_plan: Any,
    port: int,
    log: Path,
    ready_path: str,
    **paths: Any,
) -> Iterator[Server]:
    """A server started in its own process group, stopped (with its workers) on exit."""
    from modelops.services.serve import start_server

    with log.open("w") as out:
        if isinstance(command_or_plan, list):
            command, env = command_or_plan
            process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        else:
            process = start_server(command_or_plan, port, stdout=out)
    try:
        url = f"http://127.0.0.1:{port}"
        server = Server(name=name, url=url, process=process, **paths)
        server.ready_s = _wait_ready(f"{url}{ready_path}", process, log)
        yield server
    finally:
        _stop(process)


# --------------------------------------------------------------------------------------------
# the workspace
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """credit_risk trained, its candidate holding production, the online store materialized."""
    import importlib.util

    from support import skip_or_fail  # here: the worker runs this file without tests/ on the path

    for module in ("bentoml", "mlflow"):
        if importlib.util.find_spec(module) is None:
            skip_or_fail(f"{module} is not installed")
    if WRK is None:
        skip_or_fail("wrk is not installed (Debian: apt-get install wrk)")

    from modelops.config.settings import load_settings
    from modelops.integrations import mlflow as mlflow_io
    from modelops.integrations.database import LedgerEntry
    from modelops.services import data, features, train
    from modelops.services.context import ledger as ledger_for
    from modelops.services.context import tracking
    from support import copy_workspace

    base = tmp_path_factory.mktemp("serving-bench")
    root = copy_workspace(base / "repo")
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith(("MODELOPS_", "BENTOML_"))]:
            env.delenv(name)
        env.setenv("MODELOPS_ROOT", str(root))
        env.setenv("MODELOPS_ACTOR", "benchmark")
        settings = load_settings(root)
        started = time.perf_counter()
        summaries = data.generate(settings, [PROJECT])
        features.apply(settings)
        end = max(t.end for s in summaries for t in s.tables) + timedelta(seconds=1)
        features.materialize(settings, end)
        result = train.train(settings, PROJECT)
        version = result.candidate.version
        ledger = ledger_for(settings)  # keyed, as every command opens it: packaging signs with it
        ledger.transition(
            LedgerEntry("promote", PROJECT, ENVIRONMENT, "benchmark", "benchmark", None, version),
            expected=ledger.holder(PROJECT, ENVIRONMENT),
        )
        with mlflow_io.session(tracking(settings)) as client:
            mlflow_io.set_alias(client, PROJECT, ENVIRONMENT, version)
        print(
            f"\nworkspace {root}: {PROJECT} v{version} trained and holding {ENVIRONMENT} in "
            f"{time.perf_counter() - started:.0f} s"
        )
        yield {"settings": settings, "version": version, "scratch": base / "scratch"}


def _bodies(settings: Any, scratch: Path) -> dict[str, Any]:
    """Request bodies of the latest applications whose company the online store holds, and for
    mlflow the same entities' online features as ``dataframe_split`` payloads."""
    from modelops.integrations import feast as feast_io
    from modelops.services.context import feature_repo
    from modelops.services.traffic import request_bodies

    bodies = request_bodies(settings, PROJECT, ENTITIES)
    store = feast_io.open_store(feature_repo(settings))
    service = store.get_feature_service("credit_risk_v1")
    online = store.get_online_features(features=service, entity_rows=bodies)
    columns = online.to_dict()
    proto = online.proto
    statuses = dict(zip(proto.metadata.feature_names.val, proto.results, strict=True))
    present = [
        i
        for i in range(len(bodies))
        if all(statuses[name].statuses[i] not in (3, 4) for name in statuses)  # NOT_FOUND, AGE
    ]
    return {
        "bodies": [bodies[i] for i in present],
        "columns": {name: [values[i] for i in present] for name, values in columns.items()},
        "skipped": len(bodies) - len(present),
    }


def _lines(path: Path, documents: list[Any]) -> Path:
    path.write_text("".join(json.dumps(d, separators=(",", ":")) + "\n" for d in documents))
    return path


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def _row(name: str, run: Run | None, rows: int = 1) -> str:
    if run is None:
        return f"  {name:<44}{'-':>10}"
    rate = run.per_s * rows
    return (
        f"  {name:<44}{run.p50_ms:>9.2f}{run.p99_ms:>9.2f}{run.max_ms:>9.1f}{rate:>11,.0f}"
        f"{run.cpu_ms_per_request:>10.2f}{run.requests:>9,}{run.failed:>7}"
    )


def _process_lines(server: Server) -> list[str]:
    return [
        f"    pid {p.pid:<8} RSS {p.rss / MIB:>6.0f} MiB  peak {p.peak / MIB:>6.0f} MiB  "
        f"cpu {p.cpu_s:>7.1f} s  {p.command}"
        for p in server.processes
    ]


def _worker_rss(server: Server) -> float:
    """The largest peak RSS among the processes that serve requests (the biggest ones: a
    supervisor or CLI wrapper is small)."""
    return max((p.peak for p in server.processes), default=0) / MIB


def _part_lines(parts: dict[str, dict[str, float]]) -> list[str]:
    return [
        f"    {name:<52}{v['p50_ms']:>9.3f}{v['p99_ms']:>9.3f}{v['mean_ms']:>9.3f}"
        for name, v in parts.items()
    ]


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------


def test_serving_benchmark(workspace: dict[str, Any]) -> None:
    from modelops.integrations import bentoml as bentoml_io
    from modelops.services.serve import plan_serve

    settings = workspace["settings"]
    version = workspace["version"]
    scratch: Path = workspace["scratch"]
    scratch.mkdir(parents=True, exist_ok=True)
    script = scratch / "bodies.lua"
    script.write_text(LUA)
    load_before = _load_average()

    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith(("MODELOPS_", "BENTOML_"))]:
            env.delenv(name)
        env.setenv("MODELOPS_ROOT", str(settings.root))
        env.setenv("MODELOPS_ACTOR", "benchmark")
        started = time.perf_counter()
        plan = plan_serve(settings, PROJECT, ENVIRONMENT)
        package_s = time.perf_counter() - started
        bento = bentoml_io.find_bento(plan.store, plan.bento_tag)
        assert bento is not None, plan.bento_tag
        release = bento.path / "src" / "release"
        assert (release / "manifest.json").is_file(), release
        found = _bodies(settings, scratch)
    bodies: list[dict[str, Any]] = found["bodies"]
    columns: dict[str, list[Any]] = found["columns"]
    assert len(bodies) >= BATCH, f"only {len(bodies)} entities with online features"
    server_env = {**plan.server_env, **plan.store.environment()}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELOPS_", "BENTOML_"))}

    from modelops.serving.manifest import read_manifest

    features = list(read_manifest(release).model.feature_names)
    single = _lines(scratch / "single.jsonl", bodies)
    batch = _lines(scratch / "batch.jsonl", [{"entities": bodies[:BATCH]}])
    mlflow_single = _lines(
        scratch / "mlflow-single.jsonl",
        [
            {"dataframe_split": {"columns": features, "data": [[columns[f][i] for f in features]]}}
            for i in range(len(bodies))
        ],
    )
    mlflow_batch = _lines(
        scratch / "mlflow-batch.jsonl",
        [
            {
                "dataframe_split": {
                    "columns": features,
                    "data": [[columns[f][i] for f in features] for i in range(BATCH)],
                }
            }
        ],
    )
    service_paths = {
        "single": single,
        "batch": batch,
        "predict_path": "/predict",
        "batch_path": "/predict_batch",
    }
    mlflow_port = _free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    mlflow_command = [
        str(mlflow_cli) if mlflow_cli.exists() else "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{PROJECT}/{version}",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(mlflow_port),
    ]
    mlflow_env = {
        **base_env,
        # mlflow runs `uvicorn` from PATH: this interpreter's
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), base_env.get("PATH", "")]),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "MLFLOW_REGISTRY_URI": settings.registry_uri,
    }
    mlflow_paths = {
        "single": mlflow_single,
        "batch": mlflow_batch,
        "predict_path": "/invocations",
        "batch_path": "/invocations",
    }

    # (a) the modelops service as `modelops serve` runs it and (b) mlflow models serve, both up;
    # their runs alternate, so that both see the same machine (it is shared)
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(
            _serving(
                "modelops", plan, _free_port(), scratch / "service.log", "/readyz", **service_paths
            )
        )
        b = stack.enter_context(
            _serving(
                "mlflow",
                [mlflow_command, mlflow_env],
                mlflow_port,
                scratch / "mlflow.log",
                "/ping",
                **mlflow_paths,
            )
        )
        status, answer = _post(f"{a.url}/predict", bodies[0])
        assert status == 200, answer
        service_score = answer["score"]
        status, answer = _post(f"{a.url}/predict_batch", {"entities": bodies[:BATCH]})
        assert status == 200 and len(answer["predictions"]) == BATCH, str(answer)[:500]
        first = json.loads(mlflow_single.read_text().splitlines()[0])
        status, answer = _post(f"{b.url}/invocations", first)
        assert status == 200, answer
        mlflow_score = float(answer["predictions"][0][1])  # predict_proba: [[p0, p1]]
        for connections in CONCURRENCY:
            for server in (a, b):
                server.measure(script, (connections,), batch=False)
        for server in (a, b):
            server.measure(script, (), batch=True)

    # (c) the floor, right after, in a fresh process, no server running
    out = scratch / "floor.json"
    spec = {
        "release": str(release),
        "bodies": bodies,
        "calls": 1000,
        "batch_calls": 10,
        "scratch": str(scratch),
        "out": str(out),
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
        env={**base_env, **server_env},
        cwd=scratch,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise AssertionError(f"floor worker failed ({done.returncode}):\n{tail}")
    floor = json.loads(out.read_text())

    # (a') one setting changed at a time, at 8 connections, the shipped one restarted first
    variants: dict[str, Server] = {}
    if VARIANTS:
        for label, extra in (
            ("as shipped (no span on /predict*, access log off, 4 threads, 1 worker)", {}),
            (
                "spans on /predict* (BentoML default)",
                {"MODELOPS_SERVING_TRACE_PREDICTIONS": "true"},
            ),
            ("access log on (BentoML default)", {"MODELOPS_SERVING_ACCESS_LOG": "true"}),
            ("1 thread (BentoML default)", {"MODELOPS_SERVING_THREADS": "1"}),
            (WORKERS_2, {"MODELOPS_SERVING_WORKERS": "2"}),
        ):
            variant_plan = dataclasses.replace(plan, server_env={**plan.server_env, **extra})
            log = scratch / f"service-{len(variants)}.log"
            with _serving(label, variant_plan, _free_port(), log, "/readyz", **service_paths) as v:
                v.measure(script, (TARGET_CONCURRENCY,), batch=False)
                variants[label] = v

    # report
    load_after = _load_average()
    c = TARGET_CONCURRENCY
    ratio = a.runs[c].per_s / b.runs[c].per_s
    floor_rows = floor["floor_batch"]["per_s"] * BATCH
    assert a.batch_run is not None and b.batch_run is not None
    batch_rows = a.batch_run.per_s * BATCH
    batch_share = batch_rows / floor_rows
    rss = _worker_rss(a)
    variant_rss = {label: _worker_rss(v) for label, v in variants.items()}
    worker_rss_2 = variants.get(WORKERS_2)
    checks = {
        f"(a) requests/s >= {TARGET_RATIO:.0f}x (b) at {c} connections": (
            ratio >= TARGET_RATIO,
            f"{ratio:.2f}x",
        ),
        f"(a) p99 <= {TARGET_P99_MS:.0f} ms at {c} connections": (
            a.runs[c].p99_ms <= TARGET_P99_MS,
            f"{a.runs[c].p99_ms:.2f} ms",
        ),
        f"(a) server CPU <= {TARGET_CPU_MS:.1f} ms per request at {c} connections": (
            a.runs[c].cpu_ms_per_request <= TARGET_CPU_MS,
            f"{a.runs[c].cpu_ms_per_request:.2f} ms",
        ),
        f"(a) batch rows/s >= {TARGET_BATCH_SHARE:.0%} of (c)": (
            batch_share >= TARGET_BATCH_SHARE,
            f"{batch_share:.0%}",
        ),
        f"service RSS <= {TARGET_RSS_MIB:.0f} MiB per worker": (
            rss <= TARGET_RSS_MIB,
            f"{rss:.0f} MiB peak",
        ),
    }
    fs = floor["floor_single"]
    header = (
        f"  {'':<44}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'/s':>11}{'cpu ms':>10}"
        f"{'requests':>9}{'failed':>7}"
    )
    lines = [
        "",
        f"== prediction service: {PROJECT} v{version} ({floor['scorer']} scorer, "
        f"{len(features)} features, {floor['reader']} online reader), {len(bodies):,} entities "
        "cycled ==",
        f"machine: {os.cpu_count()} cores, load average {load_before} before / {load_after} "
        f"after; wrk 1 thread, {SECONDS} s per run after {WARMUP_SECONDS} s warm-up; "
        f"package {package_s:.0f} s; ready (a) {a.ready_s:.0f} s, (b) {b.ready_s:.0f} s",
        "single-entity requests (/s = requests/s; cpu ms = server CPU time per request):",
        header,
    ]
    for connections in CONCURRENCY:
        lines.append(_row(f"(a) modelops service, {connections} conn.", a.runs[connections]))
    for connections in CONCURRENCY:
        lines.append(_row(f"(b) mlflow models serve, {connections} conn.", b.runs[connections]))
    lines.append(
        f"  {'(c) in-process floor, sequential':<44}{fs['p50_ms']:>9.2f}{fs['p99_ms']:>9.2f}"
        f"{'':>9}{fs['per_s']:>11,.0f}"
    )
    fb = floor["floor_batch"]
    lines += [
        f"batches of {BATCH:,} entities, 1 connection (/s = rows/s; latency per batch):",
        header,
        _row("(a) modelops /predict_batch", a.batch_run, BATCH),
        _row("(b) mlflow /invocations (dataframe_split)", b.batch_run, BATCH),
        f"  {'(c) in-process floor':<44}{fb['p50_ms']:>9.2f}{fb['p99_ms']:>9.2f}{'':>9}"
        f"{fb['per_s'] * BATCH:>11,.0f}",
    ]
    if variants:
        lines += [f"(a) restarted with one setting changed, {c} connections:", header]
        lines += [_row(label, v.runs[c]) for label, v in variants.items()]
    lines += [
        "processes (after the runs; peak = VmHWM):",
        "  (a) modelops service:",
        *_process_lines(a),
        "  (b) mlflow models serve:",
        *_process_lines(b),
    ]
    if worker_rss_2 is not None:
        lines += ["  (a) with 2 workers:", *_process_lines(worker_rss_2)]
    lines += [
        "(c) where a single request's time goes without HTTP (ms):",
        f"    {'':<52}{'p50':>9}{'p99':>9}{'mean':>9}",
        *_part_lines(floor["parts_single"]),
        f"(c) a batch of {BATCH:,} without HTTP (ms):",
        *_part_lines(floor["parts_batch"]),
        f"same entity: (a) score {service_score!r}, (b) {mlflow_score!r}, (c) "
        f"{floor['scores'][0]!r}",
        f"ratios at {c} connections: (a)/(b) requests/s {ratio:.2f}x; p99 (a) "
        f"{a.runs[c].p99_ms:.2f} ms vs (b) {b.runs[c].p99_ms:.2f} ms; batch rows/s (a)/(c) "
        f"{batch_share:.0%}, (a)/(b) {batch_rows / (b.batch_run.per_s * BATCH):.1f}x; "
        f"(a)/(c) single requests/s {a.runs[1].per_s / fs['per_s']:.0%} at 1 conn.",
        "targets:",
        *[
            f"  {'met    ' if ok else 'NOT met'} {name}: {shown}"
            for name, (ok, shown) in checks.items()
        ],
    ]
    if variants:
        lines.append(
            f"  requests/s at {c} connections over (b)'s: "
            + ", ".join(
                f"{label}: {v.runs[c].per_s / b.runs[c].per_s:.2f}x"
                for label, v in variants.items()
            )
        )
    if variant_rss:
        lines.append(
            "  peak RSS of the largest process per variant: "
            + ", ".join(f"{label}: {value:.0f} MiB" for label, value in variant_rss.items())
        )
    print("\n".join(lines), flush=True)

    servers = [a, b, *variants.values()]
    failed = {
        f"{s.name} {k}": r.errors
        for s in servers
        for k, r in [*s.runs.items(), ("batch", s.batch_run)]
        if r is not None and r.failed
    }
    assert not failed, f"requests failed: {failed}"
    assert all(r.requests > 0 for s in servers for r in s.runs.values())
    assert abs(service_score - mlflow_score) <= 1e-9, (service_score, mlflow_score)
    assert abs(service_score - floor["scores"][0]) <= 1e-9, (service_score, floor["scores"][0])
    if ASSERT_TARGETS:
        missed = [f"{name}: {shown}" for name, (ok, shown) in checks.items() if not ok]
        assert not missed, "targets missed: " + "; ".join(missed)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    _worker(json.loads(sys.argv[2]))
