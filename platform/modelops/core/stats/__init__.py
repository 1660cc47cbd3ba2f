"""The statistics behind promotion decisions: how sure is the gate that a candidate is better?

The gate scores a candidate and the production model on the same holdout rows. What it decides
on is the candidate's *gain* on a metric, ``metric(candidate) - metric(reference)`` with the
sign flipped for lower-is-better metrics (log loss, Brier, calibration error, false-positive
rate, cost), so a positive gain always means the candidate is better. Its uncertainty comes from
a paired bootstrap: every resample draws holdout rows with replacement and scores *both* models
on the same drawn rows.

* :mod:`.interval` - :func:`paired_interval`, the BCa interval of the gain
  (``scipy.stats.bootstrap``), with a percentile fallback, for ranking, probability and
  threshold metrics; :func:`paired_bootstrap`, the same with the resampled gains.
* :mod:`.kernels` - one model's metric on many resamples at once, as row multiplicities (a
  resample's ROC-AUC comes from the tie groups of the scores sorted once, never from
  re-sorting), and the linear-time jackknife.
* :mod:`.bca` - the BCa bounds, as scipy computes them, from the distribution and jackknife.
* :mod:`.decide` - :func:`decide`, non-inferiority or superiority against a margin, in one
  sentence; :func:`bootstrap_pvalue` and :func:`holm`, one-sided p-values from the bootstrap
  distribution and the Holm-Bonferroni step-down.
* :mod:`.segments` - :func:`segment_decisions`, per-segment bootstraps, Holm-corrected: which
  segments got worse.

Pure functions, no I/O.
"""

from modelops.core.stats.decide import (
    Decision,
    DecisionKind,
    Hypothesis,
    bootstrap_pvalue,
    decide,
    holm,
    holm_adjusted,
)
from modelops.core.stats.interval import (
    DEFAULT_MAX_ROWS,
    THRESHOLD_FREE,
    Interval,
    PairedBootstrap,
    metric_interval,
    paired_bootstrap,
    paired_interval,
    stratified_subsample,
)
from modelops.core.stats.segments import (
    SEGMENT_RESAMPLES,
    SegmentReport,
    SegmentResult,
    segment_decisions,
)

__all__ = [
    "DEFAULT_MAX_ROWS",
    "SEGMENT_RESAMPLES",
    "THRESHOLD_FREE",
    "Decision",
    "DecisionKind",
    "Hypothesis",
    "Interval",
    "PairedBootstrap",
    "SegmentReport",
    "SegmentResult",
    "bootstrap_pvalue",
    "decide",
    "holm",
    "holm_adjusted",
    "metric_interval",
    "paired_bootstrap",
    "paired_interval",
    "segment_decisions",
    "stratified_subsample",
]
