"""`brain-mri finetune`: fine-tune a model's backbone on every source, in
runs that survive interruption, and judge it on a source it never saw.

    brain-mri finetune --out RUN_DIR --held-out mos|lgg|none [--model DIR] [--trainable-from conv4]
        [--images N] [--no-intensity-maps] [--max-minutes M] [--resume] ...

The pool is train.data.folds.ALL_SEQUENCES (Br35H+NAV, MOS, LGG in FLAIR, T1 and contrast T1; copies removed,
LGG grouped by patient across its sequences). `--held-out mos` (or lgg) trains on the other sources and
tests on every kept slice of the held-out one (at most --test-cap per folder and class, seeded); `none`
trains on every source, holding out a validation split by whole groups.

The start model's backbone is kept and its head re-initialised (it was fitted on every source, the held-out
one included), unless --keep-head (only with --held-out none: the run then starts exactly at the start model);
a short warm-up trains the head alone, then every stage from --trainable-from on trains with the backbone's
BatchNorm frozen (or, with --batchnorm train, normalising each batch by its own statistics and learning them),
batches drawn equally from each (source, class) cell, the recipe's geometry and brightness plus an appearance
stack (train.transforms.appearance STANDARD: gamma, contrast, bias field, blur/sharpen, resampling, noise, JPEG;
GIN random shallow convolutions; random non-monotonic intensity maps unless --no-intensity-maps), Adam at a
constant rate and an exponential moving average of the weights
(train.studies.finetune_loop). Checkpoints every --checkpoint-minutes; --max-minutes ends the run cleanly at one;
--resume continues exactly where it stopped.

When the last step is done, RUN_DIR gets results.json / results.md: the validation-chosen threshold and the
test metrics (AUC with interval, balanced accuracy, sensitivity, specificity; per folder too) of four
variants: the raw and the averaged weights, each with BatchNorm as trained and with its statistics
re-estimated on a balanced sample of the training sources; scores.json holds every scored scan's
probability. A run on every source (--held-out none) also writes finetuned.keras: the averaged weights,
without a card yet.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.data import dedup, folds
from train.data.discover import DataError
from train.data.folds import folder_of
from train.options import add_label_arguments, command_line, new_parser
from train.studies.finetune_loop import BATCHNORM_MODES, FineTuner, LoopSettings, fresh_head

#: The model every fold starts from: the head refit, whose backbone learned from Br35H alone (restored from the
#: repository's history by scripts/fold_start_model.sh).
FOLD_START_MODEL = "brain-mri-resnet50@3688fbe744ee"

#: Images per "pass" in the issue's budgets (120 batches of 32).
PASS_IMAGES = 3840


def parser():
    p = new_parser("brain-mri finetune", __doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="run folder: checkpoints and results")
    p.add_argument("--held-out", required=True, metavar="NAME", help="source to test on (mos, lgg), or none")
    p.add_argument("--model", type=Path,
                   help="start model directory (default: the shipped model; a fold needs one whose backbone never "
                        "saw the held-out source: scripts/fold_start_model.sh)")
    p.add_argument("--data-root", type=Path, default=folds.DATA_ROOT,
                   help="folder holding br35h, nav, mos, lgg*")
    p.add_argument("--source", action="append", metavar="NAME=DIR[,DIR...]",
                   help="a source and its folders (repeat; replaces the default br35h, mos, lgg in three sequences)")
    p.add_argument("--trainable-from", default="conv4", choices=("conv2", "conv3", "conv4", "conv5"),
                   help="first backbone stage trained")
    p.add_argument("--batchnorm", default="frozen", choices=BATCHNORM_MODES,
                   help="the trained stages' BatchNorm: frozen statistics, or trained on each balanced batch")
    p.add_argument("--images", type=int, default=3 * PASS_IMAGES, help="augmented images after the warm-up")
    p.add_argument("--warmup-images", type=int, default=1920, help="images for training the fresh head alone")
    p.add_argument("--keep-head", action="store_true",
                   help="keep the start model's head instead of a fresh one (only with --held-out none)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (constant)")
    p.add_argument("--warmup-lr", type=float, default=1e-3, help="Adam learning rate of the head's warm-up")
    p.add_argument("--ema", type=float, default=0.99, help="momentum of the weights' average per step; 0 = none")
    p.add_argument("--no-intensity-maps", dest="intensity_maps", action="store_false",
                   help="leave out the random non-monotonic intensity maps")
    p.add_argument("--no-gin", dest="gin", action="store_false", help="leave out GIN random convolutions")
    p.add_argument("--max-minutes", type=float, help="stop cleanly at a checkpoint before this many minutes")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--val-split", type=float, default=0.1, help="validation share of the training sources")
    p.add_argument("--val-cap", type=int, default=150, help="validation scans scored per (source, class)")
    p.add_argument("--test-cap", type=int, default=300, help="held-out scans scored per (folder, class)")
    p.add_argument("--bn-images", type=int, default=1152,
                   help="balanced unaugmented training scans for re-estimating BatchNorm statistics")
    p.add_argument("--min-outline", nargs="+", type=outline_rule, default=[], metavar="FOLDER=PX",
                   help="leave out of training the tumour slices of data folder FOLDER whose outline covers fewer "
                        "than PX pixels (its manifest.csv gives mask_area_px), e.g. lgg-t1pre=1000 lgg-t1post=1000: "
                        "LGG's outlines are drawn on FLAIR and mark slices whose lesion T1 hardly shows; validation "
                        "and test keep every slice")
    p.add_argument("--seed", type=int, default=0, help="seed of the training (and of the split, unless --split-seed)")
    p.add_argument("--split-seed", type=int, help="seed of the validation, test and BatchNorm samples (default: "
                                                  "--seed); keep it to score a second --seed on the same slices")
    p.add_argument("--cache-dir", type=Path, help="crop cache (default ~/.cache/brain-mri/crops)")
    p.add_argument("--workers", type=int, default=1, help="processes for cropping")
    add_label_arguments(p)
    return p


def augmentation(intensity_maps: bool, gin: bool):
    """The recipe's geometry and brightness, then the appearance stack (module docstring): uint8 HxW -> uint8 HxW."""
    from core.recipe import AUGMENTATION as A
    from train.transforms.appearance import STANDARD, RandomAppearance
    from train.transforms.augment import Compose, RandomAffine, RandomBrightness
    from train.transforms.intensity_maps import RandomIntensityMap, RandomShallowConv

    steps = [RandomAffine(rotation=A.rotation, shift=A.shift, zoom=A.zoom, shear=A.shear, hflip=A.hflip,
                          vflip=A.vflip), RandomBrightness(*A.brightness), RandomAppearance(STANDARD)]
    if gin:
        steps.append(RandomShallowConv(p=0.3))
    if intensity_maps:
        steps.append(RandomIntensityMap(p=0.5))
    return Compose(steps)


