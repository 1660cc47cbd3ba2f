"""The BentoML service of one packaged project (``modelops.serving.service:ModelService``).

Endpoints:

- ``POST /predict``: the entity key and request-time fields → online features of the project's
  feature service → score → decision, with the model version and a request id;
- ``POST /predict_batch``: ``{"entities": [...]}``, at most ``serving.max_batch``;
- ``GET /healthz``: the process answers; ``GET /readyz``: the models are loaded and verified
  and the online store answers;
- ``GET /metrics``: Prometheus, BentoML's own series and :mod:`modelops.serving.metrics`.

The release (manifest, samples, Feast config) is found at import (:func:`locate_release`), so
the request schema and the OpenAPI document follow the packaged project; the models, the
feature store and the prediction log are opened when BentoML starts the service, never at
import, so ``bentoml build`` and ``modelops --help`` stay light.

The release is verified at import against its signed record
(:func:`~modelops.serving.integrity.verify_release`, with the public key in
``MODELOPS_SERVING_RELEASE_PUBLIC_KEY``): every file, the model folders and the code, before
anything is unpickled. A release that differs, or any other failure to start, stops the server
once with one line and exit code 3 (:mod:`modelops.serving.startup`): BentoML's arbiter never
restarts a refused worker, and the port is closed. A staged release is verified the same way
before it is swapped in.

BentoML defaults changed here, each for latency or for the caller:

- access logging off (``MODELOPS_SERVING_ACCESS_LOG=true`` turns it on): one formatted log line
  per request costs more than the model does, and the prediction log records every request;
- ``/predict`` and ``/predict_batch`` answered by the request guard itself, with the request
  model it has just validated (:meth:`ModelService.answer`): BentoML's handler parsed and
  validated every body a second time, hopped to a thread and back, validated the answer and
  serialised it through four middlewares, about half of the worker's CPU per request (issue 17).
  A single prediction runs on the event loop (its online read is one round trip, 0.13 ms on
  SQLite; two thread hand-overs cost more under the GIL), a batch in a thread. With
  ``MODELOPS_SERVING_ACCESS_LOG`` or ``MODELOPS_SERVING_TRACE_PREDICTIONS`` on, the requests go
  through BentoML's route as before, so that its access log and spans see them;
- ``threads`` 4 instead of 1, for what BentoML answers itself;
- the heap frozen once started (``gc.freeze``): a full collection walked the ~300,000 objects
  of Feast, pandas, LightGBM and BentoML, 0.1–0.6 s during which no request was answered, the
  p99 of a busy service (issue 17);
- ``workers`` 1 (``MODELOPS_SERVING_WORKERS``): the model and Feast registry are loaded once per
  worker; scale with replicas rather than workers on small pods;
- no OpenTelemetry span on ``/predict`` and ``/predict_batch``
  (``MODELOPS_SERVING_TRACE_PREDICTIONS=true`` keeps it): BentoML builds one per request even
  with no exporter configured, about a third of the worker's CPU per request;
- request-duration buckets from 0.5 ms: BentoML's default buckets cannot tell 2 ms from 8 ms;
- liveness and readiness at ``/healthz`` and ``/readyz`` (BentoML: ``/livez``, ``/readyz``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any, cast

import bentoml
from pydantic.warnings import PydanticDeprecatedSince211
from starlette.responses import JSONResponse

from modelops.core.errors import ModelopsError
from modelops.core.release import bento_name
from modelops.core.release_record import ReleaseRecord
from modelops.core.telemetry import disable_telemetry
from modelops.serving import edge
from modelops.serving.artifact import model_folder
from modelops.serving.config import load_config
from modelops.serving.http import ITEM_BYTES, RequestGuard, build_models
from modelops.serving.integrity import verify_release
from modelops.serving.manifest import locate_release, read_manifest, read_pointer
from modelops.serving.metrics import LATENCY_BUCKETS
from modelops.serving.openapi import Contract, contract
from modelops.serving.startup import exit_refused_at_exit, refuse_start, settle_heap

log = logging.getLogger("modelops.serving")


def _silence_model_fields_warning() -> None:
    """BentoML 1.4 reads ``model_fields`` from the request model's instance on every request
    (``_bentoml_impl/server/app.py``), which pydantic >= 2.11 warns about; Feast, imported when
    the service opens its online store, puts ``once`` for every DeprecationWarning at the front
    of the filters, and the warning was logged about every other request. Only that warning,
    from that module, is silenced, in front of Feast's filter (so: after Feast is imported)."""
    warnings.filterwarnings(
        "ignore",
        message=r"Accessing the 'model_fields' attribute on the instance is deprecated",
        category=PydanticDeprecatedSince211,
        module=r"_bentoml_impl\.server\.app",
    )


