"""`brain-mri finetune-card`: a finished fine-tuning run on every source as a model directory with its card.

    brain-mri finetune-card --run RUN_DIR --out MODEL_DIR [--model START_DIR] [--fold RESULTS_JSON ...]

The run (`brain-mri finetune --held-out none`) left finetuned.keras (the averaged weights, BatchNorm as
trained) and scores.json (raw probabilities of its validation and test splits, per variant). This writes
MODEL_DIR/model.keras (those weights) and MODEL_DIR/model_card.json: the start model's card without the entries
that describe other weights (its threshold, numbers, calibration, explanation evaluation, tumour-type head,
head refit), plus the threshold, metrics and calibration recomputed from scores.json (Platt fitted on the
validation split with each class weighted equally; the threshold is 0.5 on that calibrated scale), the
fine-tuning recipe and budget, and the leave-one-source-out rows of the `--fold` runs (the same recipe with
one source held out). Run `brain-mri explain-eval` and `brain-mri type-head` on MODEL_DIR before shipping it.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import date
from pathlib import Path

from core.io.atomic import atomic_path, sha256_of
from core.model.calibration import Calibration
from core.model.card import MODEL_FILE, ModelCard, carried_over, read_card, write_card
from core.model.classifier import default_model_dir
from train.data.discover import DataError
from train.options import new_parser
from train.studies.calibrate import RELIABILITY_PLOT, plot_calibration_check
from train.studies.finetune_eval import MODEL_FILE as RUN_MODEL_FILE
from train.studies.finetune_eval import RESULTS_FILE, SCORES_FILE, STRATA_FILE
from train.studies.refit_final import CALIBRATED_HALF, card_numbers, check_sets

#: The variant finetune.keras holds, and the one the fold study selected.
SHIPPED_VARIANT = "averaged weights, BatchNorm as trained"
#: Where the model directory keeps the run's scores.json (the card's numbers recompute from it).
SCORES_IN_MODEL = "training_runs/finetune/scores.json"
STRATA_IN_MODEL = "training_runs/finetune/strata.json"


def parser():
    p = new_parser("brain-mri finetune-card", __doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, metavar="RUN_DIR", help="a finished run with --held-out none")
    p.add_argument("--out", type=Path, required=True, metavar="MODEL_DIR", help="model directory to write")
    p.add_argument("--model", type=Path, help="the run's start model directory (default: the shipped model)")
    p.add_argument("--fold", type=Path, action="append", default=[], metavar="RESULTS_JSON",
                   help="results.json of a fold run of the same recipe (repeat for each held-out source)")
    p.add_argument("--seed", type=int, default=0, help="seed of the metrics' bootstrap intervals")
    return p


def split_scores(payload: dict, variant: str = SHIPPED_VARIANT) -> dict:
    """finetune scores.json -> card_numbers' input: {"val"|"test": {"sources", "labels", "probs"}}."""
    if variant not in payload["variants"]:
        raise DataError(f"scores.json has no variant {variant!r}; it has {', '.join(payload['variants'])}.")
    return {part: {"sources": payload["sources"][part], "labels": payload["labels"][part],
                   "probs": payload["variants"][variant][part]} for part in ("val", "test")}


def fold_row(results: dict, variant: str = SHIPPED_VARIANT) -> dict:
    """One leave-one-source-out row of a fold run's results.json, in the head refit card's row format (counts,
    AUC with its interval, and balanced accuracy, sensitivity and specificity at the fold's own threshold, chosen
    without the held-out source), with the fold's budget, per-folder AUCs and command."""
    row, test = results["variants"][variant], results["variants"][variant]["test"]
    low, high = test["auc_ci95"] or (None, None)
    return {"held_out": results["held_out"], "tumour": test["tumour"], "no_tumour": test["no_tumour"],
            "auc": test["auc"], "auc_low": low, "auc_high": high, "balanced_accuracy": test["balanced_accuracy"],
            "sensitivity": test["sensitivity"], "specificity": test["specificity"], "threshold": row["threshold"],
            "images_seen": results["images_seen"],
            "by_folder": {name: block["auc"] for name, block in row.get("by_folder", {}).items()},
            "command": results["command"]}


