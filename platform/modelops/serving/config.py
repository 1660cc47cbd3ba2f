"""A running service's own configuration: ``MODELOPS_SERVING_*`` environment variables.

The platform's settings loader leaves these variables alone (they configure a process that never
reads ``modelops.yaml``); this module rejects a misspelt one, as the settings loader does for its
own variables.

=========================================  =====================================================
variable                                   meaning (default)
=========================================  =====================================================
``MODELOPS_SERVING_RELEASE``               release directory (manifest, samples, Feast config);
                                           default: the ``release/`` folder the Bento carries
``MODELOPS_SERVING_RELEASE_PUBLIC_KEY``    the platform's release key (public half, 64 hex
                                           digits; ``modelops ledger release-key``): the
                                           release's signed record must verify under it, or the
                                           service does not start (required)
``MODELOPS_SERVING_WATCH``                 a pointer file naming a newer release directory; the
                                           service polls it and swaps models without a restart
``MODELOPS_SERVING_WATCH_SECONDS``         how often the pointer is polled (2)
``MODELOPS_SERVING_FEATURE_REPO``          Feast repository directory (the release's copy)
``MODELOPS_SERVING_FEATURE_STORE_YAML``    Feast config file, relative to the repository or
                                           absolute (the one named in the manifest); ``${VAR}``
                                           in it is filled from the environment
``MODELOPS_SERVING_PREDICTION_LOG``        directory (parquet by date) or SQLAlchemy URL
                                           (``predictions`` under the working directory)
``MODELOPS_SERVING_LOG_FLUSH_ROWS``        prediction log rows per write (1000)
``MODELOPS_SERVING_LOG_FLUSH_SECONDS``     longest wait before a write (1.0)
``MODELOPS_SERVING_LOG_QUEUE``             queued rows before new ones are dropped, counted (100000)
``MODELOPS_SERVING_WORKERS``               worker processes (1)
``MODELOPS_SERVING_THREADS``               request threads per worker, for the routes BentoML
                                           answers (4; see ``modelops.serving.service``)
``MODELOPS_SERVING_ACCESS_LOG``            ``true`` turns BentoML's per-request access log on
``MODELOPS_SERVING_ENVIRONMENT``           environment name shown in metrics and the log
``MODELOPS_SERVING_PROJECT``               the project the release must be of (the Helm chart
                                           sets it); another release stops the start-up
``MODELOPS_SERVING_MODEL_VERSION``         the model version the release must carry (the chart
                                           sets it from ``modelVersion``); likewise
``MODELOPS_SERVING_TRACE_PREDICTIONS``     ``true`` keeps BentoML's OpenTelemetry span on
                                           ``/predict`` and ``/predict_batch`` (off: a span per
                                           request cost about a third of the worker's CPU)
``MODELOPS_SERVING_READY_CACHE_SECONDS``   how long a successful online-store probe counts (2)
``MODELOPS_SERVING_HEADER_TIMEOUT_SECONDS`` longest wait for a request's complete headers from
                                           its first byte (or the connection's opening): 408 (10)
``MODELOPS_SERVING_BODY_TIMEOUT_SECONDS``   longest wait for a prediction request's complete
                                           body once its headers arrived: 408 (10)
``MODELOPS_SERVING_MAX_HEADER_BYTES``      request line and headers, bytes at most: 431 (16384)
``MODELOPS_SERVING_MAX_HEADERS``           header fields at most: 431 (100)
=========================================  =====================================================
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelops.core.errors import ConfigError

PREFIX = "MODELOPS_SERVING_"

_KNOWN = (
    "RELEASE",
    "RELEASE_PUBLIC_KEY",
    "WATCH",
    "WATCH_SECONDS",
    "FEATURE_REPO",
    "FEATURE_STORE_YAML",
    "PREDICTION_LOG",
    "LOG_FLUSH_ROWS",
    "LOG_FLUSH_SECONDS",
    "LOG_QUEUE",
    "WORKERS",
    "THREADS",
    "ACCESS_LOG",
    "ENVIRONMENT",
    "READY_CACHE_SECONDS",
    "PROJECT",
    "MODEL_VERSION",
    "TRACE_PREDICTIONS",
    "HEADER_TIMEOUT_SECONDS",
    "BODY_TIMEOUT_SECONDS",
    "MAX_HEADER_BYTES",
    "MAX_HEADERS",
)
VARIABLES = tuple(PREFIX + name for name in _KNOWN)
PREDICTION_ROUTES = ("predict", "predict_batch")


@dataclass(frozen=True)
class ServingConfig:
    release: Path | None = None
    release_public_key: str | None = None
    watch: Path | None = None
    watch_seconds: float = 2.0
    feature_repo: Path | None = None
    feature_store_yaml: str | None = None
    prediction_log: str = "predictions"
    log_flush_rows: int = 1000
    log_flush_seconds: float = 1.0
    log_queue: int = 100_000
    workers: int = 1
    threads: int = 4
    access_log: bool = False
    environment: str | None = None
    ready_cache_seconds: float = 2.0
    project: str | None = None
    model_version: str | None = None
    trace_predictions: bool = False
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 10.0
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100

    @property
    def tracing(self) -> dict[str, object]:
        """BentoML's ``tracing`` service option: the prediction routes untraced unless asked."""
        return {} if self.trace_predictions else {"excluded_urls": list(PREDICTION_ROUTES)}

    def check_release(self, project: str, version: str, where: object) -> None:
        """Refuse a release of another project or version than the deployment declares.

        Raises:
            ConfigError: naming the variable, the declared and the found value.
        """
        for name, declared, found in (
            ("PROJECT", self.project, project),
            ("MODEL_VERSION", self.model_version, version),
        ):
            if declared is not None and declared != found:
                raise ConfigError(
                    f"environment {PREFIX}{name}: {declared!r}, but the release at {where} holds "
                    f"{found!r}; deploy the image built for it"
                )


