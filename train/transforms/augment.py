"""The recipe's training augmentation: small seeded transforms, one job each.

Every transform takes its settings in ``__init__`` and its data in
``__call__(image, rng)``: ``image`` is uint8 HxW grey (or HxWx3) in [0, 255],
``rng`` a :class:`numpy.random.Generator` owned by the caller (so the trainer
seeds per worker, epoch and sample). Each returns a new uint8 array of the
same shape; the input is never modified.

    HistogramMatch   p=0.3: map grey levels so the image's CDF follows a reference CDF
    RandomAffine     rotation, shifts, zoom, shear and both flips in ONE matrix, ONE warp
    RandomBrightness multiply by a factor drawn from [low, high], clipped (lookup table)

:func:`recipe_augmentation` composes them in the recipe's order. A range of 0
or a probability of 0 disables the corresponding step (the output equals the input).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from core.imaging.pixels import check_uint8
from core.recipe import AUGMENTATION

LEVELS = 256
_INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def _check_image(image: np.ndarray) -> None:
    check_uint8(image, "image")


def _check_rng(rng: np.random.Generator) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "Expected a numpy.random.Generator (numpy.random.default_rng(seed)). "
            f"Received: rng={rng!r}"
        )


def _check_probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1]. Received: {name}={value!r}")
    return float(value)


def _check_range(name: str, value: float, upper: float, *, closed: bool = False) -> float:
    """A number in [0, upper) (or [0, upper] when `closed`)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not (0.0 <= value <= upper if closed else 0.0 <= value < upper):
        bracket = "]" if closed else ")"
        raise ValueError(f"{name} must be a number in [0, {upper:g}{bracket}. Received: {name}={value!r}")
    return float(value)


# --------------------------------------------------------------------------- histogram matching


def histogram(image: np.ndarray) -> np.ndarray:
    """uint8 image (any shape) -> float64 (256,) pixel counts per grey level."""
    flat = np.ascontiguousarray(image).reshape(1, -1)  # one row: calcHist then counts every channel
    return cv2.calcHist([flat], [0], None, [LEVELS], [0, LEVELS]).reshape(-1).astype(np.float64)


