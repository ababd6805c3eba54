"""Spread training over the devices of whichever Keras backend is active.

TensorFlow: `MirroredStrategy` across every visible GPU (or across
`cpu_replicas` logical CPU devices), `MultiWorkerMirroredStrategy` when
TF_CONFIG names several workers. JAX: `keras.distribution.DataParallel`
across every device. One device: no strategy.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

import keras


@dataclass
class Placement:
    """How training is spread: `scope()` wraps model building; `replicas` divides the global batch."""

    backend: str
    replicas: int
    description: str
    strategy: object = None

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def _tf_workers() -> int:
    try:
        return len(json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("worker", []))
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}).") from error


def _tensorflow_placement(cpu_replicas: int) -> Placement:
    import tensorflow as tf

    if _tf_workers() > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return Placement("tensorflow", strategy.num_replicas_in_sync,
                         f"MultiWorkerMirroredStrategy, {_tf_workers()} workers", strategy)
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        return Placement("tensorflow", strategy.num_replicas_in_sync, f"MirroredStrategy over {len(gpus)} GPUs",
                         strategy)
    if cpu_replicas > 1 and not gpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        return Placement("tensorflow", strategy.num_replicas_in_sync,
                         f"MirroredStrategy over {len(devices)} logical CPU devices", strategy)
    return Placement("tensorflow", 1, "one device (GPU)" if gpus else "one device (CPU)")


def _jax_placement() -> Placement:
    devices = keras.distribution.list_devices()
    if len(devices) > 1:
        distribution = keras.distribution.DataParallel(devices=devices)
        keras.distribution.set_distribution(distribution)
        return Placement("jax", len(devices), f"DataParallel over {len(devices)} {devices[0].split(':')[0]} devices")
    return Placement("jax", 1, f"one device ({devices[0] if devices else 'cpu'})")


def place(cpu_replicas: int = 1) -> Placement:
    """Choose the distribution for the active backend (call before building the model)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_placement(cpu_replicas)
    if backend == "jax":
        return _jax_placement()
    return Placement(backend, 1, f"one device ({backend} backend: no distribution)")


def check_batch_size(batch_size: int, replicas: int) -> None:
    """The global batch must split evenly over the replicas."""
    if batch_size % replicas:
        raise ValueError(
            f"The batch size {batch_size} does not divide evenly over {replicas} replicas. "
            f"Use a multiple of {replicas}, e.g. --batch-size {batch_size - batch_size % replicas or replicas}."
        )
