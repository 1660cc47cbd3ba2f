"""One Spark session per process, configured from the settings (``spark_master``, ``spark_conf``).

The session is created on first use and cached; a later call with a different master or
configuration stops it and starts another (Spark allows one context a process). Defaults the
platform relies on, which ``spark_conf`` may override:

- the session time zone is UTC (timestamps read from parquet and written back stay UTC);
- Arrow transfers between the JVM and pandas (``toPandas``, ``mapInPandas``) are on;
- on a ``local[N]`` master the web UI is off and shuffles use ``2 * N`` partitions, not 200.

The Python workers of ``mapInPandas`` run the interpreter that runs the platform: on a local
master ``PYSPARK_PYTHON`` and ``PYSPARK_DRIVER_PYTHON`` are set to ``sys.executable``; on a
cluster they are set only when unset (the executors' Python is the cluster's business).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import TYPE_CHECKING

from modelops.core.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from modelops.config.settings import Settings

_LOCK = threading.Lock()
_SESSION: SparkSession | None = None
_KEY: tuple[str, tuple[tuple[str, str], ...]] | None = None
_LOCAL = re.compile(r"^local(\[(\d+|\*)(,\d+)?\])?$")


def session_conf(settings: Settings) -> dict[str, str]:
    """The configuration a session of ``settings`` starts with: defaults, then ``spark_conf``."""
    conf = {
        "spark.app.name": "modelops",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        # parquet timestamps the platform writes are microseconds, UTC-adjusted (parquet.py)
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }
    local = _LOCAL.match(settings.spark_master.strip())
    if local:
        cores = local.group(2)
        threads = (os.cpu_count() or 2) if cores in (None, "*") else int(cores)
        partitions = 2 * threads
        conf |= {
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": str(partitions),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
        }
    if settings.s3_endpoint_url:
        conf |= {
            "spark.hadoop.fs.s3a.endpoint": settings.s3_endpoint_url,
            "spark.hadoop.fs.s3a.path.style.access": "true",
        }
    return conf | dict(settings.spark_conf)


def spark_session(settings: Settings) -> SparkSession:
    """The process's Spark session for ``settings`` (created on first use, then reused).

    Raises:
        ConfigError: pyspark is not installed (``pip install 'modelops[cluster]'``), or Java is
            missing or the master cannot be reached (the message says which).
    """
    global _SESSION, _KEY
    conf = session_conf(settings)
    key = (settings.spark_master.strip(), tuple(sorted(conf.items())))
    with _LOCK:
        if _SESSION is not None and key == _KEY and _alive(_SESSION):
            return _SESSION
        if _SESSION is not None:
            _stop_locked()
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise ConfigError(
                "the cluster profile needs pyspark: pip install 'modelops[cluster]'"
            ) from exc
        _python_for_workers(local=bool(_LOCAL.match(key[0])))
        builder = SparkSession.builder.master(key[0])
        for name, value in conf.items():
            builder = builder.config(name, value)
        try:
            session = builder.getOrCreate()
        except Exception as exc:  # Java missing, master unreachable: one line, no traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"settings spark_master: cannot start a Spark session on {key[0]!r}: {first}"
            ) from exc
        session.sparkContext.setLogLevel("ERROR")
        _SESSION, _KEY = session, key
        return session


def stop_spark_session() -> None:
    """Stop the process's session, if any (the next :func:`spark_session` starts a new one)."""
    with _LOCK:
        _stop_locked()


def _stop_locked() -> None:
    global _SESSION, _KEY
    if _SESSION is not None:
        _SESSION.stop()
    _SESSION, _KEY = None, None


def _alive(session: SparkSession) -> bool:
    context = session.sparkContext
    return context._jsc is not None and not context._jsc.sc().isStopped()


def _python_for_workers(*, local: bool) -> None:
    if local:  # a local master binds to the loopback address (and says nothing about it)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    for name in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):
        if local:
            os.environ[name] = sys.executable
        else:
            os.environ.setdefault(name, sys.executable)
