"""`brain-mri type-head`: give a model a tumour-type head, with its evidence.

    brain-mri type-head [--model DIR] [--data-root DIR] [--seed S] [--workers N] [--cache-dir DIR]

Reads every typed tumour slice of the shared data (train.studies.type_data: MOS's glioma / meningioma / pituitary
folders, every LGG tumour slice as glioma), computes the model's pooled backbone features once (cached, keyed
by the backbone's weights), splits whole groups (copies, LGG patients) into train / val / test, and fits two
heads (train.studies.type_fit): temperature and "uncertain" level from the val groups, never from test.

- `mos_only`: trained on MOS alone; scored on MOS's test groups and on every LGG tumour slice (a source and
  three sequences it never saw). This is the evidence; it is not shipped.
- `shipped`: trained on MOS and LGG; scored on the test groups of both; written beside the model.

Writes into the model directory: type_head.keras, the card's `tumour_type` entry (file, SHA-256, temperature,
level, the table, the command), training_runs/tumour_type/scores.json (every scored slice's calibrated
probabilities, so `train.studies.type_table` recomputes the table) and results.md. The binary model, its card
numbers, threshold and calibration are not touched.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from core.model.tumour_type import CARD_ENTRY, TYPES, softmax
from train.data import folds
from train.data.discover import DataError
from train.options import command_line, new_parser
from train.studies.type_fit import MAX_EPOCHS

HEAD_FILE = "type_head.keras"
RUN_FOLDER = Path("training_runs") / "tumour_type"
MOS_ONLY_FILE = "type_head_mos_only.keras"
#: 144 MOS test-group slices (seed 0's split) whose plane was labelled by eye from contact sheets.
PLANES_FILE = Path(__file__).resolve().parents[2] / "docs" / "tumour_type" / "planes.csv"
#: Shares of the typed slices' groups held out for validation and test.
SPLIT = {"val": 0.15, "test": 0.2}


def parser():
    p = new_parser("brain-mri type-head", __doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="model directory (default: the shipped model)")
    p.add_argument("--data-root", type=Path, default=folds.DATA_ROOT, help="folder holding mos and lgg*")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the heads' training")
    p.add_argument("--epochs", type=int, default=MAX_EPOCHS, help="most passes over the training slices per head "
                   "(training stops earlier when the validation loss stops falling)")
    p.add_argument("--workers", type=int, default=2, help="processes for cropping")
    p.add_argument("--planes", type=Path, default=PLANES_FILE, help="CSV (path, plane) of MOS slices whose "
                   "plane was labelled by eye, for the plane-shortcut check")
    p.add_argument("--cache-dir", type=Path, help="crop and feature cache (default: the crop cache)")
    return p


def _fit_head(typed, train: np.ndarray, val: np.ndarray, seed: int, epochs: int, log) -> dict:
    from train.studies.type_fit import choose_level, fit_temperature, fit_type_head, logits_of

    model, history = fit_type_head(typed.features[train], typed.types[train], typed.features[val],
                                   typed.types[val], seed, epochs)
    val_logits = logits_of(model, typed.features[val])
    temperature = fit_temperature(val_logits, typed.types[val])
    level = choose_level(softmax(val_logits, temperature), typed.types[val])
    log(f"  {int(train.sum())} training slices, {int(val.sum())} validation; {history['epochs']} epochs; "
        f"temperature {temperature:.2f}; a type is named from {level:.2f}.")
    return {"model": model, "temperature": temperature, "uncertain_below": level, **history}


def study(typed, seed: int, epochs: int = MAX_EPOCHS, log=print) -> tuple[dict, dict]:
    """Fit both heads (module docstring). Returns ({head name: fitted head}, scores for type_table)."""
    from train.studies.type_data import group_split
    from train.studies.type_fit import logits_of

    roles = group_split(typed.groups, SPLIT, seed)
    mos = typed.sources == "mos"
    log("Head on MOS alone:")
    heads = {"mos_only": _fit_head(typed, mos & (roles == "train"), mos & (roles == "val"), seed, epochs, log)}
    log("Head on MOS and LGG:")
    heads["shipped"] = _fit_head(typed, roles == "train", roles == "val", seed, epochs, log)
    scored = {"mos_only": (mos & (roles == "test")) | ~mos, "shipped": roles == "test"}
    probabilities = {name: softmax(logits_of(head["model"], typed.features), head["temperature"])
                     for name, head in heads.items()}
    rows = []
    for i in np.flatnonzero(scored["mos_only"] | scored["shipped"]):
        row = {"path": typed.paths[i], "folder": str(typed.folders[i]), "source": str(typed.sources[i]),
               "type": TYPES[typed.types[i]], "role": str(roles[i])}
        row.update({name: [round(float(v), 6) for v in probabilities[name][i]]
                    for name in heads if scored[name][i]})
        rows.append(row)
    scores = {"types": list(TYPES), "seed": seed, "split": SPLIT,
              "heads": {name: {k: head[k] for k in ("temperature", "uncertain_below", "epochs", "val_loss")}
                        for name, head in heads.items()},
              "counts": {role: int((roles == role).sum()) for role in ("train", "val", "test")},
              "slices": rows}
    return heads, scores


def read_planes(path: Path | None) -> dict[str, str]:
    """{path under the data root: 'axial' | 'coronal' | 'sagittal'} from a CSV with columns path, plane."""
    import csv

    from train.studies.type_table import PLANES

    if path is None or not Path(path).is_file():
        return {}
    with open(path, newline="") as handle:
        planes = {row["path"]: row["plane"] for row in csv.DictReader(handle)}
    wrong = sorted({plane for plane in planes.values() if plane not in PLANES})
    if wrong:
        raise DataError(f"{path}: planes must be one of {', '.join(PLANES)}. Received: {', '.join(wrong)}")
    return planes


def _relative(scores: dict, data_root: Path, planes: dict[str, str]) -> dict:
    """Paths relative to the data root, and the plane of each slice labelled in `planes`."""
    from train.studies.type_data import relative_to_root

    for row in scores["slices"]:
        row["path"] = relative_to_root(row["path"], data_root).as_posix()
        if row["path"] in planes:
            row["plane"] = planes[row["path"]]
    return scores


def write(directory: Path, heads: dict, scores: dict, command: str) -> dict:
    """type_head.keras (the shipped head), the run folder (scores, results.md and the MOS-only head, for
    bench/bench_peers.py), then the card entry (last, so a card never names a missing head)."""
    from core.io.atomic import atomic_path, write_atomic
    from core.model.card import update_card
    from core.model.classifier import sha256_of, without_optimizer
    from train.studies.type_table import markdown, type_tables

    tables = type_tables(scores)
    head = heads["shipped"]
    with atomic_path(directory / HEAD_FILE, suffix=".keras") as tmp:
        without_optimizer(head["model"]).save(tmp)
        digest = sha256_of(tmp)
    run = directory / RUN_FOLDER
    with atomic_path(run / MOS_ONLY_FILE, suffix=".keras") as tmp:
        without_optimizer(heads["mos_only"]["model"]).save(tmp)
    write_atomic(run / "scores.json", json.dumps(scores, indent=1) + "\n")
    write_atomic(run / "results.md", markdown(tables, scores["heads"]))
    entry = {"file": HEAD_FILE, "sha256": digest, "classes": list(TYPES), "temperature": head["temperature"],
             "uncertain_below": head["uncertain_below"], "backbone_sha256": head["backbone_sha256"],
             "scores_file": (RUN_FOLDER / "scores.json").as_posix(),
             "mos_only_file": (RUN_FOLDER / MOS_ONLY_FILE).as_posix(), "command": command, "table": tables}
    update_card(directory, **{CARD_ENTRY: entry})
    return tables


def run(args, log=print) -> dict:
    from core.model.classifier import default_model_dir, load_classifier
    from train.studies.refit import backbone_sha
    from train.studies.type_data import typed_set
    from train.studies.type_table import markdown

    directory = Path(args.model) if args.model else default_model_dir()
    classifier = load_classifier(directory)
    typed = typed_set(classifier.model, args.data_root, args.cache_dir, args.workers, log)
    log(f"{len(typed.paths)} typed tumour slices: " + ", ".join(
        f"{t} {int((typed.types == i).sum())}" for i, t in enumerate(TYPES)) + ".")
    heads, scores = study(typed, args.seed, args.epochs, log)
    heads["shipped"]["backbone_sha256"] = backbone_sha(classifier.model)
    command = command_line("type-head")
    scores = _relative(scores, args.data_root, read_planes(args.planes))
    tables = write(classifier.directory, heads, scores, command)
    log(markdown(tables, scores["heads"]))
    return tables


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    started = time.time()
    if args.epochs < 1:
        print(f"error: --epochs must be at least 1. Received: {args.epochs}", file=sys.stderr)
        return 2
    try:
        run(args)
    except (DataError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Finished in {time.time() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
