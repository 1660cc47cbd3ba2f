"""Figures of the bad-model drill: is the drill's version genuinely worse than the holder?

Run: ``PYTHONPATH=platform python tests/benchmarks/drill_figures.py [--seed 42] [--days 36]
[--traffic concept-drift] [--break-feature NAME ...] [--rate R]`` (a few minutes on 2 cores).

In a scratch workspace: fraud's example data (seed), one ``train`` (its candidate holds every
environment), then ``simulate --scenario bad-model`` as the demo's step 11 runs it. Prints the
gate verdict of the drill's version against the holder (every rule), then, on the drill's
traffic with every label known, the primary metric of each version scored from the logged
features with the registered models, and the paired-bootstrap interval of holder - drill
version (the evidence the monitor's rollback rule needs: superiority at margin 0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

PROJECT = "fraud"


def _workspace(seed: int) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from support import copy_workspace

    root = copy_workspace(Path(tempfile.mkdtemp(prefix="drill-figures-")) / "repo")
    os.environ["MODELOPS_ROOT"] = str(root)
    os.environ["MODELOPS_DATABASE_URL"] = f"sqlite:///{root / 'platform.db'}"
    os.environ["MODELOPS_PREDICTION_LOG_URL"] = str(root / "predictions")
    os.environ.setdefault("MODELOPS_ACTOR", "drill-figures")
    return root


def _holder(settings, seed: int) -> str:
    from modelops.integrations.database import LedgerEntry
    from modelops.services import data, features, promote, train
    from modelops.services.context import ledger as ledger_for

    data.generate(settings, [PROJECT], seed=seed)
    features.apply(settings)
    good = train.train(settings, PROJECT).candidate.version
    ledger = ledger_for(settings)
    for environment in settings.environments:
        ledger.transition(
            LedgerEntry(
                action="promote",
                project=PROJECT,
                environment=environment,
                actor="seed",
                reason="drill figures: seed holder",
                to_version=good,
            ),
            expected=ledger.holder(PROJECT, environment),
        )
    promote.sync_aliases(settings, PROJECT)
    return good


def _verdicts(settings) -> None:
    from modelops.services.context import ledger as ledger_for

    for entry in ledger_for(settings).entries(PROJECT):
        if entry.action != "validate":
            continue
        details = entry.details
        print(
            f"gate v{entry.to_version} vs v{entry.from_version} ({entry.environment}): "
            f"{'PASSED' if details.get('passed') else 'REFUSED'}"
        )
        for rule in details.get("verdict", {}).get("rules", []):
            mark = "ok" if rule.get("passed") else "NO"
            print(f"  {mark} {rule.get('name')}: {rule.get('detail')}")


def _live(settings, holder: str, bad: str, metric: str) -> None:
    import numpy as np
    import pandas as pd

    from modelops.core.metrics import CostModel, classification_metrics
    from modelops.core.stats.interval import paired_interval
    from modelops.integrations import mlflow as mlflow_io
    from modelops.services import prediction_log
    from modelops.services.context import project as project_for
    from modelops.services.context import tracking
    from modelops.services.datasets import read_labels

    project = project_for(settings, PROJECT)
    spec = project.spec
    log = prediction_log.read(
        settings,
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime(2100, 1, 1, tzinfo=UTC),
        project=PROJECT,
    )
    labels = read_labels(settings, project)
    key = [spec.entity, spec.label.timestamp]
    log = log.assign(**{spec.label.timestamp: pd.to_datetime(log["logged_at"], utc=True)})
    labels = labels.assign(
        **{spec.label.timestamp: pd.to_datetime(labels[spec.label.timestamp], utc=True)}
    )
    joined = log.merge(labels[[*key, spec.label.column]].drop_duplicates(key), on=key, how="inner")
    frame = pd.DataFrame([json.loads(f) for f in joined["features"]])
    y = joined[spec.label.column].astype(int).to_numpy()
    with mlflow_io.session(tracking(settings)):
        scores = {
            v: mlflow_io.load_model(f"models:/{spec.registered_model}/{v}").predict_proba(frame)[
                :, 1
            ]
            for v in (holder, bad)
        }
    served = joined["score"].to_numpy(dtype="float64")
    print(
        f"live: {len(y):,} labelled predictions, {int(y.sum())} positives "
        f"(served scores match v{bad}: {np.allclose(served, scores[bad], atol=1e-6)})"
    )
    costs = CostModel(spec.costs.false_negative, spec.costs.false_positive)
    for v in (holder, bad):
        m = classification_metrics(y, scores[v], 0.5, costs)
        print(f"  v{v}: {metric} {m[metric]:.4f}, roc_auc {m['roc_auc']:.4f}")
    iv = paired_interval(metric, y, scores[holder], scores[bad])
    print(
        f"  v{holder} - v{bad} on {metric}: {iv.estimate:+.4f}, 95% [{iv.low:+.4f}, {iv.high:+.4f}]"
        f" ({iv.method}, {iv.rows_used:,} of {iv.rows_total:,} rows)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--days", type=int, default=36)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--traffic", default="concept-drift")
    parser.add_argument("--break-feature", action="append", default=[])
    args = parser.parse_args()
    _workspace(args.seed)
    from modelops.config.settings import load_settings
    from modelops.services import simulate

    settings = load_settings()
    holder = _holder(settings, args.seed)
    try:
        result = simulate.simulate(
            settings,
            PROJECT,
            scenario="bad-model",
            days=args.days,
            rate=args.rate,
            seed=args.seed,
            drill_traffic=args.traffic,
            break_features=tuple(args.break_feature),
        )
    except simulate.DrillRefusedError as exc:
        _verdicts(settings)
        print(f"drill refused: {exc}")
        return
    _verdicts(settings)
    assert result.drill is not None
    print(
        f"drill: v{result.drill.bad_version} ({', '.join(result.drill.broken) or 'named'}) over "
        f"v{holder}; {result.traffic} {result.start}..{result.end}, {result.events:,} events, "
        f"{result.positives} positives"
    )
    _live(settings, holder, result.drill.bad_version, "pr_auc")


if __name__ == "__main__":
    main()
