"""The GitOps repository: a git working copy the deploys write Helm values into, via the git CLI.

Only git mechanics live here (create, read, write, commit, push, a lock between writers); what
goes into the files and the commit message is decided by :mod:`modelops.services.deploy`.

Every git call runs with ``LC_ALL=C`` (stable messages), without prompts (``GIT_TERMINAL_PROMPT=0``)
and with a timeout; a failure becomes one :class:`GitOpsError` line naming the repository and the
git command.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelops.core.errors import ModelopsError

DEFAULT_BRANCH = "main"
DEFAULT_REMOTE = "origin"
FALLBACK_NAME = "modelops"
FALLBACK_EMAIL = "modelops@localhost"
_LOCK_FILE = "modelops-gitops.lock"
_TIMEOUT_S = 120.0
_PUSH_ATTEMPTS = 3

_README = """# GitOps repository

Desired state of the modelops prediction services, written by `modelops deploy` and
`modelops rollback`: `environments/<environment>/<project>/values.yaml` holds one service's Helm
values, `apps/<environment>-<project>.yaml` the Argo CD Application that syncs it. Every commit
names the project, the model version, the verdict and the actor, and records the ledger's head
in its `Modelops-Ledger-Head` trailer.
"""


class GitOpsError(ModelopsError):
    """The GitOps repository cannot be created, read, committed to or pushed."""


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str


@dataclass(frozen=True)
class LoggedCommit:
    """One commit of the history, as a status page lists it."""

    sha: str
    author: str
    """``Name <email>``."""
    at: str
    """The author date, ISO 8601."""
    subject: str
    body: str
    files: tuple[str, ...]
    """The paths the commit touched."""


_RECORD, _FIELD = "\x1e", "\x1f"
_LOG_FORMAT = "%x1e%H%x1f%an <%ae>%x1f%aI%x1f%s%x1f%b%x1f"


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(LC_ALL="C", LANG="C", GIT_TERMINAL_PROMPT="0")
    return env


def _git(
    path: Path, *args: str, check: bool = True, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=path,
            capture_output=True,
            text=True,
            input=input_text,
            env=_environment(),
            timeout=_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as error:
        raise GitOpsError("the git command is not installed (needed for GitOps deploys)") from error
    except subprocess.TimeoutExpired as error:
        raise GitOpsError(
            f"GitOps repo {path}: 'git {args[0]}' did not finish in {_TIMEOUT_S:g} s"
        ) from error
    if check and done.returncode != 0:
        raise GitOpsError(f"GitOps repo {path}: 'git {args[0]}' failed: {_first(done)}")
    return done


def _first(done: subprocess.CompletedProcess[str]) -> str:
    for text in (done.stderr, done.stdout):
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("hint:"):
                return line.removeprefix("fatal: ").removeprefix("error: ")
    return f"exit code {done.returncode}"


def remote_url(path: Path, remote: str = DEFAULT_REMOTE) -> str | None:
    """The URL of ``remote`` of the git repository at ``path``; None without one (or no repo)."""
    if not path.is_dir():
        return None
    try:
        done = _git(path, "remote", "get-url", remote, check=False)
    except GitOpsError:
        return None
    url = done.stdout.strip()
    return url if done.returncode == 0 and url else None


class GitOpsRepo:
    """The git working copy at ``path`` (nothing is touched until a method is called)."""

    def __init__(self, path: Path, *, remote: str = DEFAULT_REMOTE) -> None:
        self.path = path
        self.remote = remote

    def __repr__(self) -> str:
        return f"GitOpsRepo({str(self.path)!r})"

    # ------------------------------------------------------------------ state

    def exists(self) -> bool:
        """Whether ``path`` is the top of a git working copy."""
        if not (self.path / ".git").exists():
            return False
        done = _git(self.path, "rev-parse", "--show-toplevel", check=False)
        return done.returncode == 0 and Path(done.stdout.strip()).resolve() == self.path.resolve()

    def ensure(self) -> bool:
        """Create the repository on first use: ``git init``, a README and an initial commit.

        Returns True when it was created. An existing repository is only given a local
        ``user.name``/``user.email`` when git has none (a fresh CI machine).

        Raises:
            GitOpsError: ``path`` is a file, or a non-empty directory that is not a repository.
        """
        if self.exists():
            self._ensure_identity()
            return False
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise GitOpsError(
                f"GitOps repo {self.path} exists but is not a git repository (gitops_repo in "
                "modelops.yaml: point it at a clone, or at a missing or empty directory)"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise GitOpsError(
                f"GitOps repo {self.path}: cannot create it: {error.strerror or error}"
            ) from error
        _git(self.path, "init", "--quiet", f"--initial-branch={DEFAULT_BRANCH}")
        self._ensure_identity()
        (self.path / "README.md").write_text(_README)
        _git(self.path, "add", "README.md")
        _git(
            self.path, "commit", "--quiet", "--no-verify", "-m", "initialize the GitOps repository"
        )
        return True

    def _ensure_identity(self) -> None:
        for key, fallback in (("user.name", FALLBACK_NAME), ("user.email", FALLBACK_EMAIL)):
            if not _git(self.path, "config", key, check=False).stdout.strip():
                _git(self.path, "config", "--local", key, fallback)

    def branch(self) -> str:
        """The checked-out branch (``main`` on a fresh repository)."""
        done = _git(self.path, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        name = done.stdout.strip()
        if done.returncode != 0 or not name:
            raise GitOpsError(
                f"GitOps repo {self.path}: HEAD is detached; check out a branch to deploy to"
            )
        return name

    def remote_url(self) -> str | None:
        return remote_url(self.path, self.remote)

    def head(self) -> Commit:
        return self.commit_at("HEAD")

    def revision(self, rev: str = "HEAD") -> str | None:
        """The commit ``rev`` names (``HEAD``: the tip of the checked-out branch); None when
        there is no repository at ``path`` or no such commit (yet). Never raises: cheap enough
        to poll while a deploy or a rollback writes."""
        if not (self.path / ".git").exists():
            return None
        try:
            done = _git(
                self.path, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False
            )
        except GitOpsError:
            return None
        sha = done.stdout.strip()
        return sha if done.returncode == 0 and sha else None

    def commit_at(self, rev: str) -> Commit:
        done = _git(self.path, "log", "-1", "--format=%H%n%B", rev)
        sha, _, message = done.stdout.partition("\n")
        return Commit(sha=sha.strip(), message=message.strip())

    def trailers(self, rev: str = "HEAD") -> dict[str, list[str]]:
        """The trailers (``Key: value`` lines at the end of the message) of ``rev``."""
        message = self.commit_at(rev).message
        done = _git(self.path, "interpret-trailers", "--parse", input_text=message + "\n")
        found: dict[str, list[str]] = {}
        for line in done.stdout.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                found.setdefault(key.strip(), []).append(value.strip())
        return found

    # ------------------------------------------------------------------ files

    def read(self, relative: str) -> str | None:
        """A file of the working tree, None when missing."""
        target = self._inside(relative)
        return target.read_text() if target.is_file() else None

    def write(self, files: Mapping[str, str]) -> None:
        """Write ``{relative path: text}`` into the working tree (directories created)."""
        for relative, text in files.items():
            target = self._inside(relative)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            except OSError as error:
                raise GitOpsError(
                    f"GitOps repo {self.path}: cannot write {relative}: {error.strerror or error}"
                ) from error

    def _inside(self, relative: str) -> Path:
        target = (self.path / relative).resolve()
        if not target.is_relative_to(self.path.resolve()):
            raise GitOpsError(f"GitOps repo {self.path}: path {relative!r} leaves the repository")
        return target

    # ------------------------------------------------------------------ commits

    def commit(self, paths: Sequence[str], message: str) -> Commit | None:
        """Stage ``paths`` and commit them with ``message``; None when nothing changed (no empty
        commit). Only ``paths`` are committed, whatever else is staged or edited."""
        _git(self.path, "add", "--", *paths)
        changed = _git(self.path, "diff", "--cached", "--quiet", "--", *paths, check=False)
        if changed.returncode == 0:
            return None
        _git(
            self.path,
            "commit",
            "--quiet",
            "--no-verify",
            "--cleanup=strip",
            "-F",
            "-",
            "--",
            *paths,
            input_text=message,
        )
        return self.head()

    # ------------------------------------------------------------------ remote

    def require_remote(self) -> str:
        """The remote's URL, or one line saying there is none."""
        url = self.remote_url()
        if url is None:
            raise GitOpsError(
                f"GitOps repo {self.path} has no remote '{self.remote}' to push to; add one "
                f"(git -C {self.path} remote add {self.remote} URL) or deploy without --push"
            )
        return url

    def pull(self) -> None:
        """Fast-forward the branch to the remote's (fetch first); nothing when the remote has no
        such branch yet."""
        branch = self.branch()
        _git(self.path, "fetch", "--quiet", self.remote)
        if not self._remote_has(branch):
            return
        done = _git(
            self.path, "merge", "--ff-only", "--quiet", f"{self.remote}/{branch}", check=False
        )
        if done.returncode != 0:
            raise GitOpsError(
                f"GitOps repo {self.path}: local {branch} has diverged from {self.remote}/{branch} "
                f"({_first(done)}); reconcile it by hand"
            )

    def push(self) -> None:
        """Push the branch; when the remote moved meanwhile, rebase onto it and try again."""
        branch = self.branch()
        for attempt in range(1, _PUSH_ATTEMPTS + 1):
            done = _git(self.path, "push", "--quiet", self.remote, f"HEAD:{branch}", check=False)
            if done.returncode == 0:
                return
            rejected = "rejected" in done.stderr or "fetch first" in done.stderr
            if not rejected or attempt == _PUSH_ATTEMPTS:
                raise GitOpsError(
                    f"GitOps repo {self.path}: push to {self.remote} ({branch}) failed: "
                    f"{_first(done)}"
                )
            _git(self.path, "fetch", "--quiet", self.remote)
            rebased = _git(self.path, "rebase", "--quiet", f"{self.remote}/{branch}", check=False)
            if rebased.returncode != 0:
                _git(self.path, "rebase", "--abort", check=False)
                raise GitOpsError(
                    f"GitOps repo {self.path}: {self.remote}/{branch} changed the same files "
                    f"meanwhile ({_first(rebased)}); pull, resolve, and deploy again"
                )

    def _remote_has(self, branch: str) -> bool:
        done = _git(
            self.path,
            "rev-parse",
            "--verify",
            "--quiet",
            f"refs/remotes/{self.remote}/{branch}",
            check=False,
        )
        return done.returncode == 0

    # ------------------------------------------------------------------ lock

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time (an exclusive lock on a file inside ``.git``)."""
        import fcntl

        lock_path = self.path / ".git" / _LOCK_FILE
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ history

    def recent_commits(
        self, n: int, *, touching: str | None = None, message_contains: str | None = None
    ) -> list[LoggedCommit]:
        """The newest ``n`` commits of HEAD, newest first, with the files each touched; empty
        when the branch has no commit yet. ``touching``: only commits that changed that path;
        ``message_contains``: only commits whose message contains that text.

        Raises:
            GitOpsError: git is missing, ``path`` is not a repository, or ``git log`` failed.
        """
        args = ["log", f"-n{n}", f"--format={_LOG_FORMAT}", "--name-only"]
        if message_contains is not None:
            args += ["--fixed-strings", f"--grep={message_contains}"]
        if touching is not None:
            args += ["--", touching]
        done = _git(self.path, *args, check=False)
        if done.returncode != 0:
            if "does not have any commits" in done.stderr:
                return []
            raise GitOpsError(f"GitOps repo {self.path}: 'git log' failed: {_first(done)}")
        commits = []
        for record in done.stdout.split(_RECORD)[1:]:
            parts = record.split(_FIELD)
            if len(parts) < 6:
                continue
            sha, author, at, subject, body, files = parts[:6]
            commits.append(
                LoggedCommit(
                    sha=sha.strip(),
                    author=author,
                    at=at,
                    subject=subject,
                    body=body.strip(),
                    files=tuple(f for f in files.split("\n") if f.strip()),
                )
            )
        return commits
