"""The one family of user-facing errors.

Every error a user can cause or fix derives from :class:`ModelopsError`. The CLI turns it into a
single red line and the error's exit code in exactly one place (``modelops.cli.main``); anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ModelopsError(Exception):
    """An error the user can act on. ``str(error)`` is the one line they see."""

    exit_code: int = 2


class ConfigError(ModelopsError):
    """Invalid ``modelops.yaml``, environment override or ``project.yaml``."""


class ProjectNotFoundError(ModelopsError):
    """The named project has no folder under ``projects/``."""


class DataError(ModelopsError):
    """Input data is missing, empty, single-class or leaks across time windows."""


class FeatureStoreError(ModelopsError):
    """The Feast repository or registry cannot serve what was asked."""


class RegistryError(ModelopsError):
    """The MLflow model registry does not hold what was asked."""


class ServiceUnavailableError(ModelopsError):
    """A configured server (MLflow, PostgreSQL, Redis) cannot be reached."""


class ConcurrentChangeError(ModelopsError):
    """Another promotion or rollback changed the environment first."""
