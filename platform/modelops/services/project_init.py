"""``modelops project init``: a CSV (or parquet) table becomes a project that trains.

One row of the input is one prediction: the entity it is made for, when it is made, the feature
values known then, and the label learnt later. From it, :func:`init_project` writes

* ``feature_repo/data/<name>_features.parquet``: entity, ``event_timestamp``,
  ``created_timestamp`` (= event time: each row is known when its prediction is made) and the
  feature columns, typed int64 / float64 / string / bool;
* ``feature_repo/data/<name>_labels.parquet``: entity, ``event_timestamp``, the label as found
  (``"Yes"``/``"No"`` stays, with ``label.positive`` in project.yaml), ``label_available_at``;
* ``feature_repo/<name>_features.py``: the entity when it is new, a ``FileSource``, one feature
  view and the feature service ``<name>_v1``;
* ``projects/<name>/project.yaml`` with windows proposed from the data, leaving room for the
  label delay;
* ``projects/<name>/tests/``: data checks, and behaviour checks per ``--monotone`` feature.

Timestamps are normalised to UTC microseconds, the precision Feast's DuckDB offline store joins
exactly: event times are floored, label availability times are ceiled (a label is never known
earlier than the data says), and the result says how many values that changed. Nothing is
printed here; the CLI renders :class:`InitResult`.
"""

from __future__ import annotations

import ast
import math
import re
import shlex
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import PROJECT_FILE, ProjectSpec
from modelops.config.settings import Settings
from modelops.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

SCHEMA_COMMENT = "# yaml-language-server: $schema=../../docs/project.schema.json"
EVENT = "event_timestamp"
CREATED = "created_timestamp"
AVAILABLE = "label_available_at"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
SPLIT = (0.6, 0.8)  # row quantiles where validation and holdout start
DEFAULT_MISSING_SHARE = 0.01  # DataChecks.max_missing_share's default
MAX_SHOWN = 5
US_PER_DAY = 86_400_000_000
FEAST_TYPES = {"int64": "Int64", "double": "Float64", "string": "String", "bool": "Bool"}


@dataclass(frozen=True)
class InitOptions:
    """What ``modelops project init`` was asked; column names as the user typed them."""

    name: str
    source: Path
    label: str
    positive: str | None = None
    entity: str | None = None
    timestamp: str | None = None
    available_at: str | None = None
    label_delay: timedelta | None = None
    categorical: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    costs: tuple[float, float] | None = None
    monotone: Mapping[str, int] = field(default_factory=dict)
    synthesize_ids: bool = False
    synthesize_time: tuple[datetime, datetime] | None = None
    force: bool = False


@dataclass(frozen=True)
class Feature:
    name: str
    feast_type: str  # Int64, Float64, String, Bool
    categorical: bool
    missing_share: float


@dataclass(frozen=True)
class WindowProposal:
    name: str
    start: date
    end: date
    rows: int
    positives: int


@dataclass(frozen=True)
class InitResult:
    """What init wrote and decided, for the CLI to render."""

    project: str
    source: Path
    rows_read: int
    rows_written: int
    entity: str
    entity_object: str
    entity_reused_from: str | None
    label: str
    positive: Any
    label_delay: str
    features: list[Feature]
    auto_categorical: list[str]
    windows: list[WindowProposal]
    written: list[Path]
    replaced: list[Path]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def prevalence(self) -> float:
        rows = sum(w.rows for w in self.windows)
        return sum(w.positives for w in self.windows) / rows if rows else 0.0


# --- naming ----------------------------------------------------------------------------------


def snake_case(name: str) -> str:
    """``MonthlyCharges`` → ``monthly_charges``, ``customerID`` → ``customer_id``,
    ``Total Charges ($)`` → ``total_charges``."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    if not text:
        text = "column"
    return f"c_{text}" if text[0].isdigit() else text


@dataclass(frozen=True)
class _Layout:
    """Where init writes, and the names of the Feast objects."""

    name: str
    project_dir: Path
    feature_module: Path
    features_table: Path
    labels_table: Path
    tests_dir: Path

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def view_name(self) -> str:
        return f"{self.name}_features"

    @property
    def service_name(self) -> str:
        return f"{self.name}_v1"

    @property
    def data_test(self) -> Path:
        return self.tests_dir / f"test_{self.name}_data.py"

    @property
    def behaviour_test(self) -> Path:
        return self.tests_dir / f"test_{self.name}_behaviour.py"


def _layout(settings: Settings, name: str) -> _Layout:
    project_dir = settings.resolved_projects_dir / name
    return _Layout(
        name=name,
        project_dir=project_dir,
        feature_module=settings.resolved_feature_repo / f"{name}_features.py",
        features_table=settings.data_dir / f"{name}_features.parquet",
        labels_table=settings.data_dir / f"{name}_labels.parquet",
        tests_dir=project_dir / "tests",
    )


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _check_free(layout: _Layout, settings: Settings, force: bool) -> list[Path]:
    """Files init would replace; refuses without ``force`` when any exists."""
    root = settings.root
    if (layout.project_dir / PROJECT_FILE).is_file() and not force:
        raise ConfigError(
            f"project '{layout.name}' exists ({_shown(layout.project_dir / PROJECT_FILE, root)}); "
            "pass --force to replace the files init generates"
        )
    targets = [
        layout.features_table,
        layout.labels_table,
        layout.feature_module,
        layout.project_dir / PROJECT_FILE,
        layout.data_test,
        layout.behaviour_test,
    ]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"{_shown(existing[0], root)} exists and would be overwritten; pass --force to "
            f"replace {'it' if len(existing) == 1 else f'it and {len(existing) - 1} more'}"
        )
    return existing


# --- reading ---------------------------------------------------------------------------------


def _read_table(path: Path) -> pa.Table:
    import pyarrow as pa

    if not path.is_file():
        raise DataError(f"--from-csv {path}: file not found")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix in (".csv", ".csv.gz", ".txt"):
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read: {first}") from exc
    raise DataError(f"{path}: expected a .csv or .parquet file, got '{path.suffix or path.name}'")


class _Columns:
    """The input's columns under snake_case names, found by their original or new name."""

    def __init__(self, table: pa.Table, source: Path) -> None:
        self.source = source
        self.original = list(table.column_names)
        self.names: list[str] = []
        seen: dict[str, str] = {}
        for original in self.original:
            new = snake_case(original)
            if new in seen:
                raise DataError(
                    f"{source}: columns '{seen[new]}' and '{original}' both become '{new}'; "
                    "rename one of them"
                )
            seen[new] = original
            self.names.append(new)
        self._lookup = dict(zip(self.original, self.names, strict=True))
        self._lookup.update({n: n for n in self.names})
        self._lookup.update({o.lower(): n for o, n in zip(self.original, self.names, strict=True)})

    @property
    def renamed(self) -> list[tuple[str, str]]:
        return [(o, n) for o, n in zip(self.original, self.names, strict=True) if o != n]

    def find(self, name: str) -> str | None:
        return (
            self._lookup.get(name)
            or self._lookup.get(name.lower())
            or (self._lookup.get(snake_case(name)))
        )

    def listing(self) -> str:
        shown = ", ".join(self.original[:12])
        return shown + (f" and {len(self.original) - 12} more" if len(self.original) > 12 else "")

    def require(self, name: str, option: str) -> str:
        found = self.find(name)
        if found is None:
            raise DataError(
                f"{option} '{name}': no such column in {self.source} (columns: {self.listing()})"
            )
        return found


