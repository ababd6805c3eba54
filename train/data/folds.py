"""Leave-one-source-out folds: one pool of scans from independent sources, and one fold per held-out source.

A *source* is a name and its data folders (`br35h` = br35h + nav, `mos` = mos/Training + mos/Testing,
`lgg`). :func:`build_pool` reads every scan once (crop cache), then makes the sources independent:

1. unreadable files are skipped; exact copies inside a source (same decoded pixels) are kept once;
2. a scan that is an exact or near copy of a scan of an EARLIER source (in the order given) belongs to
   that earlier source and is dropped from its own (MOS Testing's normals are mostly Br35H files, so
   they stay Br35H's and never count as MOS);
3. groups for splitting: copies (exact or near, transitively) share a group, and so do the slices of one
   patient (a folder's manifest.csv: LGG). Sources without patient ids (Br35H, NAV, MOS) are grouped by
   duplication only: their slices of one patient CAN fall on both sides of a validation split.

:func:`make_fold` then holds one source out: its scans that copy (exact or near) any scan of the
training sources are removed; at most `test_cap` of each class are evaluated (seeded); at most `cap` scans
of each (source, class) cell of the training sources are used (seeded), of which `val_split` is held out
for validation by whole groups (so no LGG patient is on both sides). The result is a
:class:`train.data.splits.Prepared` (splits train / val / test), which `train.run.fit_prepared` trains on
and :func:`train.data.splits.save_bundle` can write for another machine.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from train.data import cache, dedup
from train.data.discover import DataError, check_two_classes, discover_all
from train.data.splits import Prepared, split_groups

#: The shared data sets beside the repository (../shared/data).
DATA_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data"
#: The three independent sources in ../shared/data (SOURCES.md): name -> folders under the data root.
DEFAULT_SOURCES = {"br35h": ("br35h", "nav"), "mos": ("mos/Training", "mos/Testing"), "lgg": ("lgg",)}
#: The same sources with LGG in all three sequences (FLAIR, plain T1, contrast T1; one source, same patients):
#: the fine-tuning pool. DEFAULT_SOURCES stays as it is, so the shipped head refit's numbers reproduce.
ALL_SEQUENCES = {**DEFAULT_SOURCES, "lgg": ("lgg", "lgg-t1pre", "lgg-t1post")}


@dataclass
class Pool:
    """Every kept scan of every source (module docstring), in source order.

    samples: train.data.discover.Sample per scan, with `source` set to the source NAME; entries: the crop-cache
    entries (crop uint8 (s, s), pixel_sha, dhash uint8 (32,)); groups: int (n,) split groups;
    report: per source, files found, unreadable, exact copies inside it, copies of earlier sources.
    """

    samples: list
    entries: list
    groups: np.ndarray
    report: dict = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int8)

    @property
    def sources(self) -> np.ndarray:
        return np.array([s.source for s in self.samples])

    def source_names(self) -> list[str]:
        return list(dict.fromkeys(s.source for s in self.samples))


def resolve_sources(data_root: Path, overrides: dict[str, list[str]] | None = None,
                    defaults: dict[str, tuple[str, ...]] = DEFAULT_SOURCES) -> dict[str, list[Path]]:
    """{source name: its folders}: `defaults` under `data_root`, or `overrides` (name -> folders) when given."""
    named = overrides or {name: [str(Path(data_root) / folder) for folder in folders]
                          for name, folders in defaults.items()}
    if len(named) < 2:
        raise DataError(f"Leave-one-source-out needs at least two sources. Received: {', '.join(named) or 'none'}.")
    for name, folders in named.items():
        for folder in folders:
            if not Path(folder).is_dir():
                raise DataError(f"The folder {folder!r} of source {name!r} does not exist. "
                                "Check --data-root or --source.")
    return {name: [Path(folder) for folder in folders] for name, folders in named.items()}


def parse_sources(items: list[str] | None) -> dict[str, list[str]] | None:
    """{name: folders} from --source options "NAME=DIR[,DIR...]" (None when there are none)."""
    if not items:
        return None
    named = {}
    for item in items:
        name, _, folders = item.partition("=")
        if not name or not folders:
            raise DataError(f"--source needs NAME=DIR[,DIR...]. Received: {item!r}")
        named[name] = folders.split(",")
    return named


def folder_of(path: str | Path) -> str:
    """The data folder a scan file is in: 'lgg-t1pre' for .../lgg-t1pre/yes/x.jpg, 'mos/Testing' for
    .../mos/Testing/glioma/x.jpg (a scan sits in a class folder inside its data folder)."""
    parts = Path(path).parts
    return "/".join(parts[-4:-2]) if len(parts) >= 4 and parts[-4] == "mos" else parts[-3]


def _patient_of(source: str, patient: str) -> str:
    """'source:id' for a sample's 'folder:id' patient ("" stays "")."""
    return f"{source}:{patient.split(':', 1)[1]}" if patient else ""


