"""``--json`` output: stable keys (docs/cli-json.md), parseable, no colour; tables via rich."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modelops.cli.main import main
from modelops.cli.state import echo_json, echo_table
from modelops.config.settings import Settings
from modelops.core.ledger import Holder, LedgerEntry
from modelops.integrations.database import Ledger
from modelops.services import registry
from modelops.services.context import prepare_state

REPO = Path(__file__).resolve().parents[2]
VERSION_KEYS = {
    "project",
    "model_name",
    "version",
    "role",
    "kind",
    "aliases",
    "created_at",
    "run_id",
    "description",
    "metrics",
    "tags",
}
ENTRY_KEYS = {
    "seq",
    "at",
    "action",
    "project",
    "environment",
    "from_version",
    "to_version",
    "actor",
    "verdict_id",
    "reason",
    "details",
    "hash",
}


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    out, err = capsys.readouterr()
    assert (done.value.code or 0) == 0, err
    assert "\x1b[" not in out
    return json.loads(out)


@pytest.fixture
def root(workspace: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MODELOPS_ROOT", str(workspace.root))
    return workspace


def _version(number: str, aliases: list[str], created: int) -> registry.VersionInfo:
    return registry.VersionInfo(
        model_name="credit_risk",
        version=number,
        role="candidate" if created else "?",
        aliases=aliases,
        created=created,
        run_id="abc123" if created else "",
        metrics={"holdout_roc_auc": 0.81, "holdout_pr_auc": math.nan},
        tags={"modelops.role": "candidate", "modelops.feature_service": "credit_risk_v1"},
        description="candidate of credit_risk" if created else "",
        kind="lightgbm" if created else None,
    )


def test_models_list_and_show(
    root: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    versions = [_version("1", [], 0), _version("2", ["production", "staging"], 1_767_225_600_000)]
    monkeypatch.setattr(registry, "list_versions", lambda settings, project: versions)
    monkeypatch.setattr(registry, "show_version", lambda settings, project, v: versions[1])

    listed = _json(capsys, "models", "list", "credit_risk", "--json")
    assert set(listed) == {"project", "model_name", "versions"}
    assert (listed["project"], listed["model_name"]) == ("credit_risk", "credit_risk")
    assert [set(v) for v in listed["versions"]] == [VERSION_KEYS, VERSION_KEYS]
    old, new = listed["versions"]
    assert new["version"] == "2" and new["aliases"] == ["production", "staging"]
    assert new["created_at"] == "2026-01-01T00:00:00Z"
    assert new["metrics"] == {"holdout_pr_auc": None, "holdout_roc_auc": 0.81}  # NaN: missing
    assert new["tags"]["modelops.feature_service"] == "credit_risk_v1"
    assert (old["role"], old["created_at"], old["run_id"], old["description"]) == (None,) * 4
    assert (new["kind"], old["kind"]) == ("lightgbm", None)  # None: trained before it was tagged

    shown = _json(capsys, "models", "show", "credit_risk", "2", "--json")
    assert shown == new

    with pytest.raises(SystemExit):  # the table still works, through rich
        main(["models", "list", "credit_risk"])
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == [
        "version",
        "role",
        "kind",
        "aliases",
        "created",
        "(UTC)",
        "ROC-AUC",
        "PR-AUC",
        "cost/1000",
    ]
    assert "\n2  " in table and "production,staging" in table and "\x1b[" not in table
    assert "lightgbm" in table.splitlines()[-1]
    with pytest.raises(SystemExit):
        main(["models", "show", "credit_risk", "2"])
    assert capsys.readouterr().out.startswith("credit_risk version 2 (candidate, lightgbm)")


def test_history(
    root: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelops.services import promote as promote_service

    # The ledger's own checks run for real; MLflow aliases (nothing registered) are not looked at.
    monkeypatch.setattr(promote_service, "alias_drift", lambda settings, name: [])
    prepare_state(root)
    ledger = Ledger(root.platform_database_url)
    ledger.append(LedgerEntry("validate", "credit_risk", "production", "ci", "", None, "3", "v1"))
    ledger.transition(
        LedgerEntry("promote", "credit_risk", "dev", "ana", "first model", None, "3"),
        expected=Holder(None, 0),
    )
    ledger.close()

    document = _json(capsys, "history", "credit_risk", "--json")
    assert set(document) == {"entries", "anchor", "verification"}
    assert (document["anchor"], document["verification"]) == (None, None)
    validate, promote = document["entries"]
    assert set(validate) == set(promote) == ENTRY_KEYS
    assert (validate["seq"], validate["action"], validate["verdict_id"]) == (1, "validate", "v1")
    assert (validate["from_version"], validate["reason"]) == (None, None)
    assert (promote["environment"], promote["to_version"], promote["actor"]) == ("dev", "3", "ana")
    assert promote["at"].endswith("Z")
    assert datetime.fromisoformat(promote["at"]).tzinfo == UTC
    assert isinstance(promote["details"], dict) and len(promote["hash"]) == 64

    anchored = _json(capsys, "history", "--json", "--anchor")
    assert anchored["anchor"] == f"2:{promote['hash']}"
    verified = _json(capsys, "history", "--json", "--verify")["verification"]
    assert set(verified) == {"ok", "checked", "anchor", "keyed_from", "problems", "deploys_pending"}
    assert (verified["ok"], verified["checked"], verified["problems"]) == (True, 2, [])
    assert verified["deploys_pending"] == []
    assert verified["anchor"] == anchored["anchor"]
    monkeypatch.setattr(promote_service, "alias_drift", lambda settings, name: ["alias lags"])
    with pytest.raises(SystemExit) as failed:
        main(["history", "credit_risk", "--json", "--verify"])
    out, err = capsys.readouterr()
    assert failed.value.code == 1 and "ledger verification failed" in err
    assert json.loads(out)["verification"]["problems"] == ["alias lags"]

    held = _json(
        capsys, "history", "credit_risk", "--env", "dev", "--at", "2100-01-01T00:00:00", "--json"
    )
    assert held == {
        "project": "credit_risk",
        "environment": "dev",
        "at": "2100-01-01T00:00:00Z",
        "version": "3",
    }


def test_features_list(root: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    from modelops.services import features

    features.apply(root)
    document = _json(capsys, "features", "list", "--json")
    assert list(document) == ["feature_services"]
    by_name = {s["name"]: s for s in document["feature_services"]}
    assert set(by_name) == {"credit_risk_v1", "fraud_v1"}
    credit = by_name["credit_risk_v1"]
    assert set(credit) == {"name", "description", "feature_views", "features", "request_fields"}
    assert credit["feature_views"] == ["company_monthly_financials", "credit_application_features"]
    assert "balance_min" in credit["features"] and credit["request_fields"] == ["requested_amount"]


def test_tables_are_whole_when_stdout_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reason = "rolled back after a latency spike [p99] " * 8
    echo_table(["project", "reason"], [["credit_risk", reason], ["fraud", "-"]])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["project", "reason"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].rstrip() == f"credit_risk  {reason.rstrip()}"  # not cut, markup kept as text
    assert lines[3].startswith("fraud        -")
    assert len(lines) == 4


def test_json_values() -> None:
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        echo_json(
            {
                "naive": datetime(2026, 3, 1, 12, 0),
                "paris": datetime.fromisoformat("2026-03-01T13:00:00+01:00"),
                "nan": math.nan,
                "tuple": (1, 2.5),
                "path": Path("a/b"),
            }
        )
    assert json.loads(buffer.getvalue()) == {
        "naive": "2026-03-01T12:00:00Z",
        "paris": "2026-03-01T12:00:00Z",
        "nan": None,
        "tuple": [1, 2.5],
        "path": "a/b",
    }
    with pytest.raises(TypeError, match="not JSON output: object"):
        echo_json(object())
