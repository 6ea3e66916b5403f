"""The rollout engine: a pure, deterministic state machine.

``step(state, event) -> Result(state, actions, transitions)``. It reads no clock and touches no
database: time arrives inside events (``Tick.now``), and what must happen to devices leaves as
actions (``Assign(device, "to" | "from")``). The driver (:mod:`edgefleet.server.rollout.driver`)
persists the state, turns actions into per-device desired state and stores transitions with their
reasons. The same events always give the same state, so a restarted server resumes exactly.

Phases::

    rolling ──(wave ready)──► baking ──(bake over)──► rolling (next wave) ─ ... ─► completed
       │  ▲                     │  └─(no auto-advance)─► awaiting_approval ─(approve)─┘
       │  └────────(resume)──── paused ◄──(pause / gate failed with on_failure=pause)
       └──(gate failed with on_failure=rollback, or abort)──► aborted (updated devices get "from")

``completed`` and ``aborted`` are terminal; from every other phase ``Abort`` reaches ``aborted``.
Each device is a member of exactly one wave and has exactly one target (``from`` or ``to``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from edgefleet.server.rollout.strategy import Strategy

__all__ = [
    "Abort",
    "Approve",
    "Assign",
    "DeviceHealth",
    "DeviceJoined",
    "DeviceLeft",
    "Event",
    "Health",
    "Member",
    "Observed",
    "Pause",
    "Phase",
    "Result",
    "Resume",
    "RolloutState",
    "Start",
    "Tick",
    "Transition",
    "start",
    "step",
]

Target = Literal["from", "to"]


class Phase(StrEnum):
    PENDING = "pending"
    ROLLING = "rolling"
    BAKING = "baking"
    AWAITING_APPROVAL = "awaiting_approval"
    PAUSED = "paused"
    COMPLETED = "completed"
    ABORTED = "aborted"

    @property
    def terminal(self) -> bool:
        return self in (Phase.COMPLETED, Phase.ABORTED)


@dataclass(frozen=True)
class Health:
    """What one device last reported about the new release of this deployment."""

    ready: bool = False
    failed: bool = False
    crash_loops: int = 0
    error_rate: float | None = None
    p95_latency_ms: float | None = None
    metrics: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Member:
    wave: int
    target: Target = "from"
    health: Health | None = None


@dataclass(frozen=True)
class RolloutState:
    strategy: Strategy
    phase: Phase = Phase.PENDING
    wave: int = 0
    plan: tuple[int, ...] = ()
    members: dict[str, Member] = field(default_factory=dict)
    wave_started_at: float = 0.0
    bake_started_at: float | None = None
    paused_from: Phase | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.model_dump(mode="json"),
            "phase": self.phase.value,
            "wave": self.wave,
            "plan": list(self.plan),
            "wave_started_at": self.wave_started_at,
            "bake_started_at": self.bake_started_at,
            "paused_from": self.paused_from.value if self.paused_from else None,
            "reason": self.reason,
            "members": {
                d: [m.wave, m.target, _health_json(m.health)] for d, m in sorted(self.members.items())
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RolloutState:
        return cls(
            strategy=Strategy.model_validate(data["strategy"]),
            phase=Phase(data["phase"]),
            wave=int(data["wave"]),
            plan=tuple(int(x) for x in data["plan"]),
            wave_started_at=float(data["wave_started_at"]),
            bake_started_at=data["bake_started_at"],
            paused_from=Phase(data["paused_from"]) if data["paused_from"] else None,
            reason=str(data["reason"]),
            members={d: Member(int(w), t, _health_from(h)) for d, (w, t, h) in data["members"].items()},
        )

    def wave_devices(self, upto: int | None = None) -> list[str]:
        """Members of waves ``0..upto`` (the current wave when ``upto`` is None)."""
        last = self.wave if upto is None else upto
        return [d for d, m in self.members.items() if m.wave <= last]

    def counts(self) -> dict[str, int]:
        updated = [m for m in self.members.values() if m.target == "to"]
        return {
            "devices": len(self.members),
            "updated": len(updated),
            "ready": sum(1 for m in updated if m.health and m.health.ready and not m.health.failed),
            "failed": sum(1 for m in updated if m.health and m.health.failed),
        }


def _health_json(h: Health | None) -> list[Any] | None:
    if h is None:
        return None
    return [h.ready, h.failed, h.crash_loops, h.error_rate, h.p95_latency_ms, [list(x) for x in h.metrics]]


def _health_from(raw: list[Any] | None) -> Health | None:
    if raw is None:
        return None
    ready, failed, crash, err, p95, metrics = raw
    return Health(
        bool(ready), bool(failed), int(crash), err, p95, tuple((str(k), float(v)) for k, v in metrics)
    )


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class Start:
    devices: tuple[str, ...]
    now: float


@dataclass(frozen=True)
class Tick:
    now: float


@dataclass(frozen=True)
class DeviceJoined:
    device: str
    now: float


@dataclass(frozen=True)
class DeviceLeft:
    device: str
    now: float


@dataclass(frozen=True)
class DeviceHealth:
    device: str
    health: Health
    now: float


@dataclass(frozen=True)
class Pause:
    now: float
    reason: str = "paused by operator"


@dataclass(frozen=True)
class Resume:
    now: float
    reason: str = "resumed by operator"


@dataclass(frozen=True)
class Approve:
    now: float
    reason: str = "next wave approved by operator"


@dataclass(frozen=True)
class Abort:
    now: float
    reason: str = "aborted by operator"


@dataclass(frozen=True)
class Observed:
    """Everything the driver saw in one pass, applied at once and evaluated once (O(fleet) per pass)."""

    now: float
    joined: tuple[str, ...] = ()
    left: tuple[str, ...] = ()
    health: tuple[tuple[str, Health], ...] = ()


Event = Start | Tick | DeviceJoined | DeviceLeft | DeviceHealth | Observed | Pause | Resume | Approve | Abort


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Assign:
    device: str
    target: Target


@dataclass(frozen=True)
class Transition:
    from_phase: Phase
    to_phase: Phase
    wave: int
    reason: str
    at: float


@dataclass(frozen=True)
class Result:
    state: RolloutState
    actions: tuple[Assign, ...] = ()
    transitions: tuple[Transition, ...] = ()
    rejected: str | None = None  # a manual event the phase does not allow, with why


class _Builder:
    """Accumulates one step's changes; every device gets at most one assignment per step."""

    def __init__(self, state: RolloutState) -> None:
        self.state = state
        self.members = dict(state.members)
        self.actions: dict[str, Target] = {}
        self.transitions: list[Transition] = []

    def assign(self, device: str, target: Target) -> None:
        m = self.members[device]
        if m.target != target:
            self.members[device] = replace(m, target=target, health=None)
            self.actions[device] = target

    def remove(self, device: str) -> None:
        self.members.pop(device, None)
        self.actions.pop(device, None)

    def go(self, phase: Phase, reason: str, now: float, **changes: Any) -> None:
        old = self.state.phase
        self.state = replace(self.state, phase=phase, reason=reason, **changes)
        self.transitions.append(Transition(old, phase, self.state.wave, reason, now))

    def result(self, rejected: str | None = None) -> Result:
        state = replace(self.state, members=self.members)
        actions = tuple(Assign(d, t) for d, t in sorted(self.actions.items()))
        return Result(state, actions, tuple(self.transitions), rejected)


