"""Train the classifier with the recipe, checkpointing so a run can resume.

RUN_DIR/checkpoint/ holds, after every `checkpoint_every`-th epoch and after the
last one: `last.keras` (model and optimizer), `best_weights.npz` (the weights of
the best validation AUC so far, with that epoch; rewritten only when it changed)
and `state.json` (epochs done, history, early-stopping and learning-rate schedule
state), each replaced atomically, `state.json` last. Between checkpoints nothing
is written (on a GPU, writing a 300 MB checkpoint with optimizer state can take
longer than the epoch); the best weights are kept in memory meanwhile, so early
stopping still restores them. An interrupted run resumes from the last checkpoint
and repeats the epochs after it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras
import numpy as np

from core.io.atomic import atomic_path
from core.model.classifier import build_model
from train.report import write_json

MONITOR = "val_auc"
#: Testing seam: stop (as if interrupted) after this many epochs, once the checkpoint is written.
INTERRUPT_ENV = "BRAIN_MRI_INTERRUPT_AFTER_EPOCH"
#: "1": run Keras eagerly, without tracing the training step. Tracing ResNet50's step costs about a minute on
#: 2 CPU cores, more than a tiny run's training: the trainer's own tests set it; real runs never need it.
EAGER_ENV = "BRAIN_MRI_EAGER"


class Interrupted(Exception):
    """Training stopped before the end; the checkpoint allows --resume."""


def compile_model(model, lr: float, label_smoothing: float) -> None:
    """Adam, label-smoothed binary cross-entropy, accuracy and AUC (the recipe).

    The metrics honour sample weights, so the zero-weight padding of a last
    validation batch (see pipeline.EvalBatches) never counts.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing),
        weighted_metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that can start from a saved state instead of from scratch."""

    def __init__(self, state: dict | None = None, best_weights=None, **kwargs):
        super().__init__(**kwargs)
        self._resume_state, self._resume_weights = state, best_weights

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._resume_state:
            self.wait = self._resume_state["wait"]
            self.best = self._resume_state["best"]
            self.best_epoch = self._resume_state["best_epoch"]
            self.best_weights = self._resume_weights


class ResumablePlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau that can start from a saved state."""

    def __init__(self, state: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self._resume_state = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._resume_state:
            self.wait = self._resume_state["wait"]
            self.best = self._resume_state["best"]
            self.cooldown_counter = self._resume_state["cooldown_counter"]


class Checkpoint(keras.callbacks.Callback):
    """Keep the history; write the checkpoint every `every` epochs and at the end; honour the interruption seam."""

    def __init__(self, directory: Path, stopping, plateau, history: list[dict], log, every: int = 1,
                 last_epoch: int = 0, best_written: int | None = None):
        super().__init__()
        if every < 1:
            raise ValueError(f"checkpoint_every must be at least 1. Received: {every!r}")
        self.directory, self.stopping, self.plateau = directory, stopping, plateau
        self.history, self.log, self.every, self.last_epoch = history, log, every, last_epoch
        self.best_written = best_written  # the best epoch whose weights best_weights.npz holds
        self.interrupt_after = int(os.environ.get(INTERRUPT_ENV, "0") or 0)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        row["epoch_seconds"] = time.perf_counter() - self.epoch_started  # training + validation, before saving
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.history.append(row)
        due = (epoch + 1) % self.every == 0 or epoch + 1 >= self.last_epoch or self.model.stop_training
        if due:
            started = time.perf_counter()
            self.save(epoch + 1)
            row["checkpoint_seconds"] = time.perf_counter() - started
        self.log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if self.interrupt_after and epoch + 1 >= self.interrupt_after:
            raise Interrupted(f"stopped after epoch {epoch + 1} ({INTERRUPT_ENV})")

    def save(self, epochs_done: int) -> None:
        """Write last.keras, best_weights.npz (when the best epoch changed) and state.json, in that order."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.directory / "last.keras", suffix=".keras") as tmp_model:
            self.model.save(tmp_model)
        if self.stopping.best_weights is not None and self.best_written != self.stopping.best_epoch:
            with atomic_path(self.directory / "best_weights.npz", suffix=".npz") as tmp_best:
                np.savez(tmp_best, *self.stopping.best_weights, best_epoch=self.stopping.best_epoch)
            self.best_written = self.stopping.best_epoch
        state = {
            "epochs_done": epochs_done,
            "history": self.history,
            "stopping": {"wait": self.stopping.wait, "best": _plain(self.stopping.best),
                         "best_epoch": self.stopping.best_epoch},
            "plateau": {"wait": self.plateau.wait, "best": _plain(self.plateau.best),
                        "cooldown_counter": self.plateau.cooldown_counter},
        }
        write_json(self.directory / "state.json", state)


def _plain(value):
    return None if value is None else float(value)


def _load_checkpoint(directory: Path, placement):
    state = json.loads((directory / "state.json").read_text())
    with placement.scope():
        model = keras.saving.load_model(directory / "last.keras", compile=True, safe_mode=True)
    best = None
    if (directory / "best_weights.npz").is_file():
        with np.load(directory / "best_weights.npz") as stored:
            best = [stored[f"arr_{i}"] for i in range(len([k for k in stored.files if k.startswith("arr_")]))]
            saved_epoch = int(stored["best_epoch"]) if "best_epoch" in stored.files else None
        if saved_epoch is not None and saved_epoch != state["stopping"]["best_epoch"]:
            raise ValueError(f"The checkpoint in {directory} is inconsistent: best_weights.npz holds epoch "
                             f"{saved_epoch + 1}, state.json names epoch {state['stopping']['best_epoch'] + 1} "
                             "(the run stopped while writing it). Start the run again without --resume.")
    return model, state, best


def train(settings: dict, train_batches, val_batches, run_dir: Path, placement, resume: bool, log=print,
          checkpoint_every: int = 1):
    """Fit the recipe; returns (model with the best weights, history rows).

    settings: a `train.settings.RunSettings` (model, optimisation and stopping settings are read).
    checkpoint_every: write the checkpoint (with optimizer state) every this many epochs and at the end.
    """
    checkpoint_dir = run_dir / "checkpoint"
    history: list[dict] = []
    stopping_state = plateau_state = best_weights = None
    initial_epoch = 0
    if resume and (checkpoint_dir / "state.json").is_file():
        model, state, best_weights = _load_checkpoint(checkpoint_dir, placement)
        history, initial_epoch = state["history"], state["epochs_done"]
        stopping_state, plateau_state = state["stopping"], state["plateau"]
        log(f"Resuming after epoch {initial_epoch} from {checkpoint_dir}: "
            f"early stopping wait {stopping_state['wait']}, best {MONITOR} {stopping_state['best']} "
            f"at epoch {stopping_state['best_epoch'] + 1}"
            f"{'' if best_weights is None else ' (its weights restored)'}.")
    else:
        with placement.scope():
            model = build_model(weights=settings.weights_for_build, trainable_from=settings.trainable_from,
                                input_size=settings.image_size, backbone=settings.backbone)
            if settings.bn_momentum is not None:
                set_bn_momentum(model, settings.bn_momentum)
            compile_model(model, settings.optimisation.lr, settings.optimisation.label_smoothing)
    if os.environ.get(EAGER_ENV) == "1":
        model.run_eagerly = True
        log(f"Running eagerly ({EAGER_ENV}=1): no graph tracing.")
    stopping = ResumableEarlyStopping(state=stopping_state, best_weights=best_weights, monitor=MONITOR,
                                      mode="max", patience=settings.optimisation.patience, restore_best_weights=True)
    plateau = ResumablePlateau(state=plateau_state, monitor=MONITOR, mode="max", factor=settings.optimisation.lr_factor,
                               patience=settings.optimisation.lr_patience, min_lr=1e-7)
    checkpoint = Checkpoint(checkpoint_dir, stopping, plateau, history, log, every=checkpoint_every,
                            last_epoch=settings.optimisation.epochs,
                            best_written=stopping_state["best_epoch"] if best_weights is not None else None)
    callbacks = [stopping, plateau, checkpoint]
    if initial_epoch >= settings.optimisation.epochs or _stopped_early(stopping_state, settings.optimisation.patience):
        log("The checkpoint already holds a finished run; restoring its best weights.")
        if best_weights is not None:
            model.set_weights(best_weights)
        return model, history
    train_batches.set_epoch(initial_epoch)
    model.fit(train_batches, validation_data=val_batches, epochs=settings.optimisation.epochs,
              initial_epoch=initial_epoch, callbacks=callbacks, verbose=2)
    return model, history


def set_bn_momentum(model, momentum: float) -> int:
    """Set the moving-average momentum of every BatchNormalization layer (nested models too), before
    compiling; returns how many layers were changed. The saved model keeps it in its config."""
    changed, stack = 0, list(model.layers)
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []))
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            changed += 1
    return changed


def _stopped_early(stopping_state: dict | None, patience: int) -> bool:
    return bool(stopping_state) and stopping_state["wait"] >= patience
