"""Built training sets are cached next to their join: a hit reads no label and joins nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelops.config.project import load_project
from modelops.config.settings import Settings, load_settings
from modelops.integrations import feast as feast_io
from modelops.services import data, datasets, features
from support import copy_workspace

PROJECT = "credit_risk"
HOLDOUT = ("holdout",)


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = copy_workspace(tmp_path_factory.mktemp("cache") / "repo")
    settings = load_settings(root)
    data.generate(settings, [PROJECT], rows=3000, seed=5)
    features.apply(settings)
    return settings


def _build(settings: Settings, as_of: datetime, cache: Path, **kwargs: Any) -> Any:
    project = load_project(settings.resolved_projects_dir, PROJECT)
    return datasets.build_training_set(
        settings, project, as_of, windows=kwargs.pop("windows", HOLDOUT), join_cache=cache, **kwargs
    )


def _same(a: Any, b: Any) -> None:
    assert a.frames.keys() == b.frames.keys()
    for name in a.frames:
        pd.testing.assert_frame_equal(a.frames[name], b.frames[name])
    assert (a.fingerprints, a.joins, a.availability) == (b.fingerprints, b.joins, b.availability)
    assert (a.features, a.request_fields, a.unlabelled_rows) == (
        b.features,
        b.request_fields,
        b.unlabelled_rows,
    )


def _holdout_known_at(settings: Settings) -> np.ndarray:
    """Distinct times at which holdout labels become known, ascending."""
    project = load_project(settings.resolved_projects_dir, PROJECT)
    labels = datasets.read_labels(settings, project)
    window = project.spec.windows.holdout
    at = pd.to_datetime(labels[project.spec.label.timestamp], utc=True)
    inside = (at >= pd.Timestamp(window.start_ts)) & (at < pd.Timestamp(window.end_ts))
    known = pd.to_datetime(labels.loc[inside, project.spec.label.available_at], utc=True)
    return np.unique(known.to_numpy(dtype="datetime64[ns]"))


class _Watch:
    """Counts the label reads and the point-in-time joins of a build."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = self.joins = 0
        read, join = datasets.read_labels, feast_io.historical_features

        def reading(*args: Any) -> Any:
            self.reads += 1
            return read(*args)

        def joining(*args: Any) -> Any:
            self.joins += 1
            return join(*args)

        monkeypatch.setattr(datasets, "read_labels", reading)
        monkeypatch.setattr(feast_io, "historical_features", joining)


def test_a_second_build_reads_no_label_and_gives_the_same_set(
    credit: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_of = datetime(2027, 1, 1, tzinfo=UTC)
    uncached = datasets.build_training_set(
        credit, load_project(credit.resolved_projects_dir, PROJECT), as_of, windows=HOLDOUT
    )
    first = _build(credit, as_of, tmp_path)
    _same(first, uncached)
    watch = _Watch(monkeypatch)
    again = _build(credit, datetime(2027, 6, 1, tzinfo=UTC), tmp_path)  # knows the same labels
    assert (watch.reads, watch.joins) == (0, 0)
    _same(again, uncached)
    assert sorted(p.name.split(".", 1)[1] for p in tmp_path.glob("*.*")) == [
        "holdout.parquet",
        "json",
        "json",
    ]


def test_a_build_knowing_other_labels_reads_them_again(
    credit: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = _holdout_known_at(credit)
    middle = known[len(known) // 2]
    as_of = pd.Timestamp(middle).to_pydatetime()
    just_before_next = (
        pd.Timestamp(known[len(known) // 2 + 1]) - pd.Timedelta(1, "us")
    ).tz_localize(UTC)
    first = _build(credit, as_of.replace(tzinfo=UTC), tmp_path)
    assert first.unlabelled_rows > 0
    watch = _Watch(monkeypatch)
    same = _build(credit, just_before_next.to_pydatetime(), tmp_path)
    assert (watch.reads, watch.joins) == (0, 0)
    _same(same, first)
    later = pd.Timestamp(known[len(known) // 2 + 1]).tz_localize(UTC).to_pydatetime()
    more = _build(credit, later, tmp_path)
    assert (watch.reads, watch.joins) == (1, 1)  # one more label known: other rows to join
    assert more.frames["holdout"].shape[0] > first.frames["holdout"].shape[0]
    assert more.unlabelled_rows < first.unlabelled_rows
    earlier = _build(credit, as_of.replace(tzinfo=UTC) - pd.Timedelta(1, "us"), tmp_path)
    assert watch.reads == 2  # before the first time: fewer labels known
    assert earlier.frames["holdout"].shape[0] < first.frames["holdout"].shape[0]


def test_a_changed_label_file_or_other_windows_are_not_taken_from_the_cache(
    credit: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_of = datetime(2027, 1, 1, tzinfo=UTC)
    _build(credit, as_of, tmp_path)
    watch = _Watch(monkeypatch)
    _build(credit, as_of, tmp_path, windows=("validation", "holdout"))
    assert (watch.reads, watch.joins) == (1, 1)
    project = load_project(credit.resolved_projects_dir, PROJECT)
    path = datasets.label_path(credit, project)
    original = path.read_bytes()
    try:
        labels = pd.read_parquet(path)
        labels.loc[labels.index[-1], "requested_amount"] += 1.0  # outside the holdout
        labels.to_parquet(path)
        _build(credit, as_of, tmp_path)
        assert (watch.reads, watch.joins) == (2, 1)  # the same holdout rows: their join kept
        holdout = pd.to_datetime(labels["event_timestamp"], utc=True) >= pd.Timestamp(
            project.spec.windows.holdout.start_ts
        )
        labels.loc[labels.index[holdout][0], "requested_amount"] += 1.0
        labels.to_parquet(path)
        changed = _build(credit, as_of, tmp_path)
        assert (watch.reads, watch.joins) == (3, 2)
    finally:
        path.write_bytes(original)
    restored = _build(credit, as_of, tmp_path)
    assert (watch.reads, watch.joins) == (3, 2)  # the original file's entry is still there
    assert restored.fingerprints != changed.fingerprints


def test_a_damaged_cache_file_is_discarded_and_the_set_built_again(
    credit: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    as_of = datetime(2027, 1, 1, tzinfo=UTC)
    first = _build(credit, as_of, tmp_path)
    (frame_file,) = tmp_path.glob("*.parquet")
    frame_file.write_bytes(frame_file.read_bytes()[:-10] + b"0123456789")
    watch = _Watch(monkeypatch)
    with caplog.at_level(logging.WARNING):
        again = _build(credit, as_of, tmp_path)
    assert "discarded the cached join" in caplog.text and frame_file.name in caplog.text
    assert (watch.reads, watch.joins) == (1, 1)
    _same(again, first)
    (entry,) = tmp_path.glob("labels-*.json")
    entry.write_text(entry.read_text().replace('"key', '"kex'))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _same(_build(credit, as_of, tmp_path), first)
    assert "discarded the cached join entry" in caplog.text and watch.reads == 2
    assert watch.joins == 1  # the set itself was intact: found by its join key


def test_the_time_order_is_the_stable_sort_by_time_and_entity() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    times = pd.Series(
        pd.to_datetime(rng.integers(0, 50, n), unit="s", utc=True).as_unit("us"), name="t"
    )
    for keys in (rng.integers(0, 20, n), rng.choice(["b", "a", "c"], n).astype(object)):
        frame = pd.DataFrame({"event_timestamp": times, "company_id": keys, "x": np.arange(n)})
        want = frame.sort_values(["event_timestamp", "company_id"], kind="stable").index
        assert np.array_equal(datasets._time_order(frame, "company_id"), want.to_numpy())
