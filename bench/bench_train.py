"""End-to-end training throughput of the recipe on this machine, from real Br35H crops.

Measures, through the trainer's own pieces (train.data.cache.crop_all -> train.data.batches.TrainBatches
with train.transforms.augment.recipe_augmentation -> core.model.classifier.build_model + train.fit.compile_model ->
model.fit), images per second for a fixed number of training steps after a warm-up step that
compiles, and the input pipeline alone (crop cache in memory -> augmented, normalised batches).
Prints the implied time for one epoch of Br35H (3000 scans). Offline there are no ImageNet weights:
the model is randomly initialised, which does not change the cost of a step. Run from the repo root:

    .venv/bin/python bench/bench_train.py [--steps 10] [--batch-size 100] [--image-size 224]
        [--trainable-from conv4] [--workers 2] [--cache-dir DIR] [--appearance standard] [--normalise brain]

--appearance and --normalise add train.transforms.appearance's appearance augmentation and per-scan
normalisation after the recipe's augmentation, as `python -m train` does with the same options.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from core.recipe import STAGES  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "br35h"
EPOCH_SCANS = 3000  # Br35H: 1500 tumour + 1500 normal


def br35h_paths(count: int) -> tuple[list[Path], np.ndarray]:
    """`count` Br35H scans spread over both classes (every k-th file), with labels."""
    paths, labels = [], []
    for label, name in ((1, "yes"), (0, "no")):
        files = sorted((DATA / name).iterdir())
        step = max(1, len(files) // ((count + 1) // 2))
        chosen = files[::step][: (count + 1) // 2]
        paths += chosen
        labels += [label] * len(chosen)
    return paths[:count], np.array(labels[:count], dtype=np.int8)


def time_pipeline(batches, batch_size: int, workers: int) -> None:
    """The input pipeline alone: augmented, normalised batches, one thread and `workers` threads."""
    n = len(batches)
    started = time.perf_counter()
    for i in range(n):
        batches[i]
    one = time.perf_counter() - started
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(batches.__getitem__, range(n)))
    many = time.perf_counter() - started
    print(f"pipeline alone: 1 thread {n / one:.2f} batches/s ({n * batch_size / one:.0f} img/s); "
          f"{workers} threads {n / many:.2f} batches/s ({n * batch_size / many:.0f} img/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed training steps (default 10)")
    parser.add_argument("--batch-size", type=int, default=100, help="global batch size (default 100, the recipe)")
    parser.add_argument("--image-size", type=int, default=224, help="input side (default 224)")
    parser.add_argument("--trainable-from", default="conv4", choices=STAGES,
                        help="first trainable stage (default conv4, the recipe; conv1 trains everything)")
    parser.add_argument("--workers", type=int, default=2, help="augmentation threads and crop processes (default 2)")
    parser.add_argument("--cache-dir", type=Path, help="crop cache (default $BRAIN_MRI_CACHE or ~/.cache/brain-mri)")
    parser.add_argument("--appearance", choices=("off", "standard"), default="off",
                        help="appearance augmentation preset (default off, the recipe)")
    parser.add_argument("--normalise", choices=("none", "brain"), default="none",
                        help="per-scan normalisation inside the brain crop (default none, the recipe)")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"Br35H not found at {DATA}: this benchmark needs the real scans (see ../shared/data/SOURCES.md).")

    import keras

    from core.model.classifier import build_model
    from train.data.batches import TrainBatches
    from train.data.cache import crop_all
    from train.fit import compile_model
    from train.run import augmentation
    from train.settings import RunSettings
    from train.transforms.appearance import PRESETS

    count = min(EPOCH_SCANS, args.batch_size * (args.steps + 1))  # one warm-up step + the timed steps
    paths, labels = br35h_paths(count)
    started = time.perf_counter()
    entries = crop_all(paths, args.image_size, args.cache_dir, workers=args.workers)
    crops = np.stack([e.crop for e in entries if e.error is None])
    labels = labels[[e.error is None for e in entries]]
    crop_seconds = time.perf_counter() - started
    settings = RunSettings(appearance=PRESETS[args.appearance], normalise=args.normalise, image_size=args.image_size)
    augment = augmentation(crops, settings)  # recipe defaults: every step on, then the options asked for
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, {os.cpu_count()} CPU cores visible; "
          f"weights: none (random init, offline; same cost per step as ImageNet)")
    print(f"data: {len(crops)} real Br35H crops at {args.image_size} px (crop_all incl. cache: {crop_seconds:.1f} s); "
          f"batch {args.batch_size}, trainable from {args.trainable_from}, full recipe augmentation"
          f"{', appearance ' + args.appearance if args.appearance != 'off' else ''}"
          f"{', normalise ' + args.normalise if args.normalise != 'none' else ''}, {args.workers} augmentation threads")

    batches = TrainBatches(crops, labels, args.batch_size, augment, seed=0, workers=args.workers)
    time_pipeline(batches, args.batch_size, args.workers)

    model = build_model(weights=None, trainable_from=args.trainable_from, input_size=args.image_size)
    compile_model(model, lr=2e-4, label_smoothing=0.01)
    started = time.perf_counter()
    model.fit(batches, epochs=1, steps_per_epoch=1, verbose=0)  # compiles the train step
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    model.fit(batches, epochs=1, steps_per_epoch=args.steps, verbose=0)
    seconds = time.perf_counter() - started
    rate = args.steps * args.batch_size / seconds
    print(f"training: warm-up step (compile) {warmup:.1f} s; {args.steps} steps in {seconds:.1f} s = "
          f"{seconds / args.steps:.2f} s/step, {rate:.1f} img/s")
    print(f"one epoch of Br35H ({EPOCH_SCANS} scans) at this rate: {EPOCH_SCANS / rate / 60:.1f} min "
          f"({EPOCH_SCANS // args.batch_size} steps)")


if __name__ == "__main__":
    main()
