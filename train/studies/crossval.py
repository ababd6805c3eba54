"""`brain-mri crossval`: leave-one-source-out evidence, as one command.

    brain-mri crossval --out RUN_DIR [--profile small|full] [--data-root DIR | --source NAME=DIR[,DIR...]...]
        [--held-out NAME...] [--balance source-class] [--appearance standard] [--normalise brain] [--resume]
    brain-mri crossval --out BUNDLE_DIR --export-folds [--jpeg-quality Q]   (all folds in one file, no training)
    brain-mri crossval --out RUN_DIR --bundles BUNDLE_DIR                    (train those folds elsewhere)

For each source: train on the others, test on it with every copy of a training scan removed, the
threshold chosen on validation drawn from the training sources (whole duplicate groups and LGG
patients on one side); see train.data.folds. RUN_DIR ends with crossval.json (settings, each fold's per-scan
scores and the table computed from them), crossval.csv, crossval.md, crossval.png, crossval_roc.png,
and folds/SOURCE/ (each a `python -m train` run directory plus fold.json).

Profiles: `small` (64 px, at most 150 scans per (source, class) cell, 300 test scans per class, 5
epochs, batch 32, BatchNormalization momentum 0.9 so that 60 steps from random initialisation leave
settled statistics: minutes per fold on 2 idle CPU cores) compares training choices without a GPU; `full`
(224 px, every scan, the shipped model's optimisation: Adam 1e-3, batch 64, up to 60 epochs, patience
12) is for a GPU. Every option given explicitly overrides the profile.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.recipe import STAGES, Optimisation
from train import report
from train.data import dedup, folds
from train.data.discover import DataError
from train.options import (
    add_augmentation_arguments,
    add_generalisation_arguments,
    add_label_arguments,
    command_line,
    new_parser,
    run_guarded,
)
from train.settings import RunSettings, augmentation_of, generalisation_of, picked
from train.studies.crossval_table import write_table

#: The one file --export-folds writes: every fold, each scan's crop stored once (see export).
FOLDS_BUNDLE = "folds.npz"
#: The shared data sets, beside the repository.
DATA_ROOT = folds.DATA_ROOT


@dataclass(frozen=True)
class Profile:
    """Data sizes and optimisation of a cross-validation profile (cap: scans per (source, class) cell of the
    training sources; test_cap: scans per class of the held-out source; None = all)."""

    image_size: int
    cap: int | None
    test_cap: int | None
    val_split: float
    checkpoint_every: int
    optimisation: Optimisation
    bn_momentum: float | None = None


PROFILES = {
    "small": Profile(64, 150, 300, 0.2, 5, Optimisation(weights="none", epochs=5, batch_size=32, lr=1e-3,
                                                        patience=3, lr_patience=2), bn_momentum=0.9),
    "full": Profile(224, None, None, 0.1, 5, Optimisation(weights="none", epochs=60, batch_size=64, lr=1e-3,
                                                         patience=12, lr_patience=4)),
}


def parser():
    p = new_parser("brain-mri crossval", __doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the results (or bundles)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="small", help="sizes and optimisation")
    p.add_argument("--data-root", type=Path, default=DATA_ROOT, help="folder holding br35h, nav, mos, lgg")
    p.add_argument("--source", action="append", metavar="NAME=DIR[,DIR...]",
                   help="a source and its folders (repeat; replaces the default br35h, mos, lgg)")
    p.add_argument("--held-out", nargs="+", metavar="NAME", help="the folds to run (default: every source)")
    p.add_argument("--bundles", type=Path, metavar="DIR", help="train on DIR/folds.npz from --export-folds")
    p.add_argument("--export-folds", action="store_true", help="write OUT/folds.npz (every fold) and stop")
    p.add_argument("--jpeg-quality", type=int, metavar="Q", help="with --export-folds: store crops as JPEG")
    sizes = p.add_argument_group("data sizes (default: the profile's)")
    sizes.add_argument("--image-size", type=int, help="input side in pixels")
    sizes.add_argument("--cap", type=int,
                       help="most scans per (source, class) cell of the training sources; 0 = all")
    sizes.add_argument("--test-cap", type=int, help="most scans per class of the held-out source; 0 = all")
    sizes.add_argument("--val-split", type=float, help="fraction of the training scans held out for validation")
    opt = p.add_argument_group("optimisation (default: the profile's)")
    for f in dataclasses.fields(Optimisation):
        kind = str if f.name == "weights" else type(f.default)
        opt.add_argument(f"--{f.name.replace('_', '-')}", type=kind,
                         help="as in python -m train (default: the profile's)")
    opt.add_argument("--trainable-from", choices=STAGES, help="first trainable stage (default: the recipe's rule)")
    add_augmentation_arguments(p)
    add_generalisation_arguments(p)
    add_label_arguments(p)
    run = p.add_argument_group("running")
    run.add_argument("--seed", type=int, default=0, help="seed for caps, splits, initialisation and augmentation")
    run.add_argument("--workers", type=int, default=2, help="processes for cropping and threads for augmentation")
    run.add_argument("--cache-dir", type=Path,
                     help="crop cache (default: $BRAIN_MRI_CACHE or ~/.cache/brain-mri/crops)")
    run.add_argument("--cpu-replicas", type=int, default=1, help="TensorFlow only: split the CPU into replicas")
    run.add_argument("--checkpoint-every", type=int, help="checkpoint every N epochs (default: the profile's)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted cross-validation in --out")
    run.add_argument("--keep-models", action="store_true", help="save each fold's model (folds/SOURCE/model)")
    run.add_argument("--keep-checkpoints", action="store_true", help="keep each finished fold's checkpoint")
    return p


@dataclass(frozen=True)
class CrossvalJob:
    """Where a cross-validation reads and writes, and how it runs (what it trains is its RunSettings and plan).

    out: run folder; sources: {name: [folders]} from --source, or None for the folders under data_root;
    bundles: folder holding folds.npz (train those folds instead of building them); held_out: the folds to run
    (None = every source); resume / export_folds / keep_models / keep_checkpoints: the switches of the same names.
    """

    out: Path
    profile: str = "small"
    data_root: Path | None = None
    sources: dict[str, list[str]] | None = None
    bundles: Path | None = None
    held_out: tuple[str, ...] | None = None
    cache_dir: Path | None = None
    workers: int = 2
    cpu_replicas: int = 1
    near_threshold: int = dedup.NEAR_THRESHOLD
    negative_classes: tuple[str, ...] = ()
    resume: bool = False
    export_folds: bool = False
    jpeg_quality: int | None = None
    keep_models: bool = False
    keep_checkpoints: bool = False

    @classmethod
    def from_args(cls, args) -> "CrossvalJob":
        """From the parsed command line (raises DataError for a malformed --source)."""
        fields = {name: getattr(args, name) for name in cls.__dataclass_fields__ if name != "sources"}
        fields["held_out"] = tuple(args.held_out) if args.held_out else None
        fields["negative_classes"] = tuple(args.negative_classes)
        return cls(sources=folds.parse_sources(args.source), **fields)


def plan_of(args) -> dict:
    """The profile's sizes with the explicit options applied: image_size, cap, test_cap, val_split,
    checkpoint_every (cap and test_cap None = every scan)."""
    profile = PROFILES[args.profile]
    plan = {name: getattr(profile, name) for name in ("image_size", "cap", "test_cap", "val_split", "checkpoint_every")}
    plan.update({name: getattr(args, name) for name in plan if getattr(args, name) is not None})
    for name in ("cap", "test_cap"):
        plan[name] = plan[name] or None  # 0 = all
    return plan


def settings_of(args, plan: dict) -> RunSettings:
    """RunSettings of the cross-validation (each fold adds its held-out source to `data`)."""
    optimisation = picked(Optimisation, args, base=PROFILES[args.profile].optimisation)
    sources = folds.parse_sources(args.source)
    data = {"crossval": {"profile": args.profile, "sources": sources or str(args.data_root),
                         "bundles": None if args.bundles is None else str(args.bundles),
                         **{k: plan[k] for k in ("cap", "test_cap", "val_split")}},
            "negative_classes": list(args.negative_classes)}
    try:
        generalisation = generalisation_of(args)
        if generalisation["bn_momentum"] is None:
            generalisation["bn_momentum"] = PROFILES[args.profile].bn_momentum
        return RunSettings(optimisation=optimisation, augmentation=augmentation_of(args),
                           trainable_from=args.trainable_from or "", image_size=plan["image_size"], seed=args.seed,
                           near_threshold=args.near_threshold, data=data, **generalisation)
    except ValueError as error:
        raise DataError(str(error)) from error


def check_arguments(job: CrossvalJob, plan: dict, settings: RunSettings) -> None:
    """Errors that need no data and no model."""
    values = {**dataclasses.asdict(settings.optimisation), **plan, "workers": job.workers,
              "cpu_replicas": job.cpu_replicas}
    for name in ("epochs", "batch_size", "patience", "workers", "cpu_replicas", "checkpoint_every", "cap", "test_cap"):
        value = values[name]
        if value is not None and value < 1:
            raise DataError(f"--{name.replace('_', '-')} must be at least 1. Received: {value}")
    if not 0 < plan["val_split"] < 1:
        raise DataError(f"--val-split must be between 0 and 1. Received: {plan['val_split']}")
    if job.bundles is not None and (job.sources or job.export_folds):
        raise DataError("--bundles already holds the folds: leave out --source and --export-folds.")
    if job.resume and job.export_folds:
        raise DataError("--resume continues training; --export-folds trains nothing.")
    saved = job.out / "crossval_settings.json"
    if not job.resume and not job.export_folds and (saved.exists() or (job.out / "folds").exists()):
        raise DataError(f"{job.out} already holds a cross-validation. Choose another --out, or add --resume.")
    if job.resume and not saved.is_file():
        raise DataError(f"Nothing to resume in {job.out}: it holds no crossval_settings.json. Start without --resume.")


def _folds(job: CrossvalJob, plan: dict, settings: RunSettings, log):
    """(held-out names, a function name -> Prepared): from --bundles, or built from one pool of the sources."""
    if job.bundles is not None:
        bundle = job.bundles / FOLDS_BUNDLE
        if not bundle.is_file():
            raise DataError(f"No {FOLDS_BUNDLE} in {job.bundles}. Write it with brain-mri crossval "
                            "--export-folds --out DIR.")
        return list(job.held_out or bundled_folds(bundle)), lambda name: load_fold(bundle, name)
    sources = folds.resolve_sources(job.data_root, job.sources)
    pool = folds.build_pool(sources, plan["image_size"], cache_dir=job.cache_dir, workers=job.workers,
                            near_threshold=job.near_threshold, negative_classes=job.negative_classes, log=log)
    names = list(job.held_out or pool.source_names())
    unknown = set(names) - set(pool.source_names())
    if unknown:
        raise DataError(f"--held-out names unknown sources: {', '.join(sorted(unknown))}. "
                        f"Sources: {', '.join(pool.source_names())}.")
    return names, lambda name: folds.make_fold(pool, name, cap=plan["cap"], test_cap=plan["test_cap"],
                                               val_split=plan["val_split"], seed=settings.seed,
                                               near_threshold=settings.near_threshold)


def export(names, make, out: Path, jpeg_quality, log) -> None:
    """Every fold in one bundle, OUT/folds.npz: each scan's crop once, and per fold the scans it uses
    (`order__SOURCE`, indices), their splits (`split__SOURCE`) and its report (`report__SOURCE`, JSON)."""
    import json

    import numpy as np

    from train.data.splits import Prepared, save_bundle

    made = {name: make(name) for name in names}
    union = {}  # path -> (fold, row): the first fold that holds each scan
    for name, fold in made.items():
        for row, path in enumerate(fold.path.tolist()):
            union.setdefault(path, (name, row))
    paths = sorted(union)
    where = {path: i for i, path in enumerate(paths)}
    def take(field):
        return np.stack([getattr(made[union[p][0]], field)[union[p][1]] for p in paths])
    patients = take("patient") if all(f.patient is not None for f in made.values()) else None
    pool = Prepared(crops=take("crops"), labels=take("labels"), split=np.array(["pool"] * len(paths)),
                    source=take("source"), path=np.array(paths), patient=patients,
                    report={"folds": list(names), "scans": len(paths)})
    extra = {}
    for name, fold in made.items():
        extra[f"order__{name}"] = np.array([where[p] for p in fold.path.tolist()], dtype=np.int64)
        extra[f"split__{name}"] = fold.split
        extra[f"report__{name}"] = np.array(json.dumps(fold.report))
    path = save_bundle(pool, out / FOLDS_BUNDLE, jpeg_quality, extra=extra)
    log(f"Wrote {len(made)} folds ({', '.join(made)}; {len(paths)} scans) to {path} "
        f"({path.stat().st_size / 1e6:.1f} MB).")


def bundled_folds(bundle: Path) -> list[str]:
    """The held-out sources of a bundle written by :func:`export`, without decoding its crops."""
    import json

    import numpy as np

    with np.load(bundle, allow_pickle=False) as stored:
        return json.loads(str(stored["report"]))["folds"]


def load_fold(bundle: Path, name: str):
    """The Prepared fold `name` from a bundle written by :func:`export`."""
    import json

    import numpy as np

    from train.data.splits import Prepared, load_bundle

    pool = load_bundle(bundle)
    with np.load(bundle, allow_pickle=False) as stored:
        if f"order__{name}" not in stored.files:
            raise DataError(f"{bundle} holds no fold {name!r}; it holds {', '.join(pool.report['folds'])}.")
        order, split = stored[f"order__{name}"], stored[f"split__{name}"]
        report = json.loads(str(stored[f"report__{name}"]))
    report["bundle_encoding"] = pool.report.get("bundle_encoding")
    return Prepared(crops=pool.crops[order], labels=pool.labels[order], split=split, source=pool.source[order],
                    path=pool.path[order], report=report,
                    patient=None if pool.patient is None else pool.patient[order])


def fold_record(prepared, held_out: str, validation: tuple, held_out_test: tuple, threshold: float, epochs: int,
                seconds: float) -> dict:
    """What crossval.json keeps of one fold: counts, copies removed and every per-scan score.

    validation, held_out_test: (int (n,) labels, float (n,) raw probabilities in [0, 1]); threshold: chosen on
    the validation scans; epochs: how many the fold trained (0 for a model kept as it is).
    """
    test = (prepared.split == "test") & (prepared.source == held_out)
    labels, probs = held_out_test
    val_labels, val_probs = validation
    removal = prepared.report["duplicates"][f"test:{held_out}"]
    attributed = prepared.report.get("pool", {}).get("sources", {}).get(held_out, {}).get("copies_of_earlier_sources")
    return {
        "held_out": held_out, "training_sources": prepared.report.get("training_sources"),
        "counts": prepared.report.get("counts"), "test_after_removal": prepared.report["test_after_removal"],
        "copies_removed": {"exact": removal["exact"], "near": removal["near"],
                           "attributed": 0 if attributed is None else attributed["exact"] + attributed["near"]},
        "threshold": threshold,
        "validation": {"labels": [int(v) for v in val_labels], "probs": [float(v) for v in val_probs]},
        "test": {"labels": [int(v) for v in labels], "probs": [float(v) for v in probs],
                 "paths": [str(p) for p in prepared.path[test]]},
        "epochs": epochs, "seconds": round(seconds, 1),
    }


def write_split(path: Path, prepared) -> Path:
    """One row per scan of a fold: path, split (train / val / test), source, label, patient ("" unknown)."""
    import csv
    import io

    from core.io.atomic import write_atomic

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "split", "source", "label", "patient"])
    patients = prepared.patient if prepared.patient is not None else [""] * len(prepared.labels)
    writer.writerows(zip(prepared.path, prepared.split, prepared.source, prepared.labels.tolist(), patients))
    return write_atomic(path, buffer.getvalue())


def describe(settings: RunSettings, profile: str) -> str:
    """A short name of the variant, e.g. 'small profile, balance source-class, appearance augmentation'."""
    parts = [f"{profile} profile"]
    if settings.balance != "none":
        parts.append(f"balance {settings.balance}")
    if settings.appearance.enabled:
        parts.append("appearance augmentation")
    if settings.normalise != "none":
        parts.append(f"normalise {settings.normalise}")
    return ", ".join(parts if len(parts) > 1 else parts + ["recipe augmentation, no balancing"])


def _run_fold(name, prepared, settings, job: CrossvalJob, plan, placement, log) -> dict:
    """Train and score one fold in OUT/folds/NAME; returns its record (also written as fold.json)."""
    import keras

    from train.fit import Interrupted
    from train.run import fit_prepared

    fold_dir = job.out / "folds" / name
    fold_settings = dataclasses.replace(settings, data={**settings.data, "held_out": name})
    keras.utils.set_random_seed(settings.seed)
    started = time.time()
    try:
        outcome = fit_prepared(prepared, fold_settings, fold_dir, placement,
                               resume=(fold_dir / "checkpoint" / "state.json").is_file(), workers=job.workers,
                               checkpoint_every=plan["checkpoint_every"], save_model=job.keep_models,
                               command=command_line("crossval"),
                               log=lambda text: log(f"[{name}] {text}"))
    except Interrupted as stop:
        raise KeyboardInterrupt(str(stop)) from stop
    record = fold_record(prepared, name, outcome.scores["validation"], outcome.scores[f"test:{name}"],
                         outcome.thresholds["validation"], len(outcome.history), time.time() - started)
    write_split(fold_dir / "split.csv", prepared)
    report.write_json(fold_dir / "fold.json", record)
    if not job.keep_checkpoints:
        shutil.rmtree(fold_dir / "checkpoint", ignore_errors=True)
    return record


def run(job: CrossvalJob, plan: dict, settings: RunSettings, log=print) -> dict:
    """Every fold (skipping those already finished when resuming), then the table; returns crossval.json's payload."""
    import json

    names, make = _folds(job, plan, settings, log)
    if job.export_folds:  # no model: the backend is never started
        export(names, make, job.out, job.jpeg_quality, log)
        return {}
    from train import distribute

    placement = distribute.place(job.cpu_replicas)
    try:
        distribute.check_batch_size(settings.optimisation.batch_size, placement.replicas)
    except ValueError as error:
        raise DataError(str(error)) from error
    log(f"Backend {placement.backend}: {placement.description}; {placement.replicas} replica(s).")
    saved = job.out / "crossval_settings.json"
    if job.resume:
        changed = settings.differences(json.loads(saved.read_text())["settings"])
        if changed:
            raise DataError(f"--resume needs the interrupted run's settings; these differ: {', '.join(changed)}.")
    else:
        report.write_json(saved, {"settings": settings.to_dict(), "plan": plan, "held_out": names})
    command = command_line("crossval")
    payload = {"title": describe(settings, job.profile), "command": command, "seed": settings.seed,
               "plan": plan, "settings": settings.to_dict(), "folds": []}
    for name in names:
        done = job.out / "folds" / name / "fold.json"
        if job.resume and done.is_file():
            log(f"[{name}] already finished; kept.")
            payload["folds"].append(json.loads(done.read_text()))
        else:
            payload["folds"].append(_run_fold(name, make(name), settings, job, plan, placement, log))
        write_table(job.out, payload)  # after every fold, so partial results can be read
    return payload


def _checked_run(args) -> dict:
    plan = plan_of(args)
    settings = settings_of(args, plan)
    job = CrossvalJob.from_args(args)
    check_arguments(job, plan, settings)
    return run(job, plan, settings, log=lambda text: print(text, flush=True))


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    started = time.time()
    code, payload = run_guarded(lambda: _checked_run(args), args.out)
    if code:
        return code
    if payload:
        print((args.out / "crossval.md").read_text(), end="")
    print(f"Finished in {time.time() - started:.0f} s. Results in {args.out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
