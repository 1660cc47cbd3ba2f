"""Platform settings: ``modelops.yaml`` at the repository root, overridden by ``MODELOPS_*``.

Precedence, highest first: environment variables, ``modelops.yaml``, the defaults of the chosen
``profile``. Loading settings only reads files; it never creates directories, sets MLflow URIs or
configures logging.

Profiles:
    embedded (default): everything under ``state_dir`` (``.modelops/``) in the working directory:
        MLflow on SQLite with local artifacts, Feast local provider (parquet sources joined by the
        DuckDB offline store, SQLite online store, file registry), SQLite platform database, a
        local git repo for GitOps.
    production: an MLflow tracking server (backed by PostgreSQL, local artifact root) at
        ``mlflow_tracking_uri``, the Feast registry on PostgreSQL and online store on Redis,
        the platform database on PostgreSQL.
    cluster: the production profile past one machine (docs/scale-out.md): point-in-time joins
        on Spark (Feast's Spark offline store, ``feature_store.cluster.yaml``) at
        ``spark_master``, their results written as parquet under ``spark_output_uri``, MLflow
        artifacts on S3 or any S3-compatible store (``s3_endpoint_url``; credentials from the
        standard AWS variables, never from this file), the ledger on PostgreSQL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from modelops.config.yaml_file import read_mapping, unknown_field
from modelops.core.errors import ConfigError
from modelops.core.redact import redact, register_secret, uri_password

CONFIG_FILE = "modelops.yaml"
ENV_PREFIX = "MODELOPS_"

Profile = Literal["embedded", "production", "cluster"]
SERVER_PROFILES: frozenset[str] = frozenset({"production", "cluster"})
"""Profiles whose state lives in servers (PostgreSQL, Redis, an MLflow server)."""

_PRODUCTION_DEFAULTS: dict[str, str] = {
    "mlflow_tracking_uri": "http://127.0.0.1:5000",
    "database_url": "postgresql+psycopg://postgres@127.0.0.1:5432/modelops",
}


class Settings(BaseSettings):
    """Where every piece of platform state lives.

    Relative paths are relative to ``root`` (the directory holding ``modelops.yaml``, or the
    working directory). Use the ``resolved_*`` helpers rather than the raw fields.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    profile: Profile = Field(
        "embedded",
        description="embedded (no servers), production (PostgreSQL, Redis, an MLflow server) or "
        "cluster (production with Spark joins and S3 artifacts).",
    )
    root: Path = Field(Path("."), description="Repository root; other relative paths start here.")
    state_dir: Path = Field(Path(".modelops"), description="Platform state (embedded profile).")
    projects_dir: Path = Field(Path("projects"), description="Folder holding one folder a project.")
    feature_repo: Path = Field(Path("feature_repo"), description="The Feast feature repository.")
    feature_store_yaml: Path | None = Field(
        None,
        description="Feast config, relative to feature_repo. Default: feature_store.yaml "
        "(embedded), feature_store.production.yaml (production) or feature_store.cluster.yaml "
        "(cluster).",
    )
    feast_registry_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:5432/modelops_feast",
        description="SQL registry of Feast in the production profile.",
    )
    redis_connection: str = Field(
        "127.0.0.1:6379", description="Feast online store (Redis) in the production profile."
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="Default: sqlite:///<state_dir>/mlflow.db, or the production server."
    )
    mlflow_registry_uri: str | None = Field(None, description="Default: the tracking URI.")
    artifact_location: str | None = Field(
        None, description="Artifact root for new experiments. Default: <state_dir>/mlartifacts."
    )
    database_url: str | None = Field(
        None, description="Platform database (ledger). Default: sqlite:///<state_dir>/platform.db."
    )
    gitops_repo: Path | None = Field(None, description="GitOps repo. Default: <state_dir>/gitops.")
    image_registry: str = Field(
        "registry.local/modelops",
        description="Container registry (and path) the prediction services' images are pushed "
        "to; a project's image is <image_registry>/<bento name>.",
    )
    prediction_log_url: str | None = Field(
        None,
        description="Where prediction services log every prediction: a directory (parquet "
        "partitioned by date) or a SQLAlchemy URL (a PostgreSQL table). Default: "
        "<state_dir>/predictions, or the platform database in the production profile.",
    )
    environments: tuple[str, ...] = Field(
        ("dev", "staging", "production"), description="Promotion order, lowest first."
    )
    approval_required: tuple[str, ...] = Field(
        ("production",),
        description="Environments that always need an approval; a project can add to this list, "
        "never remove from it.",
    )
    approvers: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Who may approve a promotion, per environment: names or e-mail addresses "
        "(git's 'Name <email>' works too), matched case-insensitively. An environment without a "
        "list accepts any named approver who did not train or validate the version.",
    )
    allow_self_approval: bool = Field(
        False,
        description="Let the person who trained or validated a version approve its promotion.",
    )
    ledger_key: SecretStr | None = Field(
        None,
        description="HMAC key of the ledger's hash chain (from a secret, never stored in the "
        "database). Required in the production profile.",
    )
    lock_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest wait for a ledger lock or statement, in seconds."
    )
    spark_master: str = Field(
        "local[2]",
        description="Spark master of the cluster profile's joins, gate and monitor: local[N] "
        "(one machine, the tests), spark://host:7077, k8s://https://host or yarn.",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Spark configuration (spark.executor.memory, spark.hadoop.fs.s3a.*, "
        "spark.jars.packages...), applied over the platform's defaults when the session starts.",
    )
    spark_output_uri: str | None = Field(
        None,
        description="Where Spark writes joined training sets, holdouts and references as "
        "parquet: a directory or an s3a:// URI. Default: <state_dir>/spark.",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint of MLflow's artifacts (MLFLOW_S3_ENDPOINT_URL) in "
        "the cluster profile; unset for AWS S3. Credentials come from the standard AWS "
        "variables or the instance's role, never from modelops.yaml.",
    )
    trusted_branch: str | None = Field(
        None,
        description="Verdicts allow a promotion only when made from a clean commit on this "
        "branch. Default: main in the production profile, no check in the embedded one.",
    )

    @field_validator("database_url", "feast_registry_url", "prediction_log_url")
    @classmethod
    def _parsable_url(cls, value: str | None) -> str | None:
        """A database URL the engine could not parse fails here, in one line naming the field,
        not later inside SQLAlchemy (a raw ``@``, ``:``, ``/`` or ``%`` in a password)."""
        if not value or "://" not in value:
            return value
        from sqlalchemy.engine import make_url

        try:
            url = make_url(value)
            _ = url.port
        except Exception as exc:
            raise ValueError(
                "not a valid database URL; percent-encode @ : / % in a user name or password "
                f"({type(exc).__name__})"
            ) from exc
        return value

    @model_validator(mode="after")
    def _known_environments(self) -> Settings:
        if len(set(self.environments)) != len(self.environments) or not self.environments:
            raise ValueError(f"environments must be distinct names, got {list(self.environments)}")
        unknown = [e for e in self.approval_required if e not in self.environments]
        if unknown:
            raise ValueError(
                f"approval_required names {unknown}, not configured environments "
                f"({', '.join(self.environments)})"
            )
        listed = [e for e in self.approvers if e not in self.environments]
        if listed:
            raise ValueError(
                f"approvers names {listed}, not configured environments "
                f"({', '.join(self.environments)})"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, which is passed in as init values by load_settings.
        return (env_settings, init_settings)

    def path(self, value: Path) -> Path:
        """``value`` made absolute against ``root``."""
        return value if value.is_absolute() else (self.root / value).resolve()

    @property
    def resolved_state_dir(self) -> Path:
        return self.path(self.state_dir)

    @property
    def resolved_projects_dir(self) -> Path:
        return self.path(self.projects_dir)

    @property
    def resolved_feature_repo(self) -> Path:
        return self.path(self.feature_repo)

    @property
    def resolved_feature_store_yaml(self) -> Path:
        default = {
            "production": "feature_store.production.yaml",
            "cluster": "feature_store.cluster.yaml",
        }.get(self.profile, "feature_store.yaml")
        name = self.feature_store_yaml or Path(default)
        return name if name.is_absolute() else self.resolved_feature_repo / name

    @property
    def data_dir(self) -> Path:
        """Where the generator writes the feature repo's source tables."""
        return self.resolved_feature_repo / "data"

    @property
    def servers(self) -> bool:
        """True for the profiles whose state lives in servers (production, cluster)."""
        return self.profile in SERVER_PROFILES

    @property
    def resolved_spark_output(self) -> str:
        """Directory or URI under which Spark writes its parquet results."""
        if self.spark_output_uri:
            if "://" in self.spark_output_uri:
                return self.spark_output_uri
            return str(self.path(Path(self.spark_output_uri)))
        return str(self.resolved_state_dir / "spark")

    @property
    def resolved_trusted_branch(self) -> str | None:
        if self.trusted_branch:
            return self.trusted_branch
        return "main" if self.servers else None

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if self.servers:
            return _PRODUCTION_DEFAULTS["mlflow_tracking_uri"]
        return f"sqlite:///{self.resolved_state_dir / 'mlflow.db'}"

    @property
    def registry_uri(self) -> str:
        return self.mlflow_registry_uri or self.tracking_uri

    @property
    def artifact_root(self) -> str | None:
        """Artifact root for experiments the platform creates; None lets the server decide."""
        if self.artifact_location:
            return self.artifact_location
        if self.tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.resolved_state_dir / "mlartifacts").as_uri()

    @property
    def platform_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        if self.servers:
            return _PRODUCTION_DEFAULTS["database_url"]
        return f"sqlite:///{self.resolved_state_dir / 'platform.db'}"

    @property
    def resolved_prediction_log(self) -> str:
        """A directory path or a SQLAlchemy URL (see ``prediction_log_url``)."""
        if self.prediction_log_url:
            if "://" in self.prediction_log_url:
                return self.prediction_log_url
            return str(self.path(Path(self.prediction_log_url)))
        if self.servers:
            return self.platform_database_url
        return str(self.resolved_state_dir / "predictions")

    @property
    def resolved_gitops_repo(self) -> Path:
        return (
            self.path(self.gitops_repo) if self.gitops_repo else self.resolved_state_dir / "gitops"
        )

    def feast_variables(self) -> dict[str, str]:
        """Values substituted for ``${NAME}`` in the Feast ``feature_store*.yaml`` files."""
        return {
            "MODELOPS_STATE_DIR": str(self.resolved_state_dir),
            "MODELOPS_FEAST_REGISTRY_URL": self.feast_registry_url,
            "MODELOPS_REDIS_CONNECTION": self.redis_connection,
        }


NOT_SETTINGS = frozenset({f"{ENV_PREFIX}ROOT", f"{ENV_PREFIX}ACTOR"})
"""``MODELOPS_*`` variables that are read but are not settings fields."""
SERVING_PREFIX = f"{ENV_PREFIX}SERVING_"
"""Variables of a prediction service's own configuration (``modelops.serving``), not settings."""


def _describe(error: Mapping[str, Any], origin: str) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "(top level)"
    value = error.get("input")
    secret = "key" in field or "password" in field
    shown = "" if isinstance(value, dict) else f" (got {'***' if secret else repr(value)})"
    message = error["msg"]
    if error["type"] == "extra_forbidden":  # a misspelt key of modelops.yaml
        message = unknown_field(Settings, error["loc"])
    return redact(f"{origin}: field '{field}': {message}{shown}")


def _check_variables(environ: Mapping[str, str]) -> None:
    """A misspelled ``MODELOPS_*`` variable is an error, never silently ignored."""
    import difflib

    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | NOT_SETTINGS
    for name in sorted(environ):
        if name.upper().startswith(ENV_PREFIX) and not name.startswith(ENV_PREFIX):
            # pydantic-settings matches names case-insensitively; modelops reads upper case only
            raise ConfigError(
                f"environment {name}: modelops variables are upper case ({name.upper()}); "
                "a lower-case one is never read"
            )
        if (
            name.startswith(ENV_PREFIX)
            and name not in known
            and not name.startswith(SERVING_PREFIX)
        ):
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"environment {name}: not a modelops setting{hint}")


