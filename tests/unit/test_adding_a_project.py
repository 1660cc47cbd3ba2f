"""Follows docs/adding-a-project.md literally: a third project, built from scratch, trains."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelops.config.project import load_project
from modelops.config.settings import load_settings
from modelops.services import features, gate, promote, registry, train
from support import REPO, copy_workspace

FILE_BLOCK = re.compile(r"```\w+ file=(\S+)\n(.*?)```", re.DOTALL)
EXAMPLE_BLOCK = re.compile(r"```python example=(\S+)\n(.*?)```", re.DOTALL)


def _write_guide_blocks(guide: str, root: Path) -> list[tuple[str, str]]:
    blocks = FILE_BLOCK.findall(guide)
    for relative, body in blocks:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    return blocks


def _write_documented_files(root: Path) -> list[str]:
    guide = (REPO / "docs" / "adding-a-project.md").read_text()
    return [relative for relative, _ in _write_guide_blocks(guide, root)]


def _invoice_data(data_dir: Path, seed: int = 0) -> None:
    """Synthetic tables in the documented shape: late payment driven by overdue share and DSO."""
    rng = np.random.default_rng(seed)
    companies = np.arange(1, 301)
    # Snapshots are stamped when they become available, six hours after the month closes, and
    # with sub-microsecond parts, as pd.date_range(..., periods=n) and many real exports give.
    months = pd.date_range(
        "2023-12-01 05:59:59", "2025-04-01 05:59:59", periods=17, tz="UTC"
    ) + pd.to_timedelta(np.arange(17) * 37 + 501, unit="ns")
    assert (months.nanosecond != 0).any()
    health = rng.normal(0, 1, len(companies))
    rows = []
    for month in months:
        health = 0.9 * health + rng.normal(0, 0.4, len(companies))
        rows.append(
            pd.DataFrame(
                {
                    "company_id": companies,
                    "event_timestamp": month,
                    "created_timestamp": month,
                    "open_invoices": rng.poisson(5 + 2 * np.clip(-health, 0, None)),
                    "days_sales_outstanding": 35 - 8 * health + rng.normal(0, 5, len(companies)),
                    "share_overdue": 1
                    / (1 + np.exp(2 * health + rng.normal(0, 0.5, len(companies)))),
                }
            )
        )
    snapshots = pd.concat(rows, ignore_index=True)
    snapshots.to_parquet(data_dir / "company_invoicing.parquet")

    n = 5000
    issued = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        rng.uniform(0, 455, n), unit="D"
    )
    company = rng.choice(companies, n)
    as_of = pd.merge_asof(
        pd.DataFrame({"event_timestamp": issued, "company_id": company}).sort_values(
            "event_timestamp"
        ),
        snapshots.sort_values("event_timestamp"),
        on="event_timestamp",
        by="company_id",
    )
    amount = rng.lognormal(8, 1, n)
    logit = -2.2 + 3 * as_of["share_overdue"] + 0.04 * (as_of["days_sales_outstanding"] - 35)
    late = rng.binomial(1, 1 / (1 + np.exp(-(logit + rng.normal(0, 0.8, n)))))
    pd.DataFrame(
        {
            "invoice_id": np.arange(n),
            "company_id": as_of["company_id"],
            "event_timestamp": as_of["event_timestamp"],
            "invoice_amount": amount,
            "paid_late": late,
            "label_available_at": as_of["event_timestamp"] + pd.Timedelta(days=60),
        }
    ).to_parquet(data_dir / "invoices.parquet")


@pytest.mark.usefixtures("clean_env")
def test_a_project_added_by_following_the_guide_trains_and_registers(tmp_path: Path) -> None:
    root = copy_workspace(tmp_path / "repo")
    written = _write_documented_files(root)
    # The project is its project.yaml: no model.py, the platform's modelling functions.
    assert written == ["feature_repo/invoice_features.py", "projects/invoice_late/project.yaml"]
    settings = load_settings(root)
    settings.data_dir.mkdir(parents=True)
    _invoice_data(settings.data_dir)

    assert train.model_functions(
        load_project(settings.resolved_projects_dir, "invoice_late")
    ).origin == {"build_features": "platform", "fit": "platform", "fit_baseline": "platform"}

    applied = features.apply(settings)
    assert "FeatureService invoice_late_v1" in applied
    result = train.train(settings, "invoice_late")

    versions = registry.list_versions(settings, "invoice_late")
    assert [v.role for v in versions] == ["baseline", "candidate"]
    candidate = versions[-1]
    assert candidate.version == result.candidate.version
    assert candidate.tags["modelops.feature_service"] == "invoice_late_v1"
    assert "invoice_amount_per_open" in candidate.tags["modelops.features"]
    assert 0.6 < candidate.metrics["holdout_roc_auc"] < 0.95
    missing = json.loads(candidate.tags["modelops.missing_share.train"])
    assert missing and all(share == 0.0 for share in missing.values()), missing

    # The first model (section 6): nothing serves dev yet, so each of the two versions is judged
    # against the prevalence-only reference and its sibling; the preferred one is promoted.
    verdicts = {
        trained.role: gate.validate(
            settings, "invoice_late", trained.version, against="dev", actor="newcomer"
        )
        for trained in (result.candidate, result.baseline)
    }
    passed = [role for role, verdict in verdicts.items() if verdict.passed]
    assert passed, {role: verdict.failed_rules for role, verdict in verdicts.items()}
    for verdict in verdicts.values():
        assert verdict.reference.role == "prevalence"
    first = verdicts[passed[0]].candidate.version
    move = promote.promote(settings, "invoice_late", first, "dev", approver="newcomer")
    assert (move.from_version, move.to_version) == (None, first)


def test_the_guides_model_py_example_replaces_only_the_fit(tmp_path: Path) -> None:
    """The model.py shown (not written) in section 2.4 imports, and its ``fit`` is the one a
    project gets while the other two functions stay the platform's."""
    guide = (REPO / "docs" / "adding-a-project.md").read_text()
    examples = dict(EXAMPLE_BLOCK.findall(guide))
    root = copy_workspace(tmp_path / "repo")
    _write_guide_blocks(guide, root)
    target = root / "projects/invoice_late/model.py"
    target.write_text(examples["projects/invoice_late/model.py"])
    project = load_project(root / "projects", "invoice_late")
    functions = train.model_functions(project)
    assert functions.origin == {
        "build_features": "platform",
        "fit": "model.py",
        "fit_baseline": "platform",
    }
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"share_overdue": rng.random(300), "open_invoices": rng.poisson(5, 300)})
    y = pd.Series((x["share_overdue"] + rng.normal(0, 0.3, 300) > 0.5).astype(int))
    model = functions.fit(x[:200], y[:200], x[200:], y[200:], {"num_leaves": 7})
    assert model.predict_proba(x[200:]).shape == (100, 2)
