"""train.pipeline: seeded training batches and (padded) evaluation batches (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from core.preprocess import caffe_normalise
from train.pipeline import EvalBatches, TrainBatches


def crops_and_labels(n=13, size=32):
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 250, (n, size, size), dtype=np.uint8)  # room for add_one
    crops[:, 0, 0] = np.arange(n)  # each crop identifies itself
    return crops, (np.arange(n) % 2).astype(np.int8)


def add_one(image, rng):
    return np.clip(image.astype(int) + int(rng.integers(1, 5)), 0, 255).astype(np.uint8)


def test_train_batches_are_seeded_and_drop_the_partial_batch():
    crops, labels = crops_and_labels()
    batches = TrainBatches(crops, labels, 4, add_one, seed=3)
    assert len(batches) == 3  # 13 scans: 3 full batches, the last scan of the epoch's order dropped
    x, y = batches[0]
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.float32 and y.shape == (4, 1) and y.dtype == np.float32
    again = TrainBatches(crops, labels, 4, add_one, seed=3)
    np.testing.assert_array_equal(again[1][0], batches[1][0])  # same seed and epoch: same batch
    seen = np.concatenate([batches.order[i * 4 : (i + 1) * 4] for i in range(3)])
    assert len(set(seen.tolist())) == 12
    np.testing.assert_array_equal(y[:, 0], labels[batches.order[:4]])
    raw = caffe_normalise(crops[batches.order[:4]])
    assert np.all(x != raw)  # augmented (every pixel shifted by 1-4 grey levels)
    first_order = batches.order.copy()
    batches.on_epoch_end()
    assert batches.epoch == 1 and not np.array_equal(batches.order, first_order)
    with pytest.raises(ValueError, match="Lower --batch-size"):
        TrainBatches(crops, labels, 14, None)


def test_eval_batches_cover_every_scan_once_in_order():
    crops, labels = crops_and_labels()
    batches = EvalBatches(crops, labels, batch_size=4)
    assert len(batches) == 4
    parts = [batches[i] for i in range(4)]
    assert [len(p) for p in parts] == [2] * 4  # (x, y): no weights with one replica
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), caffe_normalise(crops))
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts])[:, 0], labels)
    (x_only,) = EvalBatches(crops, batch_size=8)[1]
    assert x_only.shape == (5, 32, 32, 3)


def test_eval_batches_pad_an_uneven_last_batch_with_zero_weights():
    crops, labels = crops_and_labels(13)
    batches = EvalBatches(crops, labels, batch_size=4, multiple_of=2)
    parts = [batches[i] for i in range(len(batches))]
    assert [len(p[0]) for p in parts] == [4, 4, 4, 2]  # 13 = 4 + 4 + 4 + 1, the last padded to 2
    weights = np.concatenate([p[2] for p in parts])
    np.testing.assert_array_equal(weights, [1] * 13 + [0])
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])[:, 0]
    np.testing.assert_array_equal(x[weights == 1], caffe_normalise(crops))  # every real scan once, in order
    np.testing.assert_array_equal(y[weights == 1], labels)
    three = EvalBatches(crops, labels, batch_size=6, multiple_of=3)
    assert [len(three[i][0]) for i in range(len(three))] == [6, 6, 3]
    (x_last,) = EvalBatches(crops, batch_size=4, multiple_of=2)[3]
    assert x_last.shape[0] == 2
