"""``modelops train``."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from modelops.cli.state import STATE
from modelops.core.errors import ConfigError


def _parse_windows(values: list[str]) -> dict[str, tuple[date, date]]:
    windows = {}
    for value in values:
        name, _, span = value.partition("=")
        start, _, end = span.partition("..")
        try:
            windows[name.strip()] = (date.fromisoformat(start), date.fromisoformat(end))
        except ValueError as exc:
            raise ConfigError(f"--window {value!r}: expected NAME=YYYY-MM-DD..YYYY-MM-DD") from exc
    return windows


def train(
    project: Annotated[str, typer.Argument(help="Folder name under projects/.")],
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Use only labels known at this time (UTC). Default: now."),
    ] = None,
    window: Annotated[
        list[str] | None,
        typer.Option(
            help="Override a window of project.yaml, e.g. train=2021-09-01..2023-06-30; "
            "repeatable. Recorded in the version's lineage."
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option(help="Also write the result as JSON (for CI).")
    ] = None,
) -> None:
    """Build a point-in-time training set, train, evaluate and register a new version."""
    from modelops.cli.progress import shown
    from modelops.services import train as train_service

    when = as_of.replace(tzinfo=UTC) if as_of and as_of.tzinfo is None else as_of
    with shown():
        result = train_service.train(
            STATE.settings, project, as_of=when, windows=_parse_windows(window or [])
        )
    for note in result.notes:
        typer.echo(f"note: {note}")
    for warning in result.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    for trained in (result.baseline, result.candidate):
        m = trained.metrics
        typer.echo(
            f"{result.model_name} v{trained.version} ({trained.role}): holdout ROC-AUC "
            f"{m['holdout_roc_auc']:.3f}, PR-AUC {m['holdout_pr_auc']:.3f}, cost/1000 "
            f"{m['holdout_cost_per_1000']:,.0f} at threshold {trained.threshold:.3f}"
        )
    typer.echo(f"candidate {result.candidate.summary}")
    if json_out:
        payload = {
            "project": result.project,
            "model_name": result.model_name,
            "candidate_version": result.candidate.version,
            "baseline_version": result.baseline.version,
            "training_rows": result.training_rows,
            "seconds": round(result.seconds, 1),
            "candidate": asdict(result.candidate),
            "baseline": asdict(result.baseline),
        }
        json_out.write_text(json.dumps(payload, indent=2, default=str))
    typer.secho(
        f"registered {result.model_name} version {result.candidate.version} "
        f"({result.training_rows:,} training rows, {result.seconds:.0f}s)",
        fg=typer.colors.GREEN,
    )
