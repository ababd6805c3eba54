"""Assemble the training, validation and test sets, free of leaks.

:func:`prepare` discovers the folders, crops every scan once (cached), drops
unreadable files, splits validation off by duplicate group when asked, and
removes every exact or near duplicate of a training image from validation, and
of a training or validation image from test, before anything is measured. The result can be written to one bundle
file (:func:`save_bundle`) so training can run on a machine without the raw data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.io.atomic import atomic_path
from core.recipe import INPUT_SIZE
from train.data import cache, dedup
from train.data.discover import (
    NEGATIVE_CLASSES,
    DataError,
    check_disjoint,
    check_two_classes,
    counts_table,
    discover_all,
)

#: Fewer validation scans than this (after de-duplication) cannot steer training.
MIN_VALIDATION = 20


@dataclass
class Prepared:
    """Crops and labels of every split.

    crops: uint8 (n, size, size) grey; labels: int8 (n,) 1 tumour / 0 not;
    split: str (n,) "train" | "val" | "test"; source: str (n,); path: str (n,).
    report: unreadable files, duplicate counts and pairs, counts per source.
    patient: optional str (n,) patient per scan ("" unknown), kept so splits can be checked.
    """

    crops: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    source: np.ndarray
    path: np.ndarray
    report: dict = field(default_factory=dict)
    patient: np.ndarray | None = None

    def subset(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(crops, labels) of one split."""
        mask = self.split == name
        return self.crops[mask], self.labels[mask]

    def test_sources(self) -> list[str]:
        return sorted(set(self.source[self.split == "test"]))

    def source_subset(self, split: str, source: str) -> tuple[np.ndarray, np.ndarray]:
        mask = (self.split == split) & (self.source == source)
        return self.crops[mask], self.labels[mask]

    @property
    def size(self) -> int:
        return int(self.crops.shape[1])


def _counts(labels: np.ndarray, sources: np.ndarray) -> dict:
    out = {}
    for source in sorted(set(sources)):
        mask = sources == source
        out[source] = {"tumour": int(np.sum(labels[mask] == 1)), "no_tumour": int(np.sum(labels[mask] == 0))}
    return out


def _drop_duplicates_of_training(role, samples, entries, train_entries, train_samples, threshold, report):
    """Remove exact/near duplicates of training scans; record counts and pairs in `report`."""
    matches = dedup.copies_of(entries, train_entries, threshold)
    removed = {m.query for m in matches}
    report["duplicates"][role] = {
        **dedup.removal_counts(matches, len(samples)),
        "pairs": [
            {"removed": str(samples[m.query].path), "training_copy": str(train_samples[m.reference].path),
             "kind": m.kind, "hamming": m.distance}
            for m in matches
        ],
    }
    keep = [i for i in range(len(samples)) if i not in removed]
    return [samples[i] for i in keep], [entries[i] for i in keep]


def _readable(samples, entries, report):
    good = [(s, e) for s, e in zip(samples, entries) if e.error is None]
    report["unreadable"].extend({"path": str(s.path), "error": e.error} for s, e in zip(samples, entries)
                                if e.error is not None)
    return [s for s, _ in good], [e for _, e in good]


def _discover(train_dirs, val_dirs, test_dirs, negative_classes, log):
    """(train, val, test) samples from the folders; errors for overlapping or one-class folders."""
    check_disjoint(train_dirs, test_dirs, "training", "test")
    if val_dirs:
        check_disjoint(train_dirs, val_dirs, "training", "validation")
    train_samples = discover_all(train_dirs, negative_classes)
    val_samples = discover_all(val_dirs, negative_classes) if val_dirs else []
    test_samples = discover_all(test_dirs, negative_classes)
    check_two_classes(train_samples, "training")
    if val_dirs:
        check_two_classes(val_samples, "validation")
    log("Scans found:\n" + counts_table(train_samples + val_samples + test_samples))
    return train_samples, val_samples, test_samples


def split_groups(samples, entries, near_threshold) -> np.ndarray:
    """int (n,) group per scan: copies (exact or near) share a group, and so do the slices of one patient
    (from a folder's manifest.csv). Scans without a patient id are grouped by duplication only; near
    copies between two different known patients do not link them (see dedup.duplicate_groups)."""
    patients = [s.patient for s in samples]
    groups = dedup.duplicate_groups([e.pixel_sha for e in entries], np.stack([e.dhash for e in entries]),
                                    near_threshold, patients=patients)
    return dedup.merge_groups(groups, patients)


def _split_off_validation(train, val_split, seed, near_threshold, report):
    """Hold out `val_split` of the training (samples, entries), whole groups (split_groups) at a time."""
    samples, entries = train
    labels = np.array([s.label for s in samples])
    groups = split_groups(samples, entries, near_threshold)
    held_out = dedup.grouped_split(groups, labels, val_split, seed)
    patients = len({s.patient for s in samples if s.patient})
    report["validation"] = (f"{val_split:.0%} of the training folders, split by duplicate group "
                            f"({len(set(groups))} groups for {len(groups)} scans)"
                            + (f", each of {patients} patients on one side" if patients else ""))
    pick = lambda items, side: [item for item, h in zip(items, held_out) if h == side]  # noqa: E731
    return (pick(samples, False), pick(entries, False)), (pick(samples, True), pick(entries, True))


def _check_validation(val_samples, val_split) -> None:
    if len(val_samples) >= MIN_VALIDATION and len({s.label for s in val_samples}) == 2:
        return
    tumour = sum(s.label for s in val_samples)
    if val_split is not None:
        raise DataError(
            f"Holding out {val_split:.0%} of the training folders gives a validation set of {len(val_samples)} "
            f"scans ({tumour} tumour): too few to steer training (at least {MIN_VALIDATION}, both classes). "
            "Raise --val-split or add training scans."
        )
    raise DataError(
        f"After removing copies of training scans, the validation set has {len(val_samples)} scans "
        f"({tumour} tumour): too few to steer training. "
        "Use --val-split 0.1 to hold out part of the training data instead."
    )