def start(strategy: Strategy, devices: tuple[str, ...] | list[str], now: float) -> Result:
    """A new rollout over ``devices`` (the deployment's matching devices, in any order)."""
    return step(RolloutState(strategy=strategy), Start(tuple(devices), now))


def step(state: RolloutState, event: Event) -> Result:  # noqa: PLR0912 - one arm per event reads best
    """Apply one event. Terminal rollouts ignore everything but report manual events as rejected."""
    b = _Builder(state)
    if state.phase.terminal:
        manual = isinstance(event, Pause | Resume | Approve | Abort)
        return b.result(f"rollout is {state.phase.value}" if manual else None)
    match event:
        case Start(devices, now):
            if state.phase is not Phase.PENDING:
                return b.result("rollout already started")
            ordered = sorted(set(devices))
            plan = tuple(state.strategy.plan(len(ordered)))
            prev = 0
            for i, upto in enumerate(plan):
                for d in ordered[prev:upto]:
                    b.members[d] = Member(wave=i)
                prev = upto
            b.go(Phase.ROLLING, f"started wave 1 of {len(plan)}", now, plan=plan, wave=0, wave_started_at=now)
            _enter_wave(b, now)
        case Tick(now):
            _evaluate(b, now)
        case DeviceJoined(device, now):
            if device not in b.members:
                b.members[device] = Member(wave=state.wave)
                if state.phase in (Phase.ROLLING, Phase.BAKING):
                    b.assign(device, "to")
        case DeviceLeft(device, now):
            b.remove(device)
            _evaluate(b, now)
        case DeviceHealth(device, health, now):
            m = b.members.get(device)
            if m is not None and m.target == "to":
                b.members[device] = replace(m, health=health)
                _evaluate(b, now)
        case Observed():
            _observe(b, event)
        case Pause(now, reason):
            if state.phase not in (Phase.ROLLING, Phase.BAKING, Phase.AWAITING_APPROVAL):
                return b.result(f"cannot pause a rollout that is {state.phase.value}")
            b.go(Phase.PAUSED, reason, now, paused_from=state.phase, bake_started_at=None)
        case Resume(now, reason):
            if state.phase is not Phase.PAUSED:
                return b.result(f"cannot resume a rollout that is {state.phase.value}")
            if state.paused_from is Phase.AWAITING_APPROVAL:
                b.go(Phase.AWAITING_APPROVAL, reason, now, paused_from=None)
            else:
                b.go(Phase.ROLLING, reason, now, paused_from=None, wave_started_at=now, bake_started_at=None)
                _enter_wave(b, now)
        case Approve(now, reason):
            if state.phase is not Phase.AWAITING_APPROVAL:
                return b.result(f"cannot approve a rollout that is {state.phase.value}")
            _next_wave(b, now, reason)
        case Abort(now, reason):
            if state.phase is Phase.PENDING:
                b.go(Phase.ABORTED, reason, now)
            else:
                _rollback(b, now, reason)
    return b.result()


