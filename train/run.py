"""One training run from prepared data to the files in RUN_DIR.

:func:`run` is `python -m train` after its arguments are checked; :func:`fit_prepared`
is the part after the data is prepared, shared with `brain-mri crossval` (one
call per fold, in one process, on one device placement).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.imaging.normalise import normalise_crops, normaliser
from core.model.classifier import CARD_FILE, save_classifier
from train import distribute, metrics, report
from train.card import build_card
from train.data.batches import EvalBatches, TrainBatches
from train.data.discover import DataError
from train.data.splits import Prepared, load_bundle, prepare
from train.fit import Interrupted, train
from train.scoring import predict_crops
from train.settings import RunSettings
from train.transforms.appearance import RandomAppearance
from train.transforms.augment import Compose, recipe_augmentation, reference_histogram

#: Crops pooled into the reference histogram for histogram matching (a seeded sample of training crops).
REFERENCE_SAMPLE = 500


@dataclass
class Outcome:
    """What a finished run measured: thresholds {"0.5", "validation"}, results {set name: metrics.evaluate
    output} and scores {set name: (labels int (n,), probabilities float32 (n,))}, in the prepared order."""

    thresholds: dict
    results: dict
    scores: dict
    history: list


def _data(settings: RunSettings, log, *, bundle: Path | None, train, val, val_split: float, test,
          negative_classes, cache_dir: Path | None, workers: int) -> Prepared:
    """The run's crops and split: a prepared bundle (its crop size must be the settings'), or prepared from the
    train/val/test folders (train.prepare)."""
    if bundle is not None:
        prepared = load_bundle(bundle)
        if prepared.size != settings.image_size:
            raise DataError(f"The bundle holds {prepared.size} px crops, but --image-size is {settings.image_size}.")
        return prepared
    return prepare(train, val_dirs=val, val_split=val_split, test_dirs=test, size=settings.image_size,
                   negative_classes=tuple(negative_classes), cache_dir=cache_dir, workers=workers,
                   seed=settings.seed, near_threshold=settings.near_threshold, log=log)


def augmentation(train_crops, settings: RunSettings) -> Compose:
    """The training transform: the recipe's augmentation, then appearance augmentation and normalisation
    when the settings ask for them. uint8 (s, s) -> uint8 (s, s)."""
    rng = np.random.default_rng(settings.seed)
    sample = train_crops[rng.choice(len(train_crops), min(REFERENCE_SAMPLE, len(train_crops)), replace=False)]
    steps = [recipe_augmentation(reference_histogram(sample), **dataclasses.asdict(settings.augmentation))]
    if settings.appearance.enabled:
        steps.append(RandomAppearance(settings.appearance))
    normalise = normaliser(settings.normalise)
    if normalise is not None:
        steps.append(lambda image, rng: normalise(image))
    return Compose(steps)


def _cells(prepared: Prepared, settings: RunSettings):
    """(source, class) cell per training scan for --balance source-class, else None."""
    if settings.balance != "source-class":
        return None
    train = prepared.split == "train"
    return np.char.add(prepared.source[train].astype(str), np.where(prepared.labels[train] == 1, ":1", ":0"))


def _predictor(model, placement):
    """float32 (n, s, s, 3) inputs -> float32 (n,) probabilities, padded to split evenly over the replicas."""
    # predict_crops passes at most 64 inputs at a time; padding every call to one size that splits evenly
    # over the replicas compiles prediction once and lets JAX's DataParallel shard the last, short batch.
    chunk = -(-64 // placement.replicas) * placement.replicas

    def predict_inputs(x):
        n = len(x)
        size = max(chunk, -(-n // placement.replicas) * placement.replicas)
        x = np.concatenate([x, np.repeat(x[-1:], size - n, axis=0)])
        return np.asarray(model.predict(x, verbose=0, batch_size=chunk))[:n, 0]

    return predict_inputs


def score(model, prepared: Prepared, settings: RunSettings, placement, log=print) -> Outcome:
    """Predict validation and every test source once; threshold (Youden on validation) and metrics."""
    predict_inputs = _predictor(model, placement)
    sets = {"validation": prepared.subset("val")}
    sets.update({f"test:{source}": prepared.source_subset("test", source) for source in prepared.test_sources()})
    scores = {name: (labels, predict_crops(predict_inputs, crops, normalise=settings.normalise))
              for name, (crops, labels) in sets.items()}
    threshold = metrics.choose_threshold(*scores["validation"])
    thresholds = {"0.5": 0.5, "validation": threshold}
    results = {name: metrics.evaluate(labels, probs, thresholds, seed=settings.seed)
               for name, (labels, probs) in scores.items()}
    for name, result in results.items():
        auc = "n/a" if result["auc"] is None else f"{result['auc']:.4f} {result['auc_ci95']}"
        log(f"{name}: n={result['scans']} AUC {auc} balanced accuracy at {threshold:.3f}: "
            f"{result['at_validation']['balanced_accuracy']}")
    return Outcome(thresholds, results, scores, [])


def write_results(run_dir: Path, model, settings, prepared, outcome: Outcome, placement, log, save_model=True,
                  command: str | None = None) -> None:
    """Write metrics, plots, history and (last, unless save_model is False) the model with its card."""
    results, scores = outcome.results, outcome.scores
    plots = run_dir / "plots"
    report.write_history(run_dir / "history.csv", outcome.history)
    report.write_json(run_dir / "metrics.json", {"thresholds": outcome.thresholds, "results": results})
    report.plot_learning_curves(plots / "learning_curves.png", outcome.history)
    report.plot_roc(plots / "roc.png", {n: (*scores[n], results[n]["auc"]) for n in results})
    report.plot_reliability(plots / "reliability.png", results)
    for name, result in results.items():
        report.plot_confusion(plots / f"confusion_{report.safe_name(name)}.png", name, result)
    if not save_model:
        return
    card = build_card(
        name="brain-mri-resnet50", settings=settings, data_report=prepared.report,
        threshold=outcome.thresholds["validation"], threshold_method="Youden's J on the validation set",
        metrics={name: {k: v for k, v in r.items() if k != "reliability"} for name, r in results.items()},
        placement=placement.description, command=command,
    )
    save_classifier(model, card, run_dir / "model")
    log(f"Saved the model and {CARD_FILE} to {run_dir / 'model'}.")


def fit_prepared(prepared: Prepared, settings: RunSettings, run_dir: Path, placement, *, resume=False, workers=1,
                 checkpoint_every=1, save_model=True, command=None, log=print) -> Outcome:
    """Train on the prepared train split, select on val, score val and test; write RUN_DIR's files.

    Raises train.fit.Interrupted when stopped through the testing seam (the checkpoint allows resume).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    report.write_json(run_dir / "report.json", prepared.report)
    if not resume:
        report.write_json(run_dir / "run_settings.json", settings.to_dict())
    train_crops, train_labels = prepared.subset("train")
    log(f"Training on {len(train_crops)} scans, validating on {int(np.sum(prepared.split == 'val'))}, "
        f"testing on {int(np.sum(prepared.split == 'test'))} (after de-duplication).")
    if settings.normalise != "none":
        log(f"Per-scan normalisation '{settings.normalise}' is applied in training and in this run's evaluation; "
            "the app and `python -m core` do not apply it yet and refuse to load the saved model.")
    cells = _cells(prepared, settings)
    if cells is not None:
        log(f"Balanced batches: equal shares of {len(set(cells.tolist()))} (source, class) cells.")
    train_batches = TrainBatches(train_crops, train_labels, settings.optimisation.batch_size,
                                 augmentation(train_crops, settings), seed=settings.seed, workers=workers,
                                 cells=cells)
    val_crops, val_labels = prepared.subset("val")
    val_batches = EvalBatches(normalise_crops(val_crops, settings.normalise), val_labels,
                              batch_size=settings.optimisation.batch_size, multiple_of=placement.replicas)
    model, history = train(settings, train_batches, val_batches, run_dir, placement, resume, log,
                           checkpoint_every=checkpoint_every)
    outcome = score(model, prepared, settings, placement, log)
    outcome.history = history
    write_results(run_dir, model, settings, prepared, outcome, placement, log, save_model, command)
    return outcome


def run(args, settings: RunSettings, log=print) -> None:
    """Everything `python -m train` does after its arguments are checked."""
    import keras

    keras.utils.set_random_seed(settings.seed)  # weight initialisation and dropout
    placement = distribute.place(args.cpu_replicas)
    try:
        distribute.check_batch_size(settings.optimisation.batch_size, placement.replicas)
    except ValueError as error:
        raise DataError(str(error)) from error
    batch = settings.optimisation.batch_size
    log(f"Backend {placement.backend}: {placement.description}; {placement.replicas} replica(s), "
        f"global batch {batch} ({batch // placement.replicas} per replica).")
    prepared = _data(settings, log, bundle=args.prepared, train=args.train, val=args.val, val_split=args.val_split,
                     test=args.test, negative_classes=args.negative_classes, cache_dir=args.cache_dir,
                     workers=args.workers)
    try:
        fit_prepared(prepared, settings, args.out, placement, resume=args.resume, workers=args.workers,
                     checkpoint_every=args.checkpoint_every, log=log)
    except Interrupted as stop:
        raise KeyboardInterrupt(str(stop)) from stop
