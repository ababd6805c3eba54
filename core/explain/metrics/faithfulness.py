"""Check an explanation: against an outline drawn by people, and against the model itself.

Localisation (pure numpy; maps and outlines in the same coordinates, e.g. an
:class:`core.explain.Explanation`'s scan-sized ``heatmap`` and the scan's mask):

    pointing_game(heatmap, mask, tolerance=15) -> bool     the map's peak on (or near) the outline
    energy_inside(heatmap, mask) -> float in [0, 1]        share of the map's mass inside the outline
    outline_share_in_box(mask, box) -> float in [0, 1]     how much of the outline the crop box holds

Faithfulness (does hiding what the map highlights change the prediction?):

    hide(grey, order_map, region, fraction) -> grey        the top `fraction` of `region` filled in
    faithfulness_summary(classifier, explanation, fraction=0.15) -> dict
    describe_faithfulness(summary) -> str                  one sentence for the app
    deletion_curve(predict, grey, order_map, region, fractions) -> probabilities

Hiding is ROAD-style (Rong et al. 2022, "A consistent and efficient evaluation
strategy for attribution methods"; pytorch-grad-cam's ``metrics/road.py``):
hidden pixels are not painted black (a black hole is a shape the model can read)
but imputed from their neighbours as ROAD's linear imputer does (:func:`impute`),
so the removal leaves a smooth blend of the surrounding grey. Pixels are hidden inside the brain
(:func:`brain_region` of the model's grey input), never in the black background.

The baseline is a *random map* ranked the same way: uniform noise on the
explained layer's grid, upsampled like a CAM (:func:`random_map`), so the random
share is removed as blobs of the same scale as the map's. Scattered random
pixels (``rng.random((s, s))`` as the order map) are a weaker baseline: each one
is imputed almost perfectly from its neighbours, so nearly anything beats it.

Statistics: :func:`patient_bootstrap` (confidence intervals resampling patients)
and :func:`spearman` (rank correlation, for the randomisation sanity check).
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence

import numpy as np

from core.explain.imputation import check_grey, impute  # noqa: F401 - impute is part of this module's API
from core.explain.maps import to_crop
from core.model.labels import DISPLAY, TUMOUR

#: Pointing-game tolerance in scan pixels: a peak this close to the outline counts as a hit.
TOLERANCE_PX = 15.0
#: Share of the brain the app hides (``faithfulness_summary``).
APP_FRACTION = 0.15
#: Random maps averaged for the random baseline.
RANDOM_DRAWS = 3
#: Grey level above which a pixel of the model's grey input counts as tissue (:func:`brain_region`).
BRAIN_LEVEL = 20
#: A map whose range is at most this is flat: it has no peak and highlights nothing.
FLAT_TOL = 1e-12


def _check_map_and_mask(heatmap, mask) -> tuple[np.ndarray, np.ndarray]:
    heatmap, mask = np.asarray(heatmap), np.asarray(mask)
    if heatmap.ndim != 2 or heatmap.shape != mask.shape:
        raise ValueError(
            "heatmap and mask must be 2-D arrays of the same shape (one scan's coordinates). "
            f"Received: heatmap shape {heatmap.shape}, mask shape {mask.shape}"
        )
    heatmap = heatmap.astype(np.float64)
    if not np.all(np.isfinite(heatmap)) or (heatmap.size and heatmap.min() < 0):
        raise ValueError("heatmap must be finite and non-negative (a map in [0, 1]).")
    mask = mask > 0
    if not mask.any():
        raise ValueError("The outline (mask) is empty: there is nothing to point at.")
    return heatmap, mask


def is_flat(values: np.ndarray) -> bool:
    """True when a map has no structure: empty, or its range is at most FLAT_TOL."""
    values = np.asarray(values, dtype=np.float64)
    return values.size == 0 or float(values.max() - values.min()) <= FLAT_TOL


def pointing_game(heatmap: np.ndarray, mask: np.ndarray, tolerance: float = TOLERANCE_PX) -> bool:
    """True when the map's peak lies on the outline or within `tolerance` pixels of it.

    heatmap: float (H, W), finite, >= 0 (e.g. an Explanation's scan-sized ``heatmap``).
    mask: (H, W) bool or 0/255, the outline in the same coordinates; must not be empty.
    tolerance: Euclidean distance in pixels from the peak to the nearest outline pixel;
        0 is the strict game (the peak pixel itself is outlined).
    The peak is the first maximum in row-major order (``np.argmax``). A flat map
    (all values equal, e.g. a blank all-zero map) has no peak: a miss.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number of pixels >= 0. Received: tolerance={tolerance!r}")
    heatmap, mask = _check_map_and_mask(heatmap, mask)
    if is_flat(heatmap):
        return False
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    if mask[y, x]:
        return True
    ys, xs = np.nonzero(mask)
    return bool(np.min((ys - y) ** 2 + (xs - x) ** 2) <= tolerance**2)


def energy_inside(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's mass inside the outline: sum(map * mask) / sum(map), in [0, 1].

    heatmap: float (H, W), finite, >= 0; mask: (H, W) bool or 0/255, not empty.
    An all-zero map has no mass: 0.0. A uniform map scores the outline's share of the area.
    """
    heatmap, mask = _check_map_and_mask(heatmap, mask)
    total = float(heatmap.sum())
    return 0.0 if total <= 0 else float(heatmap[mask].sum() / total)


def outline_share_in_box(mask: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of the outline's pixels inside the crop box (x0, y0, x1, y1; x1, y1 exclusive), in [0, 1].

    A map is zero outside the crop box, so outline pixels outside it can receive
    no mass: below 1 the energy inside cannot reach 1; at 0 the pointing game is
    a miss unless the peak is within the tolerance of the outline.
    """
    mask = np.asarray(mask) > 0
    if mask.ndim != 2 or not mask.any():
        raise ValueError(f"mask must be a non-empty 2-D outline. Received: shape {mask.shape}")
    x0, y0, x1, y1 = box
    return float(mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)].sum() / mask.sum())


