"""`python -m train`: train the recipe on labelled folders and report leak-free results.

    python -m train --train DIR [DIR...] (--val DIR [DIR...] | --val-split F) [--test DIR...] --out RUN_DIR
    python -m train --prepared BUNDLE.npz --out RUN_DIR      (data prepared by `brain-mri prepare`)

RUN_DIR ends with: model/ (model.keras + model_card.json), history.csv,
metrics.json, report.json (unreadable files, duplicate pairs) and plots/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from train.data.discover import DataError
from train.options import (
    add_augmentation_arguments,
    add_data_arguments,
    add_generalisation_arguments,
    add_recipe_arguments,
    new_parser,
    run_guarded,
)
from train.settings import RunSettings


def parser():
    p = new_parser("python -m train", __doc__.split("\n\n")[0])
    add_data_arguments(p)
    p.add_argument("--prepared", type=Path, metavar="BUNDLE", help="train on a bundle from `brain-mri prepare`")
    p.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="folder for the run's results")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in RUN_DIR")
    p.add_argument("--checkpoint-every", type=int, default=1, metavar="N",
                   help="write the resumable checkpoint (with optimizer state) every N epochs and at the end; "
                        "--resume repeats the epochs after the last one written")
    add_recipe_arguments(p)
    add_augmentation_arguments(p)
    add_generalisation_arguments(p)
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
    for name in ("epochs", "batch_size", "patience", "workers", "cpu_replicas", "checkpoint_every"):
        if getattr(args, name) < 1:
            raise DataError(f"--{name.replace('_', '-')} must be at least 1. Received: {getattr(args, name)}")
    if not 0 < args.lr < 1:
        raise DataError(f"--lr must be between 0 and 1. Received: {args.lr}")
    if args.val_split is not None and not 0 < args.val_split < 1:
        raise DataError(f"--val-split must be between 0 and 1. Received: {args.val_split}")
    if args.weights not in ("imagenet", "none") and not Path(args.weights).is_file():
        raise DataError(f"--weights must be imagenet, none or a weights file. No file at {args.weights!r}.")


def settings_of(args) -> RunSettings:
    """RunSettings from parsed arguments; bad appearance settings raise DataError."""
    try:
        return RunSettings.from_args(args)
    except ValueError as error:
        raise DataError(str(error)) from error


def _check_resume(run_dir: Path, settings: RunSettings) -> None:
    saved_path = run_dir / "run_settings.json"
    if not saved_path.is_file():
        raise DataError(f"Nothing to resume in {run_dir}: it holds no run_settings.json. Start without --resume.")
    changed = settings.differences(json.loads(saved_path.read_text()))
    if changed:
        raise DataError(f"--resume needs the interrupted run's settings; these differ: {', '.join(changed)}.")


def _checked_run(args) -> None:
    check_arguments(args)
    settings = settings_of(args)
    if args.resume:
        _check_resume(args.out, settings)
    elif (args.out / "model").exists() or (args.out / "checkpoint").exists():
        raise DataError(f"{args.out} already holds a run. Choose another --out, or add --resume.")
    from train.run import run  # imports the backend: only once the arguments are known to be good

    run(args, settings)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    started = time.time()
    code, _ = run_guarded(lambda: _checked_run(args), args.out, "checkpoint")
    if code:
        return code
    print(f"Finished in {time.time() - started:.0f} s. Results in {args.out}.")
    return 0
