"""CBPE's formulas against small cases computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from modelops.core.estimation import (
    LABEL,
    Calibration,
    calibrate,
    estimate_chunk,
    estimate_chunks,
    reference_from_holdout,
)
from modelops.core.metrics import CostModel

IDENTITY = Calibration(method="identity", ece_raw=0.0, ece_calibrated=0.0, rows=1, positives=1)
COSTS = CostModel(false_negative=10.0, false_positive=1.0)


def test_four_rows_by_hand() -> None:
    # q = [.1, .4, .6, .9], threshold .5: flagged .6 and .9.
    # E[TP] = .6 + .9 = 1.5; E[FP] = .4 + .1 = .5; E[FN] = .1 + .4 = .5; E[TN] = 1.5.
    # precision = 1.5 / 2 = .75; recall = 1.5 / (1.5 + .5) = .75; alert rate 2 / 4.
    # cost per 1,000 = 1000 * (.5 * 10 + .5 * 1) / 4 = 1375.
    # Var[FN] = .1*.9 + .4*.6 = .33; Var[FP] = .6*.4 + .9*.1 = .33;
    # SE = 1000 / 4 * sqrt(100 * .33 + 1 * .33) = 250 * sqrt(33.33); z = 1: high = 1375 + SE,
    # low = max(0, 1375 - 1443.3) = 0.
    # ROC from the top: (0,0) (.05,.45) (.25,.75) (.55,.95) (1,1); trapezoids
    # .05*.45/2 + .2*1.2/2 + .3*1.7/2 + .45*1.95/2 = .01125 + .12 + .255 + .43875 = .825.
    e = estimate_chunk(
        [0.6, 0.1, 0.9, 0.4], calibration=IDENTITY, threshold=0.5, costs=COSTS, z=1.0
    )
    se = 250 * math.sqrt(33.33)
    assert e.rows == 4
    assert e.expected_positives == pytest.approx(2.0)
    assert e.alert_rate == 0.5
    assert e.precision == pytest.approx(0.75)
    assert e.recall == pytest.approx(0.75)
    assert e.cost_per_1000 == pytest.approx(1375.0)
    assert e.cost_per_1000_high == pytest.approx(1375.0 + se)
    assert e.cost_per_1000_low == 0.0
    assert e.roc_auc == pytest.approx(0.825)
    assert e.roc_auc_low is None and e.roc_auc_high is None  # no reference given
    assert e.label == LABEL == "expected performance if P(y|x) is unchanged"


def test_ties_and_the_threshold_itself_are_flagged() -> None:
    # q = [.2, .5, .5, .8], threshold .5: a score equal to the threshold is flagged (>=),
    # so 3 rows: E[TP] = .5 + .5 + .8 = 1.8, E[FP] = 1.2, E[FN] = .2.
    # precision = 1.8 / 3 = .6; recall = 1.8 / 2 = .9; cost = 1000 * (.2*10 + 1.2*1) / 4 = 800.
    # Var[FN] = .2*.8 = .16; Var[FP] = .25 + .25 + .16 = .66;
    # SE = 250 * sqrt(100*.16 + .66) = 250 * sqrt(16.66).
    # ROC, the tied pair one group: (0,0) (.1,.4) (.6,.9) (1,1):
    # .1*.4/2 + .5*1.3/2 + .4*1.9/2 = .02 + .325 + .38 = .725.
    e = estimate_chunk(
        [0.5, 0.2, 0.8, 0.5], calibration=IDENTITY, threshold=0.5, costs=COSTS, z=2.0
    )
    assert e.alert_rate == 0.75
    assert e.precision == pytest.approx(0.6)
    assert e.recall == pytest.approx(0.9)
    assert e.cost_per_1000 == pytest.approx(800.0)
    se = 250 * math.sqrt(16.66)
    assert e.cost_per_1000_low == pytest.approx(max(0.0, 800.0 - 2 * se))
    assert e.cost_per_1000_high == pytest.approx(800.0 + 2 * se)
    assert e.roc_auc == pytest.approx(0.725)


def test_nothing_flagged_and_certain_scores() -> None:
    # q = [0, 0, 1], threshold .9 flags the 1 only: E[TP] = 1, E[FP] = 0, E[FN] = 0; every
    # variance is 0 so the band is the point; ROC-AUC 1.
    e = estimate_chunk([0.0, 0.0, 1.0], calibration=IDENTITY, threshold=0.9, costs=COSTS)
    assert (e.precision, e.recall, e.cost_per_1000, e.roc_auc) == (1.0, 1.0, 0.0, 1.0)
    assert e.cost_per_1000_low == e.cost_per_1000_high == 0.0
    # threshold above every score: nothing flagged, precision undefined; E[FN] = .3 + .3.
    # cost = 1000 * .6 * 10 / 2 = 3000.
    e = estimate_chunk([0.3, 0.3], calibration=IDENTITY, threshold=0.5, costs=COSTS)
    assert e.precision is None and e.alert_rate == 0.0
    assert e.recall == pytest.approx(0.0)
    assert e.cost_per_1000 == pytest.approx(3000.0)
    # all q = 0: no expected positive, recall and ROC-AUC undefined.
    e = estimate_chunk([0.0, 0.0], calibration=IDENTITY, threshold=0.5, costs=COSTS)
    assert e.recall is None and e.roc_auc is None


def test_expected_roc_auc_is_the_weighted_mann_whitney_of_scikit_learn() -> None:
    # Each row is a positive with weight q and a negative with weight 1 - q: the expected
    # ROC-AUC is scikit-learn's ROC-AUC of the rows doubled with those weights (ties included).
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    s = np.round(rng.beta(2, 5, size=400), 2)  # many ties
    e = estimate_chunk(s, calibration=IDENTITY, threshold=0.3, costs=COSTS)
    expected = roc_auc_score(
        np.r_[np.ones(400), np.zeros(400)], np.r_[s, s], sample_weight=np.r_[s, 1 - s]
    )
    assert e.roc_auc == pytest.approx(expected, abs=1e-12)
    # and the expected counts are the sums over rows, threshold included (>=)
    flagged = s >= 0.3
    assert e.alert_rate == flagged.mean()
    assert e.precision == pytest.approx(s[flagged].mean())
    assert e.recall == pytest.approx(s[flagged].sum() / s.sum())


def test_isotonic_map_interpolates_and_clips() -> None:
    # knots (.2, .1) and (.8, .5): .5 is halfway -> .3; beyond the ends the end values.
    cal = Calibration(
        method="isotonic", x=[0.2, 0.8], y=[0.1, 0.5], ece_raw=0.2, ece_calibrated=0.1,
        rows=10, positives=3,
    )  # fmt: skip
    assert calibrate(cal, [0.0, 0.5, 1.0]).tolist() == pytest.approx([0.1, 0.3, 0.5])
    # the estimate uses q, but flags on the raw score: scores [.5, 1.0], threshold .9 flags
    # the 1.0 (q = .5): E[TP] = .5, E[FP] = .5, E[FN] = .3; cost = 1000*(3 + .5)/2 = 1750.
    e = estimate_chunk([0.5, 1.0], calibration=cal, threshold=0.9, costs=COSTS)
    assert e.precision == pytest.approx(0.5)
    assert e.cost_per_1000 == pytest.approx(1750.0)


def test_reference_standard_error_by_hand() -> None:
    # labels [0,1,0,1,0] by ascending score: positives at positions 1 and 3 with 0 and 1
    # positives before them -> 1 and 2 negatives below, of 3: shares 1/3, 2/3; sd = 1/6.
    # negatives at positions 0, 2, 4 have 2, 1, 0 positives above, of 2: 1, .5, 0;
    # sd = sqrt((.25 + 0 + .25) / 3) = sqrt(1/6). positive rate r = .4.
    # SE on 10 rows = sqrt((1/36) / (.4 * 10) + (1/6) / (.6 * 10)) = sqrt(1/144 + 1/36)
    # = sqrt(5) / 12.
    ref = reference_from_holdout([0.1, 0.2, 0.3, 0.4, 0.5], [0, 1, 0, 1, 0])
    assert ref.auc_component_sd == pytest.approx(1 / 6)
    assert ref.negative_component_sd == pytest.approx(math.sqrt(1 / 6))
    assert ref.positive_rate == pytest.approx(0.4)
    assert ref.roc_auc_standard_error(10) == pytest.approx(math.sqrt(5) / 12)
    # majority positive: classes swapped (labels 1-y, scores 1-s), the same rows as above.
    flipped = reference_from_holdout([0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 0, 1])
    assert flipped == ref.model_copy(update={"positives": 3})
    # the band on the four-row chunk of the first test (.825): SE on 4 rows =
    # sqrt((1/36) / 1.6 + (1/6) / 2.4).
    e = estimate_chunk(
        [0.1, 0.4, 0.6, 0.9], calibration=IDENTITY, threshold=0.5, costs=COSTS, reference=ref
    )
    se = math.sqrt((1 / 36) / 1.6 + (1 / 6) / 2.4)
    assert e.roc_auc_low == pytest.approx(0.825 - 1.96 * se)
    assert e.roc_auc_high == pytest.approx(min(1.0, 0.825 + 1.96 * se))
    with pytest.raises(ValueError, match="single class"):
        reference_from_holdout([0.1, 0.2], [1, 1])


def test_chunks_by_period_and_by_size() -> None:
    # five rows over two days (given out of order): day 1 holds .1 and .9, day 2 .4 .6 .2.
    ts = [
        datetime(2026, 1, 2, 5, tzinfo=UTC),
        datetime(2026, 1, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 2, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 23, tzinfo=UTC),
        datetime(2026, 1, 2, 23, 59, tzinfo=UTC),
    ]
    scores = [0.4, 0.1, 0.6, 0.9, 0.2]
    common = {"calibration": IDENTITY, "threshold": 0.5, "costs": COSTS}
    days = estimate_chunks(scores, ts, period="1D", **common)  # type: ignore[arg-type]
    assert [(d.start, d.end, d.rows) for d in days] == [
        (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), 2),
        (datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC), 3),
    ]
    # day 1: E[FN] = .1, E[FP] = .1 -> 1000 * (1 + .1) / 2 = 550.
    assert days[0].cost_per_1000 == pytest.approx(550.0)
    # time order: .1 .9 .6 .4 .2; size 2 -> [.1 .9] [.6 .4] [.2]
    sized = estimate_chunks(scores, ts, size=2, **common)  # type: ignore[arg-type]
    assert [s.rows for s in sized] == [2, 2, 1]
    assert sized[1].start == datetime(2026, 1, 2, 1, tzinfo=UTC)
    assert sized[1].end == datetime(2026, 1, 2, 5, tzinfo=UTC)
    assert sized[2].alert_rate == 0.0
    # naive numpy datetimes read as UTC
    naive = np.array(["2026-01-01T01:00", "2026-01-01T02:00"], dtype="datetime64[m]")
    one = estimate_chunks([0.1, 0.9], naive, period="1D", **common)  # type: ignore[arg-type]
    assert one[0].start == datetime(2026, 1, 1, tzinfo=UTC) and one[0].rows == 2
    # zone-aware timestamps are chunked in UTC: Berlin 22:00-03:00 across the spring DST
    # change is 21:00-02:00 UTC, three rows on each UTC day
    import pandas as pd

    berlin = pd.Series(pd.date_range("2026-03-28 22:00", periods=6, freq="h", tz="Europe/Berlin"))
    zoned = estimate_chunks(np.linspace(0.1, 0.9, 6), berlin, **common)  # type: ignore[arg-type]
    assert [(z.start, z.rows) for z in zoned] == [
        (datetime(2026, 3, 28, tzinfo=UTC), 3),
        (datetime(2026, 3, 29, tzinfo=UTC), 3),
    ]
    # an empty log has no chunks, by period or by size
    assert estimate_chunks([], [], **common) == []  # type: ignore[arg-type]
    assert estimate_chunks([], [], size=5, **common) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"period": "1 fortnight"}, "not a fixed duration"),
        ({"period": None}, "period or a chunk size"),
        ({"size": 0}, "positive"),
    ],
)
def test_bad_chunking_fails_with_a_reason(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimate_chunks(
            [0.1], ["2026-01-01"], calibration=IDENTITY, threshold=0.5, costs=COSTS, **kwargs
        )  # type: ignore[arg-type]


def test_bad_input_fails() -> None:
    with pytest.raises(ValueError, match="empty chunk"):
        estimate_chunk([], calibration=IDENTITY, threshold=0.5, costs=COSTS)
    for bad in ([0.1, float("nan")], [0.1, 1.5], [-0.1, 0.5], [float("inf")]):
        with pytest.raises(ValueError, match=r"finite probabilities in \[0, 1\]"):
            estimate_chunk(bad, calibration=IDENTITY, threshold=0.5, costs=COSTS)
    for threshold, z in ((float("nan"), 1.96), (0.5, -1.0)):
        with pytest.raises(ValueError, match="must be finite"):
            estimate_chunk([0.1], calibration=IDENTITY, threshold=threshold, costs=COSTS, z=z)
    with pytest.raises(ValueError, match="equal length"):
        estimate_chunks(
            [0.1, 0.2], ["2026-01-01"], calibration=IDENTITY, threshold=0.5, costs=COSTS
        )
    with pytest.raises(ValueError, match="missing"):
        estimate_chunks(
            [0.1, 0.2], ["2026-01-01", None], calibration=IDENTITY, threshold=0.5, costs=COSTS
        )
