"""The platform chart's ops artefacts: the Grafana dashboard and the PrometheusRule alerts.

Rendered by the real Helm engine (the ``engine`` fixture of test_charts.py), then:

- the PrometheusRule is validated against the Prometheus Operator's own CRD schema
  (``tests/data/schemas/prometheusrule-crd.yaml``), strictly; its rule groups pass
  ``promtool check rules`` (Prometheus' own parser and template checks), and ``promtool test
  rules`` shows each alert firing on synthetic series that should fire it and staying quiet on
  series that should not, with thresholds taken from the values;
- the dashboard JSON is validated against a schema of Grafana's dashboard model
  (``tests/data/schemas/grafana-dashboard.schema.json``), and its panels tile the grid;
- every PromQL expression (alerts and panels) parses (``promql-parser``), and names only metrics
  that the code defines (the service's ``PrometheusMetrics`` and the monitor's textfile, both
  exercised here) or that Prometheus and kube-state-metrics define: renaming a metric in the code
  fails these tests until the dashboard and alerts follow. The dashboard shows every metric the
  code exposes.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
import sys
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_charts import CHARTS, HelmEngine, case_values, engine  # noqa: F401  # engine: fixture

from support import REPO, skip_or_fail

SCHEMAS = REPO / "tests" / "data" / "schemas"
CHART = CHARTS / "modelops-platform"
DASHBOARD_FILE = CHART / "dashboards" / "modelops.json"
RELEASE = "modelops"

# Metrics the artefacts may use besides those modelops defines, with who defines them.
EXTERNAL_METRICS = {
    "up": "Prometheus: 1 when the target's last scrape succeeded",
    "kube_pod_container_status_ready": "kube-state-metrics (pod metrics, STABLE)",
    "kube_cronjob_status_last_schedule_time": "kube-state-metrics (CronJob metrics, STABLE)",
    "kube_cronjob_status_last_successful_time": "kube-state-metrics (CronJob metrics, STABLE)",
}

# Grafana's variables, replaced by sample values before the panels' PromQL is parsed.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__range": "6h",
    "$namespace": ".*",
    "$project": ".*",
    "$environment": ".*",
    "$container": "bentoml",
}

# Alert rules need: these thresholds are the ones the synthetic series below are built around.
RULE_VALUES: dict[str, Any] = {
    "enabled": True,
    "serviceNamespaces": "models-.*",
    "errorRate": {"threshold": 0.02, "window": "5m", "minRequestsPerSecond": 0.5, "for": "10m"},
    "latencyP99": {"thresholdSeconds": 0.2, "window": "5m", "for": "10m"},
    "down": {"for": "5m"},
    "notReady": {"for": "10m"},
    "monitor": {"actions": ["retrain"], "failingFor": "45m", "staleAfterSeconds": 7200},
}


# --- what the code defines -----------------------------------------------------------------------


def _families(text: str) -> dict[str, set[str]]:
    """Metric family name -> the sample names it exposes, from the text exposition format."""
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: {s.name for s in f.samples} for f in text_string_to_metric_families(text)}


def service_families(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Every series ``PrometheusMetrics`` exposes, each method called once.

    ``bentoml.metrics`` is a drop-in for prometheus_client: it is replaced here by
    prometheus_client's own classes on a fresh registry, so what is read back is exactly what
    the service registers, under the names it gives.
    """
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    registry = CollectorRegistry()
    fake = types.SimpleNamespace(
        Counter=functools.partial(Counter, registry=registry),
        Gauge=functools.partial(Gauge, registry=registry),
        Histogram=functools.partial(Histogram, registry=registry),
    )
    monkeypatch.setitem(sys.modules, "bentoml", types.SimpleNamespace(metrics=fake))
    from modelops.serving.metrics import PrometheusMetrics

    metrics = PrometheusMetrics("fraud", "production")
    metrics.request("predict", "3", "ok", 0.004)
    metrics.rejected("predict", "3")
    metrics.scores("3", [0.2, 0.9], ["allow", "block"])
    metrics.missing("3", "fallback", 1)
    metrics.log_rows("written", 2)
    metrics.model("3", "ab" * 32, None)
    metrics.reload("swapped")
    return _families(generate_latest(registry).decode())


