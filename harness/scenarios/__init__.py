"""Built-in scenarios (one module each) and the protocol user scenarios implement.

The built-ins are registered by name in conf/config.yaml (``scenario@scenarios.NAME: NAME``),
each with its parameters in conf/scenario/NAME.yaml.
"""

from harness.scenarios.base import Scenario, ScenarioError, load_class

__all__ = ["Scenario", "ScenarioError", "load_class"]