def capped(indices: np.ndarray, keys: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """At most `cap` of `indices` per distinct key (seeded), sorted."""
    if cap is None:
        return np.sort(indices)
    rng = np.random.default_rng(seed)
    chosen = [indices[keys == key] for key in sorted(set(keys.tolist()))]
    return np.sort(np.concatenate([c if len(c) <= cap else rng.choice(c, cap, replace=False) for c in chosen]))


def outline_rule(text: str) -> tuple[str, int]:
    """'lgg-t1pre=1000' -> ('lgg-t1pre', 1000); argparse reports a malformed rule as a usage error."""
    import argparse

    folder, _, pixels = text.partition("=")
    if not folder or not pixels.isdigit():
        raise argparse.ArgumentTypeError(f"give FOLDER=PIXELS, e.g. lgg-t1pre=1000. Received: {text!r}")
    return folder, int(pixels)


def outlined_enough(pool, indices: np.ndarray, rules: dict[str, int]) -> np.ndarray:
    """bool (len(indices),): False for each tumour slice of a folder in `rules` whose outline (mask_area_px in the
    folder's manifest.csv) covers fewer pixels than the rule's; True for everything else."""
    from train.data.discover import MANIFEST, slice_facts_of

    paths = [Path(pool.samples[index].path) for index in indices]
    ruled = [k for k, (path, index) in enumerate(zip(paths, indices))
             if pool.labels[index] == 1 and folder_of(str(path)) in rules]
    keep = np.ones(len(indices), bool)
    for k, facts in zip(ruled, slice_facts_of([paths[k] for k in ruled])):
        folder = folder_of(str(paths[k]))
        if facts is None:
            raise DataError(f"--min-outline {folder}: {paths[k].parents[1]} has no {MANIFEST} with patient, slice "
                            f"and mask_area_px columns; name a folder with outlines (lgg, lgg-t1pre, lgg-t1post).")
        keep[k] = facts[1] >= rules[folder]
    return keep


@dataclass(frozen=True)
class SplitSettings:
    """How a run's scans are split: validation share and caps per (source, class), the held-out test's cap per
    (folder, class) (None: every kept slice), BatchNorm re-estimation images, seed, dHash near-copy bits."""

    val_split: float = 0.1
    val_cap: int | None = 150
    test_cap: int | None = 300
    bn_images: int = 1152
    seed: int = 0
    near_threshold: int = dedup.NEAR_THRESHOLD
    min_outline: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_args(cls, args) -> "SplitSettings":
        values = {name: getattr(args, name) for name in cls.__dataclass_fields__}
        if getattr(args, "split_seed", None) is not None:
            values["seed"] = args.split_seed
        values["min_outline"] = tuple(sorted(dict(values["min_outline"]).items()))
        return cls(**values)


def make_split(pool, held_out: str, settings: SplitSettings) -> dict[str, np.ndarray]:
    """{'train', 'val', 'test', 'bn', 'small_outlines'}: pool indices. Test = the held-out source's kept slices
    (copies of the training sources removed), capped per (folder, class); for none,
    train.studies.refit_final.three_way_split's test split (whole groups). Validation is capped per (source,
    class); bn is a balanced training sample.
    small_outlines: the tumour slices --min-outline took out of train (validation and test keep theirs)."""
    from train.studies.refit_final import three_way_split

    labels, sources = pool.labels, pool.sources
    cells = np.array([f"{s}/{l}" for s, l in zip(sources, labels)])
    if held_out == "none":
        parts = three_way_split(pool.groups, labels, settings.val_split, settings.seed)
        train, val, test = (np.flatnonzero(parts == name) for name in ("train", "val", "test"))
    else:
        prepared = folds.make_fold(pool, held_out, cap=None, test_cap=None, val_split=settings.val_split,
                                   seed=settings.seed, near_threshold=settings.near_threshold)
        where = {str(s.path): i for i, s in enumerate(pool.samples)}
        test = np.array([where[p] for p in prepared.path[prepared.split == "test"]], dtype=int)
        keys = np.array([f"{folder_of(str(pool.samples[i].path))}/{labels[i]}" for i in test])
        test = capped(test, keys, settings.test_cap, settings.seed)
        training = np.flatnonzero(sources != held_out)
        held = dedup.grouped_split(pool.groups[training], labels[training], settings.val_split, settings.seed)
        train, val = training[~held], training[held]
    if settings.min_outline:
        rules = dict(settings.min_outline)
        named = {folder_of(str(pool.samples[i].path)) for i in train}
        unknown = sorted(set(rules) - named)
        if unknown:
            raise DataError(f"--min-outline names {', '.join(unknown)}, which no training slice is in. "
                            f"Training folders: {', '.join(sorted(named))}.")
        kept = outlined_enough(pool, train, rules)
        train, small = train[kept], train[~kept]
    else:
        small = np.array([], dtype=int)
    bn = capped(train, cells[train], max(1, settings.bn_images // len(set(cells[train].tolist()))), settings.seed + 1)
    return {"train": train, "val": capped(val, cells[val], settings.val_cap, settings.seed), "test": test, "bn": bn,
            "small_outlines": small}


def backbone_sources(card) -> set[str]:
    """Sources a model's card records its backbone as fine-tuned on (`fine_tuning` entry, written by
    finetune-card): its data's sources less the run's held-out one; empty for a card without fine-tuning."""
    tuning = card.extra.get("fine_tuning")
    if not tuning:
        return set()
    sources = card.data.get("sources", []) if isinstance(card.data, dict) else []
    return set(sources) - {tuning.get("settings", {}).get("held_out", "none")}


def check_blind_start(card, held_out: str) -> None:
    """Raise DataError when a fold's start model has a backbone fine-tuned on the source the fold holds out: the
    fold would then be tested on a source it has seen, and its numbers would not be leave-one-source-out."""
    if held_out != "none" and held_out in backbone_sources(card):
        raise DataError(
            f"The start model {card.model_id} has a backbone fine-tuned on {held_out} (its card's fine_tuning), "
            f"so a fold holding out {held_out} would be tested on a source it has seen. Start the fold from a model "
            f"whose backbone never saw {held_out}: `bash scripts/fold_start_model.sh DIR` restores the head refit "
            f"{FOLD_START_MODEL} (backbone trained on Br35H alone) from the repository's history; then pass --model "
            "DIR.")


def fingerprint(start_sha: str, pool, split: dict, held_out: str, intensity_maps: bool, gin: bool,
                keep_head: bool = False) -> str:
    """16 hex digits naming what a checkpoint belongs to: start weights, the split's scans, the held-out source,
    the augmentation switches and whether the head was kept (a resume with any of them changed is refused)."""
    digest = hashlib.sha256(start_sha.encode())
    for name in ("train", "val", "test"):
        digest.update(name.encode() + "".join(pool.entries[i].pixel_sha for i in split[name]).encode())
    # The kept head is appended only when set, so checkpoints of runs with a fresh head keep their fingerprint.
    digest.update(f"{held_out}:{intensity_maps}:{gin}{':kept-head' if keep_head else ''}".encode())
    return digest.hexdigest()[:16]


def loop_settings(args) -> LoopSettings:
    return LoopSettings(trainable_from=args.trainable_from, batchnorm=args.batchnorm, batch_size=args.batch_size,
                        lr=args.lr, warmup_lr=args.warmup_lr,
                        warmup_steps=args.warmup_images // args.batch_size, steps=args.images // args.batch_size,
                        ema=args.ema, seed=args.seed, checkpoint_minutes=args.checkpoint_minutes)


def run(args, log=print) -> dict | None:
    """Train (or resume) the run; evaluate and write the results when it is complete. Returns results.json's
    payload, or None when the run paused before its last step."""
    import keras

    from core.model.classifier import load_classifier

    classifier = load_classifier(args.model)
    check_blind_start(classifier.card, args.held_out)
    sources = folds.resolve_sources(args.data_root, folds.parse_sources(args.source), defaults=folds.ALL_SEQUENCES)
    pool = folds.build_pool(sources, classifier.input_size, cache_dir=args.cache_dir, workers=args.workers,
                            near_threshold=args.near_threshold, negative_classes=args.negative_classes, log=log)
    if args.held_out != "none" and args.held_out not in pool.source_names():
        raise DataError(f"--held-out must be none or one of {', '.join(pool.source_names())}. "
                        f"Received: {args.held_out!r}")
    split = make_split(pool, args.held_out, SplitSettings.from_args(args))
    model, settings = classifier.model, loop_settings(args)
    keras.utils.set_random_seed(args.seed)
    if not args.keep_head:
        fresh_head(model, args.seed)
    crops = np.stack([pool.entries[i].crop for i in split["train"]])
    cells = np.array([f"{pool.sources[i]}/{pool.labels[i]}" for i in split["train"]])
    if len(split["small_outlines"]):
        log(f"--min-outline left {len(split['small_outlines'])} tumour slices with small outlines out of training.")
    log(f"Training on {len(crops)} scans in {len(set(cells.tolist()))} cells; {settings.total_steps} steps of "
        f"{settings.batch_size} ({settings.warmup_steps} warm-up); held out: {args.held_out}.")
    tuner = FineTuner(model, crops, pool.labels[split["train"]], cells, augmentation(args.intensity_maps, args.gin),
                      settings, args.out, fingerprint(classifier.card.weights_sha256, pool, split, args.held_out,
                                                      args.intensity_maps, args.gin, args.keep_head), log=log)
    if not tuner.run(max_minutes=args.max_minutes, resume=args.resume):
        return None
    from train.studies.finetune_eval import evaluate_variants, write_results

    results, scores = evaluate_variants(tuner, pool, split, args.held_out, args.data_root, args.seed, log=log)
    results.update({"command": command_line("finetune"), "start_model":
                    classifier.model_id, "settings": {**vars(settings), "intensity_maps": args.intensity_maps,
                                                      "gin": args.gin, "held_out": args.held_out,
                                                      "keep_head": args.keep_head,
                                                      "split_seed": SplitSettings.from_args(args).seed,
                                                      "min_outline": dict(args.min_outline)},
                    "images_seen": settings.total_steps * settings.batch_size,
                    "history": tuner.history})
    write_results(args.out, results, scores, tuner)
    from train.studies.finetune_strata import stratify_run

    try:  # a diagnostic: the results above stand without it
        if stratify_run(args.out, args.data_root) is not None:
            log(f"The test slices by position in the series and lesion size: {args.out / 'strata.md'}.")
    except (DataError, ValueError, KeyError, OSError) as error:
        log(f"No strata for this run ({error}); brain-mri finetune-strata --run {args.out} --data-root DIR.")
    return results


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    started = time.time()
    problems = [f"--{name.replace('_', '-')} must be at least {low}. Received: {getattr(args, name)}"
                for name, low in (("images", 0), ("warmup_images", 0), ("batch_size", 2), ("bn_images", 0),
                                  ("val_cap", 2), ("test_cap", 2), ("workers", 1)) if getattr(args, name) < low]
    if args.max_minutes is not None and args.max_minutes <= 0:
        problems.append(f"--max-minutes must be positive. Received: {args.max_minutes}")
    if args.keep_head and args.held_out != "none":
        problems.append(f"--keep-head needs --held-out none: the start model's head was fitted on every source, "
                        f"{args.held_out} included. Received: --held-out {args.held_out}")
    if not 0 < args.val_split < 0.5:
        problems.append(f"--val-split must be between 0 and 0.5. Received: {args.val_split}")
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2
    try:
        results = run(args, log=lambda text: print(text, flush=True))
    except (DataError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if results is None:
        print(f"Paused after {time.time() - started:.0f} s; continue with the same command and --resume.")
        return 0
    print((args.out / "results.md").read_text(), end="")
    print(f"Finished in {time.time() - started:.0f} s. Results in {args.out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