# No usage reporting from the libraries this process imports. BentoML decides for its own
# before it imports this module, from the pod's environment: the chart sets the same variables.
disable_telemetry(os.environ)
exit_refused_at_exit()
_SERVICES: list[Any] = []  # the instance of this worker, once started
CODE_DIR = Path(__file__).resolve().parents[1]
"""The ``modelops`` package this service runs: a Bento's own release lists its files."""


def verified(release: Path) -> ReleaseRecord:
    """``release`` checked against its signed record (raises ReleaseRefusedError)."""
    return verify_release(
        release,
        CONFIG.release_public_key,
        lambda entry: model_folder(release, entry),
        CODE_DIR,
    )


try:
    CONFIG = load_config()
    RELEASE_DIR = locate_release(CONFIG.release, CONFIG.watch)
    RECORD = verified(RELEASE_DIR)
    MANIFEST = read_manifest(RELEASE_DIR)
    CONFIG.check_release(MANIFEST.project, MANIFEST.model.version, RELEASE_DIR)
except ModelopsError as exc:
    refuse_start(str(exc))
API = build_models(MANIFEST)  # BentoML's input and output models: the shape, never the ranges
TITLE = bento_name(MANIFEST.project)
_CONTRACT: list[Contract] = [contract(MANIFEST, TITLE)]  # the guard's; replaced on a reload


@bentoml.service(
    name=TITLE,
    workers=CONFIG.workers,
    threads=CONFIG.threads,
    logging={"access": {"enabled": CONFIG.access_log}},
    tracing=CONFIG.tracing,
    endpoints={"livez": "/healthz", "readyz": "/readyz"},
    traffic={"timeout": 30},
    metrics={"enabled": True, "duration": {"buckets": list(LATENCY_BUCKETS)}},
)
class ModelService:
    """Predictions of one project's served version (and its shadow) from online features."""

    def __init__(self) -> None:
        try:
            self._start()
        except Exception as exc:
            text = str(exc) if isinstance(exc, ModelopsError) else f"{type(exc).__name__}: {exc}"
            refuse_start(f"start refused: {text}")

    def _start(self) -> None:
        from modelops.serving.metrics import PrometheusMetrics
        from modelops.serving.online import FeastOnline
        from modelops.serving.prediction_log import PredictionLog, open_sink
        from modelops.serving.predictor import Predictor, load_release

        self.metrics = PrometheusMetrics(MANIFEST.project, CONFIG.environment)
        _SERVICES.append(self)
        release = load_release(RELEASE_DIR)
        self.online = FeastOnline.open(RELEASE_DIR, release.manifest, CONFIG)
        self.prediction_log = PredictionLog(
            open_sink(CONFIG.prediction_log),
            flush_rows=CONFIG.log_flush_rows,
            flush_seconds=CONFIG.log_flush_seconds,
            max_queue=CONFIG.log_queue,
            on_rows=self.metrics.log_rows,
        )
        self.predictor = Predictor(
            release,
            self.online,
            prediction_log=self.prediction_log,
            metrics=self.metrics,
            environment=CONFIG.environment,
        )
        _silence_model_fields_warning()
        settle_heap()
        self._ready_until = 0.0
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        if CONFIG.watch is not None:
            self._watcher = threading.Thread(
                target=self._watch, args=(CONFIG.watch,), name="release-watch", daemon=True
            )
            self._watcher.start()
        log.info(
            "serving %s v%s (scorer %s)%s from %s",
            MANIFEST.registered_model,
            release.model.version,
            release.model.scorer.kind,
            f", shadow v{release.shadow.version}" if release.shadow else "",
            RELEASE_DIR,
        )

    @bentoml.api(route="/predict", input_spec=API.predict_request, output_spec=API.predict_response)
    def predict(self, **fields: Any) -> Any:
        """Score one entity from its online features."""
        from modelops.serving.predictor import RequestError

        try:
            return API.predict_response.model_validate(self.predictor.predict(fields))
        except RequestError as exc:
            return JSONResponse(_body(exc), status_code=exc.status)

    @bentoml.api(
        route="/predict_batch", input_spec=API.batch_request, output_spec=API.batch_response
    )
    def predict_batch(self, entities: list[Any], request_id: str | None = None) -> Any:
        """Score many entities with one online read."""
        from modelops.serving.predictor import RequestError

        items = [e.model_dump() if hasattr(e, "model_dump") else dict(e) for e in entities]
        try:
            answer = self.predictor.predict_batch(items, request_id)
            return API.batch_response.model_validate(answer)
        except RequestError as exc:
            return JSONResponse(_body(exc), status_code=exc.status)

    def answer(self, path: str, request: Any) -> tuple[int, dict[str, Any]]:
        """``/predict`` or ``/predict_batch`` from the request model the guard validated."""
        from modelops.serving.predictor import RequestError

        try:
            if path == "/predict":
                return 200, self.predictor.predict(request.model_dump())
            fields = request.model_dump()
            return 200, self.predictor.predict_batch(fields["entities"], fields["request_id"])
        except RequestError as exc:
            return exc.status, _body(exc)
        except Exception:
            log.exception("%s failed", path)
            return 500, {"error": "An unexpected error has occurred, please check the server log."}

    def __is_alive__(self) -> bool:
        return self.prediction_log.alive

    def __is_ready__(self) -> bool:
        """Models verified (else the service never started) and the online store answering;
        a successful probe counts for ``MODELOPS_SERVING_READY_CACHE_SECONDS``."""
        now = time.monotonic()
        if now < self._ready_until:
            return True
        try:
            self.online.probe()
        except Exception as exc:
            log.warning("not ready: %s", exc)
            return False
        self._ready_until = now + CONFIG.ready_cache_seconds
        return True

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self._stop.set()
        self.prediction_log.close()

    def _watch(self, pointer: Path) -> None:
        """Swap in the release a pointer file names, once it changes and verifies."""
        from modelops.serving.predictor import load_release

        current = RELEASE_DIR.resolve()
        tried: Path | None = None
        while not self._stop.wait(CONFIG.watch_seconds):
            try:
                pointed = read_pointer(pointer)
            except Exception as exc:
                log.warning("release pointer %s: %s", pointer, exc)
                continue
            if pointed is None or pointed.resolve() in (current, tried):
                continue
            tried = pointed.resolve()
            try:
                verified(pointed)
                release = load_release(pointed)
                self.predictor.swap(release)
            except Exception as exc:
                log.error(
                    "kept v%s: release %s refused: %s",
                    self.predictor.release.model.version,
                    pointed,
                    exc,
                )
                self.metrics.reload("refused")
                continue
            current = tried
            _CONTRACT[0] = contract(release.manifest, TITLE)
            self.metrics.reload("swapped")
            log.info("now serving v%s from %s", release.model.version, pointed)