def _observe(b: _Builder, event: Observed) -> None:
    rolling = b.state.phase in (Phase.ROLLING, Phase.BAKING)
    both = set(event.joined) & set(event.left)  # contradictory (both here and gone): leave such devices be
    for device in event.left:
        if device not in both:
            b.remove(device)
    for device in event.joined:
        if device not in both and device not in b.members:
            b.members[device] = Member(wave=b.state.wave)
            if rolling:
                b.assign(device, "to")
    for device, h in event.health:
        m = b.members.get(device)
        if m is not None and m.target == "to":
            b.members[device] = replace(m, health=h)
    _evaluate(b, event.now)


def _enter_wave(b: _Builder, now: float) -> None:
    """Send the new release to every member up to the current wave, then check the gates."""
    for d in [d for d, m in b.members.items() if m.wave <= b.state.wave]:
        b.assign(d, "to")
    _evaluate(b, now)


def _next_wave(b: _Builder, now: float, reason: str) -> None:
    s = b.state
    if s.wave + 1 >= len(s.plan):
        b.go(Phase.COMPLETED, "all waves healthy", now, bake_started_at=None)
        return
    wave = s.wave + 1
    b.go(
        Phase.ROLLING,
        f"{reason}: wave {wave + 1} of {len(s.plan)}",
        now,
        wave=wave,
        wave_started_at=now,
        bake_started_at=None,
    )
    _enter_wave(b, now)


def _rollback(b: _Builder, now: float, reason: str) -> None:
    for d, m in list(b.members.items()):
        if m.target == "to":
            b.assign(d, "from")
    b.go(Phase.ABORTED, reason, now, bake_started_at=None, paused_from=None)


def _failure(b: _Builder, now: float, reason: str) -> None:
    if b.state.strategy.on_failure == "rollback":
        _rollback(b, now, f"rolled back: {reason}")
    else:
        b.go(Phase.PAUSED, f"paused: {reason}", now, paused_from=b.state.phase, bake_started_at=None)


