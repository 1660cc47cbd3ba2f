"""The evidence behind a rollback (``modelops.core.live_judgement``), on many seeds of data no
rule was tuned on: healthy traffic gives no significant drop and no better predecessor beyond
the level's share; a real drop and a better predecessor are found; identical models are never
better; rare positives leave the interval unjudged with the positives it would need."""

from __future__ import annotations

import math

import numpy as np

from modelops.core import live_judgement as lj
from modelops.core.metrics import CostModel, classification_metrics

COSTS = CostModel(false_negative=20.0, false_positive=1.0)
SEEDS = 40
RESAMPLES = 1000


def traffic(rng: np.random.Generator, rows: int, prevalence: float = 0.03) -> np.ndarray:
    """Labels of a skewed process: each row's risk is log-normal around the prevalence."""
    risk = np.clip(prevalence * rng.lognormal(0.0, 1.2, rows), 0, 1)
    return np.stack([risk, (rng.random(rows) < risk).astype(np.int64)])


def scores(rng: np.random.Generator, risk: np.ndarray, noise: float) -> np.ndarray:
    """A model's scores: the true risk seen through multiplicative noise."""
    return np.clip(risk * rng.lognormal(0.0, noise, len(risk)), 0.0, 1.0)


def population_value(metric: str, noise: float, threshold: float) -> float:
    rng = np.random.default_rng(12345)
    risk, y = traffic(rng, 400_000)
    return classification_metrics(y, scores(rng, risk, noise), threshold, COSTS)[metric]


def test_healthy_traffic_rarely_shows_a_significant_drop_and_never_a_material_one() -> None:
    gate = population_value("pr_auc", 0.5, 0.1)
    significant = worse = judged = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        risk, y = traffic(rng, 15_000)
        drop = lj.judge_drop(
            "pr_auc",
            y,
            scores(rng, risk, 0.5),
            gate,
            max_drop=0.05,
            threshold=0.1,
            costs=COSTS,
            resamples=RESAMPLES,
            seed=seed,
        )
        judged += drop.judged
        significant += drop.significant
        worse += drop.worse
    assert judged == SEEDS  # ~450 positives: the interval is narrow enough every time
    assert significant <= math.ceil(0.1 * SEEDS)  # one-sided 2.5% expected
    assert worse == 0


def test_a_real_drop_is_found_with_its_statistic() -> None:
    gate = population_value("pr_auc", 0.5, 0.1)
    rng = np.random.default_rng(7)
    risk, y = traffic(rng, 15_000)
    drop = lj.judge_drop(
        "pr_auc",
        y,
        scores(rng, risk, 2.0),  # a much noisier model
        gate,
        max_drop=0.05,
        threshold=0.1,
        costs=COSTS,
        resamples=RESAMPLES,
    )
    assert drop.worse and drop.drop > 0.05 and drop.interval["high"] < 0
    assert "live minus gate-time" in drop.detail and "95% BCa interval" in drop.detail


def test_rare_positives_leave_it_unjudged_and_say_how_many_would_do() -> None:
    rng = np.random.default_rng(3)
    risk, y = traffic(rng, 600, prevalence=0.02)  # about a dozen positives
    drop = lj.judge_drop(
        "pr_auc",
        y,
        scores(rng, risk, 0.5),
        0.9,
        max_drop=0.05,
        threshold=0.1,
        costs=COSTS,
        resamples=RESAMPLES,
    )
    assert not drop.judged and not drop.worse
    assert drop.positives_needed is not None and drop.positives_needed > drop.positives
    assert "labelled positives would narrow it" in drop.detail
    none = lj.judge_drop(
        "pr_auc", np.zeros(50, dtype=int), np.linspace(0, 1, 50), 0.5, max_drop=0.05,
        threshold=0.5, costs=COSTS,
    )  # fmt: skip
    assert not none.judged and none.positives_needed is None and "rarer class" in none.detail


def test_an_equally_good_predecessor_is_rarely_better_and_a_better_one_is_found() -> None:
    false_better = found = 0
    for seed in range(SEEDS // 2):
        rng = np.random.default_rng(1000 + seed)
        risk, y = traffic(rng, 15_000)
        current = scores(rng, risk, 0.5)
        same_quality = scores(rng, risk, 0.5)
        much_better = scores(rng, risk, 0.1)
        args = {"current": ("2", 0.1), "previous": ("1", 0.1), "costs": COSTS}
        kw = {"resamples": RESAMPLES, "seed": seed}
        false_better += lj.compare_on_same_rows(
            "pr_auc", y, current, same_quality, **args, **kw
        ).better  # type: ignore[arg-type]
        found += lj.compare_on_same_rows(
            "pr_auc", y, scores(rng, risk, 2.0), much_better, **args, **kw
        ).better  # type: ignore[arg-type]
    assert false_better <= math.ceil(0.1 * SEEDS / 2)
    assert found == SEEDS // 2


def test_the_same_model_is_never_better() -> None:
    y = np.array([0, 1] * 50)
    s = np.linspace(0, 1, 100)
    same = lj.compare_on_same_rows(
        "pr_auc", y, s, s, current=("2", 0.5), previous=("1", 0.5), costs=COSTS, identical=True
    )
    assert same.evaluated and same.identical and not same.better
    assert "same artifact" in same.detail
    one_class = lj.compare_on_same_rows(
        "pr_auc", np.zeros(10), s[:10], s[:10], current=("2", 0.5), previous=("1", 0.5),
        costs=COSTS,
    )  # fmt: skip
    assert not one_class.evaluated and not one_class.better
