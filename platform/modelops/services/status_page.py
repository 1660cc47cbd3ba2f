"""``modelops report``: one static HTML site that shows who serves where and why.

The site is built from what the platform records, never from memory:

- which version serves each (project, environment): the ledger's holder, since when, by whom,
  how (promotion or rollback) and why, next to the MLflow alias (a disagreement is flagged);
- the ledger timeline, with the chain's verification;
- every gate report, rendered from the verdict recorded whole in the ledger (the same Markdown
  the gate logs to MLflow as ``gate/<verdict id>/report.md``);
- the monitoring runs (``<state_dir>/monitoring/<project>/<run id>/`` with ``report.html`` and
  ``summary.json``), their Evidently reports copied into the site;
- each monitor action (a ledger entry carrying evidence) with that evidence and its reports;
- the GitOps repository's commits, when it exists.

The site is self-contained: relative links only, no script, no external style sheet, font or
CDN (the copied Evidently reports carry their own inline code). Everything that comes from data
is HTML-escaped (Jinja2 autoescaping; Markdown is rendered with raw HTML and links disabled), and
every page forbids scripts through its Content-Security-Policy. File names derived from data
(verdict ids, run ids, project names) are reduced to safe characters, so no id can write outside
the site.

A rebuild replaces the previous site in one rename; a directory that is not a site this module
wrote (no ``.modelops-site`` marker) is never replaced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import available_projects
from modelops.config.settings import Settings
from modelops.core.errors import ModelopsError
from modelops.core.ledger import RecordedEntry

if TYPE_CHECKING:
    from jinja2 import Environment
    from markupsafe import Markup

    from modelops.services.registry import VersionInfo

log = logging.getLogger(__name__)

MARKER = ".modelops-site"
"""Written into every site; only a directory holding it is ever replaced by a rebuild."""
MAX_RUNS_PER_PROJECT = 100
"""Newest monitoring runs per project copied into the site (runs named by an action always)."""
GITOPS_COMMITS = 200
"""Newest GitOps commits listed."""
PROJECT_ENTRIES = 50
"""Newest ledger entries on a project's page (the ledger page lists them all)."""

GATE_AND_MOVES = frozenset({"validate", "promote", "approve", "refuse", "rollback"})
"""Ledger actions of the gate and of explicit moves; any other action is a monitor action."""
EVIDENCE_KEYS = frozenset(
    {
        "evidence",
        "findings",
        "monitor_run",
        "monitoring_run",
        "run_id",
        "report",
        "report_html",
        "report_path",
        "summary",
        "summary_path",
        "reports",
    }
)
"""Details keys that make any entry (a monitor's rollback, say) a monitor action."""
_RUN_ID_KEYS = ("run_id", "monitor_run", "monitoring_run", "monitor_run_id")


class StatusPageError(ModelopsError):
    """The status page cannot be written where asked."""


@dataclass(frozen=True)
class Serving:
    """Which version holds one (project, environment), and how it got there."""

    project: str
    environment: str
    version: str | None
    entry: RecordedEntry | None
    alias: str | None = None
    alias_known: bool = False

    @property
    def alias_agrees(self) -> bool:
        return not self.alias_known or self.alias == self.version


@dataclass(frozen=True)
class GateReport:
    verdict_id: str
    project: str
    environment: str
    candidate: str | None
    reference: str | None
    passed: bool
    at: datetime
    page: str
    entries: tuple[int, ...]


@dataclass
class MonitoringRun:
    project: str
    run_id: str
    source: Path
    summary: dict[str, Any] | None
    problem: str | None
    page: str = ""
    report: str | None = None
    summary_file: str | None = None

    @property
    def started_at(self) -> str:
        value = (self.summary or {}).get("started_at")
        return str(value) if value is not None else ""

    @property
    def sort_key(self) -> tuple[str, float]:
        try:
            mtime = self.source.stat().st_mtime
        except OSError:
            mtime = 0.0
        return (self.started_at, mtime)


@dataclass(frozen=True)
class GitCommit:
    sha: str
    author: str
    at: str
    subject: str
    body: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Site:
    """What :func:`build` wrote: the site's folder, its front page and every page in it."""

    out: Path
    index: Path
    pages: tuple[Path, ...]
    projects: tuple[str, ...]
    serving: tuple[Serving, ...]
    ledger_entries: int
    gate_reports: int
    monitoring_runs: int
    monitor_actions: int
    gitops_commits: int
    warnings: tuple[str, ...] = ()


@dataclass
class _Data:
    settings: Settings
    projects: list[str]
    entries: list[RecordedEntry]
    verification: str | None
    verification_ok: bool | None
    serving: list[Serving]
    versions: dict[str, list[VersionInfo]]
    registry_problems: dict[str, str]
    gates: dict[str, GateReport]
    gate_markdown: dict[str, tuple[str, str | None, dict[str, Any]]]
    runs: list[MonitoringRun]
    skipped_runs: dict[str, int]
    actions: list[RecordedEntry]
    action_links: dict[int, list[tuple[str, str]]]
    gitops_repo: Path
    commits: list[GitCommit] | None
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- public API


def default_out(settings: Settings) -> Path:
    """Where ``modelops report`` writes without ``--out``: ``<state_dir>/site``."""
    return settings.resolved_state_dir / "site"


