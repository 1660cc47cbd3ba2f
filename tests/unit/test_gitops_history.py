"""The GitOps adapter's history read (``GitOpsRepo.recent_commits``), used by the status page."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from modelops.integrations.gitops import GitOpsError, GitOpsRepo


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=deployer", "-c", "user.email=d@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_the_newest_commits_come_first_with_their_files_and_message(tmp_path: Path) -> None:
    repo = tmp_path / "gitops"
    repo.mkdir()
    _git(repo, "init", "-q")
    assert GitOpsRepo(repo).recent_commits(10) == []  # a branch without a commit yet

    (repo / "a.yaml").write_text("a: 1\n")
    _git(repo, "add", "a.yaml")
    _git(repo, "commit", "-q", "-m", "first")
    (repo / "b.yaml").write_text("b: 1\n")
    (repo / "c.yaml").write_text("c: 1\n")
    _git(repo, "add", "b.yaml", "c.yaml")
    _git(repo, "commit", "-q", "-m", "second", "-m", "why it changed\nin two lines")

    newest, oldest = GitOpsRepo(repo).recent_commits(10)
    assert (newest.subject, newest.body, newest.files) == (
        "second",
        "why it changed\nin two lines",
        ("b.yaml", "c.yaml"),
    )
    assert (oldest.subject, oldest.body, oldest.files) == ("first", "", ("a.yaml",))
    assert newest.author == "deployer <d@example.com>" and len(newest.sha) == 40
    assert newest.at[:4].isdigit() and "T" in newest.at  # ISO 8601
    assert [c.subject for c in GitOpsRepo(repo).recent_commits(1)] == ["second"]


def test_a_folder_that_is_not_a_repository_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(GitOpsError, match="'git log' failed"):
        GitOpsRepo(tmp_path).recent_commits(5)
