"""``modelops project``: onboard a table as a project, and the ``project.yaml`` schema."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelops.cli.state import STATE
from modelops.core.errors import ConfigError

if TYPE_CHECKING:
    from modelops.services.project_init.options import InitOptions
    from modelops.services.project_init.run import InitResult
    from modelops.services.workflows.onboard import OnboardResult, Stage
    from modelops.services.workflows.promotion import GateStep

app = typer.Typer(
    help="Create a project from a table; the project.yaml schema.", no_args_is_help=True
)

_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([wdhms])\s*$")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_delay(value: str) -> timedelta:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s``."""
    match = _DELAY.match(value)
    if not match:
        raise ConfigError(
            f"--label-delay {value!r}: expected a number and a unit, e.g. 30d, 12h, 2w"
        )
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigError(f"{option}: {text!r} is not a date (YYYY-MM-DD) or time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_span(value: str) -> tuple[datetime, datetime]:
    """``2023-01-01..2024-12-31`` (dates or ISO times, UTC unless a zone is given)."""
    start, dots, end = value.partition("..")
    if not dots:
        raise ConfigError(
            f"--synthesize-time {value!r}: expected START..END, e.g. 2023-01-01..2024-12-31"
        )
    return _moment(start, "--synthesize-time"), _moment(end, "--synthesize-time")


def parse_costs(value: str) -> tuple[float, float]:
    """``FN,FP``: what a missed positive and a false alarm cost."""
    parts = value.split(",")
    try:
        fn, fp = (float(p) for p in parts)
    except ValueError as exc:
        raise ConfigError(
            f"--costs {value!r}: expected FN,FP, two positive numbers (a missed positive, a false "
            "alarm), e.g. 500,20"
        ) from exc
    if fn <= 0 or fp <= 0:
        raise ConfigError(f"--costs {value!r}: both costs must be greater than 0")
    return fn, fp


def parse_monotone(values: list[str]) -> dict[str, int]:
    """``COL=+1`` / ``COL=-1``, repeatable."""
    parsed: dict[str, int] = {}
    for value in values:
        column, equals, sign = value.partition("=")
        if not equals or sign.strip() not in ("+1", "1", "-1") or not column.strip():
            raise ConfigError(f"--monotone {value!r}: expected COL=+1 or COL=-1")
        parsed[column.strip()] = int(sign)
    return parsed


def parse_sep(value: str) -> str:
    """One character; ``\\t`` or ``tab`` for a tab."""
    if value in ("\\t", "tab", "TAB"):
        return "\t"
    if len(value) != 1:
        raise ConfigError(f"--sep {value!r}: expected one character, e.g. ';' or '\\t' (a tab)")
    return value


# The options of `project init`, named once so that the command reads as its steps.
_Name = Annotated[str, typer.Argument(metavar="NAME", help="Project name: folder under projects/.")]
_FromCsv = Annotated[
    Path,
    typer.Option(
        "--from-csv", metavar="PATH", help="The table: .csv or .parquet, one row a prediction."
    ),
]
_Label = Annotated[str, typer.Option(metavar="COL", help="Label column (two classes).")]
_Positive = Annotated[
    str | None, typer.Option(metavar="VALUE", help="Label value of the costly class, e.g. Yes.")
]
_Entity = Annotated[
    str | None,
    typer.Option(metavar="COL", help="Column with the id each prediction is made for."),
]
_Timestamp = Annotated[
    str | None, typer.Option(metavar="COL", help="Column with when each prediction is made.")
]
_AvailableAt = Annotated[
    str | None, typer.Option(metavar="COL", help="Column with when each label became known.")
]
_LabelDelay = Annotated[
    str | None,
    typer.Option(
        metavar="DURATION",
        help="Labels become known this long after the prediction: 30d, 12h, 2w.",
    ),
]
_Categorical = Annotated[
    list[str] | None,
    typer.Option(
        metavar="COL",
        help="A numeric column that holds categories; repeatable (text is already).",
    ),
]
_Exclude = Annotated[
    list[str] | None,
    typer.Option(metavar="COL", help="A column to leave out (an id, a leak); repeatable."),
]
_Costs = Annotated[
    str | None,
    typer.Option(
        metavar="FN,FP",
        help="FN,FP: cost of a missed positive and of a false alarm. Default 1,1.",
    ),
]
_Monotone = Annotated[
    list[str] | None,
    typer.Option(
        metavar="COL=+1|-1",
        help="COL=+1 or COL=-1: the score must rise (fall) with COL; repeatable.",
    ),
]
_SynthesizeIds = Annotated[
    bool, typer.Option("--synthesize-ids", help="No id column: one synthetic id per row.")
]
_SynthesizeTime = Annotated[
    str | None,
    typer.Option(
        metavar="START..END",
        help="No time column: spread rows evenly over START..END, in row order.",
    ),
]
_Encoding = Annotated[
    str | None,
    typer.Option(
        metavar="NAME",
        help="The CSV's text encoding, e.g. cp1252. Default: UTF-8, or detected when the "
        "bytes are not UTF-8.",
    ),
]
_Sep = Annotated[
    str | None,
    typer.Option(
        metavar="CHAR",
        help="The CSV's separator: ',', ';', '\\t' (a tab), '|'. Default: sniffed.",
    ),
]
_Force = Annotated[bool, typer.Option("--force", help="Replace the files of an existing project.")]
_Train = Annotated[
    bool,
    typer.Option(
        "--train",
        help="Then apply the features, train, gate against dev and, if the verdict passes, "
        "promote to dev. Exit 1 when no model passes.",
    ),
]
_Actor = Annotated[
    str | None, typer.Option(help="With --train: who gates and promotes (default: you).")
]


@app.command()
def init(
    name: _Name,
    from_csv: _FromCsv,
    label: _Label,
    positive: _Positive = None,
    entity: _Entity = None,
    timestamp: _Timestamp = None,
    available_at: _AvailableAt = None,
    label_delay: _LabelDelay = None,
    categorical: _Categorical = None,
    exclude: _Exclude = None,
    costs: _Costs = None,
    monotone: _Monotone = None,
    synthesize_ids: _SynthesizeIds = False,
    synthesize_time: _SynthesizeTime = None,
    encoding: _Encoding = None,
    sep: _Sep = None,
    force: _Force = False,
    train: _Train = False,
    actor: _Actor = None,
) -> None:
    """Write a project from a table: feature and label parquet, Feast definitions, project.yaml
    with proposed windows, and data checks. Then: modelops features apply; modelops train NAME;
    or all of it, up to a gated model in dev, with --train."""
    from modelops.services.project_init.options import InitOptions
    from modelops.services.project_init.run import init_project

    options = InitOptions(
        name=name,
        source=from_csv,
        label=label,
        positive=positive,
        entity=entity,
        timestamp=timestamp,
        available_at=available_at,
        label_delay=parse_delay(label_delay) if label_delay is not None else None,
        categorical=tuple(categorical or ()),
        exclude=tuple(exclude or ()),
        costs=parse_costs(costs) if costs is not None else None,
        monotone=parse_monotone(monotone or []),
        synthesize_ids=synthesize_ids,
        synthesize_time=parse_span(synthesize_time) if synthesize_time is not None else None,
        force=force,
        encoding=encoding,
        separator=parse_sep(sep) if sep is not None else None,
    )
    if train:
        _onboard(options, actor)
        return
    _render(init_project(STATE.settings, options), STATE.settings.root)


def _onboard(options: InitOptions, actor: str | None) -> None:
    """``--train``: the onboarding workflow, printed as it goes, then one summary table."""
    from modelops.services.workflows.onboard import onboard

    settings = STATE.settings
    result = onboard(settings, options, actor=actor, on_stage=_said_stage, on_gate=_said_gate)
    _summary(result)
    if not result.reached:
        raise typer.Exit(1)


def _said_stage(stage: Stage, result: OnboardResult) -> None:
    if stage.name == "init":
        _render(result.init, STATE.settings.root, then=False)
    elif stage.name == "features apply":
        typer.echo(
            f"features apply: {len(result.applied)} objects registered ({stage.seconds:.0f}s)"
        )
    elif stage.name == "train" and result.trained is not None:
        trained = result.trained
        for note in trained.notes:
            typer.echo(f"note: {note}")
        typer.echo(
            f"train: {trained.model_name} v{trained.baseline.version} (baseline) and "
            f"v{trained.candidate.version} (candidate) registered, {trained.training_rows:,} "
            f"training rows ({stage.seconds:.0f}s)"
        )


def _said_gate(step: GateStep) -> None:
    if step.verdict is None:
        typer.echo(f"gate v{step.version} vs {step.environment}: FAILED ({step.failed})")
        return
    reference = step.verdict.reference
    against = (
        "the prevalence-only reference"
        if reference.version == "-"
        else f"{reference.role} v{reference.version}"
    )
    said = "passed" if step.passed else f"FAILED: {step.failed}"
    typer.echo(f"gate v{step.version} vs {against} ({step.environment}): {said}")


def _summary(result: OnboardResult) -> None:
    """One table: each model's kind, holdout metrics and verdict; then where it went, and what
    to run next."""
    from modelops.cli.state import echo_table

    typer.echo("")
    echo_table(
        ["version", "role", "kind", "ROC-AUC", "PR-AUC", "recall", "alert rate", "cost/1000",
         f"gate ({result.target})"],
        [
            [
                f"v{m.version}", m.role, m.kind,
                f"{m.metrics.get('holdout_roc_auc', float('nan')):.3f}",
                f"{m.metrics.get('holdout_pr_auc', float('nan')):.3f}",
                f"{m.metrics.get('holdout_recall', float('nan')):.0%}",
                f"{m.metrics.get('holdout_alert_rate', float('nan')):.1%}",
                f"{m.metrics.get('holdout_cost_per_1000', float('nan')):,.0f}",
                m.verdict + (f": {m.failed}" if m.failed else ""),
            ]
            for m in result.models
        ],
    )  # fmt: skip
    typer.echo("(metrics on the holdout window, at each model's cost-minimising threshold)")
    walked = result.walk
    for warning in result.init.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if walked is not None and walked.reached:
        move = walked.moves[-1]
        typer.secho(
            f"{result.target} now serves v{walked.chosen} (ledger entry {move.ledger_seq}); "
            f"{result.seconds:.0f}s in all",
            fg=typer.colors.GREEN,
        )
        for step in result.next_steps:
            typer.echo(f"next: {step}")
        return
    why = walked.stopped if walked is not None else "not gated"
    typer.secho(
        f"{result.target} unchanged: {why}. Read each verdict with 'modelops validate "
        f"{result.init.project} VERSION --against {result.target}'; the project stays written",
        fg=typer.colors.RED,
        err=True,
    )


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _in_windows(result: InitResult) -> str:
    """How many rows the windows hold, and how many the gaps between them leave out."""
    gaps = result.rows_in_gaps
    if not gaps:
        return f"all {result.rows_in_windows:,} in the windows"
    share = gaps / result.rows_written if result.rows_written else 0.0
    return (
        f"{result.rows_in_windows:,} in the windows: {gaps:,} ({share:.1%}) dropped in the "
        f"{result.gap_days}-day gaps between them (room for the label delay)"
    )


def _render(result: InitResult, root: Path, then: bool = True) -> None:
    numeric = [f.name for f in result.features if not f.categorical]
    categorical = [f.name for f in result.features if f.categorical]
    positive = "1" if result.positive is None else repr(result.positive)
    reused = (
        f", entity '{result.entity_object}' reused from {result.entity_reused_from}.py"
        if result.entity_reused_from
        else f", new entity '{result.entity_object}'"
    )
    typer.echo(
        f"{result.project}: {result.rows_written:,} of {result.rows_read:,} rows from "
        f"{result.source.name}, {_in_windows(result)}; label '{result.label}' (positive "
        f"{positive}, {result.prevalence:.1%} of the windows' rows), known {result.label_delay}"
    )
    typer.echo(f"  entity     {result.entity}{reused}")
    typer.echo(
        f"  features   {len(result.features)}: {len(numeric)} numeric, {len(categorical)} "
        f"categorical ({', '.join(categorical) or '-'})"
    )
    for window in result.windows:
        typer.echo(
            f"  {window.name:<11}{window.start}..{window.end}  {window.rows:>9,} rows  "
            f"{window.positives:>8,} positive"
        )
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo("wrote:")
    for path in result.written:
        mark = "  (replaced)" if path in result.replaced else ""
        typer.echo(f"  {_shown(path, root)}{mark}")
    for path in result.replaced:
        if path not in result.written:
            typer.echo(f"  {_shown(path, root)}  (removed: no --monotone this time)")
    if not then:  # --train: the warnings come with the summary, and "next" is done
        return
    for warning in result.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    typer.secho(
        f"next: modelops features apply && modelops train {result.project} (or --train)",
        fg=typer.colors.GREEN,
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of project.yaml (for editors and docs)."""
    import json

    from modelops.config.project import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))
