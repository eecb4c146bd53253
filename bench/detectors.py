"""Figure 8: the per-layer detectors' cost per step, fed by the step's own pass or by a second one."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bench.common import Figure, actor_env
from bench.loops import hot, pair_process, spec

ONLY = ("8",)


def keras_step(steps: int, mode: str) -> Callable[[], float]:
    """Seconds per step of the AUTOTRAINER circle program through the Keras adapter, with every
    published detector evaluated every step (18 checks), mode:
    "one_pass": the adapter's per-layer observations from the step's own forward and backward pass;
    "two_pass": the same observations from a second forward and backward pass after the step (what a
    callback-style detector does: a probe model and another tape);
    "none": no detectors, no per-layer observations (a finite-loss check only)."""
    import tensorflow as tf

    from harness import checks
    from harness.engine.context import RunContext, _flat, _group_stats
    from harness.engine.loop import compile_loop
    from harness.engine.runtime import seed_everything
    from harness.examples.autotrainer_circles import Circles
    from harness.scenarios.keras_adapter import _activation_stats, _metrics

    class TwoPass(Circles):
        def train_step(self, batch: Any, step: Any) -> Any:
            x, y = batch
            model, variables = self.keras_model, self.keras_model.trainable_variables
            obs = dict(self.ctx.minimize(lambda: model.compute_loss(x=x, y=y, y_pred=model(x, training=True)),
                                         variables))
            with tf.GradientTape() as tape:  # the second pass
                outs = self.probe(x, training=True)
                again = model.compute_loss(x=x, y=y, y_pred=outs[-1], training=True)
            grads = tape.gradient(again, variables)
            flat, now = _flat(grads), _flat(variables)
            obs.update(_group_stats(flat, now, now, grads, variables, self.groups))
            obs.update(_activation_stats(outs, self._relu, self._sat))
            obs.update(_metrics(model, x, y, outs[-1]))
            return obs

    seed_everything(0)
    run_spec = spec(scenario="circles", target="harness.examples.autotrainer_circles.Circles", params={},
                    data_size=800, batch_size=128, steps=steps, clip_value=None)
    scenario = (TwoPass if mode == "two_pass" else Circles)(check_every=1)
    if mode == "none":
        scenario.activations, scenario.layer_stats = False, False
    data = scenario.build(RunContext(run_spec))
    chosen = [c for c in scenario.checks() if c.when == "step"] if mode != "none" else [checks.finite("f", "loss")]
    loop = compile_loop(scenario, data, chosen, batch_size=128)
    hot(loop, data, steps)

    def run() -> float:
        return loop.run(data, steps=steps, seed=0).train_s / steps
    return run


PAIRS: dict[str, Callable[[int], list[Callable[[], float]]]] = {
    "detectors": lambda steps: [keras_step(steps, "one_pass"), keras_step(steps, "two_pass"),
                                keras_step(steps, "none")],
}


def measure(opts: argparse.Namespace, want: set[str]) -> list[Figure]:
    """One pass (the adapter) against a second pass (a probe model and another tape after the step),
    both against no detectors, all three interleaved in each process."""
    processes, steps = opts.processes, min(opts.sample_steps, 2000)
    env: dict[str, str | None] = dict(actor_env())
    runs = [pair_process("detectors", opts.repeats, steps, env) for _ in range(processes)]
    runs.sort(key=lambda r: (r[0] - r[2]) / (r[1] - r[2]))
    one, two, none = runs[(len(runs) - 1) // 2]
    share = (one - none) / (two - none)  # the one-pass extra cost as a share of the two-pass extra cost
    spread = [f"{(r[0] - r[2]) / (r[1] - r[2]):.2f}" for r in runs]
    return [Figure("8", "detectors' extra cost per step: one pass / a second pass", share, "ratio", "< 1",
                   share < 1, f"no detectors {none * 1e6:.0f} us/step; 18 detectors from the step's own pass "
                   f"{one * 1e6:.0f} us/step, from a second forward and backward pass {two * 1e6:.0f} us/step; "
                   f"median of {processes} processes (ratios {', '.join(spread)})")]
