"""`brain-mri refit`: keep a trained model's ResNet50 backbone and refit its head on several sources.

    brain-mri refit --out RUN_DIR [--model DIR] [--data-root DIR | --source NAME=DIR[,DIR...]...]
        [--held-out NAME...] [--no-final] [--epochs N] [--balance source-class|none] [--seed S]

Retraining the whole network on every source needs a GPU (`brain-mri crossval --profile full`); the
head does not. Each scan's pooled backbone features (float32 (2048,), the input of the recipe's head) are
computed once at the model's input size and cached (keyed by the backbone's weights and the crops, so a
model whose head was refit reuses them), and the head (Dense 512 relu, BatchNorm, Dropout 0.5,
Dense 1 sigmoid) is fitted on them, starting from the model's own head. Writes to RUN_DIR:

- the leave-one-source-out table, on the same folds as `train.studies.crossval` (copies of training scans removed,
  LGG split by patient, threshold by Youden's J on validation from the training sources):
  crossval.{json,csv,md,png}; each fold's head sees only the other sources. The backbone is shared by
  every fold, so a fold holding out a source the start model trained on (the shipped model: Br35H) is
  not independent; the table says so in its title.
- model/ (unless --no-final): the start model with its head fitted on every source, split by whole group
  (copies, LGG patients) into train, validation (threshold, calibration) and test, with a card that records
  the table and every number of train.studies.refit_final.card_numbers; scores.json holds the validation and test
  scans' raw probabilities those numbers come from. --card-notes FILE adds the card's prose entries.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.model.card import carried_over
from train import metrics
from train.card import versions
from train.data import cache, dedup, folds
from train.data.discover import DataError
from train.options import add_label_arguments, command_line, new_parser
from train.studies import refit_final
from train.studies.crossval import fold_record
from train.studies.crossval_table import write_table

#: The recipe head's layers, in order (core.model.classifier.build_model names them).
HEAD_LAYERS = ("head_dense", "head_bn", "logit")
#: Most weight one scan gets from source-and-class balancing (MOS has 54 normals against 4655 tumours).
MAX_SAMPLE_WEIGHT = 20.0


def parser():
    p = new_parser("brain-mri refit", __doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the table and the model")
    p.add_argument("--model", type=Path, help="start model directory (default: the shipped model)")
    p.add_argument("--data-root", type=Path, default=folds.DATA_ROOT, help="folder holding br35h, nav, mos, lgg")
    p.add_argument("--source", action="append", metavar="NAME=DIR[,DIR...]",
                   help="a source and its folders (repeat; replaces the default br35h, mos, lgg)")
    p.add_argument("--held-out", nargs="+", metavar="NAME", help="the folds to run (default: every source)")
    p.add_argument("--no-final", action="store_true", help="only the table; no model fitted on every source")
    p.add_argument("--keep-head", action="store_true",
                   help="fit nothing: the start model's own head on the same folds (the reference row)")
    p.add_argument("--epochs", type=int, default=40, help="most epochs of head fitting (default 40)")
    p.add_argument("--patience", type=int, default=6, help="epochs without a better validation AUC (default 6)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--balance", choices=("source-class", "none"), default="source-class",
                   help="weight each (source, class) cell equally (default) or each scan equally")
    p.add_argument("--val-split", type=float, default=0.1, help="validation fraction, by whole group")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--card-notes", type=Path, metavar="FILE",
                   help="JSON object of card entries written as given (limitations, intended_use, ...)")
    p.add_argument("--cache-dir", type=Path, help="crop and feature cache (default: the crop cache)")
    p.add_argument("--workers", type=int, default=1, help="processes for cropping")
    add_label_arguments(p)
    return p


@dataclass(frozen=True)
class RefitSettings:
    """What the refit's folds and final fit need (from the command line: `RefitSettings.from_args`).

    val_split: validation share of each class, by whole group, in (0, 0.5); balance: "source-class" or "none";
    lr, epochs, patience: the head's Adam learning rate and early stopping; near_threshold: dHash Hamming bits.
    """

    out: Path
    data_root: Path
    val_split: float = 0.1
    seed: int = 0
    near_threshold: int = dedup.NEAR_THRESHOLD
    balance: str = "source-class"
    keep_head: bool = False
    lr: float = 1e-3
    epochs: int = 40
    patience: int = 6
    card_notes: Path | None = None

    @classmethod
    def from_args(cls, args) -> "RefitSettings":
        return cls(**{name: getattr(args, name) for name in cls.__dataclass_fields__})


def backbone(model):
    """The model up to its pooled features: float32 (n, s, s, 3) inputs -> (n, 2048)."""
    import keras

    return keras.Model(model.input, model.get_layer("max_pool").output)


def pooled_features(model, crops: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """uint8 (n, s, s) cached grey crops -> float32 (n, 2048) pooled backbone features."""
    from train.scoring import predict_crops

    features = backbone(model)
    return predict_crops(lambda inputs: np.asarray(features.predict_on_batch(inputs), np.float32), crops,
                         batch_size).reshape(len(crops), -1)


def backbone_sha(model) -> str:
    """Hex SHA-256 of the backbone's weights (every layer before the pooled features, shapes included):
    the same for every model that shares the backbone, whatever its head."""
    digest = hashlib.sha256()
    for weight in backbone(model).weights:
        value = np.ascontiguousarray(weight.numpy())
        digest.update(f"{weight.path}:{value.shape}:{value.dtype};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def cached_features(model, pool, cache_dir: Path | None, log=print) -> np.ndarray:
    """Pooled features of every pool scan, read from (or written to) the cache, keyed by the backbone's
    weights (backbone_sha, so a refit head reuses them) and the crops."""
    from core.io.atomic import write_atomic

    crops_key = hashlib.sha256("".join(e.pixel_sha for e in pool.entries).encode()).hexdigest()[:16]
    path = Path(cache_dir or cache.default_cache_dir()) / "features" / f"{backbone_sha(model)[:16]}-{crops_key}.npy"
    width = model.get_layer("max_pool").output.shape[-1]
    if path.is_file():
        features = np.load(path)
        if features.shape == (len(pool.entries), width):
            log(f"Read the backbone features of {len(features)} scans from {path}.")
            return features
    started = time.time()
    log(f"Computing the backbone features of {len(pool.entries)} scans...")
    features = pooled_features(model, np.stack([e.crop for e in pool.entries]))
    log(f"Computed the backbone features of {len(features)} scans in {time.time() - started:.0f} s.")
    buffer = io.BytesIO()
    np.save(buffer, features)
    write_atomic(path, buffer.getvalue())
    return features


def balance_weights(sources: np.ndarray, labels: np.ndarray, mode: str) -> np.ndarray:
    """float32 (n,) sample weights: each (source, class) cell the same total (mean 1 before the cap at
    MAX_SAMPLE_WEIGHT), or all 1."""
    weights = np.ones(len(labels), dtype=np.float32)
    if mode == "none":
        return weights
    cells = sorted({(s, int(l)) for s, l in zip(sources.tolist(), labels.tolist())})
    for source, label in cells:
        members = (sources == source) & (labels == label)
        weights[members] = len(labels) / (len(cells) * members.sum())
    return np.minimum(weights, MAX_SAMPLE_WEIGHT)


def head_of(model):
    """A model of the recipe's head alone (inputs float32 (n, 2048)), with `model`'s head weights."""
    import keras

    features = keras.Input((model.get_layer("max_pool").output.shape[-1],), name="pooled")
    x = features
    for layer in model.layers[model.layers.index(model.get_layer("max_pool")) + 1:]:
        x = layer.__class__.from_config(layer.get_config())(x)
    head = keras.Model(features, x)
    for name in HEAD_LAYERS:
        head.get_layer(name).set_weights(model.get_layer(name).get_weights())
    return head


def fit_head(model, train: tuple, val: tuple, settings: RefitSettings, log=print):
    """Fit a copy of `model`'s head on (features, labels, weights) `train`, early-stopped on validation AUC.

    Returns (head, epochs run). Labels are smoothed as the recipe does (0.01).
    """
    import keras

    from core.recipe import Optimisation

    keras.utils.set_random_seed(settings.seed)
    head = head_of(model)
    head.compile(optimizer=keras.optimizers.Adam(settings.lr),
                 loss=keras.losses.BinaryCrossentropy(label_smoothing=Optimisation().label_smoothing),
                 metrics=[keras.metrics.AUC(name="auc")])
    stop = keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=settings.patience,
                                         restore_best_weights=True)
    features, labels, weights = train
    history = head.fit(features, labels.astype(np.float32), sample_weight=weights, batch_size=64,
                       epochs=settings.epochs, validation_data=(val[0], val[1].astype(np.float32)),
                       callbacks=[stop], shuffle=True, verbose=0)
    epochs = len(history.history["loss"])
    log(f"head fitted: {epochs} epochs, best validation AUC {max(history.history['val_auc']):.3f}")
    return head, epochs


def predict_head(head, features: np.ndarray) -> np.ndarray:
    """float32 (n, 2048) features -> float32 (n,) tumour probabilities."""
    return np.asarray(head.predict(features, batch_size=256, verbose=0))[:, 0].astype(np.float32)


def run_fold(model, pool, features: np.ndarray, name: str, settings: RefitSettings, log) -> dict:
    """One leave-one-source-out fold: its head fitted on the other sources; returns its crossval record."""
    started = time.time()
    prepared = folds.make_fold(pool, name, cap=None, test_cap=None, val_split=settings.val_split, seed=settings.seed,
                               near_threshold=settings.near_threshold)
    where = {str(sample.path): i for i, sample in enumerate(pool.samples)}
    index = np.array([where[path] for path in prepared.path])
    split = {part: prepared.split == part for part in ("train", "val", "test")}
    train = (features[index[split["train"]]], prepared.labels[split["train"]],
             balance_weights(prepared.source[split["train"]], prepared.labels[split["train"]], settings.balance))
    val = (features[index[split["val"]]], prepared.labels[split["val"]])
    if settings.keep_head:
        head, epochs = head_of(model), 0
    else:
        head, epochs = fit_head(model, train, val, settings, log=lambda text: log(f"[{name}] {text}"))
    val_probs = predict_head(head, val[0])
    test = (prepared.labels[split["test"]], predict_head(head, features[index[split["test"]]]))
    return fold_record(prepared, name, (val[1], val_probs), test, metrics.choose_threshold(val[1], val_probs),
                       epochs, time.time() - started)


def with_head(model, head):
    """A copy of `model` whose head layers carry `head`'s weights (the backbone untouched)."""
    import keras

    refit = keras.models.clone_model(model)
    refit.set_weights(model.get_weights())
    for name in HEAD_LAYERS:
        refit.get_layer(name).set_weights(head.get_layer(name).get_weights())
    return refit


