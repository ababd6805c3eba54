"""Appearance augmentation and per-scan intensity normalisation, for training that generalises across sources.

Scanners, sequences and exports differ in how a slice *looks* (contrast curve, sharpness, noise, JPEG
artefacts, resolution, coil shading), not in what it shows. These transforms vary exactly that, so a
model cannot tell a source by its look. Like `train.transforms.augment`'s transforms, :class:`RandomAppearance`
takes its settings in ``__init__`` and its data in ``__call__(image, rng)``: ``image`` uint8 HxW grey
(or HxWx3) in [0, 255], ``rng`` a :class:`numpy.random.Generator` owned by the caller. It returns a new
uint8 array of the same shape and never modifies its input.

    gamma         x -> 255 (x / 255) ** g, g drawn from [low, high]
    bias_field    multiply by a smooth random field within 1 +- bias_field (coil non-uniformity)
    contrast      x -> m + c (x - m) about the image's mean m, c drawn from [low, high]
    blur/sharpen  Gaussian blur (sigma up to `blur`) or unsharp masking (amount up to `sharpen`), one of them
    resample      shrink by a factor drawn from [resample, 1], then back (lost resolution)
    noise         additive Gaussian noise, standard deviation up to `noise` grey levels
    jpeg          re-encode as JPEG at a quality drawn from [jpeg, 95]

Each enabled step runs with probability `p`, in this order. :data:`OFF` (every step disabled) is the default: the
published recipe has no appearance augmentation. :data:`STANDARD` is the preset the CLI's
``--appearance standard`` selects.

The per-scan normalisation (``--normalise brain``) is not augmentation: it is part of preprocessing, applied at
prediction time too, and lives in :mod:`core.imaging.normalise`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from core.imaging.pixels import check_uint8


@dataclass(frozen=True)
class Appearance:
    """Appearance augmentation settings; every default disables its step (see the module docstring).

    gamma, contrast: (low, high) factor ranges, (1, 1) = off; blur: largest Gaussian sigma in pixels;
    sharpen: largest unsharp-mask amount; resample: smallest shrink factor in (0, 1], 1 = off;
    noise: largest noise standard deviation in grey levels; bias_field: largest relative amplitude in
    [0, 1); jpeg: lowest JPEG quality in [1, 95], 0 = off; p: probability of each enabled step.
    """

    gamma: tuple[float, float] = (1.0, 1.0)
    contrast: tuple[float, float] = (1.0, 1.0)
    blur: float = 0.0
    sharpen: float = 0.0
    resample: float = 1.0
    noise: float = 0.0
    bias_field: float = 0.0
    jpeg: int = 0
    p: float = 0.5

    def __post_init__(self) -> None:
        for name in ("gamma", "contrast"):
            low, high = _pair(name, getattr(self, name))
            if not 0.05 <= low <= high <= 5.0:
                raise ValueError(f"{name} must be a range (low, high) with 0.05 <= low <= high <= 5. "
                                 f"Received: {name}={getattr(self, name)!r}")
            object.__setattr__(self, name, (low, high))
        _check("blur", self.blur, 0.0, 10.0)
        _check("sharpen", self.sharpen, 0.0, 5.0)
        _check("resample", self.resample, 0.05, 1.0, low_open=True)
        _check("noise", self.noise, 0.0, 64.0)
        _check("bias_field", self.bias_field, 0.0, 0.95)
        if isinstance(self.jpeg, bool) or not isinstance(self.jpeg, (int, np.integer)) or not (
                self.jpeg == 0 or 1 <= self.jpeg <= 95):
            raise ValueError(f"jpeg must be 0 (off) or a quality in [1, 95]. Received: jpeg={self.jpeg!r}")
        _check("p", self.p, 0.0, 1.0)

    @property
    def enabled(self) -> bool:
        """True when any step can change an image."""
        return self.p > 0 and self != dataclasses.replace(OFF, p=self.p)

    def to_dict(self) -> dict:
        """Flat JSON-ready record (ranges as lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}


def _pair(name: str, value) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a range (low, high). Received: {name}={value!r}") from None
    return low, high


def _check(name: str, value, low: float, high: float, low_open: bool = False) -> None:
    number = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not number or not (low < value <= high if low_open else low <= value <= high):
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be a number in {bracket}{low:g}, {high:g}]. Received: {name}={value!r}")