def _evaluate(b: _Builder, now: float) -> None:
    """Check the gates and the clocks in rolling and baking; advance, bake, pause or roll back."""
    for _ in range(len(b.state.plan) + 1):  # empty waves pass at once; bounded by the wave count
        s = b.state
        if s.phase not in (Phase.ROLLING, Phase.BAKING):
            return
        gates = s.strategy.gates
        updated = [(d, m) for d, m in b.members.items() if m.wave <= s.wave and m.target == "to"]
        failed = [d for d, m in updated if m.health is not None and _fails(m.health, s.strategy)]
        if updated and len(failed) / len(updated) > gates.max_failure_ratio:
            _failure(
                b,
                now,
                f"{len(failed)} of {len(updated)} updated devices failed a gate ({failed[0]}: "
                f"{_why(b.members[failed[0]].health, s.strategy)})",
            )
            return
        wave = [d for d, m in b.members.items() if m.wave == s.wave]
        ready = [d for d in wave if _ready(b.members[d], s.strategy)]
        ready_enough = not wave or len(ready) / len(wave) >= gates.min_ready_ratio
        if s.phase is Phase.ROLLING:
            if not ready_enough:
                if now - s.wave_started_at >= s.strategy.progress_deadline_seconds:
                    _failure(
                        b,
                        now,
                        f"progress deadline: {len(ready)} of {len(wave)} devices of wave "
                        f"{s.wave + 1} ready after {s.strategy.progress_deadline_seconds:g}s",
                    )
                return
            if not wave or s.strategy.bake_seconds == 0:
                _wave_done(b, now)
                continue
            b.go(
                Phase.BAKING,
                f"wave {s.wave + 1}: {len(ready)} of {len(wave)} ready, baking",
                now,
                bake_started_at=now,
            )
            return
        # baking
        if not ready_enough:
            b.go(
                Phase.ROLLING,
                f"wave {s.wave + 1}: readiness dropped to {len(ready)} of {len(wave)}",
                now,
                bake_started_at=None,
            )
            return
        if s.bake_started_at is not None and now - s.bake_started_at >= s.strategy.bake_seconds:
            _wave_done(b, now)
            continue
        return


def _wave_done(b: _Builder, now: float) -> None:
    s = b.state
    if s.wave + 1 < len(s.plan) and not s.strategy.auto_advance:
        b.go(
            Phase.AWAITING_APPROVAL,
            f"wave {s.wave + 1} healthy, waiting for approval",
            now,
            bake_started_at=None,
        )
        return
    _next_wave(b, now, f"wave {s.wave + 1} healthy")


def _ready(m: Member, strategy: Strategy) -> bool:
    return m.target == "to" and m.health is not None and m.health.ready and not _fails(m.health, strategy)


def _fails(h: Health, strategy: Strategy) -> bool:
    return _why(h, strategy) is not None


def _why(h: Health | None, strategy: Strategy) -> str | None:  # noqa: PLR0911 - one return per gate
    """Why a device's health fails the gates, or None when it passes."""
    if h is None:
        return None
    g = strategy.gates
    if h.failed:
        return "workload failed"
    if h.crash_loops > g.max_crash_loops:
        return f"crash loops {h.crash_loops} > {g.max_crash_loops}"
    if g.max_error_rate is not None and h.error_rate is not None and h.error_rate > g.max_error_rate:
        return f"error rate {h.error_rate:g} > {g.max_error_rate:g}"
    if (
        g.max_p95_latency_ms is not None
        and h.p95_latency_ms is not None
        and h.p95_latency_ms > g.max_p95_latency_ms
    ):
        return f"p95 latency {h.p95_latency_ms:g} ms > {g.max_p95_latency_ms:g} ms"
    metrics = dict(h.metrics)
    for c in g.custom:
        v = metrics.get(c.metric)
        if v is None:
            continue
        if c.max is not None and v > c.max:
            return f"{c.metric} {v:g} > {c.max:g}"
        if c.min is not None and v < c.min:
            return f"{c.metric} {v:g} < {c.min:g}"
    return None