def _number(environ: Mapping[str, str], name: str, default: float, kind: type) -> float:
    raw = environ.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"environment {PREFIX}{name}: {raw!r} is not a {kind.__name__}") from None
    if value <= 0:
        raise ConfigError(f"environment {PREFIX}{name}: {raw!r} must be positive")
    return float(value)


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(PREFIX + name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"environment {PREFIX}{name}: {raw!r} is not true or false")


def load_config(environ: Mapping[str, str] | None = None) -> ServingConfig:
    """The service's configuration from ``environ`` (default: the process environment).

    Raises:
        ConfigError: an unknown ``MODELOPS_SERVING_*`` variable (with the closest known one) or
            a value that does not parse, naming the variable.
    """
    env = os.environ if environ is None else environ
    for name in sorted(env):
        if name.startswith(PREFIX) and name not in VARIABLES:
            close = difflib.get_close_matches(name, VARIABLES, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"environment {name}: not a serving variable{hint}")

    def path(name: str) -> Path | None:
        raw = env.get(PREFIX + name)
        return Path(raw) if raw else None

    return ServingConfig(
        release=path("RELEASE"),
        release_public_key=(env.get(PREFIX + "RELEASE_PUBLIC_KEY") or "").strip().lower() or None,
        watch=path("WATCH"),
        watch_seconds=_number(env, "WATCH_SECONDS", 2.0, float),
        feature_repo=path("FEATURE_REPO"),
        feature_store_yaml=env.get(PREFIX + "FEATURE_STORE_YAML") or None,
        prediction_log=env.get(PREFIX + "PREDICTION_LOG") or "predictions",
        log_flush_rows=int(_number(env, "LOG_FLUSH_ROWS", 1000, int)),
        log_flush_seconds=_number(env, "LOG_FLUSH_SECONDS", 1.0, float),
        log_queue=int(_number(env, "LOG_QUEUE", 100_000, int)),
        workers=int(_number(env, "WORKERS", 1, int)),
        threads=int(_number(env, "THREADS", 4, int)),
        access_log=_flag(env, "ACCESS_LOG"),
        environment=env.get(PREFIX + "ENVIRONMENT") or None,
        ready_cache_seconds=_number(env, "READY_CACHE_SECONDS", 2.0, float),
        project=env.get(PREFIX + "PROJECT") or None,
        model_version=env.get(PREFIX + "MODEL_VERSION") or None,
        trace_predictions=_flag(env, "TRACE_PREDICTIONS"),
        header_timeout_seconds=_number(env, "HEADER_TIMEOUT_SECONDS", 10.0, float),
        body_timeout_seconds=_number(env, "BODY_TIMEOUT_SECONDS", 10.0, float),
        max_header_bytes=int(_number(env, "MAX_HEADER_BYTES", 16 * 1024, int)),
        max_headers=int(_number(env, "MAX_HEADERS", 100, int)),
    )
