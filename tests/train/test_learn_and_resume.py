"""The trainer learns, and resumes with its early-stopping state and best weights intact (real CLI, 32 px,
the small backbone).

A synthetic bundle whose classes are learnable (a bright disc inside a textured "brain" ellipse means
tumour) is trained on through `python -m train --prepared`:

- learn: an uninterrupted run must reach a validation AUC above 0.9;
- interrupted: `--checkpoint-every 2` (and BatchNormalization momentum 0.9, so that validation AUC means
  something from the first epoch), stopped after epoch 3 by the testing seam, so the last checkpoint is
  epoch 2's (epoch 3 is lost, as after a crash);
- resumed: the same command plus --resume must continue from epoch 2 with the saved early-stopping
  state (its wait, best value and best epoch) and best weights, stop where early stopping over the
  whole history says, and end with the best epoch's weights.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from core.model.classifier import load_classifier
from tests.train.conftest import REPO, run_module
from train.data.splits import Prepared, save_bundle

pytestmark = pytest.mark.slow

NO_AUGMENTATION = ["--hist-match-p", "0", "--rotation", "0", "--shift", "0", "--zoom", "0", "--shear", "0",
                   "--brightness", "1", "1", "--hflip", "0", "--vflip", "0"]
#: The small backbone (ResNet50's stage names, a few conv layers): the mechanics tested here do not depend on the
#: architecture, and it traces in seconds where ResNet50 takes about a minute per run on 2 cores.
COMMON = ["--weights", "none", "--backbone", "small", "--image-size", "32", "--batch-size", "16", "--lr", "1e-3",
          "--workers", "1", *NO_AUGMENTATION]
PATIENCE = 3  # early stopping cannot end the run before the interruption after epoch 3
#: A guard against hangs only (seconds), not a timing assertion: a loaded 2-core machine is slow.
TIMEOUT = 3600


def synthetic_scan(rng: np.random.Generator, size: int, tumour: bool) -> np.ndarray:
    """uint8 (size, size): a noisy ellipse on black; tumour adds a bright disc at a random place inside."""
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2
    inside = ((xx - centre) / (0.45 * size)) ** 2 + ((yy - centre) / (0.4 * size)) ** 2 <= 1
    image = np.where(inside, rng.normal(100, 20, (size, size)), rng.normal(5, 3, (size, size)))
    if tumour:
        radius = rng.uniform(0.1, 0.18) * size
        cx, cy = rng.uniform(0.35, 0.65, 2) * size
        image = np.where((xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2, image + 110, image)
    return np.clip(image, 0, 255).astype(np.uint8)


def synthetic_bundle(path, n_train=192, n_val=64, size=32, seed=0):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n_train + n_val) % 2).astype(np.int8)
    crops = np.stack([synthetic_scan(rng, size, bool(label)) for label in labels])
    split = np.array(["train"] * n_train + ["val"] * n_val)
    names = np.array([f"synthetic/{i}.png" for i in range(len(labels))])
    return save_bundle(Prepared(crops, labels, split, np.array(["synthetic"] * len(labels)), names,
                                report={"synthetic": "bright disc = tumour"}), path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cli_env):
    root = tmp_path_factory.mktemp("learn")
    bundle = synthetic_bundle(root / "synthetic.npz")
    learn = ["--prepared", bundle, "--out", root / "learn", *COMMON, "--epochs", "5", "--checkpoint-every", "5"]
    resumable = ["--prepared", bundle, "--out", root / "resumable", *COMMON, "--epochs", "6",
                 "--patience", str(PATIENCE), "--checkpoint-every", "2", "--bn-momentum", "0.9"]
    with open(root / "learn.log", "w") as log:  # in parallel with the interrupted run
        learning = subprocess.Popen([sys.executable, "-m", "train", *map(str, learn)], cwd=REPO, env=cli_env,
                                    stdout=log, stderr=subprocess.STDOUT)
    try:
        interrupted = run_module("train", resumable, {**cli_env, "BRAIN_MRI_INTERRUPT_AFTER_EPOCH": "3"}, TIMEOUT)
        checkpoint = root / "resumable" / "checkpoint"
        saved = {"state": json.loads((checkpoint / "state.json").read_text()),
                 "best": dict(np.load(checkpoint / "best_weights.npz"))}
        resumed = run_module("train", [*resumable, "--resume"], cli_env, TIMEOUT)
        learning.wait(TIMEOUT)
    finally:
        if learning.poll() is None:  # never leave the parallel run behind
            learning.kill()
            learning.wait()
    return {"root": root, "learn": (learning.returncode, (root / "learn.log").read_text()),
            "interrupted": interrupted, "saved": saved, "resumed": resumed}


def test_the_trainer_learns_a_learnable_task(runs):
    code, log = runs["learn"]
    assert code == 0, log[-4000:]
    metrics = json.loads((runs["root"] / "learn" / "metrics.json").read_text())
    assert metrics["results"]["validation"]["auc"] > 0.9, metrics["results"]["validation"]
    with open(runs["root"] / "learn" / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    assert len(history) == 5 and float(history[-1]["accuracy"]) > 0.8  # it fits the training set too


def simulate_early_stopping(values: list[float], patience: int) -> tuple[int, int]:
    """(epochs run, best epoch index) of Keras EarlyStopping (mode max, min_delta 0) over `values`."""
    best, best_index, wait = None, 0, 0
    for index, value in enumerate(values):
        wait += 1
        if best is None or value > best:
            best, best_index, wait = value, index, 0
        elif wait >= patience and index > 0:
            return index + 1, best_index
    return len(values), best_index


def test_interrupted_run_left_the_checkpoint_of_epoch_two(runs):
    result = runs["interrupted"]
    assert result.returncode == 130, result.stderr[-3000:]
    state = runs["saved"]["state"]
    assert state["epochs_done"] == 2 and [row["epoch"] for row in state["history"]] == [1, 2]
    assert int(runs["saved"]["best"]["best_epoch"]) == state["stopping"]["best_epoch"]
    assert "epoch=3 " in result.stdout  # epoch 3 ran, but no checkpoint was due


def test_resumed_run_keeps_early_stopping_state_and_best_weights(runs):
    result, saved = runs["resumed"], runs["saved"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stopping = saved["state"]["stopping"]
    assert (f"Resuming after epoch 2 from {runs['root'] / 'resumable' / 'checkpoint'}: early stopping wait "
            f"{stopping['wait']}, best val_auc {stopping['best']} at epoch {stopping['best_epoch'] + 1} "
            "(its weights restored).") in result.stdout
    assert "Epoch 3/6" in result.stdout and "Epoch 1/6" not in result.stdout
    run = runs["root"] / "resumable"
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    history = state["history"]
    assert history[:2] == saved["state"]["history"]  # the first two epochs are the interrupted run's
    values = [row["val_auc"] for row in history]
    epochs_run, best_index = simulate_early_stopping(values, PATIENCE)
    assert (len(history), state["stopping"]["best_epoch"]) == (epochs_run, best_index)  # counted across the resume
    assert state["stopping"]["best"] == pytest.approx(values[best_index])
    final = load_classifier(run / "model").model.get_weights()
    if best_index <= 1:  # the best epoch came before the interruption: its saved weights are the model
        expected = [saved["best"][f"arr_{i}"] for i in range(len(final))]
    else:
        with np.load(run / "checkpoint" / "best_weights.npz") as stored:
            assert int(stored["best_epoch"]) == best_index
            expected = [stored[f"arr_{i}"] for i in range(len(final))]
    for got, want in zip(final, expected):
        np.testing.assert_array_equal(got, want)