def _discover(sources: dict[str, list[Path]], negative_classes) -> list:
    """Samples of every source, each named by its source; a patient is named by source and id, so one
    patient's slices in several folders of a source (LGG's FLAIR, T1 and contrast T1) share one group."""
    samples = []
    for name, folders in sources.items():
        found = [dataclasses.replace(s, source=name, patient=_patient_of(name, s.patient))
                 for s in discover_all(folders, negative_classes)]
        check_two_classes(found, f"source {name!r}")
        samples += found
    return samples


def _keep_once_and_attribute(samples, entries, near_threshold, report):
    """Indices kept: readable, first of each exact copy inside a source, not a copy of an earlier source."""
    kept: list[int] = []
    for name in dict.fromkeys(s.source for s in samples):
        own = [i for i, s in enumerate(samples) if s.source == name]
        readable = [i for i in own if entries[i].error is None]
        first_of = {}
        for i in readable:
            first_of.setdefault(entries[i].pixel_sha, i)
        unique = sorted(first_of.values())
        matches = dedup.copies_of([entries[i] for i in unique], [entries[i] for i in kept], near_threshold)
        copies = {unique[m.query]: samples[kept[m.reference]].source for m in matches}
        report[name] = {"found": len(own), "unreadable": len(own) - len(readable),
                        "exact_copies_inside": len(readable) - len(unique),
                        "copies_of_earlier_sources": dedup.removal_counts(matches, len(unique)),
                        "copies_by_source": {src: list(copies.values()).count(src) for src in set(copies.values())}}
        kept += [i for i in unique if i not in copies]
    return kept


def build_pool(sources: dict[str, list[Path]], size: int, *, cache_dir=None, workers: int = 1,
               near_threshold: int = dedup.NEAR_THRESHOLD, negative_classes=None, log=print) -> Pool:
    """Read, crop (cached) and de-duplicate every source's scans (module docstring, steps 1-3)."""
    from train.data.discover import NEGATIVE_CLASSES

    samples = _discover(sources, tuple(negative_classes or NEGATIVE_CLASSES))
    entries = cache.crop_all([s.path for s in samples], size, cache_dir, workers, desc="all sources")
    report: dict = {}
    kept = _keep_once_and_attribute(samples, entries, near_threshold, report)
    samples, entries = [samples[i] for i in kept], [entries[i] for i in kept]
    groups = split_groups(samples, entries, near_threshold)
    for name, info in report.items():
        members = [s for s in samples if s.source == name]
        info["kept"] = {"tumour": sum(s.label for s in members), "no_tumour": sum(1 - s.label for s in members)}
        info["patients"] = len({s.patient for s in members if s.patient})
        log(f"source {name}: {info['found']} files, kept {info['kept']['tumour']} tumour / "
            f"{info['kept']['no_tumour']} no tumour ({info['exact_copies_inside']} exact copies inside it, "
            f"{info['unreadable']} unreadable, copies of earlier sources dropped: {info['copies_by_source'] or 0})")
    return Pool(samples, entries, groups, {"sources": report, "near_threshold": near_threshold,
                                           "groups": int(len(set(groups.tolist())))})


