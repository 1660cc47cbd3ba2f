"""Identities compared one way: case, spaces, git's "Name <email>" form."""

from __future__ import annotations

import pytest

from modelops.core.identity import Identity, listed, same_person


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("demo-ci", "DEMO-CI", True),
        ("Alice Martin <alice@example.com>", "alice  martin", True),
        ("Alice Martin <alice@example.com>", "ALICE@example.com", True),
        ("alice@example.com", "Alice <alice@example.com>", True),
        ("alice", "alicia", False),
        ("Alice <alice@example.com>", "Alice2 <alice2@example.com>", False),
        ("", "", False),
        (None, "alice", False),
    ],
)
def test_same_person(a: str | None, b: str | None, same: bool) -> None:
    assert same_person(a, b) is same
    assert same_person(b, a) is same


def test_parse_and_lists() -> None:
    assert Identity.parse(" Bob   Smith <BOB@x.io> ") == Identity("bob smith", "bob@x.io")
    assert Identity.parse("bob@x.io") == Identity(None, "bob@x.io")
    assert listed("BOB SMITH", ["carol", "Bob Smith <bob@x.io>"])
    assert not listed("mallory", ["carol", "Bob Smith <bob@x.io>"])
    assert not listed("", [""])
