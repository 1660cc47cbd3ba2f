"""Which drifted features count (``modelops.core.drift_effect``), the effect sizes the monitor
measures (``services.monitor.measure.effect_sizes``), ``monitoring.drift_exempt`` and
``drift_min_effect`` in project.yaml, and the retraining reason that states the statistic."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from modelops.config.project import load_project
from modelops.core import drift_effect as de
from modelops.core import monitoring as m
from modelops.core.errors import ConfigError
from modelops.services import train
from modelops.services.monitor.measure import effect_sizes, measure_drift
from support import REPO

NUM, CAT = de.NUMERICAL_EFFECT, de.CATEGORICAL_EFFECT
FRAUD_FEATURES = [  # the feature service fraud_v1 (feature_repo/fraud_features.py)
    *("txn_count_1h", "txn_amount_1h", "txn_count_24h", "txn_amount_24h", "txn_count_7d"),
    *("txn_amount_7d", "distinct_merchants_24h", "account_age_days", "txn_amount"),
    *("txn_merchant_category", "txn_hour", "amount_to_avg_24h", "amount_to_avg_7d"),
]


def _count(
    tests: dict[str, tuple[float, bool]],
    effects: dict[str, float | None],
    exempt: dict[str, str] | None = None,
    min_effect: float = 0.15,
) -> de.DriftCount:
    return de.count_drift(
        {k: de.FeatureTest(score, drifted) for k, (score, drifted) in tests.items()},
        effects,
        dict.fromkeys(tests, NUM),
        exempt or {},
        min_effect,
    )


# --- the rule --------------------------------------------------------------------------------


def test_a_large_effect_the_test_finds_counts() -> None:
    c = _count({"a": (0.4, True), "b": (0.01, False)}, {"a": 0.4, "b": 0.01})
    assert c.counted == ("a",) and c.considered == 2 and c.share == 0.5
    assert c.features["a"].counted and "0.4 >= 0.15" in c.features["a"].why
    assert not c.features["b"].counted and c.features["b"].why == "the test finds no drift"


def test_a_small_effect_is_ignored_even_when_the_test_finds_drift() -> None:
    # a p-value test on a large window: significant, but the distributions barely differ
    c = _count({"a": (1e-9, True), "b": (1e-6, True)}, {"a": 0.03, "b": 0.2})
    assert c.counted == ("b",) and c.share == 0.5
    assert c.features["a"].why == "effect 0.03 below drift_min_effect 0.15"
    # the threshold is inclusive and follows min_effect
    assert _count({"a": (0.1, True)}, {"a": 0.15}).counted == ("a",)
    assert _count({"a": (0.1, True)}, {"a": 0.2}, min_effect=0.25).counted == ()


def test_a_large_effect_the_test_does_not_find_does_not_count() -> None:
    c = _count({"a": (0.5, False)}, {"a": 0.9})
    assert c.counted == () and c.share == 0.0


def test_exempt_features_are_measured_reported_and_never_counted() -> None:
    tests = {"count_24h": (0.9, True), "count_7d": (0.8, True), "amount": (0.3, True)}
    tests |= {"hour": (0.01, False)}
    effects = {"count_24h": 0.9, "count_7d": 0.8, "amount": 0.3, "hour": 0.01}
    exempt = {"count_24h": "rolling window", "count_7d": "rolling window"}
    c = _count(tests, effects, exempt)
    assert c.counted == ("amount",)
    assert c.considered == 2 and c.share == 0.5  # amount of {amount, hour}; not 3 of 4
    f = c.features["count_24h"]
    assert f.exempt == "rolling window" and not f.counted and f.effect == 0.9 and f.test_drifted
    assert f.why == "exempt: rolling window"
    without = _count(tests, effects)
    assert without.share == 0.75  # the same window without exemptions


def test_an_effect_that_cannot_be_computed_counts_when_the_test_finds_drift() -> None:
    c = _count({"a": (0.3, True), "b": (0.3, False)}, {"a": math.nan, "b": None})
    assert c.counted == ("a",) and c.features["a"].effect is None
    assert any("could not be computed" in n and "a" in n for n in c.notes)


def test_every_feature_exempt_gives_a_zero_share_and_says_so() -> None:
    c = _count({"a": (0.9, True)}, {"a": 0.9}, {"a": "by construction"})
    assert c.share == 0.0 and c.considered == 0 and c.counted == ()
    assert any("every measured feature is exempt" in n for n in c.notes)


def test_an_exempt_feature_that_was_not_measured_is_noted() -> None:
    c = _count({"a": (0.0, False)}, {"a": 0.0}, {"b": "rolling"})
    assert any("drift_exempt names b" in n for n in c.notes)


def test_a_bad_minimum_is_refused() -> None:
    for bad in (-0.1, math.nan):
        with pytest.raises(ValueError, match="min_effect"):
            _count({"a": (0.0, False)}, {"a": 0.0}, min_effect=bad)


# --- the retraining reason states the statistic ------------------------------------------------


def _drift(count: de.DriftCount) -> m.Drift:
    return m.Drift(
        method="wasserstein (numerical), jensenshannon",
        share=count.share,
        drifted=count.counted,
        scores={k: f.score for k, f in count.features.items()},
        features=count.features,
        min_effect=0.15,
    )


def test_the_retraining_reason_names_share_effects_threshold_and_exemptions() -> None:
    c = _count(
        {"amount": (0.31, True), "hour": (0.22, True), "age": (0.12, True), "n24": (0.5, True)},
        {"amount": 0.3127, "hour": 0.2219, "age": 0.12, "n24": 0.5},
        {"n24": "a count over a rolling day"},
    )
    policy = m.Policy(primary_metric="pr_auc", drift_share=0.3, drift_windows=2)
    now = datetime(2026, 1, 9, tzinfo=UTC)
    tenure = m.Tenure("promote", now - timedelta(days=90), now - timedelta(days=90), now)
    f = m.Findings("p", "production", "2", m.Quality(rows=5000), tenure, drift=_drift(c))
    d = m.decide_actions(f, m.History(drift_shares=(0.7,)), policy, now=now)
    assert d.kinds == [m.RETRAIN]
    reason = d.actions[0].reason
    assert reason == (
        "2 of 3 features drifted with effect >= drift_min_effect 0.15 (amount wasserstein_norm "
        "0.313, hour wasserstein_norm 0.222; share 0.67 >= drift_share 0.3); 1 exempt (n24) "
        "for 2 consecutive windows"
    )
    evidence = d.actions[0].evidence["drift"]
    assert evidence["effects"] == {"amount": 0.3127, "hour": 0.2219}
    assert evidence["min_effect"] == 0.15
    assert evidence["exempt"] == {"n24": "a count over a rolling day"}
    assert math.isclose(evidence["share"], 2 / 3)


# --- the measures ------------------------------------------------------------------------------


def test_effect_sizes_are_scipys_normed_wasserstein_and_jensen_shannon() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame(
        {
            "amount": rng.lognormal(3.0, 1.0, 4000),
            "category": rng.choice(["a", "b", "c"], 4000, p=[0.5, 0.3, 0.2]),
        }
    )
    current = pd.DataFrame(
        {
            "amount": np.r_[rng.lognormal(3.3, 1.0, 999), np.nan],
            "category": np.r_[rng.choice(["a", "b", "d"], 999, p=[0.3, 0.3, 0.4]), None],
        }
    )
    effects = effect_sizes(current, reference, ["amount"], ["category"])
    amount = current["amount"].dropna().to_numpy()
    expected = wasserstein_distance(reference["amount"], amount) / np.std(reference["amount"])
    assert math.isclose(effects["amount"], expected, rel_tol=1e-12)
    ref = reference["category"].value_counts(normalize=True)
    cur = current["category"].dropna().value_counts(normalize=True)
    keys = ["a", "b", "c", "d"]
    expected_js = jensenshannon(ref.reindex(keys, fill_value=0), cur.reindex(keys, fill_value=0))
    assert math.isclose(effects["category"], expected_js, rel_tol=1e-12)
    # a shift of half a standard deviation of a normal feature is an effect of about 0.5
    normal = pd.DataFrame({"x": rng.normal(0, 2, 20000)})
    shifted = pd.DataFrame({"x": rng.normal(1, 2, 20000)})
    assert effect_sizes(shifted, normal, ["x"], [])["x"] == pytest.approx(0.5, abs=0.03)
    # the same distribution: a small effect; no values on one side: not computable
    same = pd.DataFrame({"x": rng.normal(0, 2, 20000)})
    assert effect_sizes(same, normal, ["x"], [])["x"] < 0.03
    empty = pd.DataFrame({"x": [np.nan] * 3, "c": [None] * 3})
    both = effect_sizes(empty, pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}), ["x"], ["c"])
    assert math.isnan(both["x"]) and math.isnan(both["c"])


# --- project.yaml ------------------------------------------------------------------------------


def _project(tmp_path: Path, monitoring: dict[str, object]) -> Path:
    folder = tmp_path / "projects" / "fraud"
    folder.mkdir(parents=True)
    spec = yaml.safe_load((REPO / "projects" / "fraud" / "project.yaml").read_text())
    spec["monitoring"] = {**spec.get("monitoring", {}), **monitoring}
    (folder / "project.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "projects"


def test_drift_exempt_and_min_effect_are_read_with_their_defaults(tmp_path: Path) -> None:
    projects = _project(tmp_path, {"drift_exempt": {"txn_count_24h": "rolling day"}})
    monitoring = load_project(projects, "fraud").spec.monitoring
    assert monitoring.drift_exempt == {"txn_count_24h": "rolling day"}
    assert monitoring.drift_min_effect == de.DEFAULT_MIN_EFFECT == 0.12  # docs/monitoring.md


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        (
            {"drift_exempt": {"txn_count_24h": "  "}},
            r"field 'monitoring\.drift_exempt': 'txn_count_24h' needs a reason",
        ),
        (
            {"drift_exempt": {"txn_count_24h": None}},
            r"field 'monitoring\.drift_exempt\.txn_count_24h': Input should be a valid string",
        ),
        ({"drift_exempt": ["txn_count_24h"]}, r"field 'monitoring\.drift_exempt': .*dictionary"),
        ({"drift_min_effect": -0.1}, r"field 'monitoring\.drift_min_effect': .*\(got -0\.1\)"),
        ({"drift_exmpt": {}}, r"field 'monitoring\.drift_exmpt': .*drift_exempt"),
    ],
)
def test_bad_drift_settings_are_one_line_errors_naming_file_and_field(
    tmp_path: Path, monitoring: dict[str, object], message: str
) -> None:
    projects = _project(tmp_path, monitoring)
    with pytest.raises(ConfigError, match=message) as caught:
        load_project(projects, "fraud")
    assert "\n" not in str(caught.value) and "project.yaml" in str(caught.value)


def test_an_exempt_name_outside_the_feature_service_is_refused_at_training(tmp_path: Path) -> None:
    projects = _project(tmp_path, {"drift_exempt": {"txn_count_24": "typo of txn_count_24h"}})
    project = load_project(projects, "fraud")
    with pytest.raises(ConfigError) as caught:
        train._check_declared_features(project, FRAUD_FEATURES)
    said = str(caught.value)
    assert said.startswith(str(project.spec_file))
    assert "field 'monitoring.drift_exempt': ['txn_count_24'] not in feature service" in said
    assert "\n" not in said
    train._check_declared_features(  # spelled right: accepted
        load_project(_project(tmp_path / "ok", {"drift_exempt": {"txn_amount": "x"}}), "fraud"),
        FRAUD_FEATURES,
    )


# --- the fraud project on healthy generated traffic ----------------------------------------------


def _fraud_features(events: pd.DataFrame, activity: pd.DataFrame) -> pd.DataFrame:
    """Each payment with its account's activity snapshot (one second before it, as the
    generator writes it) and the feature service's on-demand features (its own function)."""
    import sys

    sys.path.insert(0, str(REPO / "feature_repo"))
    try:
        from fraud_features import payment_features
    finally:
        sys.path.remove(str(REPO / "feature_repo"))
    snapshot = activity.assign(event_timestamp=activity["event_timestamp"] + pd.Timedelta("1s"))
    joined = events.merge(snapshot, on=["account_id", "event_timestamp"], how="inner")
    assert len(joined) == len(events), "every payment has its snapshot"
    udf = payment_features.feature_transformation.udf  # python mode: lists in, lists out
    on_demand = pd.DataFrame(udf({c: joined[c].tolist() for c in joined.columns}))
    return pd.concat([joined.drop(columns=["amount"]), on_demand], axis=1)


