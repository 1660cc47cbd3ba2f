"""A candidate trained on a leaky feature is rejected by the gate as suspected leakage.

The leak is the classic one: a feature table backfilled after the fact, so the monthly row each
application joins with already reflects whether the company defaulted. Nothing here is mocked:
the data goes through Feast, the model through training and the MLflow registry, the verdict
through the real gate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelops.cli.main import main
from modelops.config.settings import Settings, load_settings
from modelops.services import data, features, gate, promote, train
from support import copy_workspace

PROJECT = "credit_risk"


def _backfill_default_into_overdraft_days(data_dir: Path) -> None:
    """Rewrite ``negative_balance_days`` of the row each application joins: 25+ if it defaulted."""
    monthly_path = data_dir / "credit_company_monthly.parquet"
    monthly = pd.read_parquet(monthly_path)
    applications = pd.read_parquet(data_dir / "credit_applications.parquet")
    rows = monthly.reset_index(names="_row").sort_values("event_timestamp")
    joined = pd.merge_asof(
        applications.sort_values("event_timestamp"),
        rows[["_row", "company_id", "event_timestamp"]],
        on="event_timestamp",
        by="company_id",
        direction="backward",
    ).dropna(subset=["_row"])
    noise = np.random.default_rng(0).integers(0, 3, len(joined))
    leaked = np.where(joined["default_12m"] == 1, 25 + noise, noise)
    column = monthly["negative_balance_days"].to_numpy().copy()
    column[joined["_row"].astype(int).to_numpy()] = leaked
    monthly["negative_balance_days"] = pd.Series(
        column, dtype=monthly.dtypes["negative_balance_days"]
    )
    monthly.to_parquet(monthly_path, index=False)


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    root = copy_workspace(tmp_path_factory.mktemp("leak") / "repo")
    settings = load_settings(root)
    data.generate(settings, [PROJECT], rows=12_000, seed=9)
    _backfill_default_into_overdraft_days(settings.data_dir)
    features.apply(settings)
    result = train.train(settings, PROJECT)
    return settings, result.candidate.version


def test_leaky_candidate_is_rejected_as_suspected_leakage(
    leaky: tuple[Settings, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, version = leaky
    verdict = gate.validate(settings, PROJECT, version, against="dev", actor="tester")
    failed = {rule.name: rule.detail for rule in verdict.rules if not rule.passed}
    assert not verdict.passed
    assert "no suspected leakage" in failed
    detail = failed["no suspected leakage"]
    assert "negative_balance_days" in detail or "ROC-AUC" in detail, detail
    assert "computed after the event" in detail

    monkeypatch.setenv("MODELOPS_ROOT", str(settings.root))
    monkeypatch.setenv("MODELOPS_ACTOR", "tester")
    with pytest.raises(SystemExit) as validated:
        main(["validate", PROJECT, version, "--against", "dev"])
    assert validated.value.code == 1
    assert "no suspected leakage" in capsys.readouterr().err
    with pytest.raises(promote.PromotionRefusedError, match="no suspected leakage"):
        promote.promote(settings, PROJECT, version, "dev")
    assert promote.holders(settings, PROJECT)["dev"] is None
