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
- the GitOps repository's commits, when it exists;
- per project and environment, plots over the monitoring runs: estimated and realised cost per
  1,000 and ROC-AUC with their bands and the gate-time line, the drift share, and each action as
  a marker (server-side SVG, :mod:`.series` and :mod:`.plot`).

The site is self-contained: relative links only, no script, no external style sheet, font or
CDN (the copied Evidently reports carry their own inline code). Everything that comes from data
is HTML-escaped (Jinja2 autoescaping; Markdown is rendered with raw HTML and links disabled), and
every page forbids scripts through its Content-Security-Policy. File names derived from data
(verdict ids, run ids, project names) are reduced to safe characters, so no id can write outside
the site.

Modules: :mod:`.collect` reads the sources, :mod:`.render` holds the Jinja2 environment (pages in
``templates/``, the style sheet ``style.css``), :mod:`.site` writes the site, :mod:`.paths`
names its files, :mod:`.series` reads the plotted series, :mod:`.plot` lays a plot out,
:mod:`.reasons` shortens the "why" of a move and links what explains it.
"""

from __future__ import annotations

from modelops.integrations.gitops import LoggedCommit as GitCommit
from modelops.services.monitor.reference import monitoring_dir
from modelops.services.status_page.collect import (
    GATE_AND_MOVES,
    GITOPS_COMMITS,
    GateReport,
    MonitoringRun,
    Serving,
    is_monitor_action,
)
from modelops.services.status_page.render import PROJECT_ENTRIES
from modelops.services.status_page.site import (
    MARKER,
    MAX_RUNS_PER_PROJECT,
    Site,
    StatusPageError,
    build,
    default_out,
)

__all__ = [
    "GATE_AND_MOVES",
    "GITOPS_COMMITS",
    "MARKER",
    "MAX_RUNS_PER_PROJECT",
    "PROJECT_ENTRIES",
    "GateReport",
    "GitCommit",
    "MonitoringRun",
    "Serving",
    "Site",
    "StatusPageError",
    "build",
    "default_out",
    "is_monitor_action",
    "monitoring_dir",
]
