"""From a table to a gated model in the first environment: ``modelops project init ... --train``.

The steps a newcomer would otherwise type one by one, in order, each the platform's own:
:func:`~modelops.services.project_init.init_project` writes the project,
:func:`~modelops.services.features.apply` registers its definitions,
:func:`~modelops.services.train.train` registers a candidate and its logistic baseline, and
:func:`~modelops.services.workflows.promotion.walk` (the one promotion path) gates the candidate,
then the baseline if the candidate failed, against the first environment and promotes the first
that passes. Nothing here judges or moves anything itself; a gate that cannot be evaluated counts
as failed, with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelops.config.settings import Settings
from modelops.services.workflows import promotion

if TYPE_CHECKING:
    from modelops.services.project_init import InitOptions, InitResult
    from modelops.services.train import TrainedVersion, TrainResult

ACTION = "project init --train"


@dataclass(frozen=True)
class Stage:
    """One step done: its name and wall seconds."""

    name: str
    seconds: float


@dataclass(frozen=True)
class ModelRow:
    """One registered version in the summary: what it is, how it scored, what the gate said."""

    version: str
    role: str
    kind: str
    metrics: dict[str, float]
    threshold: float
    verdict: str  # "passed", "FAILED", "not gated" (the candidate passed first)
    failed: str  # the failed rules, or why the gate could not evaluate
    verdict_id: str | None


@dataclass
class OnboardResult:
    init: InitResult
    target: str
    applied: list[str] = field(default_factory=list)
    trained: TrainResult | None = None
    walk: promotion.WalkResult | None = None
    models: list[ModelRow] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)

    @property
    def reached(self) -> bool:
        return self.walk is not None and self.walk.reached

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)


def onboard(
    settings: Settings,
    options: InitOptions,
    actor: str | None = None,
    on_stage: Callable[[Stage, OnboardResult], None] | None = None,
    on_gate: Callable[[promotion.GateStep], None] | None = None,
) -> OnboardResult:
    """Init, apply, train, then gate and promote to the first environment.

    ``on_stage`` is called after each step (the CLI prints as it goes); ``on_gate`` after each
    gate of the walk.

    Raises:
        ModelopsError: as init, apply and train raise (nothing after the failing step runs).
    """
    from modelops.services import features, train
    from modelops.services.project_init import init_project

    started = time.perf_counter()
    result = OnboardResult(init_project(settings, options), target=settings.environments[0])
    _done(result, "init", started, on_stage)
    started = time.perf_counter()
    result.applied = features.apply(settings)
    _done(result, "features apply", started, on_stage)
    started = time.perf_counter()
    trained = train.train(settings, options.name)
    result.trained = trained
    _done(result, "train", started, on_stage)
    started = time.perf_counter()
    order = (trained.candidate, trained.baseline)
    walked = promotion.walk(
        settings,
        options.name,
        promotion.WalkOptions(
            target=result.target,
            candidates=[t.version for t in order],
            reason=lambda version, env, _: (
                f"{ACTION}: first model, v{version} ({_role(trained, version)}) passed the gate "
                f"against {env}"
            ),
            actor=actor,
            approver=actor,
            gate_errors_fail=True,
            refusals_stop=True,
            on_gate=on_gate,
        ),
    )
    result.walk = walked
    result.models = [_row(t, walked, trained) for t in order]
    result.next_steps = _next_steps(settings, options, result)
    _done(result, f"gate and promote to {result.target}", started, on_stage)
    return result


def _done(
    result: OnboardResult,
    name: str,
    started: float,
    on_stage: Callable[[Stage, OnboardResult], None] | None,
) -> None:
    stage = Stage(name, time.perf_counter() - started)
    result.stages.append(stage)
    if on_stage is not None:
        on_stage(stage, result)


def _role(trained: TrainResult, version: str) -> str:
    return trained.candidate.role if version == trained.candidate.version else "baseline"


def _row(version: TrainedVersion, walked: promotion.WalkResult, trained: TrainResult) -> ModelRow:
    step = next((g for g in walked.gates if g.version == version.version), None)
    if step is None:
        verdict, failed, verdict_id = "not gated", "", None
    else:
        verdict = "passed" if step.passed else "FAILED"
        failed, verdict_id = step.failed, step.verdict_id
    return ModelRow(
        version=version.version,
        role=version.role,
        kind=_kind(version, walked, trained),
        metrics=version.metrics,
        threshold=version.threshold,
        verdict=verdict,
        failed=failed,
        verdict_id=verdict_id,
    )


def _kind(version: TrainedVersion, walked: promotion.WalkResult, trained: TrainResult) -> str:
    """The model's kind as the gate scored it (``lightgbm``, ``logistic``, ``pipeline``): from
    the scorer evidence of a verdict that measured it, as the candidate or as the sibling."""
    pair = {trained.candidate.version, trained.baseline.version}
    for step in walked.gates:
        if step.verdict is None:
            continue
        scorers: dict[str, Any] = step.verdict.evidence.get("scorers") or {}
        if step.version == version.version:
            kind = (scorers.get("candidate") or {}).get("kind")
        elif pair == {step.version, version.version}:
            kind = (scorers.get("sibling") or {}).get("kind")
        else:
            continue
        if kind:
            return str(kind)
    return "-"


def _next_steps(settings: Settings, options: InitOptions, result: OnboardResult) -> list[str]:
    """What to run for each environment above the target, with the version that reached it."""
    from modelops.services.context import approval_required
    from modelops.services.context import project as project_for

    walked = result.walk
    if walked is None or not walked.reached or walked.chosen is None:
        return []
    name, version = options.name, walked.chosen
    loaded = project_for(settings, name)
    required = approval_required(settings, loaded)
    steps = []
    if options.costs is None:
        steps.append(
            f"before production: set 'costs' in projects/{name}/project.yaml (false_negative, "
            "false_positive): the 1:1 default is a placeholder"
        )
    for env in settings.environments[1:]:
        validate = f"modelops validate {name} {version} --against {env}"
        if env == "staging" and loaded.spec.promotion.auto_promote_staging:
            steps.append(f"{env}: {validate} (promotes on a pass: auto_promote_staging)")
            continue
        approve = " --approve --approver NAME --reason 'WHY'" if env in required else ""
        steps.append(f"{env}: {validate} && modelops promote {name} {version} --to {env}{approve}")
    return steps
