"""The gate's and the monitor's scoring on Spark: each partition scores its rows with the serving
scorers inside ``mapInPandas`` and reduces them to mergeable statistics
(:mod:`modelops.core.stats.mergeable`); the driver merges one small payload per partition, as
they arrive, and never holds rows.

* :func:`reduce_scored` - scores and statistics of a Spark DataFrame (a holdout, or the labelled
  predictions of a look-back window), overall and per segment.
* :func:`reduce_logged` - the monitor's labelled predictions (scores already logged), reduced
  the same way for the live-drop judgement.
* :func:`score_only` - the same scoring with nothing kept: the floor the benchmark compares the
  gate with.

Partitions' statistics merge on the executors (``treeReduce``), so the driver receives one.
A scorer is any picklable ``frame -> probabilities`` (the gate passes its models' serving
scorers); Spark ships it to the Python workers, which run the platform's interpreter
(:mod:`.session`).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelops.core.stats.interval import DEFAULT_MAX_ROWS
from modelops.core.stats.mergeable import DEFAULT_BINS, HoldoutStats, row_hashes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from pyspark.sql import DataFrame

Scorer = Callable[["pd.DataFrame"], "np.ndarray"]
BLOCK_ROWS = 200_000
"""Rows a worker scores (Arrow batch by batch) before reducing them at once: the reduction's
fixed cost per call is paid once per block, and a block's arrays stay small (a few MiB)."""
MISSING = "(missing)"
"""How a segment names rows without a value (as the single-machine gate does)."""


class SparkStatisticsError(RuntimeError):
    """Scoring or reducing a partition failed: the message is the worker's last line."""


def segment_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Each row's value of a segment column as the gate names it (string, missing named)."""
    return frame[column].astype("string").fillna(MISSING).to_numpy(dtype=object)


def _reducer(
    scorers: Mapping[str, Scorer],
    thresholds: Mapping[str, float],
    label: str,
    id_columns: Sequence[str],
    segments: Sequence[str],
    sizes: tuple[int, int],
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function each partition runs: score every batch, reduce, merge, yield one payload."""
    bins, k = sizes
    roles = list(scorers)
    ids, segment_columns = list(id_columns), list(segments)
    thresholds = dict(thresholds)
    scorers = dict(scorers)

    def reduce_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import numpy as np
        import pandas as pd

        merged: HoldoutStats | None = None
        block: list[dict[str, Any]] = []
        held = 0

        def flush() -> None:
            nonlocal merged, block, held
            if not block:
                return
            joined = {key: np.concatenate([b[key] for b in block]) for key in block[0]}
            stats = HoldoutStats.of(
                joined["label"],
                {role: joined[f"score:{role}"] for role in roles},
                thresholds,
                joined["hash"],
                {column: joined[f"segment:{column}"] for column in segment_columns},
                bins=bins,
                k=k,
            )
            merged = stats if merged is None else merged.merge(stats)
            block, held = [], 0

        for batch in batches:
            if batch.empty:
                continue
            block.append(
                {"label": batch[label].to_numpy(), "hash": row_hashes(batch, ids)}
                | {f"score:{role}": scorers[role](batch) for role in roles}
                | {f"segment:{c}": segment_values(batch, c) for c in segment_columns}
            )
            held += len(batch)
            if held >= BLOCK_ROWS:
                flush()
        flush()
        if merged is not None:
            yield pd.DataFrame({"payload": [pickle.dumps(merged, protocol=5)]})

    return reduce_partition


def reduce_scored(
    frame: DataFrame,
    scorers: Mapping[str, Scorer],
    thresholds: Mapping[str, float],
    *,
    label: str,
    id_columns: Sequence[str],
    segments: Sequence[str] = (),
    bins: int = DEFAULT_BINS,
    sample_rows: int = DEFAULT_MAX_ROWS,
) -> HoldoutStats:
    """Score ``frame`` with each of ``scorers`` (by role, the first the candidate) and reduce
    it to :class:`~modelops.core.stats.mergeable.HoldoutStats`: per-model histograms at each
    model's threshold, overall and per value of each ``segments`` column, and the bottom-k
    sample of ``sample_rows`` rows per class keyed by the hash of ``id_columns``.

    Raises:
        ValueError: a named column is missing, or the frame has no rows.
        SparkStatisticsError: a partition failed (bad labels or scores, a scorer error).
    """
    needed = [label, *id_columns, *segments]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the rows to score")
    if not scorers:
        raise ValueError("no scorer given")
    function = _reducer(scorers, thresholds, label, id_columns, segments, (bins, sample_rows))
    payloads = frame.mapInPandas(function, schema="payload binary").rdd
    parts = payloads.map(lambda row: pickle.loads(row["payload"]))
    try:
        merged: HoldoutStats = _failing_in_one_line(lambda: parts.treeReduce(_merge, depth=2))
    except ValueError as exc:  # pyspark: "Cannot reduce empty RDD"
        raise ValueError("no rows to score") from exc
    return merged


def _merge(a: HoldoutStats, b: HoldoutStats) -> HoldoutStats:
    return a.merge(b)


class LoggedScore:
    """A "scorer" that reads a score already logged in the rows (the prediction log's
    ``score``): what the monitor reduces, since the serving version scored them."""

    def __init__(self, column: str) -> None:
        self.column = column

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.column].to_numpy(dtype="float64")


def reduce_logged(
    frame: DataFrame,
    threshold: float,
    *,
    label: str,
    id_columns: Sequence[str],
    score: str = "score",
    role: str = "live",
    sample_rows: int = DEFAULT_MAX_ROWS,
) -> HoldoutStats:
    """The labelled predictions of a look-back window (their logged ``score`` and ``label``)
    reduced to mergeable statistics under ``role``: what the monitor's live-drop judgement
    (:func:`~modelops.core.live_judgement.judge_drop_merged`) reads on Spark."""
    if score not in frame.columns:
        raise ValueError(f"column {score!r} is not in the labelled predictions")
    return reduce_scored(
        frame.where(frame[score].isNotNull()),
        {role: LoggedScore(score)},
        {role: threshold},
        label=label,
        id_columns=id_columns,
        sample_rows=sample_rows,
    )


def score_only(frame: DataFrame, scorers: Mapping[str, Scorer]) -> int:
    """Score every row of ``frame`` with each scorer, keeping nothing; the rows scored."""
    roles = list(scorers)
    scorers = dict(scorers)

    def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        rows = 0
        for batch in batches:
            for role in roles:
                scorers[role](batch)
            rows += len(batch)
        yield pd.DataFrame({"rows": [rows]})

    counts = frame.mapInPandas(score_partition, "rows long")
    return int(_failing_in_one_line(lambda: sum(r["rows"] for r in counts.collect())))


def _failing_in_one_line(job: Callable[[], Any]) -> Any:
    """Run a Spark action; a worker's failure becomes one line (its exception's last line)."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PythonException

    try:
        return job()
    except (PythonException, Py4JJavaError) as exc:
        text = str(exc)
        lines = [line.strip() for line in text.splitlines() if "Error" in line or "error" in line]
        raise SparkStatisticsError(lines[-1] if lines else type(exc).__name__) from None
