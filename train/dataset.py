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

from train import cache, dedup
from train.data import (
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
    """

    crops: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    source: np.ndarray
    path: np.ndarray
    report: dict = field(default_factory=dict)

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
    matches = dedup.find_duplicates(
        [e.pixel_sha for e in entries], np.stack([e.dhash for e in entries]) if entries else np.zeros((0, 32), np.uint8),
        [e.pixel_sha for e in train_entries], np.stack([e.dhash for e in train_entries]), threshold,
    )
    removed = {m.query for m in matches}
    report["duplicates"][role] = {
        "checked": len(samples),
        "exact": sum(m.kind == "exact" for m in matches),
        "near": sum(m.kind == "near" for m in matches),
        "kept": len(samples) - len(removed),
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


def prepare(train_dirs, *, val_dirs=None, val_split=None, test_dirs=(), size=224,
            negative_classes=NEGATIVE_CLASSES, cache_dir=None, workers=1, seed=0,
            near_threshold=dedup.NEAR_THRESHOLD, log=print) -> Prepared:
    """Discover, crop, split and de-duplicate. See the module docstring."""
    if (val_dirs is None) == (val_split is None):
        raise DataError("Give exactly one of --val DIR... or --val-split FRACTION.")
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

    everything = train_samples + val_samples + test_samples
    entries = cache.crop_all([s.path for s in everything], size, cache_dir, workers)
    n_train, n_val = len(train_samples), len(val_samples)
    report = {"unreadable": [], "duplicates": {}, "near_threshold": near_threshold, "hash": "dHash 256-bit"}
    train_samples, train_entries = _readable(train_samples, entries[:n_train], report)
    val_samples, val_entries = _readable(val_samples, entries[n_train : n_train + n_val], report)
    test_samples, test_entries = _readable(test_samples, entries[n_train + n_val :], report)
    if report["unreadable"]:
        log(f"Skipped {len(report['unreadable'])} unreadable files (listed in the report).")

    if val_split is not None:
        labels = np.array([s.label for s in train_samples])
        groups = dedup.duplicate_groups([e.pixel_sha for e in train_entries],
                                        np.stack([e.dhash for e in train_entries]), near_threshold)
        held_out = dedup.grouped_split(groups, labels, val_split, seed)
        val_samples = [s for s, h in zip(train_samples, held_out) if h]
        val_entries = [e for e, h in zip(train_entries, held_out) if h]
        train_samples = [s for s, h in zip(train_samples, held_out) if not h]
        train_entries = [e for e, h in zip(train_entries, held_out) if not h]
        report["validation"] = (f"{val_split:.0%} of the training folders, split by duplicate group "
                                f"({len(set(groups))} groups for {len(groups)} scans)")
    else:
        val_samples, val_entries = _drop_duplicates_of_training(
            "validation", val_samples, val_entries, train_entries, train_samples, near_threshold, report)
        report["validation"] = "separate folders, duplicates of training scans removed"
    if len(val_samples) < MIN_VALIDATION or len({s.label for s in val_samples}) < 2:
        if val_split is not None:
            raise DataError(
                f"Holding out {val_split:.0%} of the training folders gives a validation set of {len(val_samples)} "
                f"scans ({sum(s.label for s in val_samples)} tumour): too few to steer training (at least "
                f"{MIN_VALIDATION}, both classes). Raise --val-split or add training scans."
            )
        raise DataError(
            f"After removing copies of training scans, the validation set has {len(val_samples)} scans "
            f"({sum(s.label for s in val_samples)} tumour): too few to steer training. "
            "Use --val-split 0.1 to hold out part of the training data instead."
        )
    kept_test_samples, kept_test_entries = [], []
    for source in sorted({s.source for s in test_samples}):
        idx = [i for i, s in enumerate(test_samples) if s.source == source]
        kept_s, kept_e = _drop_duplicates_of_training(  # nothing seen while training or selecting the model
            f"test:{source}", [test_samples[i] for i in idx], [test_entries[i] for i in idx],
            train_entries + val_entries, train_samples + val_samples, near_threshold, report)
        kept_test_samples += kept_s
        kept_test_entries += kept_e
    for role, info in report["duplicates"].items():
        log(f"Duplicates of training/validation scans removed from {role}: {info['exact']} exact, "
            f"{info['near']} near; {info['kept']} of {info['checked']} kept.")

    samples = train_samples + val_samples + kept_test_samples
    all_entries = train_entries + val_entries + kept_test_entries
    split = np.array(["train"] * len(train_samples) + ["val"] * len(val_samples) + ["test"] * len(kept_test_samples))
    prepared = Prepared(
        crops=np.stack([e.crop for e in all_entries]),
        labels=np.array([s.label for s in samples], dtype=np.int8),
        split=split,
        source=np.array([s.source for s in samples]),
        path=np.array([str(s.path) for s in samples]),
        report=report,
    )
    report["fell_back"] = int(sum(e.fell_back for e in all_entries))
    report["counts"] = {name: _counts(prepared.labels[split == name], prepared.source[split == name])
                        for name in ("train", "val", "test")}
    return prepared


def save_bundle(prepared: Prepared, path: str | os.PathLike, jpeg_quality: int | None = None) -> Path:
    """Write a prepared data set to one .npz file (atomically).

    Crops are stored losslessly, or as JPEG at `jpeg_quality` (1-100) when the
    bundle must be small enough to travel; the choice is recorded in its report.
    """
    import cv2

    path = Path(path)
    report = dict(prepared.report, bundle_encoding=f"jpeg:{jpeg_quality}" if jpeg_quality else "raw")
    arrays = dict(labels=prepared.labels, split=prepared.split, source=prepared.source, path=prepared.path,
                  report=np.array(json.dumps(report)))
    if jpeg_quality:
        encoded = [cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])[1].ravel()
                   for crop in prepared.crops]
        arrays["jpeg"] = np.concatenate(encoded)
        arrays["jpeg_offsets"] = np.cumsum([0] + [len(e) for e in encoded])
        arrays["size"] = np.array(prepared.size)
    else:
        arrays["crops"] = prepared.crops
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_bundle(path: str | os.PathLike) -> Prepared:
    """Read a bundle written by :func:`save_bundle` (never unpickles)."""
    import cv2

    if not Path(path).is_file():
        raise DataError(f"No prepared data bundle at {str(path)!r}. Write one with `python -m train.prepare`.")
    with np.load(path, allow_pickle=False) as stored:
        if "jpeg" in stored:
            data, offsets = stored["jpeg"], stored["jpeg_offsets"]
            crops = np.stack([cv2.imdecode(data[offsets[i] : offsets[i + 1]], cv2.IMREAD_GRAYSCALE)
                              for i in range(len(offsets) - 1)])
        else:
            crops = stored["crops"]
        return Prepared(crops=crops, labels=stored["labels"], split=stored["split"], source=stored["source"],
                        path=stored["path"], report=json.loads(str(stored["report"])))
