"""Evaluate a saved model on labelled folders.

    brain-mri evaluate --model MODEL_DIR --data DIR [DIR...]
        [--exclude-duplicates-of DIR...] [--json OUT] [--write-card]

Scans are read, cropped and preprocessed exactly as the app does (through the
crop cache); duplicates of the given training folders are removed first; the
metrics are computed at 0.5 and at the model card's threshold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from train.data import cache, dedup
from train.data.discover import DataError, discover_all
from train.options import add_label_arguments, new_parser
from train.scoring import evaluate_sets


def _parser():
    parser = new_parser("brain-mri evaluate", __doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (model.keras + model_card.json)")
    parser.add_argument("--data", nargs="+", required=True, help="labelled folders (class subfolders)")
    parser.add_argument("--exclude-duplicates-of", nargs="*", default=[], metavar="DIR",
                        help="training folders: exact and near duplicates of their scans are removed first")
    add_label_arguments(parser)
    parser.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    parser.add_argument("--write-card", action="store_true",
                        help="record these results as the model card's external test metrics")
    parser.add_argument("--workers", type=int, default=1, help="processes for cropping")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return parser


def _without_training_copies(kept, train_entries, near_threshold: int, report: dict):
    """Drop (sample, entry) pairs that copy one of `train_entries` (exactly or within `near_threshold` dHash bits);
    counts per source in `report`."""
    matches = dedup.copies_of([e for _, e in kept], train_entries, near_threshold)
    for source in sorted({s.source for s, _ in kept}):
        members = sum(s.source == source for s, _ in kept)
        found = [m for m in matches if kept[m.query][0].source == source]
        report["duplicates"][source] = {**dedup.removal_counts(found, members), "near_threshold": near_threshold}
    removed = {m.query for m in matches}
    return [item for i, item in enumerate(kept) if i not in removed]


def _sets_by_source(kept) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    sets = {}
    for source in sorted({s.source for s, _ in kept}):
        members = [(s, e) for s, e in kept if s.source == source]
        sets[source] = (np.stack([e.crop for _, e in members]), np.array([s.label for s, _ in members]))
    return sets


def run(args) -> dict:
    from core.model.classifier import load_classifier

    classifier = load_classifier(args.model)
    samples = discover_all(args.data, tuple(args.negative_classes))
    entries = cache.crop_all([s.path for s in samples], classifier.input_size, workers=args.workers,
                             desc="test scans")
    report = {"unreadable": [{"path": str(s.path), "error": e.error} for s, e in zip(samples, entries) if e.error],
              "duplicates": {}}
    kept = [(s, e) for s, e in zip(samples, entries) if e.error is None]
    if args.exclude_duplicates_of:
        train_samples = discover_all(args.exclude_duplicates_of, tuple(args.negative_classes))
        train_entries = [e for e in cache.crop_all([s.path for s in train_samples], classifier.input_size,
                                                   workers=args.workers, desc="training scans") if e.error is None]
        kept = _without_training_copies(kept, train_entries, args.near_threshold, report)
    if not kept:
        raise DataError("No readable scans are left to evaluate (after skipping unreadable files and removing "
                        "copies of the training data). Check --data and --exclude-duplicates-of.")
    thresholds = {"0.5": 0.5, "card": classifier.threshold}
    results, _ = evaluate_sets(classifier.predict_inputs, _sets_by_source(kept), thresholds, seed=args.seed,
                               normalise=classifier.normalise)
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
        balanced = None if card["balanced_accuracy"] is None else round(card["balanced_accuracy"], 4)
        lines.append(f"{name}: n={r['scans']} ({r['tumour']} tumour, {r['no_tumour']} no tumour) AUC {auc} "
                     f"| at {card['threshold']:.3f}: acc {card['accuracy']:.4f} bal.acc {balanced} "
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