def _counts(pool, mask: np.ndarray) -> dict:
    return {source: {"tumour": int(np.sum(mask & (pool.sources == source) & (pool.labels == 1))),
                     "no_tumour": int(np.sum(mask & (pool.sources == source) & (pool.labels == 0)))}
            for source in pool.source_names()}


def read_card_notes(path: Path | None) -> dict:
    """The card's prose entries (e.g. limitations, intended_use) from a JSON object file; {} without one."""
    if path is None:
        return {}
    try:
        notes = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"--card-notes {path} is not a readable JSON file: {error}") from error
    if not isinstance(notes, dict):
        raise DataError(f"--card-notes {path} must hold a JSON object of card entries.")
    return notes


def loso_entry(out_dir: Path) -> dict:
    """The card's `leave_one_source_out`: crossval.json's path, summary and rows (AUC, interval, counts,
    threshold, balanced accuracy, sensitivity, specificity), as write_table computed them."""
    keep = ("held_out", "tumour", "no_tumour", "copies_removed", "auc", "auc_low", "auc_high", "threshold",
            "balanced_accuracy", "sensitivity", "specificity")
    table = json.loads((out_dir / "crossval.json").read_text())
    return {"table": str(out_dir / "crossval.json"), "rows": [{k: row[k] for k in keep} for row in table["rows"]],
            "summary": table["summary"],
            "caveat": "the backbone is shared by every fold and was trained on Br35H, so only the other sources' "
                      "rows are independent"}


