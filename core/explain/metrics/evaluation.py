"""`python -m core explain-eval`: how far the explanation maps can be trusted, measured on LGG outlines.

    python -m core explain-eval [--data ../shared/data/lgg] [--masks ../shared/data/lgg-masks] [--model DIR]
                                [--methods M ...] [--limit N] [--slow-limit N] [--out DIR]

Every tumour slice of the LGG set (``manifest.csv`` rows labelled tumour; outline
``<masks>/<file name>``, 0/255, in the slice's pixels) is explained by every
method for the target "tumour", whatever the prediction, and scored
(:mod:`core.explain.metrics.faithfulness`):

- pointing game: the map's peak within 15 px of the outline, and strictly on it;
- energy inside: the share of the map's mass inside the outline;
- faithfulness: the drop of the tumour probability when the map's top 10% of the
  brain is hidden (ROAD-style imputation), against hiding 10% chosen by random
  maps on the layer's grid; the ratio of mean drops. Random scattered pixels are
  reported too, as a weaker reference;
- time per scan: explain() wall time, after one warm-up call per method.

Intervals are 95% percentile bootstraps over patients (whole patients resampled).
A sanity check randomises the top layers in cascade (Adebayo et al. 2018) on a few
slices: the Spearman correlation of trained and randomised maps should fall far
below 1. Deletion curves (probability against the share hidden) on a few slices.

The outline is compared in scan coordinates, where the heatmap already is; the
heatmap is zero outside the brain crop box, so outline pixels outside the box can
receive no mass and are kept in every score (an outline wholly outside the box is
a pointing miss unless the peak is within the tolerance, and energy 0); the JSON
counts such slices (``outline``).

Slices are taken in a patient-stratified order (round robin over patients,
seeded), so ``--limit N`` and ``--slow-limit N`` (Score-CAM and occlusion, default
one slice per patient) spread over as many patients as possible; the JSON states
how many slices and patients each method used. Writes ``explain_eval.json``,
``explain_eval.csv`` (one row per method) and ``explain_eval.png`` (example
slices with the outline and each method's map) into ``--out``, atomically.
Exit status: 0 done, 1 the model cannot be loaded, 2 bad arguments or data.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.explain import explain
from core.explain.metrics.faithfulness import (
    RANDOM_DRAWS,
    TOLERANCE_PX,
    brain_region,
    deletion_curve,
    energy_inside,
    hide,
    input_map,
    outline_share_in_box,
    patient_bootstrap,
    pointing_game,
    random_map,
    spearman,
)
from core.explain.registry import get_method, method_names
from core.imaging.preprocess import caffe_normalise
from core.io.atomic import atomic_path, write_atomic
from core.model.labels import TUMOUR

REPO = Path(__file__).resolve().parents[3]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "lgg"
DEFAULT_MASKS = REPO.parent / "shared" / "data" / "lgg-masks"
#: Methods too slow for every slice on a CPU: they run on the first --slow-limit slices.
SLOW_METHODS = ("scorecam", "occlusion")
#: Cascading randomisation: the top 1, 3 and 9 weighted layers (logit; + the dense head; + conv5_block3).
STAGE_DEPTHS = (1, 3, 9)
#: Shares of the brain hidden for the deletion curves.
CURVE_FRACTIONS = (0.05, 0.1, 0.25, 0.5)
#: Per-method scores reported with an interval, as (key, label).
SCORES = (("pointing_15px", "pointing game (15 px)"), ("pointing_strict", "pointing game (strict)"),
          ("energy_inside", "energy inside"), ("faithfulness_ratio", "faithfulness ratio"))
JSON_FILE, CSV_FILE, FIGURE_FILE = "explain_eval.json", "explain_eval.csv", "explain_eval.png"


class UsageError(Exception):
    """Bad arguments or data: exit status 2."""


@dataclass(frozen=True)
class Case:
    """One tumour slice: its image, its outline and its patient."""

    image: Path
    mask: Path
    patient: str
    mask_area: int


@dataclass(frozen=True)
class Settings:
    """What the evaluation does (from the command line)."""

    methods: tuple[str, ...]
    fraction: float = 0.1
    draws: int = RANDOM_DRAWS
    tolerance: float = TOLERANCE_PX
    curve_scans: int = 8
    sanity_scans: int = 4
    bootstrap: int = 2000
    seed: int = 0
    examples: int = 4
    layer: str | None = None


@dataclass
class Results:
    """What the pass over the slices collected."""

    rows: dict[str, list[dict]]
    scans: list[dict] = field(default_factory=list)
    kept: dict[int, dict] = field(default_factory=dict)
    curves: dict[str, list[np.ndarray]] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)


def _at_least(minimum: int):
    """An argparse type: an integer >= `minimum`."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}. Received: {text}")
        return value

    return parse


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1). Received: {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The explain-eval options, added to `parser` (a subcommand parser); returns it."""
    parser.add_argument("--data", default=str(DEFAULT_DATA), metavar="DIR", help="LGG folder with manifest.csv")
    parser.add_argument("--masks", default=str(DEFAULT_MASKS), metavar="DIR", help="folder of outline PNGs")
    parser.add_argument("--model", metavar="DIR", help="model directory (default: the shipped model)")
    parser.add_argument("--methods", nargs="+", choices=method_names(), default=list(method_names()),
                        metavar="M", help=f"methods to score (default: all: {' '.join(method_names())})")
    parser.add_argument("--limit", type=_at_least(1), metavar="N", help="score only N slices (patient-stratified)")
    parser.add_argument("--slow-limit", type=_at_least(1), default=53, metavar="N",
                        help=f"slices for {', '.join(SLOW_METHODS)} (default 53: one per patient)")
    parser.add_argument("--fraction", type=_share, default=0.1, help="share of the brain hidden (default 0.1)")
    parser.add_argument("--draws", type=_at_least(1), default=RANDOM_DRAWS, help="random maps per slice")
    parser.add_argument("--curve-scans", type=_at_least(0), default=8, metavar="N", help="slices with deletion curves")
    parser.add_argument("--sanity-scans", type=_at_least(0), default=4, metavar="N",
                        help="slices for the randomisation check")
    parser.add_argument("--bootstrap", type=_at_least(1), default=2000, metavar="N", help="bootstrap draws")
    parser.add_argument("--examples", type=_at_least(0), default=4, metavar="N", help="example slices in the figure")
    parser.add_argument("--layer", help="layer to explain (default: the model card's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/explain-eval", metavar="DIR", help="output folder")
    parser.add_argument("--write-card", action="store_true",
                        help="also store the per-method table in the model's card (`explanations`)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the evaluation described by parsed `args`; returns the exit status (0, 1 or 2)."""
    try:
        cases = load_cases(Path(args.data), Path(args.masks))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    classifier = _classifier_or_none(args.model)
    if classifier is None:
        return 1
    settings = Settings(methods=tuple(dict.fromkeys(args.methods)), fraction=args.fraction, draws=args.draws,
                        curve_scans=args.curve_scans, sanity_scans=args.sanity_scans, bootstrap=args.bootstrap,
                        seed=args.seed, examples=args.examples, layer=args.layer)
    order = stratified_order(cases, args.seed)[: args.limit]
    plan = {m: set(order[: args.slow_limit] if m in SLOW_METHODS else order) for m in settings.methods}
    order = [index for index in order if any(index in planned for planned in plan.values())]
    keep = set(order[: settings.sanity_scans]) | set(pick_examples(cases, order[: args.slow_limit], settings.examples))
    started = time.perf_counter()
    results = evaluate(classifier, cases, order, plan, settings, keep)
    sanity = randomisation_check(classifier, results, order[: settings.sanity_scans], settings)
    report = build_report(classifier, args, settings, results, sanity, time.perf_counter() - started)
    write_outputs(Path(args.out), report, results, cases, settings)
    if getattr(args, "write_card", False):
        write_card_entry(classifier.directory, report)
    print(markdown_table(report))
    print(f"wrote {JSON_FILE}, {CSV_FILE}, {FIGURE_FILE} in {args.out}", file=sys.stderr)
    return 0


def _classifier_or_none(model_dir: str | None):
    """The classifier in `model_dir` (None: the shipped one), or None once the reason is printed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from core.model.classifier import load_classifier

    try:
        return load_classifier(model_dir)
    except (OSError, ValueError) as error:
        print(f"error: cannot load the model {model_dir or '(shipped)'}: {error}", file=sys.stderr)
    return None


def load_cases(data: Path, masks: Path) -> list[Case]:
    """The tumour slices of `data`/manifest.csv, each with its outline in `masks`; UsageError when missing."""
    manifest = data / "manifest.csv"
    if not manifest.is_file():
        raise UsageError(f"{manifest} not found: --data must be the LGG folder holding manifest.csv.")
    if not masks.is_dir():
        raise UsageError(f"--masks {masks} is not a folder of outline PNGs.")
    with manifest.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("label") == TUMOUR]
    if not rows:
        raise UsageError(f"{manifest} lists no '{TUMOUR}' slices.")
    cases = [Case(data / row["file"], masks / Path(row["file"]).name, row["patient"],
                  int(row.get("mask_area_px") or 0)) for row in rows]
    missing = [case for case in cases if not case.image.is_file() or not case.mask.is_file()]
    if missing:
        raise UsageError(f"{len(missing)} slices or outlines are missing, e.g. {missing[0].image} / {missing[0].mask}.")
    return cases


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """bool (H, W) outline from a 0/255 PNG; ValueError unless it has the scan's `shape`."""
    from PIL import Image

    with Image.open(path) as image:
        mask = np.asarray(image.convert("L")) > 127
    if mask.shape != tuple(shape):
        raise ValueError(f"The outline {path} is {mask.shape}; its slice is {tuple(shape)}.")
    return mask


def stratified_order(cases: list[Case], seed: int = 0) -> list[int]:
    """Case indices, round robin over patients (patients and their slices in a seeded random order).

    Any prefix of length n covers min(n, patients) patients, and at most one more
    slice of any patient than of another.
    """
    rng = np.random.default_rng(seed)
    by_patient: dict[str, list[int]] = {}
    for index, case in enumerate(cases):
        by_patient.setdefault(case.patient, []).append(index)
    queues = [list(rng.permutation(by_patient[p])) for p in rng.permutation(sorted(by_patient))]
    order = []
    for turn in range(max(len(q) for q in queues)):
        order += [int(q[turn]) for q in queues if turn < len(q)]
    return order


def pick_examples(cases: list[Case], candidates: list[int], count: int) -> list[int]:
    """Up to `count` candidates with the largest outlines, one per patient (for the figure)."""
    chosen, patients = [], set()
    for index in sorted(candidates, key=lambda i: -cases[i].mask_area):
        if len(chosen) < count and cases[index].patient not in patients:
            chosen.append(index)
            patients.add(cases[index].patient)
    return chosen


def evaluate(classifier, cases: list[Case], order: list[int], plan: dict[str, set], settings: Settings,
             keep: set[int]) -> Results:
    """Score every planned (slice, method); keep the explanations of the slices in `keep`."""
    from core.imaging.pipeline import prepare_scan

    results = Results(rows={m: [] for m in settings.methods})
    first = prepare_scan(cases[order[0]].image, classifier.input_size)
    for method in settings.methods:  # build and trace each method once, timed apart
        start = time.perf_counter()
        explain(classifier, first, method, TUMOUR, settings.layer)
        results.build_seconds[method] = time.perf_counter() - start
    rng, started = np.random.default_rng(settings.seed), time.perf_counter()
    for position, index in enumerate(order):
        methods = [m for m in settings.methods if index in plan[m]]
        scan_row, rows, explanations = score_slice(classifier, cases[index], methods, settings, rng)
        mask = scan_row.pop("mask")
        results.scans.append(scan_row)
        shared = {key: scan_row[key] for key in ("file", "patient", "drop_random", "drop_random_pixels")}
        for method, row in rows.items():
            results.rows[method].append({**shared, **row})
        if position < settings.curve_scans:
            _add_curves(results.curves, classifier, explanations, rng)
        if index in keep:
            results.kept[index] = {"explanations": explanations, "mask": mask}
        _progress(position + 1, len(order), started)
    return results


def _progress(done: int, total: int, started: float) -> None:
    if done % 25 and done != total:
        return
    each = (time.perf_counter() - started) / done
    print(f"explain-eval: {done}/{total} slices, {each:.1f} s per slice, ~{each * (total - done) / 60:.0f} min left",
          file=sys.stderr, flush=True)


def score_slice(classifier, case: Case, methods: list[str], settings: Settings, rng: np.random.Generator):
    """Explain one slice with each method and score it -> (slice row, {method: row}, {method: Explanation})."""
    from core.imaging.pipeline import prepare_scan

    scan = prepare_scan(case.image, classifier.input_size)
    mask = read_mask(case.mask, scan.pixels.shape[:2])
    explanations, seconds = {}, {}
    for method in methods:
        start = time.perf_counter()
        explanations[method] = explain(classifier, scan, method, TUMOUR, settings.layer)
        seconds[method] = time.perf_counter() - start
    probability = next(iter(explanations.values())).probability
    after = hidden_probabilities(classifier, explanations, settings, rng)
    rows = {m: {"pointing_15px": float(pointing_game(e.heatmap, mask, settings.tolerance)),
                "pointing_strict": float(pointing_game(e.heatmap, mask, 0)),
                "energy_inside": energy_inside(e.heatmap, mask), "drop_top": probability - after[m],
                "blank": bool(e.blank), "seconds": seconds[m]} for m, e in explanations.items()}
    x0, y0, x1, y1 = scan.crop.box
    scan_row = {"file": case.image.name, "patient": case.patient, "probability": probability, "mask": mask,
                "drop_random": probability - after["random"], "drop_random_pixels": probability - after["pixels"],
                "outline_in_crop": outline_share_in_box(mask, scan.crop.box),
                "chance_energy": float(mask[y0:y1, x0:x1].sum() / max((y1 - y0) * (x1 - x0), 1))}
    return scan_row, rows, explanations


def hidden_probabilities(classifier, explanations: dict, settings: Settings, rng: np.random.Generator) -> dict:
    """Tumour probability after hiding each method's top share, a random-map share and random pixels.

    Returns {method: p, "random": mean over draws, "pixels": mean over draws}; one batch through the classifier.
    """
    scan = next(iter(explanations.values())).scan
    grey, region = scan.grey, brain_region(scan.grey)
    grid = next(iter(explanations.values())).raw.shape
    maps = [input_map(e) for e in explanations.values()]
    maps += [random_map(scan.size, grid, rng) for _ in range(settings.draws)]
    maps += [rng.random(grey.shape) for _ in range(settings.draws)]
    hidden = np.stack([hide(grey, order_map, region, settings.fraction) for order_map in maps])
    probabilities = classifier.predict_inputs(caffe_normalise(hidden))
    count = len(explanations)
    after = dict(zip(explanations, probabilities[:count].tolist()))
    after["random"] = float(probabilities[count : count + settings.draws].mean())
    after["pixels"] = float(probabilities[count + settings.draws :].mean())
    return after


def _add_curves(curves: dict, classifier, explanations: dict, rng: np.random.Generator) -> None:
    """Append one slice's deletion curves (probability at 0 and at each CURVE_FRACTIONS) per method and random."""
    scan = next(iter(explanations.values())).scan
    region, probability = brain_region(scan.grey), next(iter(explanations.values())).probability
    maps = {m: input_map(e) for m, e in explanations.items()}
    maps["random"] = random_map(scan.size, next(iter(explanations.values())).raw.shape, rng)
    for name, order_map in maps.items():
        curve = deletion_curve(classifier.predict_inputs, scan.grey, order_map, region, CURVE_FRACTIONS)
        curves.setdefault(name, []).append(np.concatenate([[probability], curve]))


def cascade_stages(model, depths=STAGE_DEPTHS) -> list[list[str]]:
    """Names of the top `depth` weighted layers (from the logit down), one list per depth."""
    from core.model.classifier import LOGIT_LAYER

    names = [layer.name for layer in model.layers]
    weighted = [layer.name for layer in model.layers[: names.index(LOGIT_LAYER) + 1] if layer.weights][::-1]
    return [weighted[:depth] for depth in depths if depth <= len(weighted)]


def randomised_classifier(classifier, layers: list[str], seed: int = 0):
    """A copy of `classifier` whose `layers` are freshly initialised (seeded); the rest keep their weights."""
    import keras

    from core.model.classifier import Classifier

    keras.utils.set_random_seed(seed)
    model = keras.models.clone_model(classifier.model)
    for layer, trained in zip(model.layers, classifier.model.layers):
        if layer.name not in layers:
            layer.set_weights(trained.get_weights())
    return Classifier(model=model, card=classifier.card)


def randomisation_check(classifier, results: Results, indices: list[int], settings: Settings) -> dict:
    """Spearman correlation of each method's map, trained vs cascading-randomised top layers, on `indices`."""
    stages = []
    for layers in cascade_stages(classifier.model) if indices else []:
        randomised = randomised_classifier(classifier, layers, settings.seed)
        correlations = {m: [] for m in settings.methods}
        for index in indices:
            for method, trained in results.kept[index]["explanations"].items():
                other = explain(randomised, trained.scan, method, TUMOUR, settings.layer)
                correlations[method].append(spearman(trained.crop_heatmap, other.crop_heatmap))
        stages.append({"randomised_layers": layers, "spearman": {
            m: {"mean": _nanmean(v), "slices": len(v), "undefined": int(np.isnan(v).sum()), "values": v}
            for m, v in correlations.items() if v}})
        del randomised
    return {"slices": len(indices), "stages": stages,
            "reading": "Spearman correlation of the trained model's map with the map of the model whose top layers "
                       "were re-initialised; near 1 means the map ignores what those layers learned (it fails); "
                       "undefined when either map is blank."}


def _nanmean(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return None if values.size == 0 or np.isnan(values).all() else float(np.nanmean(values))


def summarise_method(method: str, rows: list[dict], settings: Settings) -> dict[str, Any]:
    """One method's scores: means with patient-bootstrap 95% intervals, drops, blanks, time per scan."""
    patients = [row["patient"] for row in rows]

    def interval(key: str, over: str | None = None) -> dict:
        denominator = None if over is None else [row[over] for row in rows]
        value, low, high = patient_bootstrap([row[key] for row in rows], patients, denominator,
                                             settings.bootstrap, settings.seed)
        return {"value": value, "ci95": [low, high]}

    seconds = np.array([row["seconds"] for row in rows])
    return {
        "method": method, "label": get_method(method).label, "slices": len(rows), "patients": len(set(patients)),
        "pointing_15px": interval("pointing_15px"), "pointing_strict": interval("pointing_strict"),
        "energy_inside": interval("energy_inside"), "drop_top": interval("drop_top"),
        "drop_random": interval("drop_random"), "drop_random_pixels": interval("drop_random_pixels"),
        "faithfulness_ratio": interval("drop_top", over="drop_random"),
        "ratio_vs_random_pixels": interval("drop_top", over="drop_random_pixels"),
        "blank_maps": int(sum(row["blank"] for row in rows)),
        "ms_per_scan": {"median": float(np.median(seconds) * 1000), "mean": float(seconds.mean() * 1000)},
    }


def build_report(classifier, args, settings: Settings, results: Results, sanity: dict, seconds: float) -> dict:
    """The JSON report: settings, data counts, outline handling, per-method scores, sanity check, curves."""
    import keras

    scans = results.scans
    inside = np.array([row["outline_in_crop"] for row in scans])
    curves = {name: np.mean(values, axis=0).tolist() for name, values in results.curves.items()}
    return {
        "command": "python -m core explain-eval", "arguments": {k: v for k, v in vars(args).items() if k != "func"},
        "model": {"id": classifier.model_id, "directory": str(classifier.directory),
                  "layer": settings.layer or classifier.card.explain_layer},
        "target": TUMOUR, "fraction_hidden": settings.fraction, "random_draws": settings.draws,
        "tolerance_px": settings.tolerance, "bootstrap": {"draws": settings.bootstrap, "over": "patients"},
        "slices": {"evaluated": len(scans), "patients": len({row["patient"] for row in scans}),
                   "mean_probability": float(np.mean([row["probability"] for row in scans]))},
        "outline": {"entirely_outside_crop": int((inside == 0).sum()),
                    "partly_outside_crop": int(((inside > 0) & (inside < 1)).sum()),
                    "mean_share_outside_crop": float(1 - inside.mean()),
                    "chance_energy_inside": float(np.mean([row["chance_energy"] for row in scans])),
                    "handling": "kept in every score: the map is zero outside the crop box, so an outline outside "
                                "it receives no mass (energy) and a peak can reach it only within the tolerance"},
        "methods": {m: summarise_method(m, rows, settings) for m, rows in results.rows.items() if rows},
        "randomisation": sanity,
        "per_slice": {"slices": scans, "methods": results.rows},
        "deletion_curves": {"fractions": [0.0, *CURVE_FRACTIONS],
                            "slices": len(next(iter(results.curves.values()), [])),
                            "mean_probability": curves},
        "timing": {"build_seconds": results.build_seconds, "total_seconds": seconds,
                   "load_average": list(os.getloadavg()), "cpus": os.cpu_count(), "keras": keras.__version__},
    }


#: What the card keeps of each method's summary.
CARD_KEYS = ("label", "slices", "patients", *(key for key, _ in SCORES), "drop_top", "drop_random", "ms_per_scan")


def card_entry(report: dict) -> dict:
    """The model card's `explanations`: per method the scores with 95% intervals (over patients), the mean
    probability drops and time; the randomisation check's mean Spearman correlation per stage; the settings;
    and the table as markdown_table prints it."""
    local = ("data", "masks", "out", "model", "write_card")  # paths of this machine, and the option itself
    settings = {k: v for k, v in report["arguments"].items() if k not in local}
    return {"command": "python -m core explain-eval", "data": Path(report["arguments"]["data"]).name,
            "settings": settings, "target": report["target"], "slices": report["slices"],
            "methods": {m: {k: summary[k] for k in CARD_KEYS} for m, summary in report["methods"].items()},
            "randomisation": [{"randomised_layers": stage["randomised_layers"],
                               "mean_spearman": {m: _finite(v.get("mean")) for m, v in stage["spearman"].items()}}
                              for stage in report["randomisation"]["stages"]],
            "table": markdown_table(report)}


def _finite(value):
    """A float, or None for NaN (the card stays strict JSON)."""
    return None if value is None or not np.isfinite(value) else float(value)


def write_card_entry(model_dir: Path, report: dict) -> Path:
    """Store card_entry(report) as the card's `explanations` (the weights and their hash unchanged)."""
    from core.model.card import CARD_FILE, update_card

    update_card(model_dir, explanations=json.loads(json.dumps(card_entry(report), default=_json_default)))
    return Path(model_dir) / CARD_FILE


def csv_text(report: dict) -> str:
    """One row per method: scores with interval bounds, drops, ratios, blanks, time, randomisation."""
    stages = report["randomisation"]["stages"]
    header = ["method", "label", "slices", "patients"]
    for key, _ in SCORES:
        header += [key, f"{key}_low", f"{key}_high"]
    header += ["drop_top", "drop_random", "drop_random_pixels", "ratio_vs_random_pixels", "blank_maps",
               "ms_per_scan_median"] + [f"spearman_top{len(stage['randomised_layers'])}" for stage in stages]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for method, summary in report["methods"].items():
        row = [method, summary["label"], summary["slices"], summary["patients"]]
        for key, _ in SCORES:
            row += [_fmt(summary[key]["value"]), *(_fmt(v) for v in summary[key]["ci95"])]
        row += [_fmt(summary[key]["value"]) for key in ("drop_top", "drop_random", "drop_random_pixels",
                                                        "ratio_vs_random_pixels")]
        row += [summary["blank_maps"], f"{summary['ms_per_scan']['median']:.0f}"]
        row += [_fmt(stage["spearman"].get(method, {}).get("mean")) for stage in stages]
        writer.writerow(row)
    return buffer.getvalue()


def _fmt(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"


def markdown_table(report: dict) -> str:
    """The per-method table for people: scores [95% CI], mean drops, blanks, ms per scan."""
    lines = ["| method | slices (patients) | " + " | ".join(label for _, label in SCORES)
             + " | drop top / random | blank | ms/scan |", "|---" * (len(SCORES) + 5) + "|"]
    for summary in report["methods"].values():
        cells = [f"{summary['label']}", f"{summary['slices']} ({summary['patients']})"]
        for key, _ in SCORES:
            value, (low, high) = summary[key]["value"], summary[key]["ci95"]
            cells.append(f"{value:.2f} [{low:.2f}, {high:.2f}]")
        cells.append(f"{summary['drop_top']['value']:.3f} / {summary['drop_random']['value']:.3f}")
        cells += [str(summary["blank_maps"]), f"{summary['ms_per_scan']['median']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(out: Path, report: dict, results: Results, cases: list[Case], settings: Settings) -> None:
    """explain_eval.json, .csv and .png in `out`, each written atomically."""
    write_atomic(out / JSON_FILE, json.dumps(report, indent=2, default=_json_default) + "\n")
    write_atomic(out / CSV_FILE, csv_text(report))
    examples = [index for index in results.kept if len(results.kept[index]["explanations"]) == len(settings.methods)]
    examples = sorted(examples, key=lambda i: -cases[i].mask_area)[: max(settings.examples, 1)]
    with atomic_path(out / FIGURE_FILE, suffix=".png") as tmp:
        draw_figure(tmp, [results.kept[i] for i in examples], [cases[i].image.name for i in examples],
                    settings.methods)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, np.ndarray)):
        return str(value) if isinstance(value, Path) else value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def draw_figure(path: Path, examples: list[dict], names: list[str], methods: tuple[str, ...]) -> None:
    """PNG grid: one row per example slice (the scan, then each method's map), the outline in cyan."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, columns = max(len(examples), 1), len(methods) + 1
    figure = Figure(figsize=(2.1 * columns, 2.3 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for row, (example, name) in enumerate(zip(examples, names)):
        explanations, mask = example["explanations"], example["mask"]
        panels = [("scan", None)] + [(get_method(m).label, explanations[m]) for m in methods]
        for column, (title, explanation) in enumerate(panels):
            axis = figure.add_subplot(rows, columns, row * columns + column + 1)
            scan = next(iter(explanations.values())).pixels
            axis.imshow(explanation.overlay(alpha=0.6) if explanation else scan, cmap="gray")
            axis.contour(mask, levels=[0.5], colors="cyan", linewidths=0.7)
            if explanation is not None and not explanation.blank:
                y, x = np.unravel_index(int(np.argmax(explanation.heatmap)), explanation.heatmap.shape)
                axis.plot([x], [y], marker="x", color="lime", markersize=6)
            axis.set_title(title if column else name[:24], fontsize=7)
            axis.set_axis_off()
    figure.savefig(path, format="png", dpi=110)
