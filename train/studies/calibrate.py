"""`brain-mri calibrate`: fit the card's calibration on scans the model never trained on.

    brain-mri calibrate --model DIR --fit DIR... --check DIR...
        [--exclude-duplicates-of DIR...] [--write-card] [--json OUT]

Platt scaling (`core.model.calibration`) is fitted on the --fit folders and its
expected calibration error (ECE) and Brier score are measured, before and
after, on the --check folders, each on its own. Copies of the training data
are removed from both first. A folder given to both --fit and --check that
holds a `manifest.csv` with a `patient` column (lgg) is split by patient: a
seeded half of the patients fits, the other half checks, so no patient is on
both sides. --write-card stores the result in the card (`calibration`) and
draws `calibration_reliability.png` beside it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.io.atomic import write_atomic
from core.model.calibration import Calibration, ece_uncertainty, expected_calibration_error, fit_platt
from train import metrics
from train.data import cache, dedup
from train.data.discover import DataError, discover_all
from train.options import add_label_arguments, new_parser
from train.scoring import predict_crops

RELIABILITY_PLOT = "calibration_reliability.png"


def _parser():
    parser = new_parser("brain-mri calibrate", __doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (model.keras + model_card.json)")
    parser.add_argument("--fit", nargs="+", required=True, metavar="DIR", help="labelled folders to fit on")
    parser.add_argument("--check", nargs="+", required=True, metavar="DIR", help="labelled folders to check on")
    parser.add_argument("--exclude-duplicates-of", nargs="*", default=[], metavar="DIR",
                        help="training folders: exact and near copies of their scans are removed first")
    add_label_arguments(parser)
    parser.add_argument("--json", type=Path, help="write the result to this JSON file")
    parser.add_argument("--write-card", action="store_true", help="store the calibration in the model card")
    parser.add_argument("--workers", type=int, default=1, help="processes for cropping")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patient split")
    return parser


@dataclass(frozen=True)
class CalibrationJob:
    """What a calibration reads: the model directory, labelled folders to fit on and to check on, training folders
    whose copies are removed first, the class folder names meaning 'no tumour', the patient split's seed, processes
    for cropping and the largest dHash distance counted as a near copy."""

    model: Path
    fit: tuple[str, ...]
    check: tuple[str, ...]
    exclude_duplicates_of: tuple[str, ...] = ()
    negative_classes: tuple[str, ...] = ()
    seed: int = 0
    workers: int = 1
    near_threshold: int = dedup.NEAR_THRESHOLD

    @classmethod
    def from_args(cls, args) -> "CalibrationJob":
        return cls(model=Path(args.model), fit=tuple(map(str, args.fit)), check=tuple(map(str, args.check)),
                   exclude_duplicates_of=tuple(map(str, args.exclude_duplicates_of)),
                   negative_classes=tuple(args.negative_classes), seed=args.seed, workers=args.workers,
                   near_threshold=args.near_threshold)


def patient_halves(folder: Path, seed: int) -> dict[str, int] | None:
    """{file path relative to `folder`: 0 (fit) or 1 (check)} by patient, or None without a manifest."""
    manifest = Path(folder) / "manifest.csv"
    if not manifest.is_file():
        return None
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "patient" not in rows[0]:
        return None
    patients = sorted({row["patient"] for row in rows})
    order = np.random.default_rng(seed).permutation(len(patients))
    side = {patients[i]: int(rank % 2) for rank, i in enumerate(order)}
    return {row["file"]: side[row["patient"]] for row in rows}


def _scores(classifier, folders, side: int, job: CalibrationJob,
            train_entries) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{source: (labels, raw probabilities)} for `folders`; `side` picks the patient half of shared folders."""
    shared = set(job.fit) & set(job.check)
    out = {}
    for folder in folders:
        samples = discover_all([folder], tuple(job.negative_classes))
        halves = patient_halves(Path(folder), job.seed) if str(folder) in shared else None
        if halves is not None:
            samples = [s for s in samples if halves.get(Path(s.path).relative_to(folder).as_posix()) == side]
        entries = cache.crop_all([s.path for s in samples], classifier.input_size, workers=job.workers)
        kept = [(s, e) for s, e in zip(samples, entries) if e.error is None]
        copies = {m.query for m in dedup.copies_of([e for _, e in kept], train_entries, job.near_threshold)}
        kept = [item for i, item in enumerate(kept) if i not in copies]
        if not kept:
            raise DataError(f"No scans of {folder} are left after removing copies of the training data.")
        labels = np.array([s.label for s, _ in kept])
        raw = predict_crops(classifier.predict_inputs, np.stack([e.crop for _, e in kept]),
                            normalise=classifier.normalise)
        out[kept[0][0].source + ("" if halves is None else f" (patient half {side + 1})")] = (labels, raw)
    return out


