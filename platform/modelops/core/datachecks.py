"""Data checks that fail closed: labels, point-in-time joins, feature availability, sources.

Each check raises :class:`~modelops.core.errors.DataError` (or :class:`LabelError`) with one line
that names what is wrong, where, and what usually causes it; none of them lets doubtful data
through quietly. Label validation is a pandera schema. The feature store adapter
(:mod:`modelops.integrations.feast`) fetches what the availability and source checks need;
what counts as a problem and how it is worded is decided here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelops.core.errors import DataError, FeatureStoreError

if TYPE_CHECKING:
    import pandas as pd

MAX_VALUES_SHOWN = 5
JOIN_CAUSES = (
    "likely causes: event and feature timestamps at different precision, the feature view's "
    "TTL shorter than the gap to the latest feature row, or entity keys that do not match the "
    "feature source"
)


class LabelError(DataError):
    """The label column is not a binary label the platform can read."""

    exit_code = 2


@dataclass(frozen=True)
class JoinReport:
    """How complete a point-in-time join came back.

    ``missing_share`` is, per feature, the share of rows the join left without a value;
    ``rows_without_features`` counts rows that got no feature at all, and
    ``example_without_features`` describes one of them (entity and time), empty when none.
    """

    rows: int
    missing_share: dict[str, float]
    rows_without_features: int
    example_without_features: str = ""


@dataclass(frozen=True)
class AvailabilityResult:
    """Rows of one feature view joined with a feature row created after the prediction time.

    ``checked`` False means the view could not be checked (``reason`` says why); a check that
    did not run is a failure, not a pass.
    """

    view: str
    checked: bool
    affected_rows: int
    rows: int
    reason: str
    columns: tuple[str, ...] = ()  # what the service reads from the view: what leaks with it

    @property
    def share(self) -> float:
        return self.affected_rows / self.rows if self.rows else 0.0

    def named(self) -> str:
        """``feature view 'v' (columns a, b)``: the view and the columns a leak in it reaches."""
        if not self.columns:
            return f"feature view '{self.view}'"
        word = "column" if len(self.columns) == 1 else "columns"
        return f"feature view '{self.view}' ({word} {', '.join(self.columns)})"


def _describe_row(frame: pd.DataFrame, position: int) -> str:
    """``company_id=7 at 2024-02-01T00:00:00+00:00``: the row's ``*_id`` columns and time."""
    row = frame.iloc[position]
    parts = [f"{c}={_plain(row[c])!r}" for c in frame.columns if str(c).endswith("_id")]
    text = ", ".join(parts) or f"row {position}"
    if "event_timestamp" in frame.columns:
        stamp = row["event_timestamp"]
        text += f" at {stamp.isoformat() if hasattr(stamp, 'isoformat') else stamp}"
    return text


def join_report(frame: pd.DataFrame, features: Sequence[str]) -> JoinReport:
    """Missing shares of ``features`` in a joined frame; a feature column that is not in the
    frame at all counts as missing on every row."""
    import pandas as pd

    rows = len(frame)
    present = pd.DataFrame(
        {f: frame[f].notna() if f in frame.columns else False for f in features},
        index=frame.index,
    )
    missing_share = {f: float(1.0 - present[f].mean()) if rows else 0.0 for f in features}
    without = ~present.any(axis=1) if len(features) else pd.Series(False, index=frame.index)
    lost = int(without.sum())
    example = _describe_row(frame, int(without.to_numpy().argmax())) if lost else ""
    return JoinReport(rows, missing_share, lost, example)


