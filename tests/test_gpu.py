"""GPUs: fractional GPUs per actor (several small runs share one GPU), and, where a GPU is present, that
runs are placed on it, record it, and the fp16/bf16 kernels run there. Without a GPU the placement tests
are skipped with the reason; the actor arithmetic is tested everywhere."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import make_spec

from harness.config import RayConfig
from harness.raysession import DispatchError, num_actors


class FakeRay:
    """Only what num_actors reads: the cluster's resources."""

    def __init__(self, **resources: float) -> None:
        self.resources = resources

    def cluster_resources(self) -> dict[str, float]:
        return self.resources


@pytest.mark.parametrize("gpus_per_actor, gpus, cpus, actors", [(0.25, 1, 8, 4), (0.5, 2, 8, 4), (1, 2, 8, 2),
                                                                 (0.25, 1, 2, 2), (0, 0, 4, 4)])
def test_fractional_gpus_let_several_actors_share_one(gpus_per_actor: float, gpus: float, cpus: float,
                                                      actors: int) -> None:
    cfg = RayConfig(num_gpus_per_actor=gpus_per_actor)
    assert num_actors(FakeRay(CPU=cpus, GPU=gpus), cfg, 100)[0] == actors  # the scarcer of CPUs and GPU shares


def test_asking_for_a_gpu_where_there_is_none_is_one_clear_error() -> None:
    with pytest.raises(DispatchError, match="ray.num_gpus_per_actor=0.5"):
        num_actors(FakeRay(CPU=4), RayConfig(num_gpus_per_actor=0.5), 10)


@pytest.fixture(scope="module")
def gpu(tf_worker: None) -> Any:
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU")
    if not devices:
        pytest.skip("no GPU on this machine (tf.config.list_logical_devices('GPU') is empty)")
    return tf


@pytest.mark.parametrize("precision, dtype", [("fp16", "float16"), ("bf16", "bfloat16")])
def test_low_precision_kernels_run_on_the_gpu(gpu: Any, precision: str, dtype: str) -> None:
    tf = gpu
    with tf.device("/GPU:0"):
        a = tf.random.stateless_normal([64, 64], seed=[1, 2], dtype=tf.float32)
        c = tf.matmul(tf.cast(a, dtype), tf.cast(a, dtype))
    assert "GPU" in c.device and c.dtype.name == dtype and bool(tf.reduce_all(tf.math.is_finite(c)))


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_a_run_is_placed_on_the_gpu_and_records_it(gpu: Any, precision: str) -> None:
    from harness.engine import execute
    from harness.engine.run import worker_name
    from harness.records import Status

    result = execute(make_spec(precision=precision, steps=20))
    assert result.status is Status.OK, result.error
    assert worker_name().endswith(":gpu")  # the worker column names the device the run used
