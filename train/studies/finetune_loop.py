"""The resumable fine-tuning loop: balanced batches, BatchNorm frozen or trained, a running average of the weights.

A run has two phases: `warmup` trains only the recipe's head (freshly initialised, so its first random
gradients never reach the backbone) at `warmup_lr`, then `main` trains every stage from `trainable_from` on
at `lr`. With `batchnorm="frozen"` (the default) every BatchNormalization layer of the backbone stays frozen in
both (inference mode: its statistics and scale do not move; small batches drawn from six cells would give noisy
statistics). With `batchnorm="train"` those of the trained stages train in `main` like the other layers: each
batch is normalised by its own statistics (every cell equally, so every source), the moving statistics follow
them at the layers' momentum (0.99 in ResNet50), and scale and offset are learnt; the frozen statistics of a
backbone trained on one source are what this tests. The head's own (`head_bn`, over 512 features of a fresh
layer) trains as in the recipe either way. In `main` an exponential
moving average (EMA) of the trainable weights is kept beside them; the averaged weights are the run's result.

Everything random is a function of (seed, step): the batch of step s is drawn by
:class:`CellSampler` and image j of it is augmented with ``default_rng([seed, 1, s, j])``; dropout's seed
state is one of the model's variables. So a checkpoint (model variables, EMA, optimizer variables, step)
is the whole state, and a resumed run reaches the same weights as one that was never stopped.

RUN_DIR/checkpoint/ holds `step-N/` folders (weights.npz, ema.npz, optimizer.npz) and `state.json`,
written atomically last, which names the newest; older folders are removed after it is written.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.imaging.preprocess import caffe_normalise
from core.io.atomic import write_atomic
from train.data.batches import balanced_order
from train.data.discover import DataError

PHASES = ("warmup", "main")
#: Head layers re-initialised at the start of a run (core.model.classifier.build_model names them).
HEAD_LAYERS = ("head_dense", "head_bn", "logit")
HEAD_BN = "head_bn"
#: What the backbone's BatchNorm layers do while their stage trains (module docstring).
BATCHNORM_MODES = ("frozen", "train")


@dataclass(frozen=True)
class LoopSettings:
    """What a run does; a resumed run must be given the same.

    trainable_from: first trained stage in `main` (conv2..conv5, or head); batchnorm: "frozen" or "train", what
    the backbone's BatchNorm layers of the trained stages do in `main`; warmup_steps and steps: batches in each
    phase; ema: the average's momentum per step (0 = no average: the raw weights);
    checkpoint_minutes: time between checkpoints; steps_per_pass: batches drawn per sampler permutation.
    """

    trainable_from: str = "conv4"
    batchnorm: str = "frozen"
    batch_size: int = 32
    lr: float = 1e-4
    warmup_lr: float = 1e-3
    warmup_steps: int = 60
    steps: int = 360
    ema: float = 0.99
    label_smoothing: float = 0.01
    seed: int = 0
    steps_per_pass: int = 120
    checkpoint_minutes: float = 5.0

    def __post_init__(self) -> None:
        from core.recipe import STAGES

        if self.trainable_from not in STAGES[1:]:
            raise ValueError(f"trainable_from must be one of {', '.join(STAGES[1:])}. "
                             f"Received: trainable_from={self.trainable_from!r}")
        if self.batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"batchnorm must be one of {', '.join(BATCHNORM_MODES)}. "
                             f"Received: batchnorm={self.batchnorm!r}")
        for name in ("batch_size", "steps_per_pass"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1. Received: {name}={getattr(self, name)!r}")
        if self.warmup_steps < 0 or self.steps < 0:
            raise ValueError(f"warmup_steps and steps must be >= 0. Received: {self.warmup_steps}, {self.steps}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1). Received: ema={self.ema!r}")
        if not (self.lr > 0 and self.warmup_lr > 0 and self.checkpoint_minutes > 0):
            raise ValueError(f"lr, warmup_lr and checkpoint_minutes must be positive. Received: {self.lr}, "
                             f"{self.warmup_lr}, {self.checkpoint_minutes}")

    @property
    def total_steps(self) -> int:
        return self.warmup_steps + self.steps

    def phase_at(self, step: int) -> str:
        return "warmup" if step < self.warmup_steps else "main"


class CellSampler:
    """Batch indices as a function of the step: every batch holds batch_size // k scans of each of the k
    cells (train.data.batches.balanced_order), each cell walked in a fresh permutation per pass.

    cells: (n,) cell id per scan (e.g. 'source/class'). indices(step) -> int (batch_size,).
    """

    def __init__(self, cells: np.ndarray, batch_size: int, steps_per_pass: int, seed: int) -> None:
        self.cells, self.batch_size = np.asarray(cells), batch_size
        self.steps_per_pass, self.seed = steps_per_pass, seed
        self._pass, self._order = -1, None

    def indices(self, step: int) -> np.ndarray:
        number, position = divmod(step, self.steps_per_pass)
        if number != self._pass:
            rng = np.random.default_rng([self.seed, 0, number])
            self._order = balanced_order(self.cells, self.batch_size, self.steps_per_pass, rng)
            self._pass = number
        return self._order[position * self.batch_size:(position + 1) * self.batch_size]


def augmented_batch(crops: np.ndarray, indices: np.ndarray, augment, seed: int, step: int) -> np.ndarray:
    """uint8 (b, s, s) crops of `indices`, each through `augment` with its own (seed, step, slot) stream."""
    images = np.empty((len(indices),) + crops.shape[1:], dtype=np.uint8)
    for slot, index in enumerate(indices):
        crop = crops[index]
        images[slot] = augment(crop, np.random.default_rng([seed, 1, step, slot])) if augment else crop
    return images


def fresh_head(model, seed: int) -> None:
    """Re-initialise the head's layers in place (seeded): a fold's head must not carry what the start
    model's head learned from the held-out source."""
    import keras

    for offset, name in enumerate(HEAD_LAYERS):
        layer = model.get_layer(name)
        fresh = layer.__class__.from_config({**layer.get_config(), "name": f"{name}_fresh"})
        keras.utils.set_random_seed(seed + offset)
        fresh.build(layer.input.shape)
        layer.set_weights(fresh.get_weights())


