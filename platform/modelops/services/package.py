"""``modelops package`` and ``serve``: a registered version as a BentoML prediction service.

package: lookup → (holder check) → verified load → skew check → scorer check → release → Bento.

- **holder check**: with ``--env``, only the version holding that environment in the ledger is
  packaged for it;
- **verified load**: the artifact is downloaded and its SHA-256 checked against its registration
  (:func:`~modelops.integrations.mlflow.load_verified_model`) before it is unpickled; the copy
  in BentoML's model store is checked again before the Bento is built;
- **skew check**: :func:`~modelops.services.skew.check_skew`; more differing entities than
  ``serving.max_skew_share`` refuse the package, naming the features;
- **scorer check**: the pandas-free serving scorer is built from the verified artifact and
  compared with the pipeline on the skew check's offline rows (scores within 1e-9, no decision
  flipped); those rows travel in the release, and the service repeats the check at start-up;
- **release**: ``manifest.json`` (decision policy, feature names, serving policy, Feast config
  name, feature views), ``samples.parquet`` and the Feast configuration files;
- **signed record**: every file of the release, the model folders and the ``modelops`` code
  with its SHA-256, and the manifest, signed with the platform's release key
  (:mod:`modelops.services.signing`), written into the release as ``release-record.json`` and
  recorded in the ledger as a ``package`` entry. The service verifies it before it loads
  anything; a Bento that is reused is verified against it first;
- **Bento**: ``bentoml build`` of :mod:`modelops.serving.service` with the release, the
  ``modelops`` package and the model(s), tagged :func:`~modelops.core.release.bento_tag` and
  labelled with the project, version, artifact hash and feature service.

serve: the Bento of the version holding an environment (packaged first when missing), run by
``bentoml serve``. With reload on promotion, the CLI polls the ledger; a new holder is checked
exactly as a package is, staged as a release directory, and named in a pointer file the running
service polls and swaps in without a restart (:mod:`modelops.serving.service`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops.config.project import Project
from modelops.config.settings import Settings
from modelops.core import tags
from modelops.core.errors import ModelopsError
from modelops.core.ranges import FeatureRange, parse_ranges
from modelops.core.release import bento_name, bento_tag, bento_version
from modelops.integrations import bentoml as bentoml_io
from modelops.integrations import feast as feast_io
from modelops.integrations import git as git_io
from modelops.integrations import mlflow as mlflow_io
from modelops.services.context import check_environment, feature_repo, tracking, verified_ledger
from modelops.services.context import project as project_for
from modelops.services.features import project_service
from modelops.services.identity import resolve_actor
from modelops.services.signing import (
    model_folders,
    public_key,
    record_release,
    sign_release,
    verify_bento,
)
from modelops.services.skew import SkewResult, check_skew
from modelops.serving import artifact
from modelops.serving.manifest import (
    FEATURE_REPO_DIR,
    RELEASE_DIR,
    SAMPLES_FILE,
    FeastConfig,
    InputField,
    Manifest,
    ModelEntry,
    SkewSummary,
    write_manifest,
)

if TYPE_CHECKING:
    from modelops.core.release_record import ReleaseRecord
    from modelops.core.scorer import ScorerCheck

PACKAGE_ENTITIES = 200
"""Entities the skew check compares before a package; their offline rows check the scorer."""
SAMPLE_ROWS = 200
SERVICE = "modelops.serving.service:ModelService"

_FEAST_TYPES = {  # Feast ValueType and type names (upper case) → request field types
    "INT64": "int",
    "INT32": "int",
    "STRING": "str",
    "BOOL": "bool",
    "DOUBLE": "float",
    "FLOAT": "float",
    "FLOAT64": "float",
    "FLOAT32": "float",
}


class PackageRefusedError(ModelopsError):
    """The version may not be packaged (not the environment's holder, skew, scorer mismatch)."""


@dataclass(frozen=True)
class _Version:
    version: str
    threshold: float
    features: tuple[str, ...]
    artifact_sha256: str
    model: Any
    check: ScorerCheck | None = None
    ranges: dict[str, FeatureRange] | None = None


@dataclass(frozen=True)
class _Prepared:
    project: Project
    environment: str | None
    primary: _Version
    shadow: _Version | None
    skew: SkewResult
    manifest: Manifest
    samples: Any  # pandas DataFrame
    feast_files: list[Path]


@dataclass(frozen=True)
class PackageResult:
    project: str
    model_version: str
    environment: str | None
    bento_tag: str
    bento_path: Path
    bentoml_home: Path
    artifact_sha256: str
    feature_service: str
    threshold: float
    actions: tuple[str, str, str]
    review_from: float
    scorer: ScorerCheck
    skew: SkewResult
    shadow_version: str | None = None
    reused: bool = False
    record: ReleaseRecord | None = None
    ranges: str = ""


def bento_store(settings: Settings) -> bentoml_io.Store:
    """``BENTOML_HOME`` when set; otherwise ``<state_dir>/bentoml`` in the embedded profile (all
    platform state in one place) and BentoML's default ``~/bentoml`` in production."""
    home = os.environ.get("BENTOML_HOME")
    if home:
        return bentoml_io.Store(Path(home))
    if settings.profile == "embedded":
        return bentoml_io.Store(settings.resolved_state_dir / "bentoml")
    return bentoml_io.Store(Path.home() / "bentoml")


def model_tag(project: str, version: str, sha256: str) -> str:
    """The model's tag in BentoML's model store: content-addressed like the Bento's."""
    return f"{bento_name(project)}-model:{bento_version(version, sha256)}"


def release_tag(project: str, version: str, sha256: str, shadow: _Version | None) -> str:
    tag = bento_tag(project, version, sha256)
    if shadow is None:
        return tag
    return f"{tag}-shadow-v{shadow.version}-{shadow.artifact_sha256[:12]}"


def check_holder(settings: Settings, project: str, environment: str, version: str) -> None:
    """Raises PackageRefusedError unless ``version`` holds ``environment`` in the ledger."""
    check_environment(settings, environment)
    holder = verified_ledger(settings, "package").holder(project, environment).version
    if holder != str(version):
        held = f"v{holder} holds it" if holder else "nothing holds it"
        raise PackageRefusedError(
            f"v{version} does not hold {environment} ({held}); only an environment's holder "
            f"is packaged for it"
        )


def check_skew_allowed(skew: SkewResult) -> None:
    """Raises PackageRefusedError when more entities differ than the project tolerates."""
    report = skew.report
    if not skew.exceeded:
        return
    raise PackageRefusedError(
        f"train/serve skew: {report.mismatched_entities} of {report.entities} entities "
        f"({report.share:.1%}) differ between the offline and online store, above "
        f"serving.max_skew_share {skew.max_share:.1%}; features: "
        f"{', '.join(report.skewed_features)}; see 'modelops skew {skew.project}'"
    )


def _lookup(client: Any, project: Project, version: str, role: str) -> _Version:
    spec = project.spec
    name = spec.registered_model
    mv = mlflow_io.get_version(client, name, version)
    found = dict(mv.tags)

    def tag(key: str) -> str:
        value = found.get(key)
        if not value:
            raise PackageRefusedError(
                f"{name} v{version} has no '{key}' tag; register it again with 'modelops train'"
            )
        return value

    trained_on = found.get(tags.FEATURE_SERVICE)
    if trained_on and trained_on != spec.feature_service:
        raise PackageRefusedError(
            f"{name} v{version} was trained on feature service '{trained_on}'; "
            f"{project.spec_file} serves '{spec.feature_service}'"
        )
    sha256 = tag(tags.ARTIFACT_SHA256)
    model, _ = mlflow_io.load_verified_model(
        f"models:/{name}/{version}", sha256, f"{name} v{version} ({role})"
    )
    recorded = found.get(tags.FEATURE_RANGES)
    return _Version(
        version=str(version),
        threshold=float(tag(tags.THRESHOLD)),
        features=tuple(f for f in tag(tags.FEATURES).split(",") if f),
        artifact_sha256=sha256,
        model=model,
        ranges=parse_ranges(recorded, f"{name} v{version}") if recorded else None,
    )


def _checked(v: _Version, frame: Any, label: str) -> _Version:
    from modelops.core.scorer import build_scorer, verify_scorer

    scorer = build_scorer(v.model, list(v.features))
    check = verify_scorer(scorer, v.model, frame, list(v.features), threshold=v.threshold)
    if not check.passed:
        raise PackageRefusedError(f"{label}: {check.detail}")
    return dataclasses.replace(v, check=check)


def _feast_type(value: Any, where: str) -> str:
    name = str(getattr(value, "name", None) or value)
    try:
        return _FEAST_TYPES[name.upper()]
    except KeyError:
        raise PackageRefusedError(f"{where}: Feast type {name} is not served") from None


def _entity_field(store: Any, join_key: str) -> InputField:
    entity = feast_io.entity_field(store, join_key)
    if entity is None:
        raise PackageRefusedError(f"no Feast entity has the join key '{join_key}'")
    return InputField(
        name=join_key,
        type=_feast_type(entity.type, f"entity key '{join_key}'"),
        description=entity.description,
    )


def _request_fields(store: Any, service: Any) -> tuple[InputField, ...]:
    return tuple(
        InputField(
            name=f.name,
            type=_feast_type(f.type, f"request field '{f.name}'"),
            description=f.description,
        )
        for f in feast_io.service_request_schema(store, service)
    )


def _example(frame: Any, inputs: tuple[InputField, ...]) -> dict[str, Any] | None:
    """The first compared entity's request, typed as the API takes it (the OpenAPI example)."""
    cast = {"int": int, "float": float, "str": str, "bool": bool}
    if frame.empty or any(f.name not in frame.columns for f in inputs):
        return None
    row = frame.iloc[0]
    example: dict[str, Any] = {}
    for f in inputs:
        value = row[f.name]
        try:
            value = cast[f.type](value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError):
            return None
        if (isinstance(value, float) and not math.isfinite(value)) or value == "":
            return None
        example[f.name] = value
    return example


def _entry(v: _Version, project: str, **where: Any) -> ModelEntry:
    assert v.check is not None
    return ModelEntry(
        version=v.version,
        artifact_sha256=v.artifact_sha256,
        threshold=v.threshold,
        feature_names=v.features,
        scorer_kind=v.check.kind,
        scorer_max_abs_diff=v.check.max_abs_diff,
        bentoml_model=model_tag(project, v.version, v.artifact_sha256),
        feature_ranges=v.ranges,
        **where,
    )


def _prepare(
    settings: Settings,
    project_name: str,
    version: str,
    environment: str | None,
    shadow: str | None,
    entities: int,
) -> _Prepared:
    """Every check of a package, and its manifest; nothing written yet."""
    project = project_for(settings, project_name)
    spec = project.spec
    version = str(version)
    if environment is not None:
        check_holder(settings, spec.name, environment, version)
    if shadow is not None and str(shadow) == version:
        raise PackageRefusedError(f"--shadow {shadow}: the shadow must be another version")
    public_key(settings)  # no key to sign the release with: refuse before the expensive checks
    with mlflow_io.session(tracking(settings)) as client:
        primary = _lookup(client, project, version, "served")
        second = _lookup(client, project, str(shadow), "shadow") if shadow else None
    store = feast_io.open_store(feature_repo(settings))
    service = project_service(settings, project, store)
    served = set(feast_io.service_features(service))
    for v in (primary, second):
        if v is None:
            continue
        missing = [f for f in v.features if f not in served]
        if missing:
            raise PackageRefusedError(
                f"{spec.registered_model} v{v.version} needs {missing}, not served by feature "
                f"service '{spec.feature_service}'"
            )
    skew = check_skew(settings, spec.name, entities, store=store)
    check_skew_allowed(skew)
    frame = skew.offline
    primary = _checked(primary, frame, f"v{primary.version}")
    if second is not None:
        second = _checked(second, frame, f"shadow v{second.version}")
    columns = list(dict.fromkeys([*primary.features, *(second.features if second else ())]))
    samples = frame[columns].head(SAMPLE_ROWS).reset_index(drop=True)

    config = settings.resolved_feature_store_yaml
    repo = settings.resolved_feature_repo
    feast_files = sorted(repo.glob("feature_store*.yaml"))
    if config not in feast_files:
        feast_files.append(config)
    report = skew.report
    entity = _entity_field(store, spec.entity)
    request_fields = _request_fields(store, service)
    manifest = Manifest(
        project=spec.name,
        registered_model=spec.registered_model,
        environment=environment,
        bento_tag=release_tag(spec.name, version, primary.artifact_sha256, second),
        feature_service=spec.feature_service,
        entity=entity,
        request_fields=request_fields,
        example=_example(frame, (entity, *request_fields)),
        model=_entry(primary, spec.name),
        shadow=_entry(second, spec.name) if second else None,
        decisions=spec.decisions,
        serving=spec.serving,
        feast=FeastConfig(
            config_file=config.name,
            batch_views=feast_io.service_batch_features(store, service),
        ),
        skew=SkewSummary(
            entities=report.entities,
            mismatched_entities=report.mismatched_entities,
            features=tuple(report.skewed_features),
            as_of=skew.as_of,
        ),
        packaged_at=datetime.now(UTC),
        packaged_by=resolve_actor(None, settings.root),
        git_commit=git_io.head_commit(settings.root),
    )
    return _Prepared(project, environment, primary, second, skew, manifest, samples, feast_files)


def _write_release(directory: Path, prepared: _Prepared, manifest: Manifest) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_manifest(directory, manifest)
    from modelops.integrations.parquet import write_frame

    write_frame(prepared.samples, directory / SAMPLES_FILE)
    feast_dir = directory / FEATURE_REPO_DIR
    feast_dir.mkdir(exist_ok=True)
    for path in prepared.feast_files:
        shutil.copy2(path, feast_dir / path.name)


def _import_models(settings: Settings, prepared: _Prepared) -> dict[str, Path]:
    """The model(s) in BentoML's model store, each copy's SHA-256 checked again."""
    store = bento_store(settings)
    spec = prepared.project.spec
    versions = [v for v in (prepared.primary, prepared.shadow) if v is not None]
    imports = [
        bentoml_io.ModelImport(
            tag=model_tag(spec.name, v.version, v.artifact_sha256),
            model_uri=f"models:/{spec.registered_model}/{v.version}",
            labels={
                "project": spec.name,
                "model_version": v.version,
                "artifact_sha256": v.artifact_sha256,
            },
        )
        for v in versions
    ]
    t = tracking(settings)
    env = {"MLFLOW_TRACKING_URI": t.tracking_uri, "MLFLOW_REGISTRY_URI": t.registry_uri}
    with mlflow_io.session(t):  # fails fast, in one line, when the server is down
        folders = bentoml_io.import_models(store, imports, env)
    for v, item in zip(versions, imports, strict=True):
        try:
            artifact.verify(folders[item.tag], v.artifact_sha256, f"{item.tag} (model store)")
        except artifact.ArtifactError:
            bentoml_io.delete_model(store, item.tag)
            raise
    return folders


def _copy_package(target: Path) -> None:
    import modelops

    source = Path(modelops.__file__).resolve().parent
    shutil.copytree(source, target / "modelops", ignore=shutil.ignore_patterns("__pycache__"))


def _result(
    prepared: _Prepared,
    bento: bentoml_io.Bento,
    store: bentoml_io.Store,
    reused: bool,
    record: ReleaseRecord,
) -> PackageResult:
    spec = prepared.project.spec
    primary = prepared.primary
    assert primary.check is not None
    d = spec.decisions
    return PackageResult(
        project=spec.name,
        model_version=primary.version,
        environment=prepared.environment,
        bento_tag=bento.tag,
        bento_path=bento.path,
        bentoml_home=store.home,
        artifact_sha256=primary.artifact_sha256,
        feature_service=spec.feature_service,
        threshold=primary.threshold,
        actions=(d.positive, d.review, d.negative),
        review_from=d.review_ratio * primary.threshold,
        scorer=primary.check,
        skew=prepared.skew,
        shadow_version=prepared.shadow.version if prepared.shadow else None,
        reused=reused,
        record=record,
        ranges=_ranges_note(prepared),
    )


def _ranges_note(prepared: _Prepared) -> str:
    """What the service does with values outside the training ranges, in one line."""
    serving = prepared.project.spec.serving
    lacking = [
        f"v{v.version}" for v in (prepared.primary, prepared.shadow) if v and v.ranges is None
    ]
    if prepared.primary.ranges is None:
        return (
            f"no training ranges recorded for {', '.join(lacking)} (trained before they were): "
            "inputs are served without a range check; retrain to record them"
        )
    checked = len(prepared.primary.ranges)
    note = (
        f"{checked} training ranges (margin {serving.range_margin:g}); values outside are "
        f"{'refused (422)' if serving.out_of_range == 'refuse' else 'scored and flagged'}"
    )
    return note + (f"; {lacking[0]} (shadow) has none" if lacking else "")


def package(
    settings: Settings,
    project_name: str,
    version: str,
    *,
    environment: str | None = None,
    shadow: str | None = None,
    entities: int = PACKAGE_ENTITIES,
    rebuild: bool = False,
) -> PackageResult:
    """Check ``version`` and build its Bento (kept when one of that tag exists, unless
    ``rebuild``).

    Raises:
        PackageRefusedError: not the environment's holder, skew above tolerance, a scorer that
            differs from its pipeline; RegistryError: an artifact that does not match its hash;
        ReleaseRefusedError: the Bento of that tag differs from its signed record (it is not
            reused; ``rebuild`` replaces it); ConfigError: no ledger key to sign with.
    """
    prepared = _prepare(settings, project_name, version, environment, shadow, entities)
    store = bento_store(settings)
    manifest = prepared.manifest
    tag = manifest.bento_tag
    existing = bentoml_io.find_bento(store, tag)
    if existing is not None and not rebuild:
        record = verify_bento(settings, store, existing, prepared.primary.version)
        return _result(prepared, existing, store, reused=True, record=record)
    if existing is not None:
        bentoml_io.delete_bento(store, tag)
    _import_models(settings, prepared)
    bento = _build(settings, prepared, store)
    record = verify_bento(settings, store, bento, prepared.primary.version)
    record_release(settings, record, manifest.packaged_by)
    return _result(prepared, bento, store, reused=False, record=record)


def _build(settings: Settings, prepared: _Prepared, store: bentoml_io.Store) -> bentoml_io.Bento:
    """The Bento: the ``modelops`` code and the release, signed, then ``bentoml build``."""
    spec = prepared.project.spec
    primary = prepared.primary
    manifest = prepared.manifest
    labels = {
        "project": spec.name,
        "model_version": primary.version,
        "artifact_sha256": primary.artifact_sha256,
        "feature_service": spec.feature_service,
        "registered_model": spec.registered_model,
    }
    if prepared.environment:
        labels["environment"] = prepared.environment
    if prepared.shadow:
        labels["shadow_version"] = prepared.shadow.version
        labels["shadow_artifact_sha256"] = prepared.shadow.artifact_sha256
    models = [e.bentoml_model for e in (manifest.model, manifest.shadow) if e and e.bentoml_model]
    with tempfile.TemporaryDirectory(prefix="modelops-bento-") as tmp:
        context = Path(tmp)
        _copy_package(context)
        release = context / RELEASE_DIR
        _write_release(release, prepared, manifest)
        sign_release(
            settings, release, manifest, model_folders(store, release), context / "modelops"
        )
        name, _, bento_ver = manifest.bento_tag.partition(":")
        return bentoml_io.build(
            store,
            bentoml_io.BentoSpec(
                build_ctx=context,
                service=SERVICE,
                name=name,
                version=bento_ver,
                labels=labels,
                models=models,
                include=["modelops/**", f"{RELEASE_DIR}/**"],
                description=(
                    f"# {spec.name} v{primary.version}\n\n{spec.description}\n\n"
                    f"Feature service `{spec.feature_service}`; decisions "
                    f"{spec.decisions.positive}/{spec.decisions.review}/"
                    f"{spec.decisions.negative} at threshold {primary.threshold:.6g}."
                ),
                packages=bentoml_io.runtime_requirements(),
                build_env={
                    "MODELOPS_SERVING_RELEASE": str(release),
                    "MODELOPS_SERVING_RELEASE_PUBLIC_KEY": public_key(settings),
                },
            ),
        )
