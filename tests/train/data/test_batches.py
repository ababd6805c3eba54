"""train.data.batches: seeded training batches and (padded) evaluation batches (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from core.imaging.preprocess import caffe_normalise
from train.data.batches import EvalBatches, TrainBatches


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


def test_balanced_order_draws_every_batch_equally_from_the_cells():
    from train.data.batches import balanced_order

    cells = np.array(["a"] * 40 + ["b"] * 5 + ["c"] * 3)  # very unequal cells
    order = balanced_order(cells, batch_size=6, steps=7, rng=np.random.default_rng(0))
    assert order.shape == (42,)
    for step in range(7):
        batch = cells[order[step * 6 : (step + 1) * 6]]
        assert sorted(batch.tolist()) == ["a", "a", "b", "b", "c", "c"]
    small = order[np.isin(order, np.flatnonzero(cells == "c"))]
    assert sorted(set(small.tolist())) == [45, 46, 47]  # the small cell is repeated ...
    assert np.all(np.bincount(small, minlength=48)[45:] >= 4)  # ... evenly (14 draws of 3 scans)
    again = balanced_order(cells, batch_size=6, steps=7, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(order, again)
    uneven = balanced_order(cells, batch_size=7, steps=3, rng=np.random.default_rng(1))
    for step in range(3):  # 7 = 2 + 2 + 2 and one extra slot for a random cell
        counts = sorted(np.unique(cells[uneven[step * 7 : (step + 1) * 7]], return_counts=True)[1].tolist())
        assert counts == [2, 2, 3]


def test_train_batches_with_cells_are_balanced_and_seeded():
    crops, labels = crops_and_labels(n=20)
    cells = np.array(["big"] * 16 + ["small"] * 4)

    def noisy(image, rng):  # a different draw changes (almost) every pixel
        return np.clip(image.astype(int) + rng.integers(0, 5, image.shape), 0, 255).astype(np.uint8)

    batches = TrainBatches(crops, labels, 4, noisy, seed=1, cells=cells)
    assert len(batches) == 5  # n // batch, as without balancing
    for index in range(len(batches)):
        chosen = batches.order[index * 4 : (index + 1) * 4]
        assert sorted(cells[chosen].tolist()) == ["big", "big", "small", "small"]
    again = TrainBatches(crops, labels, 4, noisy, seed=1, cells=cells)
    np.testing.assert_array_equal(again[2][0], batches[2][0])
    # a scan drawn twice in one epoch gets two different augmentations
    order = batches.order
    repeated = next(s for s in order if np.sum(order == s) > 1)
    first, second = np.flatnonzero(order == repeated)[:2]
    x_first = batches[first // 4][0][first % 4]
    x_second = batches[second // 4][0][second % 4]
    assert not np.array_equal(x_first, x_second)
    with pytest.raises(ValueError, match="one id per crop"):
        TrainBatches(crops, labels, 4, add_one, cells=cells[:5])