def monitoring_dir(settings: Settings) -> Path:
    """Where monitoring runs save their reports: ``<state_dir>/monitoring``."""
    configured = getattr(settings, "resolved_monitoring_dir", None)
    return Path(configured) if configured else settings.resolved_state_dir / "monitoring"


def build(
    settings: Settings,
    out: Path | None = None,
    *,
    max_runs_per_project: int = MAX_RUNS_PER_PROJECT,
) -> Site:
    """Write the status site to ``out`` (default ``<state_dir>/site``) and describe it.

    Sources that are missing (no ledger yet, no monitoring run, no GitOps repository) become
    sections that say so; sources that fail (MLflow unreachable, a damaged ``summary.json``)
    become warnings on the page and in the result.

    Raises:
        StatusPageError: ``out`` is a file, a non-empty directory that is not a status site, or
            cannot be written.
        ModelopsError: the ledger cannot be read.
    """
    target = (out or default_out(settings)).expanduser().resolve()
    _check_target(target)
    data = _collect(settings, max_runs_per_project)
    staging = target.parent / f".{target.name}.building-{os.getpid()}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        pages = _render(data, staging)
        (staging / MARKER).write_text(
            "written by 'modelops report'; rebuilt as a whole, edits are lost\n", encoding="utf-8"
        )
        _swap(staging, target)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise StatusPageError(
            f"cannot write the status page to {target}: {error.strerror or error}"
            + (f" ({error.filename})" if error.filename else "")
        ) from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Site(
        out=target,
        index=target / "index.html",
        pages=tuple(target / page for page in pages),
        projects=tuple(data.projects),
        serving=tuple(data.serving),
        ledger_entries=len(data.entries),
        gate_reports=len(data.gates),
        monitoring_runs=len(data.runs),
        monitor_actions=len(data.actions),
        gitops_commits=len(data.commits or []),
        warnings=tuple(data.warnings),
    )


def is_monitor_action(entry: RecordedEntry) -> bool:
    """A ledger entry a monitor wrote: an action other than the gate's and the explicit moves,
    or any entry whose details carry evidence or report paths (an automatic rollback)."""
    return entry.action not in GATE_AND_MOVES or bool(EVIDENCE_KEYS & set(entry.details))


# ----------------------------------------------------------------------------- target


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise StatusPageError(f"--out {target} is a file; the status page needs a directory")
    if target.is_dir() and not (target / MARKER).exists() and any(target.iterdir()):
        raise StatusPageError(
            f"--out {target} is a non-empty directory that is not a status page ({MARKER} "
            "missing); choose a new or empty directory"
        )


