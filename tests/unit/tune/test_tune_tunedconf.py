"""Export to and import from tuned profile directories (tuned.conf, INI)."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from edgefleet.errors import ConflictError
from edgefleet.tuning import ProfileStore
from edgefleet.tuning.errors import TuneProfileError
from edgefleet.tuning.tunedconf import export_tuned, import_tuned

# tuned 2.20's latency-performance/tuned.conf as Debian 12 ships it
LATENCY_PERFORMANCE = """\
#
# tuned configuration
#

[main]
summary=Optimize for deterministic performance at the cost of increased power consumption

[cpu]
force_latency=cstate.id_no_zero:1|3
governor=performance
energy_perf_bias=performance
min_perf_pct=100

[sysctl]
# If a workload mostly uses anonymous memory and it hits this limit, the entire
# working set is buffered for I/O, and any more write buffering would require
# swapping, so it's time to throttle writes until I/O can catch up.  Workloads
# that mostly use file mappings may be able to use even higher values.
#
# The generator of dirty data starts writeback at this percentage (system default
# is 20%)
vm.dirty_ratio=10

# Start background writeback (via writeback threads) at this percentage (system
# default is 10%)
vm.dirty_background_ratio=3

# The swappiness parameter controls the tendency of the kernel to move
# processes out of physical memory and onto the swap disk.
# 0 tells the kernel to avoid swapping processes out of physical memory
# for as long as possible
# 100 tells the kernel to aggressively swap processes out of physical memory
# and move them to swap cache
vm.swappiness=10
"""


def _write(d: Path, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "tuned.conf").write_text(text)
    return d


@pytest.mark.unit
def test_export_writes_a_tuned_profile(tmp_path: Path) -> None:
    """edge-latency exports as INI with tuned's plugin sections, comments and a bootloader cmdline."""
    path = export_tuned(ProfileStore().load("edge-latency"), tmp_path / "edgefleet-latency")
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str  # type: ignore[assignment,method-assign]
    ini.read(path)
    assert ini["main"]["summary"].startswith("Steady, low inference latency")
    assert ini["sysctl"]["vm.swappiness"] == "10"
    assert ini["cpu"]["governor"] == "performance"
    assert ini["cpu"]["force_latency"] == "cstate.id_no_zero:1|3"
    assert ini["vm"]["transparent_hugepages"] == "never"
    assert ini["sysfs"]["/sys/kernel/mm/transparent_hugepage/defrag"] == "never"
    assert ini["bootloader"]["cmdline_edgefleet_isolcpus"] == "isolcpus=managed_irq,domain,1-3"
    assert "# Keep model weights" in path.read_text()
    with pytest.raises(ConflictError, match="exists"):
        export_tuned(ProfileStore().load("edge-latency"), tmp_path / "edgefleet-latency")


@pytest.mark.unit
@pytest.mark.parametrize("name", ["edge-latency", "edge-throughput", "edge-powersave", "balanced"])
def test_export_then_import_round_trips(tmp_path: Path, name: str) -> None:
    """Every built-in survives export → import with the same knobs, values and comments."""
    original = ProfileStore().load(name)
    export_tuned(original, tmp_path / "exported")
    dest = tmp_path / "profiles"
    path = import_tuned(tmp_path / "exported", dest, "again")
    assert path == dest / "again.toml"
    back = ProfileStore([dest]).load("again")
    assert {(s.label, s.value, s.comment) for s in back.settings} == {
        (s.label, s.value, s.comment) for s in original.settings
    }
    assert back.description == original.description


@pytest.mark.unit
def test_import_stock_latency_performance(tmp_path: Path) -> None:
    """tuned's own profile maps onto edgefleet knobs, its comments kept."""
    src = _write(tmp_path / "latency-performance", LATENCY_PERFORMANCE)
    path = import_tuned(src, tmp_path / "profiles")
    profile = ProfileStore([tmp_path / "profiles"]).load(path.stem)
    values = {s.label: s for s in profile.settings}
    assert values["pm_qos:force_latency"].value == "cstate.id_no_zero:1|3"
    assert values["cpu:min_perf_pct"].value == "100"
    assert values["sysctl:vm.swappiness"].value == "10"
    assert values["sysctl:vm.swappiness"].comment.startswith("The swappiness parameter")
    assert profile.description.startswith("Optimize for deterministic performance")


@pytest.mark.unit
def test_import_maps_variables_vm_percentages_disk_and_includes(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "site",
        "[main]\ninclude=throughput-performance\n[variables]\ncores=2-3\n"
        "[vm]\ndirty_bytes=40%\n[disk]\nreadahead=>8192s\n[irqbalance]\nbanned_cpus=${cores}\n"
        "[my_cpu]\ntype=cpu\nno_turbo=1\n",
    )
    text = import_tuned(src, tmp_path / "p").read_text()
    assert 'include = ["edge-throughput"]' in text
    assert '"vm.dirty_ratio" = { value = "40"' in text
    assert '"/sys/block/*/queue/read_ahead_kb" = { value = ">4096"' in text
    assert '"avoid_cpus" = { value = "2-3"' in text
    assert '"boost" = { value = "0"' in text


@pytest.mark.unit
def test_import_names_every_line_it_cannot_map_and_writes_nothing(tmp_path: Path) -> None:
    """Unsupported plugins, options, functions and paths are listed line by line; no file is written."""
    src = _write(
        tmp_path / "odd",
        "[main]\nsummary=odd\n\n[audio]\ntimeout=10\n\n[cpu]\ngovernor=performance\nmax_perf_pct=90\n"
        "[sysfs]\n/etc/passwd=x\n[sysctl]\nkernel.sched_rt_runtime_us=${f:calc:1}\n[disk]\ndevices=sda\n",
    )
    dest = tmp_path / "profiles"
    with pytest.raises(TuneProfileError) as info:
        import_tuned(src, dest)
    message = info.value.message
    assert "cannot import 5 line(s)" in message
    for needle in (
        "tuned.conf:5: section 'audio', timeout=10: no edgefleet knob for tuned plugin 'audio'",
        "tuned.conf:9: section 'cpu', max_perf_pct=90: no edgefleet knob for cpu option 'max_perf_pct'",
        "tuned.conf:11: section 'sysfs', /etc/passwd=x: sysfs path '/etc/passwd'",
        "tuned.conf:13: section 'sysctl', kernel.sched_rt_runtime_us=${f:calc:1}: tuned functions",
        "tuned.conf:15: section 'disk', devices=sda: plugin instance option 'devices'",
    ):
        assert needle in message
    assert len(info.value.fields["unmapped"]) == 5
    assert not dest.exists()
