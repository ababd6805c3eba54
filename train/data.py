"""Find labelled scans in folders.

A data folder holds class folders (``yes/``, ``no/``, ``glioma/``...), at any
depth. A file's class is the folder that directly contains it: negative names
mean "no tumour" (0), every other class folder means "tumour" (1). The source of a file is the data folder it was found under.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

#: Folder names (any case) that mean "no tumour".
NEGATIVE_CLASSES = ("no", "notumor", "no_tumor", "normal", "healthy")
#: File extensions considered scans (content is checked when read, not here).
SCAN_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm", ".dicom")


class DataError(ValueError):
    """The data folders cannot be used as given; the message says what to change."""


@dataclass(frozen=True)
class Sample:
    """One scan file: its path, label (1 tumour, 0 no tumour), class folder and source name."""

    path: Path
    label: int
    class_name: str
    source: str


def label_of(class_name: str, negative_classes: tuple[str, ...] = NEGATIVE_CLASSES) -> int:
    """1 for a tumour class folder, 0 for a negative one (case-insensitive)."""
    return 0 if class_name.lower() in {name.lower() for name in negative_classes} else 1


def source_name(folder: Path) -> str:
    """A readable source name for a data folder: its last two path parts (``mos/Testing``)."""
    parts = folder.resolve().parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else parts[-1]


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
    samples = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in SCAN_SUFFIXES or path.name.startswith("."):
            continue
        relative = path.relative_to(root)
        if len(relative.parts) < 2:
            continue
        class_name = relative.parts[-2]
        samples.append(Sample(path, label_of(class_name, negative_classes), class_name, source))
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