OFF = Appearance()
STANDARD = Appearance(gamma=(0.7, 1.5), contrast=(0.75, 1.3), blur=1.0, sharpen=1.0, resample=0.5, noise=8.0,
                      bias_field=0.3, jpeg=30, p=0.5)
#: Names accepted by --appearance.
PRESETS = {"off": OFF, "standard": STANDARD}


# --------------------------------------------------------------------------- the steps (float32 HxW[xC])


def _gamma(image: np.ndarray, g: float) -> np.ndarray:
    """uint8 -> uint8 through a 256-entry table: 255 (x / 255) ** g."""
    lut = np.clip(np.rint(255.0 * np.power(np.arange(256) / 255.0, g)), 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut)


def _contrast(x: np.ndarray, c: float) -> np.ndarray:
    mean = float(x.mean())
    return mean + c * (x - mean)


def _blur_or_sharpen(x: np.ndarray, settings: Appearance, rng: np.random.Generator) -> np.ndarray:
    sharpen = settings.sharpen > 0 and (settings.blur == 0 or rng.random() < 0.5)
    sigma = float(rng.uniform(0.3, max(settings.blur, 0.3))) if not sharpen else 1.0
    blurred = cv2.GaussianBlur(x, (0, 0), sigmaX=sigma)
    if not sharpen:
        return blurred
    return x + float(rng.uniform(0.0, settings.sharpen)) * (x - blurred)


def _resample(x: np.ndarray, factor: float) -> np.ndarray:
    height, width = x.shape[:2]
    small = (max(4, round(width * factor)), max(4, round(height * factor)))
    return cv2.resize(cv2.resize(x, small, interpolation=cv2.INTER_AREA), (width, height),
                      interpolation=cv2.INTER_LINEAR)


def _bias_field(shape: tuple[int, ...], strength: float, rng: np.random.Generator) -> np.ndarray:
    """float32 HxW multiplicative field in [1 - strength, 1 + strength]: a random 3x3 grid, smoothly enlarged."""
    grid = rng.uniform(-1.0, 1.0, (3, 3)).astype(np.float32)
    field = cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return 1.0 + strength * np.clip(field, -1.0, 1.0)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """uint8 HxW[x3] -> uint8, re-encoded as JPEG at `quality`."""
    encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])[1]
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED).reshape(image.shape)


class RandomAppearance:
    """Random appearance changes (module docstring): uint8 HxW or HxWx3 [0, 255] -> same shape and dtype."""

    def __init__(self, settings: Appearance = STANDARD) -> None:
        if not isinstance(settings, Appearance):
            raise TypeError(f"Expected train.transforms.appearance.Appearance settings. Received: {settings!r}")
        self.settings = settings

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        check_uint8(image, "image")
        if not isinstance(rng, np.random.Generator):
            raise TypeError("Expected a numpy.random.Generator (numpy.random.default_rng(seed)). "
                            f"Received: rng={rng!r}")
        s = self.settings

        def chosen(step) -> bool:  # an enabled step runs with probability p (rng local: thread-safe)
            return bool(step) and rng.random() < s.p

        out = _gamma(image, float(rng.uniform(*s.gamma))) if chosen(s.gamma != (1.0, 1.0)) else image
        x = out.astype(np.float32)
        if chosen(s.bias_field):
            field = _bias_field(x.shape, s.bias_field, rng)
            x = x * (field if x.ndim == 2 else field[..., None])
        if chosen(s.contrast != (1.0, 1.0)):
            x = _contrast(x, float(rng.uniform(*s.contrast)))
        if chosen(s.blur or s.sharpen):
            x = _blur_or_sharpen(x, s, rng)
        if chosen(s.resample < 1.0):
            x = _resample(x, float(rng.uniform(s.resample, 1.0)))
        if chosen(s.noise):
            x = x + float(rng.uniform(0.0, s.noise)) * rng.standard_normal(x.shape, dtype=np.float32)
        out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
        if chosen(s.jpeg):
            out = _jpeg(out, int(rng.integers(s.jpeg, 96)))
        return out

    def __repr__(self) -> str:
        return f"RandomAppearance({self.settings!r})"
