"""Performance estimation before labels arrive: confidence-based performance estimation (CBPE).

* :mod:`.calibration` - :func:`fit_calibration` (isotonic on holdout rows, kept only when it
  lowers the cross-validated calibration error) and :func:`calibrate`.
* :mod:`.cbpe` - :func:`estimate_chunk` / :func:`estimate_chunks`: the expected confusion
  matrix, precision, recall, alert rate, cost per 1,000 and ROC-AUC of chunks of predictions,
  with sampling bands; :func:`reference_from_holdout` for the ROC-AUC band.

Pure numpy / scikit-learn, no I/O. Every estimate means "expected performance if P(y|x) is
unchanged".
"""

from modelops.core.estimation.calibration import Calibration, calibrate, fit_calibration
from modelops.core.estimation.cbpe import (
    LABEL,
    ChunkEstimate,
    Reference,
    estimate_chunk,
    estimate_chunks,
    reference_from_holdout,
)

__all__ = [
    "LABEL",
    "Calibration",
    "ChunkEstimate",
    "Reference",
    "calibrate",
    "estimate_chunk",
    "estimate_chunks",
    "fit_calibration",
    "reference_from_holdout",
]