def test_the_fraud_projects_rolling_aggregates_no_longer_drive_the_share(tmp_path: Path) -> None:
    """The example data's training and holdout windows as the reference, a week of `simulate`'s
    healthy traffic as seven daily windows, measured with fraud's own monitoring settings."""
    from datetime import date

    from modelops.core import synthetic
    from modelops.services import simulate
    from modelops.services.data import load_data_module
    from modelops.services.monitor.reference import Reference

    project = load_project(REPO / "projects", "fraud")
    module = load_data_module(project)
    assert module is not None
    synthetic.generate(module, "fraud", tmp_path, seed=5)  # the example data, as training
    example = _fraud_features(
        pd.read_parquet(tmp_path / "fraud_transactions.parquet"),
        pd.read_parquet(tmp_path / "fraud_account_activity.parquet"),
    )
    windows = project.spec.windows
    stamp = example["event_timestamp"]
    in_reference = [
        (stamp >= w.start_ts) & (stamp < w.end_ts) for w in (windows.train, windows.holdout)
    ]
    reference_frame = example[in_reference[0] | in_reference[1]]
    period = simulate.generate_period(module, project, "healthy", date(2026, 1, 1), 7, seed=11)
    traffic = _fraud_features(
        period.events.to_pandas(), period.features["fraud_account_activity"].to_pandas()
    )
    categorical = set(project.spec.features.categorical)
    kinds = {f: "categorical" if f in categorical else "numerical" for f in FRAUD_FEATURES}
    reference = Reference(
        reference_frame[FRAUD_FEATURES],
        {"features": {f: {"kind": k} for f, k in kinds.items()}},
        tmp_path / "reference.parquet",
    )
    monitoring = project.spec.monitoring
    exempt = set(monitoring.drift_exempt)
    assert exempt == {
        "txn_count_24h", "txn_amount_24h", "distinct_merchants_24h", "txn_count_7d", "txn_amount_7d"
    }  # fmt: skip
    old_shares, new_shares = [], []
    for day in range(7):
        start = pd.Timestamp(date(2026, 1, 1), tz="UTC") + pd.Timedelta(days=day)
        window = traffic[traffic["event_timestamp"].between(start, start + pd.Timedelta("1D"))]
        assert len(window) > 500
        drift, _ = measure_drift(window, reference, FRAUD_FEATURES, monitoring, None, day)
        assert drift is not None and set(drift.features) == set(FRAUD_FEATURES)
        flagged = {n for n, f in drift.features.items() if f.test_drifted}
        old_shares.append(len(flagged) / len(FRAUD_FEATURES))  # Evidently's verdicts, every feature
        new_shares.append(drift.share)
        assert not exempt & set(drift.drifted)
        assert all(drift.features[n].exempt for n in exempt)  # measured, marked exempt
        assert all(drift.features[n].effect is not None for n in FRAUD_FEATURES)
        assert drift.share == len(drift.drifted) / (len(FRAUD_FEATURES) - len(exempt))
    # Evidently's verdicts alone would have counted a drifting window, driven by the exempt
    # rolling aggregates; counted with effect sizes and the exemptions, no window drifts.
    assert max(old_shares) >= monitoring.drift_share, old_shares
    assert max(new_shares) < monitoring.drift_share, new_shares
