"""What one validation needs from the settings, resolved once at its start.

The project, the ledger, the tracking client's settings and the opened feature store with the
project's feature service are looked up here, in that order, and handed down as one
:class:`GateContext`: join, score, judge and record read it instead of going back to the
settings (the feature store is opened once per validation).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.integrations import feast as feast_io
from modelops.integrations import git as git_io
from modelops.integrations.database import Ledger
from modelops.integrations.mlflow import Tracking
from modelops.services.context import feature_repo, tracking
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for
from modelops.services.features import project_service
from modelops.services.gate.errors import EvaluationError
from modelops.services.gate.record import failures_recorded
from modelops.services.identity import resolve_actor

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

JOIN_CACHE = "holdout-joins"
"""Folder under the state directory keeping the holdout joins for the next validations."""


@dataclass(frozen=True)
class GateContext:
    """One validation's handles and facts, resolved once from the settings.

    ``settings`` is kept for the join only: the label table lives under its data directory.
    """

    settings: Settings
    project: Project
    ledger: Ledger
    tracking: Tracking
    store: FeatureStore
    service: FeatureService
    served: frozenset[str]
    """The features the project's feature service serves."""
    join_cache: Path
    environment: str
    actor: str
    commit: str
    record: bool
    """False: compute the verdict and write nothing (ledger, MLflow)."""

    def failures_recorded(self, version: str) -> AbstractContextManager[None]:
        """Errors inside become :class:`EvaluationError`, recorded as a failed validation."""
        return failures_recorded(
            self.ledger,
            self.project,
            self.environment,
            version,
            self.actor,
            self.commit,
            record=self.record,
        )


def open_context(
    settings: Settings,
    project_name: str,
    environment: str,
    version: str,
    actor: str | None,
    *,
    record: bool,
) -> GateContext:
    """Resolve the gate's context for gating ``version`` against ``environment``.

    An unknown environment, project or ledger raises as it is (nothing can be recorded yet);
    a feature store or feature service that cannot be opened is a failed validation.
    """
    if environment not in settings.environments:
        raise EvaluationError(
            f"--against {environment}: unknown environment (configured: "
            f"{', '.join(settings.environments)})"
        )
    project = project_for(settings, project_name)
    ledger = ledger_for(settings)
    who = resolve_actor(actor, settings.root) or "unknown"
    commit = git_io.head_commit(settings.root)
    with failures_recorded(ledger, project, environment, version, who, commit, record=record):
        handles = tracking(settings)
        store = feast_io.open_store(feature_repo(settings))
        service = project_service(settings, project, store)
        served = frozenset(feast_io.service_features(service))
    return GateContext(
        settings=settings,
        project=project,
        ledger=ledger,
        tracking=handles,
        store=store,
        service=service,
        served=served,
        join_cache=settings.resolved_state_dir / JOIN_CACHE,
        environment=environment,
        actor=who,
        commit=commit,
        record=record,
    )
