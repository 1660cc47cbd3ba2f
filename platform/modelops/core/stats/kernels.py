"""One model's metric on many bootstrap resamples at once, and the gain between two models.

A resample is a set of row positions; :class:`Kernel` evaluates it as the multiset of its rows
(row multiplicities), so a resample's ROC-AUC comes from the tie groups of the scores sorted
once, never from re-sorting. :class:`Gain` is the statistic the bootstrap evaluates. The
jackknife that BCa needs (the metric without each row) is computed in linear time from prefix
sums. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelops.core.metrics import THRESHOLD_METRICS, CostModel, checked_order, tie_groups

if TYPE_CHECKING:
    import numpy as np


def _sorted_counts(rows: np.ndarray, rank: np.ndarray, n: int) -> np.ndarray:
    """How many rows of each resample fall at each ``rank[row]`` in ``[0, n)``: with ranks
    the positions in score order, each row's multiplicity in that order: (resamples, n)."""
    import numpy as np

    b = rows.shape[0]
    flat = (rank[rows] + (np.arange(b) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n)


def _decision_metric(
    metric: str, cells: np.ndarray, rows: int | np.ndarray, costs: CostModel | None
) -> np.ndarray:
    """A decision metric from confusion counts ``cells[..., (TN, FP, FN, TP)]`` of ``rows``."""
    import numpy as np

    tn, fp, fn, tp = (cells[..., i] for i in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        if metric == "precision":
            return precision
        if metric == "recall":
            return recall
        if metric == "f1":
            total = precision + recall
            return np.where(total > 0, 2 * precision * recall / total, 0.0)
        if metric == "false_positive_rate":
            return np.where(fp + tn > 0, fp / (fp + tn), 0.0)
    assert costs is not None
    return np.asarray(1000.0 * (fn * costs.false_negative + fp * costs.false_positive) / rows)


class Kernel:
    """One model's ``metric`` on resamples of ``n`` rows, fast.

    :meth:`resampled` takes resamples as row positions, shape (resamples, m), and evaluates
    each as the multiset of its rows (ties among them in row order), with the definitions
    of :func:`modelops.core.metrics.classification_metrics`, in time linear in ``n`` and
    without sorting. :meth:`without` gives the metric on all rows but one (the jackknife BCa
    needs for its acceleration) for each removed row, in constant time per row, from
    prefix sums: the jackknife would otherwise cost ``n`` full evaluations.
    """

    def __init__(
        self,
        metric: str,
        y: np.ndarray,
        s: np.ndarray,
        threshold: float | None,
        costs: CostModel | None,
        order: Any | None = None,
    ) -> None:
        import numpy as np

        self.metric, self.costs, self.n = metric, costs, len(y)
        self._left_out: np.ndarray | None = None
        n = self.n
        yf = y.astype(np.float64)
        if metric in ("roc_auc", "pr_auc", "ece"):
            order = checked_order(s, order)
            self.rank = np.empty(n, dtype=np.intp)
            self.rank[order] = np.arange(n)
            self.sorted_y, self.sorted_s = yf[order], s[order]
            self.starts = tie_groups(self.sorted_s)
            sizes = np.diff(np.r_[self.starts, n])
            self.group_of = np.repeat(np.arange(len(self.starts)), sizes)
            # Resamples only need the columns of positive rows: for each (in score order),
            # where its tie group starts and ends, among all rows and among positive rows.
            self.pos_cols = np.flatnonzero(self.sorted_y == 1)
            self.lo = self.starts[self.group_of[self.pos_cols]]
            self.hi = self.lo + sizes[self.group_of[self.pos_cols]]
            self.pos_lo = np.searchsorted(self.pos_cols, self.lo)
            self.pos_hi = np.searchsorted(self.pos_cols, self.hi)
            # Ranking metrics read a resample's running counts only where tie groups of
            # positive rows start and end, and its copies of each positive row: the rows in
            # score order fall into bins cut at those places (each positive row a bin of its
            # own), so a resample is counted into a few bins per positive row, not n columns.
            edges = np.unique(np.r_[0, self.lo, self.hi, self.pos_cols, self.pos_cols + 1, n])
            self.bins = len(edges) - 1
            self.bin_of_row = np.searchsorted(edges, self.rank, side="right") - 1
            self.pos_bin = np.searchsorted(edges, self.pos_cols)
            self.lo_edge = np.searchsorted(edges, self.lo)
            self.hi_edge = np.searchsorted(edges, self.hi)
        elif metric in ("log_loss", "brier"):
            if metric == "log_loss":
                clipped = np.clip(s, 1e-15, 1 - 1e-15)
                self.per_row = -np.log(np.where(y == 1, clipped, 1 - clipped))
            else:
                self.per_row = np.square(s - yf)
        else:
            assert threshold is not None
            self.cell = 2 * y.astype(np.intp) + (s >= threshold)  # 0 TN, 1 FP, 2 FN, 3 TP

    def resampled(self, rows: np.ndarray) -> np.ndarray:
        import numpy as np

        b, m = rows.shape
        if self.metric in ("log_loss", "brier"):
            return np.asarray(self.per_row[rows].mean(axis=1))
        if self.metric in THRESHOLD_METRICS:
            flat = (self.cell[rows] + 4 * np.arange(b)[:, None]).ravel()
            cells = np.bincount(flat, minlength=4 * b).reshape(b, 4).astype(np.float64)
            return _decision_metric(self.metric, cells, m, self.costs)
        if self.metric == "ece":
            counts = _sorted_counts(rows, self.rank, self.n)
            return _weighted_ece(counts.astype(np.float64), self.sorted_s, self.sorted_y, m)
        return self._ranking(_sorted_counts(rows, self.bin_of_row, self.bins))

    def weighted(self, weights: np.ndarray) -> np.ndarray:
        """The metric on resamples given as row weights (integer multiplicities), shape
        (resamples, n): a Poisson bootstrap's replicates, whose sizes differ. The same values
        as :meth:`resampled` on rows repeated by their weights."""
        import numpy as np

        w = np.asarray(weights)
        b, n = w.shape
        sizes = w.sum(axis=1, dtype=np.int64)
        if self.metric in ("log_loss", "brier"):
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.asarray((w @ self.per_row) / sizes)
        if self.metric in THRESHOLD_METRICS:
            flat = (self.cell[None, :] + 4 * np.arange(b)[:, None]).ravel()
            cells = np.bincount(flat, weights=w.ravel(), minlength=4 * b).reshape(b, 4)
            return _decision_metric(self.metric, cells, sizes, self.costs)
        if self.metric == "ece":
            return np.array([self.resampled(np.repeat(np.arange(n), row)[None, :])[0] for row in w])
        flat = (self.bin_of_row[None, :] + self.bins * np.arange(b)[:, None]).ravel()
        binned = np.bincount(flat, weights=w.ravel(), minlength=b * self.bins)
        return self._ranking(binned.reshape(b, self.bins).astype(np.int64))

    def _ranking(self, binned: np.ndarray) -> np.ndarray:
        """ROC-AUC or average precision from multiplicities, summed over positive rows only.

        Per tie group, as :func:`modelops.core.metrics.classification_metrics` counts them;
        every positive row of a group shares its group's terms, so one running count over all
        rows and one over positive rows suffice. ``binned``: a resample's rows counted into
        the bins of ``__init__`` (a running count at a bin edge is the count of rows before it).
        """
        import numpy as np

        b = binned.shape[0]
        rows_before = np.zeros((b, self.bins + 1), dtype=np.int64)  # at each bin edge
        np.cumsum(binned, axis=1, out=rows_before[:, 1:])
        drawn = binned[:, self.pos_bin]  # copies of each positive row
        pos_before = np.zeros((b, len(self.pos_cols) + 1), dtype=np.int64)
        np.cumsum(drawn, axis=1, out=pos_before[:, 1:])
        total, positives = rows_before[:, -1:], pos_before[:, -1:]
        below_all, below_pos = rows_before[:, self.lo_edge], pos_before[:, self.pos_lo]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.metric == "roc_auc":
                group_all = rows_before[:, self.hi_edge] - below_all
                group_pos = pos_before[:, self.pos_hi] - below_pos
                negatives_under = (below_all - below_pos) + 0.5 * (group_all - group_pos)
                negatives = total - positives
                value = (drawn * negatives_under).sum(axis=1) / (positives * negatives)[:, 0]
            else:
                flagged = total - below_all  # rows scoring at least the group's score
                tp = positives - below_pos
                precision = np.divide(tp, flagged, out=np.zeros(flagged.shape), where=drawn > 0)
                value = (drawn * precision).sum(axis=1) / positives[:, 0]
        one_class = (positives[:, 0] == 0) | (positives[:, 0] == total[:, 0])
        return np.where(one_class, np.nan, value)

    def without(self, removed: np.ndarray) -> np.ndarray:
        """The metric on every row but ``removed[i]``, for each i."""
        if self._left_out is None:
            self._left_out = self._leave_one_out()
        return self._left_out[removed]

    def _leave_one_out(self) -> np.ndarray:
        """The metric without each row in turn, by row: linear time in all."""
        import numpy as np

        n, metric = self.n, self.metric
        if metric in ("log_loss", "brier"):
            return np.asarray((self.per_row.sum() - self.per_row) / (n - 1))
        if metric in THRESHOLD_METRICS:
            cells = np.bincount(self.cell, minlength=4).astype(np.float64)
            left = cells[None, :] - (self.cell[:, None] == np.arange(4))
            return _decision_metric(metric, left, n - 1, self.costs)
        at = self.rank  # each row's position in score order
        if metric == "ece":
            return _ece_without(self.sorted_s, self.sorted_y, at)
        return _ranking_without(metric, self.sorted_y, self.starts, self.group_of[at], at)


def _ranking_without(
    metric: str, sorted_y: np.ndarray, starts: np.ndarray, group: np.ndarray, at: np.ndarray
) -> np.ndarray:
    """ROC-AUC or average precision of all rows but the one at each sorted position ``at``.

    Removing a row of group h changes only its own group's counts and, for the rows above
    or below it, cumulative counts by one, so each value is a prefix/suffix sum away.
    """
    import numpy as np

    n = len(sorted_y)
    pos = np.add.reduceat(sorted_y, starts)
    neg = np.diff(np.r_[starts, n]) - pos
    total_pos, total_neg = pos.sum(), neg.sum()
    is_pos = sorted_y[at] == 1
    left_pos = total_pos - is_pos
    left_neg = total_neg - ~is_pos
    undefined = (left_pos == 0) | (left_neg == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "roc_auc":
            neg_under = np.cumsum(neg) - 0.5 * neg
            pos_over = total_pos - np.cumsum(pos) + 0.5 * pos
            area = (pos * neg_under).sum()
            area = area - np.where(is_pos, neg_under[group], pos_over[group])
            values = area / (left_pos * left_neg)
        else:
            tp = total_pos - np.cumsum(pos) + pos  # positives scoring >= each group
            flagged = n - np.cumsum(pos + neg) + pos + neg

            def ratio(a: Any, b: Any) -> Any:
                return np.divide(a, b, out=np.zeros(np.shape(b)), where=b > 0)

            term = pos * ratio(tp, flagged)
            above = np.cumsum(term[::-1])[::-1] - term  # groups above each group
            # groups below the removed row's lose one flagged row (and one TP if positive)
            below_if_pos = np.r_[0, np.cumsum(pos * ratio(tp - 1, flagged - 1))[:-1]]
            below_if_neg = np.r_[0, np.cumsum(pos * ratio(tp, flagged - 1))[:-1]]
            h = group
            own = np.where(
                is_pos,
                (pos[h] - 1) * ratio(tp[h] - 1, flagged[h] - 1),
                pos[h] * ratio(tp[h], flagged[h] - 1),
            )
            below = np.where(is_pos, below_if_pos[h], below_if_neg[h])
            values = (above[h] + own + below) / left_pos
    return np.where(undefined, np.nan, values)


def _weighted_ece(
    counts: np.ndarray, sorted_s: np.ndarray, sorted_y: np.ndarray, m: int, bins: int = 10
) -> np.ndarray:
    """Equal-count ECE of resamples given as multiplicities of rows in score order."""
    import numpy as np

    b, n = counts.shape
    chunks = min(bins, m)
    size, extra = divmod(m, chunks)
    sizes = np.full(chunks, size)
    sizes[:extra] += 1
    bounds = np.cumsum(sizes)[:-1]  # positions (in the expanded resample) where chunks split
    upto = np.cumsum(counts, axis=1)
    sum_s = np.cumsum(counts * sorted_s, axis=1)
    sum_y = np.cumsum(counts * sorted_y, axis=1)
    # The row holding expanded position p is the first with upto >= p; rows are made disjoint
    # by an offset of m + 1 each, so one searchsorted serves every resample.
    offset = (np.arange(b) * (m + 1))[:, None]
    at = np.searchsorted((upto + offset).ravel(), (bounds[None, :] + offset).ravel())
    at = at.reshape(b, len(bounds)) - (np.arange(b) * n)[:, None]
    rows_idx = np.arange(b)[:, None]
    before = upto[rows_idx, at] - counts[rows_idx, at]
    partial = bounds[None, :] - before  # copies of row `at` inside the earlier chunk
    cut_s = sum_s[rows_idx, at] - counts[rows_idx, at] * sorted_s[at] + partial * sorted_s[at]
    cut_y = sum_y[rows_idx, at] - counts[rows_idx, at] * sorted_y[at] + partial * sorted_y[at]
    edges_s = np.concatenate([np.zeros((b, 1)), cut_s, sum_s[:, -1:]], axis=1)
    edges_y = np.concatenate([np.zeros((b, 1)), cut_y, sum_y[:, -1:]], axis=1)
    gaps = np.diff(edges_s, axis=1) - np.diff(edges_y, axis=1)
    return np.asarray(np.abs(gaps).sum(axis=1) / m)


def _ece_without(sorted_s: np.ndarray, sorted_y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Equal-count ECE of all rows but the one at each sorted position ``at``."""
    import numpy as np

    n = len(sorted_s)
    m = n - 1
    chunks = min(10, m)
    size, extra = divmod(m, chunks)
    sizes = np.full(chunks, size)
    sizes[:extra] += 1
    edges = np.r_[0, np.cumsum(sizes)][None, :]  # chunk edges in the shortened array
    sum_s = np.r_[0.0, np.cumsum(sorted_s)]
    sum_y = np.r_[0.0, np.cumsum(sorted_y)]
    q = at[:, None]
    # the first p rows of the shortened array: the first p, or p + 1 less the removed one
    past = edges > q
    upto_s = np.where(past, sum_s[np.minimum(edges + 1, n)] - sorted_s[q], sum_s[edges])
    upto_y = np.where(past, sum_y[np.minimum(edges + 1, n)] - sorted_y[q], sum_y[edges])
    gaps = np.diff(upto_s, axis=1) - np.diff(upto_y, axis=1)
    return np.asarray(np.abs(gaps).sum(axis=1) / m)


def jackknifed(rows: np.ndarray, n: int) -> np.ndarray | None:
    """The left-out row of each resample when all are "every row but one", else None.

    n - 1 strictly increasing positions in ``[0, n)`` can only be ``0..n-1`` less one, so
    this recognises jackknife resamples (as scipy's BCa draws them) whoever sends them.
    """
    import numpy as np

    if n < 2 or rows.shape[1] != n - 1:
        return None
    if rows[:, 0].min() < 0 or rows[:, -1].max() >= n or not (rows[:, 1:] > rows[:, :-1]).all():
        return None
    return np.asarray(n * (n - 1) // 2 - rows.sum(axis=1, dtype=np.int64))


class Fixed:
    """A reference whose metric is ``value`` on every resample and without every row: a known
    value (the gate-time metric) that one model's live metric is compared with."""

    def __init__(self, value: float, n: int) -> None:
        self.value, self.n = value, n

    def resampled(self, rows: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.full(np.atleast_2d(rows).shape[0], self.value)

    def without(self, removed: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.full(len(removed), self.value)

    def weighted(self, weights: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.full(np.atleast_2d(weights).shape[0], self.value)


class Gain:
    """The statistic the bootstrap evaluates: ``sign * (candidate - reference)`` on resamples
    given as row positions, shape (resamples, rows) or (rows,)."""

    def __init__(self, candidate: Kernel, reference: Kernel | Fixed, sign: int) -> None:
        self.candidate, self.reference, self.sign = candidate, reference, sign

    def __call__(self, rows: np.ndarray, axis: int = -1) -> np.ndarray:
        import numpy as np

        batch = np.atleast_2d(rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            removed = jackknifed(batch, self.candidate.n)
            if removed is not None:  # scipy's own BCa jackknife, should anyone call it
                values = self.sign * (
                    self.candidate.without(removed) - self.reference.without(removed)
                )
            else:
                values = self.sign * (
                    self.candidate.resampled(batch) - self.reference.resampled(batch)
                )
        return values if rows.ndim == 2 else values[0]

    def weighted(self, weights: np.ndarray) -> np.ndarray:
        """The gain on resamples given as row weights, shape (resamples, rows)."""
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(
                self.sign * (self.candidate.weighted(weights) - self.reference.weighted(weights))
            )

    def jackknife(self) -> np.ndarray:
        """The gain without each row in turn, by row (what scipy's BCa jackknife computes)."""
        import numpy as np

        everyone = np.arange(self.candidate.n)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(
                self.sign * (self.candidate.without(everyone) - self.reference.without(everyone))
            )
