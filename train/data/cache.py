"""Crop every scan once and keep the result in a cache outside the repository.

An entry is keyed by the SHA-256 of the file's bytes, the crop settings and
the image size, so a changed file or changed settings never reuse a stale
crop. Each entry holds what training and de-duplication need:

    crop       uint8 (size, size) grey, the output of core.prepare_crop
    fell_back  bool, the crop found no brain outline
    pixel_sha  hex SHA-256 of the decoded pixels (exact duplicates)
    dhash      uint8 (32,) packed 256-bit difference hash (near duplicates)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from core.imaging import crop as crop_module
from core.imaging.pipeline import prepare_scan
from core.imaging.pixels import to_grey
from core.io import ScanError
from core.io.atomic import atomic_path

#: Bump when the cached content's meaning changes.
CACHE_VERSION = 1
HASH_SIZE = 16  # 16x16 = 256-bit dHash


def default_cache_dir() -> Path:
    """$BRAIN_MRI_CACHE, else ~/.cache/brain-mri/crops."""
    return Path(os.environ.get("BRAIN_MRI_CACHE", Path.home() / ".cache" / "brain-mri" / "crops"))


def settings_key(size: int) -> str:
    """A short digest of everything that changes a cached entry's content."""
    settings = {
        "version": CACHE_VERSION,
        "size": size,
        "crop_version": crop_module.CROP_VERSION,
        "threshold": crop_module.THRESHOLD,
        "dark_fraction": crop_module.DARK_FRACTION,
        "background_band": crop_module.BACKGROUND_BAND,
        "search_size": crop_module.SEARCH_SIZE,
        "min_area": crop_module.MIN_AREA_FRACTION,
        "min_contrast": crop_module.MIN_CONTRAST,
        "frame_fill": crop_module.FRAME_FILL_RATIO,
        "hash_size": HASH_SIZE,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Entry:
    """A cropped scan (see module docstring); `error` is set instead when the file could not be read."""

    crop: np.ndarray | None
    fell_back: bool
    pixel_sha: str
    dhash: np.ndarray | None
    error: str | None = None


def difference_hash(pixels: np.ndarray) -> np.ndarray:
    """uint8 HxW or HxWx3 -> uint8 (32,) packed 256-bit dHash of the whole scan (imagehash)."""
    import imagehash
    from PIL import Image

    grey = to_grey(pixels)
    bits = imagehash.dhash(Image.fromarray(grey), hash_size=HASH_SIZE).hash
    return np.packbits(bits.astype(bool).ravel())


def compute_entry(data: bytes, name: str, size: int) -> Entry:
    """Read, crop and hash one file's bytes (through `core.imaging.pipeline`, as the app does)."""
    try:
        scan = prepare_scan(data, size, name=name)
    except ScanError as error:
        return Entry(None, False, "", None, error=str(error))
    pixels = scan.pixels
    pixel_sha = hashlib.sha256(str(pixels.shape).encode() + pixels.tobytes()).hexdigest()
    return Entry(scan.grey, scan.crop.fell_back, pixel_sha, difference_hash(pixels))


def _entry_path(cache_dir: Path, data: bytes, size: int) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    return cache_dir / settings_key(size) / digest[:2] / f"{digest}.npz"


def _load(path: Path) -> Entry | None:
    try:
        with np.load(path) as stored:
            return Entry(stored["crop"], bool(stored["fell_back"]), str(stored["pixel_sha"]), stored["dhash"])
    except (OSError, KeyError, ValueError):
        return None  # missing or damaged entry: recompute


def _store(path: Path, entry: Entry) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, crop=entry.crop, fell_back=entry.fell_back, pixel_sha=entry.pixel_sha, dhash=entry.dhash)


def cached_entry(path: str, size: int, cache_dir: str) -> Entry:
    """The entry for one file, from the cache or computed and stored."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return Entry(None, False, "", None, error=f"Could not read {path}: {error.strerror or error}.")
    entry_path = _entry_path(Path(cache_dir), data, size)
    entry = _load(entry_path)
    if entry is None:
        entry = compute_entry(data, Path(path).name, size)
        if entry.error is None:
            _store(entry_path, entry)
    return entry


def crop_all(paths, size: int, cache_dir: str | os.PathLike | None = None, workers: int = 1,
             desc: str = "cropping") -> list[Entry]:
    """Entries for many files, in order, with a progress bar on a terminal.

    workers > 1 crops in that many processes (spawned, so no framework state is forked).
    """
    from tqdm import tqdm

    cache_dir = str(cache_dir or default_cache_dir())
    paths = [str(path) for path in paths]
    bar = dict(total=len(paths), desc=desc, unit="scan", disable=not sys.stderr.isatty())
    if workers <= 1 or len(paths) < 64:
        return [cached_entry(path, size, cache_dir) for path in tqdm(paths, **bar)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        results = pool.map(cached_entry, paths, [size] * len(paths), [cache_dir] * len(paths), chunksize=16)
        return list(tqdm(results, **bar))
