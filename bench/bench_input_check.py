"""Speed and rejection rates of the input check (core.quality.input_check) on real slices and on non-MRI images.

Prints the median and 90th percentile milliseconds of ``check_input`` on 512x512 scans, then the
rejection rate per source of the real slices in ../shared/data (br35h, nav, mos/Testing,
mos/Training, lgg; both classes) and per category of the non-MRI set that
:func:`non_mri_images` assembles from images shipped inside installed packages (scikit-image,
scikit-learn, matplotlib, networkx, pydicom) plus documents, charts, screenshots, noise, blank
images and gradients drawn in code, twice: pixels only (as if every file were exported to PNG), and
as uploaded (the DICOM files with their tags, as the app and the CLI check them). With
``--unseen-sources``, each source group's refusals by a check fitted without it (how the check may do on
MR slices from a source it never saw). Only --fit writes (core/quality/input_check_tables.json). Run from the repo root:

    .venv/bin/python bench/bench_input_check.py [--runs 200] [--per-source N] [--list-rejected] [--unseen-sources]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from core import crop_brain, read_scan  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
#: The real-slice sources under DATA; every image file below each counts.
REAL_SOURCES = ("br35h", "nav", "mos/Testing", "mos/Training", "lgg", "lgg-t1pre", "lgg-t1post")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm")

NonMri = tuple[str, str, np.ndarray]  # (name, category, uint8 HxW or HxWx3 pixels)

# --- images shipped inside installed packages ------------------------------------------------

#: scikit-image's bundled samples (skimage/data), labelled by looking at each.
SKIMAGE_FILES = {
    "astronaut.png": "photo", "brick.png": "photo", "camera.png": "photo",
    "cell.png": "microscopy", "chelsea.png": "photo", "chessboard_GRAY.png": "graphic",
    "chessboard_RGB.png": "graphic", "clock_motion.png": "photo", "coffee.png": "photo",
    "coins.png": "photo", "color.png": "graphic", "grass.png": "photo", "gravel.png": "photo",
    "horse.png": "graphic", "hubble_deep_field.jpg": "photo", "ihc.png": "microscopy",
    "logo.png": "graphic", "microaneurysms.png": "retina photo", "moon.png": "photo",
    "motorcycle_left.png": "photo", "motorcycle_right.png": "photo", "page.png": "document",
    "phantom.png": "CT phantom", "retina.jpg": "retina photo", "rocket.jpg": "photo",
    "text.png": "document",
}

#: pydicom's test files that hold a readable image, labelled by looking at each. None is a
#: brain MR slice. Files holding the same pixels as one listed before are dropped.
PYDICOM_FILES = {
    "693_J2KI.dcm": "CT",  # head CT, odd window: skull white, brain grey
    "CT_small.dcm": "CT",  # vertebra
    "J2K_pixelrep_mismatch.dcm": "CT",  # head CT, brain window
    "JPEG2000.dcm": "nuclear medicine",  # whole-body bone scan
    "MR_small.dcm": "MR other body part",  # 64x64 detail, not a head
    "examples_overlay.dcm": "MR other body part",  # axial abdomen
    "ExplVR_BigEnd.dcm": "ultrasound",  # colour
    "examples_jpeg2k.dcm": "ultrasound",  # colour Doppler screen
    "examples_palette.dcm": "ultrasound",
    "examples_rgb_color.dcm": "ultrasound",
    "examples_ybr_color.dcm": "ultrasound",  # cardiac, grey with annotations
    "SC_jpeg_no_color_transform.dcm": "blank",  # near-white with specks
    "SC_jpeg_no_color_transform_2.dcm": "blank",
    "SC_rgb_jpeg_app14_dcmd.dcm": "blank",
    "SC_rgb_jpeg_dcmd.dcm": "blank",
    "SC_rgb_jpeg.dcm": "blank",
    "SC_rgb_dcmtk_+eb+cr.dcm": "graphic",  # colour bars
    "SC_rgb_rle_2frame.dcm": "graphic",
    "SC_rgb_rle_32bit_2frame.dcm": "graphic",
    "SC_ybr_full_422_uncompressed.dcm": "graphic",
    "image_dfl.dcm": "graphic",  # grey squares
    "liver_1frame.dcm": "segmentation mask",
}


def _read_files(paths: dict[str, tuple[str, str]]) -> Iterator[NonMri]:
    """Read {name: (path, category)} with core.read_scan; unreadable files are skipped."""
    for name, (path, category) in paths.items():
        try:
            yield name, category, read_scan(path).pixels
        except (OSError, ValueError):  # ScanError is a ValueError: too small, other format...
            continue


def skimage_images() -> Iterator[NonMri]:
    """scikit-image's bundled sample files, plus 12 of its LFW faces (25x25, upscaled x4)."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    yield from _read_files({f"skimage/{n}": (str(folder / n), c) for n, c in SKIMAGE_FILES.items()
                            if (folder / n).is_file()})
    faces = folder / "lfw_subset.npy"
    if faces.is_file():
        for i, face in enumerate(np.load(faces)[::17][:12]):
            grey = np.clip(np.asarray(face, np.float64) * 255, 0, 255).astype(np.uint8)
            yield f"skimage/lfw_subset[{i * 17}]", "photo", np.asarray(
                Image.fromarray(grey).resize((100, 100), Image.BICUBIC))


