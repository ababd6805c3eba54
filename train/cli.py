"""`python -m train`: train the recipe on labelled folders and report leak-free results.

    python -m train --train DIR [DIR...] (--val DIR [DIR...] | --val-split F) [--test DIR...] --out RUN_DIR
    python -m train --prepared BUNDLE.npz --out RUN_DIR      (data prepared by `python -m train.prepare`)

RUN_DIR ends with: model/ (model.keras + model_card.json), history.csv,
metrics.json, report.json (unreadable files, duplicate pairs) and plots/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from train import dedup
from train.data import NEGATIVE_CLASSES, DataError

#: Settings that define a run; --resume refuses to continue with different values.
RUN_SETTINGS = ("weights", "trainable_from", "image_size", "batch_size", "lr", "label_smoothing", "patience",
                "lr_factor", "lr_patience", "hist_match_p", "rotation", "shift", "zoom", "shear", "brightness",
                "hflip", "vflip", "seed", "near_threshold", "data")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data options shared by `python -m train` and `python -m train.prepare`."""
    parser.add_argument("--train", nargs="+", metavar="DIR", help="training folders with class subfolders")
    val = parser.add_mutually_exclusive_group()
    val.add_argument("--val", nargs="+", metavar="DIR",
                     help="validation folders (duplicates of training scans are removed)")
    val.add_argument("--val-split", type=float, metavar="FRACTION",
                     help="hold out this fraction of the training folders, whole duplicate groups at a time")
    parser.add_argument("--test", nargs="*", default=[], metavar="DIR",
                        help="external test folders, each reported on its own (duplicates removed)")
    parser.add_argument("--negative-classes", nargs="+", default=list(NEGATIVE_CLASSES), metavar="NAME",
                        help="class folder names meaning 'no tumour', any case")
    parser.add_argument("--near-threshold", type=int, default=dedup.NEAR_THRESHOLD,
                        help="largest 256-bit dHash Hamming distance counted as a near duplicate")
    parser.add_argument("--image-size", type=int, default=224, help="input side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed for splits, weight initialisation, order and augmentation")
    parser.add_argument("--workers", type=int, default=4,
                        help="processes for cropping and threads for augmentation")
    parser.add_argument("--cache-dir", type=Path, help="crop cache (default: $BRAIN_MRI_CACHE or ~/.cache/brain-mri/crops)")


class HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none (the help then says what happens)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpWithDefaults)
    add_data_arguments(p)
    p.add_argument("--prepared", type=Path, metavar="BUNDLE", help="train on a bundle from `python -m train.prepare`")
    p.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="folder for the run's results")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in RUN_DIR")
    recipe = p.add_argument_group("recipe (defaults are the published recipe's)")
    recipe.add_argument("--weights", default="imagenet", help="imagenet | none | PATH to ResNet50 no-top weights")
    recipe.add_argument("--trainable-from", choices=("conv1", "conv2", "conv3", "conv4", "conv5", "head"),
                        help="first trainable stage (default: conv4 with pretrained weights, conv1 with none)")
    recipe.add_argument("--epochs", type=int, default=15, help="most epochs")
    recipe.add_argument("--batch-size", type=int, default=100, help="global batch size (all replicas)")
    recipe.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate")
    recipe.add_argument("--label-smoothing", type=float, default=0.01, help="binary cross-entropy label smoothing")
    recipe.add_argument("--patience", type=int, default=5, help="early-stopping patience on validation AUC")
    recipe.add_argument("--lr-factor", type=float, default=0.2, help="ReduceLROnPlateau factor on validation AUC")
    recipe.add_argument("--lr-patience", type=int, default=2, help="ReduceLROnPlateau patience (epochs)")
    aug = p.add_argument_group("augmentation")
    aug.add_argument("--hist-match-p", type=float, default=0.3, help="probability of histogram matching")
    aug.add_argument("--rotation", type=float, default=30.0, help="rotation range, degrees")
    aug.add_argument("--shift", type=float, default=0.1, help="shift range, fraction of the side")
    aug.add_argument("--zoom", type=float, default=0.3, help="zoom range (scale 1 +- zoom)")
    aug.add_argument("--shear", type=float, default=15.0, help="shear range, degrees")
    aug.add_argument("--brightness", type=float, nargs=2, default=[0.7, 1.3], metavar=("LOW", "HIGH"),
                     help="brightness factor range")
    aug.add_argument("--hflip", type=float, default=0.5, help="probability of a horizontal flip")
    aug.add_argument("--vflip", type=float, default=0.5, help="probability of a vertical flip")
    p.add_argument("--cpu-replicas", type=int, default=1,
                   help="TensorFlow only: split the CPU into this many replicas (tests multi-replica training)")
    return p


