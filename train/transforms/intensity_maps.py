"""Random intensity maps that change a slice's contrast, not its anatomy: so a model cannot read brightness
polarity (a lesion bright on FLAIR and contrast T1, dark on plain T1) as evidence of a tumour.

Like `train.transforms.appearance`, each transform takes its settings in ``__init__`` and its data in
``__call__(image, rng)``: ``image`` uint8 HxW grey [0, 255], ``rng`` a :class:`numpy.random.Generator`
owned by the caller; it returns a new uint8 HxW array and never modifies its input.

    RandomIntensityMap   a piecewise-linear lookup table through 4-7 random points: non-monotonic, so it
                         can invert a lesion's contrast against the tissue around it (SynthSeg's
                         randomised contrasts, Billot et al. 2023). The darkest levels (background) stay dark.
    RandomShallowConv    GIN (Ouyang et al. 2022): a randomly initialised shallow convolutional network
                         (3x3 kernels, leaky ReLU) applied to the slice, rescaled to [0, 255] and blended
                         with the original by a random weight: random local texture and contrast changes.
"""

from __future__ import annotations

import cv2
import numpy as np

from core.imaging.pixels import check_uint8


def _check_probability(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1]. Received: p={p!r}")
    return float(p)


def _check_grey(image: np.ndarray, rng) -> None:
    check_uint8(image, "image", channels=())
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"Expected a numpy.random.Generator (numpy.random.default_rng(seed)). Received: rng={rng!r}")


def intensity_lut(points: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """uint8 (256,) lookup table, linear between the knots (`points`, float in [0, 255], increasing,
    first 0 and last 255) and their output `levels` (float in [0, 255])."""
    return np.clip(np.rint(np.interp(np.arange(256), points, levels)), 0, 255).astype(np.uint8)


class RandomIntensityMap:
    """With probability p, map grey levels through a random piecewise-linear table (module docstring).

    knots: (fewest, most) knots including both ends, drawn uniformly; the first knot (level 0) maps to at
    most `dark` so the background stays dark; every other knot maps to a uniform level in [0, 255].
    uint8 HxW [0, 255] -> uint8 HxW.
    """

    def __init__(self, p: float = 0.5, knots: tuple[int, int] = (4, 7), dark: float = 25.0) -> None:
        self.p = _check_probability(p)
        low, high = knots
        if not (isinstance(low, int) and isinstance(high, int) and 3 <= low <= high <= 16):
            raise ValueError(f"knots must be (fewest, most) with 3 <= fewest <= most <= 16. Received: knots={knots!r}")
        if not 0.0 <= dark <= 255.0:
            raise ValueError(f"dark must be a grey level in [0, 255]. Received: dark={dark!r}")
        self.knots, self.dark = (low, high), float(dark)

    def sample_lut(self, rng: np.random.Generator) -> np.ndarray:
        """One random table: uint8 (256,)."""
        count = int(rng.integers(self.knots[0], self.knots[1] + 1))
        inner = np.sort(rng.uniform(1.0, 254.0, count - 2))
        points = np.concatenate([[0.0], inner, [255.0]])
        levels = np.concatenate([[rng.uniform(0.0, self.dark)], rng.uniform(0.0, 255.0, count - 1)])
        return intensity_lut(points, levels)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_grey(image, rng)
        if rng.random() >= self.p:
            return image.copy()
        return cv2.LUT(image, self.sample_lut(rng))

    def __repr__(self) -> str:
        return f"RandomIntensityMap(p={self.p}, knots={self.knots}, dark={self.dark})"


class RandomShallowConv:
    """With probability p, GIN: a random shallow CNN's output blended with the slice (module docstring).

    layers: convolutions (3x3, `width` channels, leaky ReLU between them, one output channel); the output
    is min-max rescaled to [0, 255] and blended as a * out + (1 - a) * image with a ~ U(0, 1).
    uint8 HxW [0, 255] -> uint8 HxW.
    """

    def __init__(self, p: float = 0.5, layers: int = 3, width: int = 4) -> None:
        self.p = _check_probability(p)
        if not (isinstance(layers, int) and 1 <= layers <= 6 and isinstance(width, int) and 1 <= width <= 16):
            raise ValueError(f"layers must be in [1, 6] and width in [1, 16]. Received: layers={layers!r}, "
                             f"width={width!r}")
        self.layers, self.width = layers, width

    def _network(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        channels = [x]
        for layer in range(self.layers):
            outputs = 1 if layer == self.layers - 1 else self.width
            kernels = rng.standard_normal((outputs, len(channels), 3, 3)).astype(np.float32)
            kernels /= np.sqrt(9.0 * len(channels))
            bias = rng.standard_normal(outputs).astype(np.float32) * 0.1
            mixed = [sum(cv2.filter2D(c, -1, kernels[o, i], borderType=cv2.BORDER_REFLECT)
                         for i, c in enumerate(channels)) + bias[o] for o in range(outputs)]
            channels = mixed if layer == self.layers - 1 else [np.where(m > 0, m, 0.2 * m) for m in mixed]
        return channels[0]

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_grey(image, rng)
        if rng.random() >= self.p:
            return image.copy()
        x = image.astype(np.float32) / 255.0
        out = self._network(x, rng)
        low, high = float(out.min()), float(out.max())
        out = (out - low) / (high - low) if high > low else np.zeros_like(out)
        alpha = float(rng.uniform(0.0, 1.0))
        blended = 255.0 * (alpha * out + (1.0 - alpha) * x)
        return np.clip(np.rint(blended), 0, 255).astype(np.uint8)

    def __repr__(self) -> str:
        return f"RandomShallowConv(p={self.p}, layers={self.layers}, width={self.width})"