def _cell_seed(seed: int, *names) -> list[int]:
    return [seed] + [zlib.crc32(str(name).encode()) for name in names]


def cap_cells(indices: np.ndarray, pool: Pool, cap: int | None, seed: int, role: str) -> np.ndarray:
    """At most `cap` of `indices` from each (source, class) cell, drawn with a seed per (role, cell); sorted."""
    if cap is None:
        return np.sort(indices)
    labels, sources = pool.labels[indices], pool.sources[indices]
    chosen = []
    for source in sorted(set(sources.tolist())):
        for label in (0, 1):
            cell = indices[(sources == source) & (labels == label)]
            rng = np.random.default_rng(_cell_seed(seed, role, source, label))
            chosen.append(cell if len(cell) <= cap else rng.choice(cell, cap, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else indices[:0]


def _removal(pool: Pool, test: np.ndarray, seen: np.ndarray, near_threshold: int):
    """(test indices kept, report) after removing exact/near copies of any `seen` scan."""
    matches = dedup.copies_of([pool.entries[i] for i in test], [pool.entries[i] for i in seen], near_threshold)
    removed = {m.query for m in matches}
    pairs = [{"removed": str(pool.samples[test[m.query]].path),
              "training_copy": str(pool.samples[seen[m.reference]].path), "kind": m.kind, "hamming": m.distance}
             for m in matches]
    kept = np.array([index for k, index in enumerate(test) if k not in removed], dtype=int)
    return kept, {**dedup.removal_counts(matches, len(test)), "pairs": pairs}


def make_fold(pool: Pool, held_out: str, *, cap: int | None, test_cap: int | None, val_split: float, seed: int,
              near_threshold: int = dedup.NEAR_THRESHOLD) -> Prepared:
    """The fold that tests on `held_out` (module docstring) as a Prepared with train / val / test splits."""
    sources = pool.sources
    if held_out not in set(sources.tolist()):
        raise DataError(f"Unknown source {held_out!r}. Sources: {', '.join(pool.source_names())}.")
    training = np.flatnonzero(sources != held_out)
    test, removal = _removal(pool, np.flatnonzero(sources == held_out), training, near_threshold)
    evaluated = cap_cells(test, pool, test_cap, seed, "test")
    used = cap_cells(training, pool, cap, seed, "train")
    held = dedup.grouped_split(pool.groups[used], pool.labels[used], val_split, seed)
    order = np.concatenate([used[~held], used[held], evaluated])
    split = np.array(["train"] * int((~held).sum()) + ["val"] * int(held.sum()) + ["test"] * len(evaluated))
    labels = pool.labels[order]
    for name in ("train", "val", "test"):
        if len(set(labels[split == name].tolist())) < 2:
            raise DataError(f"The {name} set of the fold holding out {held_out!r} lacks a class "
                            f"({int((split == name).sum())} scans). Add data or raise --cap / --test-cap.")
    report = {"held_out": held_out, "training_sources": [s for s in pool.source_names() if s != held_out],
              "pool": pool.report, "duplicates": {f"test:{held_out}": removal},
              "test_after_removal": _class_counts(pool.labels[test]),
              "validation": f"{val_split:.0%} of the capped training scans, by whole group (copies; LGG patients)",
              "near_threshold": near_threshold, "hash": "dHash 256-bit", "unreadable": []}
    prepared = Prepared(crops=np.stack([pool.entries[i].crop for i in order]), labels=labels, split=split,
                        source=sources[order], path=np.array([str(pool.samples[i].path) for i in order]),
                        report=report, patient=np.array([pool.samples[i].patient for i in order]))
    report["counts"] = {name: {src: _class_counts(labels[(split == name) & (prepared.source == src)])
                               for src in sorted(set(prepared.source[split == name].tolist()))}
                        for name in ("train", "val", "test")}
    return prepared


def _class_counts(labels: np.ndarray) -> dict:
    return {"tumour": int(np.sum(labels == 1)), "no_tumour": int(np.sum(labels == 0))}
