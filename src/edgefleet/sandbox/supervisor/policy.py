"""Restart policies, exponential backoff and crash-loop detection."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from edgefleet.errors import InvalidInputError
from edgefleet.sandbox.report import RunReport

__all__ = ["RestartPolicy", "RestartTracker"]

PolicyName = Literal["always", "on-failure", "never"]


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart, how long to wait, and when to give up.

    ``delay = min(initial_s * factor ** (n - 1), max_s)`` for the n-th consecutive failure; a run
    that lasted ``reset_after_s`` resets n. More than ``crash_loop_restarts`` restarts within
    ``crash_loop_window_s`` is a crash loop: the workload is left stopped and reported.
    """

    policy: PolicyName = "on-failure"
    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0
    reset_after_s: float = 60.0
    crash_loop_restarts: int = 5
    crash_loop_window_s: float = 300.0

    def __post_init__(self) -> None:
        if self.policy not in {"always", "on-failure", "never"}:
            raise InvalidInputError(
                f"restart: {self.policy!r}; allowed always, on-failure, never", field="restart"
            )
        if (
            self.initial_s < 0
            or self.factor < 1
            or self.max_s < self.initial_s
            or self.crash_loop_restarts < 1
        ):
            raise InvalidInputError(
                "restart backoff: need initial >= 0, factor >= 1, max >= initial, crash-loop restarts >= 1",
                field="restart",
            )

    def wants_restart(self, report: RunReport) -> bool:
        """Whether the policy restarts after ``report`` (a stop asked for is never restarted)."""
        if self.policy == "never":
            return False
        if self.policy == "always":
            return True
        return not (report.reason == "exited" and report.exit_code == 0)


@dataclass
class RestartTracker:
    """Counts consecutive failures and recent restarts of one workload."""

    policy: RestartPolicy
    consecutive: int = 0
    restarts: deque[float] = field(default_factory=deque)

    def next_delay(self, now: float, ran_for: float) -> float | None:
        """Seconds to wait before the next start, or ``None`` for a crash loop."""
        if ran_for >= self.policy.reset_after_s:
            self.consecutive = 0
        self.consecutive += 1
        while self.restarts and now - self.restarts[0] > self.policy.crash_loop_window_s:
            self.restarts.popleft()
        if len(self.restarts) >= self.policy.crash_loop_restarts:
            return None
        self.restarts.append(now)
        p = self.policy
        return float(min(p.initial_s * p.factor ** (self.consecutive - 1), p.max_s))
