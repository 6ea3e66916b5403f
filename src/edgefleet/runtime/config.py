"""Per-model configuration: ``<repo>/<model>/config.toml`` (or ``config.json``), all keys optional.

Example::

    version_policy = "latest"        # "latest" (newest version only), "all", or [1, 3]
    instances = 1                    # concurrent runs of this model (CPU: 1 is latency-best)

    [runtime]
    providers = ["cpu"]              # or "auto"; aliases: cuda, tensorrt, openvino, xnnpack, acl
    pick_fastest = false
    intra_op_threads = 2             # default: the CPU budget of the process
    allow_spinning = true            # default: on, off when a cgroup CPU quota bounds the process
    optimization_level = "all"       # disable | basic | extended | all
    backend = "auto"                 # onnxruntime | openvino | litert | auto (by file type)
    delegates = ["edgetpu"]          # LiteRT external delegates by name or library path
    allow_cpu_fallback = false       # run on the CPU when a delegate cannot be loaded

    [dynamic_batching]
    enabled = true                   # default: on for GPU providers, off on CPU (latency first)
    max_batch_size = 8
    max_queue_delay_ms = 2.0
    preferred_batch_sizes = [4, 8]
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefleet.runtime.errors import ModelConfigError
from edgefleet.runtime.session import OptLevel

__all__ = ["BatchingConfig", "ModelConfig", "RuntimeConfig", "read_model_config"]

CONFIG_NAMES = ("config.toml", "config.json")


class RuntimeConfig(BaseModel):
    """Session settings for this model; unset fields come from the server's command line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: list[str] | str | None = None
    pick_fastest: bool | None = None
    intra_op_threads: int | None = Field(default=None, ge=1, le=1024)
    inter_op_threads: int | None = Field(default=None, ge=1, le=1024)
    allow_spinning: bool | None = None
    optimization_level: OptLevel | None = None
    backend: Literal["auto", "onnxruntime", "openvino", "litert"] | None = None
    delegates: list[str] | None = None
    allow_cpu_fallback: bool | None = None


class BatchingConfig(BaseModel):
    """Dynamic batching: requests that arrive within ``max_queue_delay_ms`` run as one batch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    """``None``: on when the session's first provider is an accelerator, off on CPU."""
    max_batch_size: int = Field(default=8, ge=1, le=4096)
    max_queue_delay_ms: float = Field(default=2.0, ge=0.0, le=10_000.0)
    preferred_batch_sizes: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _preferred_fit(self) -> BatchingConfig:
        for size in self.preferred_batch_sizes:
            if not 1 <= size <= self.max_batch_size:
                raise ValueError(f"preferred batch size {size} must be between 1 and max_batch_size")
        return self


class ModelConfig(BaseModel):
    """Everything optional: a model directory without a config file serves with the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version_policy: Literal["latest", "all"] | list[int] = "latest"
    instances: int = Field(default=1, ge=1, le=64)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    dynamic_batching: BatchingConfig = Field(default_factory=BatchingConfig)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_model_config(model_dir: Path, defaults: ModelConfig | None = None) -> ModelConfig:
    """Read the first config file in ``model_dir`` over ``defaults`` (the server's command line).

    Raises :class:`ModelConfigError` naming the file and key that do not validate.
    """
    base = defaults.model_dump(exclude_unset=True) if defaults is not None else {}
    for name in CONFIG_NAMES:
        path = model_dir / name
        if not path.is_file():
            continue
        try:
            raw = tomllib.loads(path.read_text()) if name.endswith(".toml") else json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelConfigError(f"cannot parse {path}: {exc}", path=str(path)) from exc
        try:
            return ModelConfig.model_validate(_merge(base, raw) if isinstance(raw, dict) else raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise ModelConfigError(f"{path}: {key}: {first['msg']}", path=str(path), field=key) from exc
    return defaults or ModelConfig()
