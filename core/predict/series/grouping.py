"""DICOM slices grouped by series and put in slice order, parsing only SERIES_TAGS (never patient tags)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from core.io import ScanError
from core.io.sniff import sniff
from core.predict.series.archive import File

#: The only DICOM elements parsed to group and order slices. None identifies a patient.
SERIES_TAGS = ["SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "ImagePositionPatient",
               "ImageOrientationPatient", "InstanceNumber", "SliceLocation"]


#: Orientation vectors whose slice normals differ by more than this (1 - |cos|) are not one stack.
_PARALLEL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class SeriesFile:
    """One DICOM slice of a series: its name, bytes and where it sits in the stack.

    position: mm along the slice normal (ImagePositionPatient . (row x column direction)), None when unknown.
    instance: InstanceNumber, None when absent.
    """

    name: str
    data: bytes = field(repr=False)
    position: float | None = None
    instance: int | None = None
    normal: tuple[float, float, float] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Series:
    """The slices of one DICOM series, in slice order.

    key: 8 hex digits of the SHA-256 of the SeriesInstanceUID (the UID itself is not kept).
    ordered_by: "position" (along the slice normal), "instance number" or "file name".
    description: SeriesDescription (e.g. "AX FLAIR"), "" when absent.
    """

    key: str
    files: tuple[SeriesFile, ...]
    ordered_by: str
    number: int | None = None
    description: str = ""

    @property
    def label(self) -> str:
        """'series:3fa9c1d2 (30 slices)', the name tables and the CSV use."""
        count = len(self.files)
        return f"series:{self.key} ({count} slice{'s' if count != 1 else ''})"


@dataclass(frozen=True)
class SeriesGroups:
    """An upload split into DICOM series (in order of first appearance) and single slices.

    singles: (name, bytes) of files that are not DICOM, or DICOM without a SeriesInstanceUID,
    in upload order; they are analysed one by one, as before.
    """

    series: tuple[Series, ...]
    singles: tuple[File, ...] = ()

    @property
    def message(self) -> str | None:
        """'2 series in this upload: shown separately.' when the upload mixes things, else None."""
        parts = []
        if len(self.series) > 1 or (self.series and self.singles):
            parts.append(f"{len(self.series)} series")
        if self.singles and self.series:
            parts.append(f"{len(self.singles)} single slice{'s' if len(self.singles) != 1 else ''}")
        return f"{' and '.join(parts)} in this upload: shown separately." if parts else None


def group_series(files: Iterable[File]) -> SeriesGroups:
    """(name, bytes) files -> DICOM series in slice order, plus the single slices.

    Series appear in the order their first file was given. Within a series,
    slices are ordered by position along the slice normal when every slice has
    ImagePositionPatient and parallel ImageOrientationPatient; else by
    InstanceNumber when every slice has one; else by file name. Ties fall back
    to InstanceNumber, then the file name.
    """
    stacks: dict[str, list[SeriesFile]] = {}
    facts: dict[str, tuple[int | None, str]] = {}
    singles: list[File] = []
    for name, data in files:
        header = _series_header(data)
        uid = str(header.get("SeriesInstanceUID") or "").strip() if header is not None else ""
        if not uid:
            singles.append((name, data))
            continue
        stacks.setdefault(uid, []).append(_series_file(name, data, header))
        facts.setdefault(uid, (_number(header.get("SeriesNumber"), int),
                               str(header.get("SeriesDescription") or "").strip()))
    series = tuple(_ordered(uid, stack, *facts[uid]) for uid, stack in stacks.items())
    return SeriesGroups(series=series, singles=tuple(singles))


def _series_header(data: bytes):
    """The SERIES_TAGS of a DICOM file (a pydicom Dataset), or None for anything that is not DICOM."""
    try:
        if sniff(data, "file") != "DICOM":
            return None
    except ScanError:
        return None
    import pydicom  # imported here: most uploads are not DICOM

    try:
        return pydicom.dcmread(io.BytesIO(data), force=data[128:132] != b"DICM", stop_before_pixels=True,
                               specific_tags=SERIES_TAGS)
    except Exception:  # noqa: BLE001 - damaged files become single slices; their reading says why
        return None


def _series_file(name: str, data: bytes, header) -> SeriesFile:
    """A SeriesFile with its position along the slice normal, when the header allows."""
    position = _vector(header.get("ImagePositionPatient"), 3)
    orientation = _vector(header.get("ImageOrientationPatient"), 6)
    normal = None
    if orientation is not None:
        cross = np.cross(orientation[:3], orientation[3:])
        length = float(np.linalg.norm(cross))
        normal = tuple(float(v) for v in cross / length) if length > 1e-6 else None
    along = float(np.dot(position, normal)) if position is not None and normal is not None else None
    return SeriesFile(name=name, data=data, position=along, instance=_number(header.get("InstanceNumber"), int),
                      normal=normal)


def _vector(value: Any, length: int) -> np.ndarray | None:
    """A DICOM multi-valued number as a float64 array of `length`, or None when absent or malformed."""
    try:
        vector = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return vector if vector.shape == (length,) and np.isfinite(vector).all() else None


def _number(value: Any, kind: Callable = float):
    try:
        return kind(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _ordered(uid: str, stack: list[SeriesFile], number: int | None, description: str) -> Series:
    """A Series with `stack` sorted by position, else instance number, else file name (see group_series)."""
    if _one_stack(stack):
        key, ordered_by = (lambda f: (f.position, f.instance or 0, f.name)), "position"
    elif all(f.instance is not None for f in stack):
        key, ordered_by = (lambda f: (f.instance, f.name)), "instance number"
    else:
        key, ordered_by = (lambda f: f.name), "file name"
    digest = hashlib.sha256(uid.encode()).hexdigest()[:8]
    return Series(key=digest, files=tuple(sorted(stack, key=key)), ordered_by=ordered_by, number=number,
                  description=description)


def _one_stack(stack: list[SeriesFile]) -> bool:
    """True when every slice has a position and all slice normals are parallel (not a 3-plane localiser)."""
    if any(f.position is None or f.normal is None for f in stack):
        return False
    first = np.array(stack[0].normal)
    return all(1.0 - abs(float(np.dot(first, f.normal))) <= _PARALLEL_TOLERANCE for f in stack)