def brain_region(grey: np.ndarray, level: int = BRAIN_LEVEL) -> np.ndarray:
    """uint8 (s, s) grey model input -> bool (s, s): the brain, where pixels may be hidden.

    Tissue (grey > `level`) plus the dark parts it encloses (pixels with tissue on
    both sides along their row and along their column: ventricles, dark lesions).
    All True when under 1% of the image is tissue (no brain to find).
    """
    grey = check_grey(grey)
    tissue = grey > level
    if tissue.mean() < 0.01:
        return np.ones_like(tissue)
    rows = np.logical_or.accumulate(tissue, axis=1) & np.logical_or.accumulate(tissue[:, ::-1], axis=1)[:, ::-1]
    cols = np.logical_or.accumulate(tissue, axis=0) & np.logical_or.accumulate(tissue[::-1], axis=0)[::-1]
    return rows & cols


def top_fraction(order_map: np.ndarray, region: np.ndarray, fraction: float) -> np.ndarray:
    """bool (H, W): the round(fraction * region.sum()) pixels of `region` where `order_map` is highest.

    order_map: float (H, W); region: bool (H, W); fraction in (0, 1]. Ties are
    broken by a fixed pseudo-random order. A map flat over the region highlights
    nothing: the result is empty.
    """
    _check_fraction(fraction)
    order_map, region = np.asarray(order_map, dtype=np.float64), np.asarray(region, dtype=bool)
    if order_map.shape != region.shape or order_map.ndim != 2:
        raise ValueError(f"order_map and region must be 2-D of one shape. Received: {order_map.shape}, {region.shape}")
    selected = np.zeros(region.shape, dtype=bool)
    values = order_map[region]
    count = int(round(fraction * values.size))
    if count == 0 or is_flat(values):
        return selected
    tiebreak = np.random.default_rng(0).random(values.size)
    chosen = np.lexsort((tiebreak, -values))[:count]
    selected.flat[np.flatnonzero(region)[chosen]] = True
    return selected


def _check_fraction(fraction) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1]. Received: fraction={fraction!r}")


def hide(grey: np.ndarray, order_map: np.ndarray, region: np.ndarray, fraction: float) -> np.ndarray:
    """uint8 (s, s) grey with the top `fraction` of `region` by `order_map` imputed (:func:`impute`)."""
    return impute(grey, top_fraction(order_map, region, fraction))


