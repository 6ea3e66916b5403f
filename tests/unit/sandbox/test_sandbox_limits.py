"""Limits are parsed and checked before anything starts; one CPU-weight formula."""

from pathlib import Path

import pytest

from edgefleet.sandbox.errors import LimitError, SandboxNotFoundError
from edgefleet.sandbox.limits import (
    Limits,
    io_weight_to_blkio,
    parse_cpus,
    parse_cpuset,
    parse_device,
    parse_io_max,
    parse_size,
    shares_to_weight,
    weight_to_shares,
)
from edgefleet.sandbox.options import RunOptions

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64m", 64 << 20), ("1.5G", 3 << 29), ("512MiB", 512 << 20), ("1048576", 1 << 20), ("2k", 2048)],
)
def test_sizes(text: str, expected: int) -> None:
    """Sizes accept bytes and k/m/g/t with optional iB."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "12x", "", "-5m"])
def test_bad_size_names_the_field(text: str) -> None:
    """A size that is not one names the option and the allowed spellings."""
    with pytest.raises(LimitError, match="memory"):
        parse_size(text, "memory")


def test_cpu_weight_formula_is_proportional_and_keeps_defaults() -> None:
    """weight 100 <-> shares 1024; the map is clamped to the v1 and v2 ranges and round-trips."""
    assert weight_to_shares(100) == 1024
    assert weight_to_shares(1) == 10
    assert weight_to_shares(10000) == 102400
    assert shares_to_weight(1024) == 100
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    for weight in (1, 50, 100, 250, 1000, 10000):
        assert shares_to_weight(weight_to_shares(weight)) == weight
    assert io_weight_to_blkio(100) == 10
    assert io_weight_to_blkio(10000) == 1000


def test_cpus_must_fit_online_cpus() -> None:
    """--cpus above the online CPUs (or zero) is impossible and says what is allowed."""
    assert parse_cpus("1.5", 2) == 1.5
    with pytest.raises(LimitError, match=r"allowed 0.01 to 2"):
        parse_cpus("3", 2)
    with pytest.raises(LimitError):
        parse_cpus("0", 2)
    with pytest.raises(LimitError, match="not a number"):
        parse_cpus("fast", 2)
    assert Limits(cpus=1.5).cfs_quota_us() == 150_000


def test_cpuset_must_be_available() -> None:
    """A cpuset naming CPUs that are not online is refused with the available list."""
    assert parse_cpuset("0-1", "0-3") == "0-1"
    with pytest.raises(LimitError, match="5 not available; allowed 0-3"):
        parse_cpuset("1,5", "0-3")
    with pytest.raises(LimitError, match="list like"):
        parse_cpuset("a-b", "0-3")


def test_devices_must_exist_and_be_nodes(tmp_path: Path) -> None:
    """--device resolves major:minor of a real node; a missing one or a plain file is refused."""
    rule = parse_device("/dev/null:rw")
    assert (rule.kind, rule.major, rule.minor, rule.access) == ("c", 1, 3, "rw")
    assert rule.rule() == "c 1:3 rw"
    with pytest.raises(SandboxNotFoundError, match="/dev/video9 does not exist"):
        parse_device("/dev/video9", tmp_path)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "file").write_text("")
    with pytest.raises(LimitError, match="not a character or block device"):
        parse_device("/dev/file", tmp_path)
    with pytest.raises(LimitError, match="/dev/NAME"):
        parse_device("/etc/passwd")


def test_io_max() -> None:
    """--io-max takes MAJ:MIN or a block device and rbps/wbps/riops/wiops."""
    io = parse_io_max("8:0:rbps=10m,wiops=100")
    assert (io.device, io.rbps, io.wiops, io.wbps) == ("8:0", 10 << 20, 100, None)
    with pytest.raises(LimitError, match="KEY=VALUE"):
        parse_io_max("8:0:speed=3")
    with pytest.raises(LimitError, match="not a block device"):
        parse_io_max("/dev/null:rbps=1m")


def test_impossible_limits() -> None:
    """Memory below 1 MiB, pids below 1, weights outside 1-10000, high above max are refused."""
    with pytest.raises(LimitError, match="at least 1 MiB"):
        Limits(memory_max=1024)
    with pytest.raises(LimitError, match="pids"):
        Limits(pids_max=0)
    with pytest.raises(LimitError, match="1-10000"):
        Limits(cpu_weight=0)
    with pytest.raises(LimitError, match="memory-high"):
        Limits(memory_max=2 << 20, memory_high=4 << 20)


def test_run_options_check_against_fixture_sysfs(tmp_path: Path) -> None:
    """Options are converted with the online CPUs and memory nodes of the given sysfs."""
    cpu, node = tmp_path / "cpu", tmp_path / "node"
    cpu.mkdir()
    node.mkdir()
    (cpu / "online").write_text("0-3\n")
    (node / "online").write_text("0\n")
    limits = RunOptions(cpus="3.5", cpuset="2-3", cpuset_mems="0", memory="64m", pids=10).limits(
        sys_cpu=cpu, sys_node=node
    )
    assert limits.cpus == 3.5
    assert limits.cpuset_cpus == "2-3"
    assert limits.requested() == ["cpus", "cpuset", "cpuset-mems", "memory", "pids"]
    with pytest.raises(LimitError, match="cpuset-mems"):
        RunOptions(cpuset_mems="1").limits(sys_cpu=cpu, sys_node=node)
