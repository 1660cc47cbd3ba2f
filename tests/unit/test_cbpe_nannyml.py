"""modelops' CBPE against nannyml 0.13.1's on the same data (tests/fixtures/nannyml/).

The fixture was computed once by ``tests/fixtures/nannyml/make_reference.py`` in a throwaway
virtual environment (nannyml is not a dependency); this test rebuilds the same rows with that
script's numpy-only :func:`make_data` and checks the digest first, so a changed random stream
fails here rather than comparing different data.

Tolerances, and why:

* calibration choice: equal (both keep isotonic on these scores: a cross-validated ECE drop);
* expected confusion counts (``1e-6`` rows), precision, recall (``1e-9``) and cost per 1,000
  (``1e-6``): the same sums over the same isotonic fit (scikit-learn's, on the same holdout);
  only float summation order differs;
* ROC-AUC ``1e-6``: nannyml rounds its cumulative expected TP/FP to 5 decimals before the
  trapezoid (``np.round(tps, 5)``), on cumulative sums of thousands, so up to ~1e-8 moves;
* ROC-AUC standard error ``2e-3`` relative, on nannyml's term (the positives' component; ours
  adds the negatives', DeLong's, since nannyml's band alone under-covers): the same formula,
  but the scores tie (3 decimals) and each positive's rank among equal scores follows the
  sort: nannyml's ``np.argsort`` is quicksort (unstable), ours is stable; nannyml also drops a
  positive at rank 0. Measured
  0.7e-3 relative, i.e. 8e-6 on a 0.012 error, 1.6e-5 on the band's edge.

Not compared: nannyml's business-value sampling error, which is reference-based
(holdout standard deviation / sqrt(n)); ours is the Poisson-binomial variance of this chunk's
expected counts (see :mod:`modelops.core.estimation.cbpe`).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

from modelops.core.estimation import estimate_chunks, fit_calibration, reference_from_holdout
from modelops.core.metrics import CostModel

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nannyml"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "nannyml_make_reference", FIXTURES / "make_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cbpe_matches_nannyml_on_the_fixture() -> None:
    script = _script()
    fixture = json.loads((FIXTURES / "cbpe_reference.json").read_text())
    data = script.make_data()
    assert script.digest(data) == fixture["data_sha256"], "the generated data changed"

    calibration = fit_calibration(data["reference_scores"], data["reference_labels"])
    assert (calibration.method == "isotonic") == fixture["needs_calibration"] is True
    reference = reference_from_holdout(data["reference_scores"], data["reference_labels"])
    costs = CostModel(fixture["cost_false_negative"], fixture["cost_false_positive"])
    ours = estimate_chunks(
        data["analysis_scores"],
        data["analysis_timestamps"],
        size=fixture["chunk_rows"],
        calibration=calibration,
        threshold=fixture["threshold"],
        costs=costs,
        reference=reference,
        z=1.0,
    )
    theirs = fixture["chunks"]
    assert len(ours) == len(theirs) == 10
    for e, n in zip(ours, theirs, strict=True):
        assert e.rows == n["rows"]
        tp, fp, fn = n["true_positive"], n["false_positive"], n["false_negative"]
        assert e.expected_positives == pytest.approx(tp + fn, abs=1e-6)
        assert e.alert_rate * e.rows == pytest.approx(tp + fp, abs=1e-6)
        assert e.precision == pytest.approx(n["precision"], abs=1e-9)
        assert e.recall == pytest.approx(n["recall"], abs=1e-9)
        # nannyml's value matrix holds minus the costs; its total / rows * 1000 is our cost
        assert e.cost_per_1000 == pytest.approx(-1000 * n["business_value"] / e.rows, abs=1e-6)
        assert e.roc_auc == pytest.approx(n["roc_auc"], abs=1e-6)
        # nannyml's standard error is the positive-side term of ours
        nannyml_term = reference.auc_component_sd / math.sqrt(reference.positive_rate * e.rows)
        assert nannyml_term == pytest.approx(n["roc_auc_sampling_error"], rel=2e-3)
        assert e.roc_auc_high is not None
        se = e.roc_auc_high - e.roc_auc  # z = 1, far from the clip at 1
        assert se == pytest.approx(reference.roc_auc_standard_error(e.rows))
        assert se > n["roc_auc_sampling_error"]
    # the covariate-shifted half moves the estimate (more rows flagged), as it moved nannyml's
    assert ours[-1].alert_rate > 2 * ours[0].alert_rate
