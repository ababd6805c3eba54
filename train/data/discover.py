"""Find labelled scans in folders.

A data folder holds class folders (``yes/``, ``no/``, ``glioma/``...), at any
depth. A file's class is the folder that directly contains it: negative names
mean "no tumour" (0), every other class folder means "tumour" (1). The source of a file is the data
folder it was found under.

A data folder may hold a `manifest.csv` with `file` (path relative to the folder)
and `patient` columns (the LGG set does): its scans then carry their patient, so
that splits keep every patient on one side. It is never used as evidence.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

#: Folder names (any case) that mean "no tumour".
NEGATIVE_CLASSES = ("no", "notumor", "no_tumor", "normal", "healthy")
#: The optional per-folder list of scans with their patients.
MANIFEST = "manifest.csv"
#: File extensions considered scans (content is checked when read, not here).
SCAN_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm", ".dicom")


class DataError(ValueError):
    """The data folders cannot be used as given; the message says what to change."""


@dataclass(frozen=True)
class Sample:
    """One scan file: its path, label (1 tumour, 0 no tumour), class folder, source name and patient.

    patient: "source:patient id" from the folder's manifest.csv, or "" when unknown.
    """

    path: Path
    label: int
    class_name: str
    source: str
    patient: str = ""


def label_of(class_name: str, negative_classes: tuple[str, ...] = NEGATIVE_CLASSES) -> int:
    """1 for a tumour class folder, 0 for a negative one (case-insensitive)."""
    return 0 if class_name.lower() in {name.lower() for name in negative_classes} else 1


def source_name(folder: Path) -> str:
    """A readable source name for a data folder: its last two path parts (``mos/Testing``)."""
    parts = folder.resolve().parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else parts[-1]


def read_patients(folder: str | os.PathLike) -> dict[str, str] | None:
    """{file path relative to `folder` (posix): patient id} from its manifest.csv, or None without one.

    A manifest without `file` and `patient` columns, or with an empty patient, raises DataError.
    """
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        return None
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"file", "patient"} <= set(rows[0]):
        raise DataError(f"{manifest} needs 'file' and 'patient' columns. Found: {', '.join(rows[0])}.")
    empty = [row["file"] for row in rows if not row["patient"].strip()]
    if empty:
        raise DataError(f"{manifest} gives no patient for {len(empty)} files, e.g. {empty[0]!r}.")
    return {Path(row["file"]).as_posix(): row["patient"].strip() for row in rows}


def read_slice_facts(folder: str | os.PathLike) -> dict[str, tuple[float, int]] | None:
    """{file relative to `folder`: (position in its patient's series in [0, 1], outlined area in pixels >= 0)}.

    Position: (slice - 1) / (last - 1), `last` the highest slice number the manifest lists for that patient.

    None where the folder's manifest.csv is missing or lacks the `patient`, `slice` or `mask_area_px` column.
    """
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        return None
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"file", "patient", "slice", "mask_area_px"} <= set(rows[0]):
        return None
    last: dict[str, int] = {}
    for row in rows:
        last[row["patient"].strip()] = max(last.get(row["patient"].strip(), 1), int(row["slice"]))
    return {Path(row["file"]).as_posix(): ((int(row["slice"]) - 1) / max(last[row["patient"].strip()] - 1, 1),
                                          int(row["mask_area_px"] or 0)) for row in rows}


def slice_facts_of(paths) -> list[tuple[float, int] | None]:
    """(position, outlined area) of each scan path, from its data folder's manifest (read_slice_facts; a scan sits in
    a class folder inside its data folder, which the manifest names it by: 'yes/x.png'); None for a scan whose folder
    has no slice facts. Each manifest is read once. DataError where a manifest with slice facts lacks a scan."""
    read: dict[Path, dict | None] = {}
    found = []
    for path in map(Path, paths):
        folder, key = path.parents[1], "/".join(path.parts[-2:])
        if folder not in read:
            read[folder] = read_slice_facts(folder)
        if read[folder] is not None and key not in read[folder]:
            raise DataError(f"{folder / MANIFEST} does not list {key}.")
        found.append(None if read[folder] is None else read[folder][key])
    return found


def discover(folder: str | os.PathLike, negative_classes: tuple[str, ...] = NEGATIVE_CLASSES) -> list[Sample]:
    """All scans under `folder`, labelled by their class folder (sorted by path).

    Files directly in `folder` have no class and are skipped; a folder that
    holds no class folder with scans raises :class:`DataError`.
    """
    root = Path(folder)
    if not root.exists():
        raise DataError(f"The data folder {str(root)!r} does not exist. Check the path.")
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is a file, not a folder of class folders (yes/, no/ ...).")
    source = source_name(root)
    patients = read_patients(root) or {}
    samples = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in SCAN_SUFFIXES or path.name.startswith("."):
            continue
        relative = path.relative_to(root)
        if len(relative.parts) < 2:
            continue
        class_name = relative.parts[-2]
        patient = patients.get(relative.as_posix())
        samples.append(Sample(path, label_of(class_name, negative_classes), class_name, source,
                              f"{source}:{patient}" if patient else ""))
    if not samples:
        raise DataError(
            f"No scans found in class folders under {str(root)!r}. Expected e.g. "
            f"{root}/yes/*.jpg and {root}/no/*.jpg."
        )
    return samples


def discover_all(folders, negative_classes: tuple[str, ...] = NEGATIVE_CLASSES) -> list[Sample]:
    """Samples of several data folders, in the order given."""
    samples = []
    for folder in folders:
        samples.extend(discover(folder, negative_classes))
    return samples


def check_two_classes(samples: list[Sample], role: str) -> None:
    """Raise DataError unless `samples` hold both tumour and no-tumour scans."""
    labels = {sample.label for sample in samples}
    if labels != {0, 1}:
        present = "tumour" if labels == {1} else "no-tumour"
        raise DataError(
            f"The {role} data holds only {present} scans. It needs both classes: add a negative folder "
            f"({', '.join(NEGATIVE_CLASSES)}) and a tumour folder, or set --negative-classes."
        )


def check_disjoint(first, second, first_role: str, second_role: str) -> None:
    """Raise DataError when two lists of data folders overlap (same folder or one inside the other)."""
    for a in first:
        for b in second:
            ra, rb = Path(a).resolve(), Path(b).resolve()
            if ra == rb or ra in rb.parents or rb in ra.parents:
                raise DataError(
                    f"The {first_role} folder {str(a)!r} overlaps the {second_role} folder {str(b)!r}. "
                    f"{second_role.capitalize()} data must be separate from {first_role} data."
                )


def counts_table(samples: list[Sample]) -> str:
    """A printable table of scans per source and class folder."""
    counts = Counter((sample.source, sample.class_name, sample.label) for sample in samples)
    lines = [f"{'source':<24} {'class':<14} {'label':<9} {'scans':>6}"]
    for (source, class_name, label), count in sorted(counts.items()):
        lines.append(f"{source:<24} {class_name:<14} {'tumour' if label else 'no_tumour':<9} {count:>6}")
    return "\n".join(lines)