def load_settings(root: Path | None = None) -> Settings:
    """Read ``modelops.yaml`` under ``root`` (default: working directory) and ``MODELOPS_*``.

    Raises:
        ConfigError: naming the file or variable, the field and the offending value.
    """
    environ = os.environ
    _check_variables(environ)
    root = Path(environ.get(f"{ENV_PREFIX}ROOT") or root or Path.cwd()).resolve()
    config_file = root / CONFIG_FILE
    file_values: dict[str, Any] = {}
    if config_file.is_file():
        file_values = read_mapping(config_file)
    file_values["root"] = root
    try:
        settings = Settings(**file_values)
    except SettingsError as exc:  # a MODELOPS_* value that does not parse (e.g. not JSON)
        match = re.search(r'field "(\w+)"', str(exc))
        name = f"{ENV_PREFIX}{match.group(1).upper()}" if match else f"{ENV_PREFIX}*"
        value = "***" if "KEY" in name else repr(environ.get(name))
        raise ConfigError(
            f"environment {name}: cannot be parsed ({value}); "
            'lists are JSON, e.g. \'["dev", "production"]\''
        ) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise ConfigError(
            _describe(first, _origin(field, environ, config_file, file_values))
        ) from exc
    register_secrets(settings)
    return settings


def _origin(
    field: str, environ: Mapping[str, str], config_file: Path, values: Mapping[str, Any]
) -> str:
    """Where the value of ``field`` came from, as an error names it: the variable, the file,
    or (a rule across fields, e.g. approval_required naming an unknown environment) both
    places that could hold it."""
    env_name = f"{ENV_PREFIX}{field.upper()}"
    if field and env_name in environ:
        return f"environment {env_name}"
    if field in values and field != "root":
        return str(config_file)
    if config_file.is_file():
        return f"{config_file} or MODELOPS_* variables"
    return "MODELOPS_* variables (no modelops.yaml)"


def register_secrets(settings: Settings) -> None:
    """Every secret ``settings`` hold is masked in every message from now on
    (:func:`modelops.core.redact.register_secret`): the passwords of its URIs and the ledger key."""
    for uri in (
        settings.mlflow_tracking_uri,
        settings.mlflow_registry_uri,
        settings.database_url,
        settings.feast_registry_url,
        settings.prediction_log_url,
        settings.artifact_location,
        settings.spark_output_uri,
    ):
        register_secret(uri_password(uri))
    if "password=" in settings.redis_connection:
        for part in settings.redis_connection.split(","):
            if part.strip().startswith("password="):
                register_secret(part.strip().removeprefix("password="))
    if settings.ledger_key is not None:
        register_secret(settings.ledger_key.get_secret_value())