def check_join(
    report: JoinReport, *, tolerance: float, trained: dict[str, float] | None, where: str
) -> None:
    """Fail when the join lost every feature of some row, or left a feature missing on more
    than ``tolerance`` of the rows and more often than at training.

    Args:
        tolerance: the share of rows a feature may be missing on in any case.
        trained: per-feature missing shares when the model was trained; a feature may be
            missing as often as it was then. None (or a feature it lacks): only the tolerance.
        where: what was joined, for the message (e.g. ``holdout join of <project>_v1``).
    """
    if report.rows_without_features:
        example = (
            f" (e.g. {report.example_without_features})" if report.example_without_features else ""
        )
        raise DataError(
            f"{where}: {report.rows_without_features} of {report.rows} rows got no feature at "
            f"all from the point-in-time join{example}; {JOIN_CAUSES}"
        )
    failing = []
    for feature, share in report.missing_share.items():
        before = None if trained is None else trained.get(feature)
        if share > tolerance and (before is None or share > before):
            failing.append((share - (before or 0.0), feature, share, before))
    if not failing:
        return
    _, feature, share, before = max(failing)
    at_training = "unknown at training" if before is None else f"{before:.1%} at training"
    others = f"; {len(failing) - 1} more feature(s) too" if len(failing) > 1 else ""
    raise DataError(
        f"{where}: feature '{feature}' is missing on {share:.1%} of {report.rows} rows "
        f"(tolerance {tolerance:.1%}, {at_training}){others}; {JOIN_CAUSES}"
    )


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so ``repr`` reads like the data."""
    return value.item() if hasattr(value, "item") and not isinstance(value, str) else value


def _values_found(series: pd.Series) -> str:
    import pandas as pd

    distinct = list(pd.unique(series.dropna()))
    with contextlib.suppress(TypeError):  # mixed types keep the order they appear in
        distinct = sorted(distinct)
    shown = ", ".join(repr(_plain(v)) for v in distinct[:MAX_VALUES_SHOWN])
    more = (
        f" and {len(distinct) - MAX_VALUES_SHOWN} more" if len(distinct) > MAX_VALUES_SHOWN else ""
    )
    return f"{len(distinct)} distinct value(s) {shown}{more}"


def normalise_labels(
    series: pd.Series, *, positive: str | int | bool | None, source: str, column: str
) -> pd.Series:
    """The label as int64 0/1, or a :class:`LabelError` naming the file, column and values.

    Accepted: 0/1 integers, 0.0/1.0 floats and booleans; or, with ``positive`` (``label.positive``
    in project.yaml), two classes where ``positive`` becomes 1 and the one other value 0.
    Missing labels are refused.
    """
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    if positive is None:
        rule = pa.Check.isin([0, 1], name="binary")
    else:
        rule = pa.Check(
            lambda s: s[s != positive].nunique() <= 1, name="one class besides the positive"
        )
    schema = pa.SeriesSchema(nullable=False, checks=[rule], coerce=False)
    try:
        schema.validate(series, lazy=True)
    except SchemaErrors as exc:
        checks = set(exc.failure_cases["check"].astype(str))
        missing = int(series.isna().sum())
        if "not_nullable" in checks or missing:
            raise LabelError(
                f"{source}: column '{column}' has {missing} missing label(s) in {len(series)} "
                "rows; drop or fill them before training"
            ) from exc
        found = _values_found(series)
        if positive is None:
            raise LabelError(
                f"{source}: column '{column}' is not a 0/1 label: {found}; use 0/1, 0.0/1.0 or "
                "True/False, or name the positive class with 'label.positive' in project.yaml "
                "(the one other value becomes 0)"
            ) from exc
        raise LabelError(
            f"{source}: column '{column}' has {found}, but with 'label.positive' = {positive!r} "
            "in project.yaml every other value must be one single negative class; fix the data "
            "or 'label.positive' (values compare exactly, case and type included)"
        ) from exc
    if positive is None:
        return series.astype("int64")
    return (series == positive).astype("int64")


def check_availability(
    results: Sequence[AvailabilityResult], *, tolerance: float, where: str
) -> None:
    """Fail when a view could not be checked, or when more than ``tolerance`` of the rows were
    joined with a feature row created after the prediction time (the worst view is named)."""
    for result in results:
        if not result.checked:
            raise DataError(
                f"{where}: availability of {result.named()} could not be checked "
                f"({result.reason}); a check that cannot run fails"
            )
    failing = [r for r in results if r.affected_rows and r.share > tolerance]
    if not failing:
        return
    worst = max(failing, key=lambda r: r.share)
    detail = f"; {worst.reason}" if worst.reason else ""
    also = [r.named() for r in failing if r is not worst]
    others = f"; also {', '.join(also)}" if also else ""
    raise DataError(
        f"{where}: {worst.named()}: {worst.affected_rows} of {worst.rows} rows "
        f"({worst.share:.1%}, tolerance {tolerance:.1%}) were joined with a feature row created "
        f"after the prediction time{detail}{others}; stamp each feature row's event_timestamp "
        "with the time it became available"
    )


def availability_precheck(
    view: str,
    rows: int,
    *,
    has_created: bool,
    source: str | None,
    source_exists: bool,
    columns: tuple[str, ...] = (),
) -> AvailabilityResult | None:
    """The result for a view whose availability needs no query or cannot get one, else None.

    A view without a created-timestamp column is available when its event time says (checked,
    nothing affected); a view whose source is not a local parquet file (``source`` None) or
    does not exist cannot be checked.
    """
    if not has_created:
        said = "no created_timestamp column: availability equals event time"
        return AvailabilityResult(view, True, 0, rows, said, columns)
    if source is None:
        said = "source is not a local parquet file"
        return AvailabilityResult(view, False, 0, rows, said, columns)
    if not source_exists:
        return AvailabilityResult(view, False, 0, rows, f"source {source} does not exist", columns)
    return None


def availability_unreadable(
    view: str, rows: int, source: str, error: Exception, columns: tuple[str, ...] = ()
) -> AvailabilityResult:
    """A view whose source could not be queried: not checked, with the first line of why."""
    said = f"{source}: {str(error).splitlines()[0]}"
    return AvailabilityResult(view, False, 0, rows, said, columns)


def availability_found(
    view: str,
    entities: pd.DataFrame,
    key_columns: Iterable[str],
    affected: int,
    example: tuple[int, int, int] | None,
    columns: tuple[str, ...] = (),
) -> AvailabilityResult:
    """The result of a view's query: ``affected`` entity rows were joined with a feature row
    created after their event time.

    ``example``: (position of one affected entity row, its event time and the joined row's
    created time, both in ns since the epoch), read when ``affected``.
    """
    import pandas as pd

    reason = ""
    if affected:
        assert example is not None
        position, event_ns, created_ns = example
        key = describe_keys(entities, position, key_columns)
        reason = (
            f"e.g. {key} at {pd.Timestamp(event_ns, tz='UTC').isoformat()} "
            "was joined with a row created at "
            f"{pd.Timestamp(created_ns, tz='UTC').isoformat()}"
        )
    return AvailabilityResult(view, True, affected, len(entities), reason, columns)


def describe_keys(entity_frame: pd.DataFrame, position: int, columns: Iterable[str]) -> str:
    """``company_id=7``: the key values of one entity row, as plain Python values."""
    row = entity_frame.iloc[position]
    values = {c: row[c].item() if hasattr(row[c], "item") else row[c] for c in columns}
    return ", ".join(f"{c}={v!r}" for c, v in values.items())


@dataclass(frozen=True)
class SourceColumns:
    """A feature view's local source file: the columns the view reads and those the file has.

    ``declared``: (name, role) in the view's names, role e.g. "entity join key" ("" for a
    feature); ``renamed``: the view's name -> the file's column, from its field mapping;
    ``source``: the file as shown in messages.
    """

    source: str
    view: str
    declared: Sequence[tuple[str, str]]
    renamed: Mapping[str, str]
    columns: Sequence[str]


def check_source_columns(sources: Iterable[SourceColumns]) -> None:
    """Every column a feature view declares exists in its source file (Feast only finds out
    when a join fails).

    Raises:
        FeatureStoreError: naming the file, the missing column, the feature view and the
            columns the file has; the other missing columns in short.
    """
    problems: list[tuple[str, str]] = []  # (message, short form)
    for found in sources:
        for name, role in found.declared:
            column = found.renamed.get(name, name)
            if column in found.columns or name in found.columns:
                continue
            kind = f" ({role})" if role else ""
            problems.append(
                (
                    f"{found.source}: column '{column}'{kind} declared by feature view "
                    f"'{found.view}' is missing (columns: {', '.join(found.columns)})",
                    f"'{column}' of '{found.view}'",
                )
            )
    if problems:
        more = "; also missing: " + ", ".join(short for _, short in problems[1:])
        raise FeatureStoreError(problems[0][0] + (more if len(problems) > 1 else ""))