def check_arguments(args) -> None:
    """Errors that need no data and no model, raised before any work."""
    if args.prepared is None:
        if not args.train:
            raise DataError("Give --train DIR [DIR...] (or --prepared BUNDLE).")
        if args.val is None and args.val_split is None:
            raise DataError("Give --val DIR [DIR...] or --val-split FRACTION.")
        for folder in [*args.train, *(args.val or []), *args.test]:
            if not Path(folder).is_dir():
                raise DataError(f"The data folder {folder!r} does not exist or is not a folder. Check the path.")
    elif args.train or args.val or args.val_split is not None or args.test:
        raise DataError("--prepared already holds the data: leave out --train, --val, --val-split and --test.")
    for name in ("epochs", "batch_size", "patience", "workers", "cpu_replicas"):
        if getattr(args, name) < 1:
            raise DataError(f"--{name.replace('_', '-')} must be at least 1. Received: {getattr(args, name)}")
    if not 0 < args.lr < 1:
        raise DataError(f"--lr must be between 0 and 1. Received: {args.lr}")
    if args.val_split is not None and not 0 < args.val_split < 1:
        raise DataError(f"--val-split must be between 0 and 1. Received: {args.val_split}")
    if args.weights not in ("imagenet", "none") and not Path(args.weights).is_file():
        raise DataError(f"--weights must be imagenet, none or a weights file. No file at {args.weights!r}.")


def settings_of(args) -> dict:
    trainable = args.trainable_from or ("conv1" if args.weights == "none" else "conv4")
    return {
        "weights": args.weights, "trainable_from": trainable, "image_size": args.image_size,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "label_smoothing": args.label_smoothing, "patience": args.patience, "lr_factor": args.lr_factor,
        "lr_patience": args.lr_patience, "hist_match_p": args.hist_match_p, "rotation": args.rotation,
        "shift": args.shift, "zoom": args.zoom, "shear": args.shear, "brightness": list(args.brightness),
        "hflip": args.hflip, "vflip": args.vflip, "seed": args.seed, "near_threshold": args.near_threshold,
        "data": {"train": args.train, "val": args.val, "val_split": args.val_split, "test": args.test,
                 "prepared": None if args.prepared is None else str(args.prepared),
                 "negative_classes": list(args.negative_classes)},
    }


def _check_resume(run_dir: Path, settings: dict) -> None:
    saved_path = run_dir / "run_settings.json"
    if not saved_path.is_file():
        raise DataError(f"Nothing to resume in {run_dir}: it holds no run_settings.json. Start without --resume.")
    saved = json.loads(saved_path.read_text())
    changed = [key for key in RUN_SETTINGS if saved.get(key) != settings.get(key)]
    if changed:
        raise DataError(f"--resume needs the interrupted run's settings; these differ: {', '.join(changed)}.")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    started = time.time()
    try:
        check_arguments(args)
        settings = settings_of(args)
        if args.resume:
            _check_resume(args.out, settings)
        elif (args.out / "model").exists() or (args.out / "checkpoint").exists():
            raise DataError(f"{args.out} already holds a run. Choose another --out, or add --resume.")
        from train.run import run  # imports the backend: only once the arguments are known to be good

        run(args, settings)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nInterrupted. Continue with the same command plus --resume (checkpoint in {args.out}).",
              file=sys.stderr)
        return 130
    print(f"Finished in {time.time() - started:.0f} s. Results in {args.out}.")
    return 0
