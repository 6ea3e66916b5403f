"""Execution-provider choice: explicit lists, auto ranking, and the cached fastest pick."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.runtime.errors import ProviderError
from edgefleet.runtime.providers import (
    CPU,
    ProviderCache,
    candidates,
    hardware_fingerprint,
    pick_fastest,
    resolve_providers,
)

AVAILABLE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "AzureExecutionProvider", CPU)


@pytest.mark.unit
def test_auto_ranks_accelerators_first_and_skips_non_compute() -> None:
    """auto puts TensorRT before CUDA before CPU and leaves Azure out."""
    choice = resolve_providers("auto", AVAILABLE)
    assert choice.providers == ("TensorrtExecutionProvider", "CUDAExecutionProvider", CPU)
    assert choice.reason.startswith("auto")
    assert resolve_providers(None, (CPU,)).providers == (CPU,)


@pytest.mark.unit
def test_explicit_aliases_keep_order_and_add_cpu_fallback() -> None:
    """Aliases resolve, order is kept, CPU is appended once."""
    assert resolve_providers(["cuda", "trt"], AVAILABLE).providers == (
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
        CPU,
    )
    assert resolve_providers("cpu,cpu", AVAILABLE).providers == (CPU,)


@pytest.mark.unit
def test_unavailable_provider_names_what_is_available() -> None:
    """Asking for OpenVINO on a build without it is a clear error listing the available ones."""
    with pytest.raises(ProviderError) as err:
        resolve_providers(["openvino"], (CPU,))
    assert err.value.code == "runtime.provider_unavailable"
    assert err.value.fields["available"] == [CPU]
    assert "openvino" in err.value.message


@pytest.mark.unit
def test_pick_fastest_measures_once_then_uses_the_cache(tmp_path: Path) -> None:
    """The fastest candidate wins, is cached per key, and a second pick does not measure."""
    options = candidates(AVAILABLE)
    assert options[-1] == (CPU,)
    timings = {options[0]: 0.004, options[1]: 0.002, options[2]: 0.010}
    calls: list[tuple[str, ...]] = []

    def measure(option: tuple[str, ...]) -> float:
        calls.append(option)
        return timings[option]

    cache = ProviderCache(tmp_path / "providers.json")
    key = ProviderCache.key("sha", "hw", "1.0")
    first = pick_fastest(options, measure, cache=cache, cache_key=key)
    assert first.providers == ("CUDAExecutionProvider", CPU)
    assert len(calls) == 3
    second = pick_fastest(options, measure, cache=cache, cache_key=key)
    assert second.providers == first.providers
    assert "cached" in second.reason
    assert len(calls) == 3
    other = pick_fastest(options, measure, cache=cache, cache_key=ProviderCache.key("sha", "hw", "2.0"))
    assert other.providers == first.providers
    assert len(calls) == 6


@pytest.mark.unit
def test_pick_fastest_skips_a_candidate_that_fails() -> None:
    """A provider that cannot run the model is never chosen."""

    def measure(option: tuple[str, ...]) -> float:
        if option[0] != CPU:
            raise RuntimeError("no device")
        return 0.01

    assert pick_fastest(candidates(AVAILABLE), measure).providers == (CPU,)


@pytest.mark.unit
def test_hardware_fingerprint_follows_cpuinfo(tmp_path: Path) -> None:
    """The fingerprint changes with the CPU model and is stable otherwise."""
    (tmp_path / "cpuinfo").write_text("model name\t: Board A\nflags\t: fp asimd\n")
    a = hardware_fingerprint(tmp_path, available=(CPU,))
    assert a == hardware_fingerprint(tmp_path, available=(CPU,))
    (tmp_path / "cpuinfo").write_text("model name\t: Board B\nflags\t: fp asimd\n")
    assert hardware_fingerprint(tmp_path, available=(CPU,)) != a


@pytest.mark.unit
def test_compiling_providers_keep_their_caches(tmp_path: Path) -> None:
    """TensorRT engines and OpenVINO blobs are cached under the cache dir; CPU gets no options."""
    from edgefleet.runtime.providers import provider_options

    pairs = dict(provider_options(["TensorrtExecutionProvider", "OpenVINOExecutionProvider", CPU], tmp_path))
    assert pairs["TensorrtExecutionProvider"]["trt_engine_cache_enable"] == "True"
    assert pairs["TensorrtExecutionProvider"]["trt_engine_cache_path"] == str(tmp_path / "tensorrt")
    assert pairs["OpenVINOExecutionProvider"] == {"cache_dir": str(tmp_path / "openvino")}
    assert pairs[CPU] == {}
    assert provider_options(["TensorrtExecutionProvider"], None) == [("TensorrtExecutionProvider", {})]
