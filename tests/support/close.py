"""Compare numbers recomputed on this machine with numbers stored on another, allowing floating-point round-off."""

from __future__ import annotations

import math
from typing import Any

#: Relative tolerance: last-digit differences between CPUs' floating-point paths, nothing more.
REL = 1e-9


def assert_close(got: Any, want: Any, where: str = "") -> None:
    """Assert nested dicts/lists of equal shape, with floats equal to REL and everything else exactly equal."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{where}: keys {got!r} != {want!r}"
        for key in want:
            assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for index, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{where}[{index}]")
    elif isinstance(want, float) and not isinstance(got, bool) and isinstance(got, (int, float)):
        assert math.isclose(got, want, rel_tol=REL, abs_tol=1e-15), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
