"""What ComfyUI's socket says about one running job: node, step, percent and ETA, in memory only."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LiveJob:
    """What the socket says about one running job; kept in memory, never written per step."""

    job_id: str
    owner_id: int | None
    prompt: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    cached: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    node: str | None = None
    step: int = 0
    total: int = 0
    step_started: float = 0.0

    def view(self) -> dict[str, Any]:
        runnable = max(len(self.prompt) - len(self.cached), 1)
        node_share = (self.step / self.total) if self.total else 0.0
        percent = min(99.0, 100.0 * (len(self.done) + node_share) / runnable)
        node = self.prompt.get(self.node or "", {})
        eta = None
        if self.total and self.step:
            per_step = (time.monotonic() - self.step_started) / self.step
            eta = round(per_step * (self.total - self.step), 1)
        return {
            "node": self.node,
            "node_title": (node.get("_meta") or {}).get("title") or node.get("class_type"),
            "node_type": node.get("class_type"),
            "step": self.step,
            "total": self.total,
            "percent": round(percent, 1),
            "eta_s": eta,
            "elapsed_s": round(time.monotonic() - self.started, 1),
        }


def step_count(value: Any) -> int:
    """A step count from a progress message: a whole number, whatever ComfyUI (or a node) sent."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(0, min(int(value), 2**31))