def configure(model, phase: str, settings: LoopSettings, run_eagerly: bool = False):
    """Set what `phase` trains (the backbone's BatchNorm frozen unless settings.batchnorm is "train" in `main`)
    and compile with a new Adam at the phase's rate; returns the model."""
    import keras

    from core.model.classifier import set_trainable_from

    set_trainable_from(model, "head" if phase == "warmup" else settings.trainable_from)
    if phase == "warmup" or settings.batchnorm == "frozen":
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization) and layer.name != HEAD_BN:
                layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(settings.warmup_lr if phase == "warmup" else settings.lr),
                  loss=keras.losses.BinaryCrossentropy(label_smoothing=settings.label_smoothing),
                  run_eagerly=run_eagerly)
    model.optimizer.build(model.trainable_variables)
    return model


def _arrays(variables) -> dict[str, np.ndarray]:
    return {f"{i:04d}": np.asarray(v.numpy() if hasattr(v, "numpy") else v) for i, v in enumerate(variables)}


def _assign(variables, arrays: dict[str, np.ndarray], what: str) -> None:
    if len(arrays) != len(variables):
        raise DataError(f"The checkpoint's {what} hold {len(arrays)} arrays; this model needs {len(variables)}. "
                        "Resume with the same start model and --trainable-from.")
    for i, variable in enumerate(variables):
        variable.assign(arrays[f"{i:04d}"])


