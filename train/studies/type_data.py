"""The typed tumour slices of the shared data, their split groups and their backbone features.

    typed_set(model, data_root, ...) -> TypedSet

MOS's tumour class folders name the type (glioma, meningioma, pituitary); every LGG slice with a tumour is a
lower-grade glioma, in three sequences (FLAIR, plain T1, contrast T1; the same patients). Br35H and NAV hold
no types. Copies inside a source are kept once (train.data.folds.build_pool); split groups join copies and one
patient's slices, so a group is never on both sides of a split.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.model.tumour_type import TYPES
from train.data import folds
from train.data.discover import DataError

#: The sources that name a type: source -> folders under the data root.
TYPED_SOURCES = {"mos": ("mos/Training", "mos/Testing"), "lgg": ("lgg", "lgg-t1pre", "lgg-t1post")}
#: Sources whose every tumour is of one type.
SOURCE_TYPE = {"lgg": "glioma"}


@dataclass
class TypedSet:
    """n typed tumour slices. paths: str; folders: str (n,) ('mos/Testing', 'lgg-t1pre', ...); sources: str (n,);
    types: int (n,) index into TYPES; groups: int (n,) split groups; features: float32 (n, 2048)."""

    paths: list[str]
    folders: np.ndarray
    sources: np.ndarray
    types: np.ndarray
    groups: np.ndarray
    features: np.ndarray

    def subset(self, mask: np.ndarray) -> "TypedSet":
        index = np.flatnonzero(mask)
        return TypedSet([self.paths[i] for i in index], self.folders[index], self.sources[index], self.types[index],
                        self.groups[index], self.features[index])


def type_of(source: str, class_name: str) -> int:
    """Index into TYPES of a tumour slice of `source` in class folder `class_name`."""
    name = SOURCE_TYPE.get(source, class_name.lower())
    if name not in TYPES:
        raise DataError(f"A tumour class folder of source {source!r} is named {class_name!r}, which is not a type "
                        f"({', '.join(TYPES)}). Rename it or leave the source out.")
    return TYPES.index(name)


def relative_to_root(path: Path, data_root: Path) -> Path:
    """`path` relative to `data_root`, both made absolute but not resolved (data folders may be symlinks)."""
    return Path(os.path.abspath(path)).relative_to(os.path.abspath(data_root))


def typed_set(model, data_root: Path = folds.DATA_ROOT, cache_dir=None, workers: int = 1, log=print) -> TypedSet:
    """Every kept tumour slice of TYPED_SOURCES with its type, group and pooled features (cached)."""
    from train.studies.refit import cached_features

    sources = folds.resolve_sources(data_root, defaults=TYPED_SOURCES)
    pool = folds.build_pool(sources, int(model.input_shape[1]), cache_dir=cache_dir, workers=workers, log=log)
    keep = [i for i, sample in enumerate(pool.samples) if sample.label == 1]
    tumours = folds.Pool([pool.samples[i] for i in keep], [pool.entries[i] for i in keep], pool.groups[keep])
    features = cached_features(model, tumours, cache_dir, log)
    samples = tumours.samples
    return TypedSet(paths=[str(s.path) for s in samples],
                    folders=np.array([folds.folder_of(s.path) for s in samples]),
                    sources=np.array([s.source for s in samples]),
                    types=np.array([type_of(s.source, s.class_name) for s in samples], dtype=np.int64),
                    groups=tumours.groups, features=features)


def group_split(groups: np.ndarray, fractions: dict[str, float], seed: int) -> np.ndarray:
    """str (n,) role of each item, whole groups at a time: each group goes to a role with the role's
    probability (`fractions`, e.g. {'val': 0.15, 'test': 0.2}; the rest 'train'), decided by a hash of
    (seed, group), so a group's role does not depend on which other groups exist."""
    roles = np.full(len(groups), "train", dtype=object)
    for group in np.unique(groups):
        draw = zlib.crc32(f"{seed}:{int(group)}".encode()) / 2**32
        edge = 0.0
        for role, fraction in fractions.items():
            edge += fraction
            if draw < edge:
                roles[groups == group] = role
                break
    return roles.astype(str)
