"""``make demo`` runs the whole lifecycle end to end on embedded defaults, in a fresh workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.cli.demo import later_windows
from modelops.cli.main import main
from modelops.config.project import load_project
from modelops.config.settings import load_settings
from modelops.services import promote
from support import REPO, copy_workspace


def _demo_projects(root: Path) -> list[str]:
    """The demo runs every project that ships an example-data generator."""
    return sorted(p.parent.name for p in (root / "projects").glob("*/data.py"))


@pytest.mark.parametrize("project", _demo_projects(REPO))
def test_v2_trains_later_and_its_labels_are_still_known_before_the_holdout(project: str) -> None:
    windows = load_project(REPO / "projects", project).spec.windows
    later = later_windows(windows)
    (train_start, train_end), (valid_start, valid_end) = later["train"], later["validation"]
    assert windows.train.start < train_start <= train_end < valid_start <= valid_end
    assert train_end - train_start == windows.train.end - windows.train.start
    assert valid_end == windows.validation.end  # same label cut-off before the holdout
    assert set(later) == {"train", "validation"}  # the gate's holdout is project.yaml's


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
        "5. training v2",
        "7. packaging",
        "8. deploying through GitOps",
        "9. serving production",
        "10. monitoring production",
        "11. status page",
        "history",
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
    assert "vs production" in out or "vs baseline" in out  # the v2 gate report was printed

    settings = load_settings(root)
    served = {p: promote.holders(settings, p)["production"] for p in projects}
    assert any(served.values()), "the demo promotes at least one model to production"
    assert promote.verify(settings).ok