def other_package_images() -> Iterator[NonMri]:
    """scikit-learn's two sample photos, matplotlib's sample images, networkx's drawing baselines."""
    paths: dict[str, tuple[str, str]] = {}
    try:
        import sklearn

        for p in sorted(glob.glob(os.path.join(os.path.dirname(sklearn.__file__), "datasets", "images", "*.jpg"))):
            paths[f"sklearn/{os.path.basename(p)}"] = (p, "photo")
    except ImportError:
        pass
    import matplotlib

    sample = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data")
    for name, category in (("grace_hopper.jpg", "photo"), ("logo2.png", "graphic"),
                           ("Minduka_Present_Blue_Pack.png", "graphic")):
        paths[f"matplotlib/{name}"] = (os.path.join(sample, name), category)
    try:
        import networkx

        base = os.path.join(os.path.dirname(networkx.__file__), "drawing", "tests", "baseline")
        for p in sorted(glob.glob(os.path.join(base, "*.png"))):
            paths[f"networkx/{os.path.basename(p)}"] = (p, "chart")
    except ImportError:
        pass
    yield from _read_files({k: v for k, v in paths.items() if os.path.isfile(v[0])})


def pydicom_tags() -> dict[str, dict]:
    """{name: Scan.meta} of the PYDICOM_FILES, named as pydicom_images names them: the DICOM tags
    (modality, body part) that the app and the CLI pass to the input check with the pixels."""
    import warnings

    import pydicom.data

    found = {os.path.basename(p): p for p in pydicom.data.get_testdata_files()}
    tags = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in PYDICOM_FILES:
            try:
                tags[f"pydicom/{name}"] = dict(read_scan(found[name]).meta)
            except (KeyError, OSError, ValueError):
                continue
    return tags


