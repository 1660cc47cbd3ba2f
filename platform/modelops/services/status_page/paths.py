"""Where each page lives inside the site: file names made from data, reduced to safe characters.

Collecting names a gate report's page, rendering links to pages, and writing the site puts them
there; all three ask this module, so a link and the file it points to never disagree.
"""

from __future__ import annotations

import hashlib
import re

from modelops.core.ledger import RecordedEntry


def slug(value: str) -> str:
    """A file-name-safe form of ``value`` (letters, digits, ``_`` and ``-``); a changed name
    gets a hash suffix, so two ids never share a file and none can name a parent directory."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", value)[:80]
    if cleaned == value and cleaned:
        return cleaned
    digest = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return f"{cleaned or 'x'}-{digest}"


def gate_page(verdict_id: str) -> str:
    return f"gates/{slug(verdict_id)}.html"


def run_folder(project: str, run_id: str) -> str:
    """The folder of one monitoring run: its page, Evidently report and ``summary.json``."""
    return f"monitoring/{slug(project)}/{slug(run_id)}"


def run_page(project: str, run_id: str) -> str:
    return f"{run_folder(project, run_id)}/index.html"


def project_page(project: str) -> str:
    return f"projects/{slug(project)}.html"


def action_page(entry: RecordedEntry) -> str:
    return f"actions/{entry.seq}.html"
