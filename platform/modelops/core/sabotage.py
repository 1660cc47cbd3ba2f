"""A training run with features broken on purpose, for drills only.

The bad-model drill needs a version that is genuinely worse than the one it replaces, yet
reaches production the honest way (through the gate). A realistic way such a version comes
about: an upstream job wrote a feature as zeros into the rows a training run learned from, so
the model never learned to read it; or a counter that saturates (``cap``), so the model learned
"several" but never "many". :class:`BrokenFeatures` says which features, and is
recorded on the version (:data:`~modelops.core.tags.DRILL_BROKEN_FEATURES`); the holdout the
training run reports and the gate judges stays intact.

Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelops.core.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

BROKEN_WINDOWS = ("train", "validation")
"""The windows a sabotaged run breaks: those the model is fitted and its threshold chosen on."""
BROKEN_VALUE = 0


@dataclass(frozen=True)
class BrokenFeatures:
    """Features written as :data:`BROKEN_VALUE` (or capped at ``cap``) in the
    :data:`BROKEN_WINDOWS` rows."""

    features: tuple[str, ...]
    cap: int | None = None
    """Values above it written as it (a saturating counter); ``None``: every value zeroed."""

    def __post_init__(self) -> None:
        if not self.features:
            raise ConfigError("a drill's broken features: name at least one")
        if self.cap is not None and (isinstance(self.cap, bool) or self.cap < 1):
            raise ConfigError(f"a drill's cap: {self.cap!r} is not a positive integer")
        if len(set(self.features)) != len(self.features):
            raise ConfigError(f"a drill's broken features: {list(self.features)} repeats a name")

    def check(self, available: list[str]) -> None:
        """Raises ConfigError (one line) for a feature the training set does not have."""
        unknown = [f for f in self.features if f not in available]
        if unknown:
            raise ConfigError(
                f"--break-feature {', '.join(unknown)}: not a feature of this project "
                f"(it has: {', '.join(available)})"
            )

    def how(self) -> str:
        """How the values were broken."""
        if self.cap is None:
            return f"written as {BROKEN_VALUE}"
        return f"capped at {self.cap}"

    def tag(self) -> str:
        """The tag value: which features, how, and in which rows."""
        windows = " and ".join(BROKEN_WINDOWS)
        return f"{','.join(self.features)} {self.how()} in the {windows} rows (drill)"

    def describe(self) -> str:
        """What was broken, in a sentence a ledger reason can carry."""
        names = ", ".join(self.features)
        them = "that feature" if len(self.features) == 1 else "those features"
        if self.cap is not None:
            return (
                f"trained with {names} broken ({self.how()} in the rows it learned from, as a "
                f"saturating upstream counter might), so it cannot read high values of {them}"
            )
        return (
            f"trained with {names} broken ({self.how()} in the rows it learned from, as an "
            f"upstream job might), so it cannot read {them}"
        )

    def apply(self, frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """``frames`` with the features broken in the :data:`BROKEN_WINDOWS`; others as given."""
        broken = dict(frames)
        for window in BROKEN_WINDOWS:
            frame = frames[window].copy()
            for feature in self.features:
                if self.cap is None:
                    frame[feature] = BROKEN_VALUE
                else:
                    frame[feature] = frame[feature].clip(upper=self.cap)
            broken[window] = frame
        return broken
