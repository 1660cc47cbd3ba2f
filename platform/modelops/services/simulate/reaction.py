"""How fast the platform reacts to a bad model: after a drill, the monitor runs over simulated
time until one run rolls back, and each step back to the previous version serving is timed
from that run's start (decision, ledger entry, MLflow alias, GitOps commit, service reload)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.integrations.gitops import GitOpsError, GitOpsRepo
from modelops.integrations.service_http import ServiceClient
from modelops.services.context import check_environment, tracking
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for
from modelops.services.simulate.errors import SimulationError
from modelops.services.simulate.through_service import service_version

if TYPE_CHECKING:
    import pandas as pd

    from modelops.integrations.database import Ledger
    from modelops.services.monitor import MonitorRun, Outcome

REACTION_TARGET_S = 30.0
POLL_S = 0.1
"""How often the watcher looks at the GitOps branch and values file (the service: every
third look)."""


@dataclass(frozen=True)
class Reaction:
    """Seconds from the start of the first monitor run that held the evidence to each step of
    the previous version serving again (None: not reached or not measured)."""

    project: str
    environment: str
    bad_version: str
    previous_version: str | None
    run_id: str | None
    run_started_at: datetime | None
    as_of: datetime | None
    runs: tuple[tuple[str, datetime, str], ...]
    """Every monitor run made: (run id, as_of, decision headline)."""
    evidence_s: float | None = None
    """The run decided to roll back (its own timings, up to the decision)."""
    ledger_s: float | None = None
    """The rollback entry recorded (the ledger's timestamp)."""
    alias_s: float | None = None
    """The MLflow alias back on the previous version: an upper bound, the moment the GitOps
    values file was rewritten (the alias moves before the GitOps step starts)."""
    gitops_s: float | None = None
    """The GitOps commit on the repository's branch."""
    service_s: float | None = None
    """The local service reports the previous version (``/metrics`` ``modelops_model_info``)."""
    run_seconds: float | None = None
    target_s: float = REACTION_TARGET_S
    notes: tuple[str, ...] = ()

    @property
    def total_s(self) -> float | None:
        """Up to the previous version serving: the service step when one was watched, else the
        GitOps commit (what a cluster's Argo CD syncs from)."""
        return self.service_s if self.service_s is not None else self.gitops_s

    @property
    def within_target(self) -> bool:
        return self.total_s is not None and self.total_s <= self.target_s

    @property
    def steps(self) -> dict[str, float | None]:
        return {
            "evidence": self.evidence_s,
            "ledger": self.ledger_s,
            "alias": self.alias_s,
            "gitops_commit": self.gitops_s,
            "service_reloaded": self.service_s,
        }


class _Watcher(threading.Thread):
    """Polls, from the moment it starts, the GitOps branch, the environment's values file and
    the local service; records the first moment each shows the rollback."""

    def __init__(
        self, settings: Settings, project: str, environment: str, target: str, url: str | None
    ) -> None:
        from modelops.core.release import values_path

        super().__init__(name="reaction-watch", daemon=True)
        self.repo = GitOpsRepo(settings.resolved_gitops_repo)
        self.values = values_path(environment, project)
        self.target = target
        self.url = url
        self.seen: dict[str, datetime] = {}
        self._stop_event = threading.Event()
        self._polls = 0
        self._head = self.repo.revision()
        self._values = self._read_values()
        self.served_before = service_version(url) if url else None
        self._client = ServiceClient(url, timeout=1.0) if url else None

    def _read_values(self) -> str | None:
        try:
            return self.repo.read(self.values)
        except (OSError, GitOpsError):
            return None

    def _mark(self, step: str) -> None:
        self.seen.setdefault(step, datetime.now(UTC))

    def _shows_target(self, text: str | None) -> bool:
        pattern = rf"^modelVersion:\s*['\"]?{re.escape(self.target)}['\"]?\s*$"
        return text is not None and re.search(pattern, text, re.M) is not None

    def _poll(self) -> bool:
        """One look at each; True once everything watched has shown the rollback."""
        if "values" not in self.seen:
            text = self._read_values()
            if text != self._values and self._shows_target(text):
                self._mark("values")
        if "gitops" not in self.seen:
            ref = self.repo.revision()
            if ref is not None and ref != self._head:
                self._mark("gitops")
                if self._shows_target(self._read_values()):
                    self._mark("values")
        if (
            self._client is not None
            and "service" not in self.seen
            and self._polls % 3 == 0
            and self._client.served_version() == self.target
        ):
            self._mark("service")
        self._polls += 1
        return "gitops" in self.seen and (self._client is None or "service" in self.seen)

    def run(self) -> None:
        from tenacity import Retrying, retry_if_result, stop_when_event_set, wait_fixed

        retrying = Retrying(
            retry=retry_if_result(lambda done: not done),
            wait=wait_fixed(POLL_S),
            stop=stop_when_event_set(self._stop_event),
            sleep=self._nap,
            retry_error_callback=lambda state: False,
        )
        try:
            retrying(self._poll)
        finally:
            if self._client is not None:
                self._client.close()

    def _nap(self, seconds: float) -> None:
        self._stop_event.wait(seconds)  # a stop ends the wait at once

    def stop(self) -> None:
        self._stop_event.set()


# ----------------------------------------------------------------------------- first run


def _logged_times(
    settings: Settings, project: Project, environment: str, version: str, since: datetime
) -> pd.DataFrame | None:
    """Entity key and time of ``version``'s scored predictions in ``environment`` since
    ``since``, in time order; None when there are none."""
    import pandas as pd

    from modelops.services import prediction_log

    spec = project.spec
    logged = prediction_log.read(
        settings, since, datetime.now(UTC) + timedelta(days=3650), project=spec.name
    )
    if logged.empty:
        return None
    logged = logged[(logged["model_version"] == version) & logged["score"].notna()]
    if "environment" in logged.columns:
        logged = logged[logged["environment"].isna() | (logged["environment"] == environment)]
    if spec.entity not in logged.columns or logged.empty:
        return None
    return pd.DataFrame(
        {
            "_key": logged[spec.entity].astype(str).to_numpy(),
            "_t": pd.to_datetime(logged["logged_at"], utc=True).astype("datetime64[ns, UTC]"),
        }
    ).sort_values("_t", kind="stable")


def _label_times(project: Project, labels: pd.DataFrame) -> pd.DataFrame:
    """Entity key, event time, time known and label of every label row, in time order."""
    import pandas as pd

    spec = project.spec
    stamp, known = spec.label.timestamp, spec.label.available_at
    return pd.DataFrame(
        {
            "_key": labels[spec.entity].astype(str).to_numpy(),
            "_t": pd.to_datetime(labels[stamp], utc=True).astype("datetime64[ns, UTC]"),
            "_known": pd.to_datetime(labels[known if known else stamp], utc=True).astype(
                "datetime64[ns, UTC]"
            ),
            "_y": labels[spec.label.column].astype("int64").to_numpy(),
        }
    ).sort_values("_t", kind="stable")


def _labels_enough_from(
    settings: Settings, project: Project, environment: str, version: str, since: datetime
) -> datetime | None:
    """The earliest time by which ``version``'s logged predictions (since ``since``) have as
    many labels known, on predictions old enough to be judged (``monitor.label_maturity``), as
    the monitoring policy needs to judge performance; None if never.

    A cheap pre-scan of the log and the label table: monitor runs before that moment cannot
    hold performance evidence, so :func:`measure_reaction` starts there.
    """
    import numpy as np
    import pandas as pd

    from modelops.services.datasets import read_labels
    from modelops.services.monitor import label_maturity

    policy = project.spec.monitoring
    left = _logged_times(settings, project, environment, version, since)
    if left is None:
        return None
    labels = read_labels(settings, project)
    merged = pd.merge_asof(
        left,
        _label_times(project, labels),
        on="_t",
        by="_key",
        tolerance=pd.Timedelta(seconds=policy.label_join_tolerance_seconds),
        direction="nearest",
    ).dropna(subset=["_y"])
    if merged.empty:
        return None
    maturity, _ = label_maturity(project, labels)
    merged["_known"] = merged["_known"].where(
        merged["_known"] >= merged["_t"] + maturity, merged["_t"] + maturity
    )  # the monitor judges a prediction once its label is known and it is mature
    merged = merged.sort_values("_known", kind="stable")
    positives = np.cumsum(merged["_y"].to_numpy())
    rows = np.arange(1, len(merged) + 1)
    ok = (
        (rows >= policy.min_labels)
        & (positives >= policy.min_positives)
        & (rows - positives >= policy.min_positives)
    )
    hits = np.flatnonzero(ok)
    if not len(hits):
        return None
    return pd.Timestamp(merged["_known"].iloc[int(hits[0])]).to_pydatetime()


# ----------------------------------------------------------------------------- measure


def _versions(ledger: Ledger, project: str, environment: str) -> tuple[str, str]:
    """The version holding ``environment`` (the drill's) and the one before it."""
    bad = ledger.holder(project, environment).version
    if bad is None:
        raise SimulationError(f"nothing holds {environment} for {project}: nothing to measure")
    past = [v for v in ledger.past_holders(project, environment) if v != bad]
    if not past:
        raise SimulationError(
            f"v{bad} is the only version that ever held {environment}: no rollback to measure"
        )
    return bad, past[0]


def _first_as_of(
    settings: Settings, project: Project, environment: str, bad: str, ledger: Ledger
) -> datetime:
    """A second after enough of ``bad``'s predictions have known, mature labels."""
    spec = project.spec
    moves = [e for e in ledger.entries(spec.name, environment) if e.action == "promote"]
    since = moves[-1].at if moves else datetime(1970, 1, 1, tzinfo=UTC)
    as_of = _labels_enough_from(settings, project, environment, bad, since - timedelta(days=3650))
    if as_of is None:
        raise SimulationError(
            f"v{bad}'s logged predictions never get {spec.monitoring.min_labels} labels with "
            f"{spec.monitoring.min_positives} of each class (monitoring.min_labels, "
            "min_positives): simulate more days or a higher --rate"
        )
    return as_of + timedelta(seconds=1)


def _decided_s(timings: dict[str, float]) -> float:
    """The run's own seconds up to and including its decision."""
    decided = 0.0
    for name, seconds in timings.items():
        decided += seconds
        if name == "decide":
            break
    return round(decided, 3)


@dataclass(frozen=True)
class _Watched:
    """One monitor run that rolled back, and what was watched meanwhile."""

    run: MonitorRun
    rolled: Outcome
    as_of: datetime
    watcher: _Watcher


def _measured(
    settings: Settings,
    ledger: Ledger,
    project: Project,
    environment: str,
    versions: tuple[str, str],
    watched: _Watched,
    service: tuple[str | None, float],
    runs: list[tuple[str, datetime, str]],
) -> Reaction:
    """The reaction to a run that rolled back, timed from the run's start."""
    from modelops.integrations import mlflow as mlflow_io

    spec = project.spec
    (bad, previous), (service_url, service_timeout) = versions, service
    run, rolled, watcher = watched.run, watched.rolled, watched.watcher
    start: datetime = run.started_at

    def since_start(moment: datetime | None) -> float | None:
        return None if moment is None else round((moment - start).total_seconds(), 3)

    entries = ledger.entries(spec.name, environment)
    entry = next((e for e in entries if e.seq == rolled.ledger_seq), None)
    with mlflow_io.session(tracking(settings)) as client:
        alias = mlflow_io.aliases(client, spec.registered_model).get(environment)
    notes: list[str] = []
    if alias != previous:
        notes.append(
            f"the MLflow alias '{environment}' is on v{alias}, not v{previous}: it lags the "
            "ledger (run 'modelops models sync')"
        )
    gitops_at = watcher.seen.get("gitops")
    if gitops_at is None:
        notes.append(f"no GitOps commit seen: {rolled.details.get('gitops', rolled.detail)}")
    if service_url and watcher.served_before == previous:
        notes.append(
            f"{service_url} already served v{previous} before the run (it never took "
            f"v{bad}): its reload was not measured"
        )
        watcher.seen.pop("service", None)
    elif service_url and "service" not in watcher.seen:
        notes.append(
            f"{service_url} did not report v{previous} within {service_timeout:g} s after the "
            "run (is it running with --reload-on-promotion?)"
        )
    if not service_url:
        notes.append("no local service given: the reload step was not measured")
    return Reaction(
        project=spec.name,
        environment=environment,
        bad_version=bad,
        previous_version=previous,
        run_id=run.run_id,
        run_started_at=start,
        as_of=watched.as_of,
        runs=tuple(runs),
        evidence_s=_decided_s(dict(run.timings)),
        ledger_s=since_start(entry.at if entry else None),
        alias_s=since_start(watcher.seen.get("values")) if alias == previous else None,
        gitops_s=since_start(gitops_at),
        service_s=since_start(watcher.seen.get("service")),
        run_seconds=run.seconds,
        notes=tuple(notes),
    )


def _watched_run(
    watcher: _Watcher,
    settings: Settings,
    project: str,
    environment: str,
    as_of: datetime,
    actor: str | None,
    push: bool,
) -> tuple[MonitorRun, Outcome | None]:
    """One monitor run at ``as_of`` with ``watcher`` looking on from its start; the run and
    its rollback outcome (None when it did not roll back)."""
    from modelops.core import monitoring as policy_core
    from modelops.services import monitor

    watcher.start()
    try:
        run = monitor.run(
            settings, project, environment=environment, as_of=as_of, actor=actor, push=push
        )
    except BaseException:
        watcher.stop()
        raise
    rolled = next((o for o in run.outcomes if o.kind == policy_core.ROLLBACK and o.done), None)
    return run, rolled


def measure_reaction(
    settings: Settings,
    project_name: str,
    *,
    environment: str = "production",
    first_as_of: datetime | None = None,
    last_as_of: datetime | None = None,
    step: timedelta = timedelta(days=1),
    max_runs: int = 30,
    service_url: str | None = None,
    service_timeout: float = 60.0,
    actor: str | None = None,
    push: bool = False,
) -> Reaction:
    """After a bad-model drill: run the monitor (``services.monitor.run``) at ``first_as_of``,
    then every ``step`` of simulated time, until a run rolls back; time each step from that
    run's start to the previous version serving again (see :class:`Reaction`).

    Args:
        first_as_of: the first run's time; default the moment enough labels of the serving
            version's predictions are known (earlier runs cannot hold performance evidence).
        last_as_of: no run after this time; default ``first_as_of`` plus ``max_runs`` steps.
        service_url: a local service (``modelops serve --reload-on-promotion``) to watch until
            it reports the previous version; None: the reload is not measured.
        service_timeout: how long to wait for the service after the run, in seconds.

    Raises:
        MonitorError: a monitor run could not run.
        SimulationError: nothing holds ``environment``, or no earlier version to return to.
    """
    check_environment(settings, environment)
    project = project_for(settings, project_name)
    spec = project.spec
    ledger = ledger_for(settings)
    bad, previous = _versions(ledger, spec.name, environment)
    as_of = first_as_of
    if as_of is None:
        as_of = _first_as_of(settings, project, environment, bad, ledger)
    limit = last_as_of or as_of + step * max_runs
    runs: list[tuple[str, datetime, str]] = []
    for _ in range(max_runs):
        if as_of > limit:
            break
        watcher = _Watcher(settings, spec.name, environment, previous, service_url)
        run, rolled = _watched_run(watcher, settings, spec.name, environment, as_of, actor, push)
        runs.append((run.run_id, as_of, run.decision.headline()))
        if rolled is None:
            watcher.stop()
            watcher.join(5)
            as_of += step
            continue
        watcher.join(service_timeout if service_url else 10.0)
        watcher.stop()
        watched = _Watched(run, rolled, as_of, watcher)
        service = (service_url, service_timeout)
        versions = (bad, previous)
        return _measured(settings, ledger, project, environment, versions, watched, service, runs)
    first_run = runs[0][1] if runs else as_of
    return Reaction(
        project=spec.name,
        environment=environment,
        bad_version=bad,
        previous_version=previous,
        run_id=None,
        run_started_at=None,
        as_of=None,
        runs=tuple(runs),
        notes=(
            f"no monitor run from {first_run:%Y-%m-%d %H:%M} to {limit:%Y-%m-%d %H:%M} rolled back",
        ),
    )
