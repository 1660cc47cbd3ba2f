"""What a project folder may plug into the platform: the interfaces of ``model.py`` and ``data.py``.

Both modules are optional. ``model.py`` may define any of ``build_features``, ``fit`` and
``fit_baseline``; what it leaves out comes from the platform (the declarative
:class:`~modelops.core.features.FeatureStep`, LightGBM, logistic regression). ``data.py`` is a
seeded example-data generator (see :mod:`modelops.core.synthetic`). mypy checks the bundled
projects against these protocols (``tests/typing/check_projects.py``).
"""

from __future__ import annotations

import inspect
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from modelops.core.errors import ConfigError
from modelops.core.synthetic import MIN_ROWS

if TYPE_CHECKING:
    import pandas as pd

    from modelops.core.synthetic import GeneratedTable, Window


class BuildFeatures(Protocol):
    def __call__(self, frame: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame: ...


class Fit(Protocol):
    def __call__(
        self,
        x_train: pd.DataFrame,
        y_train: pd.Series,
        x_valid: pd.DataFrame,
        y_valid: pd.Series,
        params: dict[str, Any],
    ) -> Any: ...


class FitBaseline(Protocol):
    def __call__(self, x_train: pd.DataFrame, y_train: pd.Series) -> Any: ...


class FitModule(Protocol):
    """A ``model.py`` that keeps the platform's feature step and brings its own fitting."""

    def fit(
        self,
        x_train: pd.DataFrame,
        y_train: pd.Series,
        x_valid: pd.DataFrame,
        y_valid: pd.Series,
        params: dict[str, Any],
    ) -> Any: ...

    def fit_baseline(self, x_train: pd.DataFrame, y_train: pd.Series) -> Any: ...


class ModelModule(FitModule, Protocol):
    """A complete ``model.py``: the three functions, all pure (no I/O, no MLflow, no Feast)."""

    def build_features(self, frame: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame: ...


class DataModule(Protocol):
    """A ``data.py``: seeded example event and label tables for the project, with scenarios.

    The platform calls it through :func:`modelops.core.synthetic.generate`, which fills in the
    defaults, validates the arguments and resolves the drift day into ``window``. ``generate`` then
    writes every table into ``out_dir`` and nowhere else
    (:func:`~modelops.integrations.parquet.atomic_tables`), draws all randomness from ``seed``
    (:func:`~modelops.core.synthetic.rng`), keeps events before ``window.drift_start`` identical to
    the ``healthy`` scenario, and returns the tables written with the share of positive labels. An
    argument only it can judge (a window too short for its data) raises
    :class:`~modelops.core.errors.DataError` naming the option.
    """

    DEFAULT_WINDOW: tuple[date, date]
    """First and last day of events (UTC) when none are given."""
    DEFAULT_ROWS: int
    """Rows of the label table when none is given."""

    def generate(
        self, out_dir: Path, window: Window, rows: int, scenario: str, seed: int
    ) -> tuple[tuple[GeneratedTable, ...], float]: ...


DATA_MODULE_MEMBERS = ("DEFAULT_WINDOW", "DEFAULT_ROWS", "generate")
GENERATE_PARAMETERS = ("out_dir", "window", "rows", "scenario", "seed")


def check_data_module(module: object, path: Path) -> DataModule:
    """``module`` (loaded from ``path``) as a :class:`DataModule`, checked at run time.

    mypy checks the bundled projects statically; this catches the rest when they are loaded.

    Raises:
        ConfigError: a member is missing or has the wrong shape; names the file and the member.
    """
    missing = [name for name in DATA_MODULE_MEMBERS if not hasattr(module, name)]
    if missing:
        raise ConfigError(
            f"{path}: '{missing[0]}' is missing (a data.py defines {', '.join(DATA_MODULE_MEMBERS)}"
            "; see modelops.core.plugins.DataModule)"
        )
    found: Any = module  # untyped until checked
    window = found.DEFAULT_WINDOW
    if not (
        isinstance(window, tuple)
        and len(window) == 2
        and all(isinstance(day, date) for day in window)
        and window[0] < window[1]
    ):
        raise ConfigError(
            f"{path}: 'DEFAULT_WINDOW' must be (first day, last day), two dates in order "
            f"(got {window!r})"
        )
    rows = found.DEFAULT_ROWS
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < MIN_ROWS:
        raise ConfigError(f"{path}: 'DEFAULT_ROWS' must be an integer >= {MIN_ROWS} (got {rows!r})")
    generate = found.generate
    if not callable(generate):
        raise ConfigError(f"{path}: 'generate' is not a function")
    try:
        inspect.signature(generate).bind(*GENERATE_PARAMETERS)
    except TypeError as exc:
        raise ConfigError(
            f"{path}: 'generate' must accept ({', '.join(GENERATE_PARAMETERS)}): {exc}"
        ) from exc
    except ValueError:  # no signature to inspect (a builtin): trust it
        pass
    return cast("DataModule", module)
