"""Closing the registrations a killed ``train`` left open, whichever host it ran on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelops.core import registration
from modelops.core import tags as tag_keys

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OLD = NOW - registration.GRACE - timedelta(seconds=1)
RECENT = NOW - registration.GRACE + timedelta(minutes=5)


def _version(
    number: str,
    role: str,
    started: datetime | None,
    train: str = "t1",
    aliases: tuple[str, ...] = (),
    **extra: str,
) -> registration.Registered:
    tags = {tag_keys.ROLE: role, **extra}
    if started is not None:
        tags[tag_keys.REGISTRATION_PENDING] = registration.Marker(train, started).text()
    return registration.Registered(number, tags, aliases)


def test_the_marker_reads_back() -> None:
    marker = registration.Marker("abc", NOW)
    assert registration.read_marker(marker.text()) == marker


@pytest.mark.parametrize(
    "text",
    [
        "",
        "in progress",
        "{}",
        '{"train": "a", "started": "yesterday"}',
        '{"train": "a", "started": "2026-12-07T12:00:00"}',
        '{"train": "", "started": "2026-12-07T12:00:00+00:00"}',
    ],
)
def test_an_unreadable_marker_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="unreadable registration marker"):
        registration.read_marker(text)


def test_a_baseline_left_alone_past_the_grace_period_is_deleted() -> None:
    plan = registration.plan([_version("3", "baseline", OLD)], NOW)
    assert plan.delete == ["3"]
    assert plan.pair == plan.clear == plan.notes == []


def test_a_registration_still_within_its_grace_period_is_left_to_its_train() -> None:
    plan = registration.plan([_version("3", "baseline", RECENT)], NOW)
    assert plan == registration.Plan()


def test_a_train_seen_dead_is_closed_before_its_grace_period_ends() -> None:
    plan = registration.plan([_version("3", "baseline", RECENT)], NOW, gone={"3"})
    assert plan.delete == ["3"]


def test_a_pair_registered_but_not_closed_is_completed_not_deleted() -> None:
    baseline = _version("3", "baseline", OLD)
    candidate = _version("4", "candidate", OLD, **{tag_keys.BASELINE_VERSION: "3"})
    plan = registration.plan([baseline, candidate], NOW)
    assert plan.delete == []
    assert plan.pair == [("3", "4")]
    assert plan.clear == ["3", "4"]


def test_a_closed_pair_whose_markers_remain_only_loses_its_markers() -> None:
    baseline = _version("3", "baseline", OLD, **{tag_keys.CANDIDATE_VERSION: "4"})
    candidate = _version("4", "candidate", OLD, **{tag_keys.BASELINE_VERSION: "3"})
    plan = registration.plan([baseline, candidate], NOW)
    assert (plan.delete, plan.pair, plan.clear) == ([], [], ["3", "4"])


def test_versions_of_different_trains_are_never_paired() -> None:
    baseline = _version("3", "baseline", OLD, train="t1")
    candidate = _version("4", "candidate", OLD, train="t2", **{tag_keys.BASELINE_VERSION: "3"})
    plan = registration.plan([baseline, candidate], NOW)
    assert plan.delete == ["3", "4"]
    assert plan.pair == []


def test_unmarked_versions_are_not_this_plans_business() -> None:
    plan = registration.plan(
        [_version("1", "baseline", None), _version("2", "candidate", None)], NOW
    )
    assert plan == registration.Plan()


def test_a_version_an_alias_points_at_is_kept_and_reported() -> None:
    plan = registration.plan([_version("3", "baseline", OLD, aliases=("dev",))], NOW)
    assert plan.delete == []
    assert plan.notes == ["v3: registration never completed but alias dev points at it; left alone"]


def test_an_unreadable_marker_keeps_its_version_and_says_why() -> None:
    odd = registration.Registered(
        "5", {tag_keys.ROLE: "baseline", tag_keys.REGISTRATION_PENDING: "yes"}
    )
    plan = registration.plan([odd], NOW)
    assert plan.delete == []
    assert plan.notes == ["v5: unreadable registration marker 'yes'; left alone"]
