"""The shared test helpers in tests/support.py and tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import pytest

from support import skip_or_fail, under_ci


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1", "yes", "Yes", " true "])
def test_ci_on_fails_a_missing_tool_instead_of_skipping(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", value)
    assert under_ci()
    with pytest.raises(pytest.fail.Exception, match="no-such-tool"):
        skip_or_fail("needs no-such-tool")


@pytest.mark.parametrize("value", ["false", "0", "no", "", "off", "maybe"])
def test_ci_off_skips_with_the_reason(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", value)
    assert not under_ci()
    with pytest.raises(pytest.skip.Exception, match="no-such-tool"):
        skip_or_fail("needs no-such-tool")


def test_no_ci_variable_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-service"):
        skip_or_fail("no-such-service unreachable")


def test_the_fixture_is_the_helper(
    unavailable: Callable[[str], NoReturn], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert unavailable is skip_or_fail
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="redis unreachable"):
        unavailable("redis unreachable")