def pydicom_images() -> Iterator[NonMri]:
    """pydicom's labelled test images (PYDICOM_FILES), each distinct pixel array once."""
    import warnings

    import pydicom.data

    found = {os.path.basename(p): p for p in pydicom.data.get_testdata_files()}
    seen: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, category, pixels in _read_files(
                {f"pydicom/{n}": (found[n], c) for n, c in PYDICOM_FILES.items() if n in found}):
            digest = hashlib.sha1(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                yield name, category, pixels


# --- images drawn in code ----------------------------------------------------------------------


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


_WORDS = ("the patient was scanned on a clinical system and the report lists findings in the "
          "left frontal lobe with no midline shift results table figure method data analysis "
          "summary conclusion reference appendix page section revision approved").split()


def _text_lines(rng: np.random.Generator, count: int, words: int) -> list[str]:
    return [" ".join(rng.choice(_WORDS, size=words)) for _ in range(count)]


def text_page(rng: np.random.Generator, size: tuple[int, int], font_px: int, dark: bool) -> np.ndarray:
    """A page of text lines: uint8 HxW, black on white (or white on black when dark)."""
    width, height = size
    img = Image.new("L", size, 0 if dark else 255)
    draw = ImageDraw.Draw(img)
    font, ink = _font(font_px), 230 if dark else 20
    draw.text((40, 30), "Report " + str(int(rng.integers(100, 999))), fill=ink, font=_font(font_px * 2))
    y = 40 + 3 * font_px
    for line in _text_lines(rng, (height - y) // int(font_px * 1.6), max(3, width // (font_px * 5))):
        draw.text((40, y), line, fill=ink, font=font)
        y += int(font_px * 1.6)
    return np.asarray(img)


def _figure_pixels(fig) -> np.ndarray:
    """Render a matplotlib figure to uint8 HxWx3 through a PNG, as a screenshot would be."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, facecolor=fig.get_facecolor())
    import matplotlib.pyplot as plt

    plt.close(fig)
    return np.asarray(Image.open(buf).convert("RGB"))


def chart_images(rng: np.random.Generator) -> Iterator[NonMri]:
    """Line, bar, scatter, histogram, pie and heat-map charts, light and dark styles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.linspace(0, 10, 200)
    kinds: list[tuple[str, Callable]] = [
        ("line", lambda ax: (ax.plot(x, np.sin(x)), ax.plot(x, np.cos(x) * 0.5))),
        ("bar", lambda ax: ax.bar(list("ABCDEFG"), rng.uniform(1, 10, 7))),
        ("scatter", lambda ax: ax.scatter(rng.normal(size=300), rng.normal(size=300), s=8)),
        ("histogram", lambda ax: ax.hist(rng.normal(size=2000), bins=40, color="0.3")),
        ("pie", lambda ax: ax.pie(rng.uniform(1, 5, 5))),
        ("heatmap", lambda ax: ax.imshow(rng.normal(size=(30, 30)), cmap="viridis")),
        ("grey heatmap", lambda ax: ax.imshow(np.cumsum(rng.normal(size=(40, 40)), 0), cmap="gray")),
    ]
    for style in ("default", "dark_background", "grayscale"):
        with plt.style.context(style):
            for kind, draw in kinds:
                fig, ax = plt.subplots(figsize=(6.4, 4.8))
                draw(ax)
                ax.set_title(f"{kind} chart")
                yield f"generated/chart-{kind}-{style}", "chart", _figure_pixels(fig)


def screenshot(rng: np.random.Generator, dark: bool, size: tuple[int, int] = (800, 500)) -> np.ndarray:
    """A UI-like screenshot: title bar, side bar, buttons, text fields, text. uint8 HxWx3."""
    width, height = size
    bg, panel, ink = ((30, 30, 34), (45, 45, 52), (220, 220, 220)) if dark else \
        ((246, 246, 246), (225, 228, 235), (30, 30, 30))
    img = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, width, 32), fill=(60, 90, 160))
    draw.text((12, 8), "Viewer - study list", fill=(255, 255, 255), font=_font(14))
    draw.rectangle((0, 32, 180, height), fill=panel)
    for i, line in enumerate(_text_lines(rng, 12, 2)):
        draw.text((12, 48 + 30 * i), line[:22], fill=ink, font=_font(13))
    for i in range(4):
        x0 = 200 + 140 * i
        draw.rounded_rectangle((x0, 50, x0 + 120, 84), 6, fill=(40, 120, 220))
        draw.text((x0 + 14, 58), "Button", fill=(255, 255, 255), font=_font(14))
    for i, line in enumerate(_text_lines(rng, 12, 6)):
        draw.rectangle((200, 110 + 30 * i, width - 20, 134 + 30 * i), outline=panel)
        draw.text((208, 114 + 30 * i), line, fill=ink, font=_font(13))
    return np.asarray(img)


def noise_images(rng: np.random.Generator, size: int = 512) -> Iterator[NonMri]:
    """Uniform and gaussian noise, grey and colour; salt-and-pepper on black; dark noise."""
    shape = (size, size)
    yield "generated/uniform-noise", "noise", rng.integers(0, 256, shape, dtype=np.uint8)
    yield "generated/uniform-noise-colour", "noise", rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    for mean, sd in ((128, 40), (40, 25), (15, 8), (200, 20)):
        yield (f"generated/gaussian-noise-{mean}-{sd}", "noise",
               np.clip(rng.normal(mean, sd, shape), 0, 255).astype(np.uint8))
    sparse = np.zeros(shape, np.uint8)
    sparse[rng.random(shape) < 0.02] = 255
    yield "generated/salt-on-black", "noise", sparse
    smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).resize(shape, Image.BICUBIC))
    yield "generated/smooth-noise", "noise", smooth


