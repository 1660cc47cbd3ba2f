"""The fraud training join with its python-mode on-demand view, and what the view costs on one
150,000-row join chunk applied by Feast (the whole joined table converted to Python) and by
modelops.integrations.feast.on_demand (the view's own inputs only); the chunk joined by Feast's
``get_historical_features`` of the service (its own path) and by our ``historical_features``.

Run with ``make bench`` or on its own:
``.venv/bin/python -m pytest tests/benchmarks/test_join_benchmark.py -s -p no:cacheprovider``.
Default-size fraud data (200,000 payments); the labelled rows up to 2026-02-01 are the training
join's entity rows, the earliest 150,000 of them the chunk (the join's chunk size). Best of
three for the view, of two for the joins; the load average is printed with the figures.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from modelops.config.project import load_project
from modelops.config.settings import Settings
from modelops.integrations import feast as feast_io
from modelops.integrations.feast.join import JOIN_CHUNK_ROWS
from modelops.integrations.feast.on_demand import apply_views, join_plan
from modelops.services import data, datasets, features
from modelops.services.context import feature_repo


def _best(run: Callable[[], Any], times: int) -> float:
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _entity_rows(settings: Settings) -> pd.DataFrame:
    project = load_project(settings.resolved_projects_dir, "fraud")
    split, _ = datasets.split_labels(
        datasets.read_labels(settings, project), project, datetime(2026, 2, 1, tzinfo=UTC)
    )
    label = project.spec.label
    frame = split.drop(columns=[c for c in [label.available_at] if c])
    return frame.rename(columns={label.timestamp: "event_timestamp"}).reset_index(drop=True)


def test_python_view_on_the_fraud_training_join(workspace: Settings) -> None:
    data.generate(workspace, ["fraud"])
    features.apply(workspace)
    store = feast_io.open_store(feature_repo(workspace))
    service = feast_io.feature_service(store, "fraud_v1")
    entities = _entity_rows(workspace)
    chunk = entities.sort_values("event_timestamp", kind="stable").iloc[:JOIN_CHUNK_ROWS]
    chunk = chunk.reset_index(drop=True)
    plan = join_plan(store, service)
    (view,) = plan.views
    with contextlib.chdir(store.repo_path):
        table = store.get_historical_features(entity_df=chunk, features=plan.features).to_arrow()
        ours = apply_views(plan, table)
        theirs = view.view.transform_arrow(table, False)
        for name in sorted(view.outputs):
            assert ours[name].equals(theirs[name]), name
        feast_view = _best(lambda: view.view.transform_arrow(table, False), 3)
        our_view = _best(lambda: apply_views(plan, table), 3)
        whole = _best(table.to_pydict, 3)
        feast_join = _best(
            lambda: store.get_historical_features(entity_df=chunk, features=service).to_arrow(), 2
        )
    chunk_join = _best(lambda: feast_io.historical_features(store, service, chunk), 2)
    training_join = _best(lambda: feast_io.historical_features(store, service, entities), 2)
    print(
        f"\nload {os.getloadavg()[0]:.1f}; the view on a {len(chunk):,}-row chunk: Feast "
        f"{feast_view:.2f} s (the whole table to_pydict alone {whole:.2f} s), ours "
        f"{our_view:.2f} s ({feast_view / our_view:.1f}x); join of the chunk: Feast's "
        f"get_historical_features {feast_join:.2f} s, historical_features {chunk_join:.2f} s; "
        f"training join ({len(entities):,} rows) {training_join:.2f} s"
    )
    assert our_view < feast_view
