"""The GitOps repository adapter's reads: the commit a branch points at (its history:
test_gitops_history.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from modelops.integrations.gitops import GitOpsRepo


def _git(path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(path), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_revision_follows_the_branch_and_is_none_without_a_repository(tmp_path: Path) -> None:
    repo = GitOpsRepo(tmp_path / "gitops")
    assert repo.revision() is None  # nothing there yet
    repo.ensure()
    first = repo.revision()
    assert first == _git(repo.path, "rev-parse", "HEAD") and len(first) == 40
    repo.write({"environments/production/p/values.yaml": "modelVersion: '2'\n"})
    second = repo.commit(["environments"], "deploy p v2")
    assert second is not None and repo.revision() == second.sha != first
    assert repo.revision(f"{second.sha}~1") == first
    assert repo.revision("no-such-branch") is None
    _git(repo.path, "gc", "--quiet")  # refs packed: still read
    assert repo.revision() == second.sha