def monitor_families() -> dict[str, set[str]]:
    """Every series of the monitor's textfile, from a run's findings that fill every gauge."""
    from modelops.core import monitoring as policy
    from modelops.services.monitor.prometheus import prometheus_text

    at = datetime(2026, 1, 5, tzinfo=UTC)
    findings = policy.Findings(
        "fraud",
        "production",
        "3",
        policy.Quality(rows=5000, features={"amount": policy.FeatureQuality(missing_share=0.01)}),
        policy.Tenure(moved_by="promote", moved_at=at, first_seen=at, as_of=at),
        drift=policy.Drift(
            method="psi",
            share=0.5,
            drifted=("amount",),
            scores={"amount": 0.3, "hour": 0.01},
            prediction_score=0.1,
        ),
        performance=policy.Performance(
            version="3",
            rows=900,
            positives=40,
            metrics={"pr_auc": 0.4, "roc_auc": 0.9},
            gate={"pr_auc": 0.5, "roc_auc": 0.92},
        ),
    )
    decision = policy.Decision(actions=(policy.Action(policy.RETRAIN, "drift"),), drift_streak=3)
    return _families(prometheus_text("fraud", "production", "3", findings, decision, "pr_auc", at))


@pytest.fixture(scope="module")
def defined() -> dict[str, set[str]]:
    """Family -> sample names, of the service and of the monitor."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        families = service_families(monkeypatch)
    monitor = monitor_families()
    assert families and monitor and not set(families) & set(monitor)
    return {**families, **monitor}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects. Raises ValueError when it does not parse."""
    import promql_parser

    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name is None:
                raise ValueError(f"selects no metric by name: {expr}")
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return names


def unknown_metrics(exprs: dict[str, str], defined: dict[str, set[str]]) -> list[str]:
    """``where: problem`` for every expression that does not parse or names an unknown metric."""
    known = set(EXTERNAL_METRICS).union(*defined.values())
    problems = []
    for where, expr in exprs.items():
        try:
            names = metric_names(expr)
        except ValueError as error:
            problems.append(f"{where}: does not parse: {error}")
            continue
        problems += [f"{where}: unknown metric {name}" for name in sorted(names - known)]
    return problems


@pytest.fixture(scope="module")
def promql() -> None:
    try:
        import promql_parser  # noqa: F401
    except ImportError:
        skip_or_fail("needs the PyPI package promql-parser (pip install -e '.[dev]')")


# --- rendering -----------------------------------------------------------------------------------


