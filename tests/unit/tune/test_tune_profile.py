"""Profiles: built-ins, include inheritance, user overrides, and bad input named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.tuning import ProfileStore, Roots
from edgefleet.tuning.errors import TuneProfileError, TuneProfileNotFoundError

from .conftest import MakeTuner

BUILTINS = {"balanced", "edge-latency", "edge-throughput", "edge-powersave"}


@pytest.mark.unit
def test_builtins_load_and_every_knob_has_a_comment() -> None:
    """The four built-ins exist, load, and explain every knob."""
    store = ProfileStore()
    assert {i.name for i in store.infos()} == BUILTINS
    for name in BUILTINS:
        profile = store.load(name)
        assert profile.description
        assert profile.settings
        for s in profile.settings:
            assert s.comment, f"{name}: {s.label} has no comment"


@pytest.mark.unit
def test_builtin_values_follow_tuned() -> None:
    """edge-latency carries latency-performance's values, edge-throughput throughput-performance's."""
    store = ProfileStore()
    lat = {s.label: s.value for s in store.load("edge-latency").settings}
    assert lat["sysctl:vm.swappiness"] == "10"
    assert lat["sysctl:vm.dirty_ratio"] == "10"
    assert lat["sysctl:vm.dirty_background_ratio"] == "3"
    assert lat["cpu:governor"] == "performance"
    assert lat["pm_qos:force_latency"] == "cstate.id_no_zero:1|3"
    thr = {s.label: s.value for s in store.load("edge-throughput").settings}
    assert thr["sysctl:vm.dirty_ratio"] == "40"
    assert thr["sysctl:net.core.somaxconn"] == ">2048"
    save = {s.label: s.value for s in store.load("edge-powersave").settings}
    assert save["cpu:governor"] == "schedutil|conservative|powersave"
    assert save["cpu:boost"] == "0"


@pytest.mark.unit
def test_include_merges_and_the_including_profile_wins(user_dir: Path) -> None:
    """A child profile inherits every knob of its include and overrides the ones it sets."""
    (user_dir / "mine.toml").write_text(
        'description = "mine"\ninclude = "edge-latency"\n\n[sysctl]\n'
        '"vm.swappiness" = { value = 1, comment = "even less" }\n'
        "vm.stat_interval = 10\n"
    )
    profile = ProfileStore([user_dir]).load("mine")
    values = {s.label: s for s in profile.settings}
    assert values["sysctl:vm.swappiness"].value == "1"
    assert values["sysctl:vm.swappiness"].line == 5
    assert values["sysctl:vm.stat_interval"].value == "10"  # a bare dotted key
    assert values["sysctl:vm.stat_interval"].line == 6
    assert values["sysctl:vm.dirty_ratio"].value == "10"  # inherited
    assert profile.includes == ("edge-latency",)


@pytest.mark.unit
def test_user_profile_replaces_a_builtin_of_the_same_name(user_dir: Path) -> None:
    (user_dir / "balanced.toml").write_text('description = "site balanced"\n')
    assert ProfileStore([user_dir]).load("balanced").description == "site balanced"


@pytest.mark.unit
def test_include_cycle_names_the_file_and_line(user_dir: Path) -> None:
    (user_dir / "a.toml").write_text('description = "a"\ninclude = "b"\n')
    (user_dir / "b.toml").write_text('\ndescription = "b"\n\ninclude = ["a"]\n')
    with pytest.raises(TuneProfileError, match=r"b\.toml:4: include cycle: a -> b -> a"):
        ProfileStore([user_dir]).load("a")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ('[sysctl]\n"vm.swappiness" = { value = ">ten" }\n', 2, "needs an integer"),
        ("[gpu]\nclock = 1\n", 1, "unknown knob section 'gpu'"),
        ('[sysctl]\n"vm.swappiness" = { value = 1, why = "x" }\n', 2, "'value' and 'comment' only"),
        ('[sysctl]\n"vm.swappiness" = [1, 2]\n', 2, "string or an integer"),
        ("[sysctl]\nvm.swappiness = \n", 2, "not valid TOML"),
    ],
)
def test_bad_profile_lines_are_named(user_dir: Path, body: str, line: int, message: str) -> None:
    """Malformed values, unknown sections and bad tables raise naming the file and the line."""
    (user_dir / "bad.toml").write_text(body)
    with pytest.raises(TuneProfileError, match=message) as info:
        ProfileStore([user_dir]).load("bad")
    assert info.value.fields["line"] == line
    assert f"bad.toml:{line}:" in info.value.message


@pytest.mark.unit
@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            'description = "x"\n[cpu]\nturbo_mode = { value = 1, comment = "" }\n',
            3,
            "unknown cpu knob 'turbo_mode'",
        ),
        ('[sysfs]\n"/etc/passwd" = "x"\n', 2, "not an absolute, normalised path under /sys"),
        ('[sysfs]\n"/sys/../etc/shadow" = "x"\n', 2, "under /sys"),
        ('[sysctl]\n"vm/../../x" = "1"\n', 2, "not a dotted /proc/sys name"),
        ('[vm]\ntransparent_hugepages = "sometimes"\n', 2, "allowed values are always|madvise|never"),
        ("[cpu]\nboost = 2\n", 2, "allowed 0 or 1"),
        ('[irq]\navoid_cpus = "1-x"\n', 2, "not a CPU list"),
        ('[pm_qos]\nforce_latency = "fast"\n', 2, "expected microseconds"),
        ('[boot]\nquiet_please = "1"\n', 2, "unknown boot item"),
    ],
)
def test_unknown_knobs_and_paths_fail_before_anything_is_applied(  # noqa: PLR0917 - fixtures + parameters
    user_dir: Path, vm_board: Roots, make_tuner: MakeTuner, body: str, line: int, message: str
) -> None:
    """Unknown knobs, bad values and paths outside /proc/sys or /sys are rejected at plan time."""
    (user_dir / "bad.toml").write_text(body)
    tuner = make_tuner(vm_board)
    with pytest.raises(TuneProfileError, match=message) as info:
        tuner.apply("bad")
    assert info.value.fields["line"] == line
    assert not tuner.journal.path.exists()


@pytest.mark.unit
def test_all_problems_are_listed(user_dir: Path, vm_board: Roots, make_tuner: MakeTuner) -> None:
    (user_dir / "bad.toml").write_text('[cpu]\nboost = 3\n\n[vm]\ntransparent_hugepages = "x"\n')
    with pytest.raises(TuneProfileError, match=r"2 problems: .*bad\.toml:2: .*bad\.toml:5: "):
        make_tuner(vm_board).plan("bad")


@pytest.mark.unit
def test_unknown_profile_is_not_found() -> None:
    with pytest.raises(TuneProfileNotFoundError, match=r"no profile 'nope' .*edge-latency"):
        ProfileStore().load("nope")
