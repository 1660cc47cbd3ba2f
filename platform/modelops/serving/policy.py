"""Thresholds → actions: the decision a score leads to (project.yaml ``decisions``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelops.config.project import Decisions
from modelops.core.errors import ModelopsError


class NonFiniteScoreError(ModelopsError):
    """The model produced NaN or an infinite score: no decision may be taken on it."""


@dataclass(frozen=True)
class DecisionPolicy:
    """``positive`` at or above the threshold, ``review`` at or above ``review_ratio`` times
    it, ``negative`` below; the same comparison the gate's metrics use (``score >= t``)."""

    threshold: float
    review_ratio: float
    positive: str
    review: str
    negative: str

    @classmethod
    def of(cls, threshold: float, decisions: Decisions) -> DecisionPolicy:
        return cls(
            threshold=threshold,
            review_ratio=decisions.review_ratio,
            positive=decisions.positive,
            review=decisions.review,
            negative=decisions.negative,
        )

    @property
    def review_from(self) -> float:
        return self.review_ratio * self.threshold

    @property
    def actions(self) -> tuple[str, str, str]:
        return (self.positive, self.review, self.negative)

    def decide(self, score: float) -> str:
        if not math.isfinite(score):
            raise NonFiniteScoreError(f"the model scored {score!r}; no decision is taken on it")
        if score >= self.threshold:
            return self.positive
        if score >= self.review_from:
            return self.review
        return self.negative
