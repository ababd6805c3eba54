"""`brain-mri finetune-strata`: where a run's AUC on a held-out source comes from, slice position and lesion size.

    brain-mri finetune-strata --run RUN_DIR [--variant NAME] [--band LOW HIGH] [--data-root DIR] [--out DIR]

Reads the run's scores.json (no model is loaded) and, for every test data folder whose manifest.csv gives each
slice's `patient`, `slice` (1 = the first of the patient's series) and `mask_area_px` (the LGG folders), writes
strata.json and strata.md (into --out, default the run folder):
- the AUC [95% CI] on all its test slices and on the central slices only: those whose position in the patient's
  series, (slice - 1) / (slices - 1) from 0 to 1, lies within --band (default 0.25-0.75). The first and last
  slices of a series show little brain and are almost all normal, so a model can rank them below tumour slices
  without seeing any lesion; the central AUC says whether it sees the lesion.
- the AUC of each third of the tumour slices by outlined area (smallest third first), each against all the
  folder's normal slices;
- the mean probability of the normal and of the tumour slices in each fifth of the series;
- for scale, the AUC of the slice's position alone (the closer to the centre of its series, the higher), which
  needs no image at all.
`brain-mri finetune` writes them into the run folder at the end of a run whose test slices have these facts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from train import metrics
from train.data import folds
from train.data.discover import DataError, slice_facts_of
from train.options import new_parser
from train.studies.finetune_card import SHIPPED_VARIANT
from train.studies.finetune_compare import read_scores, write_result
from train.studies.finetune_eval import STRATA_FILE

CENTRAL_BAND = (0.25, 0.75)
FIFTHS = 5


def parser():
    p = new_parser("brain-mri finetune-strata", __doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, metavar="RUN_DIR", help="a finished fine-tuning run")
    p.add_argument("--variant", help=f"the scored variant to read (default: {SHIPPED_VARIANT!r} where the run "
                                     "has it, else its first)")
    p.add_argument("--band", type=float, nargs=2, default=CENTRAL_BAND, metavar=("LOW", "HIGH"),
                   help="the central band of a series, as positions from 0 (first slice) to 1 (last)")
    p.add_argument("--data-root", type=Path, default=folds.DATA_ROOT, help="the data root the run's paths are under")
    p.add_argument("--out", type=Path, help="folder for strata.json and strata.md (default: the run folder)")
    return p


def _auc(labels: np.ndarray, probs: np.ndarray) -> dict:
    return {"n": int(len(labels)), "tumour": int(labels.sum()), **metrics.auc_with_interval(labels, probs)}


def strata(labels: np.ndarray, probs: np.ndarray, positions: np.ndarray, areas: np.ndarray,
           band: tuple[float, float] = CENTRAL_BAND) -> dict:
    """The strata of one folder's test slices.

    labels: int (n,) in {0, 1}; probs: float (n,) in [0, 1]; positions: float (n,) in [0, 1]; areas: int (n,),
    outlined pixels (0 on normal slices). Returns {"all", "central", "by_area": [3 blocks], "by_fifth": [5 rows],
    "position_alone"}, AUC blocks as {"n", "tumour", "auc", "auc_ci95"} (auc None where a stratum lacks a class).
    """
    central = (positions >= band[0]) & (positions <= band[1])
    normal = labels == 0
    cuts = np.quantile(areas[labels == 1], [1 / 3, 2 / 3]) if labels.any() else np.zeros(2)
    thirds = np.digitize(areas, cuts, right=True)
    by_area = []
    for third in range(3):
        chosen = normal | ((labels == 1) & (thirds == third))
        tumour_areas = areas[(labels == 1) & (thirds == third)]
        by_area.append({**_auc(labels[chosen], probs[chosen]),
                        "area_px": [int(tumour_areas.min()), int(tumour_areas.max())] if len(tumour_areas) else None})
    fifth = np.minimum((positions * FIFTHS).astype(int), FIFTHS - 1)
    by_fifth = []
    for index in range(FIFTHS):
        row = {"positions": [index / FIFTHS, (index + 1) / FIFTHS]}
        for name, label in (("normal", 0), ("tumour", 1)):
            chosen = (fifth == index) & (labels == label)
            row[name] = {"n": int(chosen.sum()), "mean_prob": float(probs[chosen].mean()) if chosen.any() else None}
        by_fifth.append(row)
    return {"all": _auc(labels, probs), "central": _auc(labels[central], probs[central]),
            "by_area": by_area, "by_fifth": by_fifth, "position_alone": _auc(labels, -np.abs(positions - 0.5))}


def _auc_cell(block: dict) -> str:
    if block["auc"] is None:
        return "-"
    interval = block["auc_ci95"]
    return f"{block['auc']:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def to_markdown(result: dict) -> str:
    """Two tables: the AUCs of every folder, then the mean probability by fifth of the series."""
    band = result["band"]
    lines = [f"Run {result['run']}, {result['variant']}.", "",
             f"| test slices | all: n (tumour), AUC | central {band[0]:.2f}-{band[1]:.2f}: n (tumour), AUC | "
             "smallest third of lesions | middle third | largest third | position alone |",
             "|---|---|---|---|---|---|---|"]
    for folder, table in result["folders"].items():
        cells = [f"{block['n']} ({block['tumour']}), {_auc_cell(block)}" for block in (table["all"], table["central"])]
        cells += [f"{_auc_cell(block)}" + (f" ({block['area_px'][0]}-{block['area_px'][1]} px)"
                                           if block["area_px"] else "") for block in table["by_area"]]
        cells.append(_auc_cell(table["position_alone"]))
        lines.append(f"| {folder} | " + " | ".join(cells) + " |")
    lines += ["", "Mean probability (n) of the normal / tumour slices by position in the series (0 = first slice):", "",
              "| test slices | " + " | ".join(f"{row['positions'][0]:.1f}-{row['positions'][1]:.1f}"
                                              for row in next(iter(result["folders"].values()))["by_fifth"]) + " |",
              "|---|" + "---|" * FIFTHS]
    for folder, table in result["folders"].items():
        cells = []
        for row in table["by_fifth"]:
            cells.append(" / ".join("-" if row[name]["mean_prob"] is None else
                                    f"{row[name]['mean_prob']:.2f} ({row[name]['n']})"
                                    for name in ("normal", "tumour")))
        lines.append(f"| {folder} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_strata(payload: dict, variant: str, data_root: Path, band: tuple[float, float]) -> dict:
    """{folder: strata(...)} over the test folders of a scores.json payload that have slice facts (scan paths are
    relative to the data root, or absolute for a source given by its own path)."""
    labels = np.asarray(payload["labels"]["test"], int)
    probs = np.asarray(payload["variants"][variant]["test"], float)
    paths = [Path(path) if Path(path).is_absolute() else data_root / path for path in payload["scans"]["test"]]
    try:
        facts = slice_facts_of(paths)
    except DataError as error:
        raise DataError(f"{error} Give the --data-root the run used.") from error
    folders = [folds.folder_of(path) for path in paths]
    result = {}
    for folder in sorted({name for name, fact in zip(folders, facts) if fact is not None}):
        chosen = [i for i, (name, fact) in enumerate(zip(folders, facts)) if name == folder and fact is not None]
        position, area = (np.array(column) for column in zip(*(facts[i] for i in chosen)))
        result[folder] = strata(labels[chosen], probs[chosen], position, area, band)
    return result


def central_summary(result: dict) -> str | None:
    """One sentence for a model card: each folder's AUC on the central slices of its series, and the folders where
    that AUC is no better than chance (its 95% interval holds 0.5); None for a result without folders."""
    folders = result["folders"]
    if not folders:
        return None
    band = result["band"]
    aucs = ", ".join(f"{folder} {table['central']['auc']:.3f}" for folder, table in folders.items()
                     if table["central"]["auc"] is not None)
    alone = sorted(table["position_alone"]["auc"] for table in folders.values()
                   if table["position_alone"]["auc"] is not None)
    chance = [folder for folder, table in folders.items() if table["central"]["auc_ci95"]
              and table["central"]["auc_ci95"][0] <= 0.5 <= table["central"]["auc_ci95"][1]]
    scale = (f": over all its slices a slice's position alone scores AUC {alone[0]:.3f}-{alone[-1]:.3f}"
             if alone else "")
    text = (f"On the central slices of each series of its test patients (positions {band[0]:.2f}-{band[1]:.2f}; the "
            f"ends of a series are nearly all normal{scale}), test AUC {aucs}")
    if chance:
        text += f": no better than chance (the 95% interval holds 0.5) on {', '.join(chance)}"
    return text + " (brain-mri finetune-strata)."


def stratify_run(run_dir: Path, data_root: Path, variant: str | None = None,
                 band: tuple[float, float] = CENTRAL_BAND, out: Path | None = None) -> dict | None:
    """Stratify a finished run's test scores and write strata.json and strata.md into `out` (default `run_dir`).

    variant: the scored variant (default SHIPPED_VARIANT where the run has it, else its first). Returns the result,
    or None, writing nothing, where no test folder has slice facts (a fold held out on MOS). DataError on a bad
    variant or band, or a manifest that lacks a test slice.
    """
    if not 0 <= band[0] < band[1] <= 1:
        raise DataError(f"--band {band[0]} {band[1]}: give LOW < HIGH, both between 0 and 1.")
    payload = read_scores(run_dir)
    variants = list(payload["variants"])
    variant = variant or (SHIPPED_VARIANT if SHIPPED_VARIANT in variants else variants[0])
    if variant not in variants:
        raise DataError(f"the run has no variant {variant!r}. Choose one of: {', '.join(variants)}.")
    folders = run_strata(payload, variant, data_root, tuple(band))
    if not folders:
        return None
    result = {"run": Path(run_dir).name, "variant": variant, "band": list(band), "folders": folders}
    write_result(Path(out or run_dir) / STRATA_FILE, result, to_markdown(result))
    return result


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        result = stratify_run(args.run, args.data_root, args.variant, tuple(args.band), args.out)
        if result is None:
            raise DataError(f"no test folder of the run has a manifest.csv with patient, slice and mask_area_px "
                            f"under {args.data_root}; give the --data-root the run used.")
    except (DataError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
