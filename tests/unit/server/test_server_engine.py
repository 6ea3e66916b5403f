"""The rollout engine: deterministic transitions, and properties over arbitrary event sequences."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefleet.server.rollout import engine as eng
from edgefleet.server.rollout.strategy import Gates, Strategy, Wave

pytestmark = pytest.mark.unit

GOOD = eng.Health(ready=True, p95_latency_ms=10)
BAD = eng.Health(ready=False, failed=True)
DEVICES = tuple(f"d{i:02d}" for i in range(10))


def _run(state: eng.RolloutState, *events: eng.Event) -> tuple[eng.RolloutState, list[eng.Assign]]:
    actions: list[eng.Assign] = []
    for e in events:
        r = eng.step(state, e)
        state = r.state
        actions.extend(r.actions)
    return state, actions


def _updated(state: eng.RolloutState) -> set[str]:
    return {d for d, m in state.members.items() if m.target == "to"}


def test_plan_is_cumulative_and_ends_with_everyone() -> None:
    s = Strategy(waves=(Wave(percent=10), Wave(count=4), Wave(percent=50)))
    assert s.plan(10) == [1, 4, 10]
    assert s.plan(0) == [0, 0, 0]
    assert Strategy(waves=(Wave(percent=1), Wave(percent=100))).plan(3) == [1, 3]


def test_wave_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="exactly one of 'percent' or 'count'"):
        Wave(percent=10, count=3)


def test_healthy_rollout_advances_after_bake() -> None:
    r = eng.start(Strategy(bake_seconds=60), DEVICES, now=0)
    assert r.state.phase is eng.Phase.ROLLING
    assert [a.device for a in r.actions] == ["d00"]
    state, _ = _run(r.state, eng.DeviceHealth("d00", GOOD, 1))
    assert state.phase is eng.Phase.BAKING
    state, actions = _run(state, eng.Tick(30))
    assert state.phase is eng.Phase.BAKING
    assert not actions
    state, actions = _run(state, eng.Tick(61))
    assert (state.phase, state.wave) == (eng.Phase.ROLLING, 1)
    assert {a.device for a in actions} == {"d01", "d02", "d03", "d04"}


def test_failure_rolls_back_every_updated_device_and_only_those() -> None:
    r = eng.start(Strategy(bake_seconds=0), DEVICES, now=0)
    state, _ = _run(r.state, eng.DeviceHealth("d00", GOOD, 1))
    assert state.wave == 1
    state, actions = _run(state, eng.DeviceHealth("d03", BAD, 2))
    assert state.phase is eng.Phase.ABORTED
    assert "1 of 5 updated devices failed a gate (d03: workload failed)" in state.reason
    assert {a.device for a in actions} == {"d00", "d01", "d02", "d03", "d04"}
    assert all(a.target == "from" for a in actions)


def test_progress_deadline_fails_a_stuck_wave() -> None:
    r = eng.start(Strategy(progress_deadline_seconds=100, on_failure="pause"), DEVICES, now=0)
    state, _ = _run(r.state, eng.Tick(101))
    assert state.phase is eng.Phase.PAUSED
    assert "progress deadline: 0 of 1 devices of wave 1 ready" in state.reason


def test_custom_metric_gate() -> None:
    strategy = Strategy(gates=Gates(custom=({"metric": "accuracy", "min": 0.9},)), bake_seconds=0)  # type: ignore[arg-type]
    r = eng.start(strategy, DEVICES, now=0)
    state, _ = _run(r.state, eng.DeviceHealth("d00", eng.Health(ready=True, metrics=(("accuracy", 0.5),)), 1))
    assert state.phase is eng.Phase.ABORTED
    assert "accuracy 0.5 < 0.9" in state.reason


def test_state_round_trips_through_json() -> None:
    r = eng.start(Strategy(), DEVICES, now=5)
    state, _ = _run(r.state, eng.DeviceHealth("d00", GOOD, 6))
    assert eng.RolloutState.from_json(state.to_json()) == state


def test_terminal_rollouts_reject_manual_events() -> None:
    r = eng.start(Strategy(), DEVICES, now=0)
    state, _ = _run(r.state, eng.Abort(1))
    assert eng.step(state, eng.Resume(2)).rejected == "rollout is aborted"
    assert eng.step(state, eng.Tick(3)).rejected is None


# ---------------------------------------------------------------- properties

device_ids = st.sampled_from([f"d{i}" for i in range(12)])
health = st.builds(
    eng.Health,
    ready=st.booleans(),
    failed=st.booleans(),
    crash_loops=st.integers(0, 3),
    error_rate=st.none() | st.floats(0, 1),
    p95_latency_ms=st.none() | st.floats(0, 500),
)
times = st.floats(0, 50)
events = st.one_of(
    st.builds(eng.Tick, now=times),
    st.builds(eng.DeviceJoined, device=device_ids, now=times),
    st.builds(eng.DeviceLeft, device=device_ids, now=times),
    st.builds(eng.DeviceHealth, device=device_ids, health=health, now=times),
    st.builds(
        eng.Observed,
        now=times,
        joined=st.lists(device_ids, max_size=4).map(tuple),
        left=st.lists(device_ids, max_size=2).map(tuple),
        health=st.lists(st.tuples(device_ids, health), max_size=4).map(tuple),
    ),
    st.builds(eng.Pause, now=times),
    st.builds(eng.Resume, now=times),
    st.builds(eng.Approve, now=times),
)
strategies = st.builds(
    Strategy,
    waves=st.lists(
        st.one_of(st.builds(Wave, percent=st.floats(1, 100)), st.builds(Wave, count=st.integers(1, 12))),
        min_size=1,
        max_size=4,
    ).map(tuple),
    bake_seconds=st.sampled_from([0.0, 5.0, 20.0]),
    progress_deadline_seconds=st.sampled_from([10.0, 1000.0]),
    gates=st.builds(
        Gates, max_failure_ratio=st.sampled_from([0.0, 0.5]), max_p95_latency_ms=st.none() | st.just(100.0)
    ),
    auto_advance=st.booleans(),
    on_failure=st.sampled_from(["rollback", "pause"]),
)


def _replay(strategy: Strategy, initial: list[str], evs: list[eng.Event]) -> tuple[eng.RolloutState, float]:
    r = eng.start(strategy, initial, now=0)
    _check_step(r)
    state, now = r.state, 0.0
    for e in evs:
        # time never runs backwards: each event happens at or after the previous one
        now += getattr(e, "now", 0.0)
        e = type(e)(**{**e.__dict__, "now": now})  # noqa: PLW2901
        r = eng.step(state, e)
        _check_step(r)
        _check_targets(r, state)
        state = r.state
    return state, now


def _check_step(r: eng.Result) -> None:
    """One step never assigns a device twice, and every assigned device is a member."""
    devices = [a.device for a in r.actions]
    assert len(devices) == len(set(devices))
    for a in r.actions:
        assert r.state.members[a.device].target == a.target


def _check_targets(r: eng.Result, before: eng.RolloutState) -> None:
    """Each member has exactly one target; only assignments change targets."""
    changed = {
        d for d, m in r.state.members.items() if d in before.members and m.target != before.members[d].target
    }
    assert changed <= {a.device for a in r.actions}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    strategy=strategies,
    initial=st.lists(device_ids, unique=True, max_size=10),
    evs=st.lists(events, max_size=30),
)
def test_every_reachable_state_can_still_terminate(
    strategy: Strategy, initial: list[str], evs: list[eng.Event]
) -> None:
    """From any state, abort ends it with nobody on the new release; so does a healthy fleet and time."""
    state, now = _replay(strategy, initial, evs)
    aborted = eng.step(state, eng.Abort(now + 1)).state
    assert aborted.phase.terminal
    if aborted.phase is eng.Phase.ABORTED and state.phase is not eng.Phase.COMPLETED:
        assert not _updated(aborted)
    # drive to the end with healthy reports, approvals, resumes and time
    for i in range(4 * (len(strategy.waves) + 2)):
        if state.phase.terminal:
            break
        t = now + (i + 1) * 1000
        evs2: list[eng.Event] = [eng.Resume(t), eng.Approve(t)]
        evs2 += [eng.DeviceHealth(d, GOOD, t) for d in sorted(_updated(state))]
        evs2.append(eng.Tick(t + 500))
        for e in evs2:
            r = eng.step(state, e)
            _check_step(r)
            state = r.state
    assert state.phase.terminal, state


@settings(max_examples=100, deadline=None)
@given(
    strategy=strategies,
    initial=st.lists(device_ids, unique=True, max_size=10),
    evs=st.lists(events, max_size=25),
)
def test_engine_is_deterministic(strategy: Strategy, initial: list[str], evs: list[eng.Event]) -> None:
    a, _ = _replay(strategy, initial, evs)
    b, _ = _replay(strategy, initial, evs)
    assert a == b
    assert eng.RolloutState.from_json(a.to_json()) == a


@settings(max_examples=100, deadline=None)
@given(
    strategy=strategies,
    initial=st.lists(device_ids, unique=True, min_size=1, max_size=10),
    evs=st.lists(events, max_size=25),
)
def test_completed_means_everyone_updated(
    strategy: Strategy, initial: list[str], evs: list[eng.Event]
) -> None:
    state, _ = _replay(strategy, initial, evs)
    if state.phase is eng.Phase.COMPLETED:
        assert _updated(state) == set(state.members)
    if state.phase is eng.Phase.ABORTED:
        assert not _updated(state)
