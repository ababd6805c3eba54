"""train.studies.finetune_loop: exact resume, balanced cells, frozen BatchNorm, averaged weights, learning (tiny
CNN)."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest

from core.model.classifier import build_model
from train.data.discover import DataError
from train.studies.finetune_loop import CellSampler, FineTuner, LoopSettings, reestimate_batchnorm

SIZE = 32


def synthetic_set(n: int = 96, seed: int = 0):
    """uint8 (n, 32, 32) noisy discs; tumour scans carry a square that is brighter (source a) or darker
    (source b) than the disc; cells 'a/0', 'a/1', 'b/0', 'b/1'."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = ((yy - 16) ** 2 + (xx - 16) ** 2 < 13 ** 2).astype(np.float32) * 120
    crops, labels, cells = [], [], []
    for i in range(n):
        label, source = i % 2, "ab"[(i // 2) % 2]
        image = disc + rng.normal(0, 8, (SIZE, SIZE))
        if label:
            y, x = rng.integers(8, 18, 2)
            image[y:y + 6, x:x + 6] = 230 if source == "a" else 20
        crops.append(np.clip(image, 0, 255).astype(np.uint8))
        labels.append(label)
        cells.append(f"{source}/{label}")
    return np.stack(crops), np.array(labels), np.array(cells)


def tiny_model():
    keras.utils.set_random_seed(0)
    return build_model(weights=None, backbone="small", input_size=SIZE)


SETTINGS = LoopSettings(trainable_from="conv4", batch_size=8, lr=1e-3, warmup_steps=3, steps=6, ema=0.9,
                        steps_per_pass=5)


def _tuner(tmp_path, settings=SETTINGS, augment=None):
    crops, labels, cells = synthetic_set()
    return FineTuner(tiny_model(), crops, labels, cells, augment, settings, tmp_path, "data-1", log=lambda _: None,
                     run_eagerly=True)


def _flip(image, rng):
    return image[:, ::-1].copy() if rng.random() < 0.5 else image.copy()


def test_a_stopped_and_resumed_run_reaches_the_same_weights(tmp_path):
    whole = _tuner(tmp_path / "whole", augment=_flip)
    assert whole.run(progress=False)

    # stop after 5 steps (inside `main`: warm-up done, optimizer and average under way), then resume
    first = _tuner(tmp_path / "split", augment=_flip)
    assert not first.run(progress=False, until_step=5)
    assert first.step == 5

    second = _tuner(tmp_path / "split", augment=_flip)
    assert second.run(resume=True, progress=False)
    assert second.step == whole.step == SETTINGS.total_steps
    for a, b in zip(whole.model.variables, second.model.variables):
        np.testing.assert_allclose(np.asarray(a.numpy()), np.asarray(b.numpy()), rtol=0, atol=1e-6, err_msg=a.path)
    for a, b in zip(whole.averaged_weights(), second.averaged_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_resume_refuses_other_settings_and_a_missing_checkpoint(tmp_path):
    with pytest.raises(DataError, match="No checkpoint"):
        _tuner(tmp_path).run(resume=True, progress=False)
    _tuner(tmp_path, dataclasses.replace(SETTINGS, steps=1)).run(progress=False)
    with pytest.raises(DataError, match="other settings"):
        _tuner(tmp_path).run(resume=True, progress=False)


def test_the_sampler_draws_every_cell_equally():
    cells = np.array(["a/0"] * 50 + ["a/1"] * 3 + ["b/0"] * 10 + ["b/1"] * 7)
    sampler = CellSampler(cells, batch_size=12, steps_per_pass=4, seed=1)
    for step in range(9):
        batch = cells[sampler.indices(step)]
        assert sorted(batch.tolist()) == sorted(["a/0", "a/1", "b/0", "b/1"] * 3)
    again = CellSampler(cells, batch_size=12, steps_per_pass=4, seed=1)
    np.testing.assert_array_equal(again.indices(6), sampler.indices(6))  # a function of the step alone


def test_the_backbones_batchnorm_stays_frozen_and_only_the_chosen_stages_train(tmp_path):
    tuner = _tuner(tmp_path)
    before = {v.path: np.array(v.numpy()) for v in tuner.model.variables}
    assert tuner.run(progress=False)
    for layer in tuner.model.layers:
        changed = [not np.array_equal(before[v.path], np.asarray(v.numpy())) for v in layer.weights]
        if layer.name.startswith(("conv1", "conv2", "conv3")) or layer.name in ("conv4_bn", "conv5_bn"):
            assert not any(changed), layer.name
        elif layer.name in ("conv4_conv", "conv5_conv", "head_dense", "head_bn", "logit"):
            assert all(changed), layer.name


def test_trained_batchnorm_follows_the_batches_in_the_trained_stages_only(tmp_path):
    tuner = _tuner(tmp_path, dataclasses.replace(SETTINGS, batchnorm="train"))
    before = {v.path: np.array(v.numpy()) for v in tuner.model.variables}
    assert tuner.run(progress=False)
    for name in ("conv4_bn", "conv5_bn"):  # scale, offset and moving statistics all move
        layer = tuner.model.get_layer(name)
        assert all(not np.array_equal(before[v.path], np.asarray(v.numpy())) for v in layer.weights), name
        assert any(v is w for v in layer.trainable_weights for w in tuner.model.trainable_variables)
    for name in ("conv2_bn", "conv3_bn"):  # stages before trainable_from stay as they were
        layer = tuner.model.get_layer(name)
        assert all(np.array_equal(before[v.path], np.asarray(v.numpy())) for v in layer.weights), name
    assert len(tuner.averaged_weights()) == len(tuner.model.trainable_variables)


def test_a_checkpoint_from_before_the_batchnorm_setting_resumes_as_frozen(tmp_path):
    first = _tuner(tmp_path)
    assert not first.run(progress=False, until_step=5)
    state_file = tmp_path / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    del state["settings"]["batchnorm"]  # as written by runs that had no such setting
    state_file.write_text(json.dumps(state))
    assert _tuner(tmp_path).run(resume=True, progress=False)
    with pytest.raises(DataError, match="other settings"):
        _tuner(tmp_path, dataclasses.replace(SETTINGS, batchnorm="train")).run(resume=True, progress=False)


def test_an_unknown_batchnorm_mode_is_refused():
    with pytest.raises(ValueError, match="batchnorm must be one of frozen, train"):
        LoopSettings(batchnorm="adapt")


def test_the_average_lags_the_raw_weights_and_equals_them_without_averaging(tmp_path):
    tuner = _tuner(tmp_path)
    tuner.run(progress=False)
    raw = [np.asarray(v.numpy()) for v in tuner.model.trainable_variables]
    averaged = tuner.averaged_weights()
    assert len(averaged) == len(raw) and any(not np.allclose(a, r) for a, r in zip(averaged, raw))
    plain = _tuner(tmp_path / "plain", dataclasses.replace(SETTINGS, ema=0.0))
    plain.run(progress=False)
    assert plain.averaged_weights() is None


def test_fine_tuning_learns_a_small_synthetic_set(tmp_path):
    from sklearn.metrics import roc_auc_score

    from train.scoring import predict_crops

    crops, labels, cells = synthetic_set(160, seed=3)
    test_crops, test_labels, _ = synthetic_set(64, seed=4)
    settings = LoopSettings(trainable_from="conv2", batch_size=16, lr=2e-3, warmup_steps=5, steps=60, ema=0.0)
    tuner = FineTuner(tiny_model(), crops, labels, cells, None, settings, tmp_path, "x", log=lambda _: None)
    predict = lambda x: np.asarray(tuner.model.predict_on_batch(x))[:, 0]  # noqa: E731
    before = roc_auc_score(test_labels, predict_crops(predict, test_crops))
    tuner.run(progress=False)
    after = roc_auc_score(test_labels, predict_crops(predict, test_crops))
    assert after > max(0.9, before + 0.1), (before, after)


def test_batchnorm_reestimation_sets_the_statistics_of_the_data(tmp_path):
    crops, _, _ = synthetic_set(64)
    model = tiny_model()
    first = model.get_layer("conv1_bn")
    assert np.allclose(first.moving_mean.numpy(), 0)
    assert reestimate_batchnorm(model, crops, batch_size=16) == 5  # conv1..conv5; the head's is skipped
    conv = keras.Model(model.input, model.get_layer("conv1_conv").output)
    from core.imaging.preprocess import caffe_normalise

    outputs = np.asarray(conv(caffe_normalise(crops[:64])))
    np.testing.assert_allclose(first.moving_mean.numpy(), outputs.mean(axis=(0, 1, 2)), rtol=1e-3, atol=1e-2)
    assert np.allclose(model.get_layer("head_bn").moving_mean.numpy(), 0)
    assert first.momentum == 0.99 and not any(v.trainable for v in first.weights if "moving" in v.path)
