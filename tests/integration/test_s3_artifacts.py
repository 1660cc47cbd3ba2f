"""MLflow artifacts on S3 (the cluster profile), against a moto S3 server the tests start:
through a tracking server that proxies them (``mlflow server --artifacts-destination s3://``)
and written directly by the client (an ``s3://`` artifact location). A model trained and
registered through the platform's MLflow adapter comes back byte-identical: the objects in the
bucket, the files MLflow hands back and the files logged have the same SHA-256."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelops.integrations import mlflow as mlflow_io

pytestmark = pytest.mark.integration

BUCKET = "modelops-artifacts"


@pytest.fixture
def s3(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A fresh bucket on the moto server; AWS and MLflow variables pointing at it."""
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "modelops-test",
        "AWS_SECRET_ACCESS_KEY": "modelops-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": moto_s3,
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    objects = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    for item in objects:
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def proxying_server(s3: object, tmp_path: Path) -> Iterator[str]:
    """``mlflow server --artifacts-destination s3://<bucket>/proxied`` on a free port."""
    port = _free_port()
    log = tmp_path / "mlflow-server.log"
    mlflow = Path(sys.executable).with_name("mlflow")
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                str(mlflow),
                "server",
                "--backend-store-uri",
                f"sqlite:///{tmp_path / 'server.db'}",
                "--artifacts-destination",
                f"s3://{BUCKET}/proxied",
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
    deadline = time.monotonic() + 120
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): _sha256(path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _bucket(client: object, prefix: str) -> dict[str, str]:
    """``{key under prefix: sha256}`` of the objects in the bucket."""
    found = {}
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)  # type: ignore[attr-defined]
    for item in listing.get("Contents", []):
        body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()  # type: ignore[attr-defined]
        found[item["Key"]] = _sha256(body)
    return found


def _round_trip(tracking: mlflow_io.Tracking, s3: object, prefix: str, tmp_path: Path) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    label = (frame["a"] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    model = LogisticRegression().fit(frame, label)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(rng.bytes(3 * 1024 * 1024 + 17))  # a multi-part-sized odd length

    with mlflow_io.session(tracking) as client:
        record = mlflow_io.RunRecord(experiment="s3-round-trip", run_name="s3")
        logged = mlflow_io.log_run(client, tracking, record, model, frame)
        with mlflow.start_run(run_id=logged.run_id):
            mlflow.log_artifact(str(payload), "blobs")
        version = mlflow_io.register_version(client, "s3_model", logged, {}, "through S3")
        model_uri = f"models:/s3_model/{version.version}"
        recorded = mlflow_io.artifact_sha256(model_uri)
        loaded, size = mlflow_io.load_verified_model(model_uri, recorded, "s3_model")
        assert size > 0
        np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))

        blob = Path(
            mlflow.artifacts.download_artifacts(
                run_id=logged.run_id,
                artifact_path="blobs/payload.bin",
                dst_path=str(tmp_path / "b"),
            )
        )
        assert _sha256(blob.read_bytes()) == _sha256(payload.read_bytes())
        model_files = _tree(
            Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "m")))
        )

    stored = _bucket(s3, prefix)
    assert _sha256(payload.read_bytes()) in stored.values()  # the bytes are in the bucket
    for name, digest in model_files.items():  # every model file is stored, byte for byte
        matching = [key for key in stored if key.endswith(f"/{name}")]
        assert matching, f"{name} is not in s3://{BUCKET}/{prefix}"
        assert digest in {stored[key] for key in matching}, name
    assert "model.pkl" in model_files or any(n.endswith(".pkl") for n in model_files)


def test_artifacts_round_trip_through_a_server_that_proxies_s3(
    proxying_server: str, s3: object, tmp_path: Path
) -> None:
    tracking = mlflow_io.Tracking(proxying_server, proxying_server, None)
    _round_trip(tracking, s3, "proxied/", tmp_path)


def test_artifacts_round_trip_written_directly_to_s3(s3: object, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'direct.db'}"
    tracking = mlflow_io.Tracking(uri, uri, f"s3://{BUCKET}/direct")
    _round_trip(tracking, s3, "direct/", tmp_path)
