"""summary.json has a typed model and a committed JSON Schema that readers can rely on.

The summaries checked here are made by the monitor's own record code (the builder of
``test_monitor_workflow``, which calls ``monitor.record`` for real, with real outcomes of every
kind); ``test_monitor`` checks the summary.json of a real run against the same schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from test_monitor_workflow import _failed, _proposed, _retrained, _rolled_back, _summary

from modelops.config import schema_docs
from modelops.core import monitor_record

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / schema_docs.MONITOR_SUMMARY_SCHEMA_FILE


def _committed() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def test_the_committed_schema_is_current() -> None:
    expected = schema_docs.render_schema(monitor_record.json_schema())
    on_disk = SCHEMA.read_text(encoding="utf-8") if SCHEMA.is_file() else ""
    assert on_disk == expected, (
        f"{schema_docs.MONITOR_SUMMARY_SCHEMA_FILE} is stale: run "
        f"'{schema_docs.REGENERATE}' from the repository root"
    )


SUMMARIES = {
    "no action": lambda: _summary("fraud"),
    "rollback and retrain": lambda: _summary("fraud", _rolled_back(), _retrained()),
    "lagging rollback": lambda: _summary("fraud", _rolled_back(lags=True)),
    "retrain without a pass": lambda: _summary("fraud", _retrained(chosen=None)),
    "failed actions": lambda: _summary("fraud", _failed("rollback"), _failed("alert")),
    "proposal": lambda: _summary("fraud", _proposed()),
    "dry run": lambda: _summary("fraud", dry_run=True),
}


@pytest.mark.parametrize("case", SUMMARIES)
def test_summaries_the_monitor_writes_follow_the_committed_schema(case: str) -> None:
    summary = json.loads(json.dumps(SUMMARIES[case]()))
    jsonschema.validate(summary, _committed())
    assert monitor_record.MonitorSummary.model_validate(summary).dump() == summary


def test_the_schema_refuses_what_readers_would_misread() -> None:
    summary = json.loads(json.dumps(_summary("fraud", _rolled_back())))
    schema = _committed()
    renamed = {**summary, "outcome": summary.pop("outcomes")}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(renamed, schema)
    odd = json.loads(json.dumps(_summary("fraud", _rolled_back())))
    odd["outcomes"][0]["kind"] = "restart"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(odd, schema)


def test_every_path_the_workflow_reads_is_in_the_schema() -> None:
    """The jq paths of .github/workflows/monitor.yml, as properties of the schema."""
    schema = _committed()
    defs = schema["$defs"]

    def props(name: str) -> set[str]:
        return set(defs[name]["properties"])

    top = set(schema["properties"])
    assert {"project", "environment", "version", "headline", "run_id", "started_at"} <= top
    assert {"outcomes", "pending_promotion"} <= top
    assert {"kind", "done", "details"} <= props("RollbackOutcome") & props("RetrainOutcome")
    assert "to_version" in props("RollbackResult")
    assert "promotions" in props("RetrainResult")
    assert {"ledger_seq", "alias_lags", "environment", "version"} <= props("Promotion")
    assert {"environment", "version", "source", "verdict_id"} <= props("PendingPromotion")
