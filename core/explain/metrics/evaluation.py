"""How far the explanation maps can be trusted, measured on LGG outlines: the evaluation itself (the command:
:mod:`core.explain.metrics.command`; its outputs: :mod:`core.explain.metrics.report`).

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

import csv
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
from core.explain.registry import get_method
from core.model.labels import TUMOUR

#: Methods too slow for every slice on a CPU: they run on the first --slow-limit slices.
SLOW_METHODS = ("scorecam", "occlusion")


#: Cascading randomisation: the top 1, 3 and 9 weighted layers (logit; + the dense head; + conv5_block3).
STAGE_DEPTHS = (1, 3, 9)


#: Shares of the brain hidden for the deletion curves.
CURVE_FRACTIONS = (0.05, 0.1, 0.25, 0.5)


#: Per-method scores reported with an interval, as (key, label).
SCORES = (("pointing_15px", "pointing game (15 px)"), ("pointing_strict", "pointing game (strict)"),
          ("energy_inside", "energy inside"), ("faithfulness_ratio", "faithfulness ratio"))


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
    probabilities = classifier.predict_grey(hidden)
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
        curve = deletion_curve(classifier.predict_grey, scan.grey, order_map, region, CURVE_FRACTIONS)
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
