"""A small Feast repository with one feature of every value type, for the direct-reader parity
tests on SQLite (tests/unit/test_online_reader.py) and Redis
(tests/integration/test_online_reader_redis.py).

Rows written online: present rows with ordinary values, a row whose values are all null, a row
long past its view's TTL, keys nobody wrote; a python-mode on-demand view over the stored
features and a request field, and the same view in pandas mode (which the direct reader leaves
to the SDK).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

PROJECT = "parity"
VIEW = "everything"
KEYS_WRITTEN = [1, 2, 3, 4, 5, 6, 7]
KEY_ALL_NULL = 6
KEY_EXPIRED = 7
KEYS_UNKNOWN = [8, 10**12]
TTL = timedelta(days=1)


def ratio_features(inputs: dict) -> dict:
    """Python mode: stored and request values combined, None where an input is null (plain
    annotations: Feast re-runs the source text with builtins, pandas and numpy only)."""
    scaled, label, late = [], [], []
    for amount, f64, i64, text, flag, stamp in zip(
        inputs["amount"],
        inputs["f64"],
        inputs["i64"],
        inputs["text"],
        inputs["flag"],
        inputs["stamp"],
        strict=True,
    ):
        scaled.append(None if amount is None or f64 is None else amount * f64)
        label.append(None if text is None else f"{text}:{i64}:{flag}")
        late.append(None if stamp is None else stamp.hour >= 12)
    return {"scaled": scaled, "label": label, "late": late}


def ratio_features_pandas(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=inputs.index)
    out["scaled_pd"] = inputs["amount"] * inputs["f64"]
    return out


def _rows(now: datetime) -> pd.DataFrame:
    stamps = [now - timedelta(hours=h) for h in (1, 2, 3, 4, 5, 6)] + [now - 30 * TTL]
    frame = pd.DataFrame(
        {
            "key": KEYS_WRITTEN,
            "i64": [0, -1, 2**62, 42, 7, None, 9],
            "i32": [0, -(2**31), 2**31 - 1, 5, 6, None, 8],
            "f64": [0.0, -1.5, 1e308, math.nan, 2.5, None, 3.25],
            "f32": [0.0, 1.5, -3.4e38, 0.1, 2.0, None, 4.0],
            "text": ["", "é ünïcode", "x" * 300, "a,b;c", "plain", None, "old"],
            "flag": [True, False, True, False, True, None, False],
            "stamp": [
                datetime(2020, 1, 1, 13, tzinfo=UTC),
                datetime(1970, 1, 1, tzinfo=UTC),
                datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
                now,
                datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
                None,
                datetime(2019, 6, 1, tzinfo=UTC),
            ],
            "blob": [b"", b"\x00\xff", b"abc", b"z", b"y", None, b"q"],
            "floats": [[], [1.0, -2.5], [math.inf], [0.1], [2.0], None, [3.0]],
            "event_timestamp": stamps,
            "created": stamps,
        }
    )
    for name in ("i64", "i32"):
        frame[name] = frame[name].astype("Int64")
    return frame


def _fresh(fn: Any) -> Any:
    """A copy of ``fn`` for Feast's decorator, which rewrites the function's ``__module__`` (to
    run its source later): on the original, a second store built in the same process (a unit
    and an integration test in one worker) could no longer find its source."""
    import types

    copy = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    copy.__doc__, copy.__annotations__ = fn.__doc__, dict(fn.__annotations__)
    copy.__module__ = fn.__module__
    return copy


def build(root: Path, online_store: Any) -> tuple[Any, list[dict[str, Any]]]:
    """A Feast store under ``root`` with ``online_store`` (a Feast online-store config), its
    online rows written; and the entity rows to read (every key, each twice in a different
    order, plus the unknown keys)."""
    from feast import (
        Entity,
        FeatureService,
        FeatureStore,
        FeatureView,
        Field,
        FileSource,
        RepoConfig,
        RequestSource,
        ValueType,
    )
    from feast.on_demand_feature_view import on_demand_feature_view
    from feast.types import (
        Array,
        Bool,
        Bytes,
        Float32,
        Float64,
        Int32,
        Int64,
        String,
        UnixTimestamp,
    )

    root.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    frame = _rows(now)
    frame.to_parquet(root / "source.parquet")
    config = RepoConfig(
        project=PROJECT,
        provider="local",
        registry=str(root / "registry.db"),
        online_store=online_store,
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config, repo_path=str(root))
    entity = Entity(name="thing", join_keys=["key"], value_type=ValueType.INT64)
    view = FeatureView(
        name=VIEW,
        entities=[entity],
        ttl=TTL,
        schema=[
            Field(name="key", dtype=Int64),
            Field(name="i64", dtype=Int64),
            Field(name="i32", dtype=Int32),
            Field(name="f64", dtype=Float64),
            Field(name="f32", dtype=Float32),
            Field(name="text", dtype=String),
            Field(name="flag", dtype=Bool),
            Field(name="stamp", dtype=UnixTimestamp),
            Field(name="blob", dtype=Bytes),
            Field(name="floats", dtype=Array(Float64)),
        ],
        source=FileSource(
            path=str(root / "source.parquet"),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        ),
        online=True,
    )
    request = RequestSource(name="call", schema=[Field(name="amount", dtype=Float64)])
    python_view = on_demand_feature_view(
        sources=[view, request],
        schema=[
            Field(name="scaled", dtype=Float64),
            Field(name="label", dtype=String),
            Field(name="late", dtype=Bool),
        ],
        mode="python",
    )(_fresh(ratio_features))
    pandas_view = on_demand_feature_view(
        sources=[view, request],
        schema=[Field(name="scaled_pd", dtype=Float64)],
        mode="pandas",
    )(_fresh(ratio_features_pandas))
    direct_service = FeatureService(name="direct", features=[view, python_view])
    pandas_service = FeatureService(name="pandas", features=[view, pandas_view])
    store.apply([entity, view, request, python_view, pandas_view, direct_service, pandas_service])
    store.write_to_online_store(VIEW, frame)
    keys = KEYS_WRITTEN + KEYS_UNKNOWN
    amounts = [0.0, 1.5, -2.0, 1e10, 3.0, 4.25, -0.0, 6.0, 7.0]
    rows = [{"key": k, "amount": a} for k, a in zip(keys, amounts, strict=True)]
    rows += [{"key": k, "amount": 2.0} for k in reversed(keys)]
    return store, rows


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, and of the same type (an int is not a float here)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def differences(direct: Any, sdk: Any, names: list[str], found: bool = True) -> list[str]:
    """Every (feature, row) where the two reads disagree, and (``found``) every view whose found
    flags do."""
    problems = []
    for name in names:
        ours, theirs = direct.columns.get(name), sdk.columns.get(name)
        if ours is None or theirs is None or len(ours) != len(theirs):
            problems.append(f"{name}: direct {ours!r} sdk {theirs!r}")
            continue
        problems += [
            f"{name}[{i}]: direct {x!r} sdk {y!r}"
            for i, (x, y) in enumerate(zip(ours, theirs, strict=True))
            if not same(x, y)
        ]
    if found and direct.found != sdk.found:
        problems.append(f"found: direct {direct.found} sdk {sdk.found}")
    return problems


FEATURES = ["i64", "i32", "f64", "f32", "text", "flag", "stamp", "blob", "floats"]
ON_DEMAND = ["scaled", "label", "late"]
