"""The monitor pushes its run's gauges to a Prometheus Pushgateway (a CronJob has no
node_exporter to collect its textfile): checked against a real HTTP endpoint started here that
records what it is sent, parsed with prometheus_client's own parser; the PrometheusRule's monitor
alerts read metric names that the push carries; the platform chart passes the gateway's URL to
the monitor's CronJobs only.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_charts import CHARTS, HelmEngine, case_values, engine  # noqa: F401  # engine: fixture

from modelops.config.settings import load_settings
from modelops.core import monitoring as policy
from modelops.core.errors import ConfigError
from modelops.services.monitor.prometheus import PUSH_JOB, push

RULE_TEMPLATE = CHARTS / "modelops-platform" / "templates" / "prometheusrule.yaml"


class _Gateway(ThreadingHTTPServer):
    """A Pushgateway stand-in speaking real HTTP: records each request, answers ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = status
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Gateway

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "type": self.headers.get("Content-Type"),
                "body": self.rfile.read(length).decode(),
            }
        )
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST = do_DELETE = _record

    def log_message(self, *args: object) -> None:  # quiet
        pass


@contextmanager
def serving_gateway(status: int = 200) -> Iterator[_Gateway]:
    """A gateway stand-in listening on a free localhost port while the block runs."""
    server = _Gateway(status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def gateway() -> Iterator[_Gateway]:
    with serving_gateway(200) as server:
        yield server


@pytest.fixture
def broken_gateway() -> Iterator[_Gateway]:
    with serving_gateway(500) as server:
        yield server


def _run_outputs(action: str = policy.ROLLBACK) -> tuple[policy.Findings, policy.Decision]:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    findings = policy.Findings(
        "fraud",
        "production",
        "7",
        policy.Quality(rows=1234, features={"amount": policy.FeatureQuality(missing_share=0.02)}),
        policy.Tenure(moved_by="promote", moved_at=at, first_seen=at, as_of=at),
        drift=policy.Drift(
            method="psi",
            share=0.25,
            drifted=("amount",),
            scores={"amount": 0.4, "hour": 0.02},
            prediction_score=0.2,
        ),
        performance=policy.Performance(
            version="7",
            rows=800,
            positives=30,
            metrics={"pr_auc": 0.31},
            gate={"pr_auc": 0.5},
        ),
    )
    return findings, policy.Decision(actions=(policy.Action(action, "live pr_auc fell"),))


def _families(text: str) -> dict[str, list[Any]]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def test_a_run_is_pushed_as_one_group_per_project_and_environment(gateway: _Gateway) -> None:
    findings, decision = _run_outputs()
    assert push(gateway.url, "fraud", "production", "7", findings, decision, "pr_auc") is None

    (request,) = gateway.requests
    assert request["method"] == "PUT"  # replaces the group: an older version's series go away
    assert request["path"] == f"/metrics/job/{PUSH_JOB}/environment/production/project/fraud"
    assert request["type"].startswith("text/plain; version=0.0.4")
    families = _families(request["body"])
    (action,) = [s for s in families["modelops_monitor_action"] if s.labels["action"] == "rollback"]
    assert action.value == 1.0
    assert action.labels == {
        "project": "fraud",
        "environment": "production",
        "version": "7",
        "action": "rollback",
    }
    (rows,) = families["modelops_monitor_rows"]
    assert rows.value == 1234.0


def test_the_monitor_alerts_read_metric_names_the_push_carries(gateway: _Gateway) -> None:
    findings, decision = _run_outputs()
    push(gateway.url, "fraud", "production", "7", findings, decision, "pr_auc")
    pushed = {
        s.name for samples in _families(gateway.requests[0]["body"]).values() for s in samples
    }
    read = set(re.findall(r"\b(modelops_monitor_[a-z_]+)\b", RULE_TEMPLATE.read_text()))
    assert {"modelops_monitor_action", "modelops_monitor_last_run_timestamp_seconds"} <= read
    assert read <= pushed, sorted(read - pushed)


def test_a_gateway_that_refuses_is_one_line_not_an_exception(broken_gateway: _Gateway) -> None:
    findings, decision = _run_outputs(policy.RETRAIN)
    said = push(broken_gateway.url, "fraud", "production", "7", findings, decision, "pr_auc")
    assert said is not None and "\n" not in said
    assert said.startswith(f"pushing the monitor's metrics to {broken_gateway.url} failed")
    assert "500" in said and len(broken_gateway.requests) == 1


def test_an_unreachable_gateway_is_one_line() -> None:
    server = _Gateway(200)  # bound, never served: then closed, so the port refuses
    url = server.url
    server.server_close()
    findings, decision = _run_outputs()
    said = push(url, "fraud", "production", "7", findings, decision, "pr_auc")
    assert said is not None and said.startswith(f"pushing the monitor's metrics to {url} failed")


def test_the_setting_is_off_by_default_and_refuses_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)
    assert load_settings(tmp_path).pushgateway_url is None
    monkeypatch.setenv("MODELOPS_PUSHGATEWAY_URL", "http://pushgateway.monitoring:9091/")
    assert load_settings(tmp_path).pushgateway_url == "http://pushgateway.monitoring:9091"
    monkeypatch.setenv("MODELOPS_PUSHGATEWAY_URL", "http://user:secret@gw:9091")
    with pytest.raises(ConfigError, match="MODELOPS_PUSHGATEWAY_URL") as refused:
        load_settings(tmp_path)
    assert "secret" not in str(refused.value)


