"""Real services for integration tests: PostgreSQL, Redis and an MLflow tracking server.

A test whose service is unreachable is skipped with the reason, except under CI (``CI`` set to
``true``, ``1`` or ``yes``), where it fails: CI must never go green by skipping the production
profile. The ``unavailable`` fixture (tests/conftest.py) does both.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_TEST_DB = 13


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _postgres_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host=POSTGRES_HOST,
        port=POSTGRES_PORT,
        user="postgres",
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    ) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def postgres_database_factory(unavailable: Callable[[str], NoReturn]) -> Iterator[object]:
    """Creates throw-away databases; drops them at the end of the session."""
    if not _reachable(POSTGRES_HOST, POSTGRES_PORT):
        unavailable(f"PostgreSQL unreachable at {POSTGRES_HOST}:{POSTGRES_PORT}")
    created: list[str] = []

    def create(purpose: str) -> str:
        name = f"modelops_test_{purpose}_{uuid.uuid4().hex[:8]}"
        _postgres_admin(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"

    yield create
    for name in created:
        _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_connection(unavailable: Callable[[str], NoReturn]) -> Iterator[str]:
    """A Feast connection string to a Redis database reserved for tests, emptied around use."""
    if not _reachable(REDIS_HOST, REDIS_PORT):
        unavailable(f"Redis unreachable at {REDIS_HOST}:{REDIS_PORT}")
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_TEST_DB)
    client.flushdb()
    yield f"{REDIS_HOST}:{REDIS_PORT},db={REDIS_TEST_DB}"
    client.flushdb()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def mlflow_server(
    postgres_database_factory: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``mlflow server`` backed by PostgreSQL with a local artifact root, on a free port."""
    backend = postgres_database_factory("mlflow")  # type: ignore[operator]
    artifacts: Path = tmp_path_factory.mktemp("mlflow-artifacts")
    port = _free_port()
    log = artifacts.parent / "mlflow-server.log"
    mlflow = Path(sys.executable).with_name("mlflow")
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                str(mlflow),
                "server",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                str(artifacts),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
