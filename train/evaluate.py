"""Evaluate a saved model on labelled folders.

    python -m train.evaluate --model MODEL_DIR --data DIR [DIR...]
        [--exclude-duplicates-of DIR...] [--json OUT] [--write-card]

Scans are read, cropped and preprocessed exactly as the app does (through the
crop cache); duplicates of the given training folders are removed first; the
metrics are computed at 0.5 and at the model card's threshold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from train import cache, dedup, metrics
from train.data import NEGATIVE_CLASSES, DataError, discover_all


def predict_crops(predict_inputs, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """uint8 (n, s, s) cached crops -> float32 (n,) probabilities through `predict_inputs`."""
    from core.preprocess import caffe_normalise

    out = [predict_inputs(caffe_normalise(crops[i : i + batch_size])) for i in range(0, len(crops), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def evaluate_sets(predict_inputs, sets: dict[str, tuple[np.ndarray, np.ndarray]], thresholds: dict[str, float],
                  seed: int = 0) -> tuple[dict, dict]:
    """Metrics per named set of (crops, labels); also returns {name: (labels, probs)}."""
    results, scores = {}, {}
    for name, (crops, labels) in sets.items():
        probs = predict_crops(predict_inputs, crops)
        scores[name] = (labels, probs)
        results[name] = metrics.evaluate(labels, probs, thresholds, seed=seed)
    return results, scores


def _parser() -> argparse.ArgumentParser:
    from train.cli import HelpWithDefaults

    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0],
                                     formatter_class=HelpWithDefaults)
    parser.add_argument("--model", required=True, help="model directory (model.keras + model_card.json)")
    parser.add_argument("--data", nargs="+", required=True, help="labelled folders (class subfolders)")
    parser.add_argument("--exclude-duplicates-of", nargs="*", default=[], metavar="DIR",
                        help="training folders: exact and near duplicates of their scans are removed first")
    parser.add_argument("--negative-classes", nargs="+", default=list(NEGATIVE_CLASSES),
                        help="folder names meaning 'no tumour'")
    parser.add_argument("--near-threshold", type=int, default=dedup.NEAR_THRESHOLD,
                        help="largest dHash Hamming distance (of 256) counted as a near duplicate")
    parser.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    parser.add_argument("--write-card", action="store_true",
                        help="record these results as the model card's external test metrics")
    parser.add_argument("--workers", type=int, default=1, help="processes for cropping")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return parser


def run(args) -> dict:
    from core.model import load_classifier

    classifier = load_classifier(args.model)
    size = classifier.input_size
    negatives = tuple(args.negative_classes)
    samples = discover_all(args.data, negatives)
    entries = cache.crop_all([s.path for s in samples], size, workers=args.workers, desc="test scans")
    unreadable = [{"path": str(s.path), "error": e.error} for s, e in zip(samples, entries) if e.error]
    kept = [(s, e) for s, e in zip(samples, entries) if e.error is None]
    report = {"unreadable": unreadable, "duplicates": {}}
    if args.exclude_duplicates_of:
        train_samples = discover_all(args.exclude_duplicates_of, negatives)
        train_entries = [e for e in cache.crop_all([s.path for s in train_samples], size, workers=args.workers,
                                                   desc="training scans") if e.error is None]
        matches = dedup.find_duplicates([e.pixel_sha for _, e in kept], np.stack([e.dhash for _, e in kept]),
                                        [e.pixel_sha for e in train_entries],
                                        np.stack([e.dhash for e in train_entries]), args.near_threshold)
        removed = {m.query for m in matches}
        for source in sorted({s.source for s, _ in kept}):
            members = [i for i, (s, _) in enumerate(kept) if s.source == source]
            found = [m for m in matches if kept[m.query][0].source == source]
            report["duplicates"][source] = {
                "checked": len(members), "exact": sum(m.kind == "exact" for m in found),
                "near": sum(m.kind == "near" for m in found), "kept": len(members) - len(found),
                "near_threshold": args.near_threshold}
        kept = [item for i, item in enumerate(kept) if i not in removed]
    if not kept:
        raise DataError("No readable scans are left to evaluate (after skipping unreadable files and removing "
                        "copies of the training data). Check --data and --exclude-duplicates-of.")
    sets = {}
    for source in sorted({s.source for s, _ in kept}):
        members = [(s, e) for s, e in kept if s.source == source]
        sets[source] = (np.stack([e.crop for _, e in members]), np.array([s.label for s, _ in members]))
    thresholds = {"0.5": 0.5, "card": classifier.threshold}
    results, _ = evaluate_sets(classifier.predict_inputs, sets, thresholds, seed=args.seed)
    return {"model": classifier.model_id, "data": [str(d) for d in args.data],
            "excluded_duplicates_of": [str(d) for d in args.exclude_duplicates_of], "report": report,
            "results": results}


def _summary(outcome: dict) -> str:
    lines = [f"model {outcome['model']}"]
    for source, dup in outcome["report"]["duplicates"].items():
        lines.append(f"{source}: removed {dup['exact']} exact and {dup['near']} near copies of training scans, "
                     f"kept {dup['kept']} of {dup['checked']}")
    for name, r in outcome["results"].items():
        auc = "n/a" if r["auc"] is None else f"{r['auc']:.4f} [{r['auc_ci95'][0]:.4f}, {r['auc_ci95'][1]:.4f}]"
        card = r["at_card"]
        lines.append(f"{name}: n={r['scans']} ({r['tumour']} tumour, {r['no_tumour']} no tumour) AUC {auc} "
                     f"| at {card['threshold']:.3f}: acc {card['accuracy']:.4f} "
                     f"bal.acc {card['balanced_accuracy'] if card['balanced_accuracy'] is None else round(card['balanced_accuracy'], 4)} "
                     f"sens {card['sensitivity']} spec {card['specificity']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        outcome = run(args)
    except (DataError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(_summary(outcome))
    if args.json:
        from train.report import write_json

        write_json(args.json, outcome)
    if args.write_card:
        from train.card import record_external_results

        record_external_results(args.model, outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
