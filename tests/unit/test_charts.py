"""The Helm charts under ``charts/``, rendered by the real Helm engine.

Each chart is rendered once per module with the value sets in its ``ci/`` directory (the chart's
defaults or the least a deployment must set, and a production-like override set), by the ``helm``
CLI when it is on PATH and otherwise by the Helm SDK that the PyPI package ``helm-python-sdk``
binds (import name ``helm_python``). The renders are linted, validated against Kubernetes' OpenAPI
schemas (``kubernetes-validate``, strict, oldest and newest supported Kubernetes), scanned by
``checkov`` (every failure must be an exception listed with its reason in ``charts/README.md``),
and checked for the behaviour that matters: secure pod defaults, rollouts that never drop below
the ready count, probes on the service's endpoints, and secrets that are referenced, never
inlined, because the values schema has no place for them.

No cluster is involved: nothing is applied anywhere. A missing tool skips the tests that need it,
with the reason, and fails them under CI (support.skip_or_fail).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops.core.errors import ConfigError
from modelops.core.telemetry import TELEMETRY_OFF, disable_telemetry
from modelops.serving.config import PREFIX, VARIABLES, load_config
from support import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "charts"
README = CHARTS / "README.md"
NAMESPACE = "modelops-test"

# Kubernetes releases the manifests are validated against: the oldest the charts declare
# (Chart.yaml kubeVersion >=1.27) and the newest kubernetes-validate ships schemas for.
KUBE_VERSIONS = ("1.27.0", "1.37.0")
LINT_KUBE_VERSION = "v1.37.0"

# Custom resources have no schema in Kubernetes' OpenAPI, so kubernetes-validate cannot check
# them; their fields are asserted by the tests named here instead.
CRD_KINDS = {
    "ServiceMonitor": "Prometheus Operator CRD; fields asserted in test_service_monitor",
    "PrometheusRule": "Prometheus Operator CRD; validated against its CRD schema in "
    "test_chart_observability",
}

# (chart, value set) -> release name. Value sets are charts/<chart>/ci/<name>-values.yaml.
CASES: dict[tuple[str, str], str] = {
    ("model-service", "minimal"): "fraud-dev",
    ("model-service", "production"): "credit-risk-production",
    ("modelops-platform", "default"): "modelops-platform",
    ("modelops-platform", "production"): "modelops",
    ("modelops-platform", "cluster"): "modelops-cluster",
}

CASE_IDS = [f"{chart}-{case}" for chart, case in CASES]

# The workloads each case must render (kind/name): also pins which components a value set
# switches on and off.
WORKLOADS: dict[tuple[str, str], tuple[str, ...]] = {
    ("model-service", "minimal"): ("Deployment/fraud-dev-model-service",),
    ("model-service", "production"): ("Deployment/credit-risk-production",),
    ("modelops-platform", "default"): (
        "Deployment/modelops-platform-mlflow",
        "Deployment/modelops-platform-feature-server",
        "CronJob/modelops-platform-materialize",
    ),
    ("modelops-platform", "production"): (
        "Deployment/modelops-mlflow",
        "Deployment/modelops-feature-server",
        "CronJob/modelops-materialize",
        "CronJob/modelops-monitor-fraud",
        "CronJob/modelops-monitor-credit-risk",
    ),
    ("modelops-platform", "cluster"): (
        "Deployment/modelops-cluster-mlflow",
        "Deployment/modelops-cluster-feature-server",
        "CronJob/modelops-cluster-materialize",
        "CronJob/modelops-cluster-monitor-credit-risk",
    ),
}

# Environment variables that carry a secret: they must come from a Secret (secretKeyRef).
SECRET_ENV = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_?KEY|_KEY$|CONNECTION|DATABASE_URL"
    r"|REGISTRY_URL|BACKEND_STORE_URI"
)
CREDENTIAL_URL = re.compile(r"://[^/@\s:]*:[^/@\s]*@")


# --- tools ---------------------------------------------------------------------------------------


class RenderRefused(Exception):
    """The engine refused the values or a template failed to render."""


class HelmEngine:
    """Renders and lints a chart; two implementations of the same real Helm engine."""

    name = ""

    def render(self, chart: Path, values: dict[str, Any], release: str) -> dict[str, str]:
        """Template source path -> rendered text (NOTES.txt excluded)."""
        raise NotImplementedError

    def lint(self, chart: Path, values: dict[str, Any]) -> list[str]:
        """Lint findings of severity warning or error (``--strict``)."""
        raise NotImplementedError


class HelmCli(HelmEngine):
    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        version = subprocess.run(
            [binary, "version", "--short"], capture_output=True, text=True, check=False
        )
        self.name = f"helm CLI {version.stdout.strip()}"

    def _values_file(self, values: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
        path = self.workdir / f"values-{digest}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    def render(self, chart: Path, values: dict[str, Any], release: str) -> dict[str, str]:
        done = subprocess.run(
            [
                *(self.binary, "template", release, str(chart)),
                *("--namespace", NAMESPACE, "-f", str(self._values_file(values))),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RenderRefused(done.stderr + done.stdout)
        rendered: dict[str, str] = {}
        for part in re.split(r"^---\s*$", done.stdout, flags=re.MULTILINE):
            source = re.search(r"^# Source: (\S+)", part, flags=re.MULTILINE)
            if source and part.strip():
                rendered[source.group(1)] = rendered.get(source.group(1), "") + "\n---\n" + part
        return rendered

    def lint(self, chart: Path, values: dict[str, Any]) -> list[str]:
        done = subprocess.run(
            [
                *(self.binary, "lint", str(chart), "--strict", "--namespace", NAMESPACE),
                *("--kube-version", LINT_KUBE_VERSION, "-f", str(self._values_file(values))),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        findings = [
            line for line in done.stdout.splitlines() if line.startswith(("[ERROR]", "[WARNING]"))
        ]
        if done.returncode != 0 and not findings:
            findings = [done.stderr or done.stdout]
        return findings


class HelmSdk(HelmEngine):
    def __init__(self) -> None:
        import helm_python

        self.helm = helm_python
        self.name = (
            f"helm-python-sdk {helm_python.__version__} (Helm {helm_python.helm_sdk_version()})"
        )
        self._charts: dict[Path, Any] = {}

    def render(self, chart: Path, values: dict[str, Any], release: str) -> dict[str, str]:
        if chart not in self._charts:
            self._charts[chart] = self.helm.Chart.load(chart)
        try:
            rendered: dict[str, str] = self._charts[chart].render(
                values=values, name=release, namespace=NAMESPACE
            )
        except self.helm.HelmError as exc:
            raise RenderRefused(str(exc)) from exc
        return {path: text for path, text in rendered.items() if not path.endswith("NOTES.txt")}

    def lint(self, chart: Path, values: dict[str, Any]) -> list[str]:
        report = self.helm.lint(
            chart, values, strict=True, namespace=NAMESPACE, kube_version=LINT_KUBE_VERSION
        )
        findings = [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2]
        return findings + list(report.get("errors") or [])


def find_checkov() -> str | None:
    """checkov lives in its own virtualenv (its pins conflict with the platform's dependencies):
    $CHECKOV, then .venv-tools/bin/checkov, then next to this interpreter, then PATH."""
    candidates = [
        os.environ.get("CHECKOV", ""),
        str(REPO / ".venv-tools" / "bin" / "checkov"),
        str(Path(sys.executable).parent / "checkov"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("checkov")


# --- rendering -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Render:
    chart: str
    case: str
    release: str
    values: dict[str, Any]
    texts: dict[str, str]
    docs: tuple[dict[str, Any], ...]

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.objects(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.chart}/{self.case}: {len(found)} {kind} named {name}"
        return found[0]


def case_values(chart: str, case: str) -> dict[str, Any]:
    loaded = yaml.safe_load((CHARTS / chart / "ci" / f"{case}-values.yaml").read_text())
    return loaded or {}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> HelmEngine:
    binary = shutil.which("helm")
    if binary:
        return HelmCli(binary, tmp_path_factory.mktemp("helm-values"))
    try:
        return HelmSdk()
    except ImportError:
        skip_or_fail(
            "needs the Helm engine: the helm CLI on PATH or the PyPI package helm-python-sdk"
        )
        raise  # unreachable: skip_or_fail skips or fails


@pytest.fixture(scope="module")
def renders(engine: HelmEngine) -> dict[tuple[str, str], Render]:
    out = {}
    for (chart, case), release in CASES.items():
        values = case_values(chart, case)
        texts = engine.render(CHARTS / chart, values, release)
        docs = tuple(
            doc for text in texts.values() for doc in yaml.safe_load_all(text) if doc is not None
        )
        out[chart, case] = Render(chart, case, release, values, texts, docs)
    return out


@pytest.fixture(scope="module")
def manifests_dir(
    renders: dict[tuple[str, str], Render], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Every render written as files: <root>/<chart>/<case>/<template>.yaml."""
    root = tmp_path_factory.mktemp("rendered")
    for (chart, case), render in renders.items():
        target = root / chart / case
        target.mkdir(parents=True)
        for source, text in render.texts.items():
            if text.strip():
                (target / Path(source).name).write_text(text)
    return root


def pod_specs(render: Render) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(kind/name, pod template metadata, pod spec) of every workload."""
    for doc in render.docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            template = spec["jobTemplate"]["spec"]["template"]
        elif doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            template = spec["template"]
        elif doc["kind"] == "Pod":
            template = doc
        else:
            continue
        yield f"{doc['kind']}/{doc['metadata']['name']}", template["metadata"], template["spec"]


def workload(render: Render, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for found, metadata, spec in pod_specs(render):
        if found == name:
            return metadata, spec
    raise AssertionError(f"{render.chart}/{render.case}: no workload {name}")


# --- Helm: lint and render -----------------------------------------------------------------------


@pytest.mark.parametrize(("chart", "case"), list(CASES), ids=CASE_IDS)
def test_helm_lint_is_clean(engine: HelmEngine, chart: str, case: str) -> None:
    findings = engine.lint(CHARTS / chart, case_values(chart, case))
    assert not findings, f"{engine.name}: helm lint --strict {chart} ({case}):\n" + "\n".join(
        findings
    )


@pytest.mark.parametrize("case", list(CASES), ids=CASE_IDS)
def test_renders_exactly_the_expected_workloads(
    renders: dict[tuple[str, str], Render], case: tuple[str, str]
) -> None:
    render = renders[case]
    assert render.docs, f"{case}: nothing rendered"
    assert sorted(name for name, _, _ in pod_specs(render)) == sorted(WORKLOADS[case])
    for doc in render.docs:
        assert doc["metadata"].get("namespace") == NAMESPACE, (
            f"{doc['kind']}/{doc['metadata']['name']} does not set the release namespace"
        )
    assert not render.objects("Secret"), "the charts never create or hold a Secret"


# --- Kubernetes schemas --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        skip_or_fail("needs the PyPI package kubernetes-validate")
    return kubernetes_validate


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("case", list(CASES), ids=CASE_IDS)
def test_manifests_match_the_kubernetes_openapi_schemas(
    renders: dict[tuple[str, str], Render],
    kubernetes_validate: Any,
    case: tuple[str, str],
    kube_version: str,
) -> None:
    errors = []
    for doc in renders[case].docs:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except Exception as exc:  # ValidationError, SchemaNotFoundError: both are findings
            where = "/".join(str(p) for p in getattr(exc, "path", ()))
            message = getattr(exc, "message", str(exc))
            errors.append(f"{doc['kind']}/{doc['metadata']['name']} {where}: {message}")
    assert not errors, f"Kubernetes {kube_version}:\n" + "\n".join(errors)


def test_the_schema_validation_is_strict(
    renders: dict[tuple[str, str], Render], kubernetes_validate: Any
) -> None:
    """A misspelt field is caught: the check above would notice a template typo."""
    deployment = copy.deepcopy(renders["model-service", "minimal"].objects("Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"path": "/readyz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


# --- checkov -------------------------------------------------------------------------------------


def listed_exceptions() -> dict[tuple[str, str], str]:
    """(check id, chart) -> reason, from the exceptions table in charts/README.md."""
    listed: dict[tuple[str, str], str] = {}
    for line in README.read_text().splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"CKV2?_K8S_\d+", cells[0]):
            for chart in cells[1].split(","):
                listed[cells[0], chart.strip().strip("`")] = cells[2]
    return listed


def test_every_listed_checkov_exception_has_a_reason() -> None:
    listed = listed_exceptions()
    assert listed, "charts/README.md has no checkov exceptions table"
    for (check, chart), reason in listed.items():
        assert (CHARTS / chart / "Chart.yaml").is_file(), f"{check}: unknown chart {chart}"
        assert len(reason) >= 40, f"{check} ({chart}): the reason must say why, got {reason!r}"


@pytest.fixture(scope="module")
def checkov_failures(manifests_dir: Path) -> dict[tuple[str, str], list[str]]:
    """(check id, chart) -> where it failed, over every render, from one checkov run."""
    binary = find_checkov()
    if binary is None:
        skip_or_fail("needs checkov (in .venv-tools, $CHECKOV or on PATH; see charts/README.md)")
    assert binary is not None
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE"}
    done = subprocess.run(
        [
            *(binary, "-d", str(manifests_dir), "--framework", "kubernetes", "-o", "json"),
            *("--skip-download", "--soft-fail"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, f"checkov failed to run:\n{done.stderr[-3000:]}"
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert any(r.get("summary", {}).get("resource_count") for r in reports), done.stdout[:2000]
    failures: dict[tuple[str, str], list[str]] = {}
    for report in reports:
        assert report["summary"]["parsing_errors"] == 0, report["results"].get("parsing_errors")
        for failed in report["results"]["failed_checks"]:
            path = Path(failed.get("file_abs_path") or failed["file_path"])
            chart, case = path.parts[-3], path.parts[-2]
            where = f"{failed['resource']} ({case}): {failed['check_name']}"
            failures.setdefault((failed["check_id"], chart), []).append(where)
    return failures


def test_checkov_finds_nothing_beyond_the_listed_exceptions(
    checkov_failures: dict[tuple[str, str], list[str]],
) -> None:
    listed = listed_exceptions()
    unlisted = {key: where for key, where in checkov_failures.items() if key not in listed}
    assert not unlisted, "checkov failures not listed in charts/README.md:\n" + "\n".join(
        f"{check} [{chart}] {where}"
        for (check, chart), wheres in unlisted.items()
        for where in wheres
    )


def test_checkov_exceptions_are_still_needed(
    checkov_failures: dict[tuple[str, str], list[str]],
) -> None:
    stale = sorted(key for key in listed_exceptions() if key not in checkov_failures)
    assert not stale, (
        "listed in charts/README.md but no longer failing (remove them from the table): "
        + ", ".join(f"{check} [{chart}]" for check, chart in stale)
    )


# --- secure defaults, for every pod ------------------------------------------------------------

ALL_WORKLOADS = [(case, name) for case, names in WORKLOADS.items() for name in names]


@pytest.mark.parametrize(
    ("case", "name"), ALL_WORKLOADS, ids=[f"{c[0]}-{c[1]}-{n}" for c, n in ALL_WORKLOADS]
)
def test_every_pod_runs_with_the_secure_defaults(
    renders: dict[tuple[str, str], Render], case: tuple[str, str], name: str
) -> None:
    _, pod = workload(renders[case], name)
    pod_context = pod.get("securityContext", {})
    assert pod["automountServiceAccountToken"] is False
    assert pod.get("serviceAccountName") not in (None, "", "default")
    assert pod.get("enableServiceLinks") is False
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host), host
    assert pod_context.get("runAsNonRoot") is True
    assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault"

    scratch = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    for container in pod.get("initContainers", []) + pod["containers"]:
        context = container.get("securityContext", {})
        label = f"container {container['name']}"
        assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, label
        assert context.get("readOnlyRootFilesystem") is True, label
        assert context.get("allowPrivilegeEscalation") is False, label
        assert context.get("privileged", False) is False, label
        assert context.get("capabilities", {}).get("drop") == ["ALL"], label
        assert not context.get("capabilities", {}).get("add"), label
        seccomp = context.get("seccompProfile", pod_context.get("seccompProfile", {}))
        assert seccomp.get("type") == "RuntimeDefault", label
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"].get(bound, {})), (label, bound)
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        assert mounts.get("/tmp") in scratch, f"{label}: /tmp must be an emptyDir (read-only root)"
        assert ":latest" not in container["image"] and (
            "@sha256:" in container["image"] or ":" in container["image"].rsplit("/", 1)[-1]
        ), f"{label}: image {container['image']} is not pinned"


@pytest.mark.parametrize("case", list(CASES), ids=CASE_IDS)
def test_service_accounts_never_mount_a_token(
    renders: dict[tuple[str, str], Render], case: tuple[str, str]
) -> None:
    accounts = renders[case].objects("ServiceAccount")
    assert accounts
    for account in accounts:
        assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("case", list(CASES), ids=CASE_IDS)
def test_every_pod_is_selected_by_a_network_policy(
    renders: dict[tuple[str, str], Render], case: tuple[str, str]
) -> None:
    render = renders[case]
    policies = render.objects("NetworkPolicy")
    for name, metadata, _ in pod_specs(render):
        labels = metadata["labels"]
        selecting = [
            p
            for p in policies
            if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
            and {"Ingress", "Egress"} <= set(p["spec"]["policyTypes"])
        ]
        assert selecting, f"{name}: no NetworkPolicy restricts both ingress and egress"
        for policy in selecting:
            for rule in policy["spec"]["egress"]:
                for peer in rule.get("to", []):
                    assert peer, f"{policy['metadata']['name']}: an empty peer allows everything"
                    cidr = peer.get("ipBlock", {}).get("cidr")
                    assert cidr not in ("0.0.0.0/0", "::/0"), policy["metadata"]["name"]
                assert rule.get("ports"), f"{policy['metadata']['name']}: egress on every port"


# --- model-service: rollout, probes, scaling, labels, config ---------------------------------


def service_deployment(render: Render) -> dict[str, Any]:
    return render.one("Deployment")


def test_rollouts_never_take_a_ready_pod_away_first(
    renders: dict[tuple[str, str], Render],
) -> None:
    for case in (("model-service", "minimal"), ("model-service", "production")):
        strategy = service_deployment(renders[case])["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate"
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0
        assert strategy["rollingUpdate"]["maxSurge"] not in (0, "0", "0%")
    for case in (("modelops-platform", "default"), ("modelops-platform", "production")):
        platform = renders[case]
        feature_server = platform.one("Deployment", f"{platform_prefix(platform)}-feature-server")
        assert feature_server["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def platform_prefix(render: Render) -> str:
    return render.values.get("fullnameOverride") or render.release


@pytest.mark.parametrize("case", ["minimal", "production"])
def test_probes_use_the_service_endpoints(
    renders: dict[tuple[str, str], Render], case: str
) -> None:
    render = renders["model-service", case]
    container = service_deployment(render)["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 3000}
    for probe, path in (
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    service = render.one("Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}
    ]
    deployment_labels = service_deployment(render)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= deployment_labels.items()


def test_the_hpa_owns_the_replica_count_unless_disabled(
    renders: dict[tuple[str, str], Render],
) -> None:
    scaled = renders["model-service", "minimal"]
    hpa = scaled.one("HorizontalPodAutoscaler")
    deployment = service_deployment(scaled)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in deployment["spec"], "the HPA, not the chart, sets replicas"

    fixed = renders["model-service", "production"]
    assert not fixed.objects("HorizontalPodAutoscaler")
    assert service_deployment(fixed)["spec"]["replicas"] == 3


@pytest.mark.parametrize("case", ["minimal", "production"])
def test_the_disruption_budget_covers_the_pods(
    renders: dict[tuple[str, str], Render], case: str
) -> None:
    render = renders["model-service", case]
    pdb = render.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = service_deployment(render)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_service_monitor_is_off_by_default_and_scrapes_metrics_when_on(
    renders: dict[tuple[str, str], Render],
) -> None:
    assert not renders["model-service", "minimal"].objects("ServiceMonitor")
    render = renders["model-service", "production"]
    monitor = render.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    service = render.one("Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    policy = render.one("NetworkPolicy")
    sources = policy["spec"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    } in (sources), "Prometheus must be let in to scrape"


def test_network_policy_limits_callers_and_destinations(
    renders: dict[tuple[str, str], Render],
) -> None:
    default = renders["model-service", "minimal"].one("NetworkPolicy")["spec"]
    assert default["ingress"] == [
        {"from": [{"podSelector": {}}], "ports": [{"port": "http", "protocol": "TCP"}]}
    ], "by default only pods of the release namespace may call the service"
    assert len(default["egress"]) == 1, "by default DNS is the only destination"
    assert {p["port"] for p in default["egress"][0]["ports"]} == {53}

    production = renders["model-service", "production"].one("NetworkPolicy")["spec"]
    assert production["ingress"][0]["from"][0] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    }
    destinations = {
        rule["to"][0]["ipBlock"]["cidr"]: [p["port"] for p in rule["ports"]]
        for rule in production["egress"][1:]
    }
    assert destinations == {"10.20.0.0/24": [6379], "10.30.0.0/24": [5432]}


@pytest.mark.parametrize("case", list(CASES), ids=CASE_IDS)
def test_standard_labels_on_every_object(
    renders: dict[tuple[str, str], Render], case: tuple[str, str]
) -> None:
    render = renders[case]
    required = {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/component",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/managed-by",
        "helm.sh/chart",
    }
    if render.chart == "model-service":
        required |= {"modelops.io/project", "modelops.io/model-version"}
    labelled = list(render.docs) + [{"metadata": m, "kind": n} for n, m, _ in pod_specs(render)]
    for doc in labelled:
        missing = required - set(doc["metadata"].get("labels", {}))
        assert not missing, f"{doc['kind']} {doc['metadata'].get('name', '')}: {sorted(missing)}"


@pytest.mark.parametrize(
    ("case", "project", "version", "environment"),
    [("minimal", "fraud", "4", "dev"), ("production", "credit_risk", "12", "production")],
)
def test_the_pod_knows_what_it_serves(
    renders: dict[tuple[str, str], Render],
    case: str,
    project: str,
    version: str,
    environment: str,
) -> None:
    render = renders["model-service", case]
    template = service_deployment(render)["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert labels["modelops.io/project"] == project
    assert labels["modelops.io/model-version"] == version
    env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
    assert env["MODELOPS_SERVING_PROJECT"]["value"] == project
    assert env["MODELOPS_SERVING_MODEL_VERSION"]["value"] == version
    assert env["MODELOPS_SERVING_ENVIRONMENT"]["value"] == environment
    image = template["spec"]["containers"][0]["image"]
    tag = render.values["image"]["tag"]
    assert image.endswith(f":{tag}") or "@sha256:" in image
    assert labels["app.kubernetes.io/version"] == tag
    # The service refuses unknown MODELOPS_SERVING_* variables at start-up, and a release of
    # another project or version than these two declare.
    serving_vars = {name for name in env if name.startswith(PREFIX)}
    assert serving_vars <= set(VARIABLES), sorted(serving_vars - set(VARIABLES))
    config = load_config(
        {name: env[name]["value"] for name in serving_vars if "value" in env[name]}
    )
    config.check_release(project, version, "the image")
    with pytest.raises(ConfigError, match="MODELOPS_SERVING_MODEL_VERSION"):
        config.check_release(project, f"{version}0", "the image")


@pytest.mark.parametrize("case", ["minimal", "production"])
def test_feature_store_config_comes_from_the_configmap_with_secrets_by_reference(
    renders: dict[tuple[str, str], Render], case: str
) -> None:
    render = renders["model-service", case]
    configmap = render.one("ConfigMap")
    config = yaml.safe_load(configmap["data"]["feature_store.yaml"])
    assert config["online_store"] == {
        "type": "redis",
        "connection_string": "${MODELOPS_REDIS_CONNECTION}",
    }
    assert config["registry"]["path"] == "${MODELOPS_FEAST_REGISTRY_URL}"

    template = service_deployment(render)["spec"]["template"]
    container = template["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    store = render.values.get("featureStore", {})
    for variable, key, default_secret in (
        ("MODELOPS_REDIS_CONNECTION", "onlineStore", "modelops-redis"),
        ("MODELOPS_FEAST_REGISTRY_URL", "registry", "modelops-feast-registry"),
    ):
        ref = env[variable]["valueFrom"]["secretKeyRef"]
        assert "value" not in env[variable]
        assert ref["name"] == store.get(key, {}).get("secretName", default_secret)

    repo_dir = env["MODELOPS_SERVING_FEATURE_REPO"]["value"]
    mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = next(v for v in template["spec"]["volumes"] if v["name"] == mounted[repo_dir])
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert env["MODELOPS_SERVING_FEATURE_STORE_YAML"]["value"] == "feature_store.yaml"

    assert re.fullmatch(
        r"[0-9a-f]{64}", template["metadata"]["annotations"]["checksum/feature-store-config"]
    )


@pytest.mark.parametrize("case", ["minimal", "production"])
def test_the_service_verifies_its_release_with_the_public_key_from_a_secret(
    renders: dict[tuple[str, str], Render], case: str
) -> None:
    """Secure by default: the key the signed release record must verify under comes from a
    Secret (the pod does not start without it); no value sets it, so none can inline another."""
    render = renders["model-service", case]
    container = service_deployment(render)["spec"]["template"]["spec"]["containers"][0]
    variable = next(e for e in container["env"] if e["name"].endswith("RELEASE_PUBLIC_KEY"))
    assert variable["name"] in VARIABLES and "value" not in variable
    ref = variable["valueFrom"]["secretKeyRef"]
    key = render.values.get("releaseKey", {})
    assert ref["name"] == key.get("secretName", "modelops-release-key")
    assert ref["key"] == key.get("secretKey", "public-key") and "optional" not in ref


def test_a_changed_feature_store_config_rolls_the_pods(engine: HelmEngine) -> None:
    def checksum(values: dict[str, Any]) -> str:
        texts = engine.render(CHARTS / "model-service", values, "checksum")
        deployment = next(
            doc
            for text in texts.values()
            for doc in yaml.safe_load_all(text)
            if doc and doc["kind"] == "Deployment"
        )
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/feature-store-config"])

    values = case_values("model-service", "minimal")
    before = checksum(values)
    assert checksum({**values, "replicaCount": 5}) == before, "unrelated change rolled the pods"
    changed = {**values, "featureStore": {"registryCacheTtlSeconds": 5}}
    assert checksum(changed) != before, "a changed feature_store.yaml must roll the pods"


# --- modelops-platform ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["default", "production"])
def test_platform_components_run_the_expected_commands(
    renders: dict[tuple[str, str], Render], case: str
) -> None:
    render = renders["modelops-platform", case]
    prefix = platform_prefix(render)

    _, mlflow = workload(render, f"Deployment/{prefix}-mlflow")
    server = mlflow["containers"][0]
    assert server["command"] == ["mlflow"] and server["args"][0] == "server"
    backend = {e["name"]: e for e in server["env"]}["MLFLOW_BACKEND_STORE_URI"]
    assert "secretKeyRef" in backend["valueFrom"]
    assert not any("backend-store-uri" in arg for arg in server["args"])
    assert render.one("Service", f"{prefix}-mlflow")["spec"]["ports"][0]["port"] == 5000

    _, feast = workload(render, f"Deployment/{prefix}-feature-server")
    assert feast["containers"][0]["command"] == ["feast"]
    assert "serve" in feast["containers"][0]["args"]
    assert render.one("Service", f"{prefix}-feature-server")

    _, materialize = workload(render, f"CronJob/{prefix}-materialize")
    assert materialize["containers"][0]["args"] == ["features", "materialize"]
    monitored = render.values.get("monitoring", {}).get("projects", [])
    for project in monitored:
        _, monitor = workload(render, f"CronJob/{prefix}-monitor-{project.replace('_', '-')}")
        assert monitor["containers"][0]["command"] == ["modelops"]
        assert monitor["containers"][0]["args"] == ["monitor", project, "--once"]
    for cronjob in render.objects("CronJob"):
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        env = {
            e["name"]: e
            for e in cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0][
                "env"
            ]
        }
        assert env["MODELOPS_PROFILE"]["value"] == render.values.get("profile", "production")
        assert env["MODELOPS_MLFLOW_TRACKING_URI"]["value"] == (
            f"http://{prefix}-mlflow.{NAMESPACE}.svc:5000"
        )
        for secret in ("MODELOPS_DATABASE_URL", "MODELOPS_LEDGER_KEY", "MODELOPS_REDIS_CONNECTION"):
            assert "secretKeyRef" in env[secret]["valueFrom"], secret


def test_the_cluster_profile_reaches_spark_and_s3_with_keys_from_a_secret(
    renders: dict[tuple[str, str], Render],
) -> None:
    """profile: cluster: the MLflow server keeps artifacts in the bucket (no volume) and reads
    it with keys from the existing Secret; every job gets the Spark master, its configuration
    and output, the endpoint, and the same keys by reference."""
    render = renders["modelops-platform", "cluster"]
    values = render.values
    _, mlflow = workload(render, "Deployment/modelops-cluster-mlflow")
    server = mlflow["containers"][0]
    assert "--artifacts-destination=s3://modelops-artifacts/mlflow" in server["args"]
    assert not [v for v in mlflow.get("volumes", []) if "persistentVolumeClaim" in v]
    assert not render.objects("PersistentVolumeClaim")
    server_env = {e["name"]: e for e in server["env"]}
    assert server_env["MLFLOW_S3_ENDPOINT_URL"]["value"] == values["s3"]["endpointUrl"]
    for name, key in (
        ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    ):
        assert server_env[name]["valueFrom"]["secretKeyRef"] == {"name": "modelops-s3", "key": key}
    cronjobs = render.objects("CronJob")
    assert cronjobs
    for cronjob in cronjobs:
        container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["MODELOPS_PROFILE"]["value"] == "cluster"
        assert env["MODELOPS_SPARK_MASTER"]["value"] == "spark://spark-master.spark.svc:7077"
        assert json.loads(env["MODELOPS_SPARK_CONF"]["value"]) == values["spark"]["conf"]
        assert env["MODELOPS_SPARK_OUTPUT_URI"]["value"] == "s3a://modelops-artifacts/joins"
        assert env["MODELOPS_S3_ENDPOINT_URL"]["value"] == values["s3"]["endpointUrl"]
        assert env["AWS_DEFAULT_REGION"]["value"] == "eu-west-1"
        assert "secretKeyRef" in env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]


def test_the_production_profile_sets_no_spark_or_s3_variables(
    renders: dict[tuple[str, str], Render],
) -> None:
    render = renders["modelops-platform", "production"]
    for name, _, pod in pod_specs(render):
        for container in pod["containers"]:
            names = {e["name"] for e in container.get("env", [])}
            assert not {
                n for n in names if n.startswith(("MODELOPS_SPARK", "AWS_", "MLFLOW_S3"))
            }, name


# --- secrets: referenced, never inlined ----------------------------------------------------------


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)
    elif isinstance(node, str):
        yield node


def container_envs(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """(workload/container, its plain env values) of every container."""
    render = Render("", "", "", {}, {}, tuple(docs))
    for name, _, spec in pod_specs(render):
        for container in spec.get("initContainers", []) + spec["containers"]:
            env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
            yield f"{name}/{container['name']}", env


@pytest.mark.parametrize("case", list(CASES), ids=CASE_IDS)
def test_every_container_turns_usage_reporting_off(
    renders: dict[tuple[str, str], Render], case: tuple[str, str]
) -> None:
    containers = list(container_envs(renders[case].docs))
    assert containers
    for where, env in containers:
        for name, value in TELEMETRY_OFF.items():
            assert env.get(name) == value, f"{where}: {name}={env.get(name)!r}"


@pytest.mark.parametrize("chart", sorted({chart for chart, _ in CASES}))
def test_telemetry_enabled_opts_every_container_in(engine: HelmEngine, chart: str) -> None:
    case = next(c for c_chart, c in CASES if c_chart == chart)
    values = merge(case_values(chart, case), {"telemetry": {"enabled": True}})
    texts = engine.render(CHARTS / chart, values, "telemetry")
    docs = tuple(d for text in texts.values() for d in yaml.safe_load_all(text) if d is not None)
    containers = list(container_envs(docs))
    assert containers
    for where, env in containers:
        # what the platform's start-up leaves of them: the opt-in survives it
        disable_telemetry(env)
        assert env["MLFLOW_DISABLE_TELEMETRY"] == "false", where
        assert env["BENTOML_DO_NOT_TRACK"] == "false", where
        assert "DO_NOT_TRACK" not in env, where


@pytest.mark.parametrize("case", list(CASES), ids=CASE_IDS)
def test_no_secret_value_is_inlined_anywhere(
    renders: dict[tuple[str, str], Render], case: tuple[str, str]
) -> None:
    render = renders[case]
    for text in walk_strings(list(render.docs)):
        assert not CREDENTIAL_URL.search(text), f"credentials in a rendered string: {text[:80]}"
    carried = set()
    for name, _, pod in pod_specs(render):
        for container in pod["containers"]:
            for variable in container.get("env", []):
                if SECRET_ENV.search(variable["name"]):
                    assert "value" not in variable, f"{name}: {variable['name']} is inlined"
                    assert variable["valueFrom"]["secretKeyRef"]["name"], variable
                    carried.add(variable["name"])
    assert {"MODELOPS_REDIS_CONNECTION", "MODELOPS_FEAST_REGISTRY_URL"} <= carried


MINIMAL = {
    "project": "fraud",
    "modelVersion": "4",
    "image": {"repository": "registry.example.com/fraud", "tag": "1-a"},
}

REFUSED: list[tuple[str, dict[str, Any], str]] = [
    # (chart, values, what the refusal names)
    ("model-service", {**MINIMAL, "replicas": 3}, "replicas"),
    ("model-service", {**MINIMAL, "image": {"repository": "r.example.com/x"}}, "tag"),
    ("model-service", {**MINIMAL, "image": {**MINIMAL["image"], "tag": None}}, "tag"),
    ("model-service", {**MINIMAL, "image": {**MINIMAL["image"], "tag": "latest"}}, "tag"),
    ("model-service", {k: v for k, v in MINIMAL.items() if k != "modelVersion"}, "modelVersion"),
    ("model-service", {k: v for k, v in MINIMAL.items() if k != "project"}, "project"),
    (
        "model-service",
        {**MINIMAL, "featureStore": {"onlineStore": {"password": "hunter2"}}},
        "password",
    ),
    ("model-service", {**MINIMAL, "extraEnv": {"REDIS_PASSWORD": "hunter2"}}, "REDIS_PASSWORD"),
    (
        "model-service",
        {**MINIMAL, "extraEnv": {"FEAST_DB": "postgresql://feast:hunter2@db:5432/feast"}},
        "extraEnv",
    ),
    (
        "model-service",
        {
            **MINIMAL,
            "secretEnv": [{"name": "X", "secretName": "s", "secretKey": "k", "value": "hunter2"}],
        },
        "value",
    ),
    (
        "model-service",
        {**MINIMAL, "securityContext": {"readOnlyRootFilesystem": False}},
        "readOnly",
    ),
    ("model-service", {**MINIMAL, "podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
    # MODELOPS_SERVING_* come from the values modelops deploy owns, never from extraEnv/secretEnv
    (
        "model-service",
        {**MINIMAL, "extraEnv": {"MODELOPS_SERVING_MODEL_VERSION": "9"}},
        "MODELOPS_SERVING_MODEL_VERSION",
    ),
    (
        "model-service",
        {**MINIMAL, "extraEnv": {"modelops_serving_release": "/tmp/other"}},
        "modelops_serving_release",
    ),
    (
        "model-service",
        {
            **MINIMAL,
            "secretEnv": [
                {"name": "MODELOPS_SERVING_PREDICTION_LOG", "secretName": "s", "secretKey": "k"}
            ],
        },
        "secretEnv",
    ),
    ("model-service", {**MINIMAL, "serving": {"workers": 0}}, "workers"),
    ("model-service", {**MINIMAL, "serving": {"release": "/tmp/other"}}, "release"),
    (
        "model-service",
        {**MINIMAL, "serving": {"predictionLog": "postgresql://u:hunter2@db/log"}},
        "predictionLog",
    ),
    # values pinned to another chart version than the one rendering them
    ("model-service", {**MINIMAL, "chartVersion": "0.0.9"}, "chartVersion 0.0.9"),
    ("modelops-platform", {"replicas": 3}, "replicas"),
    ("modelops-platform", {"secrets": {"redis": {"password": "hunter2"}}}, "password"),
    (
        "modelops-platform",
        {"mlflowTrackingUri": "http://admin:hunter2@mlflow:5000"},
        "mlflowTrackingUri",
    ),
    ("modelops-platform", {"image": {"tag": "latest"}}, "tag"),
    (
        "modelops-platform",
        {"spark": {"conf": {"spark.hadoop.fs.s3a.secret.key": "hunter2"}}},
        "conf",
    ),
    ("modelops-platform", {"s3": {"endpointUrl": "https://key:hunter2@minio:9000"}}, "endpointUrl"),
    ("modelops-platform", {"s3": {"accessKey": "AKIA0000"}}, "accessKey"),
    ("modelops-platform", {"profile": "embedded"}, "profile"),
    (
        "modelops-platform",
        {"securityContext": {"allowPrivilegeEscalation": True}},
        "allowPrivilege",
    ),
]


@pytest.mark.parametrize(
    ("chart", "values", "named"),
    REFUSED,
    ids=[f"{chart}-{i}-{named}" for i, (chart, _, named) in enumerate(REFUSED)],
)
def test_the_values_schema_refuses(
    engine: HelmEngine, chart: str, values: dict[str, Any], named: str
) -> None:
    with pytest.raises(RenderRefused) as refused:
        engine.render(CHARTS / chart, values, "refused")
    assert named in str(refused.value), str(refused.value)


def test_values_pinned_to_this_chart_version_render(engine: HelmEngine) -> None:
    version = yaml.safe_load((CHARTS / "model-service" / "Chart.yaml").read_text())["version"]
    texts = engine.render(CHARTS / "model-service", {**MINIMAL, "chartVersion": version}, "pin")
    assert any("kind: Deployment" in text for text in texts.values())


def test_serving_tuning_becomes_the_services_variables(
    renders: dict[tuple[str, str], Render],
) -> None:
    minimal, production = (
        {
            e["name"]: e.get("value")
            for e in service_deployment(renders["model-service", case])["spec"]["template"]["spec"][
                "containers"
            ][0]["env"]
            if e["name"].startswith(PREFIX)
        }
        for case in ("minimal", "production")
    )
    assert {"MODELOPS_SERVING_WORKERS", "MODELOPS_SERVING_THREADS"}.isdisjoint(minimal)
    assert production["MODELOPS_SERVING_WORKERS"] == "2"
    assert production["MODELOPS_SERVING_THREADS"] == "8"
    assert production["MODELOPS_SERVING_LOG_QUEUE"] == "1000000"  # not 1e+06
    assert production["MODELOPS_SERVING_ACCESS_LOG"] == "false"
    config = load_config({name: value for name, value in production.items() if value})
    assert (config.workers, config.threads, config.log_queue) == (2, 8, 1_000_000)


def test_model_service_defaults_alone_are_refused_naming_what_is_required(
    engine: HelmEngine,
) -> None:
    with pytest.raises(RenderRefused) as refused:
        engine.render(CHARTS / "model-service", {}, "unset")
    for required in ("project", "modelVersion", "repository", "tag"):
        assert required in str(refused.value)


# --- values: documented, and in step with the schema --------------------------------------------

CHART_NAMES = ("model-service", "modelops-platform")


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_values_schema_is_draft_07_and_matches_values_yaml(chart: str) -> None:
    try:
        import jsonschema
    except ImportError:
        skip_or_fail("needs the PyPI package jsonschema")
    schema = json.loads((CHARTS / chart / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    values = yaml.safe_load((CHARTS / chart / "values.yaml").read_text())
    assert set(schema["properties"]) - {"global"} == set(values), "schema and values.yaml differ"
    assert schema["additionalProperties"] is False
    for case in (c for c_chart, c in CASES if c_chart == chart):
        merged = merge(values, case_values(chart, case))
        jsonschema.Draft7Validator(schema).validate(merged)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_every_value_is_documented_helm_docs_style(chart: str) -> None:
    """Each value has a ``# --`` comment above it or above a key it sits under; a section whose
    every value is documented needs none itself."""
    lines = (CHARTS / chart / "values.yaml").read_text().splitlines()
    keys = []  # (line number, indent, key, is a section of further keys)
    for number, line in enumerate(lines):
        key = re.match(r"^(\s*)([A-Za-z][\w.-]*):\s*(.*)$", line)
        if not key:
            continue
        following = next(
            (nxt for nxt in lines[number + 1 :] if nxt.strip() and not nxt.strip().startswith("#")),
            "",
        )
        deeper = len(following) - len(following.lstrip()) > len(key.group(1))
        section = not key.group(3) and deeper and not following.strip().startswith("-")
        keys.append((number, len(key.group(1)), key.group(2), section))

    def has_doc(number: int) -> bool:
        above = number - 1
        while above >= 0 and lines[above].strip().startswith("#"):
            if lines[above].strip().startswith("# --"):
                return True
            above -= 1
        return False

    undocumented = []
    ancestors: list[tuple[int, bool]] = []  # (indent, documented) of the open sections
    for number, indent, key, section in keys:
        ancestors = [a for a in ancestors if a[0] < indent]
        documented = has_doc(number) or any(doc for _, doc in ancestors)
        if section:
            ancestors.append((indent, documented))
        elif not documented:
            undocumented.append(key)
    assert not undocumented, f"{chart}/values.yaml values without a `# --` comment: {undocumented}"
