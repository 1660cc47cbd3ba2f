"""The GitOps repository adapter's reads: the commit a branch points at, and its history."""

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


def test_history_lists_the_newest_commits_with_their_files(tmp_path: Path) -> None:
    empty = GitOpsRepo(tmp_path / "empty")
    assert empty.history(5) is None
    empty.path.mkdir()
    _git(empty.path, "init", "--quiet")
    assert empty.history(5) == []  # a repository without commits
    repo = GitOpsRepo(tmp_path / "gitops")
    repo.ensure()
    repo.write({"environments/staging/p/values.yaml": "modelVersion: '1'\n", "apps/a.yaml": "x"})
    repo.commit(["environments", "apps"], "deploy p v1\n\nModelops-Ledger-Head: abc")
    newest = repo.history(5)
    assert newest is not None and [c.subject for c in newest] == [
        "deploy p v1",
        "initialize the GitOps repository",
    ]
    assert newest[0].files == ("apps/a.yaml", "environments/staging/p/values.yaml")
    assert newest[0].body == "Modelops-Ledger-Head: abc" and newest[0].sha == repo.revision()
    assert "<" in newest[0].author and newest[0].at[:2] == "20"
    assert len(repo.history(1) or []) == 1