def _deduplicate_tests(test, seen, near_threshold, report):
    """Each test source without copies of anything seen while training or selecting the model."""
    (test_samples, test_entries), (seen_samples, seen_entries) = test, seen
    kept_samples, kept_entries = [], []
    for source in sorted({s.source for s in test_samples}):
        idx = [i for i, s in enumerate(test_samples) if s.source == source]
        kept_s, kept_e = _drop_duplicates_of_training(
            f"test:{source}", [test_samples[i] for i in idx], [test_entries[i] for i in idx],
            seen_entries, seen_samples, near_threshold, report)
        kept_samples += kept_s
        kept_entries += kept_e
    return kept_samples, kept_entries


def _assemble(splits: dict[str, tuple[list, list]], report: dict) -> Prepared:
    """One Prepared from {split name: (samples, entries)}; adds counts and fall-backs to the report."""
    samples = [s for name in splits for s in splits[name][0]]
    entries = [e for name in splits for e in splits[name][1]]
    split = np.array([name for name, (items, _) in splits.items() for _ in items])
    prepared = Prepared(
        crops=np.stack([e.crop for e in entries]),
        labels=np.array([s.label for s in samples], dtype=np.int8),
        split=split,
        source=np.array([s.source for s in samples]),
        path=np.array([str(s.path) for s in samples]),
        report=report,
    )
    report["fell_back"] = int(sum(e.fell_back for e in entries))
    report["counts"] = {name: _counts(prepared.labels[split == name], prepared.source[split == name])
                        for name in splits}
    return prepared


def prepare(train_dirs, *, val_dirs=None, val_split=None, test_dirs=(), size=INPUT_SIZE,
            negative_classes=NEGATIVE_CLASSES, cache_dir=None, workers=1, seed=0,
            near_threshold=dedup.NEAR_THRESHOLD, log=print) -> Prepared:
    """Discover, crop, split and de-duplicate. See the module docstring."""
    if (val_dirs is None) == (val_split is None):
        raise DataError("Give exactly one of --val DIR... or --val-split FRACTION.")
    found = _discover(train_dirs, val_dirs, test_dirs, negative_classes, log)
    entries = cache.crop_all([s.path for group in found for s in group], size, cache_dir, workers)
    report = {"unreadable": [], "duplicates": {}, "near_threshold": near_threshold, "hash": "dHash 256-bit"}
    starts = np.cumsum([0] + [len(group) for group in found])
    train, val, test = (_readable(group, entries[a:b], report) for group, a, b in zip(found, starts, starts[1:]))
    if report["unreadable"]:
        log(f"Skipped {len(report['unreadable'])} unreadable files (listed in the report).")
    if val_split is not None:
        train, val = _split_off_validation(train, val_split, seed, near_threshold, report)
    else:
        val = _drop_duplicates_of_training("validation", *val, train[1], train[0], near_threshold, report)
        report["validation"] = "separate folders, duplicates of training scans removed"
    _check_validation(val[0], val_split)
    test = _deduplicate_tests(test, (train[0] + val[0], train[1] + val[1]), near_threshold, report)
    for role, info in report["duplicates"].items():
        log(f"Duplicates of training/validation scans removed from {role}: {info['exact']} exact, "
            f"{info['near']} near; {info['kept']} of {info['checked']} kept.")
    return _assemble({"train": train, "val": val, "test": test}, report)


def save_bundle(prepared: Prepared, path: str | os.PathLike, jpeg_quality: int | None = None,
                extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write a prepared data set to one .npz file (atomically).

    Crops are stored losslessly, or as JPEG at `jpeg_quality` (1-100) when the
    bundle must be small enough to travel; the choice is recorded in its report.
    extra: further named arrays stored beside them (no object arrays).
    """
    import cv2

    path = Path(path)
    report = dict(prepared.report, bundle_encoding=f"jpeg:{jpeg_quality}" if jpeg_quality else "raw")
    arrays = dict(labels=prepared.labels, split=prepared.split, source=prepared.source, path=prepared.path,
                  report=np.array(json.dumps(report)))
    if prepared.patient is not None:
        arrays["patient"] = prepared.patient
    if jpeg_quality:
        encoded = [cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])[1].ravel()
                   for crop in prepared.crops]
        arrays["jpeg"] = np.concatenate(encoded)
        arrays["jpeg_offsets"] = np.cumsum([0] + [len(e) for e in encoded])
        arrays["size"] = np.array(prepared.size)
    else:
        arrays["crops"] = prepared.crops
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays, **(extra or {}))
    return path


def load_bundle(path: str | os.PathLike) -> Prepared:
    """Read a bundle written by :func:`save_bundle` (never unpickles)."""
    import cv2

    if not Path(path).is_file():
        raise DataError(f"No prepared data bundle at {str(path)!r}. Write one with `brain-mri prepare`.")
    with np.load(path, allow_pickle=False) as stored:
        if "jpeg" in stored:
            data, offsets = stored["jpeg"], stored["jpeg_offsets"]
            crops = np.stack([cv2.imdecode(data[offsets[i] : offsets[i + 1]], cv2.IMREAD_GRAYSCALE)
                              for i in range(len(offsets) - 1)])
        else:
            crops = stored["crops"]
        return Prepared(crops=crops, labels=stored["labels"], split=stored["split"], source=stored["source"],
                        path=stored["path"], report=json.loads(str(stored["report"])),
                        patient=stored["patient"] if "patient" in stored.files else None)
