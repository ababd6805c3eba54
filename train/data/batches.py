"""Batches for Keras: augmented training batches and plain evaluation batches.

Both are `keras.utils.PyDataset`s over cached uint8 crops, so they run under
every Keras backend. Augmentation is seeded per (seed, epoch, sample), so a
run is reproducible whatever the number of worker threads.

With `cells` (e.g. one id per (source, class)), :class:`TrainBatches` draws every
batch equally from the cells (`--balance source-class`): small cells are repeated,
large ones subsampled, each cell walked in a fresh seeded permutation per epoch.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from core.imaging.preprocess import caffe_normalise
from train.data.discover import DataError


def balanced_order(cells: np.ndarray, batch_size: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """int (steps * batch_size,) sample indices; each batch holds batch_size // k scans of each of the k cells.

    cells: (n,) hashable cell id per sample. The batch_size % k remaining slots of each batch go to cells
    drawn at random. Each cell is walked in random order, restarting (reshuffled) when it runs out.
    """
    names = sorted(set(np.asarray(cells).tolist()))
    members = [np.flatnonzero(np.asarray(cells) == name) for name in names]
    per_cell = np.full((steps, len(names)), batch_size // len(names))
    for step in range(steps):  # the remainder slots, spread over random cells
        per_cell[step, rng.choice(len(names), batch_size % len(names), replace=False)] += 1
    streams = []
    for index, chosen in enumerate(members):
        need = int(per_cell[:, index].sum())
        rounds = -(-need // len(chosen))
        streams.append(np.concatenate([rng.permutation(chosen) for _ in range(rounds)])[:need])
    order, used = [], np.zeros(len(names), dtype=int)
    for step in range(steps):
        batch = []
        for index, count in enumerate(per_cell[step]):
            batch.append(streams[index][used[index] : used[index] + count])
            used[index] += count
        order.append(rng.permutation(np.concatenate(batch)))
    return np.concatenate(order) if order else np.zeros(0, dtype=int)


class TrainBatches(keras.utils.PyDataset):
    """Shuffled, augmented batches: x float32 (batch, size, size, 3) caffe-normalised, y float32 (batch, 1).

    crops: uint8 (n, size, size); labels: (n,) 0/1. The last partial batch is
    dropped so every batch splits evenly across replicas. cells: optional (n,)
    cell ids for balanced batches (see :func:`balanced_order`); an epoch then still
    has n // batch_size batches, and a scan drawn twice gets two different augmentations.
    """

    def __init__(self, crops, labels, batch_size, augment, seed=0, epoch=0, workers=1, cells=None):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max(4, 2 * workers))
        if len(crops) < batch_size:
            raise DataError(
                f"The batch size ({batch_size}) is larger than the training set ({len(crops)} scans). "
                "Lower --batch-size."
            )
        self.crops, self.labels = crops, np.asarray(labels, dtype=np.float32)
        self.batch_size, self.augment, self.seed = batch_size, augment, seed
        if cells is not None and len(cells) != len(crops):
            raise ValueError(f"cells must hold one id per crop. Received: {len(cells)} ids for {len(crops)} crops")
        self.cells = None if cells is None else np.asarray(cells)
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Fix the sample order and augmentation seeds of `epoch`."""
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch])
        if self.cells is None:
            self.order = rng.permutation(len(self.crops))
        else:
            self.order = balanced_order(self.cells, self.batch_size, len(self), rng)

    def __len__(self) -> int:
        return len(self.crops) // self.batch_size

    def __getitem__(self, index):
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = np.empty((len(chosen),) + self.crops.shape[1:], dtype=np.uint8)
        for slot, sample in enumerate(chosen):
            key = [self.seed, self.epoch, int(sample)]
            if self.cells is not None:  # a scan may come twice in an epoch: seed by its position too
                key.append(index * self.batch_size + slot)
            rng = np.random.default_rng(key)
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
