"""`modelops project init ... --train`: a CSV to a gated model in dev in one command, through the
platform's one promotion path (gates and move recorded in the ledger like manual ones), with one
summary table; a table whose models fail the gate leaves dev empty and exits 1.

The tables are made here from a seed: no ids, no times, "Yes"/"No" labels, signal spread over
several columns (an honest table) or, for the failing case, a copy of the label as a column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelops.cli.main import main
from modelops.config.settings import Settings
from modelops.core.errors import RegistryError
from modelops.services import promote, registry

ARGS = (
    "--label", "Subscribed", "--positive", "Yes", "--synthesize-ids",
    "--synthesize-time", "2023-01-01..2024-12-31", "--label-delay", "30d",
)  # fmt: skip


def _honest(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows)
    balance = rng.gamma(2.0, 800.0, rows).round(2)
    duration = rng.integers(30, 900, rows)
    calls = rng.integers(1, 8, rows)
    job = rng.choice(["admin", "technician", "services", "management"], rows)
    city = rng.choice(["Zürich", "Genève", "Malmö", "Köln"], rows)
    logit = (
        -1.6 + 0.0012 * (duration - 450) + 0.0003 * (balance - 1600) - 0.25 * (calls - 4)
        + 0.7 * (city == "Köln") + 0.02 * (age - 50) + 0.5 * (job == "management")
    )  # fmt: skip
    label = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    return pd.DataFrame(
        {"Age": age, "Balance": balance, "City": city, "Duration": duration,
         "Calls": calls, "Job": job, "Subscribed": label}
    )  # fmt: skip


def _run(
    workspace: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
) -> tuple[int, str, str]:
    monkeypatch.setenv("MODELOPS_ROOT", str(workspace.root))
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


@pytest.mark.slow
def test_init_train_reaches_dev_with_a_passing_verdict_and_prints_one_table(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = workspace.root.parent / "bank.csv"
    _honest(3_000, seed=21).to_csv(source, index=False)
    code, out, err = _run(
        workspace, monkeypatch, capsys,
        "project", "init", "bank", "--from-csv", str(source), *ARGS, "--costs", "20,5",
        "--train", "--actor", "newcomer",
    )  # fmt: skip
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].startswith("bank: 3,000 of 3,000 rows from bank.csv, ")
    assert any(line.startswith("features apply: ") for line in lines), out
    assert any(line.startswith("train: bank v1 (baseline) and v2 (candidate)") for line in lines)

    # The summary table: one row a version, with its kind and the gate's verdict against dev.
    header = next(i for i, line in enumerate(lines) if line.startswith("version "))
    assert lines[header].split()[:3] == ["version", "role", "kind"]
    rows = {line.split()[0]: line.split() for line in lines[header + 2 : header + 4]}
    assert rows["v2"][1:3] == ["candidate", "lightgbm"]
    assert rows["v1"][1:3] == ["baseline", "logistic"]
    passed = [v for v, row in rows.items() if row[-1] == "passed"]
    assert len(passed) == 1, rows
    chosen = passed[0].removeprefix("v")

    # Where it went, recorded as a manual path would record it: gates, then the move.
    assert f"dev now serves v{chosen} (ledger entry " in out
    assert registry.show_version(workspace, "bank", chosen).aliases == ["dev"]
    entries = promote.history(workspace, "bank")
    assert [e.action for e in entries][-1] == "promote"
    assert all(e.verdict_id for e in entries)
    assert entries[-1].reason.startswith("project init --train: first model, v" + chosen)
    assert {e.actor for e in entries} == {"newcomer"}
    assert promote.holders(workspace, "bank") == {"dev": chosen, "staging": None,
                                                  "production": None}  # fmt: skip
    # What to do for staging and production, with the version that reached dev.
    assert (
        f"next: staging: modelops validate bank {chosen} --against staging (promotes on a pass: "
        "auto_promote_staging)"
    ) in out
    assert f"next: production: modelops validate bank {chosen} --against production" in out
    assert "costs default" not in err


@pytest.mark.slow
def test_init_train_leaves_dev_empty_when_no_model_passes(
    workspace: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _honest(3_000, seed=22)
    frame["Outcome Code"] = (frame["Subscribed"] == "Yes").astype(int)  # the label, copied
    source = workspace.root.parent / "bank.csv"
    frame.to_csv(source, index=False)
    code, out, err = _run(
        workspace, monkeypatch, capsys,
        "project", "init", "bank", "--from-csv", str(source), *ARGS, "--train",
    )  # fmt: skip
    assert code == 1, out + err
    assert "FAILED" in out and "passed" not in out.split("version ")[-1]
    assert "dev unchanged: no offered version passed the gate against dev" in err
    assert "warning: no costs given: placeholder 1:1 costs carry a model to dev and staging" in err
    assert promote.holders(workspace, "bank")["dev"] is None
    assert [e.action for e in promote.history(workspace, "bank")] == ["validate", "validate"]
    assert (workspace.root / "projects/bank/project.yaml").is_file()


def test_init_without_train_says_train_is_the_shortcut(
    workspace: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    source = tmp_path / "bank.csv"
    _honest(600, seed=23).to_csv(source, index=False)
    code, out, err = _run(
        workspace, monkeypatch, capsys,
        "project", "init", "bank", "--from-csv", str(source), *ARGS,
    )  # fmt: skip
    assert code == 0, err
    assert "next: modelops features apply && modelops train bank (or --train)" in out
    with pytest.raises(RegistryError, match="no registered model 'bank'"):
        registry.list_versions(workspace, "bank")
