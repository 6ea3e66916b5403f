"""What an operator says about a rollout: waves, bake time, health gates, what to do on failure.

A strategy is validated once, when the deployment is created or updated; the engine then trusts it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CustomGate", "Gates", "Strategy", "Wave"]


class Wave(BaseModel):
    """One wave: a percentage of the devices in the rollout, or a fixed count (exactly one of them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percent: float | None = Field(default=None, gt=0, le=100, description="Share of the fleet, 0-100.")
    count: int | None = Field(default=None, ge=1, le=10_000_000, description="Number of devices.")

    @model_validator(mode="after")
    def _one_of(self) -> Wave:
        if (self.percent is None) == (self.count is None):
            raise ValueError("a wave has exactly one of 'percent' or 'count'")
        return self


class CustomGate(BaseModel):
    """A threshold on a metric the device reports in ``health.metrics``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
    max: float | None = Field(default=None, description="The device fails the gate above this value.")
    min: float | None = Field(default=None, description="The device fails the gate below this value.")

    @model_validator(mode="after")
    def _bound(self) -> CustomGate:
        if self.max is None and self.min is None:
            raise ValueError("a custom gate needs 'max' or 'min'")
        return self


class Gates(BaseModel):
    """What a device on the new release must report to count as healthy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_ready_ratio: float = Field(
        default=1.0, ge=0, le=1, description="Share of a wave's devices that must report ready."
    )
    max_failure_ratio: float = Field(
        default=0.0, ge=0, le=1, description="Share of updated devices allowed to fail a gate."
    )
    max_crash_loops: int = Field(default=0, ge=0, description="Restarts of the workload allowed.")
    max_error_rate: float | None = Field(default=None, ge=0, le=1, description="Inference error ratio.")
    max_p95_latency_ms: float | None = Field(default=None, gt=0, description="p95 inference latency.")
    custom: tuple[CustomGate, ...] = Field(default=(), max_length=32)


class Strategy(BaseModel):
    """How a new release reaches the devices of a deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    waves: tuple[Wave, ...] = Field(
        default=(Wave(percent=10), Wave(percent=50), Wave(percent=100)),
        min_length=1,
        max_length=100,
        description="Cumulative targets: each wave brings the rollout up to this share or count.",
    )
    bake_seconds: float = Field(default=60, ge=0, le=7 * 86400, description="Healthy time before next wave.")
    progress_deadline_seconds: float = Field(
        default=900, gt=0, le=7 * 86400, description="A wave not ready by then fails its gate."
    )
    gates: Gates = Field(default_factory=Gates)
    auto_advance: bool = Field(default=True, description="Start the next wave without an approval.")
    on_failure: Literal["rollback", "pause"] = Field(
        default="rollback", description="'rollback' aborts and restores the previous release; 'pause' waits."
    )

    def plan(self, total: int) -> list[int]:
        """Cumulative device counts per wave for ``total`` devices; the last wave always takes them all."""
        out: list[int] = []
        prev = 0
        for i, wave in enumerate(self.waves):
            if i == len(self.waves) - 1:
                target = total
            elif wave.percent is not None:
                target = -(-int(total * wave.percent * 100) // 10_000)  # ceil without float drift
            else:
                target = wave.count or 0
            target = max(prev, min(total, target))
            out.append(target)
            prev = target
        return out