def reference_histogram(images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """uint8 images (any shapes) -> float64 (256,) grey-level frequencies summing to 1.

    Pixels are pooled, so this is the histogram of all the images side by side
    (what `skimage.exposure.match_histograms` sees if given them concatenated).
    """
    if isinstance(images, np.ndarray):
        images = [images]
    counts = np.zeros(LEVELS, dtype=np.float64)
    for image in images:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise ValueError(
                f"reference_histogram needs uint8 images. Received: dtype={getattr(image, 'dtype', None)}"
            )
        counts += histogram(image)
    if counts.sum() == 0:
        raise ValueError("reference_histogram needs at least one non-empty image. Received: no pixels")
    return counts / counts.sum()


def _reference_quantiles(reference_hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(256,) counts or frequencies -> (levels present, their cumulative quantiles in (0, 1])."""
    hist = np.asarray(reference_hist, dtype=np.float64)
    if hist.shape != (LEVELS,) or not np.all(np.isfinite(hist)) or np.any(hist < 0) or hist.sum() <= 0:
        raise ValueError(
            "reference_hist must be 256 non-negative finite counts with a positive sum. "
            f"Received: reference_hist of shape {hist.shape}"
        )
    levels = np.flatnonzero(hist)
    return levels.astype(np.float64), np.cumsum(hist[levels]) / hist.sum()


def _lut(image: np.ndarray, ref_levels: np.ndarray, ref_quantiles: np.ndarray) -> np.ndarray:
    # As skimage's _match_cumulative_cdf on uint8: each source level's CDF value is
    # located on the reference CDF (over the levels present) by linear interpolation.
    src_quantiles = np.cumsum(histogram(image)) / image.size
    matched = np.interp(src_quantiles, ref_quantiles, ref_levels)
    return np.clip(np.rint(matched), 0, 255).astype(np.uint8)


def match_lut(image: np.ndarray, reference_hist: np.ndarray) -> np.ndarray:
    """The lookup table that matches `image`'s histogram to `reference_hist`.

    image: uint8 HxW (or HxWx3, channels pooled), [0, 255].
    reference_hist: (256,) counts or frequencies, e.g. from :func:`reference_histogram`.
    Returns uint8 (256,): ``lut[image]`` is the matched image, within 0.5 grey
    level of `skimage.exposure.match_histograms` (which returns unrounded floats).
    """
    _check_image(image)
    return _lut(image, *_reference_quantiles(reference_hist))


class HistogramMatch:
    """With probability `p`, match the image's histogram to a reference histogram.

    uint8 HxW [0, 255] -> uint8 HxW [0, 255] (HxWx3: one table from all channels,
    which is exact for grey stored as RGB). One 256-entry table per image, one `cv2.LUT`.
    """

    def __init__(self, reference_hist: np.ndarray, p: float = 0.3) -> None:
        self.p = _check_probability("p", p)
        self._levels, self._quantiles = _reference_quantiles(reference_hist)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_image(image)
        _check_rng(rng)
        if self.p == 0.0 or rng.random() >= self.p:
            return image.copy()
        return cv2.LUT(image, _lut(image, self._levels, self._quantiles))

    def __repr__(self) -> str:
        return f"HistogramMatch(p={self.p})"


# --------------------------------------------------------------------------- geometry


def affine_matrix(
    shape: tuple[int, ...],
    *,
    rotation: float = 0.0,
    shift: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
    shear: float = 0.0,
    hflip: bool = False,
    vflip: bool = False,
) -> np.ndarray:
    """The forward (source -> output pixel) float64 (2, 3) matrix for `cv2.warpAffine`.

    shape: the image's (H, W, ...). About the centre ((W-1)/2, (H-1)/2), applied
    in this order: flips, zoom `scale` (>1 enlarges), shear `shear` degrees along x,
    rotation `rotation` degrees counter-clockwise as seen on screen, then a shift
    of `shift` = (dx, dy) pixels (x right, y down). Flips map pixel x to W-1-x
    exactly, so a flip alone equals `np.fliplr` / `np.flipud`.
    """
    height, width = shape[:2]
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    cos, sin = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    shear_x = math.tan(math.radians(shear))
    fx, fy = (-scale if hflip else scale), (-scale if vflip else scale)
    # linear part: rotate (counter-clockwise on screen, y down) @ shear along x @ diag(fx, fy)
    a, b = cos * fx, (cos * shear_x + sin) * fy
    c, d = -sin * fx, (cos - sin * shear_x) * fy
    dx, dy = shift
    return np.array([
        [a, b, cx + dx - (a * cx + b * cy)],
        [c, d, cy + dy - (c * cx + d * cy)],
    ])


class RandomAffine:
    """Random rotation, shifts, zoom, shear and flips as one matrix and one warp.

    uint8 HxW or HxWx3 [0, 255] -> same shape and dtype. About the image centre;
    outside the source is black (constant 0, like MRI background).

    rotation: degrees, angle drawn from [-rotation, rotation], in [0, 180].
    shift: fraction of the width (x) and height (y), each drawn from [-shift, shift], in [0, 1).
    zoom: scale drawn from [1 - zoom, 1 + zoom], in [0, 1).
    shear: degrees along x, drawn from [-shear, shear], in [0, 90).
    hflip, vflip: probabilities of a left-right / up-down flip.
    interpolation: 'linear' (default) or 'nearest'.
    """

    def __init__(
        self,
        rotation: float = 30.0,
        shift: float = 0.1,
        zoom: float = 0.3,
        shear: float = 15.0,
        hflip: float = 0.5,
        vflip: float = 0.5,
        interpolation: str = "linear",
    ) -> None:
        self.rotation = _check_range("rotation", rotation, 180.0, closed=True)
        self.shift = _check_range("shift", shift, 1.0)
        self.zoom = _check_range("zoom", zoom, 1.0)
        self.shear = _check_range("shear", shear, 90.0)
        self.hflip = _check_probability("hflip", hflip)
        self.vflip = _check_probability("vflip", vflip)
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {', '.join(_INTERPOLATIONS)}. "
                f"Received: interpolation={interpolation!r}"
            )
        self.interpolation = interpolation
        self._flags = _INTERPOLATIONS[interpolation]

    @property
    def is_identity(self) -> bool:
        """True when every range and flip probability is 0."""
        return not any((self.rotation, self.shift, self.zoom, self.shear, self.hflip, self.vflip))

    def sample_matrix(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draw one float64 (2, 3) matrix for an image of `shape` (H, W, ...)."""
        height, width = shape[:2]

        def symmetric(limit: float) -> float:
            return float(rng.uniform(-limit, limit)) if limit else 0.0

        return affine_matrix(
            shape,
            rotation=symmetric(self.rotation),
            shift=(symmetric(self.shift) * width, symmetric(self.shift) * height),
            scale=1.0 + symmetric(self.zoom),
            shear=symmetric(self.shear),
            hflip=bool(self.hflip) and rng.random() < self.hflip,
            vflip=bool(self.vflip) and rng.random() < self.vflip,
        )

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_image(image)
        _check_rng(rng)
        if self.is_identity:
            return image.copy()
        matrix = self.sample_matrix(image.shape, rng)
        height, width = image.shape[:2]
        return cv2.warpAffine(
            image, matrix, (width, height), flags=self._flags,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )

    def __repr__(self) -> str:
        return (
            f"RandomAffine(rotation={self.rotation}, shift={self.shift}, zoom={self.zoom}, "
            f"shear={self.shear}, hflip={self.hflip}, vflip={self.vflip}, "
            f"interpolation={self.interpolation!r})"
        )


# --------------------------------------------------------------------------- intensity


def brightness_lut(factor: float) -> np.ndarray:
    """uint8 (256,) table: each grey level times `factor`, rounded and clipped to [0, 255]."""
    return np.clip(np.rint(np.arange(LEVELS) * factor), 0, 255).astype(np.uint8)


class RandomBrightness:
    """Multiply by a factor drawn uniformly from [low, high]; clip to [0, 255].

    uint8 HxW or HxWx3 [0, 255] -> same shape and dtype, via one `cv2.LUT`.
    low = high = 1 disables it.
    """

    def __init__(self, low: float = 0.7, high: float = 1.3) -> None:
        for name, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 10.0:
                raise ValueError(f"{name} must be a factor in [0, 10]. Received: {name}={value!r}")
        if low > high:
            raise ValueError(f"low must not exceed high. Received: low={low!r}, high={high!r}")
        self.low, self.high = float(low), float(high)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_image(image)
        _check_rng(rng)
        if self.low == self.high == 1.0:
            return image.copy()
        return cv2.LUT(image, brightness_lut(rng.uniform(self.low, self.high)))

    def __repr__(self) -> str:
        return f"RandomBrightness(low={self.low}, high={self.high})"


# --------------------------------------------------------------------------- composition

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class Compose:
    """Apply transforms in order, each with the same `rng`.

    uint8 HxW or HxWx3 [0, 255] -> same shape and dtype (a new array).
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        transforms = list(transforms)
        for transform in transforms:
            if not callable(transform):
                raise ValueError(f"Every transform must be callable. Received: transform={transform!r}")
        self.transforms = transforms

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_image(image)
        _check_rng(rng)
        out = image
        for transform in self.transforms:
            out = transform(out, rng)
        return out.copy() if out is image else out

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"


def _brightness_range(brightness: float | tuple[float, float] | None) -> tuple[float, float]:
    if brightness is None:
        return 1.0, 1.0
    if isinstance(brightness, (int, float)) and not isinstance(brightness, bool):
        if not 0.0 <= brightness < 1.0:
            raise ValueError(
                "brightness must be (low, high) or a half-width in [0, 1). "
                f"Received: brightness={brightness!r}"
            )
        return 1.0 - brightness, 1.0 + brightness
    try:
        low, high = brightness
    except (TypeError, ValueError):
        raise ValueError(
            f"brightness must be (low, high) or a half-width in [0, 1). Received: brightness={brightness!r}"
        ) from None
    return low, high


def recipe_augmentation(
    reference_hist: np.ndarray | None,
    *,
    hist_match_p: float = AUGMENTATION.hist_match_p,
    rotation: float = AUGMENTATION.rotation,
    shift: float = AUGMENTATION.shift,
    zoom: float = AUGMENTATION.zoom,
    shear: float = AUGMENTATION.shear,
    brightness: float | tuple[float, float] | None = AUGMENTATION.brightness,
    hflip: float = AUGMENTATION.hflip,
    vflip: float = AUGMENTATION.vflip,
) -> Compose:
    """The recipe: histogram matching (p=0.3), one affine warp (with flips), brightness.

    reference_hist: float64 (256,) from :func:`reference_histogram` (the trainer
    builds it from training crops); None only when `hist_match_p` is 0.
    brightness: (low, high) factors, a half-width d meaning (1 - d, 1 + d), or
    None / 0 / (1, 1) to disable. Disabled steps are left out of the Compose.
    Returns a :class:`Compose`: uint8 HxW [0, 255] -> uint8 HxW [0, 255].
    """
    hist_match_p = _check_probability("hist_match_p", hist_match_p)
    if reference_hist is None and hist_match_p > 0:
        raise ValueError(
            "Histogram matching needs a reference histogram (train.transforms.augment.reference_histogram), "
            f"or hist_match_p=0. Received: reference_hist=None, hist_match_p={hist_match_p!r}"
        )
    low, high = _brightness_range(brightness)
    steps: list[Transform] = []
    if hist_match_p > 0:
        steps.append(HistogramMatch(reference_hist, p=hist_match_p))
    affine = RandomAffine(rotation=rotation, shift=shift, zoom=zoom, shear=shear, hflip=hflip, vflip=vflip)
    if not affine.is_identity:
        steps.append(affine)
    bright = RandomBrightness(low, high)
    if not bright.low == bright.high == 1.0:
        steps.append(bright)
    return Compose(steps)
