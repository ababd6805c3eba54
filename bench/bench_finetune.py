"""Fine-tuning throughput on this machine for each --trainable-from, through train.studies.finetune's own pieces.

For each stage and each --batchnorm mode: the shipped model with a fresh head,
train.studies.finetune_loop.configure (the trained stages' BatchNorm frozen or trained, stages from the chosen one
trainable), then `--steps` timed steps of FineTuner.train_step (balanced batch, train.studies.finetune.augmentation,
train_on_batch, the weights' running average) after one untimed step that traces. Also times the augmentation alone
and the average's update alone. Real Br35H crops (crop cache).

    .venv/bin/python bench/bench_finetune.py [--stages conv2 conv3 conv4 conv5] [--batchnorm frozen train]
        [--steps 8] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "br35h"


def crops(count: int) -> tuple[np.ndarray, np.ndarray]:
    from train.data import cache

    paths = sorted((DATA / "yes").glob("*"))[: count // 2] + sorted((DATA / "no").glob("*"))[: count // 2]
    entries = cache.crop_all(paths, 224, None, 1, desc="crops")
    return np.stack([e.crop for e in entries]), np.array([1] * (count // 2) + [0] * (count // 2))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stages", nargs="+", default=["conv2", "conv3", "conv4", "conv5"])
    p.add_argument("--batchnorm", nargs="+", default=["frozen"], choices=("frozen", "train"))
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"error: no Br35H data at {DATA}", file=sys.stderr)
        return 2
    from core.model.classifier import load_classifier
    from train.studies.finetune import augmentation
    from train.studies.finetune_loop import FineTuner, LoopSettings, augmented_batch, fresh_head

    images, labels = crops(128)
    cells = labels.astype(str)
    augment = augmentation(intensity_maps=True, gin=True)
    started = time.perf_counter()
    for step in range(10):
        augmented_batch(images, np.arange(args.batch_size), augment, 0, step)
    per_image = (time.perf_counter() - started) / (10 * args.batch_size)
    print(f"augmentation alone: {1000 * per_image:.1f} ms per image ({1 / per_image:.0f} img/s on one core)")
    print(f"{'trainable from':<15} {'BatchNorm':<10} {'img/s':>7} {'s/step':>7} {'average update s':>17}   "
          f"(batch {args.batch_size})")
    for stage, batchnorm in ((stage, mode) for stage in args.stages for mode in args.batchnorm):
        model = load_classifier().model
        fresh_head(model, 0)
        settings = LoopSettings(trainable_from=stage, batchnorm=batchnorm, batch_size=args.batch_size,
                                warmup_steps=0, steps=args.steps + 1, ema=0.99)
        with tempfile.TemporaryDirectory() as run_dir:
            tuner = FineTuner(model, images, labels, cells, augment, settings, Path(run_dir), "bench",
                              log=lambda _: None)
            tuner._enter("main", fresh=True)
            tuner.train_step()  # traces
            started = time.perf_counter()
            for _ in range(args.steps):
                tuner.train_step()
            per_step = (time.perf_counter() - started) / args.steps
            started = time.perf_counter()
            tuner._update_ema()
            ema_time = time.perf_counter() - started
        print(f"{stage:<15} {batchnorm:<10} {args.batch_size / per_step:>7.1f} {per_step:>7.2f} {ema_time:>17.2f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
