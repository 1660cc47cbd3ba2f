"""Shared fixtures: an isolated copy of the repository's feature repo and projects, the one
way a test reports that something it needs is missing (skip locally, fail under CI), and the
cluster profile's services started by the tests themselves: a local Spark session and a moto S3
server (PostgreSQL, Redis and MLflow are in tests/integration/conftest.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from modelops.config.settings import Settings, load_settings
from support import copy_workspace, skip_or_fail

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def workspace(tmp_path: Path, clean_env: None) -> Settings:
    """Embedded-profile settings rooted in a fresh copy of the repository."""
    return load_settings(copy_workspace(tmp_path / "repo"))


@pytest.fixture(scope="session")
def unavailable() -> Callable[[str], NoReturn]:
    """``unavailable(reason)``: skip with the reason, or fail under CI (see support.skip_or_fail).

    Session-scoped so that fixtures of any scope can request it."""
    return skip_or_fail


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


@pytest.fixture(scope="session")
def spark(unavailable: Callable[[str], NoReturn]) -> Iterator[SparkSession]:
    """The platform's Spark session on ``local[2]`` (modelops.integrations.spark.session),
    stopped at the end of the test session. Skips (fails under CI) without Java or pyspark."""
    if _java() is None:
        unavailable("Spark needs Java: no java on PATH or under JAVA_HOME")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        unavailable("pyspark is not installed (pip install 'modelops[cluster]')")
    from modelops.integrations.spark.session import spark_session, stop_spark_session

    session = spark_session(Settings(spark_master="local[2]"))
    yield session
    stop_spark_session()


@pytest.fixture(scope="session")
def moto_s3(
    unavailable: Callable[[str], NoReturn], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An S3 endpoint: ``moto_server`` on a free port, started for the test session and stopped
    after it. Yields its URL; moto accepts any credentials."""
    server = Path(sys.executable).with_name("moto_server")
    if not server.is_file():
        unavailable("moto_server is not installed (pip install 'moto[server]')")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log = tmp_path_factory.mktemp("moto") / "moto-server.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
