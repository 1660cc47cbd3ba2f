"""Features broken on purpose for a drill: only in the rows a model learns from."""

from __future__ import annotations

import pandas as pd
import pytest

from modelops.core.errors import ConfigError
from modelops.core.sabotage import BrokenFeatures


def _frames() -> dict[str, pd.DataFrame]:
    frame = pd.DataFrame({"a": [3, 1, 4], "b": [1.5, 9.0, 2.6], "label": [0, 1, 0]})
    return {w: frame.copy() for w in ("train", "validation", "holdout")}


def test_breaks_the_named_features_in_the_rows_a_model_learns_from() -> None:
    frames = _frames()
    broken = BrokenFeatures(("a",)).apply(frames)
    for window in ("train", "validation"):
        assert broken[window]["a"].tolist() == [0, 0, 0]
        assert broken[window]["b"].tolist() == [1.5, 9.0, 2.6]
    assert broken["holdout"]["a"].tolist() == [3, 1, 4]  # what the gate judges stays intact
    assert frames["train"]["a"].tolist() == [3, 1, 4]  # the caller's frames are not changed


def test_says_what_it_broke_and_refuses_unknown_or_no_features() -> None:
    sabotage = BrokenFeatures(("a", "b"))
    assert sabotage.tag() == "a,b written as 0 in the train and validation rows (drill)"
    assert "a, b broken" in sabotage.describe()
    with pytest.raises(ConfigError, match="--break-feature c: not a feature"):
        BrokenFeatures(("c",)).check(["a", "b"])
    with pytest.raises(ConfigError, match="at least one"):
        BrokenFeatures(())
    with pytest.raises(ConfigError, match="repeats"):
        BrokenFeatures(("a", "a"))


def test_a_cap_saturates_the_features_instead_of_zeroing_them() -> None:
    frames = _frames()
    sabotage = BrokenFeatures(("a",), cap=2)
    broken = sabotage.apply(frames)
    for window in ("train", "validation"):
        assert broken[window]["a"].tolist() == [2, 1, 2]
        assert broken[window]["b"].tolist() == [1.5, 9.0, 2.6]
    assert broken["holdout"]["a"].tolist() == [3, 1, 4]
    assert sabotage.tag() == "a capped at 2 in the train and validation rows (drill)"
    assert "capped at 2" in sabotage.describe() and "high values" in sabotage.describe()
    for bad in (0, -1, True):
        with pytest.raises(ConfigError, match="not a positive integer"):
            BrokenFeatures(("a",), cap=bad)
