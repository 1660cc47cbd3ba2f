"""What the window shows: data quality of every logged row (missing, unseen categories, values
out of range, a broken schema) and Evidently's drift of a uniform sample of it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.core import drift_effect
from modelops.core import monitoring as policy_core
from modelops.integrations import evidently as evidently_io
from modelops.services.monitor.common import SCORE, _sample
from modelops.services.monitor.reference import Reference

if TYPE_CHECKING:
    import pandas as pd


def measure_quality(
    window: pd.DataFrame, features: list[str], profile: dict[str, Any]
) -> policy_core.Quality:
    """Exact shares over every logged row: missing, unseen categories, out of range."""
    import pandas as pd

    rows = len(window)
    if rows == 0:
        return policy_core.Quality(rows=0)
    schema: list[str] = []
    found: dict[str, policy_core.FeatureQuality] = {}
    for name in features:
        spec = profile["features"][name]
        reference_missing = float(spec.get("missing_share") or 0.0)
        if name not in window.columns or window[name].isna().all():
            if name not in window.columns:
                schema.append(f"{name}: absent from every logged prediction")
            found[name] = policy_core.FeatureQuality(1.0, reference_missing)
            continue
        column = window[name]
        if spec["kind"] == "numerical":
            values = pd.to_numeric(column, errors="coerce")
            not_numbers = int((values.isna() & column.notna()).sum())
            if not_numbers:
                schema.append(f"{name}: {not_numbers} logged values are not numbers")
            low, high = spec.get("min"), spec.get("max")
            outside = None
            if low is not None and high is not None:
                present = values.dropna()
                outside = float(((present < low) | (present > high)).sum()) / rows
            found[name] = policy_core.FeatureQuality(
                float(values.isna().mean()), reference_missing, out_of_range_share=outside
            )
        else:
            categories = spec.get("categories")
            unseen = None
            present = column.dropna()
            if categories is not None:
                unseen = float((~present.astype(str).isin(categories)).sum()) / rows
            found[name] = policy_core.FeatureQuality(
                float(column.isna().mean()), reference_missing, unseen_share=unseen
            )
    return policy_core.Quality(rows=rows, features=found, schema_problems=tuple(schema))


def effect_sizes(
    current: pd.DataFrame, reference: pd.DataFrame, numerical: list[str], categorical: list[str]
) -> dict[str, float]:
    """Each feature's effect size between the two frames (missing values left out); NaN when
    either side has no value. Numerical: the Wasserstein distance divided by the reference's
    standard deviation (at least 0.001, as Evidently norms it); categorical: the Jensen-Shannon
    distance (natural logarithm, as Evidently's) of the category shares."""
    import numpy as np
    import pandas as pd
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance

    effects: dict[str, float] = {}
    for name in numerical:
        cur = pd.to_numeric(current[name], errors="coerce").to_numpy(dtype="float64")
        ref = pd.to_numeric(reference[name], errors="coerce").to_numpy(dtype="float64")
        cur, ref = cur[np.isfinite(cur)], ref[np.isfinite(ref)]
        if not len(cur) or not len(ref):
            effects[name] = math.nan
            continue
        norm = max(float(np.std(ref)), 0.001)
        effects[name] = float(wasserstein_distance(ref, cur)) / norm
    for name in categorical:
        cur_shares = current[name].dropna().astype(str).value_counts(normalize=True)
        ref_shares = reference[name].dropna().astype(str).value_counts(normalize=True)
        if cur_shares.empty or ref_shares.empty:
            effects[name] = math.nan
            continue
        keys = sorted(set(cur_shares.index) | set(ref_shares.index))
        effects[name] = float(
            jensenshannon(
                ref_shares.reindex(keys, fill_value=0.0).to_numpy(),
                cur_shares.reindex(keys, fill_value=0.0).to_numpy(),
            )
        )
    return effects


def measure_drift(
    window: pd.DataFrame,
    reference: Reference,
    features: list[str],
    monitoring: Any,
    run_dir: Path | None,
    seed: int,
) -> tuple[policy_core.Drift | None, evidently_io.DriftResult | None]:
    """Evidently's drift of a uniform sample of the window (and of the reference), saved as
    ``report.html`` and ``evidently.json`` in ``run_dir``; each feature's effect size on the
    same samples; which features count (:func:`modelops.core.drift_effect.count_drift`)."""
    usable = [f for f in features if f in window.columns and window[f].notna().any()]
    if not len(window) or not usable:
        return None, None
    numerical = [f for f in reference.numerical if f in usable]
    categorical = [f for f in reference.categorical if f in usable]
    current = _sample(window, monitoring.drift_sample_rows, seed).copy()
    baseline = _sample(reference.frame, monitoring.drift_sample_rows, 0).copy()
    for name in categorical:  # the same representation on both sides: strings or missing
        current[name] = current[name].astype("string").astype(object)
        baseline[name] = baseline[name].astype("string").astype(object)
    score = None
    if "score" in current.columns and current["score"].notna().any():
        current[SCORE] = current["score"].astype("float64")
        score = SCORE
    result = evidently_io.drift_report(
        current,
        baseline,
        numerical=numerical,
        categorical=categorical,
        score=score,
        numerical_method=monitoring.drift_method,
        categorical_method=monitoring.drift_method_categorical,
        threshold=monitoring.drift_threshold,
        drift_share=monitoring.drift_share,
        html=run_dir / "report.html" if run_dir else None,
        json_path=run_dir / "evidently.json" if run_dir else None,
    )
    counted = drift_effect.count_drift(
        {k: drift_effect.FeatureTest(v.score, v.drifted) for k, v in result.columns.items()},
        effect_sizes(current, baseline, numerical, categorical),
        {
            **dict.fromkeys(numerical, drift_effect.NUMERICAL_EFFECT),
            **dict.fromkeys(categorical, drift_effect.CATEGORICAL_EFFECT),
        },
        {k: v for k, v in monitoring.drift_exempt.items() if k in features},
        monitoring.drift_min_effect,
    )
    notes = list(counted.notes)
    strangers = sorted(set(monitoring.drift_exempt) - set(features))
    if strangers:
        notes.append(
            f"monitoring.drift_exempt names {', '.join(strangers)}: not features of this version "
            f"({', '.join(features)}); check the spelling in project.yaml"
        )
    method = f"{monitoring.drift_method} (numerical), {monitoring.drift_method_categorical}"
    drift = policy_core.Drift(
        method=method,
        share=counted.share,
        drifted=counted.counted,
        scores={k: v.score for k, v in result.columns.items()},
        threshold=monitoring.drift_threshold,
        prediction_score=result.prediction.score if result.prediction else None,
        prediction_drifted=result.prediction.drifted if result.prediction else None,
        rows_used=result.current_rows,
        rows_total=len(window),
        reference_rows=result.reference_rows,
        features=counted.features,
        min_effect=monitoring.drift_min_effect,
        notes=tuple(notes),
    )
    return drift, result
