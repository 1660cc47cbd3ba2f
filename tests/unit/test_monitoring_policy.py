"""The monitoring policy (``modelops.core.monitoring``): every rule, its thresholds, cooldown,
precedence and dry run, on hand-made findings; no I/O."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from modelops.core import live_judgement as lj
from modelops.core import monitoring as m
from modelops.core.metrics import CostModel, direction
from modelops.core.stats import Interval

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
POLICY = m.Policy(
    primary_metric="pr_auc",
    min_labels=200,
    min_positives=20,
    probation_days=14,
    max_drop_in_probation=0.05,
    max_decay=0.05,
    drift_share=0.3,
    drift_windows=3,
    cooldown_hours=24,
)
GATE = {"pr_auc": 0.40, "cost_per_1000": 120.0}


def tenure(
    moved_by: str | None = "promote", days_serving: float = 3, target: str | None = "1"
) -> m.Tenure:
    return m.Tenure(
        moved_by=moved_by,
        moved_at=NOW - timedelta(days=days_serving),
        first_seen=NOW - timedelta(days=days_serving),
        as_of=NOW,
        rollback_target=target,
    )


def quality(**features: m.FeatureQuality) -> m.Quality:
    return m.Quality(rows=5000, features=features or {"amount": m.FeatureQuality(0.0)})


def drift(share: float) -> m.Drift:
    drifted = tuple(f"f{i}" for i in range(round(share * 10)))
    return m.Drift(
        method="wasserstein",
        share=share,
        drifted=drifted,
        scores={f"f{i}": 0.2 if f"f{i}" in drifted else 0.01 for i in range(10)},
    )


def drop_record(
    live: float,
    gate: float = 0.40,
    *,
    half: float = 0.03,
    max_drop: float = 0.05,
    metric: str = "pr_auc",
    positives: int = 60,
) -> lj.LiveDrop:
    """The judgement of a live metric whose interval is ``live - gate`` +- ``half`` (oriented:
    negative is worse)."""
    estimate = (live - gate) * direction(metric)
    interval = Interval(
        metric, estimate, estimate - half, estimate + half, 0.95, "BCa", 2000, 1000, 1000, False
    )
    return lj.from_interval(metric, live, gate, 1000, positives, interval, max_drop)


def same_rows(
    better: bool = True, *, identical: bool = False, evaluated: bool = True
) -> lj.SameRows:
    low = 0.02 if better else -0.03
    detail = "pr_auc gain of v1 over v2 +0.08 (95% BCa interval ...)" if better else "not shown"
    return lj.SameRows(
        previous_version="1",
        current_version="2",
        evaluated=evaluated,
        identical=identical,
        better=better and not identical and evaluated,
        rows=1000,
        positives=60,
        interval={"metric": "pr_auc", "estimate": low + 0.03, "low": low, "high": low + 0.06},
        detail=detail if evaluated else "v1 not compared: the prediction log holds no features",
    )


def performance(
    live: float,
    rows: int = 1000,
    positives: int = 60,
    *,
    half: float = 0.03,
    max_drop: float = 0.05,
    previous: lj.SameRows | None = None,
) -> m.Performance:
    return m.Performance(
        version="2",
        rows=rows,
        positives=positives,
        metrics={"pr_auc": live, "cost_per_1000": 150.0},
        gate=GATE,
        gate_source="verdict v",
        drop=drop_record(live, half=half, max_drop=max_drop, positives=positives),
        previous=previous,
    )


def findings(**kw: object) -> m.Findings:
    values: dict[str, object] = {
        "project": "p",
        "environment": "production",
        "version": "2",
        "quality": quality(),
        "tenure": tenure(),
    }
    values.update(kw)
    return m.Findings(**values)  # type: ignore[arg-type]


def decide(f: m.Findings, history: m.History | None = None, **kw: object) -> m.Decision:
    return m.decide_actions(f, history or m.History(), POLICY, now=NOW, **kw)  # type: ignore[arg-type]


# --- healthy ---------------------------------------------------------------------------------


def test_healthy_findings_lead_to_no_action() -> None:
    d = decide(findings(drift=drift(0.1), performance=performance(0.41)))
    assert d.actions == () and d.held == ()
    assert d.headline() == "no action"
    assert d.in_probation and not d.retraining_blocked
    assert any("not shown below its gate-time value" in n for n in d.notes)


def test_too_few_labels_judge_nothing() -> None:
    for rows, positives in ((150, 40), (1000, 10), (1000, 990)):
        d = decide(findings(performance=performance(0.05, rows=rows, positives=positives)))
        assert d.actions == (), (rows, positives)
        assert any("not judged" in n for n in d.notes)


# --- data quality ------------------------------------------------------------------------------


def test_bad_data_alerts_and_blocks_retraining_even_with_sustained_drift() -> None:
    bad = quality(
        amount=m.FeatureQuality(0.30, 0.0),
        category=m.FeatureQuality(0.0, 0.0, unseen_share=0.10),
        age=m.FeatureQuality(0.0, 0.0, out_of_range_share=0.5),
    )
    d = decide(
        findings(quality=bad, drift=drift(0.5), tenure=tenure(days_serving=40)),
        m.History(drift_shares=(0.5, 0.5)),
    )
    assert d.kinds == [m.ALERT]
    assert d.retraining_blocked
    reason = d.actions[0].reason
    assert "amount missing on 30.0%" in reason and "category: 10.0%" in reason
    assert "age: 50.0%" in reason and "blocked" in reason
    assert [h.action.kind for h in d.held] == [m.RETRAIN]
    assert "bad data" in d.held[0].why


def test_missing_values_as_common_as_in_the_reference_are_not_a_failure() -> None:
    usual = quality(amount=m.FeatureQuality(0.20, reference_missing_share=0.25))
    assert m.quality_problems(usual, POLICY) == []
    schema = m.Quality(rows=10, features={}, schema_problems=("x: absent",))
    assert m.quality_problems(schema, POLICY) == ["x: absent"]


# --- rollback ----------------------------------------------------------------------------------


def test_a_drop_on_probation_rolls_back_to_a_previous_version_shown_better() -> None:
    d = decide(findings(performance=performance(0.30, previous=same_rows())))
    assert d.kinds == [m.ROLLBACK]
    action = d.actions[0]
    assert action.target == "1"
    assert "live minus gate-time -0.1" in action.reason
    assert "by more than 0.05" in action.reason and "gain of v1 over v2" in action.reason
    assert action.evidence["live"] == 0.30 and action.evidence["gate"] == 0.40
    assert action.evidence["cost_per_1000"] == {"live": 150.0, "gate": 120.0}
    assert math.isclose(action.evidence["drop_vs_gate"]["drop"], 0.10)
    assert action.evidence["previous_on_same_rows"]["better"] is True


def test_a_previous_version_no_better_on_the_same_rows_means_retraining_not_rollback() -> None:
    for previous in (same_rows(better=False), same_rows(identical=True)):
        d = decide(findings(performance=performance(0.30, previous=previous)))
        assert d.kinds == [m.RETRAIN], previous
        assert "rolling back would not help" in d.actions[0].reason
        assert d.actions[0].target == "2"
    blocked = decide(
        findings(
            performance=performance(0.30, previous=same_rows(better=False)),
            quality=quality(amount=m.FeatureQuality(0.30, 0.0)),
        )
    )
    assert blocked.kinds == [m.ALERT] and [h.action.kind for h in blocked.held] == [m.RETRAIN]


def test_a_comparison_that_could_not_be_made_alerts_and_moves_nothing() -> None:
    for previous in (None, same_rows(evaluated=False)):
        d = decide(findings(performance=performance(0.30, previous=previous)))
        assert d.kinds == [m.ALERT], previous
        assert "rollback not decided" in d.actions[0].reason
        assert d.held == ()


def test_a_drop_that_is_noise_or_small_or_unjudged_moves_nothing() -> None:
    crossing = performance(0.37, half=0.04, previous=same_rows())  # interval -0.07..+0.01
    small = performance(0.37, half=0.01, previous=same_rows())  # significant, 0.03 < 0.05
    wide = performance(0.20, half=0.08, previous=same_rows())  # interval too wide to judge
    for perf in (crossing, small, wide):
        d = decide(findings(performance=perf))
        assert d.actions == (), perf.drop
    notes = decide(findings(performance=wide)).notes
    assert any("not judged" in n and "labelled positives would narrow it" in n for n in notes)
    needed = wide.drop.positives_needed if wide.drop else None
    assert needed is not None and needed == math.ceil(60 * (0.08 / 0.05) ** 2)


def test_no_rollback_after_probation_or_after_a_rollback() -> None:
    late = decide(findings(performance=performance(0.30), tenure=tenure(days_serving=20)))
    assert m.ROLLBACK not in late.kinds and not late.in_probation
    assert late.kinds == [m.RETRAIN]  # decay outside probation retrains instead
    returned = decide(findings(performance=performance(0.30), tenure=tenure("rollback")))
    assert m.ROLLBACK not in returned.kinds


def test_nothing_to_roll_back_to_or_rollback_switched_off_is_an_alert() -> None:
    perf = performance(0.30, previous=same_rows())
    alone = decide(findings(performance=perf, tenure=tenure(target=None)))
    assert alone.kinds == [m.ALERT] and "no earlier version" in alone.actions[0].reason
    off = m.decide_actions(
        findings(performance=perf),
        m.History(),
        m.Policy(primary_metric="pr_auc", probation_days=14, auto_rollback=False),
        now=NOW,
    )
    assert off.kinds == [m.ALERT] and "auto_rollback is off" in off.actions[0].reason


def test_a_lower_is_better_metric_rolls_back_when_it_rises() -> None:
    policy = m.Policy(primary_metric="log_loss", probation_days=14, max_drop_in_probation=0.02)

    def perf(live: float) -> m.Performance:
        drop = drop_record(live, 0.20, half=0.01, max_drop=0.02, metric="log_loss")
        return m.Performance(
            "2", 1000, 60, {"log_loss": live}, {"log_loss": 0.20}, "v", drop, same_rows()
        )

    d = m.decide_actions(findings(performance=perf(0.30)), m.History(), policy, now=NOW)
    assert d.kinds == [m.ROLLBACK]
    better = m.decide_actions(findings(performance=perf(0.10)), m.History(), policy, now=NOW)
    assert better.actions == ()


def test_probation_starts_at_the_first_logged_prediction() -> None:
    promoted_long_ago_first_seen_now = m.Tenure(
        "promote", NOW - timedelta(days=100), NOW - timedelta(days=1), NOW, "1"
    )
    assert m.in_probation(promoted_long_ago_first_seen_now, POLICY)
    not_seen_yet = m.Tenure("promote", NOW, None, NOW, "1")
    assert m.in_probation(not_seen_yet, POLICY)
    off = m.Policy(primary_metric="pr_auc", probation_days=0)
    assert not m.in_probation(not_seen_yet, off)


# --- retraining --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "streak", "retrains"),
    [
        ((), 1, False),
        ((0.4,), 2, False),
        ((0.4, 0.35), 3, True),
        ((0.4, 0.1, 0.9), 2, False),  # a calm window in between breaks the streak
    ],
)
def test_sustained_drift_retrains_after_k_consecutive_windows(
    previous: tuple[float, ...], streak: int, retrains: bool
) -> None:
    d = decide(findings(drift=drift(0.5)), m.History(drift_shares=previous))
    assert d.drift_streak == streak
    assert (d.kinds == [m.RETRAIN]) is retrains
    if retrains:
        assert "for 3 consecutive windows" in d.actions[0].reason
        assert d.actions[0].evidence["drift"]["streak"] == 3
    else:
        assert any(f"drift in {streak} of 3" in n for n in d.notes)


def test_drift_below_the_share_is_no_streak() -> None:
    assert m.drift_streak(0.29, (0.9, 0.9), 0.3) == 0
    assert m.drift_streak(None, (0.9,), 0.3) == 0
    assert m.drift_streak(0.3, (0.3, 0.2, 0.9), 0.3) == 2


def test_decay_after_probation_retrains_and_a_small_one_does_not() -> None:
    late = tenure(days_serving=30)
    assert decide(findings(performance=performance(0.34), tenure=late)).kinds == [m.RETRAIN]
    assert decide(findings(performance=performance(0.36), tenure=late)).actions == ()


def test_auto_retrain_off_alerts_instead() -> None:
    policy = m.Policy(primary_metric="pr_auc", drift_windows=1, auto_retrain=False)
    d = m.decide_actions(findings(drift=drift(0.5)), m.History(), policy, now=NOW)
    assert d.kinds == [m.ALERT] and "auto_retrain is off" in d.actions[0].reason


# --- precedence: one incident, one action ------------------------------------------------------


def test_a_rollback_holds_back_retraining_in_the_same_run() -> None:
    d = decide(
        findings(performance=performance(0.30, previous=same_rows()), drift=drift(0.6)),
        m.History(drift_shares=(0.6, 0.6)),
    )
    assert d.kinds == [m.ROLLBACK]
    assert [(h.action.kind, h.why) for h in d.held] == [
        (m.RETRAIN, "a rollback answers this run's incident")
    ]


def shadow(beats: bool, rows: int = 1000, positives: int = 60) -> m.Shadow:
    return m.Shadow("3", rows, positives, {"pr_auc": 0.4}, {"pr_auc": 0.5}, {}, "rule", beats, "d")


def test_a_shadow_that_beats_production_is_proposed_instead_of_retraining() -> None:
    d = decide(
        findings(drift=drift(0.6), shadow=shadow(True), tenure=tenure(days_serving=30)),
        m.History(drift_shares=(0.6, 0.6)),
    )
    assert d.kinds == [m.PROPOSE]
    assert d.actions[0].target == "3"
    assert [h.action.kind for h in d.held] == [m.RETRAIN]
    assert decide(findings(shadow=shadow(False))).actions == ()
    assert decide(findings(shadow=shadow(True, rows=50))).actions == ()


# --- cooldown ----------------------------------------------------------------------------------


def test_cooldown_holds_the_same_kind_of_action_and_expires() -> None:
    f = findings(drift=drift(0.6))
    past = m.History(
        drift_shares=(0.6, 0.6),
        actions=(m.PastAction(m.RETRAIN, NOW - timedelta(hours=5), "2"),),
    )
    held = decide(f, past)
    assert held.actions == ()
    assert held.held[0].action.kind == m.RETRAIN and "cooldown" in held.held[0].why
    expired = m.History(
        drift_shares=(0.6, 0.6),
        actions=(m.PastAction(m.RETRAIN, NOW - timedelta(hours=25), "2"),),
    )
    assert decide(f, expired).kinds == [m.RETRAIN]
    other_kind = m.History(
        drift_shares=(0.6, 0.6), actions=(m.PastAction(m.ALERT, NOW - timedelta(hours=1)),)
    )
    assert decide(f, other_kind).kinds == [m.RETRAIN]


def test_a_rollback_in_cooldown_still_answers_the_incident() -> None:
    past = m.History(
        drift_shares=(0.6, 0.6), actions=(m.PastAction(m.ROLLBACK, NOW - timedelta(hours=1)),)
    )
    d = decide(
        findings(performance=performance(0.30, previous=same_rows()), drift=drift(0.6)), past
    )
    assert d.actions == ()
    assert {h.action.kind for h in d.held} == {m.ROLLBACK, m.RETRAIN}


def test_proposals_cool_down_per_version() -> None:
    f = findings(shadow=shadow(True))
    same = m.History(actions=(m.PastAction(m.PROPOSE, NOW - timedelta(hours=1), "3"),))
    other = m.History(actions=(m.PastAction(m.PROPOSE, NOW - timedelta(hours=1), "9"),))
    assert decide(f, same).actions == ()
    assert decide(f, other).kinds == [m.PROPOSE]


# --- dry run -----------------------------------------------------------------------------------


def test_a_dry_run_decides_the_same_and_executes_nothing() -> None:
    f = findings(performance=performance(0.30, previous=same_rows()))
    real, dry = decide(f), decide(f, dry_run=True)
    assert real.actions == dry.actions and real.executable == real.actions
    assert dry.executable == ()
    assert dry.headline().startswith("would rollback") and dry.headline().endswith("(dry run)")
    assert dry.to_dict()["dry_run"] is True


# --- the shadow rule ---------------------------------------------------------------------------


def test_the_shadow_rule_is_the_gates_bootstrap_and_must_show_it_better() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(4000) < 0.1).astype(int)
    served = np.clip(0.1 + 0.05 * y + rng.normal(0, 0.1, 4000), 0, 1)
    better = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.1, 4000), 0, 1)
    costs = CostModel(100, 5)
    common = {
        "metric": "pr_auc",
        "decision": "non_inferiority",
        "margin": 0.01,
        "served_threshold": 0.2,
        "shadow_threshold": 0.2,
        "costs": costs,
        "served_metrics": {},
        "shadow_metrics": {},
        "resamples": 1000,
    }
    wins = m.compare_shadow("3", y, served, better, **common)  # type: ignore[arg-type]
    assert wins.beats and wins.interval["low"] > 0
    twin = m.compare_shadow("3", y, served, served.copy(), **common)  # type: ignore[arg-type]
    # non-inferior within the margin, yet not shown better: not proposed
    assert not twin.beats


def test_findings_serialise_without_nan() -> None:
    perf = m.Performance("2", 10, 1, {"pr_auc": float("nan")}, None, "")
    body = m.findings_dict(findings(performance=perf))
    assert body["performance"]["metrics"]["pr_auc"] is None
    assert body["tenure"]["as_of"] == NOW.isoformat()
