"""``make demo`` runs the whole lifecycle end to end on embedded defaults, in a fresh workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.cli.main import main
from modelops.config.settings import load_settings
from modelops.integrations.database import Ledger
from modelops.services import promote
from support import copy_workspace


def _demo_projects(root: Path) -> list[str]:
    """The demo runs every project that ships an example-data generator."""
    return sorted(p.parent.name for p in (root / "projects").glob("*/data.py"))


@pytest.mark.slow
def test_demo_runs_the_lifecycle_and_leaves_a_verified_ledger(
    tmp_path: Path,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = copy_workspace(tmp_path / "repo")
    monkeypatch.setenv("MODELOPS_ROOT", str(root))
    with pytest.raises(SystemExit) as finished:
        main(["demo"])
    out = capsys.readouterr().out
    assert finished.value.code in (0, None), out[-3000:]

    headings = (
        "1. generating",
        "3. training v1",
        "4. first model",
        "5. packaging",
        "6. deploying through GitOps",
        "7. serving production",
        "8. production traffic",
        "9. drift",
        "10. promote",
        "11. a bad promotion",
        "12. degradation and automatic rollback",
        "13. status page",
        "14. history",
        "Timeline",
    )
    for heading in headings:
        assert heading in out
    projects = _demo_projects(root)
    assert projects, "the demo needs a project with a data.py"
    for project in projects:
        assert f"\n{project}  " in out  # a row of the registered-versions table
    assert "ledger verified:" in out and "hash chain intact" in out
    assert "differ online" in out and " 0 failed" in out  # packaged, served with no error
    assert "values.yaml: commit " in out  # GitOps commits
    assert (root / ".modelops" / "site" / "index.html").is_file()

    settings = load_settings(root)
    served = {p: promote.holders(settings, p)["production"] for p in projects}
    assert all(served.values()), "every demo project reaches production"
    assert promote.verify(settings).ok

    # The monitoring story (fraud: labels arrive within its probation).
    ledger = Ledger(settings.platform_database_url)
    entries = ledger.entries("fraud", "production")
    moves = [e for e in entries if e.action in ("promote", "rollback")]
    retrain = [e for e in ledger.entries("fraud") if e.action == "retrain"]
    assert retrain, "covariate drift made the monitor retrain"
    assert retrain[0].details["evidence"]["drift"]["streak"] >= 1
    approved, bad, rollback = moves[-3:]
    assert approved.action == "promote" and approved.to_version == retrain[0].to_version
    assert approved.actor == "demo-platform-team"
    assert bad.action == "promote" and "bad-model drill" in bad.reason and bad.verdict_id
    assert rollback.action == "rollback" and rollback.actor == "demo-ci"
    assert rollback.from_version == bad.to_version and rollback.to_version == approved.to_version
    assert rollback.details["evidence"]["metric"] == "pr_auc"
    assert "monitor run " in rollback.reason
    # the evidence of a pr_auc rollback is the performance report; the drift report exists only
    # when the run's drift window held predictions (the reason then names it, else the summary)
    assert Path(rollback.details["performance_html"]).is_file()
    named = rollback.details["report_html"] or rollback.details["summary_json"]
    assert f"report {named}" in rollback.reason and Path(named).is_file()
    assert served["fraud"] == approved.to_version
    assert f"the local service serves v{bad.to_version}" in out
    assert "service_reloaded" in out and "total " in out  # the reaction was measured
    site = (root / ".modelops" / "site" / "index.html").read_text()
    assert "rollback" in site
