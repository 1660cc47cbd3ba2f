"""The status site's Jinja2 environment: the templates in ``templates/``, the style sheet
``style.css`` (inlined into every page), and the filters that turn recorded values into text.

Autoescaping is on: everything that comes from data is HTML-escaped, and a gate report's
Markdown is rendered with raw HTML, links and images disabled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from modelops.services.status_page.collect import SiteData, is_monitor_action
from modelops.services.status_page.paths import action_page, project_page, slug
from modelops.services.status_page.plot import layout
from modelops.services.status_page.reasons import short_reason, why_links

if TYPE_CHECKING:
    from jinja2 import Environment
    from markupsafe import Markup

PACKAGE = __name__.rpartition(".")[0]
"""The package whose ``templates/`` and ``style.css`` are read."""
PROJECT_ENTRIES = 50
"""Newest ledger entries on a project's page (the ledger page lists them all)."""


def environment() -> Environment:
    """The templates with the site's filters and globals (page paths, the style sheet)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined
    from markupsafe import Markup

    env = Environment(
        loader=PackageLoader(PACKAGE, "templates"),
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
        slug=slug,
        short=short_reason,
    )
    env.globals.update(
        project_page=project_page,
        action_page=action_page,
        is_monitor_action=is_monitor_action,
        layout=layout,
        why_links=why_links,
        plots_of=plots_of,
        newest=PROJECT_ENTRIES,
        style=Markup(style()),
    )
    return env


def plots_of(data: SiteData, project: str, environment: str) -> str | None:
    """The site path of the plots of (``project``, ``environment``); None without any."""
    if any((p.project, p.environment) == (project, environment) for p in data.panels):
        return f"{project_page(project)}#plots-{slug(environment)}"
    return None


def style() -> str:
    """The site's style sheet (``style.css`` beside this module)."""
    return (resources.files(PACKAGE) / "style.css").read_text(encoding="utf-8")


def markdown(text: str) -> str:
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
