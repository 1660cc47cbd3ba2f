"""``modelops report``: the static status site, built from a real ledger, monitoring runs and a
GitOps repository (the registry's answer is stubbed, as in test_cli_json)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from modelops.cli.main import main
from modelops.config.settings import Settings
from modelops.core import ledger as chain
from modelops.core.errors import RegistryError
from modelops.core.fingerprint import DatasetFingerprint
from modelops.core.gate_rules import Evaluation, Rule
from modelops.core.ledger import RecordedEntry
from modelops.core.metrics import COMPARED_METRICS
from modelops.core.verdict import Verdict, inputs_key
from modelops.integrations.database import Holder, Ledger, LedgerEntry
from modelops.services import registry, status_page
from modelops.services.context import prepare_state
from modelops.services.context import project as project_for
from modelops.services.status_page import collect

PROJECT = "credit_risk"
MALICIOUS = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert("
RUN_OK = "2026-01-05T10-00-00Z"
RUN_ODD = 'run<"b">&x'  # a run id no file name should carry as is
RUN_BROKEN = "2026-01-06T10-00-00Z"
REPORT_STUB = "<!doctype html><title>Evidently</title><p>data drift: 3 of 12 columns</p>"


# ----------------------------------------------------------------------------- state


def _evaluation(role: str, version: str, pr_auc: float) -> Evaluation:
    metrics = dict.fromkeys(COMPARED_METRICS, 0.5)
    metrics.update(pr_auc=pr_auc, recall=0.8, false_positive_rate=0.15, cost_per_1000=1200.0)
    return Evaluation(
        role=role,
        version=version,
        threshold=0.3,
        metrics=metrics,
        segments={"sector": {MALICIOUS: {**metrics, "rows": 120.0}}},
        latency_ms_p50=1.0,
        latency_ms_p95=2.0,
        size_bytes=2048,
        features=["a"],
    )


def _validate(settings: Settings, verdict_id: str, environment: str, version: str) -> LedgerEntry:
    """A validate entry shaped like the gate's (services/gate/record.py ``record``)."""
    reference = _evaluation("baseline", "-", 0.1)
    if version != "1":
        reference = _evaluation(environment, "1", 0.3)
    inputs = {"candidate": [version, "sha-" + version], "reference": [reference.role, "-", "x"]}
    verdict = Verdict(
        id=verdict_id,
        project=PROJECT,
        model_name=PROJECT,
        environment=environment,
        candidate=_evaluation("candidate", version, 0.4),
        reference=reference,
        rules=[Rule("pr_auc superior to the reference", True, MALICIOUS)],
        passed=True,
        decisions_differ=0.1,
        holdout=DatasetFingerprint(1000, "2025-01-01", "2025-06-30", "c" * 64),
        as_of="2026-01-01T00:00:00+00:00",
        created_at=datetime.now(UTC).isoformat(),
        actor="ci",
        inputs_key=inputs_key(inputs),
        inputs=inputs,
        evidence={"primary_interval": {"low": 0.01, "high": 0.05, "estimate": 0.03}},
    )
    return LedgerEntry(
        action="validate",
        project=PROJECT,
        environment=environment,
        actor="ci",
        reason="passed every rule",
        from_version=None if version == "1" else "1",
        to_version=version,
        verdict_id=verdict_id,
        details={
            "passed": True,
            "reused": False,
            "inputs_key": verdict.inputs_key,
            "reference_role": reference.role,
            "reference_version": reference.version,
            "failed_rules": [],
            "created_at": verdict.created_at,
            "project_yaml_sha256": project_for(settings, PROJECT).spec_hash,
            "verdict": verdict.to_dict(),
        },
    )


def _run(root: Path, run_id: str, summary: str | None, report: bool) -> Path:
    folder = root / PROJECT / run_id
    folder.mkdir(parents=True)
    if summary is not None:
        (folder / "summary.json").write_text(summary)
    if report:
        (folder / "report.html").write_text(REPORT_STUB)
    return folder