def fit_final(model, start_card, pool, features: np.ndarray, settings: RefitSettings, log):
    """The start model with its head fitted on every source; returns (keras model, card dict, scores.json).

    Split by train.studies.refit_final.three_way_split; the card's numbers come from
    train.studies.refit_final.card_numbers.
    """
    split = refit_final.three_way_split(pool.groups, pool.labels, settings.val_split, settings.seed)
    parts = {part: split == part for part in ("train", "val", "test")}
    train = (features[parts["train"]], pool.labels[parts["train"]],
             balance_weights(pool.sources[parts["train"]], pool.labels[parts["train"]], settings.balance))
    head, epochs = fit_head(model, train, (features[parts["val"]], pool.labels[parts["val"]]), settings,
                            log=lambda text: log(f"[final] {text}"))
    probs = {part: predict_head(head, features[parts[part]]) for part in ("val", "test")}
    scores = refit_final.scores_payload(pool, split, probs, settings.data_root)
    numbers = refit_final.card_numbers(scores, seed=settings.seed)
    if numbers["calibration"]["slope"] <= 0:
        raise DataError(f"The refit head ranks the validation scans backwards (Platt slope "
                        f"{numbers['calibration']['slope']:.3f}), so no monotone calibration exists and no model "
                        f"was written; the leave-one-source-out table in {settings.out} stands. Check the sources' "
                        "labels, or refit with more --epochs.")
    card = {
        **carried_over(start_card, "head"),  # the start model's own results describe its head, not this one
        "created": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "command": command_line("refit"), "seed": settings.seed,
        "initialisation": f"backbone of {start_card.model_id}, frozen (that model's own start: "
                          f"{start_card.initialisation}); head refit on every source from that model's head",
        "threshold": numbers["threshold"], "threshold_method": "Youden's J on the validation split",
        "data": {"counts_after_deduplication": {part: _counts(pool, parts[part]) for part in parts},
                 "validation": f"{settings.val_split:.0%} of each class for validation and as much "
                               "again for test, by whole group (copies; LGG patients); scores.json",
                 "sources": pool.report["sources"],
                 "near_duplicate_rule": f"dHash 256-bit Hamming <= {settings.near_threshold}"},
        "metrics": numbers["metrics"], "calibration": numbers["calibration"], "external_test": {},
        "head_refit": {"start_model": start_card.model_id, "epochs": epochs, "balance": settings.balance,
                       "lr": settings.lr, "features": "GlobalMaxPooling2D output of the start model (2048)",
                       "versions": versions()},
        "leave_one_source_out": loso_entry(settings.out),
        **read_card_notes(settings.card_notes),
    }
    return with_head(model, head), card, scores


