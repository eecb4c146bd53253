"""Test-only scenario for ``replay --trace``: loss_bound with scheduled, windowed and final checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness import checks
from harness.checks import Check
from harness.scenarios.loss_bound import LossBound


class Traced(LossBound):
    reuse_trace = True  # a sweep would reuse the loop; a traced replay compiles its own

    def __init__(self, sched_bound: float = 0.5, grad_bound: float = 1.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.sched_bound = float(sched_bound)
        self.grad_bound = float(grad_bound)

    def checks(self) -> Sequence[Check]:
        out = [*super().checks(),
               checks.below("loss_sched", "post_loss", self.sched_bound, every=3, after=4),
               checks.below("grad_small", "grad_norm", self.grad_bound, inclusive=True),
               checks.near("slope_near", "kernel", self.slope, 0.5, when="final")]
        if "statistic" in Check.__dataclass_fields__:  # windowed checks, where the harness has them
            out.append(Check("loss_falls", "post_loss", 0.05, ">", every=2, statistic="max_relative_decrease",
                             window=3))
        return out

    def evaluate(self) -> Mapping[str, Any]:
        return {"kernel": self.model.trainable_variables[0]}
