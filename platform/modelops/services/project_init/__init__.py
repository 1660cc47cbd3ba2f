"""``modelops project init``: a CSV (or parquet) table becomes a project that trains.

One row of the input is one prediction: the entity it is made for, when it is made, the feature
values known then, and the label learnt later. From it, :func:`init_project` writes

* ``feature_repo/data/<name>_features.parquet``: entity, ``event_timestamp``,
  ``created_timestamp`` (= event time: each row is known when its prediction is made) and the
  feature columns, typed int64 / float64 / string / bool;
* ``feature_repo/data/<name>_labels.parquet``: entity, ``event_timestamp``, the label as found
  (``"Yes"``/``"No"`` stays, with ``label.positive`` in project.yaml), ``label_available_at``;
* ``feature_repo/<name>_features.py``: the entity when it is new, a ``FileSource``, one feature
  view and the feature service ``<name>_v1``;
* ``projects/<name>/project.yaml`` with windows proposed from the data, leaving room for the
  label delay;
* ``projects/<name>/tests/``: data checks, and behaviour checks per ``--monotone`` feature.

Timestamps are normalised to UTC microseconds, the precision Feast's DuckDB offline store joins
exactly: event times are floored, label availability times are ceiled (a label is never known
earlier than the data says), and the result says how many values that changed. Nothing is
printed here; the CLI renders :class:`InitResult`.

The steps, one module each: :mod:`.options` (what was asked), :mod:`.layout` (where it goes),
:mod:`.intake` (the file's encoding and separator),
:mod:`.columns` (names, roles), :mod:`.labels`, :mod:`.timestamps`, :mod:`.entities`,
:mod:`.features`, :mod:`.windows`, :mod:`.render` (the Jinja2 templates in ``templates/``) and
:mod:`.write`; :mod:`.run` puts them in order.
"""

from modelops.services.project_init.columns import snake_case
from modelops.services.project_init.entities import existing_definitions
from modelops.services.project_init.features import Feature
from modelops.services.project_init.options import InitOptions, describe_delay
from modelops.services.project_init.run import InitResult, init_project
from modelops.services.project_init.windows import WindowProposal

__all__ = [
    "Feature",
    "InitOptions",
    "InitResult",
    "WindowProposal",
    "describe_delay",
    "existing_definitions",
    "init_project",
    "snake_case",
]
