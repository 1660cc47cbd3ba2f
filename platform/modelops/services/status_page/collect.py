"""What the status site shows, read from what the platform records (never from memory).

The ledger (entries and the chain's verification), the MLflow registry (versions and aliases),
the gate verdicts recorded whole in validate entries, the monitoring runs under
:func:`modelops.services.monitor.reference.monitoring_dir` and the GitOps repository's
commits. A source that is missing becomes an empty part; a source that fails becomes a warning,
except the ledger.

What a monitor records is read in one place each: :func:`monitor_run_id` and
:func:`monitor_evidence` (the ledger details of a monitor action) and :func:`read_summary` (a
run's ``summary.json``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import available_projects
from modelops.config.settings import Settings
from modelops.core.errors import ModelopsError
from modelops.core.ledger import RecordedEntry
from modelops.core.monitor_record import MonitorSummary
from modelops.integrations.gitops import GitOpsError, GitOpsRepo, LoggedCommit
from modelops.services.monitor.reference import monitoring_dir
from modelops.services.status_page.paths import gate_page
from modelops.services.status_page.series import Panel

if TYPE_CHECKING:
    from modelops.services.registry import VersionInfo

GITOPS_COMMITS = 200
"""Newest GitOps commits listed."""

GATE_AND_MOVES = frozenset({"validate", "promote", "approve", "refuse", "rollback"})
"""Ledger actions of the gate and of explicit moves; any other action is a monitor action."""
MONITOR_FILES = ("summary_json", "report_html", "performance_html")
"""Details keys under which the monitor records the files of the run that acted (absolute paths
inside ``<monitoring dir>/<project>/<run id>/``; services/monitor.py ``links``)."""
MONITOR_KEYS = frozenset({"run_id", "evidence", *MONITOR_FILES})
"""Details keys the monitor writes into every action it records, a rollback included; an entry
carrying any of them is a monitor action."""


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
    """One run folder; ``page``, ``report`` and ``summary_file`` are its site paths, set when
    the site is written."""

    project: str
    run_id: str
    source: Path
    summary: MonitorSummary | None
    problem: str | None
    page: str = ""
    report: str | None = None
    summary_file: str | None = None

    @property
    def started_at(self) -> str:
        return self.summary.started_at if self.summary is not None else ""

    @property
    def sort_key(self) -> tuple[str, float]:
        try:
            mtime = self.source.stat().st_mtime
        except OSError:
            mtime = 0.0
        return (self.started_at, mtime)


@dataclass
class SiteData:
    """Everything the pages show; ``action_links`` is filled in once the reports are placed."""

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
    commits: list[LoggedCommit] | None
    warnings: list[str] = field(default_factory=list)
    drift_limits: dict[str, float | None] = field(default_factory=dict)
    panels: list[Panel] = field(default_factory=list)


# ----------------------------------------------------------------------------- what a monitor wrote


def is_monitor_action(entry: RecordedEntry) -> bool:
    """A ledger entry a monitor wrote: an action other than the gate's and the explicit moves,
    or any entry whose details carry a monitoring run or its evidence (an automatic rollback)."""
    return entry.action not in GATE_AND_MOVES or bool(MONITOR_KEYS & set(entry.details))


def monitor_run_id(settings: Settings, entry: RecordedEntry) -> str | None:
    """The monitoring run (of ``entry.project``) a monitor action came from: the ``run_id`` the
    monitor records with every action; for an entry that names only the run's files (a rollback
    recorded by hand with the report as its evidence), the run folder holding them."""
    run_id = entry.details.get("run_id")
    if isinstance(run_id, str) and run_id:
        return run_id
    root = (monitoring_dir(settings) / entry.project).resolve()
    for key in MONITOR_FILES:
        value = entry.details.get(key)
        if not isinstance(value, str) or not value:
            continue
        try:
            parts = settings.path(Path(value)).resolve().relative_to(root).parts
        except (ValueError, OSError):
            continue
        if len(parts) >= 2:  # <run id>/<file>
            return parts[0]
    return None


def monitor_evidence(entry: RecordedEntry) -> Any:
    """The evidence a monitor recorded with an action (None when the entry names none)."""
    return entry.details.get("evidence")


def read_summary(path: Path) -> tuple[MonitorSummary | None, str | None]:
    """A run's ``summary.json`` as the monitor's typed record
    (:class:`~modelops.core.monitor_record.MonitorSummary`), or None and one line saying why
    not: no file, unreadable, not a JSON object, or not what the monitor writes (the first
    field that differs)."""
    from pydantic import ValidationError

    if not path.is_file():
        return None, "no summary.json"
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"summary.json unreadable: {error}"
    if not isinstance(loaded, dict):
        return None, "summary.json is not a JSON object"
    try:
        return MonitorSummary.model_validate(loaded), None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        return None, f"summary.json is not a monitor summary: {where}: {first['msg']}"


# ----------------------------------------------------------------------------- collect


def collect(settings: Settings, max_runs: int) -> SiteData:
    """Read every source; ``max_runs`` newest monitoring runs per project (plus the runs an
    action names)."""
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
    drift_limits = _drift_limits(settings, projects)
    actions = [e for e in entries if is_monitor_action(e)]
    runs, skipped = _runs(settings, actions, max_runs, warnings)
    repo = settings.resolved_gitops_repo
    commits = _gitops_commits(repo, warnings)
    return SiteData(
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
        drift_limits=drift_limits,
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
            page=gate_page(vid),
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


def _drift_limits(settings: Settings, projects: list[str]) -> dict[str, float | None]:
    """Each project's ``monitoring.drift_share`` (the drift chart's line); None for a project
    whose ``project.yaml`` cannot be read (its runs are still plotted)."""
    from modelops.services.context import project as project_for

    limits: dict[str, float | None] = {}
    for name in projects:
        try:
            limits[name] = float(project_for(settings, name).spec.monitoring.drift_share)
        except (ModelopsError, OSError, ValueError):
            limits[name] = None
    return limits


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
    named = ((e.project, monitor_run_id(settings, e)) for e in actions)
    referenced = {(project, run) for project, run in named if run is not None}
    runs: list[MonitoringRun] = []
    skipped: dict[str, int] = {}
    for project_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        found: list[MonitoringRun] = []
        for run_dir in project_dir.iterdir():
            if not run_dir.is_dir() or run_dir.name.startswith("."):
                continue
            summary, problem = read_summary(run_dir / "summary.json")
            if problem:
                warnings.append(f"monitoring run {project_dir.name}/{run_dir.name}: {problem}")
            found.append(MonitoringRun(project_dir.name, run_dir.name, run_dir, summary, problem))
        found.sort(key=lambda r: r.sort_key, reverse=True)
        kept = [
            r for i, r in enumerate(found) if i < max_runs or (r.project, r.run_id) in referenced
        ]
        if len(found) > len(kept):
            skipped[project_dir.name] = len(found) - len(kept)
        runs += kept
    return runs, skipped


def _gitops_commits(path: Path, warnings: list[str]) -> list[LoggedCommit] | None:
    """The newest commits of the GitOps repository; None when there is none (yet)."""
    if not path.is_dir():
        return None
    repo = GitOpsRepo(path)
    try:
        if not repo.exists():
            return None
    except GitOpsError as error:  # git itself is missing
        warnings.append(f"GitOps commits not shown: {error}")
        return None
    try:
        return repo.recent_commits(GITOPS_COMMITS)
    except GitOpsError as error:
        warnings.append(f"GitOps commits not shown: {error}")
        return []