def card_entries(start: ModelCard, run: dict, payload: dict, folds: dict[str, dict], seed: int = 0,
                 strata: dict | None = None) -> dict:
    """The fine-tuned model's card entries (all but the weights' hash) from the start card, the run's files and
    the fold runs' results ({path as given, relative to the repository for committed ones: results.json}); the
    run's strata.json, where it has one, adds a limitation (train.studies.finetune_strata.central_summary)."""
    from train.studies.finetune_strata import central_summary

    if run["held_out"] != "none":
        raise DataError(f"The run held out {run['held_out']!r}: only a run on every source (--held-out none) "
                        "is a model to ship.")
    numbers = card_numbers(split_scores(payload), seed=seed, threshold_rule=CALIBRATED_HALF)
    settings = run["settings"]
    kept = carried_over(start, "backbone")
    prose = described(start, run)
    summary = central_summary(strata) if strata else None
    if summary:
        prose["limitations"].insert(-1, summary)
    return {**kept, **numbers, **prose,
            "threshold_method": "0.5 on the calibrated scale: Platt scaling fitted on the validation split with "
                                "tumour and no-tumour scans weighted equally (the probability assumes even odds "
                                "before the scan is seen)",
            "created": date.today().isoformat(), "command": run["command"], "seed": settings["seed"],
            "data": {"counts": run["counts"], "sources": sorted(set(payload["sources"]["test"]))},
            "training_runs": f"{SCORES_IN_MODEL} (every validation and test scan's probability of each variant of "
                             "the fine-tuning run; the card's numbers recompute from it)",
            "fine_tuning": {"start_model": run["start_model"], "variant": SHIPPED_VARIANT,
                            "scores_file": SCORES_IN_MODEL, **({"strata_file": STRATA_IN_MODEL} if summary else {}),
                            "stages_trained": [f"conv{n}" for n in range(int(settings["trainable_from"][-1]), 6)]
                            + ["head"],
                            "images_seen": run["images_seen"], "settings": settings},
            "leave_one_source_out": {"recipe": "fine-tuning from the same start model with one source held out (a "
                                               "fresh head: the start head saw every source); see the caveat",
                                     "caveat": _budget_caveat(list(folds.values()), run["images_seen"], settings),
                                     "results": list(folds), "rows": [fold_row(f) for f in folds.values()]}}


#: Run settings that differ between a fold and the model by design (the held-out source, the budget).
_BUDGET_SETTINGS = ("held_out", "steps", "warmup_steps", "checkpoint_minutes")
#: What a run that does not record a setting did (settings added after the first runs); any other is off.
_UNRECORDED = {"batchnorm": "frozen"}


def described(start: ModelCard, run: dict) -> dict:
    """The card's prose about these weights: where they started, what they cannot claim, the versions that trained
    them (the start card's own entries describe the start model's weights)."""
    from train.card import versions

    settings, images = run["settings"], run["images_seen"]
    head = "its head" if settings.get("keep_head") else "a fresh head"
    return {
        "initialisation": f"the backbone of {run['start_model']} (itself: {start.initialisation or 'not stated'}), "
                          f"fine-tuned from {settings['trainable_from']} on, with {head}, on every source",
        "versions": versions(),
        "limitations": [
            "Research and teaching demo only; never use it for a clinical decision.",
            f"The backbone was fine-tuned on a CPU for {images:,} augmented images from {settings['trainable_from']} "
            "on; the stages before it keep what they learned from the start model's training data alone.",
            "On a source it has not seen, expect the leave_one_source_out rows (fold runs of the same fine-tuning "
            "with that source held out; see their caveat), not metrics.test; the targets (AUC 0.88 on each unseen "
            "source) are not met.",
            "metrics.test is in-distribution: held-out groups (copies kept together, LGG by patient across its "
            "sequences) of the same sources. It says how the model does on scans like its training scans, not on a "
            "new scanner, hospital or sequence.",
            "MOS keeps few independent normal slices (most of its normals are copies of Br35H and are removed), so "
            "its specificity rests on a handful of slices.",
            "The calibration was fitted on the validation split of the same sources with both classes weighted "
            "equally; on a new source the calibrated probability can be far off (calibration.after gives the error "
            "per source).",
            "2D slices only, one label per slice (tumour / no tumour); the tumour type comes from a separate head.",
        ],
    }


