"""Command-line options shared by `python -m train`, `train.prepare` and `train.evaluate`.

Every default comes from `core.recipe` (the published recipe) or the module
that owns the setting, so the help text and the code never disagree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.imaging.normalise import NORMALISATIONS
from core.recipe import AUGMENTATION, BACKBONES, INPUT_SIZE, OPTIMISATION, STAGES
from train.data import dedup
from train.data.discover import NEGATIVE_CLASSES, DataError
from train.settings import BALANCES
from train.transforms.appearance import PRESETS


class HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none (the help then says what happens)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpWithDefaults)


def add_label_arguments(parser: argparse.ArgumentParser) -> None:
    """How class folders are read and copies recognised."""
    parser.add_argument("--negative-classes", nargs="+", default=list(NEGATIVE_CLASSES), metavar="NAME",
                        help="class folder names meaning 'no tumour', any case")
    parser.add_argument("--near-threshold", type=int, default=dedup.NEAR_THRESHOLD,
                        help="largest 256-bit dHash Hamming distance counted as a near duplicate")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data options shared by `python -m train` and `brain-mri prepare`."""
    parser.add_argument("--train", nargs="+", metavar="DIR", help="training folders with class subfolders")
    val = parser.add_mutually_exclusive_group()
    val.add_argument("--val", nargs="+", metavar="DIR",
                     help="validation folders (duplicates of training scans are removed)")
    val.add_argument("--val-split", type=float, metavar="FRACTION",
                     help="hold out this fraction of the training folders, whole duplicate groups at a time")
    parser.add_argument("--test", nargs="*", default=[], metavar="DIR",
                        help="external test folders, each reported on its own (duplicates removed)")
    add_label_arguments(parser)
    parser.add_argument("--image-size", type=int, default=INPUT_SIZE, help="input side in pixels")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for splits, weight initialisation, order and augmentation")
    parser.add_argument("--workers", type=int, default=4,
                        help="processes for cropping and threads for augmentation")
    parser.add_argument("--cache-dir", type=Path,
                        help="crop cache (default: $BRAIN_MRI_CACHE or ~/.cache/brain-mri/crops)")


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The recipe's optimisation settings; defaults are the published recipe's."""
    recipe = parser.add_argument_group("recipe (defaults are the published recipe's)")
    recipe.add_argument("--weights", default=OPTIMISATION.weights,
                        help="imagenet | none | PATH to ResNet50 no-top weights")
    recipe.add_argument("--trainable-from", choices=STAGES,
                        help="first trainable stage (default: conv4 with pretrained weights, conv1 with none)")
    recipe.add_argument("--epochs", type=int, default=OPTIMISATION.epochs, help="most epochs")
    recipe.add_argument("--batch-size", type=int, default=OPTIMISATION.batch_size,
                        help="global batch size (all replicas)")
    recipe.add_argument("--lr", type=float, default=OPTIMISATION.lr, help="Adam learning rate")
    recipe.add_argument("--label-smoothing", type=float, default=OPTIMISATION.label_smoothing,
                        help="binary cross-entropy label smoothing")
    recipe.add_argument("--patience", type=int, default=OPTIMISATION.patience,
                        help="early-stopping patience on validation AUC")
    recipe.add_argument("--lr-factor", type=float, default=OPTIMISATION.lr_factor,
                        help="ReduceLROnPlateau factor on validation AUC")
    recipe.add_argument("--lr-patience", type=int, default=OPTIMISATION.lr_patience,
                        help="ReduceLROnPlateau patience (epochs)")


def add_augmentation_arguments(parser: argparse.ArgumentParser) -> None:
    """The recipe's augmentation; defaults are the published recipe's."""
    aug = parser.add_argument_group("augmentation")
    aug.add_argument("--hist-match-p", type=float, default=AUGMENTATION.hist_match_p,
                     help="probability of histogram matching")
    aug.add_argument("--rotation", type=float, default=AUGMENTATION.rotation, help="rotation range, degrees")
    aug.add_argument("--shift", type=float, default=AUGMENTATION.shift, help="shift range, fraction of the side")
    aug.add_argument("--zoom", type=float, default=AUGMENTATION.zoom, help="zoom range (scale 1 +- zoom)")
    aug.add_argument("--shear", type=float, default=AUGMENTATION.shear, help="shear range, degrees")
    aug.add_argument("--brightness", type=float, nargs=2, default=list(AUGMENTATION.brightness),
                     metavar=("LOW", "HIGH"), help="brightness factor range")
    aug.add_argument("--hflip", type=float, default=AUGMENTATION.hflip, help="probability of a horizontal flip")
    aug.add_argument("--vflip", type=float, default=AUGMENTATION.vflip, help="probability of a vertical flip")


def add_generalisation_arguments(parser: argparse.ArgumentParser) -> None:
    """Source/class balancing, appearance augmentation and per-scan normalisation (off by default: the recipe)."""
    gen = parser.add_argument_group("generalisation (defaults are the recipe's: all off)")
    gen.add_argument("--balance", choices=BALANCES, default="none",
                     help="source-class: draw every batch equally from the (source, class) cells")
    gen.add_argument("--appearance", choices=sorted(PRESETS), default="off",
                     help="appearance augmentation preset (train.transforms.appearance); "
                          "--appearance-* options override it")
    ranges = {"gamma": "gamma exponent range", "contrast": "contrast factor range"}
    for name, text in ranges.items():
        gen.add_argument(f"--appearance-{name}", type=float, nargs=2, metavar=("LOW", "HIGH"),
                         help=f"{text} (default: the preset's)")
    scalars = {"blur": (float, "largest Gaussian blur sigma, pixels"),
               "sharpen": (float, "largest unsharp-mask amount"),
               "resample": (float, "smallest down-and-up resampling factor (1 = off)"),
               "noise": (float, "largest noise standard deviation, grey levels"),
               "bias-field": (float, "largest intensity non-uniformity amplitude (0 = off)"),
               "jpeg": (int, "lowest JPEG re-compression quality (0 = off)"),
               "p": (float, "probability of each enabled appearance step")}
    for name, (kind, text) in scalars.items():
        gen.add_argument(f"--appearance-{name}", type=kind, metavar="X", help=f"{text} (default: the preset's)")
    gen.add_argument("--normalise", choices=NORMALISATIONS, default="none",
                     help="per-scan intensity normalisation inside the brain crop (training and evaluation)")
    gen.add_argument("--bn-momentum", type=float, metavar="M",
                     help="BatchNormalization moving-average momentum (default: the model's 0.99; the crossval "
                          "small profile: 0.9); 0.9 lets short runs from random initialisation validate with "
                          "settled statistics")
    gen.add_argument("--backbone", choices=BACKBONES, default="resnet50",
                     help="resnet50 (the recipe) or small: a five-layer CNN with ResNet50's stage names that "
                          "trains in seconds on a CPU, for smoke tests of the pipeline, never for results "
                          "(needs --weights none)")


def command_line(command: str, prog: str | None = None) -> str:
    """How this process was invoked, as one command to record: `prog` (default 'brain-mri COMMAND') and the
    arguments, the same whether it came through `brain-mri COMMAND`, `python -m train COMMAND` or the module."""
    arguments = sys.argv[1:]
    if arguments[:1] == [command]:
        arguments = arguments[1:]
    return " ".join([prog or f"brain-mri {command}", *arguments])


def run_guarded(action, out: Path, what: str = "results"):
    """Run a command's body: (0, its result), or (2, None) after printing a DataError as 'error: ...', or
    (130, None) after saying how to resume when interrupted (Ctrl-C). `what`: what `out` holds for the resume."""
    try:
        return 0, action()
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2, None
    except KeyboardInterrupt:
        print(f"\nInterrupted. Continue with the same command plus --resume ({what} in {out}).", file=sys.stderr)
        return 130, None
