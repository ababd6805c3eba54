"""One training run from prepared data to the files in RUN_DIR."""

from __future__ import annotations

import dataclasses

import numpy as np

from core.augment import recipe_augmentation, reference_histogram
from core.model import CARD_FILE, save_classifier
from train import distribute, metrics, report
from train.card import build_card
from train.data import DataError
from train.dataset import load_bundle, prepare
from train.scoring import predict_crops
from train.settings import RunSettings
from train.fit import Interrupted, train
from train.pipeline import EvalBatches, TrainBatches

#: Crops pooled into the reference histogram for histogram matching (a seeded sample of training crops).
REFERENCE_SAMPLE = 500


def _data(args, settings: RunSettings, log):
    if args.prepared is not None:
        prepared = load_bundle(args.prepared)
        if prepared.size != settings.image_size:
            raise DataError(f"The bundle holds {prepared.size} px crops, but --image-size is {settings.image_size}.")
        return prepared
    return prepare(args.train, val_dirs=args.val, val_split=args.val_split, test_dirs=args.test,
                   size=settings.image_size, negative_classes=tuple(args.negative_classes),
                   cache_dir=args.cache_dir, workers=args.workers, seed=args.seed,
                   near_threshold=args.near_threshold, log=log)


def _augmentation(train_crops, settings):
    rng = np.random.default_rng(settings.seed)
    sample = train_crops[rng.choice(len(train_crops), min(REFERENCE_SAMPLE, len(train_crops)), replace=False)]
    return recipe_augmentation(reference_histogram(sample), **dataclasses.asdict(settings.augmentation))


def _write_results(run_dir, model, settings, prepared, history, placement, log):
    """Evaluate, then write metrics, plots, history and (last) the model with its card."""
    # predict_crops passes at most 64 inputs at a time; padding every call to one size that splits evenly
    # over the replicas compiles prediction once and lets JAX's DataParallel shard the last, short batch.
    chunk = -(-64 // placement.replicas) * placement.replicas

    def predict_inputs(x):
        n = len(x)
        size = max(chunk, -(-n // placement.replicas) * placement.replicas)
        x = np.concatenate([x, np.repeat(x[-1:], size - n, axis=0)])
        return np.asarray(model.predict(x, verbose=0, batch_size=chunk))[:n, 0]

    sets = {"validation": prepared.subset("val")}
    sets.update({f"test:{source}": prepared.source_subset("test", source) for source in prepared.test_sources()})
    scores = {name: (labels, predict_crops(predict_inputs, crops)) for name, (crops, labels) in sets.items()}
    threshold = metrics.choose_threshold(*scores["validation"])
    thresholds = {"0.5": 0.5, "validation": threshold}
    results = {name: metrics.evaluate(labels, probs, thresholds, seed=settings.seed)
               for name, (labels, probs) in scores.items()}
    for name, result in results.items():
        auc = "n/a" if result["auc"] is None else f"{result['auc']:.4f} {result['auc_ci95']}"
        log(f"{name}: n={result['scans']} AUC {auc} balanced accuracy at {threshold:.3f}: "
            f"{result['at_validation']['balanced_accuracy']}")

    plots = run_dir / "plots"
    report.write_history(run_dir / "history.csv", history)
    report.write_json(run_dir / "metrics.json", {"thresholds": thresholds, "results": results})
    report.plot_learning_curves(plots / "learning_curves.png", history)
    report.plot_roc(plots / "roc.png", {n: (*scores[n], results[n]["auc"]) for n in results})
    report.plot_reliability(plots / "reliability.png", results)
    for name, result in results.items():
        report.plot_confusion(plots / f"confusion_{report.safe_name(name)}.png", name, result)
    card = build_card(
        name="brain-mri-resnet50", settings=settings, data_report=prepared.report, threshold=threshold,
        threshold_method="Youden's J on the validation set",
        metrics={name: {k: v for k, v in r.items() if k != "reliability"} for name, r in results.items()},
        placement=placement.description,
    )
    save_classifier(model, card, run_dir / "model")
    log(f"Saved the model and {CARD_FILE} to {run_dir / 'model'}.")


def run(args, settings: RunSettings, log=print) -> None:
    """Everything `python -m train` does after its arguments are checked."""
    import keras

    keras.utils.set_random_seed(settings.seed)  # weight initialisation and dropout
    placement = distribute.place(args.cpu_replicas)
    try:
        distribute.check_batch_size(settings.optimisation.batch_size, placement.replicas)
    except ValueError as error:
        raise DataError(str(error)) from error
    log(f"Backend {placement.backend}: {placement.description}; {placement.replicas} replica(s), "
        f"global batch {settings.optimisation.batch_size} ({settings.optimisation.batch_size // placement.replicas} per replica).")
    prepared = _data(args, settings, log)
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "report.json", prepared.report)
    if not args.resume:
        report.write_json(args.out / "run_settings.json", settings.to_dict())
    train_crops, train_labels = prepared.subset("train")
    log(f"Training on {len(train_crops)} scans, validating on {int(np.sum(prepared.split == 'val'))}, "
        f"testing on {int(np.sum(prepared.split == 'test'))} (after de-duplication).")
    train_batches = TrainBatches(train_crops, train_labels, settings.optimisation.batch_size,
                                 _augmentation(train_crops, settings), seed=settings.seed, workers=args.workers)
    val_batches = EvalBatches(*prepared.subset("val"), batch_size=settings.optimisation.batch_size,
                              multiple_of=placement.replicas)
    try:
        model, history = train(settings, train_batches, val_batches, args.out, placement, args.resume, log)
    except Interrupted as stop:
        raise KeyboardInterrupt(str(stop)) from stop
    _write_results(args.out, model, settings, prepared, history, placement, log)