class FineTuner:
    """Runs and checkpoints one fine-tuning run (module docstring).

    model: the Keras classifier (modified in place); crops uint8 (n, s, s); labels (n,) 0/1; cells (n,);
    augment: uint8 HxW -> uint8 HxW transform taking (image, rng); fingerprint: identifies the data and the
    start model, checked on resume.
    """

    def __init__(self, model, crops, labels, cells, augment, settings: LoopSettings, run_dir: Path,
                 fingerprint: str, log=print, run_eagerly: bool = False) -> None:
        self.model, self.crops, self.augment, self.settings = model, crops, augment, settings
        self.labels = np.asarray(labels, dtype=np.float32)
        self.sampler = CellSampler(cells, settings.batch_size, settings.steps_per_pass, settings.seed)
        self.directory, self.fingerprint = Path(run_dir) / "checkpoint", fingerprint
        self.log, self.run_eagerly = log, run_eagerly
        self.step, self.phase, self.ema, self.history = 0, None, None, []

    # ------------------------------------------------------------------ state
    def _state(self) -> dict:
        return {"step": self.step, "settings": dataclasses.asdict(self.settings), "fingerprint": self.fingerprint,
                "history": self.history}

    def save(self) -> None:
        """Write the checkpoint of the current step (state.json last, atomically), then drop older ones."""
        folder = self.directory / f"step-{self.step:06d}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        np.savez(folder / "weights.npz", **_arrays(self.model.variables))
        np.savez(folder / "optimizer.npz", **_arrays(self.model.optimizer.variables))
        np.savez(folder / "ema.npz", **_arrays(self.ema or []))
        write_atomic(self.directory / "state.json", json.dumps({**self._state(), "folder": folder.name}) + "\n")
        for old in self.directory.glob("step-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)

    def saved_state(self) -> dict | None:
        path = self.directory / "state.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def restore(self) -> None:
        """Continue from the checkpoint; refuses one made with other settings, data or start model."""
        state = self.saved_state()
        if state is None:
            raise DataError(f"No checkpoint in {self.directory} to resume from. Start without --resume.")
        # a setting added since the checkpoint was written holds its default (what such runs did)
        saved = {**dataclasses.asdict(LoopSettings()), **state["settings"]}
        if saved != dataclasses.asdict(self.settings) or state["fingerprint"] != self.fingerprint:
            raise DataError(f"The checkpoint in {self.directory} was made with other settings, data or start "
                            "model; resume with the same command, or use a new --out.")
        folder = self.directory / state["folder"]
        self.step, self.history = state["step"], state["history"]
        self._enter(self.settings.phase_at(self.step), fresh=False)
        with np.load(folder / "weights.npz") as arrays:
            _assign(self.model.variables, dict(arrays), "weights")
        with np.load(folder / "optimizer.npz") as arrays:
            _assign(self.model.optimizer.variables, dict(arrays), "optimizer variables")
        with np.load(folder / "ema.npz") as arrays:
            self.ema = [arrays[key] for key in sorted(arrays.files)] if self.phase == "main" else None
        self.log(f"Resumed at step {self.step} of {self.settings.total_steps} ({self.phase}).")

    def _enter(self, phase: str, fresh: bool) -> None:
        configure(self.model, phase, self.settings, self.run_eagerly)
        self.phase = phase
        if phase == "main" and fresh:
            self.ema = [np.array(v.numpy()) for v in self.model.trainable_variables]

    # ------------------------------------------------------------------ training
    def _update_ema(self) -> None:
        momentum = min(self.settings.ema, (1.0 + self.step) / (10.0 + self.step))
        for average, variable in zip(self.ema, self.model.trainable_variables):
            average *= momentum
            average += (1.0 - momentum) * np.asarray(variable.numpy())

    def train_step(self) -> float:
        indices = self.sampler.indices(self.step)
        x = caffe_normalise(augmented_batch(self.crops, indices, self.augment, self.settings.seed, self.step))
        loss = self.model.train_on_batch(x, self.labels[indices, None], return_dict=True)["loss"]
        self.step += 1
        if self.phase == "main" and self.settings.ema > 0:
            self._update_ema()
        return float(loss)

    def run(self, max_minutes: float | None = None, resume: bool = False, progress: bool = True,
            until_step: int | None = None) -> bool:
        """Train until the last step (True), or until `max_minutes` would be passed or step `until_step` is
        reached (False; checkpointed either way)."""
        from tqdm import tqdm

        started = time.monotonic()
        if resume:
            self.restore()
        else:
            self._enter(self.settings.phase_at(0), fresh=True)
        total, batch = self.settings.total_steps, self.settings.batch_size
        last_save, step_times, save_time, losses = time.monotonic(), [], 0.0, []
        bar = tqdm(total=total * batch, initial=self.step * batch, unit="img", disable=not progress,
                   dynamic_ncols=True, desc="fine-tuning")
        while self.step < min(total, until_step or total):
            if self.settings.phase_at(self.step) != self.phase:
                self.save()
                self._enter(self.settings.phase_at(self.step), fresh=True)
            if max_minutes is not None and step_times:
                needed = 2 * float(np.median(step_times[-20:])) + save_time + 5.0
                if time.monotonic() - started + needed > 60.0 * max_minutes:
                    break
            tick = time.monotonic()
            losses.append(self.train_step())
            step_times.append(time.monotonic() - tick)
            bar.update(batch)
            bar.set_postfix(phase=self.phase, loss=f"{np.mean(losses[-20:]):.3f}")
            if self.step % 20 == 0:
                self.history.append({"step": self.step, "loss": float(np.mean(losses[-20:])),
                                     "seconds_per_step": float(np.median(step_times[-20:]))})
            if time.monotonic() - last_save > 60.0 * self.settings.checkpoint_minutes:
                tick = time.monotonic()
                self.save()
                save_time, last_save = time.monotonic() - tick, time.monotonic()
        bar.close()
        self.save()
        finished = self.step >= total
        self.log(f"{'Finished' if finished else 'Paused'} at step {self.step} of {total} "
                 f"({self.step * batch} images); checkpoint in {self.directory}.")
        return finished

    def averaged_weights(self) -> list[np.ndarray] | None:
        """The EMA of the trainable weights (None before `main` or with ema 0)."""
        return None if self.ema is None or self.settings.ema == 0 else [a.copy() for a in self.ema]


def reestimate_batchnorm(model, crops: np.ndarray, batch_size: int = 32, skip=(HEAD_BN,)) -> int:
    """Replace every BatchNormalization layer's moving mean and variance (except `skip`) by their average
    over `crops` (uint8 (n, s, s), unaugmented), layer inputs computed with the other layers' new
    statistics as in training mode; scale and offset are unchanged. Returns the layers re-estimated."""
    import keras

    layers = [layer for layer in model.layers
              if isinstance(layer, keras.layers.BatchNormalization) and layer.name not in skip]
    momenta = {layer.name: layer.momentum for layer in layers}
    previous = {layer.name: layer.trainable for layer in model.layers}
    for layer in model.layers:  # nothing but the statistics may change: freeze all, then open the BN layers
        layer.trainable = layer in layers
    try:
        for k, start in enumerate(range(0, len(crops) - batch_size + 1, batch_size), start=1):
            for layer in layers:
                layer.momentum = (k - 1) / k  # a running mean over batches
            model(caffe_normalise(crops[start:start + batch_size]), training=True)
    finally:
        for layer in model.layers:
            layer.trainable = previous[layer.name]
        for layer in layers:
            layer.momentum = momenta[layer.name]
    return len(layers)
