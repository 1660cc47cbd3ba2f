"""Git: the commit a model was trained from, and (later) the GitOps repository."""

from __future__ import annotations

import subprocess
from pathlib import Path


def head_commit(path: Path) -> str:
    """``<sha>`` of HEAD, with ``-dirty`` when tracked files changed; ``unknown`` outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def configured_user(path: Path) -> str | None:
    """``user.name`` (and ``<user.email>``) from git config, if set."""

    def read(key: str) -> str:
        try:
            return subprocess.run(
                ["git", "config", key], cwd=path, capture_output=True, text=True, check=False
            ).stdout.strip()
        except FileNotFoundError:
            return ""

    name, email = read("user.name"), read("user.email")
    if not name:
        return None
    return f"{name} <{email}>" if email else name


def on_branch(path: Path, commit: str, branch: str) -> bool:
    """Whether ``commit`` (clean, not ``-dirty`` or ``unknown``) is on ``branch`` (local or
    ``origin/<branch>``)."""
    if not commit or commit == "unknown" or commit.endswith("-dirty"):
        return False
    for ref in (branch, f"origin/{branch}"):
        try:
            done = subprocess.run(
                ["git", "merge-base", "--is-ancestor", commit, ref],
                cwd=path,
                capture_output=True,
                check=False,
            )
        except FileNotFoundError:
            return False
        if done.returncode == 0:
            return True
    return False
