"""The status page in a real browser: headless Chromium (Debian's ``chromium``), driven over the
Chrome DevTools Protocol with ``websocket-client`` (no browser download, no driver binary).

From the front page, every page of the site and every file it links to (the Evidently reports,
the summaries) is opened: each must load (no missing file), each fragment must name an element,
and no page may log a console error, throw, or fail to load a resource. A screenshot of the front
page is saved in the test's tmp directory.

The state is the unit test's (tests/unit/test_status_page.py ``populate``), with a real MLflow
registry instead of the stub and a real Evidently report instead of the placeholder.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote, urlsplit

import pytest

from modelops.config.settings import Settings
from modelops.services import status_page

pytestmark = pytest.mark.integration

UNIT = Path(__file__).resolve().parents[1] / "unit" / "test_status_page.py"
CHROMIUM = os.environ.get("MODELOPS_CHROMIUM", "/usr/bin/chromium")
PAGE_TIMEOUT_S = 60.0
LINKS = (
    "Array.from(document.querySelectorAll('a[href],link[href],img[src],script[src],iframe[src]'))"
    ".map(e => e.href && e.href.baseVal !== undefined"  # an SVG link (in a plot)
    " ? new URL(e.href.baseVal, document.baseURI).href : e.href || e.src)"
)


def _has_id(fragment: str) -> str:
    return f"document.getElementById({json.dumps(fragment)}) !== null"


def _unit_state() -> Any:
    spec = importlib.util.spec_from_file_location("status_page_state", UNIT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- CDP


class Browser:
    """One page of a headless Chromium, over the DevTools protocol."""

    def __init__(self, ws_url: str) -> None:
        import websocket

        self._ws = websocket.create_connection(ws_url, timeout=PAGE_TIMEOUT_S, suppress_origin=True)
        self._id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def close(self) -> None:
        self._ws.close()

    def _receive(self, deadline: float) -> dict[str, Any]:
        self._ws.settimeout(max(0.1, deadline - time.monotonic()))
        message: dict[str, Any] = json.loads(self._ws.recv())
        if "method" in message:
            self.events.append(message)
        return message

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        while True:
            message = self._receive(deadline)
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def open(self, url: str) -> list[str]:
        """Navigate to ``url`` and wait for its load event; every problem seen on the way."""
        self.events.clear()
        navigated = self.call("Page.navigate", url=url)
        problems = []
        if navigated.get("errorText"):
            problems.append(f"navigation failed: {navigated['errorText']}")
        deadline = time.monotonic() + PAGE_TIMEOUT_S
        # a fragment of the open document navigates in place: no new load event then
        loading = "loaderId" in navigated
        while loading and not any(e["method"] == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                problems.append(f"no load event in {PAGE_TIMEOUT_S:g} s")
                break
            self._receive(deadline)
        time.sleep(0.3)  # let late console messages and scripts arrive
        self.call("Runtime.evaluate", expression="1")
        return problems + [p for p in map(_problem, self.events) if p]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))


def _problem(event: dict[str, Any]) -> str | None:
    method, params = event["method"], event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        return f"exception: {details.get('exception', {}).get('description') or details}"
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        args = [a.get("value", a.get("description")) for a in params.get("args", [])]
        return f"console.{params['type']}: {args}"
    if method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        return f"console error ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}"
    if method == "Network.loadingFailed" and not params.get("canceled"):
        return f"failed to load ({params.get('type')}): {params.get('errorText')}"
    if method == "Network.responseReceived":
        response = params.get("response", {})
        if int(response.get("status") or 0) >= 400:
            return f"HTTP {response['status']}: {response.get('url')}"
    return None


@pytest.fixture
def browser(tmp_path: Path, unavailable: Callable[[str], NoReturn]) -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        unavailable(f"{CHROMIUM} missing: install Debian's chromium (apt-get install chromium)")
    try:
        import websocket  # noqa: F401  # websocket-client
    except ImportError:
        unavailable("websocket-client is not installed (pip install websocket-client)")
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # root in containers and CI runners
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "chromium.log").open("w"),
    )
    page: Browser | None = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if process.poll() is not None or time.monotonic() > deadline:
                log = (tmp_path / "chromium.log").read_text()[-2000:]
                pytest.fail(f"chromium did not start (exit {process.poll()}):\n{log}")
            time.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.load(answer)
        target = next(t for t in targets if t.get("type") == "page")
        page = Browser(target["webSocketDebuggerUrl"])
        yield page
    finally:
        if page is not None:
            page.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


# ----------------------------------------------------------------------------- state


def _real_registry(settings: Settings) -> None:
    """Two versions in the MLflow registry of the embedded profile, aliases lagging the ledger."""
    from modelops.integrations import mlflow as mlflow_io
    from modelops.services.context import tracking

    source = settings.resolved_state_dir / "model"
    source.mkdir(parents=True, exist_ok=True)
    with mlflow_io.session(tracking(settings)) as client:
        client.create_registered_model("credit_risk")
        for _ in ("1", "2"):
            client.create_model_version("credit_risk", source=source.as_uri())
        client.set_registered_model_alias("credit_risk", "staging", "1")
        client.set_registered_model_alias("credit_risk", "production", "2")


def _real_evidently_report(path: Path) -> None:
    import numpy as np
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    rng = np.random.default_rng(7)
    reference = pd.DataFrame(
        {"balance_min": rng.normal(size=300), "sector": rng.integers(0, 4, 300)}
    )
    current = pd.DataFrame(
        {"balance_min": rng.normal(0.8, size=300), "sector": rng.integers(0, 4, 300)}
    )
    Report([DataDriftPreset()]).run(current_data=current, reference_data=reference).save_html(
        str(path)
    )


# ----------------------------------------------------------------------------- test


def test_every_page_and_link_opens_in_chromium_without_errors(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, browser: Browser
) -> None:
    state = _unit_state()
    state.populate(workspace, monkeypatch)
    _real_registry(workspace)
    report = status_page.monitoring_dir(workspace) / "credit_risk" / state.RUN_OK / "report.html"
    _real_evidently_report(report)
    site = status_page.build(workspace, tmp_path / "site")
    assert site.gate_reports == 3 and site.monitoring_runs == 3

    root = site.out.resolve()
    start = site.index.resolve().as_uri()
    seen: set[str] = set()
    queue = [start]
    problems: dict[str, list[str]] = {}
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        found = browser.open(url)
        parts = urlsplit(url)
        path = Path(unquote(parts.path))
        if parts.fragment:  # a link into a page: the element must exist there
            if not browser.evaluate(_has_id(parts.fragment)):
                found.append(f"no element with id {parts.fragment!r}")
        elif path.suffix == ".html" and path.name != "report.html":  # our pages: follow links
            for link in browser.evaluate(LINKS):
                target = urlsplit(link)
                if target.scheme != "file" or not Path(unquote(target.path)).is_relative_to(root):
                    found.append(f"{link}: leaves the site")
                    continue
                queue += [link, target._replace(fragment="").geturl()]
        if found:
            problems[url.removeprefix(root.as_uri())] = found

    assert problems == {}
    opened = {Path(unquote(urlsplit(u).path)) for u in seen}
    assert {p.resolve() for p in site.pages} <= opened
    assert report.resolve() not in opened  # the site's copy is opened, never the source
    assert (root / "monitoring/credit_risk" / state.RUN_OK / "report.html") in opened

    # the registry was real: the lagging production alias is flagged on the front page
    browser.open(start)
    text = browser.evaluate("document.body.innerText")
    assert "disagrees with the ledger" in text
    assert state.MALICIOUS in text  # shown as text, never run
    assert browser.evaluate("document.scripts.length") == 0

    # the checks see what they look for
    missing = browser.open((root / "missing.html").as_uri())
    assert any("ERR_FILE_NOT_FOUND" in p for p in missing), missing
    browser.open(f"{start}#nowhere")
    assert not browser.evaluate(_has_id("nowhere"))

    browser.open(start)
    shot = tmp_path / "status-page.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


# ----------------------------------------------------------------------------- plots

PLOTS = Path(__file__).resolve().parents[1] / "unit" / "test_status_page_plots.py"
DRAWN = """
Array.from(document.querySelectorAll('svg[data-chart]')).map(svg => {
  const area = svg.querySelector('rect.area').getBoundingClientRect();
  const inside = r => r.width > 0 && r.left >= area.left - 1 && r.right <= area.right + 1
    && r.top >= area.top - 1 && r.bottom <= area.bottom + 1;
  const gate = svg.querySelector('path.gate');
  return {
    panel: svg.closest('section').id,
    chart: svg.dataset.chart,
    windows: Number(svg.dataset.windows),
    width: svg.getBoundingClientRect().width,
    series: Array.from(svg.querySelectorAll('g.series')).map(g => ({
      name: g.dataset.series,
      points: g.querySelectorAll('.point').length,
      values: Array.from(g.querySelectorAll('.point')).map(p => p.dataset.value),
      drawn: Array.from(g.querySelectorAll('circle')).filter(c =>
        inside(c.getBoundingClientRect())).length,
      band: g.querySelector('path.band') ? g.querySelector('path.band').getTotalLength() : 0,
    })),
    gate: gate ? gate.dataset.values.split(' ') : null,
    gateLength: gate ? gate.getTotalLength() : 0,
    actions: Array.from(svg.querySelectorAll('a.action')).map(a => ({
      kind: a.dataset.kind, hover: a.querySelector('title').textContent})),
  };
})
"""


def _plots_state() -> Any:
    spec = importlib.util.spec_from_file_location("status_page_plots_state", PLOTS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plots_render_with_their_data_offline_in_chromium(
    workspace: Settings, tmp_path: Path, browser: Browser
) -> None:
    state = _plots_state()
    summaries = state.write_runs(workspace)
    site = status_page.build(workspace, tmp_path / "site")
    page = (site.out / f"projects/{state.PROJECT}.html").resolve()
    browser.call(
        "Network.emulateNetworkConditions",
        offline=True,
        latency=0,
        downloadThroughput=-1,
        uploadThroughput=-1,
    )
    assert browser.open(page.as_uri()) == []
    requested = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e["method"] == "Network.requestWillBeSent"
    ]
    assert requested and all(url.startswith("file://") for url in requested)
    assert browser.evaluate("document.scripts.length") == 0

    charts = {(c["panel"], c["chart"]): c for c in browser.evaluate(DRAWN)}
    windows = state.WINDOWS
    production = {k[1]: c for k, c in charts.items() if k[0] == "plots-production"}
    assert set(production) == {"cost_per_1000", "roc_auc", "drift_share", "chunks"}
    assert {k[1] for k in charts if k[0] == "plots-staging"} == {
        "cost_per_1000",
        "roc_auc",
        "drift_share",
    }
    estimated_runs = windows - state.ESTIMATED_FROM
    expected_drawn = {
        ("cost_per_1000", "estimated"): estimated_runs,
        ("cost_per_1000", "realised"): state.MATURED,
        ("roc_auc", "estimated"): estimated_runs,
        ("roc_auc", "realised"): state.MATURED,
        ("drift_share", "drift share"): windows - 2,  # run 4 unmeasured, run 5 not finite
        ("chunks", "estimated"): state.CHUNKS,
    }
    for key, chart in production.items():
        assert chart["width"] > 300, key
        total = state.CHUNKS if key == "chunks" else windows
        assert chart["windows"] == total
        for drawn in chart["series"]:
            # one point per window, each circle laid out inside the plot area
            assert drawn["points"] == total, (key, drawn["name"])
            assert drawn["drawn"] == expected_drawn[(key, drawn["name"])], (key, drawn["name"])
        if key != "chunks":
            assert sorted(a["kind"] for a in chart["actions"]) == ["alert", "rollback"]
    roc = {s["name"]: s for s in production["roc_auc"]["series"]}
    realised = [float(v) if v else None for v in roc["realised"]["values"]]
    performances = [s["findings"]["performance"] for s in summaries]
    assert realised == [p["metrics"]["roc_auc"] if p else None for p in performances]
    assert roc["realised"]["band"] > 0 and roc["estimated"]["band"] > 0
    gate = [float(v) for v in production["cost_per_1000"]["gate"]]
    assert gate == [state.GATE[s["version"]]["cost_per_1000"] for s in summaries]
    assert production["cost_per_1000"]["gateLength"] > 0
    assert [float(v) for v in production["drift_share"]["gate"]] == [0.3] * windows
    rollback = next(a for a in production["roc_auc"]["actions"] if a["kind"] == "rollback")
    assert state.MALICIOUS in rollback["hover"]  # the reason, as text: never run

    browser.open(page.as_uri())
    shot = tmp_path / "plots.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