def _budget_caveat(folds: list[dict], images_seen: int, settings: dict | None = None) -> str:
    """'folds fine-tuned on 9,600 images, this model on 40,320', then every other setting in which a fold differs
    from the model ('; folds with lr 0.0001, this model with lr 3e-05'), so a row is not read as this model's."""
    budgets = " and ".join(f"{n:,}" for n in sorted({f["images_seen"] for f in folds}))
    text = f"folds fine-tuned on {budgets or 'no'} images, this model on {images_seen:,}"
    settings, runs = settings or {}, [fold.get("settings", {}) for fold in folds]
    known = set(settings).union(*runs) - set(_BUDGET_SETTINGS)
    def value(recorded: dict, name: str):
        return recorded.get(name, _UNRECORDED.get(name, False))

    names = sorted(name for name in known if any(value(run, name) != value(settings, name) for run in runs))
    if names:
        folds_had = ", ".join(f"{name} {' / '.join(sorted({str(value(run, name)) for run in runs}))}"
                              for name in names)
        text += f"; folds with {folds_had}, this model with {', '.join(f'{n} {value(settings, n)}' for n in names)}"
    return text


def write_model(run_dir: Path, out: Path, entries: dict, payload: dict) -> Path:
    """Copy the run's weights to out/model.keras and its scores.json to out/SCORES_IN_MODEL, draw the calibration
    check, then write the card with the weights' hash (each file atomically; the card last)."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / MODEL_FILE, suffix=".keras") as temporary:
        shutil.copyfile(run_dir / RUN_MODEL_FILE, temporary)
        digest = sha256_of(temporary)
    with atomic_path(out / SCORES_IN_MODEL) as temporary:
        shutil.copyfile(run_dir / SCORES_FILE, temporary)
    if "strata_file" in entries["fine_tuning"]:
        with atomic_path(out / STRATA_IN_MODEL) as temporary:
            shutil.copyfile(run_dir / STRATA_FILE, temporary)
    checks = check_sets(split_scores(payload))
    plot_calibration_check(out / RELIABILITY_PLOT, Calibration.from_dict(entries["calibration"]), checks)
    write_card(out, ModelCard.from_dict({**entries, "weights_file": MODEL_FILE, "weights_sha256": digest}))
    return out


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        for path in (args.run / RESULTS_FILE, args.run / SCORES_FILE, args.run / RUN_MODEL_FILE, *args.fold):
            if not path.is_file():
                raise DataError(f"{path} does not exist: give a finished run (brain-mri finetune reports "
                                "'Finished' when it has written it).")
        start = read_card(args.model or default_model_dir())
        run, payload = (json.loads((args.run / name).read_text()) for name in (RESULTS_FILE, SCORES_FILE))
        folds = {str(path): json.loads(path.read_text()) for path in args.fold}
        strata = json.loads((args.run / STRATA_FILE).read_text()) if (args.run / STRATA_FILE).is_file() else None
        if strata and strata.get("variant") != SHIPPED_VARIANT:
            raise DataError(f"{args.run / STRATA_FILE} stratifies {strata.get('variant')!r}, not the weights the "
                            f"model ships ({SHIPPED_VARIANT!r}): run brain-mri finetune-strata --run {args.run} "
                            "without --variant, or remove the file.")
        entries = card_entries(start, run, payload, folds, args.seed, strata)
        write_model(args.run, args.out, entries, payload)
    except (DataError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {args.out}: threshold {entries['threshold']:.3f} (0.5 calibrated); test AUC over every source "
          f"{entries['metrics']['test']['all sources']['auc']:.3f}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
