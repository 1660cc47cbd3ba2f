"""The "why" of a move, short: the reason a person or a monitor recorded, without the machine's
paths, and links to what explains it inside the site.

A monitor's rollback records ``monitor run <id>: <why>; report /abs/path/report.html`` (see
``services/monitor/act.py``): the page shows ``<why>`` and links to the run's page, its Evidently
report and the action's evidence (relative links, so the site still works once moved). Any other
absolute path left in a reason is shown by its file name; the full reason stays in the cell's
hover text and on the ledger page.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath

from modelops.core.ledger import RecordedEntry
from modelops.services.status_page.collect import SiteData, is_monitor_action
from modelops.services.status_page.paths import action_page

LIMIT = 140
"""Characters of a reason shown in a table cell."""
_RUN_PREFIX = re.compile(r"^monitor run \S+?: ")
_REPORT_SUFFIX = re.compile(r";? report (?:/|[A-Za-z]:\\)\S*$")
_POSIX_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s/;,'\"()<>]+/)+[^\s/;,'\"()<>]*")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\(?:[^\s\\;,'\"()<>]+\\)*[^\s\\;,'\"()<>]*")


def _name(match: re.Match[str]) -> str:
    text = match.group()
    name = (PureWindowsPath(text) if "\\" in text else PurePosixPath(text)).name
    return f"…/{name}" if name else "…"


def short_reason(reason: str | None, limit: int = LIMIT) -> str:
    """``reason`` for a table cell: no run prefix or report path, absolute paths reduced to
    their file names, at most ``limit`` characters (cut at a word, with an ellipsis)."""
    text = " ".join((reason or "").split())
    text = _REPORT_SUFFIX.sub("", _RUN_PREFIX.sub("", text))
    text = _WINDOWS_PATH.sub(_name, _POSIX_PATH.sub(_name, text))
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "…"


def why_links(data: SiteData, entry: RecordedEntry) -> list[tuple[str, str]]:
    """``(label, site path)`` explaining ``entry``: its gate report, or the monitoring run,
    Evidently report and evidence of a monitor action."""
    links: list[tuple[str, str]] = []
    if entry.verdict_id and entry.verdict_id in data.gates:
        links.append(("gate report", data.gates[entry.verdict_id].page))
    if is_monitor_action(entry):
        for label, href in data.action_links.get(entry.seq, []):
            links.append(("report" if label.startswith("Evidently") else "run", href))
        links.append(("evidence", action_page(entry)))
    return links
