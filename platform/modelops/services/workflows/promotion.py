"""The one promotion path: gate a version, then promote it through each environment in order.

The demo, the monitor's retraining and the simulation's bad-model drill all walk a version to an
environment this way; what differs between them is an explicit :class:`WalkOptions` field, never
a copy of the loop:

- ``candidates``: versions offered in order; the next one is tried only when the previous failed
  the first gate it needed (a version that passed a gate is never swapped for another half-way);
- ``waits``: environments where the walk stops with a pending promotion, and why (the monitor:
  approval needed, or automatic promotion off); everywhere else the walk moves;
- ``approver``: who approves where the project requires an approval (the demo, the drill);
- ``skip_held``: environments below the target that the version already held are not walked
  again (the drill);
- ``gate_errors_fail``: a gate that cannot be evaluated counts as a failed verdict, recorded with
  its reason, instead of raising (the monitor runs unattended);
- ``tolerate_alias_lag``: a move whose MLflow alias lags is recorded and the walk goes on (the
  ledger is the truth; ``models sync`` repairs the alias);
- ``refusals_stop``: a refused move (recorded in the ledger) ends the walk with its reason
  instead of raising (the monitor records the walk whole);
- ``after_move``: what follows each move (the GitOps commit); its text is kept with the move;
- ``expect``: the state of the target environment a decision to walk was made on (the monitor's
  judged holder and move head); the move into the target is refused if it moved since.

Every move is a compare-and-swap on what was judged: into the target on ``expect`` when given,
and everywhere else on the holder and move head the walk read just before that environment's
gate, so a person's move in between refuses the walk's move (recorded) instead of replacing a
version nobody judged.

Every gate is :func:`modelops.services.gate.validate` and every move is
:func:`modelops.services.promote.promote`, so each step is judged by the same rules and recorded
in the ledger like a manual one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelops.config.settings import Settings
from modelops.core.errors import ModelopsError
from modelops.core.promotion import Expectation
from modelops.services import gate, judged, promote
from modelops.services.context import approval_required
from modelops.services.context import ledger as ledger_for
from modelops.services.context import project as project_for


@dataclass(frozen=True)
class GateStep:
    """One gate on the way: the verdict's id (None when it could not be evaluated)."""

    version: str
    environment: str
    verdict_id: str | None
    passed: bool
    failed: str
    verdict: Any = None
    """The :class:`~modelops.core.verdict.Verdict` itself, when one was made."""

    def as_details(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "environment": self.environment,
            "id": self.verdict_id,
            "passed": self.passed,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class MoveStep:
    environment: str
    version: str
    ledger_seq: int | None
    alias_lags: str | None = None
    after: str | None = None
    """What ``after_move`` reported (the GitOps commit), if anything."""

    def as_details(self) -> dict[str, Any]:
        if self.alias_lags is not None:
            return {
                "environment": self.environment,
                "version": self.version,
                "alias_lags": self.alias_lags,
            }
        return {
            "environment": self.environment,
            "version": self.version,
            "ledger_seq": self.ledger_seq,
        }


@dataclass(frozen=True)
class Pending:
    version: str
    environment: str
    verdict_id: str | None
    why: str


@dataclass(frozen=True)
class WalkOptions:
    target: str
    """The last environment of the walk; every configured environment below it comes first."""
    candidates: Sequence[str]
    reason: Callable[[str, str, GateStep], str]
    """The ledger reason of a move: ``reason(version, environment, passing gate)``."""
    actor: str | None = None
    approver: str | None = None
    waits: Mapping[str, str] = field(default_factory=dict)
    skip_held: bool = False
    gate_errors_fail: bool = False
    tolerate_alias_lag: bool = False
    refusals_stop: bool = False
    as_of: datetime | None = None
    gate_settings: Settings | None = None
    """Settings the gate judges with, when they differ (the monitor's retraining windows)."""
    after_move: Callable[[str, str], str | None] | None = None
    """Called as ``after_move(environment, version)`` after each move."""
    on_gate: Callable[[GateStep], None] | None = None
    on_move: Callable[[MoveStep], None] | None = None
    expect: Expectation | None = None
    """What the target environment held (holder and move head) when the walk was decided."""


@dataclass
class WalkResult:
    chosen: str | None = None
    """The version that passed its first gate (None: no candidate did)."""
    gates: list[GateStep] = field(default_factory=list)
    moves: list[MoveStep] = field(default_factory=list)
    pending: Pending | None = None
    stopped: str = ""
    """Why the walk ended before the target ("" when the target now holds ``chosen``)."""

    @property
    def reached(self) -> bool:
        return not self.stopped and self.chosen is not None

    @property
    def refusals(self) -> list[GateStep]:
        return [g for g in self.gates if not g.passed]


def walk(settings: Settings, project_name: str, options: WalkOptions) -> WalkResult:
    """Gate and promote ``options.candidates`` up to ``options.target``.

    Raises:
        ModelopsError: an unknown target, a gate error (unless ``gate_errors_fail``), or a
            promotion refused by a rule (recorded in the ledger first), as the steps raise them.
    """
    order = list(settings.environments)
    if options.target not in order:
        raise ModelopsError(
            f"unknown environment '{options.target}' (configured: {', '.join(order)})"
        )
    project = project_for(settings, project_name)
    name = project.spec.name
    path = order[: order.index(options.target) + 1]
    required = set(approval_required(settings, project))
    result = WalkResult()
    for version in options.candidates:
        first_gate_failed = _walk_version(
            settings, name, str(version), path, required, options, result
        )
        if not first_gate_failed:
            return result
    envs = [g.environment for g in result.gates]
    result.stopped = (
        f"no offered version passed the gate against {envs[0]}" if envs else "nothing offered"
    )
    return result


def _walk_version(
    settings: Settings,
    name: str,
    version: str,
    path: list[str],
    required: set[str],
    options: WalkOptions,
    result: WalkResult,
) -> bool:
    """Walk one version; True when it failed the first gate it needed (try the next one)."""
    ledger = ledger_for(settings)
    first = True
    for env in path:
        if (
            options.skip_held
            and env != options.target
            and version in ledger.past_holders(name, env)
        ):
            continue
        expect = options.expect if env == options.target else None
        if expect is None:
            expect = judged.snapshot(ledger, name, env).expectation
        step = _gate(settings, name, version, env, options)
        result.gates.append(step)
        if options.on_gate is not None:
            options.on_gate(step)
        if not step.passed:
            if first:
                return True
            result.stopped = f"v{version} failed the gate against {env}: {step.failed}"
            return False
        if first:
            result.chosen, first = version, False
        if env in options.waits:
            why = options.waits[env]
            result.pending = Pending(version, env, step.verdict_id, why)
            result.stopped = f"v{version} passed the gate against {env}; {env} {why}: pending"
            return False
        try:
            moved = _move(settings, name, version, env, env in required, step, options, expect)
        except promote.PromotionRefusedError as exc:
            if not options.refusals_stop:
                raise
            result.stopped = f"v{version} passed the gate against {env} but was not moved: {exc}"
            return False
        result.moves.append(moved)
        if options.on_move is not None:
            options.on_move(result.moves[-1])
    return False


def _gate(settings: Settings, name: str, version: str, env: str, options: WalkOptions) -> GateStep:
    judged_by = options.gate_settings or settings
    try:
        verdict = gate.validate(
            judged_by, name, version, against=env, as_of=options.as_of, actor=options.actor
        )
    except ModelopsError as exc:
        if not options.gate_errors_fail:
            raise
        return GateStep(version, env, None, False, f"could not evaluate: {exc}")
    return GateStep(
        version, env, verdict.id, verdict.passed, ", ".join(verdict.failed_rules), verdict
    )


def _move(
    settings: Settings,
    name: str,
    version: str,
    env: str,
    needs_approval: bool,
    step: GateStep,
    options: WalkOptions,
    expect: Expectation,
) -> MoveStep:
    approver = options.approver if needs_approval else options.actor
    reason = options.reason(version, env, step)
    try:
        move = promote.promote(
            settings,
            name,
            version,
            env,
            approve=needs_approval,
            approver=approver,
            reason=reason,
            expect=expect,
        )
    except promote.AliasLagError as exc:
        if not options.tolerate_alias_lag:
            raise
        after = options.after_move(env, version) if options.after_move else None
        return MoveStep(env, version, None, alias_lags=str(exc), after=after)
    after = options.after_move(env, version) if options.after_move else None
    return MoveStep(env, version, move.entry.seq, after=after)


def deploy_reported(
    settings: Settings,
    project: str,
    environment: str,
    actor: str | None,
    push: bool = False,
    *,
    package_version: str | None = None,
) -> str:
    """The GitOps commit of ``environment``'s new holder, as ``modelops deploy`` writes it; a
    failure is reported, never raised (the ledger is the truth, and ``modelops deploy`` writes
    the commit later). A deploy writes the signed release the ledger recorded: with
    ``package_version``, that version is packaged first unless the ledger holds a package entry
    of it already."""
    from modelops.services import deploy

    try:
        if package_version is not None:
            from modelops.services import package, release_ledger

            if not release_ledger.packaged(settings, project, package_version):
                package.package(settings, project, package_version, environment=environment)
        done = deploy.deploy(settings, project, environment, actor=actor, push=push)
    except ModelopsError as exc:
        return f"GitOps not updated ({exc}); run 'modelops deploy {project} --env {environment}'"
    return f"GitOps commit {done.commit[:12]}" if done.commit else "GitOps already up to date"
