"""``make demo`` runs the whole lifecycle end to end on embedded defaults, in a fresh workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.cli.main import main
from modelops.config.settings import load_settings
from modelops.services import promote
from support import copy_workspace


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

    headings = ("1. generating", "3. training v1", "4. first model", "5. training v2", "history")
    for heading in headings:
        assert heading in out
    for project in ("credit_risk", "fraud"):
        assert f"\n{project}  " in out  # a row of the registered-versions table
    assert "ledger verified:" in out and "hash chain intact" in out
    assert "vs production" in out or "vs baseline" in out  # the v2 gate report was printed

    settings = load_settings(root)
    served = {p: promote.holders(settings, p)["production"] for p in ("credit_risk", "fraud")}
    assert any(served.values()), "the demo promotes at least one model to production"
    assert promote.verify(settings).ok