def _swap(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` (two renames; readers never see a half site)."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        if old.exists():
            shutil.rmtree(old)
        target.rename(old)
    staging.rename(target)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- collect


def _collect(settings: Settings, max_runs: int) -> _Data:
    warnings: list[str] = []
    entries, verification, ok = _ledger(settings, warnings)
    projects = sorted(
        set(available_projects(settings.resolved_projects_dir))
        | {e.project for e in entries}
        | set(_monitored_projects(settings))
    )
    versions, registry_problems = _registry(settings, projects)
    serving = _serving(settings, projects, entries, versions)
    gates, markdown = _gates(settings, entries, warnings)
    actions = [e for e in entries if is_monitor_action(e)]
    runs, skipped = _runs(settings, actions, max_runs, warnings)
    repo = settings.resolved_gitops_repo
    commits = _gitops_commits(repo, warnings)
    return _Data(
        settings=settings,
        projects=projects,
        entries=entries,
        verification=verification,
        verification_ok=ok,
        serving=serving,
        versions=versions,
        registry_problems=registry_problems,
        gates=gates,
        gate_markdown=markdown,
        runs=runs,
        skipped_runs=skipped,
        actions=actions,
        action_links={},
        gitops_repo=repo,
        commits=commits,
        warnings=warnings,
    )


def _ledger(
    settings: Settings, warnings: list[str]
) -> tuple[list[RecordedEntry], str | None, bool | None]:
    """Every entry, oldest first, and the chain's verification in one line.

    An embedded ledger that was never written is not created by reading it.
    """
    from modelops.services.context import ledger as ledger_for

    if _missing_sqlite(settings.platform_database_url):
        return [], None, None
    ledger = ledger_for(settings)
    try:
        entries = ledger.entries()
        try:
            result = ledger.verify()
        except ModelopsError as error:
            warnings.append(f"ledger not verified: {error}")
            return entries, f"not verified: {error}", None
        if result.ok:
            line = f"hash chain intact: {result.checked} entries, anchor {result.anchor or '-'}"
        else:
            shown = "; ".join(result.problems[:5])
            more = len(result.problems) - 5
            line = f"{len(result.problems)} problem(s): {shown}" + (
                f" (and {more} more; run 'modelops history --verify')" if more > 0 else ""
            )
            warnings.append(f"ledger verification failed: {len(result.problems)} problem(s)")
        return entries, line, result.ok
    finally:
        ledger.close()


def _missing_sqlite(url: str) -> bool:
    """Whether ``url`` is a SQLite database file that does not exist (yet)."""
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return url.startswith("sqlite:///") and path != ":memory:" and not Path(path).exists()


def _registry(
    settings: Settings, projects: list[str]
) -> tuple[dict[str, list[VersionInfo]], dict[str, str]]:
    """Registered versions (with aliases) per project; a project MLflow cannot answer for gets
    a one-line reason instead (the page still shows the ledger's view)."""
    from modelops.core.errors import RegistryError
    from modelops.services import registry

    versions: dict[str, list[VersionInfo]] = {}
    problems: dict[str, str] = {}
    if _missing_sqlite(settings.registry_uri):  # never create a registry to read it
        return versions, dict.fromkeys(projects, "no MLflow registry yet")
    for name in projects:
        try:
            versions[name] = registry.list_versions(settings, name)
        except RegistryError as error:
            problems[name] = str(error)
        except ModelopsError as error:
            problems[name] = f"registry unavailable: {error}"
        except Exception as error:  # MLflow down or misconfigured: the page still renders
            first = next(iter(str(error).splitlines()), "")
            problems[name] = f"registry unavailable: {type(error).__name__}: {first[:300]}"
    return versions, problems


def _serving(
    settings: Settings,
    projects: list[str],
    entries: list[RecordedEntry],
    versions: dict[str, list[VersionInfo]],
) -> list[Serving]:
    """The holder of each environment replayed from the ledger's promote and rollback entries
    (the chain is the truth; its verification compares it with the holder table)."""
    last: dict[tuple[str, str], RecordedEntry] = {}
    for entry in entries:
        if entry.action in ("promote", "rollback"):
            last[(entry.project, entry.environment)] = entry
    environments = list(settings.environments)
    for _project, environment in last:
        if environment not in environments:
            environments.append(environment)
    rows = []
    for project in projects:
        aliases: dict[str, str] | None = None
        if project in versions:
            aliases = {a: v.version for v in versions[project] for a in v.aliases}
        for environment in environments:
            move = last.get((project, environment))
            if move is None and environment not in settings.environments:
                continue
            rows.append(
                Serving(
                    project=project,
                    environment=environment,
                    version=move.to_version if move else None,
                    entry=move,
                    alias=None if aliases is None else aliases.get(environment),
                    alias_known=aliases is not None,
                )
            )
    return rows


def _gates(
    settings: Settings, entries: list[RecordedEntry], warnings: list[str]
) -> tuple[dict[str, GateReport], dict[str, tuple[str, str | None, dict[str, Any]]]]:
    """One report per recorded verdict: ``{verdict id: GateReport}`` and ``{verdict id:
    (markdown, note, verdict dict)}``."""
    from modelops.core.verdict import Verdict
    from modelops.services.context import project as project_for
    from modelops.services.report import to_markdown

    reports: dict[str, GateReport] = {}
    markdown: dict[str, tuple[str, str | None, dict[str, Any]]] = {}
    projects: dict[str, Any] = {}
    for entry in entries:
        raw = entry.details.get("verdict")
        if entry.action != "validate" or not entry.verdict_id or not isinstance(raw, dict):
            continue
        vid = entry.verdict_id
        if vid in reports:
            old = reports[vid]
            reports[vid] = dataclasses.replace(old, entries=(*old.entries, entry.seq))
            continue
        reports[vid] = GateReport(
            verdict_id=vid,
            project=entry.project,
            environment=entry.environment,
            candidate=entry.to_version,
            reference=_reference(entry),
            passed=bool(entry.details.get("passed")),
            at=entry.at,
            page=f"gates/{_slug(vid)}.html",
            entries=(entry.seq,),
        )
        note: str | None = None
        try:
            if entry.project not in projects:
                projects[entry.project] = project_for(settings, entry.project)
            project = projects[entry.project]
            text = to_markdown(Verdict.from_dict(raw), project)
            recorded_yaml = entry.details.get("project_yaml_sha256")
            if recorded_yaml and recorded_yaml != project.spec_hash:
                note = (
                    "project.yaml changed since this verdict: the wording (event name, "
                    "currency) follows today's file; every number is the recorded verdict's."
                )
        except (ModelopsError, KeyError, TypeError, ValueError) as error:
            text = ""
            note = f"could not render the report ({type(error).__name__}: {error}); the "
            note += "recorded verdict follows."
            warnings.append(f"gate report {vid}: {type(error).__name__}: {error}")
        markdown[vid] = (text, note, raw)
    return reports, markdown


def _reference(entry: RecordedEntry) -> str:
    role = entry.details.get("reference_role")
    version = entry.details.get("reference_version")
    if role and version and version != "-":
        return f"{role} v{version}"
    return str(role or "baseline")


def _monitored_projects(settings: Settings) -> list[str]:
    root = monitoring_dir(settings)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _runs(
    settings: Settings, actions: list[RecordedEntry], max_runs: int, warnings: list[str]
) -> tuple[list[MonitoringRun], dict[str, int]]:
    """The monitoring runs to publish, newest first per project, and how many were left out."""
    root = monitoring_dir(settings)
    if not root.is_dir():
        return [], {}
    referenced = {(e.project, run) for e in actions for run in _run_ids(e)}
    for entry in actions:
        for path in _paths(entry.details):
            named = _run_of(settings, path)
            if named:
                referenced.add(named)
    runs: list[MonitoringRun] = []
    skipped: dict[str, int] = {}
    for project_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        found: list[MonitoringRun] = []
        for run_dir in project_dir.iterdir():
            if not run_dir.is_dir() or run_dir.name.startswith("."):
                continue
            found.append(_read_run(project_dir.name, run_dir, warnings))
        found.sort(key=lambda r: r.sort_key, reverse=True)
        kept = [
            r for i, r in enumerate(found) if i < max_runs or (r.project, r.run_id) in referenced
        ]
        if len(found) > len(kept):
            skipped[project_dir.name] = len(found) - len(kept)
        runs += kept
    return runs, skipped


def _read_run(project: str, run_dir: Path, warnings: list[str]) -> MonitoringRun:
    summary: dict[str, Any] | None = None
    problem: str | None = None
    summary_file = run_dir / "summary.json"
    if summary_file.is_file():
        try:
            loaded = json.loads(summary_file.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                summary = loaded
            else:
                problem = "summary.json is not a JSON object"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            problem = f"summary.json unreadable: {error}"
    else:
        problem = "no summary.json"
    if problem:
        warnings.append(f"monitoring run {project}/{run_dir.name}: {problem}")
    return MonitoringRun(project, run_dir.name, run_dir, summary, problem)


def _run_ids(entry: RecordedEntry) -> list[str]:
    ids = [entry.details.get(key) for key in _RUN_ID_KEYS]
    evidence = entry.details.get("evidence")
    if isinstance(evidence, Mapping):
        ids += [evidence.get(key) for key in _RUN_ID_KEYS]
    return [str(i) for i in ids if isinstance(i, str | int) and str(i)]


def _paths(value: Any) -> Iterable[str]:
    """Every string in ``value`` (nested) that looks like a file path."""
    if isinstance(value, str):
        if ("/" in value or os.sep in value) and "\n" not in value and len(value) < 4096:
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _paths(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _paths(item)


def _run_of(settings: Settings, text: str) -> tuple[str, str] | None:
    """``(project, run id)`` when ``text`` is a path inside the monitoring directory."""
    root = monitoring_dir(settings).resolve()
    candidate = Path(text.removeprefix("file://"))
    bases = [Path("/")] if candidate.is_absolute() else [settings.root, settings.resolved_state_dir]
    for base in bases:
        try:
            parts = (base / candidate).resolve().relative_to(root).parts
        except (ValueError, OSError):
            continue
        if len(parts) >= 2:
            return parts[0], parts[1]
    return None


def _gitops_commits(repo: Path, warnings: list[str]) -> list[GitCommit] | None:
    """The newest commits of the GitOps repository; None when there is none (yet)."""
    if not repo.is_dir():
        return None
    git = shutil.which("git")
    if git is None:
        warnings.append("git is not installed: GitOps commits not shown")
        return None
    fmt = "%x1e%H%x1f%an <%ae>%x1f%aI%x1f%s%x1f%b%x1f"
    try:
        done = subprocess.run(
            [git, "-C", str(repo), "log", f"-n{GITOPS_COMMITS}", f"--format={fmt}", "--name-only"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        warnings.append(f"GitOps repository {repo}: git log failed: {error}")
        return []
    if done.returncode != 0:
        message = done.stderr.strip()
        if "does not have any commits" in message:
            return []
        if "not a git repository" in message:
            return None
        first = next(iter(message.splitlines()), "")
        warnings.append(f"GitOps repository {repo}: git log failed: {first}")
        return []
    commits = []
    for record in done.stdout.split("\x1e")[1:]:
        parts = record.split("\x1f")
        if len(parts) < 6:
            continue
        sha, author, at, subject, body, files = parts[:6]
        commits.append(
            GitCommit(
                sha=sha.strip(),
                author=author,
                at=at,
                subject=subject,
                body=body.strip(),
                files=tuple(f for f in files.split("\n") if f.strip()),
            )
        )
    return commits


def _action_links(data: _Data, entry: RecordedEntry) -> list[tuple[str, str]]:
    """``(label, site path)`` of the monitoring runs and reports an action names."""
    wanted: list[tuple[str, str]] = [(entry.project, run) for run in _run_ids(entry)]
    for path in _paths(entry.details):
        found = _run_of(data.settings, path)
        if found and found not in wanted:
            wanted.append(found)
    links: list[tuple[str, str]] = []
    by_key = {(r.project, r.run_id): r for r in data.runs}
    for key in wanted:
        run = by_key.get(key)
        if run is None:
            continue
        links.append((f"monitoring run {run.run_id}", _run_page(run)))
        if run.report:
            links.append((f"Evidently report of {run.run_id}", run.report))
    return links


# ----------------------------------------------------------------------------- render


def _slug(value: str) -> str:
    """A file-name-safe form of ``value`` (letters, digits, ``_`` and ``-``); a changed name
    gets a hash suffix, so two ids never share a file and none can name a parent directory."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", value)[:80]
    if cleaned == value and cleaned:
        return cleaned
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{cleaned or 'x'}-{digest}"


def _run_page(run: MonitoringRun) -> str:
    return f"monitoring/{_slug(run.project)}/{_slug(run.run_id)}/index.html"


def _project_page(project: str) -> str:
    return f"projects/{_slug(project)}.html"


def _place(source: Path, destination: Path) -> None:
    """A hard link when source and site share a file system (no copy of big reports), else a
    copy."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _render(data: _Data, out: Path) -> list[str]:
    from markupsafe import Markup

    env = _environment()
    written: list[str] = []

    def page(path: str, template: str, title: str, **context: Any) -> None:
        depth = path.count("/")
        html = env.get_template(template).render(
            root="../" * depth,
            title=title,
            built=datetime.now(UTC),
            d=data,
            **context,
        )
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
        written.append(path)

    for run in data.runs:
        run.page = _run_page(run)
        folder = run.page.rsplit("/", 1)[0]
        if (run.source / "report.html").is_file():
            run.report = f"{folder}/report.html"
            _place(run.source / "report.html", out / run.report)
        if (run.source / "summary.json").is_file():
            run.summary_file = f"{folder}/summary.json"
            _place(run.source / "summary.json", out / run.summary_file)
    data.action_links = {e.seq: _action_links(data, e) for e in data.actions}

    page("index.html", "index.html", "Status")
    page("ledger.html", "ledger.html", "Ledger")
    page("gates.html", "gates.html", "Gate reports")
    page("monitoring.html", "monitoring.html", "Monitoring")
    page("gitops.html", "gitops.html", "GitOps")
    for project in data.projects:
        page(_project_page(project), "project.html", project, project=project)
    for vid, report in data.gates.items():
        text, note, raw = data.gate_markdown[vid]
        page(
            report.page,
            "gate.html",
            f"Gate report {vid}",
            report=report,
            body=Markup(_markdown(text)) if text else None,
            note=note,
            raw=json.dumps(raw, indent=2, ensure_ascii=False, sort_keys=True),
        )
    for run in data.runs:
        page(run.page, "run.html", f"Monitoring run {run.run_id}", run=run)
    for entry in data.actions:
        page(
            _action_page(entry),
            "action.html",
            f"{entry.action} #{entry.seq}",
            entry=entry,
            links=data.action_links.get(entry.seq, []),
            raw=json.dumps(entry.details, indent=2, ensure_ascii=False, sort_keys=True),
        )
    return written


def _action_page(entry: RecordedEntry) -> str:
    return f"actions/{entry.seq}.html"


def _markdown(text: str) -> str:
    """Markdown as HTML, raw HTML, links and images disabled (nothing in a report can point
    anywhere or inject markup); escaped text in ``<pre>`` without markdown-it."""
    from markupsafe import escape

    try:
        from markdown_it import MarkdownIt
    except ImportError:  # pragma: no cover - markdown-it-py comes with rich
        return f'<pre class="report">{escape(text)}</pre>'
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.disable(["link", "image", "autolink"])
    return str(md.render(text))


def _time(value: Any) -> str:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if value is None:
        return "-"
    return str(value)


def _version(value: Any) -> str:
    return f"v{value}" if value not in (None, "") else "-"


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _value(value: Any, depth: int = 0) -> Markup:
    """Any JSON value as escaped HTML: objects as key/value tables, lists as lists."""
    from markupsafe import Markup, escape

    if isinstance(value, Mapping):
        if not value:
            return Markup("<em>none</em>")
        if depth >= 5:
            return Markup("<pre>{}</pre>").format(json.dumps(value, indent=2, default=str))
        rows = Markup("").join(
            Markup("<tr><th>{}</th><td>{}</td></tr>").format(str(k), _value(v, depth + 1))
            for k, v in value.items()
        )
        return Markup('<table class="kv">{}</table>').format(rows)
    if isinstance(value, list | tuple):
        if not value:
            return Markup("<em>none</em>")
        if all(not isinstance(v, Mapping | list | tuple) for v in value):
            return escape(", ".join(_scalar(v) for v in value))
        items = Markup("").join(Markup("<li>{}</li>").format(_value(v, depth + 1)) for v in value)
        return Markup("<ol>{}</ol>").format(items)
    return escape(_scalar(value))


def _environment() -> Environment:
    from jinja2 import DictLoader, Environment, StrictUndefined

    env = Environment(
        loader=DictLoader(_TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        time=_time,
        version=_version,
        value=_value,
        scalar=_scalar,
        slug=_slug,
    )
    env.globals.update(
        project_page=_project_page,
        action_page=_action_page,
        is_monitor_action=is_monitor_action,
        newest=PROJECT_ENTRIES,
    )
    return env


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430}
header{background:#1d2430;color:#fff;padding:.6em 1.2em}
header a{color:#cfe3ff;margin-right:1.2em;text-decoration:none}
header strong{margin-right:1.6em}
main{padding:1em 1.6em;max-width:1400px}
table{border-collapse:collapse;margin:.6em 0 1.2em}
th,td{border:1px solid #d5dae1;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f1f3f6}
table.kv th{background:#f7f8fa;font-weight:600}
.ok{color:#0a7a2f;font-weight:600}.bad{color:#b3261e;font-weight:600}
.muted{color:#667085}.warn{background:#fff4d6;border:1px solid #f0c36d;padding:.5em .8em}
pre{background:#f7f8fa;border:1px solid #e3e6ea;padding:.6em;overflow:auto;white-space:pre-wrap}
code{background:#f1f3f6;padding:0 .2em}
footer{color:#667085;padding:1em 1.6em;font-size:12px}
.reason{max-width:36em}
"""

_BASE = (
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{{ title }} · modelops</title>
<style>"""
    + _CSS
    + """</style>
</head>
<body>
<header><strong>modelops</strong>
<a href="{{ root }}index.html">Serving</a>
<a href="{{ root }}ledger.html">Ledger</a>
<a href="{{ root }}gates.html">Gate reports</a>
<a href="{{ root }}monitoring.html">Monitoring</a>
<a href="{{ root }}gitops.html">GitOps</a>
</header>
<main>
<h1>{{ title }}</h1>
{% block content %}{% endblock %}
</main>
<footer>Written by <code>modelops report</code> at {{ built|time }}; a static snapshot,
rebuilt as a whole.</footer>
</body>
</html>
"""
)

_ENTRY_ROWS = """{% macro entry_rows(entries, root, d) %}
<table>
<tr><th>#</th><th>time</th><th>action</th><th>project</th><th>environment</th><th>from</th>
<th>to</th><th>actor</th><th>reason</th><th>see</th></tr>
{% for e in entries %}
<tr id="e{{ e.seq }}"><td>{{ e.seq }}</td><td>{{ e.at|time }}</td><td>{{ e.action }}</td>
<td><a href="{{ root }}{{ project_page(e.project) }}">{{ e.project }}</a></td>
<td>{{ e.environment }}</td><td>{{ e.from_version|version }}</td><td>{{ e.to_version|version }}</td>
<td>{{ e.actor }}</td><td class="reason">{{ e.reason }}</td>
<td>{% if e.verdict_id and e.verdict_id in d.gates %}
<a href="{{ root }}{{ d.gates[e.verdict_id].page }}">gate report</a>
{% elif e.verdict_id %}<span class="muted">verdict {{ e.verdict_id[:12] }}</span>{% endif %}
{% if is_monitor_action(e) %}<a href="{{ root }}{{ action_page(e) }}">evidence</a>{% endif %}
</td></tr>
{% endfor %}
</table>
{% endmacro %}"""

_SERVING_ROWS = """{% macro serving_rows(rows, root, with_project) %}
<table>
<tr>{% if with_project %}<th>project</th>{% endif %}<th>environment</th><th>serves</th>
<th>since</th><th>how</th><th>by</th><th>why</th><th>MLflow alias</th></tr>
{% for s in rows %}
<tr>{% if with_project %}
<td><a href="{{ root }}{{ project_page(s.project) }}">{{ s.project }}</a></td>{% endif %}
<td>{{ s.environment }}</td>
<td>{% if s.version %}<strong>{{ s.version|version }}</strong>{% else %}
<span class="muted">nothing</span>{% endif %}</td>
{% if s.entry %}<td>{{ s.entry.at|time }}</td>
<td><a href="{{ root }}ledger.html#e{{ s.entry.seq }}">{{ s.entry.action }} #{{ s.entry.seq }}</a>
</td><td>{{ s.entry.actor }}</td><td class="reason">{{ s.entry.reason }}</td>
{% else %}<td>-</td><td>-</td><td>-</td><td>-</td>{% endif %}
<td>{% if not s.alias_known %}<span class="muted">unknown</span>
{% elif s.alias_agrees %}<span class="ok">{{ s.alias|version if s.alias else "unset" }} ✓</span>
{% else %}<span class="bad">{{ s.alias|version }} ✗ disagrees with the ledger</span>{% endif %}
</td></tr>
{% endfor %}
</table>
{% endmacro %}"""

_RUN_ROWS = """{% macro run_rows(runs, root) %}
<table>
<tr><th>project</th><th>run</th><th>started</th><th>environment</th><th>action</th>
<th>findings</th><th>reports</th></tr>
{% for r in runs %}
{% set s = r.summary or {} %}
<tr><td><a href="{{ root }}{{ project_page(r.project) }}">{{ r.project }}</a></td>
<td><a href="{{ root }}{{ r.page }}">{{ r.run_id }}</a></td>
<td>{{ s.get('started_at')|scalar }}</td><td>{{ s.get('environment')|scalar }}</td>
<td>{{ s.get('action')|value }}</td>
<td>{% if s.get('findings') is mapping or s.get('findings') is iterable
 and s.get('findings') is not string %}{{ s.get('findings')|length }}{% else %}
{{ s.get('findings')|scalar }}{% endif %}</td>
<td>{% if r.report %}<a href="{{ root }}{{ r.report }}">Evidently report</a>{% endif %}
{% if r.problem %}<span class="bad">{{ r.problem }}</span>{% endif %}</td></tr>
{% endfor %}
</table>
{% endmacro %}"""

_ACTION_ROWS = """{% macro action_rows(actions, root) %}
<table>
<tr><th>#</th><th>time</th><th>action</th><th>project</th><th>environment</th><th>from</th>
<th>to</th><th>reason</th><th>evidence</th></tr>
{% for e in actions %}
<tr><td>{{ e.seq }}</td><td>{{ e.at|time }}</td><td>{{ e.action }}</td>
<td><a href="{{ root }}{{ project_page(e.project) }}">{{ e.project }}</a></td>
<td>{{ e.environment }}</td><td>{{ e.from_version|version }}</td><td>{{ e.to_version|version }}</td>
<td class="reason">{{ e.reason }}</td>
<td><a href="{{ root }}{{ action_page(e) }}">evidence</a></td></tr>
{% endfor %}
</table>
{% endmacro %}"""

_GATE_ROWS = """{% macro gate_rows(gates, root) %}
<table>
<tr><th>time</th><th>project</th><th>environment</th><th>candidate</th><th>against</th>
<th>verdict</th><th>report</th></tr>
{% for g in gates %}
<tr><td>{{ g.at|time }}</td>
<td><a href="{{ root }}{{ project_page(g.project) }}">{{ g.project }}</a></td>
<td>{{ g.environment }}</td><td>{{ g.candidate|version }}</td><td>{{ g.reference }}</td>
<td>{% if g.passed %}<span class="ok">passed</span>{% else %}<span class="bad">failed</span>
{% endif %}</td><td><a href="{{ root }}{{ g.page }}">{{ g.verdict_id[:16] }}</a></td></tr>
{% endfor %}
</table>
{% endmacro %}"""

_WARNINGS = """{% if d.warnings %}
<div class="warn"><strong>Could not read everything:</strong>
<ul>{% for w in d.warnings %}<li>{{ w }}</li>{% endfor %}</ul></div>
{% endif %}"""

_TEMPLATES = {
    "base.html": _BASE,
    "macros.html": _ENTRY_ROWS + _SERVING_ROWS + _RUN_ROWS + _ACTION_ROWS + _GATE_ROWS,
    "index.html": """{% extends "base.html" %}
{% from "macros.html" import serving_rows, action_rows %}
{% block content %}
"""
    + _WARNINGS
    + """
<h2>Which version serves where</h2>
{% if d.serving %}{{ serving_rows(d.serving, root, True) }}
{% else %}<p class="muted">No project yet.</p>{% endif %}
{% if d.serving|rejectattr("alias_agrees")|list %}
<p class="bad">An MLflow alias disagrees with the ledger: run
<code>modelops models sync &lt;project&gt;</code>.</p>{% endif %}
<p>Ledger: {{ d.entries|length }} entries{% if d.verification %};
<span class="{{ 'ok' if d.verification_ok else 'bad' }}">{{ d.verification }}</span>{% endif %}.
Gate reports: <a href="gates.html">{{ d.gates|length }}</a>.
Monitoring runs: <a href="monitoring.html">{{ d.runs|length }}</a>.
GitOps commits: <a href="gitops.html">{{ (d.commits or [])|length }}</a>.</p>
<h2>Projects</h2>
<ul>{% for p in d.projects %}<li><a href="{{ project_page(p) }}">{{ p }}</a></li>
{% else %}<li class="muted">none</li>{% endfor %}</ul>
<h2>Latest monitor actions</h2>
{% if d.actions %}{{ action_rows((d.actions|reverse|list)[:10], root) }}
{% else %}<p class="muted">No monitor action yet.</p>{% endif %}
{% endblock %}""",
    "ledger.html": """{% extends "base.html" %}
{% from "macros.html" import entry_rows %}
{% block content %}
{% if d.verification %}<p>Verification:
<span class="{{ 'ok' if d.verification_ok else 'bad' }}">{{ d.verification }}</span></p>
{% endif %}
{% if d.entries %}<p>Newest first; {{ d.entries|length }} entries.</p>
{{ entry_rows(d.entries|reverse, root, d) }}
{% else %}<p class="muted">The ledger has no entries yet.</p>{% endif %}
{% endblock %}""",
    "gates.html": """{% extends "base.html" %}
{% from "macros.html" import gate_rows %}
{% block content %}
{% if d.gates %}{{ gate_rows(d.gates.values()|reverse, root) }}
{% else %}<p class="muted">No gate verdict recorded yet.</p>{% endif %}
{% endblock %}""",
    "gate.html": """{% extends "base.html" %}
{% block content %}
<p>{{ report.project }} · {{ report.environment }} · candidate {{ report.candidate|version }}
against {{ report.reference }} ·
{% if report.passed %}<span class="ok">passed</span>{% else %}<span class="bad">failed</span>
{% endif %} · recorded {{ report.at|time }} in ledger entr{{ 'y' if report.entries|length == 1
else 'ies' }} {% for s in report.entries %}<a href="{{ root }}ledger.html#e{{ s }}">#{{ s }}</a>
{% endfor %}</p>
{% if note %}<p class="warn">{{ note }}</p>{% endif %}
{% if body %}<article>{{ body }}</article>{% endif %}
<details><summary>The verdict as recorded in the ledger (JSON)</summary>
<pre>{{ raw }}</pre></details>
{% endblock %}""",
    "monitoring.html": """{% extends "base.html" %}
{% from "macros.html" import run_rows, action_rows %}
{% block content %}
<h2>Monitor actions</h2>
{% if d.actions %}{{ action_rows(d.actions|reverse, root) }}
{% else %}<p class="muted">No monitor action yet.</p>{% endif %}
<h2>Monitoring runs</h2>
{% if d.runs %}{{ run_rows(d.runs, root) }}
{% else %}<p class="muted">No monitoring runs yet.</p>{% endif %}
{% for p, n in d.skipped_runs.items() %}
<p class="muted">{{ p }}: {{ n }} older runs not included.</p>{% endfor %}
{% endblock %}""",
    "run.html": """{% extends "base.html" %}
{% block content %}
<p>Project <a href="{{ root }}{{ project_page(run.project) }}">{{ run.project }}</a>.
{% if run.report %}<a href="report.html">Open the Evidently report</a>.{% else %}
<span class="muted">No Evidently report was saved for this run.</span>{% endif %}
{% if run.summary_file %}<a href="summary.json">summary.json</a>{% endif %}</p>
{% if run.problem %}<p class="bad">{{ run.problem }}</p>{% endif %}
{% if run.summary %}
<h2>Summary</h2>
{{ run.summary|value }}
{% endif %}
{% endblock %}""",
    "action.html": """{% extends "base.html" %}
{% block content %}
<table class="kv">
<tr><th>ledger entry</th><td><a href="{{ root }}ledger.html#e{{ entry.seq }}">#{{ entry.seq }}</a>
</td></tr>
<tr><th>time</th><td>{{ entry.at|time }}</td></tr>
<tr><th>action</th><td>{{ entry.action }}</td></tr>
<tr><th>project</th><td><a href="{{ root }}{{ project_page(entry.project) }}">{{ entry.project }}
</a></td></tr>
<tr><th>environment</th><td>{{ entry.environment }}</td></tr>
<tr><th>from → to</th><td>{{ entry.from_version|version }} → {{ entry.to_version|version }}</td>
</tr>
<tr><th>actor</th><td>{{ entry.actor }}</td></tr>
<tr><th>reason</th><td>{{ entry.reason }}</td></tr>
</table>
<h2>Reports</h2>
{% if links %}<ul>{% for label, href in links %}<li><a href="{{ root }}{{ href }}">{{ label }}</a>
</li>{% endfor %}</ul>
{% else %}<p class="muted">No monitoring report of this action is in the site.</p>{% endif %}
<h2>Evidence</h2>
{% if entry.details.get('evidence') is not none %}{{ entry.details['evidence']|value }}
{% else %}<p class="muted">The entry names no evidence.</p>{% endif %}
<details><summary>Every detail recorded in the ledger (JSON)</summary><pre>{{ raw }}</pre>
</details>
{% endblock %}""",
    "gitops.html": """{% extends "base.html" %}
{% block content %}
<p>Repository <code>{{ d.gitops_repo }}</code>.</p>
{% if d.commits is none %}<p class="muted">No GitOps repository yet.</p>
{% elif not d.commits %}<p class="muted">No GitOps commit yet.</p>
{% else %}
<table>
<tr><th>commit</th><th>time</th><th>author</th><th>message</th><th>files</th></tr>
{% for c in d.commits %}
<tr><td><code>{{ c.sha[:12] }}</code></td><td>{{ c.at }}</td><td>{{ c.author }}</td>
<td><strong>{{ c.subject }}</strong>{% if c.body %}<pre>{{ c.body }}</pre>{% endif %}</td>
<td>{{ c.files|join(', ') }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% endblock %}""",
    "project.html": """{% extends "base.html" %}
{% from "macros.html" import serving_rows, entry_rows, run_rows, action_rows, gate_rows %}
{% block content %}
<h2>Serving</h2>
{{ serving_rows(d.serving|selectattr("project", "equalto", project)|list, root, False) }}
<h2>Registered versions</h2>
{% if project in d.versions %}
<table>
<tr><th>version</th><th>role</th><th>aliases</th><th>ROC-AUC</th><th>PR-AUC</th>
<th>cost / 1000</th><th>run</th></tr>
{% for v in d.versions[project] %}
<tr><td>{{ v.version|version }}</td><td>{{ v.role }}</td><td>{{ v.aliases|join(', ') }}</td>
<td>{{ v.metrics.get('holdout_roc_auc')|scalar }}</td>
<td>{{ v.metrics.get('holdout_pr_auc')|scalar }}</td>
<td>{{ v.metrics.get('holdout_cost_per_1000')|scalar }}</td><td><code>{{ v.run_id }}</code></td>
</tr>
{% endfor %}
</table>
{% else %}<p class="muted">{{ d.registry_problems.get(project, 'no registry data') }}</p>
{% endif %}
{% set gates = d.gates.values()|selectattr("project", "equalto", project)|list %}
<h2>Gate reports</h2>
{% if gates %}{{ gate_rows(gates|reverse, root) }}
{% else %}<p class="muted">No gate verdict yet.</p>{% endif %}
{% set actions = d.actions|selectattr("project", "equalto", project)|list %}
<h2>Monitor actions</h2>
{% if actions %}{{ action_rows(actions|reverse, root) }}
{% else %}<p class="muted">No monitor action yet.</p>{% endif %}
{% set runs = d.runs|selectattr("project", "equalto", project)|list %}
<h2>Monitoring runs</h2>
{% if runs %}{{ run_rows(runs, root) }}
{% else %}<p class="muted">No monitoring runs yet.</p>{% endif %}
{% set entries = d.entries|selectattr("project", "equalto", project)|list %}
<h2>Ledger</h2>
{% if entries %}<p>Newest {{ [entries|length, newest]|min }} of {{ entries|length }};
<a href="{{ root }}ledger.html">the whole ledger</a>.</p>
{{ entry_rows((entries|reverse|list)[:newest], root, d) }}
{% else %}<p class="muted">No ledger entry yet.</p>{% endif %}
{% endblock %}""",
}
