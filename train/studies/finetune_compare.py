"""`brain-mri finetune-compare`: a fine-tuning run against another model on exactly the run's test slices.

    brain-mri finetune-compare --run RUN_DIR [--model DIR] [--data-root DIR] [--out DIR]

Scores the other model (default: the shipped one) on the test split the run scored (scores.json), and writes
compare.json and compare.md (into --out, default the run folder): per data folder and over all slices, the AUC
with its bootstrap interval of the run's shipped variant (the averaged weights, BatchNorm as trained) and of the
other model, then per patient where the data folder names its patients (LGG: each of the few test patients
in each sequence, a point AUC without interval), and the other model's raw probability of every test slice (the
run's own are in its scores.json). A model that trained on some of those slices (a head refit on the same
sources, split differently) has an advantage there; the table says what each was scored on, not what each would do
on a source it never saw.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from core.io.atomic import write_atomic
from train import metrics
from train.data import cache, folds
from train.data.discover import DataError
from train.options import new_parser
from train.studies.finetune_card import SHIPPED_VARIANT
from train.studies.finetune_eval import SCORES_FILE

COMPARE_FILE = "compare.json"
ALL = "all test slices"


def parser():
    p = new_parser("brain-mri finetune-compare", __doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, metavar="RUN_DIR", help="a finished fine-tuning run")
    p.add_argument("--model", type=Path, help="the model to compare with (default: the shipped model)")
    p.add_argument("--data-root", type=Path, default=folds.DATA_ROOT, help="the data root the run's paths are under")
    p.add_argument("--out", type=Path, help="folder for compare.json and compare.md (default: the run folder)")
    p.add_argument("--workers", type=int, default=1, help="processes for cropping")
    return p


def comparison(labels: np.ndarray, folders: np.ndarray, scores: dict[str, np.ndarray]) -> dict:
    """{folder or ALL: {name: AUC block (train.metrics.auc_with_interval) or None for one class}, "n": count}.

    labels: int (n,) in {0, 1}; folders: str (n,); scores: {model name: float (n,) raw probabilities in [0, 1]}.
    """
    table = {}
    for folder in [*sorted(set(folders.tolist())), ALL]:
        chosen = np.ones(len(labels), bool) if folder == ALL else folders == folder
        both = len(set(labels[chosen].tolist())) == 2
        table[folder] = {"n": int(chosen.sum()), "tumour": int(labels[chosen].sum()),
                         **{name: metrics.auc_with_interval(labels[chosen], probs[chosen]) if both else None
                            for name, probs in scores.items()}}
    return table


def patients_of(paths: list[str], data_root: Path) -> np.ndarray:
    """str (n,): the patient of each run-relative scan path, from its data folder's manifest.csv ('' unknown)."""
    from train.data.discover import read_patients

    manifests = {}
    out = []
    for path in paths:
        folder = folds.folder_of(f"x/{path}")
        if folder not in manifests:
            manifests[folder] = read_patients(data_root / folder) or {}
        out.append(manifests[folder].get(path[len(folder) + 1:], ""))
    return np.array(out)


def by_patient(labels: np.ndarray, folders: np.ndarray, patients: np.ndarray, scores: dict[str, np.ndarray]) -> dict:
    """{"FOLDER PATIENT": {"n", "tumour", name: point AUC}} for every known patient with slices of both classes."""
    table = {}
    for folder, patient in sorted({(f, p) for f, p in zip(folders.tolist(), patients.tolist()) if p}):
        chosen = (folders == folder) & (patients == patient)
        if len(set(labels[chosen].tolist())) == 2:
            table[f"{folder} {patient}"] = {"n": int(chosen.sum()), "tumour": int(labels[chosen].sum()),
                                            **{name: float(roc_auc_score(labels[chosen], probs[chosen]))
                                               for name, probs in scores.items()}}
    return table


def to_markdown(result: dict) -> str:
    """The comparison as a table: one row per folder, AUC [95% CI] of each model."""
    names = result["models"]
    lines = ["| test slices | n (tumour) | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for folder, row in result["table"].items():
        cells = []
        for name in names:
            block = row[name]
            cells.append("-" if block is None else
                         f"{block['auc']:.3f} [{block['auc_ci95'][0]:.3f}, {block['auc_ci95'][1]:.3f}]")
        lines.append(f"| {folder} | {row['n']} ({row['tumour']}) | " + " | ".join(cells) + " |")
    if result.get("by_patient"):
        lines += ["", "| patient | n (tumour) | " + " | ".join(f"AUC {name}" for name in names) + " |",
                  "|---|---|" + "---|" * len(names)]
        lines += [f"| {key} | {row['n']} ({row['tumour']}) | " + " | ".join(f"{row[name]:.3f}" for name in names)
                  + " |" for key, row in result["by_patient"].items()]
    return "\n".join(lines) + "\n"


def read_scores(run: Path) -> dict:
    """A finished run's scores.json payload; DataError naming the file where the run has none."""
    if not (run / SCORES_FILE).is_file():
        raise DataError(f"{run / SCORES_FILE} does not exist: give a finished fine-tuning run.")
    return json.loads((run / SCORES_FILE).read_text())


def write_result(path: Path, result: dict, table: str) -> None:
    """Write `result` as JSON to `path` and `table` beside it (same name, .md), each atomically; print the table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(result, indent=1) + "\n")
    write_atomic(path.with_suffix(".md"), table)
    print(table, end="")


def main(argv=None) -> int:
    from core.model.classifier import load_classifier
    from train.scoring import predict_crops

    args = parser().parse_args(argv)
    out = args.out or args.run
    try:
        payload = read_scores(args.run)
        classifier = load_classifier(args.model)
        paths = payload["scans"]["test"]
        entries = cache.crop_all([args.data_root / path for path in paths], classifier.input_size,
                                 workers=args.workers)
        broken = [path for path, entry in zip(paths, entries) if entry.error is not None]
        if broken:
            raise DataError(f"{len(broken)} test scans could not be read under {args.data_root} (first: "
                            f"{broken[0]}); give the --data-root the run used.")
        other = predict_crops(classifier.predict_inputs, np.stack([entry.crop for entry in entries]),
                              normalise=classifier.normalise)
    except (DataError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    start = json.loads((args.run / "results.json").read_text()).get("start_model", "start model")
    names = [f"fine-tuned ({SHIPPED_VARIANT})", classifier.model_id]
    scores = {names[0]: np.asarray(payload["variants"][SHIPPED_VARIANT]["test"], float), names[1]: other}
    folders, labels = np.array([folds.folder_of(f"x/{path}") for path in paths]), np.asarray(payload["labels"]["test"])
    result = {"run": args.run.name, "start_model": start, "models": names,
              "table": comparison(labels.astype(int), folders, scores),
              "by_patient": by_patient(labels.astype(int), folders, patients_of(paths, args.data_root), scores),
              "probs": {names[1]: [round(float(p), 6) for p in other]}}
    write_result(out / COMPARE_FILE, result, to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
