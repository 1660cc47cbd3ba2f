"""Writing the status site: every page, the monitoring runs' reports placed beside them, and the
swap that replaces the previous site in one rename.

A directory that is not a site this module wrote (no ``.modelops-site`` marker) is never
replaced.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelops.config.settings import Settings
from modelops.core.errors import ModelopsError
from modelops.core.ledger import RecordedEntry
from modelops.services.status_page import collect as sources
from modelops.services.status_page import render, series
from modelops.services.status_page.collect import MonitoringRun, Serving, SiteData
from modelops.services.status_page.paths import action_page, project_page, run_folder, run_page

MARKER = ".modelops-site"
"""Written into every site; only a directory holding it is ever replaced by a rebuild."""
MAX_RUNS_PER_PROJECT = 100
"""Newest monitoring runs per project copied into the site (runs named by an action always)."""


class StatusPageError(ModelopsError):
    """The status page cannot be written where asked."""


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


def default_out(settings: Settings) -> Path:
    """Where ``modelops report`` writes without ``--out``: ``<state_dir>/site``."""
    return settings.resolved_state_dir / "site"


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
    data = sources.collect(settings, max_runs_per_project)
    staging = target.parent / f".{target.name}.building-{os.getpid()}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir()
        pages = _write(data, staging)
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


# ----------------------------------------------------------------------------- pages


def _write(data: SiteData, out: Path) -> list[str]:
    """Place the runs' reports, then write every page; the pages' paths, relative to ``out``."""
    from markupsafe import Markup

    env = render.environment()
    written: list[str] = []

    def page(path: str, template: str, title: str, **context: Any) -> None:
        html = env.get_template(template).render(
            root="../" * path.count("/"),
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
        _place_run(run, out)
    data.action_links = {e.seq: _action_links(data, e) for e in data.actions}
    plotted = [(r.summary, r.page) for r in data.runs if r.summary is not None]
    data.panels = series.panels(plotted, data.drift_limits)

    page("index.html", "index.html.j2", "Status")
    page("ledger.html", "ledger.html.j2", "Ledger")
    page("gates.html", "gates.html.j2", "Gate reports")
    page("monitoring.html", "monitoring.html.j2", "Monitoring")
    page("gitops.html", "gitops.html.j2", "GitOps")
    for project in data.projects:
        page(project_page(project), "project.html.j2", project, project=project)
    for vid, report in data.gates.items():
        text, note, raw = data.gate_markdown[vid]
        page(
            report.page,
            "gate.html.j2",
            f"Gate report {vid}",
            report=report,
            body=Markup(render.markdown(text)) if text else None,
            note=note,
            raw=_json(raw),
        )
    for run in data.runs:
        page(run.page, "run.html.j2", f"Monitoring run {run.run_id}", run=run)
    for entry in data.actions:
        page(
            action_page(entry),
            "action.html.j2",
            f"{entry.action} #{entry.seq}",
            entry=entry,
            evidence=sources.monitor_evidence(entry),
            links=data.action_links.get(entry.seq, []),
            raw=_json(entry.details),
        )
    return written


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _place_run(run: MonitoringRun, out: Path) -> None:
    """Name the run's pages and place its Evidently report and ``summary.json`` in the site."""
    run.page = run_page(run.project, run.run_id)
    folder = run_folder(run.project, run.run_id)
    if (run.source / "report.html").is_file():
        run.report = f"{folder}/report.html"
        _place(run.source / "report.html", out / run.report)
    if (run.source / "summary.json").is_file():
        run.summary_file = f"{folder}/summary.json"
        _place(run.source / "summary.json", out / run.summary_file)


def _place(source: Path, destination: Path) -> None:
    """A hard link when source and site share a file system (no copy of big reports), else a
    copy."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _action_links(data: SiteData, entry: RecordedEntry) -> list[tuple[str, str]]:
    """``(label, site path)`` of the monitoring run an action names and its Evidently report."""
    run_id = sources.monitor_run_id(data.settings, entry)
    run = next((r for r in data.runs if (r.project, r.run_id) == (entry.project, run_id)), None)
    if run is None:
        return []
    links = [(f"monitoring run {run.run_id}", run.page)]
    if run.report:
        links.append((f"Evidently report of {run.run_id}", run.report))
    return links
