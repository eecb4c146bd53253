"""Built-in scenarios (one module each) and the protocol user scenarios implement."""

from harness.scenarios.base import Scenario, ScenarioError, load_class

BUILTIN: dict[str, str] = {
    "loss_bound": "harness.scenarios.loss_bound.LossBound",
}

__all__ = ["BUILTIN", "Scenario", "ScenarioError", "load_class"]