def blank_images(rng: np.random.Generator, size: int = 512) -> Iterator[NonMri]:
    """Black, white, grey, nearly black, a black image with a dot or a small label."""
    shape = (size, size)
    for name, level in (("black", 0), ("white", 255), ("grey", 128)):
        yield f"generated/{name}", "blank", np.full(shape, level, np.uint8)
    yield "generated/nearly-black", "blank", rng.integers(0, 4, shape, dtype=np.uint8)
    dot = np.zeros(shape, np.uint8)
    dot[250:262, 300:312] = 255
    yield "generated/black-with-dot", "blank", dot
    label = Image.new("L", (size, size), 0)
    ImageDraw.Draw(label).text((20, 20), "L  R  3.0T", fill=255, font=_font(24))
    yield "generated/black-with-label", "blank", np.asarray(label)


def gradient_images(size: int = 512) -> Iterator[NonMri]:
    """Linear, radial and colour gradients."""
    ramp = np.linspace(0, 255, size)
    yield "generated/gradient-horizontal", "gradient", np.tile(ramp, (size, 1)).astype(np.uint8)
    yield "generated/gradient-vertical", "gradient", np.tile(ramp[:, None], (1, size)).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size] / (size - 1)
    radial = np.clip(255 * (1 - np.hypot(xx - 0.5, (yy - 0.5) * 1.2) / 0.5), 0, 255)
    yield "generated/gradient-radial", "gradient", radial.astype(np.uint8)
    colour = np.stack([xx * 255, yy * 255, (1 - xx) * 255], axis=-1).astype(np.uint8)
    yield "generated/gradient-colour", "gradient", colour


