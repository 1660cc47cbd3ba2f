"""Python-mode on-demand views applied to the training join by their own function on their own
inputs (modelops.integrations.feast.on_demand) give exactly Feast's own offline answer."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import online_parity as parity
from modelops.config.settings import Settings
from modelops.integrations import feast as feast_io
from modelops.integrations.feast import join
from modelops.integrations.feast.on_demand import join_plan


def every_type(inputs: dict) -> dict:
    """Python mode over every value type the parity view stores, None where an input is."""
    text, number, items = [], [], []
    for i64, i32, f64, f32, label, flag, stamp, blob, floats, amount in zip(
        inputs["i64"],
        inputs["i32"],
        inputs["f64"],
        inputs["f32"],
        inputs["text"],
        inputs["flag"],
        inputs["stamp"],
        inputs["blob"],
        inputs["floats"],
        inputs["amount"],
        strict=True,
    ):
        text.append(None if label is None else f"{label}|{i64}|{i32}|{flag}|{stamp}|{blob!r}")
        number.append(None if f64 is None or amount is None else f64 * amount + (f32 or 0.0))
        items.append(None if floats is None else len(floats))
    return {"described": text, "scaled": number, "items": items}


def seen_year(inputs: dict) -> dict:
    """Python mode, reading a column of the join that is none of its inputs (the event time)
    where there is one: Feast's inference calls it with its inputs only."""
    stamps = inputs.get("event_timestamp") or [None] * len(inputs["amount"])
    return {"event_year": [-1 if t is None else t.year for t in stamps]}


def _feasts_own(store: Any, service: Any, entities: pd.DataFrame) -> pd.DataFrame:
    """Feast's offline path as it stands: the service joined and its views applied by Feast."""
    with contextlib.chdir(store.repo_path):
        return store.get_historical_features(entity_df=entities, features=service).to_df()


def _ours(store: Any, service: Any, entities: pd.DataFrame) -> pd.DataFrame:
    with contextlib.chdir(store.repo_path):
        return join._joined_in_chunks(store, service, entities)