# --- values ----------------------------------------------------------------------------------


def _values_found(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) for v in values[:MAX_SHOWN])
    more = f" and {len(values) - MAX_SHOWN} more" if len(values) > MAX_SHOWN else ""
    return f"{len(values)} distinct value(s) {shown}{more}"


def _sorted(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:
        return values


def _coerce_positive(text: str, kind: str, values: list[Any]) -> Any:
    """``--positive`` as a value of the label column's type."""
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return text
    if kind in ("int", "float"):
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() else number
    return text if text in values else next((v for v in values if str(v) == text), text)


def _label(
    table: pa.Table, column: str, positive_text: str | None, source: Path
) -> tuple[pa.Array, Any, int]:
    """The label column as it will be written, its positive value (None for 0/1 and booleans),
    and the number of rows without a label (dropped).

    Raises:
        DataError: not two classes (the values are shown), or ``--positive`` is not one of them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    values = table.column(column).combine_chunks()
    missing = values.null_count
    kind = (
        "bool"
        if pa.types.is_boolean(values.type)
        else "int"
        if pa.types.is_integer(values.type)
        else "float"
        if pa.types.is_floating(values.type)
        else "text"
    )
    if pa.types.is_dictionary(values.type):
        values = values.cast(pa.string())
    if kind == "float":
        finite = pc.drop_null(values)
        if len(finite) and pc.all(pc.equal(pc.floor(finite), finite)).as_py():
            values, kind = values.cast(pa.int64()), "int"
    distinct = _sorted(pc.unique(pc.drop_null(values)).to_pylist())
    where = f"{source}: label '{column}'"
    if kind == "float" and len(distinct) <= 2:
        raise DataError(f"{where} holds fractional numbers {distinct}: not a binary label")
    if len(distinct) > 2:
        raise DataError(f"{where} is not binary: {_values_found(distinct)}")
    if len(distinct) < 2:
        raise DataError(f"{where} has a single class: {_values_found(distinct)}; nothing to learn")
    if positive_text is None:
        if kind == "bool" or (kind == "int" and set(distinct) == {0, 1}):
            return values, None, missing
        raise DataError(
            f"{where} has two classes {distinct[0]!r} and {distinct[1]!r}: name the positive "
            "(costly) one with --positive"
        )
    positive = _coerce_positive(positive_text, kind, distinct)
    if positive not in distinct:
        raise DataError(
            f"--positive {positive_text!r} is not a value of {where}: {_values_found(distinct)}"
        )
    if kind == "bool" and positive is True:
        positive = None  # True is the positive class already
    elif kind == "int" and set(distinct) == {0, 1} and positive == 1:
        positive = None
    return values, positive, missing


def _numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of an Arrow array, chunked or not, as one numpy array."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    result: np.ndarray = values.to_numpy(zero_copy_only=False)
    return result


def _floor_us(ns: np.ndarray) -> tuple[np.ndarray, int]:
    import numpy as np

    remainder = np.mod(ns, 1000)
    return (ns - remainder) // 1000, int(np.count_nonzero(remainder))


def _ceil_us(ns: np.ndarray) -> tuple[np.ndarray, int]:
    import numpy as np

    remainder = np.mod(ns, 1000)
    return (ns - remainder) // 1000 + (remainder != 0), int(np.count_nonzero(remainder))


def _times_ns(table: pa.Table, column: str, option: str, source: Path) -> np.ndarray:
    """A column of times as int64 nanoseconds since the epoch, UTC (times without a zone are
    read as UTC).

    Raises:
        DataError: missing values, numbers, or text that is not a time (one example shown).
    """
    import pyarrow as pa

    values = table.column(column)
    where = f"{option} '{column}'"
    if values.null_count:
        raise DataError(f"{source}: {where}: {values.null_count} row(s) have no time")
    kind = values.type
    if not (
        pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
    ):
        raise DataError(f"{source}: {where} holds {kind} values, not times")
    if pa.types.is_timestamp(kind):  # stored as UTC; a time without a zone is read as UTC
        factor = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[kind.unit]
        ticks = _numpy(values.cast(pa.int64()))
        return ticks * factor
    if pa.types.is_date32(kind):
        days = _numpy(values.cast(pa.int32())).astype("int64")
        return days * (US_PER_DAY * 1000)
    if pa.types.is_date64(kind):
        millis = _numpy(values.cast(pa.int64()))
        return millis * 10**6
    import pandas as pd

    series = pd.Series(values.to_numpy(zero_copy_only=False), dtype=object)
    try:
        parsed = pd.to_datetime(series, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        try:
            parsed = pd.to_datetime(series, utc=True, format="mixed")
        except (ValueError, TypeError, OverflowError) as exc:
            bad = next(
                (v for v in series.head(10_000) if pd.isna(pd.to_datetime(v, errors="coerce"))),
                series.iloc[0],
            )
            raise DataError(f"{source}: {where}: cannot read {bad!r} as a time") from exc
    result: np.ndarray = parsed.dt.as_unit("ns").astype("int64").to_numpy()
    return result


def _synthetic_times_us(rows: int, start: datetime, end: datetime) -> np.ndarray:
    """``rows`` times spread evenly from ``start`` to ``end`` (both included), in row order."""
    import numpy as np

    start_us = _epoch_us(start)
    span = _epoch_us(end) - start_us
    steps = max(rows - 1, 1)
    index = np.arange(rows, dtype=np.int64)
    quotient, remainder = divmod(span, steps)
    result: np.ndarray = start_us + index * quotient + (index * remainder) // steps
    return result


def _epoch_us(moment: datetime) -> int:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _day(us: int) -> date:
    return date(1970, 1, 1) + timedelta(days=us // US_PER_DAY)


def describe_delay(delay: timedelta) -> str:
    """``30 days``, ``12 hours``, ``1 day 6 hours``."""
    seconds = int(delay.total_seconds())
    parts = []
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 seconds"


# --- the entity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Definition:
    kind: str  # the called name: Entity, FeatureView, FileSource, ...
    name: str
    module: str
    variable: str | None
    join_keys: tuple[str, ...] = ()
    value_type: str | None = None


def _called(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _string(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def existing_definitions(feature_repo: Path, skip: Path | None = None) -> list[_Definition]:
    """Named Feast objects defined in the repo's modules, read without importing them."""
    found: list[_Definition] = []
    for path in sorted(feature_repo.rglob("*.py")):
        if path == skip or "data" in path.relative_to(feature_repo).parts[:1]:
            continue
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, OSError) as exc:
            raise ConfigError(f"{path}: cannot be parsed ({exc})") from exc
        module = ".".join(path.relative_to(feature_repo).with_suffix("").parts)
        variables: dict[int, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    variables[id(node.value)] = target.id
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            name = _string(keywords.get("name"))
            if name is None:
                continue
            keys: tuple[str, ...] = ()
            joined = keywords.get("join_keys")
            if isinstance(joined, ast.List | ast.Tuple):
                keys = tuple(s for s in (_string(e) for e in joined.elts) if s)
            value_type = keywords.get("value_type")
            found.append(
                _Definition(
                    kind=_called(node),
                    name=name,
                    module=module,
                    variable=variables.get(id(node)),
                    join_keys=keys,
                    value_type=value_type.attr if isinstance(value_type, ast.Attribute) else None,
                )
            )
    return found


@dataclass(frozen=True)
class _Entity:
    join_key: str
    name: str
    variable: str
    value_type: str  # INT64 / STRING
    reused_from: str | None  # module name


def _choose_entity(
    definitions: list[_Definition], layout: _Layout, join_key: str, value_type: str, where: str
) -> _Entity:
    for definition in definitions:
        if definition.kind == "Entity" and definition.join_keys == (join_key,):
            if definition.value_type and definition.value_type != value_type:
                raise DataError(
                    f"{where}: entity column '{join_key}' holds {value_type} values, but entity "
                    f"'{definition.name}' (feature_repo/{definition.module.replace('.', '/')}.py) "
                    f"joins on {definition.value_type}; convert the column or rename it"
                )
            if definition.variable is None:
                continue
            return _Entity(
                join_key, definition.name, definition.variable, value_type, definition.module
            )
    taken = {d.name for d in definitions if d.kind == "Entity"}
    name = join_key.removesuffix("_id") if join_key.endswith("_id") else join_key
    if name in taken or name in (layout.source_name, layout.view_name, layout.service_name):
        name = f"{layout.name}_{name}"
    return _Entity(join_key, name, name, value_type, None)


def _check_names(definitions: list[_Definition], layout: _Layout, entity: _Entity) -> None:
    ours = {layout.source_name, layout.view_name, layout.service_name}
    if entity.reused_from is None:
        ours.add(entity.name)
    for definition in definitions:
        if definition.name in ours and definition.kind != "Entity":
            raise ConfigError(
                f"feature_repo/{definition.module.replace('.', '/')}.py already defines "
                f"{definition.kind} '{definition.name}'; choose another project name"
            )


# --- features --------------------------------------------------------------------------------


def _prepare_features(
    table: pa.Table, columns: Sequence[str], notes: list[str]
) -> dict[str, pa.ChunkedArray]:
    """Feature columns cast to int64 / float64 / string / bool; dropped columns are noted.

    Integers and booleans with missing values become float64 (NaN survives the join and the
    models; nullable integers do not).
    """
    import pyarrow as pa

    kept: dict[str, pa.ChunkedArray] = {}
    dropped: list[str] = []
    for name in columns:
        values = table.column(name)
        kind = values.type
        if pa.types.is_dictionary(kind):
            values, kind = values.cast(kind.value_type), kind.value_type
        if pa.types.is_null(kind) or values.null_count == len(values):
            dropped.append(f"'{name}' (empty)")
            continue
        if pa.types.is_large_string(kind):
            values = values.cast(pa.string())
        elif pa.types.is_boolean(kind):
            if values.null_count:
                values = values.cast(pa.float64())
                notes.append(f"'{name}': booleans with missing values stored as 1.0/0.0/NaN")
        elif pa.types.is_integer(kind):
            if values.null_count:
                values = values.cast(pa.float64())
            else:
                try:
                    values = values.cast(pa.int64())
                except pa.ArrowInvalid:
                    values = values.cast(pa.float64())
        elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            values = values.cast(pa.float64())
        elif not pa.types.is_string(kind):
            what = "dates or times" if pa.types.is_temporal(kind) else f"{kind} values"
            dropped.append(f"'{name}' ({what})")
            continue
        kept[name] = values
    if dropped:
        notes.append(
            "left out of the features (the platform's features are numbers or categories): "
            + ", ".join(dropped)
        )
    return kept


def _missing_share(values: pa.ChunkedArray) -> float:
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = values.null_count
    if pa.types.is_floating(values.type):
        missing += int(pc.sum(pc.is_nan(pc.fill_null(values, 0.0))).as_py() or 0)
    return missing / len(values) if len(values) else 0.0


def _feast_type(values: pa.ChunkedArray) -> str:
    return FEAST_TYPES[str(values.type)]


# --- windows ---------------------------------------------------------------------------------


def _propose_windows(
    event_us: np.ndarray, known_us: np.ndarray, positive: np.ndarray, source: Path
) -> tuple[list[WindowProposal], int]:
    """Train, validation and holdout windows of whole UTC days, cut at the 60% and 80% row
    quantiles by time, each window ending early enough that all its labels are known before
    the next one starts (the gap is the longest label delay, rounded up to days).

    Returns the windows and the gap in days.

    Raises:
        DataError: the data's time range cannot hold three windows and two gaps, or a window
            holds a single class.
    """
    import numpy as np

    delay_us = int((known_us - event_us).max()) if len(event_us) else 0
    gap = max(0, math.ceil(delay_us / US_PER_DAY))
    days = event_us // US_PER_DAY
    ordered = np.sort(days)
    first, last = int(ordered[0]), int(ordered[-1])
    validation_start = int(ordered[int(SPLIT[0] * (len(ordered) - 1))])
    holdout_start = int(ordered[int(SPLIT[1] * (len(ordered) - 1))])
    bounds = {
        "train": (first, validation_start - 1 - gap),
        "validation": (validation_start, holdout_start - 1 - gap),
        "holdout": (holdout_start, last),
    }
    epoch = date(1970, 1, 1)
    span = f"{epoch + timedelta(days=first)}..{epoch + timedelta(days=last)}"
    proposals = []
    for name, (start, end) in bounds.items():
        if end < start or (name == "holdout" and holdout_start <= validation_start):
            raise DataError(
                f"{source}: the data's {len(ordered):,} rows span {span} ({last - first + 1} "
                f"days), too little for train, validation and holdout windows with "
                f"{gap}-day gaps for the label delay; a shorter --label-delay or a longer time "
                "range is needed"
            )
        inside = (days >= start) & (days <= end)
        rows = int(inside.sum())
        positives = int(positive[inside].sum())
        if rows == 0 or positives in (0, rows):
            only = "no rows" if rows == 0 else f"{rows} rows of a single class"
            raise DataError(
                f"{source}: the proposed {name} window {epoch + timedelta(days=start)}.."
                f"{epoch + timedelta(days=end)} holds {only}; both classes are needed in every "
                "window"
            )
        proposals.append(
            WindowProposal(
                name, epoch + timedelta(days=start), epoch + timedelta(days=end), rows, positives
            )
        )
    return proposals, gap


# --- rendering -------------------------------------------------------------------------------


def _yaml(value: Any) -> str:
    """One YAML scalar or flow collection, quoted where YAML would misread it ('Yes')."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def _command(options: InitOptions, root: Path) -> str:
    words = ["modelops", "project", "init", options.name, "--from-csv"]
    words.append(_shown(options.source.resolve(), root))
    words += ["--label", options.label]
    pairs: list[tuple[str, str | None]] = [
        ("--positive", options.positive),
        ("--entity", options.entity),
        ("--timestamp", options.timestamp),
        ("--available-at", options.available_at),
    ]
    if options.label_delay is not None:
        pairs.append(("--label-delay", _delay_option(options.label_delay)))
    for flag, value in pairs:
        if value is not None:
            words += [flag, value]
    for column in options.categorical:
        words += ["--categorical", column]
    for column in options.exclude:
        words += ["--exclude", column]
    if options.costs:
        words += ["--costs", f"{options.costs[0]:g},{options.costs[1]:g}"]
    for column, sign in options.monotone.items():
        words += ["--monotone", f"{column}={sign:+d}"]
    if options.synthesize_ids:
        words.append("--synthesize-ids")
    if options.synthesize_time:
        start, end = options.synthesize_time
        words += ["--synthesize-time", f"{_moment(start)}..{_moment(end)}"]
    return shlex.join(words)


def _moment(value: datetime) -> str:
    if value.time() == datetime.min.time():
        return value.date().isoformat()
    return value.astimezone(UTC).replace(tzinfo=None).isoformat()


def _delay_option(delay: timedelta) -> str:
    seconds = int(delay.total_seconds())
    for suffix, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


@dataclass(frozen=True)
class _Plan:
    options: InitOptions
    layout: _Layout
    source_name: str
    entity: _Entity
    synthetic_ids: bool
    synthetic_time: tuple[datetime, datetime] | None
    label: str
    positive: Any
    label_values: list[Any]
    delay_text: str
    features: list[Feature]
    auto_categorical: list[str]
    windows: list[WindowProposal]
    gap_days: int
    ttl_days: int
    missing_tolerance: float | None
    worst_missing: Feature | None
    costs: tuple[float, float] | None
    monotone: dict[str, int]
    first_day: date
    last_day: date
    command: str
    feature_types: dict[str, str]
    label_types: dict[str, str]


def _project_yaml(plan: _Plan) -> str:
    layout = plan.layout
    categorical = [f.name for f in plan.features if f.categorical]
    lines = [
        SCHEMA_COMMENT,
        f"# Generated by `modelops project init` from {plan.source_name}; regenerate with:",
        f"#   {plan.command} --force",
    ]
    if plan.synthetic_ids or plan.synthetic_time:
        made = []
        if plan.synthetic_ids:
            made.append(f"ids ('{plan.entity.join_key}': one entity per row, --synthesize-ids)")
        if plan.synthetic_time:
            start, end = plan.synthetic_time
            made.append(
                f"times (spread evenly over {_moment(start)}..{_moment(end)} in row order, "
                "--synthesize-time)"
            )
        text = (
            f"SYNTHETIC {' and '.join(made)}: {plan.source_name} had none. The windows follow "
            "the row order, so they test generalisation only as far as that order means time."
        )
        lines += [f"# {line}" for line in textwrap.wrap(text, width=98)]
    positive = plan.positive
    event = f"{plan.label}={positive}" if positive is not None else f"{plan.label}=1"
    description = f"Predicts {event} from {plan.source_name} (generated by modelops project init)."
    lines += [
        f"name: {layout.name}",
        f"description: {_yaml(description)}",
        f"registered_model: {layout.name}",
        f"entity: {plan.entity.join_key}",
        f"feature_service: {layout.service_name}",
        "label:",
        f"  table: {layout.labels_table.stem}",
        f"  column: {plan.label}",
    ]
    if positive is not None:
        others = [v for v in plan.label_values if v != positive]
        lines.append(
            f"  positive: {_yaml(positive)}".ljust(40)
            + f"# the costly class; {_yaml(others[0])} is the other (0)"
        )
    lines += [
        f"  timestamp: {EVENT}",
        f"  available_at: {AVAILABLE}".ljust(40) + f"# {plan.delay_text}",
        f"  event_name: {_yaml(event)}",
        "windows:".ljust(40)
        + f"# proposed by init from {plan.first_day}..{plan.last_day}, {plan.gap_days}-day gaps",
    ]
    for window in plan.windows:
        text = f"  {window.name}: {{start: {window.start}, end: {window.end}}}"
        lines.append(text.ljust(56) + f"# {window.rows:,} rows, {window.positives:,} positive")
    fn, fp = plan.costs or (1.0, 1.0)
    lines += ["primary_metric: pr_auc"]
    if plan.costs is None:
        lines.append("costs:".ljust(40) + "# 1:1 by default: EDIT to what each mistake costs")
    else:
        lines.append("costs:")
    lines += [
        f"  false_negative: {fn:g}".ljust(40) + "# a missed positive",
        f"  false_positive: {fp:g}".ljust(40) + "# a false alarm",
        "threshold_policy: {type: min_cost}",
        "decisions: {positive: act, review: review, negative: pass}".ljust(64)
        + "# rename to your actions",
        "segments: []",
    ]
    if categorical:
        auto = [c for c in plan.auto_categorical if c in categorical]
        declared = [c for c in categorical if c not in auto]
        why = []
        if auto:
            why.append("text columns")
        if declared:
            why.append(f"--categorical {', '.join(declared)}")
        comment = f"# {' and '.join(why)}"
        flow = f"  categorical: {_yaml(categorical)}"
        if len(flow) + len(comment) < 100:
            lines += ["features:", f"{flow}  {comment}"]
        else:
            lines += ["features:", "  categorical:".ljust(40) + comment]
            lines += [f"    - {_yaml(column)}" for column in categorical]
    if plan.missing_tolerance is not None and plan.worst_missing is not None:
        lines += [
            "data_checks:",
            f"  max_missing_share: {plan.missing_tolerance:g}".ljust(40)
            + f"# '{plan.worst_missing.name}' is empty on {plan.worst_missing.missing_share:.1%}"
            " of the rows",
        ]
    if plan.monotone:
        lines += ["model:", "  params:", "    monotone_constraints:"]
        for column, sign in plan.monotone.items():
            direction = "the score rises with it" if sign > 0 else "the score falls as it rises"
            lines.append(f"      {column}: {sign}".ljust(40) + f"# {direction} (--monotone)")
    return "\n".join(lines) + "\n"


def _feature_module(plan: _Plan) -> str:
    layout, entity = plan.layout, plan.entity
    types = sorted({f.feast_type for f in plan.features})
    imports = {"feast": ["FeatureService", "FeatureView", "Field", "FileSource"]}
    if entity.reused_from is None:
        imports["feast"] = ["Entity", *imports["feast"], "ValueType"]
    else:
        imports[entity.reused_from] = [entity.variable]
    imports["feast.types"] = types
    lines = [
        *_docstring(
            f"Features of the {layout.name} project, generated by `modelops project init` from "
            f"{plan.source_name}.",
            [
                "One row per prediction, stamped when it is made. The feature service "
                f"``{layout.service_name}`` is the contract between training and serving."
            ],
        ),
        "",
        "from datetime import timedelta",
        "",
    ]
    for module in sorted(imports, key=str.lower):
        lines.append(f"from {module} import {', '.join(imports[module])}")
    if entity.reused_from is None:
        what = (
            f"One row of {plan.source_name} (a synthetic id per row)."
            if plan.synthetic_ids
            else f"The '{entity.join_key}' of {plan.source_name}."
        )
        lines += [
            "",
            f"{entity.variable} = Entity(",
            f"    name={_py(entity.name)},",
            f"    join_keys=[{_py(entity.join_key)}],",
            f"    value_type=ValueType.{entity.value_type},",
            f"    description={_py(what)},",
            ")",
        ]
    lines += [
        "",
        f"{layout.name}_source = FileSource(",
        f"    name={_py(layout.source_name)},",
        f"    path={_py('data/' + layout.features_table.name)},",
        f'    timestamp_field="{EVENT}",',
        f'    created_timestamp_column="{CREATED}",',
        f"    description={_py(f'Feature columns of {plan.source_name}.')},",
        ")",
        "",
        f"{layout.view_name} = FeatureView(",
        f"    name={_py(layout.view_name)},",
        f"    entities=[{entity.variable}],",
        f"    ttl=timedelta(days={plan.ttl_days}),  # covers the data's time range",
        "    schema=[",
    ]
    for feature in plan.features:
        lines.append(f"        Field(name={_py(feature.name)}, dtype={feature.feast_type}),")
    lines += [
        "    ],",
        f"    source={layout.name}_source,",
        "    online=True,",
        f"    tags={{{_py('project')}: {_py(layout.name)}}},",
        ")",
        "",
        f"{layout.service_name} = FeatureService(",
        f"    name={_py(layout.service_name)},",
        f"    features=[{layout.view_name}],",
        f"    description={_py(f'Inputs of the {layout.name} model, for training and serving.')},",
        f"    tags={{{_py('project')}: {_py(layout.name)}}},",
        ")",
    ]
    return "\n".join(_wrap(line) for line in lines) + "\n"


def _py(text: str) -> str:
    """A Python string literal in the double quotes ruff format prefers."""
    import json

    return json.dumps(text, ensure_ascii=False)


def _literal(value: Any) -> str:
    return _py(value) if isinstance(value, str) else repr(value)


def _wrap(line: str) -> str:
    """Keep a generated ``key="text",`` or ``NAME = "text"`` line within ruff's 100 columns:
    a long string becomes implicitly concatenated pieces inside parentheses."""
    if len(line) <= 100:
        return line
    match = re.match(r'^(\s*)(\w+(?:=| = ))(".*")(,?)$', line)
    if not match:
        return line
    import json

    indent, key, literal, comma = match.groups()
    text = json.loads(literal)
    width = 100 - len(indent) - 6
    pieces, current = [], ""
    for word in re.split(r"(?<= )", text):
        if current and len(_py(current + word)) > width:
            pieces.append(current)
            current = ""
        current += word
    pieces.append(current)
    inner = "\n".join(f"{indent}    {_py(p)}" for p in pieces)
    return f"{indent}{key}(\n{inner}\n{indent}){comma}"


def _docstring(text: str, more: Sequence[str] = ()) -> list[str]:
    """A module docstring: a summary wrapped at 100 columns, then ``more`` paragraphs."""
    lines = textwrap.wrap(f'"""{text}', width=100)
    for paragraph in more:
        lines += ["", *textwrap.wrap(paragraph, width=100)]
    if len(lines) == 1 and len(lines[0]) <= 97:
        return [lines[0] + '"""']
    return [*lines, '"""']


_DATA_TEST = '''"""Data checks of the {name} project, generated by `modelops project init`.

Schema, missing values and availability of the tables init wrote; they fail when the data is
regenerated differently or replaced by hand. Run: pytest projects/{name}/tests
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from modelops.config.settings import load_settings
from modelops.core.datachecks import normalise_labels

ROOT = Path(__file__).resolve().parents[3]
ENTITY = {entity}
LABEL = {label}
POSITIVE = {positive}
FEATURE_TABLE = {features_table}
LABEL_TABLE = {labels_table}
FEATURE_TYPES = {feature_types}
LABEL_TYPES = {label_types}
# Share of rows each feature was empty on when init wrote the table.
MISSING_AT_INIT = {missing}
REGENERATE = {command}


def _path(table: str) -> Path:
    path = load_settings(ROOT).data_dir / f"{{table}}.parquet"
    if not path.is_file():
        pytest.skip(f"{{path}} not found; regenerate it with: {{REGENERATE}}")
    return path


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return pd.read_parquet(_path(FEATURE_TABLE))


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    return pd.read_parquet(_path(LABEL_TABLE))


@pytest.mark.parametrize(
    ("table", "expected"), [(FEATURE_TABLE, FEATURE_TYPES), (LABEL_TABLE, LABEL_TYPES)]
)
def test_schema(table: str, expected: dict[str, str]) -> None:
    schema = pq.read_schema(_path(table))
    assert {{f.name: str(f.type) for f in schema}} == expected


def test_keys_times_and_labels_are_never_missing(
    features: pd.DataFrame, labels: pd.DataFrame
) -> None:
    for frame, columns in (
        (features, [ENTITY, "event_timestamp", "created_timestamp"]),
        (labels, [ENTITY, "event_timestamp", LABEL, "label_available_at"]),
    ):
        missing = {{c: int(frame[c].isna().sum()) for c in columns if frame[c].isna().any()}}
        assert not missing, missing


def test_features_are_not_emptier_than_at_init(features: pd.DataFrame) -> None:
    shares = features[list(MISSING_AT_INIT)].isna().mean()
    grown = {{f: round(s, 4) for f, s in shares.items() if s > MISSING_AT_INIT[f] + 0.01}}
    assert not grown, f"features empty on more rows than at init: {{grown}}"


def test_the_label_is_binary(labels: pd.DataFrame) -> None:
    values = normalise_labels(labels[LABEL], positive=POSITIVE, source=LABEL_TABLE, column=LABEL)
    assert set(values.unique()) == {{0, 1}}


def test_each_label_becomes_known_after_its_prediction(labels: pd.DataFrame) -> None:
    early = labels["label_available_at"] < labels["event_timestamp"]
    assert not early.any(), labels[early].head()


def test_each_feature_row_exists_at_its_event_time(features: pd.DataFrame) -> None:
    """The point-in-time join picks rows by event_timestamp: a row created later would leak."""
    late = features["created_timestamp"] > features["event_timestamp"]
    assert not late.any(), features[late].head()


def test_each_prediction_has_its_feature_row(features: pd.DataFrame, labels: pd.DataFrame) -> None:
    keys = [ENTITY, "event_timestamp"]
    assert not features.duplicated(keys).any(), "two feature rows share an entity and time"
    joined = labels[keys].merge(features[keys], on=keys, how="left", indicator=True)
    assert (joined["_merge"] == "both").all(), joined[joined["_merge"] != "both"].head()
'''


_BEHAVIOUR_TEST = '''"""Behaviour checks of the {name} project, generated by modelops project init.

project.yaml declares the direction of each --monotone feature: a data scientist expects every
registered model to follow it, not only the LightGBM candidate that is constrained to. Each
check scores {sample} feature rows of the table with the feature moved across its quantiles,
the other columns held, and fails when a score moves the other way. A role not registered yet
is skipped with the reason. Run: pytest projects/{name}/tests
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelops.config.project import load_project
from modelops.config.settings import load_settings
from modelops.core.errors import ModelopsError
from modelops.core.tags import FEATURES
from modelops.integrations import mlflow as mlflow_io
from modelops.services import registry
from modelops.services.context import tracking

ROOT = Path(__file__).resolve().parents[3]
PROJECT = {project}
FEATURE_TABLE = {features_table}
MONOTONE = {monotone}
TOLERANCE = 1e-9


def test_project_yaml_declares_the_monotone_constraints() -> None:
    settings = load_settings(ROOT)
    params = load_project(settings.resolved_projects_dir, PROJECT).spec.model.params
    assert params.get("monotone_constraints") == MONOTONE


def _latest(role: str) -> Any:
    settings = load_settings(ROOT)
    try:
        registered = registry.list_versions(settings, PROJECT)
    except ModelopsError as exc:  # no model registered yet, or no registry to ask
        pytest.skip(f"no {{role}} of {{PROJECT}} to check: {{exc}}")
    versions = [v for v in registered if v.role == role]
    if not versions:
        pytest.skip(f"no {{role}} of {{PROJECT}} registered yet: run 'modelops train {{PROJECT}}'")
    return max(versions, key=lambda v: int(v.version))


@pytest.mark.parametrize("role", ["candidate", "baseline"])
@pytest.mark.parametrize(("feature", "direction"), list(MONOTONE.items()))
def test_the_score_moves_with_the_feature_as_declared(
    role: str, feature: str, direction: int
) -> None:
    version = _latest(role)
    settings = load_settings(ROOT)
    table = settings.data_dir / f"{{FEATURE_TABLE}}.parquet"
    if not table.is_file():
        pytest.skip(f"{{table}} not found")
    rows = pd.read_parquet(table).sample(n={sample}, random_state=0, replace=True)
    rows = rows.reset_index(drop=True)
    grid = np.unique(rows[feature].quantile([0.02, 0.25, 0.5, 0.75, 0.98]).to_numpy())
    names = version.tags[FEATURES].split(",")
    with mlflow_io.session(tracking(settings)):
        model = mlflow_io.load_model(f"models:/{{version.model_name}}/{{version.version}}")
    scores = []
    for value in grid:
        moved = rows[names].copy()
        moved[feature] = value
        scores.append(model.predict_proba(moved)[:, 1])
    steps = np.diff(np.vstack(scores), axis=0) * direction
    wrong = int((steps < -TOLERANCE).any(axis=0).sum())
    assert wrong == 0, (
        f"{{PROJECT}} v{{version.version}} ({{role}}): raising {{feature}} moves the score against "
        f"the declared direction {{direction:+d}} on {{wrong}} of {{len(rows)}} rows"
    )
'''


def _tests(plan: _Plan) -> dict[Path, str]:
    layout = plan.layout
    missing = {f.name: round(f.missing_share, 6) for f in plan.features}
    files = {
        layout.data_test: _DATA_TEST.format(
            name=layout.name,
            entity=_literal(plan.entity.join_key),
            label=_literal(plan.label),
            positive=_literal(plan.positive),
            features_table=_literal(layout.features_table.stem),
            labels_table=_literal(layout.labels_table.stem),
            feature_types=_dict_literal(plan.feature_types),
            label_types=_dict_literal(plan.label_types),
            missing=_dict_literal(missing),
            command=_literal(plan.command + " --force"),
        )
    }
    if plan.monotone:
        files[layout.behaviour_test] = _BEHAVIOUR_TEST.format(
            name=layout.name,
            project=_literal(layout.name),
            features_table=_literal(layout.features_table.stem),
            monotone=_dict_literal(plan.monotone),
            sample=200,
        )
    return {
        path: "\n".join(_wrap(line) for line in text.splitlines()) + "\n"
        for path, text in files.items()
    }


def _dict_literal(mapping: Mapping[str, Any]) -> str:
    """A dict literal, one item per line when it does not fit on one (as ruff formats it)."""
    items = [f"{_literal(k)}: {_literal(v)}" for k, v in mapping.items()]
    flat = "{" + ", ".join(items) + "}"
    if len(flat) <= 60:
        return flat
    return "{" + "".join(f"\n    {item}," for item in items) + "\n}"


# --- the whole step --------------------------------------------------------------------------


def init_project(settings: Settings, options: InitOptions) -> InitResult:
    """Onboard a table as project ``options.name``; see the module docstring for what is written.

    Raises:
        ConfigError: a bad name or option, an existing project or file without ``force``, a
            Feast name already taken.
        DataError: a column missing, a label that is not binary, timestamps or entities that
            cannot be read, or data too short for three windows.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    name = options.name
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"project name '{name}': use lowercase letters, digits and underscores, starting "
            "with a letter"
        )
    if options.entity and options.synthesize_ids:
        raise ConfigError("--entity and --synthesize-ids: pass one of them, not both")
    if options.timestamp and options.synthesize_time:
        raise ConfigError("--timestamp and --synthesize-time: pass one of them, not both")
    if (options.available_at is None) == (options.label_delay is None):
        got = "both" if options.available_at else "neither"
        raise ConfigError(
            "when does a label become known? pass exactly one of --available-at COL or "
            f"--label-delay DURATION (e.g. 30d); got {got}"
        )
    if options.label_delay is not None and options.label_delay < timedelta(0):
        raise ConfigError(f"--label-delay {options.label_delay}: must not be negative")
    if options.synthesize_time and options.synthesize_time[1] <= options.synthesize_time[0]:
        raise ConfigError("--synthesize-time START..END: END must be after START")
    layout = _layout(settings, name)
    replaced = _check_free(layout, settings, options.force)
    source = options.source
    table = _read_table(source)
    rows_read = table.num_rows
    if rows_read == 0:
        raise DataError(f"{source}: no rows")
    columns = _Columns(table, source)
    table = table.rename_columns(columns.names)
    notes: list[str] = []
    warnings: list[str] = []
    if columns.renamed:
        shown = ", ".join(f"'{o}' → {n}" for o, n in columns.renamed[:MAX_SHOWN])
        more = (
            f" and {len(columns.renamed) - MAX_SHOWN} more"
            if len(columns.renamed) > MAX_SHOWN
            else ""
        )
        notes.append(f"column names in snake_case: {shown}{more}")

    label = columns.require(options.label, "--label")
    roles: dict[str, str] = {label: "--label"}

    def role(column: str | None, option: str) -> str | None:
        if column is None:
            return None
        found = columns.require(column, option)
        if found in roles:
            raise ConfigError(f"{option} '{column}': already used by {roles[found]}")
        roles[found] = option
        return found

    entity_column = role(options.entity, "--entity")
    time_column = role(options.timestamp, "--timestamp")
    available_column = role(options.available_at, "--available-at")
    excluded = {columns.require(c, "--exclude") for c in options.exclude}
    for column in excluded:
        if column in roles:
            raise ConfigError(f"--exclude '{column}': it is the {roles[column]} column")
    if entity_column is None and not options.synthesize_ids:
        hint = _candidates(columns.names, lambda c: c == "id" or c.endswith("_id"))
        raise DataError(
            f"{source}: no entity column: pass --entity COL (the id each prediction is made "
            f"for{hint}) or --synthesize-ids (one synthetic id per row)"
        )
    if time_column is None and not options.synthesize_time:
        kinds = {n: table.column(n).type for n in columns.names}
        hint = _candidates(
            columns.names,
            lambda c: pa.types.is_temporal(kinds[c]) or any(w in c for w in ("time", "date")),
        )
        raise DataError(
            f"{source}: no timestamp column: pass --timestamp COL (when each prediction is "
            f"made{hint}) or --synthesize-time START..END (spread evenly, in row order)"
        )
    join_key = entity_column or f"{name}_row_id"
    reserved = {EVENT, CREATED, AVAILABLE, join_key}
    if label in reserved:
        raise DataError(f"{source}: the label column may not be called '{label}'; rename it")
    for column in columns.names:
        if column in reserved and column not in roles and column not in excluded:
            raise DataError(
                f"{source}: column '{column}' is a name init writes itself; pass it as the "
                f"column it is (--timestamp / --available-at / --entity) or --exclude it"
            )
    categorical: list[str] = []
    for column in options.categorical:
        found = columns.require(column, "--categorical")
        if found in roles or found in excluded:
            raise ConfigError(
                f"--categorical '{column}': it is the {roles.get(found, '--exclude')} column, "
                "not a feature"
            )
        categorical.append(found)
    monotone: dict[str, int] = {}
    for column, sign in options.monotone.items():
        found = columns.require(column, "--monotone")
        if found in roles or found in excluded or found in categorical:
            what = roles.get(found) or ("excluded" if found in excluded else "categorical")
            raise ConfigError(
                f"--monotone '{column}': only numeric features can be monotone ('{found}' is "
                f"{what})"
            )
        if sign not in (-1, 1):
            raise ConfigError(f"--monotone {column}={sign}: the direction is +1 or -1")
        monotone[found] = sign

    # The label: kept as found; rows without one are dropped.
    label_values, positive, unlabelled = _label(table, label, options.positive, source)
    keep = pc.is_valid(label_values)

    # Times, entities.
    if time_column is not None:
        event_us, floored = _floor_us(_times_ns(table, time_column, "--timestamp", source))
        if floored:
            notes.append(
                f"'{time_column}': {floored:,} time(s) had parts below a microsecond, floored "
                "(Feast's DuckDB store joins microseconds)"
            )
    else:
        assert options.synthesize_time is not None
        event_us = _synthetic_times_us(rows_read, *options.synthesize_time)
    if available_column is not None:
        known_us, ceiled = _ceil_us(_times_ns(table, available_column, "--available-at", source))
        if ceiled:
            notes.append(
                f"'{available_column}': {ceiled:,} time(s) had parts below a microsecond, "
                "rounded up (a label is never known earlier than the data says)"
            )
        early = known_us < event_us
        if early.any():
            first = int(np.argmax(early))
            raise DataError(
                f"{source}: --available-at '{available_column}': {int(early.sum()):,} label(s) "
                f"become known before their prediction time (e.g. row {first + 1}); a label is "
                "learnt after the prediction"
            )
        delay_text = f"from '{available_column}'"
    else:
        assert options.label_delay is not None
        delay = options.label_delay
        delay_us = delay.days * US_PER_DAY + delay.seconds * 1_000_000 + delay.microseconds
        known_us = event_us + delay_us
        delay_text = f"event time + {describe_delay(delay)} (--label-delay)"

    if entity_column is not None:
        entity_values, value_type = _entity_values(table, entity_column, source)
    else:
        entity_values = pa.chunked_array([np.arange(1, rows_read + 1, dtype=np.int64)])
        value_type = "INT64"

    # Features.
    feature_columns = [
        c for c in columns.names if c not in roles and c not in excluded and c != join_key
    ]
    kept = _prepare_features(table, feature_columns, notes)
    for column in [*categorical, *monotone]:
        if column not in kept:
            raise DataError(
                f"{source}: column '{column}' cannot be a feature (see the columns left out)"
            )
    for column in monotone:
        if pa.types.is_string(kept[column].type):
            raise ConfigError(f"--monotone '{column}': holds text; only numbers can be monotone")
    if not kept:
        raise DataError(f"{source}: no feature columns left besides the label, ids and times")
    auto = [c for c, v in kept.items() if pa.types.is_string(v.type) and c not in categorical]
    categorical_all = set(categorical) | set(auto)
    if auto:
        notes.append(f"categorical (text columns): {', '.join(auto)}")

    all_empty = None
    for values in kept.values():
        empty = pc.is_null(values, nan_is_null=True)
        all_empty = empty if all_empty is None else pc.and_(all_empty, empty)
    assert all_empty is not None
    no_features = int(pc.sum(all_empty).as_py() or 0)
    keep = pc.and_(keep, pc.invert(all_empty))
    if unlabelled:
        notes.append(f"{unlabelled:,} row(s) without a label left out")
    if no_features:
        notes.append(f"{no_features:,} row(s) without any feature value left out")
    mask = np.asarray(_numpy(keep), dtype=bool)
    rows_written = int(mask.sum())
    if rows_written == 0:
        raise DataError(f"{source}: no row has both a label and a feature value")

    def kept_rows(values: Any) -> Any:
        return values.filter(pa.array(mask)) if rows_written < rows_read else values

    kept = {c: kept_rows(v) for c, v in kept.items()}
    entity_values = kept_rows(entity_values)
    label_values = kept_rows(label_values)
    event_us, known_us = event_us[mask], known_us[mask]
    if entity_column is not None:
        _check_unique(entity_values, event_us, entity_column, source)

    features = [
        Feature(c, _feast_type(v), c in categorical_all, _missing_share(v)) for c, v in kept.items()
    ]
    for feature in features:
        values = kept[feature.name]
        if (
            feature.categorical
            and pa.types.is_string(values.type)
            and rows_written >= 100
            and pc.count_distinct(values).as_py() == rows_written
        ):
            warnings.append(
                f"'{feature.name}' has a different value on every row: an id, not a feature? "
                f"pass --entity {feature.name} or --exclude {feature.name}"
            )
    worst = max(features, key=lambda f: f.missing_share)
    tolerance = None
    if worst.missing_share > DEFAULT_MISSING_SHARE:
        tolerance = min(1.0, math.ceil((worst.missing_share * 1.5 + 0.01) * 100) / 100)
        notes.append(
            f"'{worst.name}' is empty on {worst.missing_share:.1%} of the rows: "
            f"data_checks.max_missing_share set to {tolerance:g} (default "
            f"{DEFAULT_MISSING_SHARE:g})"
        )

    positive_mask = _positives(label_values, positive)
    windows, gap = _propose_windows(event_us, known_us, positive_mask, source)
    now_us = _epoch_us(datetime.now(UTC))
    unknown = int((known_us > now_us).sum())
    if unknown:
        warnings.append(
            f"{unknown:,} label(s) are not known yet (label_available_at after now); training "
            "leaves them out"
        )

    definitions = existing_definitions(settings.resolved_feature_repo, skip=layout.feature_module)
    entity = _choose_entity(definitions, layout, join_key, value_type, str(source))
    _check_names(definitions, layout, entity)
    if entity.reused_from is not None:
        notes.append(
            f"entity '{entity.name}' reused from feature_repo/"
            f"{entity.reused_from.replace('.', '/')}.py (same join key '{join_key}')"
        )
    if options.costs is None:
        warnings.append(
            "costs default to 1:1: edit 'costs' (false_negative, false_positive) in "
            f"{_shown(layout.project_dir / PROJECT_FILE, settings.root)}, or pass --costs FN,FP"
        )
    first_us, last_us = int(event_us.min()), int(event_us.max())
    ttl_days = max(1, (last_us - first_us) // US_PER_DAY + 2)

    # The output tables, with their types recorded for the generated data checks.
    stamp = pa.timestamp("us", tz="UTC")
    event_array = pa.array(event_us, type=pa.int64()).cast(stamp)
    features_table = pa.table(
        {
            join_key: entity_values,
            EVENT: event_array,
            CREATED: event_array,
            **kept,
        }
    )
    labels_table = pa.table(
        {
            join_key: entity_values,
            EVENT: event_array,
            label: label_values,
            AVAILABLE: pa.array(known_us, type=pa.int64()).cast(stamp),
        }
    )
    plan = _Plan(
        options=options,
        layout=layout,
        source_name=source.name,
        entity=entity,
        synthetic_ids=entity_column is None,
        synthetic_time=options.synthesize_time,
        label=label,
        positive=positive,
        label_values=_sorted(pc.unique(label_values).to_pylist()),
        delay_text=delay_text,
        features=features,
        auto_categorical=auto,
        windows=windows,
        gap_days=gap,
        ttl_days=ttl_days,
        missing_tolerance=tolerance,
        worst_missing=worst if tolerance is not None else None,
        costs=options.costs,
        monotone=monotone,
        first_day=_day(first_us),
        last_day=_day(last_us),
        command=_command(options, settings.root),
        feature_types={f.name: str(f.type) for f in features_table.schema},
        label_types={f.name: str(f.type) for f in labels_table.schema},
    )
    yaml_text = _project_yaml(plan)
    _check_spec(yaml_text, layout)
    texts: dict[Path, str] = {
        layout.feature_module: _feature_module(plan),
        layout.project_dir / PROJECT_FILE: yaml_text,
        **_tests(plan),
    }
    written = _write(layout, features_table, labels_table, texts)
    if layout.behaviour_test.exists() and layout.behaviour_test not in written:
        layout.behaviour_test.unlink()  # from an earlier init with --monotone
    return InitResult(
        project=name,
        source=source,
        rows_read=rows_read,
        rows_written=rows_written,
        entity=join_key,
        entity_object=entity.name,
        entity_reused_from=entity.reused_from,
        label=label,
        positive=positive,
        label_delay=delay_text,
        features=features,
        auto_categorical=auto,
        windows=windows,
        written=written,
        replaced=[p for p in replaced if p in written or p == layout.behaviour_test],
        notes=notes,
        warnings=warnings,
    )


def _candidates(names: Sequence[str], test: Any) -> str:
    found = [n for n in names if test(n)]
    return f"; candidates: {', '.join(found[:MAX_SHOWN])}" if found else ""


def _entity_values(table: pa.Table, column: str, source: Path) -> tuple[pa.ChunkedArray, str]:
    import pyarrow as pa
    import pyarrow.compute as pc

    values = table.column(column)
    where = f"{source}: --entity '{column}'"
    if values.null_count:
        raise DataError(f"{where}: {values.null_count:,} row(s) have no id")
    kind = values.type
    if pa.types.is_dictionary(kind):
        values, kind = values.cast(kind.value_type), kind.value_type
    if pa.types.is_integer(kind):
        return values.cast(pa.int64()), "INT64"
    if pa.types.is_floating(kind):
        if pc.all(pc.equal(pc.floor(values), values)).as_py():
            return values.cast(pa.int64()), "INT64"
        raise DataError(f"{where}: holds fractional numbers; ids are integers or text")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return values.cast(pa.string()), "STRING"
    raise DataError(f"{where}: holds {kind} values; ids are integers or text")


def _check_unique(entity: pa.ChunkedArray, event_us: np.ndarray, column: str, source: Path) -> None:
    """One row per entity and time; refuses naming the first repeat."""
    import numpy as np
    import pyarrow as pa

    codes = entity.combine_chunks()
    if pa.types.is_string(codes.type):
        codes = codes.dictionary_encode().indices
    ids = np.asarray(_numpy(codes), dtype=np.int64)
    order = np.lexsort((ids, event_us))
    repeats = (ids[order][1:] == ids[order][:-1]) & (event_us[order][1:] == event_us[order][:-1])
    if not repeats.any():
        return
    duplicated = np.zeros(len(ids), dtype=bool)
    duplicated[order[1:][repeats]] = True
    first = int(np.argmax(duplicated))
    key = entity[first].as_py()
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(event_us[first]))
    raise DataError(
        f"{source}: {int(duplicated.sum()):,} row(s) repeat an earlier ('{column}', time) "
        f"pair (e.g. {key!r} at {when.isoformat()}); one row per entity and time, or "
        "the join cannot tell which features a prediction saw"
    )


def _positives(label: pa.ChunkedArray, positive: Any) -> np.ndarray:
    import numpy as np

    values = _numpy(label)
    if positive is None:
        return np.asarray(values, dtype=bool) if values.dtype != object else values == 1
    result: np.ndarray = values == positive
    return result


def _check_spec(text: str, layout: _Layout) -> None:
    """The rendered project.yaml must read back as a valid spec (a bug here, not the user's)."""
    import yaml
    from pydantic import ValidationError

    try:
        ProjectSpec(**yaml.safe_load(text))
    except ValidationError as exc:  # pragma: no cover - a bug in the template
        raise AssertionError(
            f"generated {layout.project_dir / PROJECT_FILE} is invalid: {exc}"
        ) from exc


def _write(
    layout: _Layout, features: pa.Table, labels: pa.Table, texts: Mapping[Path, str]
) -> list[Path]:
    """Every file written under a temporary name and renamed, data first."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    written = []
    for path, table in ((layout.features_table, features), (layout.labels_table, labels)):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # dictionary pages only where they pay (text); numbers would be tried and dropped
        strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
        pq.write_table(table, partial, use_dictionary=strings)
        partial.replace(path)
        written.append(path)
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(path)
        written.append(path)
    return written
