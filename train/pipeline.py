"""Batches for Keras: augmented training batches and plain evaluation batches.

Both are `keras.utils.PyDataset`s over cached uint8 crops, so they run under
every Keras backend. Augmentation is seeded per (seed, epoch, sample), so a
run is reproducible whatever the number of worker threads.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from core.preprocess import caffe_normalise
from train.data import DataError


class TrainBatches(keras.utils.PyDataset):
    """Shuffled, augmented batches: x float32 (batch, size, size, 3) caffe-normalised, y float32 (batch, 1).

    crops: uint8 (n, size, size); labels: (n,) 0/1. The last partial batch is
    dropped so every batch splits evenly across replicas.
    """

    def __init__(self, crops, labels, batch_size, augment, seed=0, epoch=0, workers=1):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max(4, 2 * workers))
        if len(crops) < batch_size:
            raise DataError(
                f"The batch size ({batch_size}) is larger than the training set ({len(crops)} scans). "
                "Lower --batch-size."
            )
        self.crops, self.labels = crops, np.asarray(labels, dtype=np.float32)
        self.batch_size, self.augment, self.seed = batch_size, augment, seed
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Fix the sample order and augmentation seeds of `epoch`."""
        self.epoch = epoch
        self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.crops))

    def __len__(self) -> int:
        return len(self.crops) // self.batch_size

    def __getitem__(self, index):
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = np.empty((len(chosen),) + self.crops.shape[1:], dtype=np.uint8)
        for slot, sample in enumerate(chosen):
            rng = np.random.default_rng([self.seed, self.epoch, int(sample)])
            images[slot] = self.augment(self.crops[sample], rng) if self.augment else self.crops[sample]
        return caffe_normalise(images), self.labels[chosen, None]

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)


class EvalBatches(keras.utils.PyDataset):
    """Unaugmented batches in order (x only, or (x, y) when labels are given).

    multiple_of > 1 (the replica count): a last batch that does not split evenly
    over the replicas is padded with copies of its last scan, and (x, y, weight)
    is returned with weight 0 on the copies, so losses and metrics are unchanged
    (JAX's DataParallel cannot shard an uneven batch).
    """

    def __init__(self, crops, labels=None, batch_size=64, multiple_of=1):
        super().__init__()
        self.crops, self.labels, self.batch_size, self.multiple_of = crops, labels, batch_size, multiple_of

    def __len__(self) -> int:
        return math.ceil(len(self.crops) / self.batch_size)

    def __getitem__(self, index):
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        crops = self.crops[window]
        pad = -len(crops) % self.multiple_of
        if pad:
            crops = np.concatenate([crops, np.repeat(crops[-1:], pad, axis=0)])
        x = caffe_normalise(crops)
        if self.labels is None:
            return (x,)
        y = np.asarray(self.labels[window], dtype=np.float32)[:, None]
        if self.multiple_of == 1:
            return x, y
        weight = np.ones(len(y) + pad, dtype=np.float32)
        weight[len(y):] = 0
        return x, np.concatenate([y, np.repeat(y[-1:], pad, axis=0)]), weight