def _quality(labels, probabilities) -> dict:
    return {"ece": expected_calibration_error(labels, probabilities),
            "brier": float(np.mean((np.asarray(probabilities) - labels) ** 2)), "scans": int(len(labels))}


def _counts(sets: dict) -> dict:
    return {name: {"tumour": int(y.sum()), "no_tumour": int(len(y) - y.sum())} for name, (y, _) in sets.items()}


def calibrate(job: CalibrationJob) -> tuple[Calibration, dict]:
    """Fit on the fit folders, check on the check folders; returns the calibration and {check set: (labels, raw)}."""
    from core.model.classifier import load_classifier

    classifier = load_classifier(job.model)
    train_samples = discover_all(job.exclude_duplicates_of, tuple(job.negative_classes))
    train_entries = [e for e in cache.crop_all([s.path for s in train_samples], classifier.input_size,
                                               workers=job.workers) if e.error is None]
    fit = _scores(classifier, job.fit, 0, job, train_entries)
    check = _scores(classifier, job.check, 1, job, train_entries)
    labels = np.concatenate([labels for labels, _ in fit.values()])
    slope, intercept = fit_platt(labels, np.concatenate([raw for _, raw in fit.values()]))
    if not slope > 0:
        raise DataError(f"The fitted slope is {slope:.4f}: on the fit folders the model's scores do not rise with "
                        "tumour, and a monotone calibration cannot mend that. Check the folders' labels and the "
                        "model; nothing was written.")
    return checked_calibration(slope, intercept, _counts(fit), check), check


def checked_calibration(slope: float, intercept: float, fitted_on: dict, check: dict) -> Calibration:
    """The Platt map (slope, intercept) with its ECE and Brier score before and after on every check set,
    and after it how far each ECE can be trusted (`core.model.calibration.ece_uncertainty`).

    fitted_on: {set name: {"tumour": n, "no_tumour": n}}; check: {set name: (labels int (n,), raw float (n,))}.
    """
    fitted = Calibration(slope=slope, intercept=intercept, fitted_on=fitted_on, checked_on=_counts(check))
    before = {name: _quality(y, raw) for name, (y, raw) in check.items()}
    after = {name: {**_quality(y, fitted(raw)), **ece_uncertainty(y, fitted(raw))}
             for name, (y, raw) in check.items()}
    return dataclasses.replace(fitted, before=before, after=after)


def plot_calibration_check(path, calibration: Calibration, check: dict) -> Path:
    """Observed tumour fraction against mean predicted probability per check set, before and after."""
    from train.report import plot_reliability as draw

    results = {}
    for name, (labels, raw) in check.items():
        results[f"{name}, raw"] = {"reliability": metrics.reliability(labels, raw)}
        results[f"{name}, calibrated"] = {"reliability": metrics.reliability(labels, calibration(raw))}
    return draw(path, results)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        calibration, check = calibrate(CalibrationJob.from_args(args))
    except (DataError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"slope {calibration.slope:.4f}, intercept {calibration.intercept:.4f}; fitted on {calibration.fitted_on}")
    for name in calibration.after:
        b, a = calibration.before[name], calibration.after[name]
        print(f"{name}: n={a['scans']} ECE {b['ece']:.4f} -> {a['ece']:.4f} (95% CI {a['ece_ci95'][0]:.4f}-"
              f"{a['ece_ci95'][1]:.4f}; a perfectly calibrated model: {a['ece_if_calibrated'][0]:.4f}), "
              f"Brier {b['brier']:.4f} -> {a['brier']:.4f}")
    if args.json:
        write_atomic(args.json, json.dumps(calibration.to_dict(), indent=2) + "\n")
    if args.write_card:
        from core.model.card import update_card

        plot_calibration_check(Path(args.model) / RELIABILITY_PLOT, calibration, check)
        update_card(args.model, calibration=calibration.to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main())
