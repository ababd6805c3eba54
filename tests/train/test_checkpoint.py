"""train.fit's checkpoint schedule (--checkpoint-every) on a tiny Keras model (fast; no ResNet50)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from train import fit
from train.distribute import Placement


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    fit.compile_model(model, lr=0.05, label_smoothing=0.0)
    return model


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=64) > 0).astype(np.float32)[:, None]
    return x, y


def fit_with_checkpoints(directory, every, epochs, state=None, best=None, initial_epoch=0, model=None):
    keras.utils.set_random_seed(0)
    model = model or tiny_model()
    stopping = fit.ResumableEarlyStopping(state=state and state["stopping"], best_weights=best, monitor=fit.MONITOR,
                                          mode="max", patience=50, restore_best_weights=True)
    plateau = fit.ResumablePlateau(state=state and state["plateau"], monitor=fit.MONITOR, mode="max", patience=50)
    history = list(state["history"]) if state else []
    checkpoint = fit.Checkpoint(directory, stopping, plateau, history, lambda *_: None, every=every,
                                last_epoch=epochs, best_written=state["stopping"]["best_epoch"] if best else None)
    x, y = data()
    model.fit(x, y, validation_data=data(1), epochs=epochs, initial_epoch=initial_epoch, batch_size=16,
              callbacks=[stopping, plateau, checkpoint], verbose=0)
    return model, history, stopping


def test_checkpoint_every_n_epochs_and_at_the_end(tmp_path):
    _, history, stopping = fit_with_checkpoints(tmp_path, every=2, epochs=5)
    assert [row["epoch"] for row in history if "checkpoint_seconds" in row] == [2, 4, 5]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epochs_done"] == 5 and [row["epoch"] for row in state["history"]] == [1, 2, 3, 4, 5]
    assert state["stopping"]["best_epoch"] == stopping.best_epoch
    with np.load(tmp_path / "best_weights.npz") as stored:
        assert int(stored["best_epoch"]) == stopping.best_epoch
        for i, weight in enumerate(stopping.best_weights):
            np.testing.assert_array_equal(stored[f"arr_{i}"], weight)


def test_interruption_between_checkpoints_resumes_from_the_last_one(tmp_path, monkeypatch):
    monkeypatch.setenv(fit.INTERRUPT_ENV, "3")
    with pytest.raises(fit.Interrupted, match="stopped after epoch 3"):
        fit_with_checkpoints(tmp_path, every=2, epochs=6)
    monkeypatch.delenv(fit.INTERRUPT_ENV)
    model, state, best = fit._load_checkpoint(tmp_path, Placement("test", 1, "test"))
    assert state["epochs_done"] == 2 and len(state["history"]) == 2  # epoch 3 was never written
    assert best is not None and len(best) == len(model.get_weights())
    _, history, stopping = fit_with_checkpoints(tmp_path, every=2, epochs=6, state=state, best=best,
                                                initial_epoch=2, model=model)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6]
    assert history[:2] == state["history"]  # the restored epochs are kept as they were
    best_auc = max(row["val_auc"] for row in history)
    assert stopping.best == pytest.approx(best_auc)  # early stopping saw every epoch, restored ones included


def test_inconsistent_checkpoint_is_refused(tmp_path):
    fit_with_checkpoints(tmp_path, every=1, epochs=2)
    state = json.loads((tmp_path / "state.json").read_text())
    state["stopping"]["best_epoch"] = 7
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match="inconsistent: best_weights.npz holds epoch"):
        fit._load_checkpoint(tmp_path, Placement("test", 1, "test"))


def test_checkpoint_every_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every must be at least 1"):
        fit.Checkpoint(tmp_path, None, None, [], print, every=0)


def test_set_bn_momentum_reaches_nested_layers_and_is_saved(tmp_path):
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    model = keras.Sequential([keras.Input((4,)), inner, keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    assert fit.set_bn_momentum(model, 0.9) == 2
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    layers = [loaded.layers[0].layers[1], loaded.layers[1]]
    assert all(isinstance(layer, keras.layers.BatchNormalization) and layer.momentum == 0.9 for layer in layers)