def _summary(run_id: str, action: str | None) -> str:
    """summary.json as the monitor writes it (``monitor.record.summary``, called for real), with
    hostile text where a person's words go: the action's reason and the run's notes."""
    import pandas as pd

    from modelops.core import monitoring as policy
    from modelops.services.monitor import Reference, record

    started = (
        datetime.fromisoformat(f"{run_id[:10]}T10:00:00+00:00")
        if run_id[0].isdigit()
        else datetime(2026, 1, 4, tzinfo=UTC)
    )
    tenure = policy.Tenure(
        moved_by="promote",
        moved_at=started,
        first_seen=started,
        as_of=started,
        rollback_target=None,
    )
    findings = policy.Findings(PROJECT, "production", "1", policy.Quality(rows=120), tenure)
    actions = (policy.Action(action, MALICIOUS, target="1"),) if action else ()
    reference = Reference(
        frame=pd.DataFrame(),
        profile={"version": "1", "rows": 500, "sampled_rows": 500},
        path=Path("reference.parquet"),
    )
    written = record.summary(
        run_id,
        started,
        started,
        (started - timedelta(days=1), started),
        PROJECT,
        "production",
        "1",
        findings,
        policy.Decision(actions=actions, dry_run=False),
        reference,
        None,
        None,
        [MALICIOUS],
        False,
        {"lineage": 0.1},
    )
    return json.dumps(written.dump())


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=deployer", "-c", "user.email=d@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def populate(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small history: two gated promotions, a monitor's rollback with its evidence, an alert,
    three monitoring runs (one without report, one with a broken summary) and a GitOps commit.

    tests/integration/test_status_page_browser.py builds on it."""
    # The monitor's own actions (alert, retrain) may not be ledger actions yet in this tree.
    monkeypatch.setattr(chain, "ACTIONS", (*chain.ACTIONS, "alert", "retrain"))
    prepare_state(settings)
    runs = status_page.monitoring_dir(settings)
    bad = _run(runs, RUN_OK, _summary(RUN_OK, "rollback"), report=True)
    _run(runs, RUN_ODD, _summary(RUN_ODD, None), report=True)
    _run(runs, RUN_BROKEN, "{not json", report=False)

    ledger = Ledger(settings.platform_database_url)
    ledger.append(_validate(settings, "a" * 64, "staging", "1"))
    for environment in ("staging", "production"):
        if environment == "production":
            ledger.append(_validate(settings, "b" * 64, "production", "1"))
        verdict = ("a" if environment == "staging" else "b") * 64
        ledger.transition(
            LedgerEntry("promote", PROJECT, environment, "ana", "first model", None, "1", verdict),
            expected=Holder(None, 0),
        )
    ledger.append(_validate(settings, "../../escape<i>", "production", "2"))
    ledger.transition(
        LedgerEntry("promote", PROJECT, "production", "bo", "better", "1", "2", "../../escape<i>"),
        expected=ledger.holder(PROJECT, "production"),
    )
    ledger.transition(
        LedgerEntry(
            "rollback",
            PROJECT,
            "production",
            "modelops-monitor",
            MALICIOUS,
            "2",
            "1",
            details={
                "evidence": {"pr_auc_live": 0.21, "pr_auc_gate": 0.4, "note": MALICIOUS},
                "report_html": str(bad / "report.html"),
                "summary_json": str(bad / "summary.json"),
            },
        ),
        expected=ledger.holder(PROJECT, "production"),
    )
    ledger.append(
        LedgerEntry(
            "alert",
            PROJECT,
            "production",
            "modelops-monitor",
            "missing values above the threshold",
            details={"evidence": {"missing_rate": {"balance_min": 0.4}}, "run_id": RUN_ODD},
        )
    )
    ledger.close()

    repo = settings.resolved_gitops_repo
    repo.mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "values.yaml").write_text("image: model:1\n")
    _git(repo, "add", "values.yaml")
    _git(repo, "commit", "-q", "-m", f"rollback {PROJECT} production to v1", "-m", MALICIOUS)


def stub_registry(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's answer without MLflow: v1 holds the staging alias, v2 still production's."""

    def versions(settings: Settings, project: str) -> list[registry.VersionInfo]:
        if project != PROJECT:
            raise RegistryError(f"no registered model '{project}'; train it first")
        return [
            registry.VersionInfo(PROJECT, v, "candidate", aliases, 0, "run" + v, {}, {}, "")
            for v, aliases in (("1", ["staging"]), ("2", ["production"]))  # production lags
        ]

    monkeypatch.setattr(registry, "list_versions", versions)
    Path(settings.registry_uri.removeprefix("sqlite:///")).touch()  # a registry exists


# ----------------------------------------------------------------------------- links


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if values.get("id"):
            self.ids.add(str(values["id"]))
        for name in ("href", "src"):
            if values.get(name) is not None:
                self.links.append(str(values[name]))


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def crawl(site: Path) -> tuple[set[str], dict[str, list[str]]]:
    """The pages reachable from index.html (the site's own pages; the copied reports are
    reached but not followed) and, per page, each link that does not resolve to a file (and
    fragment) inside the site."""
    root = site.resolve()
    seen: set[Path] = set()
    broken: dict[str, list[str]] = {}
    queue = [root / "index.html"]
    while queue:
        page = queue.pop()
        if page in seen:
            continue
        seen.add(page)
        problems = []
        for link in _parse(page).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("/"):
                problems.append(f"{link}: not a relative link")
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.is_relative_to(root) or not target.is_file():
                problems.append(f"{link}: no such file in the site")
                continue
            if parts.fragment and parts.fragment not in _parse(target).ids:
                problems.append(f"{link}: no element with id {parts.fragment!r}")
            if target.suffix == ".html" and target.name != "report.html":
                queue.append(target)
        if problems:
            broken[page.relative_to(root).as_posix()] = problems
    return {p.relative_to(root).as_posix() for p in seen}, broken


# ----------------------------------------------------------------------------- tests


def test_the_site_shows_serving_ledger_gates_monitoring_and_gitops(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(workspace, monkeypatch)
    stub_registry(workspace, monkeypatch)
    site = status_page.build(workspace)
    out = site.out
    assert out == workspace.resolved_state_dir / "site" and site.index == out / "index.html"
    assert (site.ledger_entries, site.gate_reports, site.monitor_actions) == (8, 3, 2)
    assert (site.monitoring_runs, site.gitops_commits) == (3, 1)
    assert any("summary.json unreadable" in w for w in site.warnings)

    serving = {(s.project, s.environment): s for s in site.serving}
    production = serving[(PROJECT, "production")]
    assert (production.version, production.entry and production.entry.action) == ("1", "rollback")
    assert (production.alias, production.alias_agrees) == ("2", False)  # MLflow lags the ledger
    assert serving[(PROJECT, "staging")].version == "1"
    assert serving[(PROJECT, "staging")].alias_agrees
    assert serving[(PROJECT, "dev")].version is None
    assert not serving[("fraud", "production")].alias_known

    # every page stays inside the site; ids that are not file names were reduced to safe ones
    for page in site.pages:
        assert page.resolve().is_relative_to(out)
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert f"monitoring/{PROJECT}/{RUN_OK}/report.html" in names
    assert f"monitoring/{PROJECT}/{RUN_OK}/summary.json" in names
    assert not any("<" in n or '"' in n or ".." in n for n in names)
    copied = out / f"monitoring/{PROJECT}/{RUN_OK}/report.html"
    assert copied.read_text() == REPORT_STUB

    # every link resolves, every page is reachable from the front page
    reached, broken = crawl(out)
    assert broken == {}
    assert {p.relative_to(out).as_posix() for p in site.pages} <= reached

    # data is escaped wherever it shows, and no page of ours carries a script
    pages = {p.relative_to(out).as_posix(): p.read_text(encoding="utf-8") for p in site.pages}
    for name, text in pages.items():
        assert MALICIOUS not in text, name
        assert "<script" not in text.lower() and "<img" not in text.lower(), name
        assert _parse(out / name).scripts == 0
        assert "Content-Security-Policy" in text
    rollback_seq = 7
    action = pages[f"actions/{rollback_seq}.html"]
    assert ESCAPED in action and "0.21" in action
    assert f"monitoring/{PROJECT}/{RUN_OK}/report.html" in action  # the evidence's report
    assert ESCAPED in pages["ledger.html"] and ESCAPED in pages["gitops.html"]
    assert "rollback credit_risk production to v1" in pages["gitops.html"]
    gates = [n for n in pages if n.startswith("gates/")]
    assert len(gates) == 3 and all(ESCAPED in pages[n] for n in gates)
    assert "<table>" in pages[gates[0]]  # the gate's Markdown table rendered as HTML
    index = pages["index.html"]
    assert "disagrees with the ledger" in index and "modelops models sync" in index
    assert "unset ✓" in index  # dev: no alias, nothing in the ledger either
    assert "no registered model &#39;fraud&#39;" in pages["projects/fraud.html"]
    assert "No monitoring runs yet" in pages["projects/fraud.html"]
    monitoring = pages["monitoring.html"]
    assert "missing values above the threshold" in monitoring
    assert "summary.json unreadable" in monitoring


def test_an_empty_state_says_so_and_creates_no_database(
    workspace: Settings, tmp_path: Path
) -> None:
    site = status_page.build(workspace, tmp_path / "site")
    assert (site.ledger_entries, site.gate_reports, site.monitoring_runs) == (0, 0, 0)
    assert site.gitops_commits == 0 and site.warnings == ()
    text = {p.name: p.read_text() for p in site.pages}
    assert "No monitoring runs yet" in text["monitoring.html"]
    assert "No GitOps repository yet" in text["gitops.html"]
    assert "The ledger has no entries yet" in text["ledger.html"]
    assert "no MLflow registry yet" in text[f"{PROJECT}.html"]
    assert not (workspace.resolved_state_dir / "platform.db").exists()
    assert not (workspace.resolved_state_dir / "mlflow.db").exists()
    reached, broken = crawl(site.out)
    assert broken == {} and len(reached) == len(site.pages)


def test_a_rebuild_replaces_only_a_status_site(workspace: Settings, tmp_path: Path) -> None:
    out = tmp_path / "site"
    status_page.build(workspace, out)
    (out / "stale.html").write_text("old")
    status_page.build(workspace, out)
    assert not (out / "stale.html").exists() and (out / "index.html").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site.")]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(status_page.StatusPageError, match="not a status page"):
        status_page.build(workspace, mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(status_page.StatusPageError, match="is a file"):
        status_page.build(workspace, mine / "notes.txt")


def test_the_link_check_sees_what_it_looks_for(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        '<a href="a.html#here">a</a><a href="gone.html">x</a><a href="https://cdn.example/x">'
        '<link href="a.html#nowhere"><img src="../outside.png">'
    )
    (tmp_path / "a.html").write_text('<p id="here">a</p><a href="index.html">back</a>')
    (tmp_path.parent / "outside.png").write_bytes(b"")
    reached, broken = crawl(tmp_path)
    assert reached == {"index.html", "a.html"}
    assert broken == {
        "index.html": [
            "gone.html: no such file in the site",
            "https://cdn.example/x: not a relative link",
            "a.html#nowhere: no element with id 'nowhere'",
            "../outside.png: no such file in the site",
        ]
    }


def test_report_command(
    workspace: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("MODELOPS_ROOT", str(workspace.root))
    with pytest.raises(SystemExit) as done:
        main(["report", "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert (done.value.code or 0) == 0, err
    assert f"status page: {tmp_path / 'out' / 'index.html'}" in out

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(SystemExit) as refused:
        main(["report", "--out", str(tmp_path / "taken")])
    assert refused.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line


def test_a_monitor_actions_run_and_summary_are_read_from_what_the_monitor_writes(
    workspace: Settings, tmp_path: Path
) -> None:
    run = status_page.monitoring_dir(workspace) / PROJECT / RUN_OK

    def entry(details: dict[str, object]) -> RecordedEntry:
        return RecordedEntry(
            "rollback", PROJECT, "production", "modelops-monitor", details=details,
            seq=1, at=datetime.now(UTC), prev_hash="", hash="",
        )  # fmt: skip

    links = {  # services/monitor.py run(): the links every recorded action carries
        "run_id": RUN_OK,
        "as_of": "2026-01-05T00:00:00+00:00",
        "report_html": None,
        "performance_html": None,
        "summary_json": str(run / "summary.json"),
        "mlflow_run_id": None,
    }
    assert collect.monitor_run_id(workspace, entry({**links, "evidence": {}})) == RUN_OK
    assert collect.monitor_run_id(workspace, entry({"report_html": str(run / "report.html")})) == (
        RUN_OK
    )
    outside = str(tmp_path / RUN_OK / "summary.json")
    assert collect.monitor_run_id(workspace, entry({"summary_json": outside})) is None
    assert collect.monitor_run_id(workspace, entry({"report": str(run / "report.html")})) is None
    assert collect.monitor_evidence(entry({**links, "evidence": {"psi": 0.3}})) == {"psi": 0.3}
    assert status_page.is_monitor_action(entry(links))
    assert not status_page.is_monitor_action(entry({"passed": True}))

    summary = tmp_path / "summary.json"
    assert collect.read_summary(summary) == (None, "no summary.json")
    summary.write_text("[1]")
    assert collect.read_summary(summary) == (None, "summary.json is not a JSON object")
    summary.write_text(_summary(RUN_OK, None))
    read, problem = collect.read_summary(summary)
    assert problem is None and read is not None
    assert read.dump() == json.loads(_summary(RUN_OK, None))
    summary.write_text(json.dumps({"run_id": RUN_OK, "findings": []}))
    assert collect.read_summary(summary)[1] == (
        "summary.json is not a monitor summary: project: Field required"
    )


def test_runs_an_action_names_are_kept_beyond_the_newest(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    populate(workspace, monkeypatch)
    stub_registry(workspace, monkeypatch)
    site = status_page.build(workspace, tmp_path / "site", max_runs_per_project=1)
    # the newest run (RUN_OK, also the rollback's) and the alert's older run; the broken one goes
    assert site.monitoring_runs == 2
    monitoring = (site.out / "monitoring.html").read_text(encoding="utf-8")
    assert f"{PROJECT}: 1 older runs not included." in monitoring
    alert = (site.out / "actions/8.html").read_text(encoding="utf-8")
    assert "monitoring run run&lt;&#34;b&#34;&gt;&amp;x" in alert