def _answer(path: str, request: Any) -> tuple[int, dict[str, Any]] | None:
    """The guard's fast path; None (BentoML's route) before the start, or when BentoML's
    access log or spans are asked for on the prediction routes."""
    if not _SERVICES or CONFIG.access_log or CONFIG.trace_predictions:
        return None
    return cast(ModelService, _SERVICES[-1]).answer(path, request)


def _body(exc: Any) -> dict[str, Any]:
    return {**exc.body(), "detail": []}


def _rejected(path: str, status: int) -> None:
    """Requests the guard refuses count as ``bad_request`` for the version being served."""
    if _SERVICES:
        service = _SERVICES[-1]
        version = service.predictor.release.model.version
        service.metrics.rejected(path.lstrip("/"), version)


def _unmatched() -> None:
    """A request for a path no route serves: one series, whatever the path."""
    if _SERVICES:
        _SERVICES[-1].metrics.unmatched()


cast(Any, ModelService).add_asgi_middleware(
    RequestGuard,
    routes=lambda: _CONTRACT[0].routes,
    max_body={"/predict": 64 * 1024, "/predict_batch": 64 * 1024 + API.max_batch * ITEM_BYTES},
    on_reject=_rejected,
    body_timeout=CONFIG.body_timeout_seconds,
    documents=lambda: _CONTRACT[0].documents,
    answer=_answer,
    threaded=frozenset({"/predict_batch"}),
)
edge.install(
    edge.EdgeLimits(
        header_timeout=CONFIG.header_timeout_seconds,
        max_header_bytes=CONFIG.max_header_bytes,
        max_headers=CONFIG.max_headers,
    ),
    _unmatched,
)