def random_map(size: int, grid: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """float32 (size, size) in [0, 1]: uniform noise on a `grid` (h', w'), upsampled like a CAM."""
    if len(grid) != 2 or min(grid) < 1:
        raise ValueError(f"grid must be (h', w') with both at least 1. Received: grid={grid!r}")
    return to_crop(rng.random(tuple(grid)).astype(np.float32), (size, size), False)


def input_map(explanation) -> np.ndarray:
    """An Explanation's map on the model input: float32 (s, s) in [0, 1] (all zero when blank)."""
    size = explanation.scan.size
    return to_crop(explanation.raw, (size, size), explanation.blank)


def faithfulness_summary(classifier, explanation, fraction: float = APP_FRACTION, draws: int = RANDOM_DRAWS,
                         seed: int = 0) -> dict:
    """Tumour probability before and after hiding the map's top `fraction` of the brain, and a random share.

    classifier: the :class:`core.model.classifier.Classifier` that made `explanation` (an
    :class:`core.explain.Explanation`). Hidden on the model's grey input (see
    :func:`hide`); the random share is the mean over `draws` random maps (seeded).
    Returns {method, target, fraction, probability, after_top, after_random,
    random_draws, blank}; probabilities in [0, 1]. A blank map hides nothing.
    """
    _check_fraction(fraction)
    grey = explanation.scan.grey
    if explanation.scan.size != classifier.input_size:
        raise ValueError(f"The explanation's input is {explanation.scan.size} px; the classifier takes "
                         f"{classifier.input_size} px. Explain with this classifier first.")
    region, rng = brain_region(grey), np.random.default_rng(seed)
    maps = [input_map(explanation)] + [random_map(grey.shape[0], explanation.raw.shape, rng) for _ in range(draws)]
    probabilities = classifier.predict_grey(np.stack([hide(grey, m, region, fraction) for m in maps]))
    return {
        "method": explanation.method, "target": explanation.target, "fraction": float(fraction),
        "probability": float(explanation.probability), "after_top": float(probabilities[0]),
        "after_random": float(probabilities[1:].mean()) if draws else None, "random_draws": int(draws),
        "blank": bool(explanation.blank),
    }


def describe_faithfulness(summary: dict) -> str:
    """One sentence from :func:`faithfulness_summary`, e.g. "Hiding the highlighted 15% of the brain
    lowers the tumour probability from 92% to 31% (hiding a random 15%: 90%)."
    """
    share = f"{summary['fraction']:.0%}"
    if summary.get("blank"):
        return f"The map is blank: it highlights nothing to hide (tumour probability {summary['probability']:.0%})."
    before, after = summary["probability"], summary["after_top"]
    verb = "lowers" if after < before - 0.005 else "raises" if after > before + 0.005 else "leaves"
    change = f"from {before:.0%} to {after:.0%}" if verb != "leaves" else f"at {before:.0%}"
    evidence = "" if summary.get("target", TUMOUR) == TUMOUR else \
        f" (evidence for '{DISPLAY.get(summary['target'], summary['target']).lower()}')"
    random = "" if summary.get("after_random") is None else f" (hiding a random {share}: {summary['after_random']:.0%})"
    return f"Hiding the highlighted {share} of the brain{evidence} {verb} the tumour probability {change}{random}."


def deletion_curve(predict: Callable[[np.ndarray], np.ndarray], grey: np.ndarray, order_map: np.ndarray,
                   region: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """float32 (len(fractions),): probabilities after hiding each top fraction of `region` by `order_map`.

    predict: uint8 (n, s, s) grey crops -> (n,) probabilities (e.g. ``classifier.predict_grey``).
    grey: uint8 (s, s); order_map: float (s, s); region: bool (s, s); fractions each in (0, 1].
    """
    hidden = np.stack([hide(grey, order_map, region, fraction) for fraction in fractions])
    return np.asarray(predict(hidden), dtype=np.float32)


def patient_bootstrap(numerator: Sequence[float], groups: Sequence[Hashable],
                      denominator: Sequence[float] | None = None, n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """sum(numerator) / sum(denominator) and its percentile bootstrap interval, resampling whole groups.

    numerator: float (n,); groups: (n,) labels (patients), so slices of one patient
    move together; denominator: float (n,), default all ones (the statistic is
    then the mean). Returns (estimate, low, high); low and high are nan with
    fewer than 2 groups. Draws whose denominator sums to 0 are skipped.
    """
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.ones_like(numerator) if denominator is None else np.asarray(denominator, dtype=np.float64)
    sizes = {numerator.size, denominator.size, len(groups)}
    if numerator.ndim != 1 or denominator.ndim != 1 or numerator.size == 0 or len(sizes) != 1:
        raise ValueError(f"numerator, denominator and groups must be 1-D of one non-zero length. "
                         f"Received: {numerator.shape}, {denominator.shape}, {len(groups)}")
    _, index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    count = int(index.max()) + 1
    top, bottom = np.bincount(index, numerator, count), np.bincount(index, denominator, count)
    estimate = float(top.sum() / bottom.sum()) if bottom.sum() != 0 else float("nan")
    if count < 2:
        return estimate, float("nan"), float("nan")
    draws = np.random.default_rng(seed).integers(0, count, size=(n_boot, count))
    weights = np.zeros((n_boot, count))
    np.add.at(weights, (np.arange(n_boot)[:, None], draws), 1.0)
    sums, totals = weights @ top, weights @ bottom
    stats = sums[totals != 0] / totals[totals != 0]
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail]) if stats.size else (float("nan"),) * 2
    return estimate, float(low), float(high)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of a 1-D array, ties given their mean rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps of one shape, in [-1, 1]; nan when either is flat."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"The maps must have the same size. Received: {a.size} and {b.size}")
    if is_flat(a) or is_flat(b):
        return float("nan")
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])