def _by_row(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("row").reset_index(drop=True)


@pytest.fixture
def feast_transform_forbidden(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every view Feast's own ``transform_arrow`` is called for."""
    from feast.on_demand_feature_view import OnDemandFeatureView

    called: list[str] = []
    original = OnDemandFeatureView.transform_arrow

    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        called.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(OnDemandFeatureView, "transform_arrow", recorded)
    return called


# ------------------------------------------------------------- the repository's own services


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Both projects' generated data, applied (a seed neither project's tests use)."""
    import os

    from modelops.config.settings import load_settings
    from modelops.services import data, features
    from support import copy_workspace

    saved = {k: v for k, v in os.environ.items() if k.startswith("MODELOPS_")}
    for name in saved:
        del os.environ[name]
    try:
        settings = load_settings(copy_workspace(tmp_path_factory.mktemp("odfv") / "repo"))
        data.generate(settings, ["credit_risk", "fraud"], rows=3000, seed=71)
        features.apply(settings)
    finally:
        os.environ.update(saved)
    return settings


def _request_values(name: str, rng: np.random.Generator, n: int) -> pd.Series:
    """Request values of the field ``name``, about one in eight missing."""
    missing = rng.random(n) < 0.125
    if name in ("requested_amount", "amount"):
        values = pd.Series(rng.lognormal(8, 2, n)).round(2)
        values[rng.random(n) < 0.05] = 0.0
        return values.mask(missing)
    if name == "hour_of_day":
        return pd.Series(rng.integers(0, 24, n), dtype="Int64").mask(missing)
    categories = np.array(["grocery", "travel", "", "électronique"], dtype=object)
    return pd.Series(rng.choice(categories, n), dtype=object).mask(missing, None)


def _entities(
    settings: Settings, store: Any, service: Any, key: str, source: str, seed: int
) -> pd.DataFrame:
    """Entity rows over the generated source: known keys at times before, inside and long after
    their feature rows (nulls, values, TTL-expired nulls), unknown keys, request fields."""
    path = settings.resolved_feature_repo / "data" / f"{source}.parquet"
    stored = pd.read_parquet(path, columns=[key, "event_timestamp"])
    rng = np.random.default_rng(seed)
    n = 1500
    keys = rng.choice(stored[key].unique(), n).astype("int64")
    unknown = rng.random(n) < 0.1
    keys[unknown] = 10**9 + np.arange(int(unknown.sum()))
    start = stored["event_timestamp"].min() - pd.Timedelta(days=30)
    span = (stored["event_timestamp"].max() + pd.Timedelta(days=90) - start).value // 1000
    times = start + pd.to_timedelta(rng.integers(0, span, n), "us")
    frame = pd.DataFrame({key: keys, "event_timestamp": times, "row": np.arange(n)})
    for field in feast_io.service_request_fields(store, service):
        frame[field] = _request_values(field, rng, n)
    return frame


@pytest.mark.parametrize(
    ("name", "key", "source"),
    [
        ("credit_risk_v1", "company_id", "credit_company_monthly"),
        ("fraud_v1", "account_id", "fraud_account_activity"),
    ],
)
def test_the_projects_python_views_join_as_feast_applies_them(
    generated: Settings,
    name: str,
    key: str,
    source: str,
    monkeypatch: pytest.MonkeyPatch,
    feast_transform_forbidden: list[str],
) -> None:
    store = feast_io.open_store(feast_io_repo(generated))
    service = feast_io.feature_service(store, name)
    entities = _entities(generated, store, service, key, source, seed=len(name))
    theirs = _by_row(_feasts_own(store, service, entities))
    feast_transform_forbidden.clear()
    monkeypatch.setattr(join, "JOIN_CHUNK_ROWS", 97)  # chunks whose outputs may be all null
    ours = _by_row(_ours(store, service, entities))
    assert feast_transform_forbidden == []  # none of the views went through Feast's transform
    pd.testing.assert_frame_equal(ours, theirs)
    on_demand = [f for f in feast_io.service_features(service) if f not in view_features(store)]
    assert on_demand, "the service has on-demand features"
    for feature in on_demand:
        values = theirs[feature]
        assert values.isna().sum() > 20 and values.notna().sum() > 500, feature


def feast_io_repo(settings: Settings) -> Path:
    from modelops.services.context import feature_repo

    return feature_repo(settings)


def view_features(store: Any) -> set[str]:
    return {f.name for v in store.list_feature_views() for f in v.features}


def test_the_plan_asks_feast_for_the_views_sources_only(generated: Settings) -> None:
    store = feast_io.open_store(feast_io_repo(generated))
    plan = join_plan(store, feast_io.feature_service(store, "fraud_v1"))
    assert [v.view.name for v in plan.views] == ["payment_features"]
    assert plan.features is not None
    assert not [r for r in plan.features if r.startswith("payment_features:")]
    assert "account_activity:txn_amount_24h" in plan.features
    assert plan.views[0].requests == ("amount", "merchant_category", "hour_of_day")
    assert plan.views[0].keys == ("account_id",)


# ------------------------------------------------------ every value type, and Feast's fallback


def _with_view(store: Any, udf: Any, outputs: dict[str, Any]) -> Any:
    """``store`` with a python-mode view of ``udf`` over the parity view and its request field,
    and a service of both named after the function."""
    from feast import FeatureService, Field, RequestSource
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import Float64

    view = store.get_feature_view(parity.VIEW)
    request = RequestSource(name="call", schema=[Field(name="amount", dtype=Float64)])
    on_demand = on_demand_feature_view(
        sources=[view, request],
        schema=[Field(name=name, dtype=dtype) for name, dtype in outputs.items()],
        mode="python",
    )(udf)
    store.apply([on_demand, FeatureService(name=udf.__name__, features=[view, on_demand])])
    return store.get_feature_service(udf.__name__)


@pytest.fixture(scope="module")
def parity_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, pd.DataFrame]:
    """online_parity's store (built once: its views' functions cannot be declared twice in one
    process) and entity rows: every key, unknown ones, one missing request value."""
    root = tmp_path_factory.mktemp("parity")
    store, rows = parity.build(root, {"type": "sqlite", "path": str(root / "online.db")})
    frame = pd.DataFrame(rows)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    times = [now - timedelta(minutes=30 * i) for i in range(len(frame))]
    frame = frame.assign(event_timestamp=times, row=range(len(frame)))
    frame.loc[3, "amount"] = None
    return store, frame


def test_a_view_over_every_value_type_joins_as_feast_applies_it(
    parity_store: tuple[Any, pd.DataFrame], feast_transform_forbidden: list[str]
) -> None:
    from feast.types import Float64, Int64, String

    store, entities = parity_store
    service = _with_view(
        store, every_type, {"described": String, "scaled": Float64, "items": Int64}
    )
    theirs = _by_row(_feasts_own(store, service, entities))
    feast_transform_forbidden.clear()
    ours = _by_row(_ours(store, service, entities))
    assert feast_transform_forbidden == []
    pd.testing.assert_frame_equal(ours, theirs)
    for name in ("described", "scaled", "items"):
        assert theirs[name].notna().sum() >= 4 and theirs[name].isna().sum() >= 4, name


def test_a_pandas_view_is_left_to_feast(
    parity_store: tuple[Any, pd.DataFrame],
    caplog: pytest.LogCaptureFixture,
    feast_transform_forbidden: list[str],
) -> None:
    store, entities = parity_store
    service = store.get_feature_service("pandas")
    theirs = _by_row(_feasts_own(store, service, entities))
    with caplog.at_level(logging.INFO, logger="modelops.integrations.feast.on_demand"):
        plan = join_plan(store, service)
        ours = _by_row(_ours(store, service, entities))
    assert plan.features is None and plan.views == ()
    assert "applied by Feast: it is in pandas mode" in caplog.text
    assert "ratio_features_pandas" in feast_transform_forbidden
    pd.testing.assert_frame_equal(ours, theirs)


def test_a_view_whose_source_is_not_a_feature_view_is_left_to_feast(
    parity_store: tuple[Any, pd.DataFrame],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, _ = parity_store

    def not_a_feature_view(name: str, *args: Any, **kwargs: Any) -> Any:
        raise LookupError(f"Feature view {name} does not exist")

    monkeypatch.setattr(store, "get_feature_view", not_a_feature_view)
    with caplog.at_level(logging.INFO, logger="modelops.integrations.feast.on_demand"):
        plan = join_plan(store, store.get_feature_service("direct"))
    assert plan == type(plan)(None, ())
    assert "join keys are unknown (Feature view everything does not exist)" in caplog.text


def test_a_view_reading_beyond_its_inputs_is_applied_by_feasts_transform(
    parity_store: tuple[Any, pd.DataFrame],
    caplog: pytest.LogCaptureFixture,
    feast_transform_forbidden: list[str],
) -> None:
    from feast.types import Int64

    store, entities = parity_store
    service = _with_view(store, seen_year, {"event_year": Int64})
    theirs = _by_row(_feasts_own(store, service, entities))
    feast_transform_forbidden.clear()
    with caplog.at_level(logging.INFO, logger="modelops.integrations.feast.on_demand"):
        ours = _by_row(_ours(store, service, entities))
    assert feast_transform_forbidden == ["seen_year"]
    assert "seen_year reads 'event_timestamp', beyond its inputs" in caplog.text
    pd.testing.assert_frame_equal(ours, theirs)
    assert (theirs["event_year"] >= 2020).all()