def shape_images(size: int = 512) -> Iterator[NonMri]:
    """Flat drawings on black: a filled ellipse, a ring, a filled rectangle; stripes."""
    ellipse = Image.new("L", (size, size), 0)
    ImageDraw.Draw(ellipse).ellipse((90, 50, size - 90, size - 50), fill=180)
    yield "generated/flat-ellipse", "graphic", np.asarray(ellipse)
    ring = Image.new("L", (size, size), 0)
    ImageDraw.Draw(ring).ellipse((90, 50, size - 90, size - 50), outline=255, width=12)
    yield "generated/ring", "graphic", np.asarray(ring)
    rect = Image.new("L", (size, size), 0)
    ImageDraw.Draw(rect).rectangle((100, 80, size - 100, size - 80), fill=200)
    yield "generated/flat-rectangle", "graphic", np.asarray(rect)
    stripes = ((np.arange(size) // 32) % 2 * 255).astype(np.uint8)
    yield "generated/stripes", "graphic", np.tile(stripes, (size, 1))


def generated_images(seed: int = 0) -> Iterator[NonMri]:
    """Documents, charts, screenshots, noise, blank images, gradients and flat drawings."""
    rng = np.random.default_rng(seed)
    for font_px, size in ((14, (600, 800)), (22, (800, 600)), (11, (1240, 1754))):
        yield f"generated/text-page-{font_px}px", "document", text_page(rng, size, font_px, dark=False)
    yield "generated/text-page-dark", "document", text_page(rng, (640, 640), 18, dark=True)
    yield from chart_images(rng)
    yield "generated/screenshot-light", "screenshot", screenshot(rng, dark=False)
    yield "generated/screenshot-dark", "screenshot", screenshot(rng, dark=True)
    yield "generated/screenshot-dark-small", "screenshot", screenshot(rng, dark=True, size=(512, 384))
    yield from noise_images(rng)
    yield from blank_images(rng)
    yield from gradient_images()
    yield from shape_images()


def non_mri_images() -> list[NonMri]:
    """Every non-MRI image: [(name, category, uint8 HxW or HxWx3 pixels)], package images first."""
    return [*skimage_images(), *other_package_images(), *pydicom_images(), *generated_images()]


# --- real slices -------------------------------------------------------------------------------


def real_files(per_source: int | None = None, data: Path = DATA) -> list[tuple[str, Path]]:
    """[(source, path)] of the real slices, sorted; `per_source` spreads that many evenly over each source."""
    files = []
    for source in REAL_SOURCES:
        paths = sorted(p for p in (data / source).rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if per_source is not None and len(paths) > per_source:
            paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, per_source).round()]
        files.extend((source, p) for p in paths)
    return files


def _check_file(item: tuple[str, Path]) -> tuple[str, str, bool, str, dict[str, float]]:
    """(source, path, ok, reason, scores) of one real slice."""
    from core.quality.input_check import check_input

    source, path = item
    scan = read_scan(path)
    result = check_input(scan.pixels, crop_brain(scan.pixels), scan.meta)
    return source, str(path), result.ok, result.reason, result.scores


def check_real(files: list[tuple[str, Path]], workers: int = 1) -> list[tuple[str, str, bool, str, dict]]:
    """check_input over real slices, in `workers` processes."""
    if workers <= 1:
        return [_check_file(item) for item in files]
    from multiprocessing import Pool

    with Pool(workers) as pool:
        return pool.map(_check_file, files, chunksize=32)


def check_non_mri(images: list[NonMri], tags: dict[str, dict] | None = None
                  ) -> list[tuple[str, str, bool, str, dict]]:
    """check_input over the non-MRI set: [(category, name, ok, reason, scores)].

    tags: {name: Scan.meta} passed with the pixels of those images (as uploaded); None: pixels only.
    """
    from core.quality.input_check import check_input

    tags = tags or {}
    return [(category, name, *_verdict(check_input(pixels, crop_brain(pixels), tags.get(name))))
            for name, category, pixels in images]


def _verdict(result) -> tuple[bool, str, dict[str, float]]:
    return result.ok, result.reason, result.scores


def rejection_rates(rows: list[tuple[str, str, bool, str, dict]]) -> dict[str, tuple[int, int]]:
    """{group (source or category): (rejected, total)}, plus "all"."""
    rates: dict[str, list[int]] = {}
    for group, _, ok, _, _ in rows:
        for key in (group, "all"):
            counts = rates.setdefault(key, [0, 0])
            counts[0] += not ok
            counts[1] += 1
    return {key: (rejected, total) for key, (rejected, total) in rates.items()}


# --- fitting the tails -------------------------------------------------------------------------

#: Sources weighted equally when fitting (nav is mostly copies of br35h).
FIT_GROUPS = {"br35h": "br35h+nav", "nav": "br35h+nav", "mos/Testing": "mos", "mos/Training": "mos",
              "lgg": "lgg", "lgg-t1pre": "lgg", "lgg-t1post": "lgg"}


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Quantiles of `values` at `probs` (0..1) with per-value `weights` (inverse of the empirical CDF)."""
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    cumulative = np.cumsum(weights) / weights.sum()
    index = np.searchsorted(cumulative, probs, side="left")
    return values[np.clip(index, 0, len(values) - 1)]


def fit_tails(rows: list[tuple[str, str, bool, str, dict]]) -> dict[str, tuple]:
    """TAILS for core.quality.input_check from real-slice rows (source, path, ok, reason, scores)."""
    from core.quality.evidence import LOW_SIGNAL_CONTRAST, TAIL_FEATURES, TAIL_PROBS

    kept = [(FIT_GROUPS[src], sc) for src, _, _, _, sc in rows if sc.get("contrast", 0) >= LOW_SIGNAL_CONTRAST]
    sizes = {g: sum(1 for grp, _ in kept if grp == g) for g in set(FIT_GROUPS.values())}
    tails = {}
    probs = np.array(TAIL_PROBS)
    for name, sides in TAIL_FEATURES.items():
        pairs = [(sc[name], 1.0 / sizes[g]) for g, sc in kept if name in sc]
        values, weights = (np.array(x, dtype=np.float64) for x in zip(*pairs))
        q10, q90 = _weighted_quantiles(values, weights, np.array([0.1, 0.9]))
        floor = max(0.05 * (q90 - q10), 1e-3)
        fitted = []
        for side in sides:
            at = probs if side == "low" else 1.0 - probs
            q = _weighted_quantiles(values, weights, at)
            step = max(abs(q[3] - q[0]), floor)
            fitted.append((side, tuple(round(float(v), 4) for v in q), round(float(step), 4)))
        tails[name] = tuple(fitted)
    return tails


def augmented(images: list[NonMri], seed: int = 0) -> Iterator[NonMri]:
    """Each image, its grey version (colour ones), two random crops (55-90 % of each side) and a
    half-size copy (sides >= 128): other framings of the same kinds of picture, for fitting."""
    import cv2

    rng = np.random.default_rng(seed)
    for name, category, pixels in images:
        yield name, category, pixels
        if pixels.ndim == 3:
            yield f"{name}#grey", category, cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        height, width = pixels.shape[:2]
        for k in range(2):
            fy, fx = rng.uniform(0.55, 0.9, 2)
            ch, cw = max(32, int(height * fy)), max(32, int(width * fx))
            y0, x0 = rng.integers(0, height - ch + 1), rng.integers(0, width - cw + 1)
            yield f"{name}#crop{k}", category, np.ascontiguousarray(pixels[y0:y0 + ch, x0:x0 + cw])
        if min(height, width) >= 128:
            yield f"{name}#half", category, cv2.resize(pixels, (width // 2, height // 2), interpolation=cv2.INTER_AREA)


def _tail_matrix(scores: list[dict], tails: dict, keys: list[tuple[str, str]]) -> np.ndarray:
    """(n, len(keys)) tail scores of each row's features."""
    from core.quality.evidence import tail_scores

    matrix = np.zeros((len(scores), len(keys)))
    for i, row in enumerate(scores):
        tail = tail_scores(row, tails)
        matrix[i] = [tail.get(key, 0.0) for key in keys]
    return matrix


def _balanced(groups: list[str]) -> np.ndarray:
    """Sample weights giving each group the same total weight (1 over all groups)."""
    counts = {g: groups.count(g) for g in set(groups)}
    weights = np.array([1.0 / counts[g] for g in groups])
    return weights / weights.sum()


def fit_weights(real_rows: list, negative_scores: list[tuple[str, dict]], tails: dict,
                floor: float = 0.1, cap: float = 1.0, l2: float = 1e-3, target: float = 0.012
                ) -> tuple[dict, float]:
    """Non-negative logistic regression of "not MRI" on the tail scores -> (WEIGHTS, MAX_EVIDENCE).

    real_rows: check_real rows (slices with raw contrast below LOW_SIGNAL_CONTRAST or caught by a
    hard rule left out); negative_scores: [(category, scores)] of non-MRI images not caught by a rule.
    Each source group and each category weighs the same. Every weight lies in [floor, cap] (so no
    single feature decides, and every unusual feature counts a little). The
    threshold is the (1 - target) quantile of the evidence in the source group where it is highest
    (target 0.012: with the LGG T1 folders in the fit, 0.01 let a second grey heat-map chart through).
    """
    from scipy.optimize import minimize

    from core.quality.evidence import LOW_SIGNAL_CONTRAST, TAIL_FEATURES, rule_reason

    keys = [(name, side) for name, sides in TAIL_FEATURES.items() for side in sides]
    positives = [(FIT_GROUPS[src], sc) for src, _, _, _, sc in real_rows
                 if sc.get("contrast", 0) >= LOW_SIGNAL_CONTRAST and not rule_reason(sc)]
    negatives = [(cat, sc) for cat, sc in negative_scores if not rule_reason(sc)]
    x = np.vstack([_tail_matrix([sc for _, sc in positives], tails, keys),
                   _tail_matrix([sc for _, sc in negatives], tails, keys)])
    y = np.r_[np.zeros(len(positives)), np.ones(len(negatives))]
    sample = np.r_[_balanced([g for g, _ in positives]), _balanced([c for c, _ in negatives])]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta[:-1] + theta[-1]
        p = 1.0 / (1.0 + np.exp(-z))
        value = np.sum(sample * (np.logaddexp(0.0, z) - y * z)) + l2 * np.sum(theta[:-1] ** 2)
        grad = np.r_[x.T @ (sample * (p - y)) + 2 * l2 * theta[:-1], np.sum(sample * (p - y))]
        return float(value), grad

    start = np.r_[np.full(len(keys), min(max(floor, 0.5), cap)), -3.0]
    fitted = minimize(loss, start, jac=True, method="L-BFGS-B",
                      bounds=[(floor, cap)] * len(keys) + [(None, None)]).x[:-1]
    evidence = x[:len(positives)] @ fitted
    groups = np.array([g for g, _ in positives])
    threshold = max(float(np.quantile(evidence[groups == g], 1.0 - target)) for g in set(groups))
    return {key: round(float(w), 3) for key, w in zip(keys, fitted)}, round(threshold, 3)


def write_tables(weights: dict, threshold: float, tails: dict, path: Path | None = None) -> Path:
    """Write WEIGHTS, MAX_EVIDENCE and TAILS as core/quality/input_check_tables.json (atomically); returns the path."""
    import json

    from core.io.atomic import write_atomic
    from core.quality.evidence import TABLES_FILE

    tables = {"about": "Fitted by python bench/bench_input_check.py --fit (core/quality/input_check.py explains each "
                       "table); do not edit by hand.",
              "max_evidence": threshold,
              "weights": [[name, side, weight] for (name, side), weight in weights.items()],
              "tails": {name: [[side, list(quantiles), step] for side, quantiles, step in sides]
                        for name, sides in tails.items()}}
    path = Path(path or TABLES_FILE)
    write_atomic(path, json.dumps(tables, indent=1) + "\n")
    return path


def unseen_source_refusals(real_rows: list, negative_scores: list[tuple[str, dict]]) -> dict[str, tuple[int, int]]:
    """How the fitted check does on a source it never saw: for each source group (FIT_GROUPS), TAILS,
    WEIGHTS and MAX_EVIDENCE are fitted as --fit does on the other groups' slices only, and that group's
    slices are judged by them. Returns {source: (refused, judged)}, counting the slices that pass the hard
    rules with a raw contrast of at least LOW_SIGNAL_CONTRAST (:func:`_rule_passed`); the rules are not fitted.
    """
    from core.quality.evidence import tail_scores, weighted_evidence

    counts: dict[str, list[int]] = {}
    for held_out in sorted(set(FIT_GROUPS.values())):
        fit_rows = [row for row in real_rows if FIT_GROUPS[row[0]] != held_out]
        tails = fit_tails(fit_rows)
        weights, threshold = fit_weights(fit_rows, negative_scores, tails)
        for source, _, _, _, scores in real_rows:
            if FIT_GROUPS[source] != held_out or not _rule_passed(scores):
                continue
            evidence = sum(weighted_evidence(tail_scores(scores, tails), weights).values())
            tally = counts.setdefault(source, [0, 0])
            tally[0] += evidence > threshold
            tally[1] += 1
    return {source: (refused, judged) for source, (refused, judged) in sorted(counts.items())}


# --- report ------------------------------------------------------------------------------------


def typical_scan() -> tuple[np.ndarray, str]:
    """A 512x512 real scan (MOS Testing) when the data is present, else a synthetic head."""
    import cv2

    for path in sorted((DATA / "mos" / "Testing").glob("*/*.jpg")):
        pixels = read_scan(path).pixels
        if pixels.shape[:2] == (512, 512):
            return pixels, str(path.relative_to(DATA))
    image = np.zeros((512, 512), np.uint8)
    cv2.ellipse(image, (256, 250), (200, 170), 0, 0, 360, 1, -1)
    texture = cv2.GaussianBlur(np.random.default_rng(0).normal(110, 40, image.shape), (5, 5), 0)
    return np.where(image > 0, np.clip(texture, 1, 255), 0).astype(np.uint8), "synthetic 512x512 head"


def time_check(runs: int) -> tuple[float, float, float, str]:
    """(median wall ms, 90th percentile wall ms, median CPU ms, what) of check_input on one
    512x512 scan, crop excluded. CPU time is less affected by other processes on a busy machine."""
    from core.quality.input_check import check_input

    pixels, what = typical_scan()
    crop = crop_brain(pixels)
    check_input(pixels, crop)
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        check_input(pixels, crop)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return float(np.median(wall)), float(np.percentile(wall, 90)), float(np.median(cpu)), what


def _print_rates(title: str, rows: list, list_rejected: bool, ok_is_good: bool) -> None:
    print(f"\n{title}")
    for group, (rejected, total) in sorted(rejection_rates(rows).items()):
        print(f"  {group:26s} rejected {rejected:5d} / {total:5d} = {100 * rejected / total:6.2f} %")
    for group, name, ok, reason, _ in rows:
        if list_rejected and ok != ok_is_good:
            print(f"    {'PASSED' if ok else 'rejected'}  {group}  {name}  {reason}")


def _print_unseen(rows: list, negatives: list) -> None:
    print("\nreal slices the hard rules pass, refused by a check fitted without their source group "
          "(unseen_source_refusals) against the shipped check")
    shipped = rejection_rates([row for row in rows if _rule_passed(row[4])])
    for source, (refused, judged) in unseen_source_refusals(rows, negatives).items():
        now, total = shipped[source]
        print(f"  {source:26s} unseen {refused:5d} / {judged:5d} = {100 * refused / judged:6.2f} %   shipped "
              f"{now:5d} / {total:5d} = {100 * now / total:6.2f} %")


def _rule_passed(scores: dict) -> bool:
    from core.quality.evidence import LOW_SIGNAL_CONTRAST, rule_reason

    return scores.get("contrast", 0) >= LOW_SIGNAL_CONTRAST and not rule_reason(scores)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1. Received: {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="timed check_input calls (default 200)")
    parser.add_argument("--per-source", type=_positive, default=None, help="real slices per source (default: all)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the real slices (default 2)")
    parser.add_argument("--list-rejected", action="store_true", help="list rejected real and passed non-MRI images")
    parser.add_argument("--fit", action="store_true",
                        help="refit TAILS, WEIGHTS, MAX_EVIDENCE and write them to "
                             "core/quality/input_check_tables.json")
    parser.add_argument("--unseen-sources", action="store_true",
                        help="also refit without each source group in turn and report its refusals")
    args = parser.parse_args(argv)

    median, p90, cpu, what = time_check(args.runs)
    print(f"check_input on {what}: median {median:.2f} ms, p90 {p90:.2f} ms wall, median "
          f"{cpu:.2f} ms CPU over {args.runs} runs (load average {os.getloadavg()[0]:.1f})")
    images = non_mri_images()
    _print_rates(f"non-MRI set ({len(images)} images), pixels only: rejection rate per category",
                 check_non_mri(images), args.list_rejected, ok_is_good=False)
    _print_rates(f"non-MRI set ({len(images)} images), as uploaded (with the DICOM files' tags, as the app "
                 "and the CLI check them): rejection rate per category",
                 check_non_mri(images, pydicom_tags()), args.list_rejected, ok_is_good=False)
    if not DATA.is_dir():
        print(f"\nno real slices: {DATA} not found")
        return 0
    rows = check_real(real_files(args.per_source), args.workers)
    _print_rates("real slices: rejection rate per source", rows, args.list_rejected, ok_is_good=True)
    negatives = []  # (category, scores) of the non-MRI set's framings, for fitting
    if args.fit or args.unseen_sources:
        negatives = [(cat, measure(pixels)) for _, cat, pixels in augmented(images)]
    if args.unseen_sources:
        _print_unseen(rows, negatives)
    if args.fit:
        tails = fit_tails(rows)
        weights, threshold = fit_weights(rows, negatives, tails)
        print(f"\nWrote the refitted tables to {write_tables(weights, threshold, tails)}; rerun without --fit to "
              "measure them.")
    return 0


def measure(pixels: np.ndarray) -> dict[str, float]:
    """core.quality.input_check.measure_input of `pixels` with their own brain crop."""
    from core.quality.features import measure_input

    return measure_input(pixels, crop_brain(pixels))


if __name__ == "__main__":
    sys.exit(main())