# --- the platform chart --------------------------------------------------------------------------


def _cronjob_env(docs: list[dict[str, Any]], component: str) -> list[dict[str, list[Any]]]:
    found = []
    for doc in docs:
        if doc.get("kind") != "CronJob":
            continue
        if doc["metadata"]["labels"].get("app.kubernetes.io/component") != component:
            continue
        container = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        found.append({e["name"]: e.get("value") for e in container["env"]})
    return found


def _render(helm: HelmEngine, values: dict[str, Any]) -> list[dict[str, Any]]:
    texts = helm.render(CHARTS / "modelops-platform", values, "modelops")
    return [doc for text in texts.values() for doc in yaml.safe_load_all(text) if doc]


def test_the_chart_gives_the_gateway_to_the_monitor_jobs_only(
    engine: HelmEngine,  # noqa: F811
) -> None:
    values = case_values("modelops-platform", "production")
    assert not any(
        "MODELOPS_PUSHGATEWAY_URL" in env
        for env in _cronjob_env(_render(engine, values), "monitor")
    )
    url = "http://pushgateway.monitoring:9091"
    values["monitoring"]["pushgateway"] = {"url": url}
    docs = _render(engine, values)
    monitors = _cronjob_env(docs, "monitor")
    assert len(monitors) == 2 and all(env["MODELOPS_PUSHGATEWAY_URL"] == url for env in monitors)
    assert all("MODELOPS_PUSHGATEWAY_URL" not in env for env in _cronjob_env(docs, "materialize"))


def test_the_schema_refuses_a_gateway_url_with_credentials() -> None:
    import json

    import jsonschema

    chart = CHARTS / "modelops-platform"
    schema = json.loads((chart / "values.schema.json").read_text())["properties"]["monitoring"]
    values = yaml.safe_load((chart / "values.yaml").read_text())["monitoring"]
    jsonschema.validate(values, schema)  # the default: no push
    assert values["pushgateway"] == {"url": ""}
    values["pushgateway"] = {"url": "http://pushgateway.monitoring:9091"}
    jsonschema.validate(values, schema)
    values["pushgateway"] = {"url": "http://u:p@pushgateway:9091"}
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        jsonschema.validate(values, schema)
    values["pushgateway"] = {"url": "http://gw:9091", "token": "x"}
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.validate(values, schema)
