"""``modelops simulate``: production traffic and delayed labels from a project's ``data.py``, so
the whole monitoring loop (log → drift → labels → rollback or retraining) reproduces offline.

One simulation covers a *period* of ``days`` whole days (UTC) after the data the model was
trained on: by default it starts the day after the later of the holdout window's end and the
label table's last event (so consecutive simulations continue one timeline).

1. **generate** (:mod:`.period`): the project's own generator (:mod:`modelops.core.synthetic`)
   writes a window that ends with the period and starts as long before it as the generator's
   default window lasts, with ``drift_start`` on the period's first day, at ``rate`` events a
   day. Everything before the period is history (rolling aggregates, balances, account ages
   come out as they do at the end of the example data) and, by the generators' contract,
   identical for every scenario of the same seed; only the period's events are kept, with the
   feature rows of their entities from :data:`KEEP_DAYS` (or the feature views' longest TTL)
   before it.
2. **entities** (:mod:`.sources`): the generated entities are renumbered above every entity the
   tables already hold (string keys get a prefix), so a simulated history never mixes with a
   real one of the same id; training and holdout joins never see the simulated rows.
3. **sources** (:mod:`.sources`): the feature rows go into the feature repo's source tables
   (appended, atomically), so the offline store joins them and ``modelops features
   materialize`` loads them online.
4. **traffic**:

   - *in process* (:mod:`.replay`, the default): each event is joined point-in-time with the
     feature service (the join the training set uses), scored by the serving scorer of the
     version holding ``--env`` (the verified artifact, :func:`~modelops.core.scorer.build_scorer`),
     decided with the project's decision policy, and written through the service's own
     prediction-log writer (:class:`~modelops.serving.prediction_log.PredictionLog`, same
     schema) with the event's timestamp as ``logged_at``. A shadow version is scored by the
     writer, as in the service. This is the exact replay: every event sees its features as of
     its own time.
   - *through a service* (:mod:`.through_service`): ``POST /predict_batch`` in time order, at
     most ``serving.max_batch`` entities and each entity once per batch; the service reads the
     online store and writes the log with its own clock. Labels are then stamped with the time
     the service answered (keeping the generator's delays), since that is the time the log
     holds and the monitor joins on (``label_join_tolerance_seconds``).

5. **labels**: the period's label rows are appended to the project's label table with their
   ``available_at`` as generated, so the monitor's join finds them as (simulated) time passes.

``bad-model`` (:mod:`.drill`) is a drill: a version that passes the gate on the holdout (by
default a fresh ``train`` with features broken in the rows it learns from,
``break_features`` or the project's ``DRILL_BROKEN_FEATURES``; or ``bad_version``; never a copy
of the holder's artifact) is promoted through every environment up to
``--env`` by :func:`~modelops.services.promote.promote`, with an approval and a reason that say
it is a drill, and then meets ``drill_traffic`` (default ``concept-drift``) traffic, on which it
falls below its gate-time metrics. The gate is never bypassed: a version it refuses is not
promoted and the drill stops with the refusal. :func:`measure_reaction` (:mod:`.reaction`) then
runs the monitor until one run rolls back, and times each step back to the previous version
serving.

The steps run in :func:`simulate` (:mod:`.run`).
"""

from modelops.services.simulate.drill import (
    BAD_MODEL,
    DRILL_APPROVER,
    DRILL_TRAFFIC,
    Drill,
)
from modelops.services.simulate.errors import DrillRefusedError, SimulationError
from modelops.services.simulate.period import (
    EVENT_TIME,
    KEEP_DAYS,
    MAX_DAYS,
    GeneratedPeriod,
    default_rate,
    generate_period,
)
from modelops.services.simulate.reaction import REACTION_TARGET_S, Reaction, measure_reaction
from modelops.services.simulate.replay import LOG_CHUNK
from modelops.services.simulate.run import SCENARIOS, SimulationResult, simulate
from modelops.services.simulate.sources import default_start
from modelops.services.simulate.through_service import service_version

__all__ = [
    "BAD_MODEL",
    "DRILL_APPROVER",
    "DRILL_TRAFFIC",
    "EVENT_TIME",
    "KEEP_DAYS",
    "LOG_CHUNK",
    "MAX_DAYS",
    "REACTION_TARGET_S",
    "SCENARIOS",
    "Drill",
    "DrillRefusedError",
    "GeneratedPeriod",
    "Reaction",
    "SimulationError",
    "SimulationResult",
    "default_rate",
    "default_start",
    "generate_period",
    "measure_reaction",
    "service_version",
    "simulate",
]