def write_final(model, card: dict, scores: dict, out_dir: Path) -> Path:
    """scores.json beside the table, then out_dir/model (weights, card, calibration_reliability.png)."""
    from core.io.atomic import write_atomic
    from core.model.calibration import Calibration
    from core.model.classifier import save_classifier
    from train.studies.calibrate import RELIABILITY_PLOT, plot_calibration_check

    write_atomic(out_dir / refit_final.SCORES_FILE, json.dumps(scores) + "\n")
    directory = save_classifier(model, card, out_dir / "model")
    plot_calibration_check(directory / RELIABILITY_PLOT, Calibration.from_dict(card["calibration"]),
                           refit_final.check_sets(scores))
    return directory


def run(args, log=print) -> dict:
    """The table (and the final model unless --no-final); returns crossval.json's payload."""
    from core.model.classifier import load_classifier

    settings = RefitSettings.from_args(args)
    classifier = load_classifier(args.model)
    size = classifier.input_size
    sources = folds.resolve_sources(args.data_root, folds.parse_sources(args.source))
    pool = folds.build_pool(sources, size, cache_dir=args.cache_dir,
                            workers=args.workers, near_threshold=args.near_threshold,
                            negative_classes=args.negative_classes, log=log)
    names = args.held_out or pool.source_names()
    unknown = set(names) - set(pool.source_names())
    if unknown:
        raise DataError(f"--held-out names unknown sources: {', '.join(sorted(unknown))}. "
                        f"Sources: {', '.join(pool.source_names())}.")
    features = cached_features(classifier.model, pool, args.cache_dir, log)
    title = (f"{classifier.model_id} as it is (its own head)" if args.keep_head else
             f"head refit on {classifier.model_id}'s frozen backbone (balance {args.balance})")
    payload = {"title": f"{title}; the backbone is shared by every fold",
               "command": command_line("refit"), "seed": args.seed,
               "plan": {"image_size": size, "cap": None, "test_cap": None, "val_split": args.val_split},
               "settings": {k: getattr(args, k) for k in ("epochs", "patience", "lr", "balance", "seed", "keep_head")},
               "start_model": classifier.model_id, "folds": []}
    for name in names:
        payload["folds"].append(run_fold(classifier.model, pool, features, name, settings, log))
        write_table(args.out, payload)
    if not (args.no_final or args.keep_head):
        read_card_notes(args.card_notes)  # a bad notes file fails before the fit, not after
        model, card, scores = fit_final(classifier.model, classifier.card, pool, features, settings, log)
        log(f"Wrote the refit model to {write_final(model, card, scores, args.out)}.")
    return payload


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    started = time.time()
    for name in ("epochs", "patience", "workers"):
        if getattr(args, name) < 1:
            print(f"error: --{name} must be at least 1. Received: {getattr(args, name)}", file=sys.stderr)
            return 2
    if not 0 < args.val_split < 0.5:
        print(f"error: --val-split must be between 0 and 0.5 (validation and test each take that share). "
              f"Received: {args.val_split}", file=sys.stderr)
        return 2
    try:
        run(args, log=lambda text: print(text, flush=True))
    except (DataError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print((args.out / "crossval.md").read_text(), end="")
    print(f"Finished in {time.time() - started:.0f} s. Results in {args.out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