def render(helm: HelmEngine, values: dict[str, Any]) -> list[dict[str, Any]]:
    texts = helm.render(CHART, values, RELEASE)
    return [doc for text in texts.values() for doc in yaml.safe_load_all(text) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


@pytest.fixture(scope="module")
def production(engine: HelmEngine) -> list[dict[str, Any]]:  # noqa: F811
    return render(engine, case_values("modelops-platform", "production"))


@pytest.fixture(scope="module")
def rule(engine: HelmEngine) -> dict[str, Any]:  # noqa: F811
    """The PrometheusRule with the thresholds the synthetic series are built around."""
    values = case_values("modelops-platform", "production")
    values["prometheusRule"] = {**values["prometheusRule"], **RULE_VALUES}
    return one(render(engine, values), "PrometheusRule")


def alert_exprs(rule: dict[str, Any]) -> dict[str, str]:
    return {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}


# --- PrometheusRule ------------------------------------------------------------------------------


def strict(schema: Any) -> Any:
    """``schema`` with unknown fields refused wherever it lists the fields (``properties``)."""
    if isinstance(schema, dict):
        out = {key: strict(value) for key, value in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def crd_validator() -> Any:
    import jsonschema

    crd = yaml.safe_load((SCHEMAS / "prometheusrule-crd.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft7Validator(strict(version["schema"]["openAPIV3Schema"]))


def test_prometheus_rule_matches_the_operator_crd(
    production: list[dict[str, Any]], crd_validator: Any
) -> None:
    found = one(production, "PrometheusRule")
    assert found["apiVersion"] == "monitoring.coreos.com/v1"
    assert found["metadata"]["labels"]["release"] == "kube-prometheus-stack"  # values' labels
    errors = [f"{list(e.path)}: {e.message}" for e in crd_validator.iter_errors(found)]
    assert not errors, "\n".join(errors)
    alerts = set(alert_exprs(found))
    assert alerts == {
        "ModelServiceErrorRateHigh",
        "ModelServiceLatencyP99High",
        "ModelServiceDown",
        "ModelServiceNotReady",
        "ModelopsMonitorRolledBack",
        "ModelopsMonitorAction",
        "ModelopsMonitorFailing",
        "ModelopsMonitorStale",
    }


def test_the_crd_validation_is_strict(production: list[dict[str, Any]], crd_validator: Any) -> None:
    found = copy.deepcopy(one(production, "PrometheusRule"))
    found["spec"]["groups"][0]["rules"][0]["fro"] = "5m"  # a misspelt "for"
    assert not crd_validator.is_valid(found)
    found = copy.deepcopy(one(production, "PrometheusRule"))
    found["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    assert not crd_validator.is_valid(found)


def test_no_prometheus_rule_unless_enabled(engine: HelmEngine) -> None:  # noqa: F811
    docs = render(engine, case_values("modelops-platform", "default"))
    assert not [doc for doc in docs if doc["kind"] == "PrometheusRule"]


def test_alert_expressions_parse_and_use_only_defined_metrics(
    rule: dict[str, Any], defined: dict[str, set[str]], promql: None
) -> None:
    exprs = alert_exprs(rule)
    assert not unknown_metrics(exprs, defined)
    assert "0.02" in exprs["ModelServiceErrorRateHigh"]  # thresholds come from the values
    assert "0.2" in exprs["ModelServiceLatencyP99High"]
    assert "7200" in exprs["ModelopsMonitorStale"]


@pytest.fixture(scope="module")
def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        skip_or_fail("needs promtool (Debian package prometheus)")
    assert binary is not None
    return binary


def _promtool(binary: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [binary, *args], capture_output=True, text=True, check=False, cwd=cwd, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_checks_the_rules(rule: dict[str, Any], promtool: str, tmp_path: Path) -> None:
    """Prometheus' own parser and the alert templates (annotations included) accept them."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    out = _promtool(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert f"SUCCESS: {len(alert_exprs(rule))} rules found" in out


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _alerts(name: str, at: str, *labelled: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": [{"exp_labels": x} for x in labelled]}


SVC = {"namespace": "models-prod", "job": "fraud"}
NS = "modelops-test"
CRIT, WARN = {"severity": "critical"}, {"severity": "warning"}


def service_cases() -> list[dict[str, Any]]:
    """One scrape a minute; counters as ``start+increment x minutes``."""
    req, lat = "modelops_requests_total", "modelops_request_latency_seconds_bucket"
    series = [
        # fraud: 2 req/s, 3 % unavailable (threshold 2 %); credit: 1 % unavailable; quiet: 0.3
        # req/s (below minRequestsPerSecond), half unavailable.
        _series(req, {**SVC, "project": "fraud", "outcome": "ok"}, "0+116x40"),
        _series(req, {**SVC, "project": "fraud", "outcome": "unavailable"}, "0+3.6x40"),
        _series(req, {**SVC, "project": "credit", "outcome": "ok"}, "0+118.8x40"),
        _series(req, {**SVC, "project": "credit", "outcome": "unavailable"}, "0+1.2x40"),
        _series(req, {**SVC, "project": "quiet", "outcome": "ok"}, "0+9x40"),
        _series(req, {**SVC, "project": "quiet", "outcome": "unavailable"}, "0+9x40"),
        # fraud: 5 % of requests above 0.25 s (p99 above 0.2); credit: all under 0.1 s.
        _series(lat, {**SVC, "project": "fraud", "le": "0.1"}, "0+100x40"),
        _series(lat, {**SVC, "project": "fraud", "le": "0.25"}, "0+114x40"),
        _series(lat, {**SVC, "project": "fraud", "le": "+Inf"}, "0+120x40"),
        _series(lat, {**SVC, "project": "credit", "le": "0.1"}, "0+120x40"),
        _series(lat, {**SVC, "project": "credit", "le": "0.25"}, "0+120x40"),
        _series(lat, {**SVC, "project": "credit", "le": "+Inf"}, "0+120x40"),
        # pod a down, b up; pod a not ready, another container of b not ready (not ours), and a
        # model service in a namespace the values do not select.
        _series("up", {**SVC, "pod": "a", "container": "bentoml"}, "0x40"),
        _series("up", {**SVC, "pod": "b", "container": "bentoml"}, "1x40"),
        _series("up", {"namespace": "other", "pod": "c", "container": "bentoml"}, "0x40"),
        _series(
            "kube_pod_container_status_ready",
            {"namespace": "models-prod", "pod": "a", "container": "bentoml"},
            "0x40",
        ),
        _series(
            "kube_pod_container_status_ready",
            {"namespace": "models-prod", "pod": "b", "container": "istio-proxy"},
            "0x40",
        ),
    ]
    fraud = {"namespace": "models-prod", "project": "fraud"}
    pod_a = {**SVC, "pod": "a", "container": "bentoml"}
    ready_a = {"namespace": "models-prod", "pod": "a", "container": "bentoml"}
    return [
        {
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                _alerts("ModelServiceErrorRateHigh", "8m"),  # not yet: for 10m
                _alerts("ModelServiceErrorRateHigh", "30m", {**fraud, **CRIT}),
                _alerts("ModelServiceLatencyP99High", "30m", {**fraud, **WARN}),
                _alerts("ModelServiceDown", "3m"),
                _alerts("ModelServiceDown", "10m", {**pod_a, **CRIT}),
                _alerts("ModelServiceNotReady", "15m", {**ready_a, **CRIT}),
            ],
        }
    ]


def monitor_cases() -> list[dict[str, Any]]:
    cron, materialize = "modelops-monitor-", "modelops-materialize"
    gauge = "modelops_monitor_action"
    run = {"project": "fraud", "environment": "production", "version": "3"}
    other = {"project": "credit", "environment": "production", "version": "7"}
    return [
        {
            "interval": "1m",
            "input_series": [
                _series(gauge, {**run, "action": "rollback"}, "1x10"),
                _series(gauge, {**run, "action": "retrain"}, "1x10"),
                _series(gauge, {**run, "action": "alert"}, "1x10"),  # not in the values' list
                _series(gauge, {**other, "action": "rollback"}, "0x10"),
                _series(gauge, {**other, "action": "retrain"}, "0x10"),
            ],
            "alert_rule_test": [
                _alerts("ModelopsMonitorRolledBack", "2m", {**run, **CRIT}),
                _alerts("ModelopsMonitorAction", "2m", {**run, "action": "retrain", **WARN}),
            ],
        },
        {
            # Clock at 0 s: a textfile written at 0 s; CronJobs: fraud failed after succeeding at
            # 100 s, credit succeeded after its last schedule, a third never succeeded, and the
            # materialize CronJob (not a monitor) failed.
            "interval": "1m",
            "input_series": [
                _series("modelops_monitor_last_run_timestamp_seconds", run, "0x200"),
                # credit's textfile is written every minute: fresh
                _series("modelops_monitor_last_run_timestamp_seconds", other, "0+60x200"),
                *[
                    _series(name, {"namespace": NS, "cronjob": job}, value)
                    for name, job, value in [
                        ("kube_cronjob_status_last_schedule_time", f"{cron}fraud", "3600x200"),
                        ("kube_cronjob_status_last_successful_time", f"{cron}fraud", "100x200"),
                        ("kube_cronjob_status_last_schedule_time", f"{cron}credit", "0+60x200"),
                        ("kube_cronjob_status_last_successful_time", f"{cron}credit", "0+60x200"),
                        ("kube_cronjob_status_last_schedule_time", f"{cron}new", "3600x200"),
                        ("kube_cronjob_status_last_schedule_time", materialize, "3600x200"),
                        ("kube_cronjob_status_last_successful_time", materialize, "1x200"),
                    ]
                ],
            ],
            "alert_rule_test": [
                _alerts("ModelopsMonitorFailing", "40m"),  # not yet: for 45m
                _alerts(
                    "ModelopsMonitorFailing",
                    "50m",
                    {"namespace": NS, "cronjob": f"{cron}fraud", **WARN},
                    {"namespace": NS, "cronjob": f"{cron}new", **WARN},
                ),
                _alerts("ModelopsMonitorStale", "100m"),  # 6000 s < 7200 s
                _alerts(
                    "ModelopsMonitorStale",
                    "130m",
                    {"project": "fraud", "environment": "production", **WARN},
                    {"namespace": NS, "cronjob": f"{cron}fraud", **WARN},
                ),
            ],
        },
    ]


def test_each_alert_fires_on_the_series_that_should_fire_it(
    rule: dict[str, Any], promtool: str, tmp_path: Path
) -> None:
    """promtool evaluates the rendered rules over synthetic series, minute by minute: each alert
    fires for what it is about, after its ``for``, at the values' thresholds, and not for the
    series next to it (below the threshold, another container, namespace or CronJob)."""
    groups = copy.deepcopy(rule["spec"]["groups"])
    for group in groups:  # expected alerts are compared by labels; annotations are checked above
        for item in group["rules"]:
            item.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yaml"],
                "evaluation_interval": "1m",
                "tests": service_cases() + monitor_cases(),
            }
        )
    )
    _promtool(promtool, "test", "rules", "tests.yaml", cwd=tmp_path)


# --- Grafana dashboard ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def panel_exprs(dashboard: dict[str, Any]) -> dict[str, str]:
    """``panel title/refId`` -> its PromQL, Grafana's variables replaced by sample values."""
    pattern = re.compile("|".join(re.escape(v) for v in sorted(GRAFANA_VARIABLES, key=len)[::-1]))
    out = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = pattern.sub(lambda m: GRAFANA_VARIABLES[m.group(0)], target["expr"])
            assert "$" not in expr, f"{panel['title']}: a Grafana variable not replaced: {expr}"
            out[f"{panel['title']}/{target['refId']}"] = expr
    return out


def test_dashboard_matches_its_schema_and_tiles_the_grid(dashboard: dict[str, Any]) -> None:
    import jsonschema

    schema = json.loads((SCHEMAS / "grafana-dashboard.schema.json").read_text())
    errors = [
        f"{list(e.path)}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(dashboard)
    ]
    assert not errors, "\n".join(errors[:10])
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, f"{panel['title']} is wider than the grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    used = set(re.findall(r"\$(\w+)", json.dumps(dashboard["panels"])))
    assert used - {"__rate_interval", "__range"} <= variables


def test_dashboard_queries_parse_and_use_only_defined_metrics(
    dashboard: dict[str, Any], defined: dict[str, set[str]], promql: None
) -> None:
    exprs = panel_exprs(dashboard)
    assert not unknown_metrics(exprs, defined)
    used = set().union(*(metric_names(expr) for expr in exprs.values()))
    shown = {f: s for f, s in defined.items() if not f.endswith("_created")}  # not in multiprocess
    missing = sorted(family for family, samples in shown.items() if not samples & used)
    assert not missing, f"metrics the code exposes and no panel shows: {missing}"


def test_a_renamed_metric_is_reported(
    dashboard: dict[str, Any], defined: dict[str, set[str]], promql: None
) -> None:
    """The check above would notice a metric renamed in the code, or misspelt in a panel."""
    renamed = copy.deepcopy(dashboard)
    target = renamed["panels"][1]["targets"][0]
    target["expr"] = target["expr"].replace("modelops_requests_total", "modelops_request_total")
    assert any(
        "unknown metric modelops_request_total" in p
        for p in unknown_metrics(panel_exprs(renamed), defined)
    )
    without = {k: v for k, v in defined.items() if "modelops_requests_total" not in v}
    assert unknown_metrics(panel_exprs(dashboard), without)
    assert unknown_metrics({"broken": "sum(rate(modelops_requests_total[5m])"}, defined)


def test_dashboard_configmap_carries_the_file_for_the_sidecar(
    production: list[dict[str, Any]],
    dashboard: dict[str, Any],
    engine: HelmEngine,  # noqa: F811
) -> None:
    (configmap,) = [doc for doc in production if is_dashboard(doc)]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "modelops"}
    assert json.loads(configmap["data"]["modelops.json"]) == dashboard
    values = case_values("modelops-platform", "default")
    values["grafanaDashboard"] = {"enabled": False, "labels": {"grafana_dashboard": "1"}}
    assert not [doc for doc in render(engine, values) if is_dashboard(doc)]


def is_dashboard(doc: dict[str, Any]) -> bool:
    labels = doc["metadata"].get("labels", {})
    return bool(
        doc["kind"] == "ConfigMap" and labels.get("app.kubernetes.io/component") == "dashboard"
    )
