"""Exact and near duplicates between and within sets of scans.

Exact: the same decoded pixels (SHA-256 of the pixel array).
Near: 256-bit difference hashes of the whole scan within a Hamming distance
(re-encoded, rescaled or slightly re-windowed copies of the same slice).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Largest Hamming distance (of 256 bits) that still counts as a near duplicate.
NEAR_THRESHOLD = 26
#: Bytes of one packed 256-bit dHash.
HASH_BYTES = 32


@dataclass(frozen=True)
class Match:
    """Query item `query` duplicates reference item `reference` (indices into the given lists)."""

    query: int
    reference: int
    kind: str  # "exact" or "near"
    distance: int


def hamming_matrix(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """uint8 (n, 32) and (m, 32) packed hashes -> int32 (n, m) Hamming distances."""
    a = np.unpackbits(first, axis=1).astype(np.float32)
    b = np.unpackbits(second, axis=1).astype(np.float32)
    return np.rint(a @ (1 - b).T + (1 - a) @ b.T).astype(np.int32)


def find_duplicates(query_sha: list[str], query_hash: np.ndarray, reference_sha: list[str],
                    reference_hash: np.ndarray, threshold: int = NEAR_THRESHOLD) -> list[Match]:
    """For each query item that duplicates some reference item, its closest match.

    query_hash / reference_hash: uint8 (n, 32) / (m, 32) packed dHashes.
    Exact matches win over near ones; among near ones the smallest distance wins.
    """
    matches = []
    exact = {}
    for index, sha in enumerate(reference_sha):
        exact.setdefault(sha, index)
    distances = None
    if len(query_sha) and len(reference_sha):
        distances = hamming_matrix(query_hash, reference_hash)
    for index, sha in enumerate(query_sha):
        if sha in exact:
            matches.append(Match(index, exact[sha], "exact", 0))
        elif distances is not None:
            nearest = int(np.argmin(distances[index]))
            if distances[index, nearest] <= threshold:
                matches.append(Match(index, nearest, "near", int(distances[index, nearest])))
    return matches


class _Links:
    """Union-find over n items: `join` links two, `groups` gives each item its group's smallest index."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def root(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(self, i: int, j: int) -> None:
        ri, rj = self.root(i), self.root(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)

    def join_equal(self, keys) -> None:
        """Link items whose key is equal (keys that are "" or None link nothing)."""
        first_of = {}
        for i, key in enumerate(keys):
            if key in ("", None):
                continue
            if key in first_of:
                self.join(i, first_of[key])
            first_of.setdefault(key, i)

    def groups(self) -> np.ndarray:
        return np.array([self.root(i) for i in range(len(self.parent))], dtype=int)


def duplicate_groups(sha: list[str], hashes: np.ndarray, threshold: int = NEAR_THRESHOLD,
                     patients=None) -> np.ndarray:
    """int (n,) group id per item: items linked by exact or near duplication share a group.

    patients: optional (n,) patient ids ("" = unknown). Two items of DIFFERENT known patients are never
    linked as near copies (only exact ones): slices of different patients are not copies of each other,
    and near-blank slices (the top and bottom of every LGG volume) would otherwise chain whole cohorts together.
    """
    n = len(sha)
    links = _Links(n)
    links.join_equal(sha)
    known = None if patients is None else np.asarray(patients, dtype=str)
    for start in range(0, n, 1024):  # blocks keep memory bounded for large sets
        block = hamming_matrix(hashes[start : start + 1024], hashes)
        rows, cols = np.nonzero(block <= threshold)
        rows = rows + start
        if known is not None:
            other = (known[rows] != "") & (known[cols] != "") & (known[rows] != known[cols])
            rows, cols = rows[~other], cols[~other]
        for i, j in zip(rows, cols):
            if i < j:
                links.join(int(i), int(j))
    return links.groups()


def merge_groups(groups: np.ndarray, *keys) -> np.ndarray:
    """int (n,) groups joined further: items that share a non-empty value of any key (e.g. the patient)
    end up in one group. groups: int (n,) (e.g. from duplicate_groups); each key: (n,) strings, "" = none."""
    groups = np.asarray(groups)
    links = _Links(len(groups))
    links.join_equal(groups.tolist())
    for key in keys:
        if len(key) != len(groups):
            raise ValueError(f"Each key needs one value per item. Received: {len(key)} values for {len(groups)} items")
        links.join_equal(list(key))
    return links.groups()


def grouped_split(groups: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """bool (n,) mask of the held-out side: whole groups, about `fraction` of each class.

    groups: int (n,) group ids (duplicate groups, possibly merged with patients by merge_groups).
    Each class in turn takes shuffled groups whose first member has that label until the class's own
    held-out count reaches its target; a group holding both classes (a patient) counts for both. A
    class still short then takes further groups that hold it.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"The validation fraction must be between 0 and 1. Received: {fraction!r}")
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(groups), dtype=bool)
    first_label = {}
    for group, label in zip(groups.tolist(), labels.tolist()):
        first_label.setdefault(group, label)
    target = {label: fraction * np.sum(labels == label) for label in (0, 1)}
    taken = {0: 0, 1: 0}

    def take(group) -> None:
        members = (groups == group) & ~held_out
        held_out[members] = True
        for label in (0, 1):
            taken[label] += int(np.sum(members & (labels == label)))

    for label in (0, 1):
        class_groups = np.array(sorted(g for g, l in first_label.items() if l == label))
        rng.shuffle(class_groups)
        for group in class_groups:
            if taken[label] >= target[label]:
                break
            take(group)
    for label in (0, 1):  # mixed groups can leave a class short
        for group in sorted(set(groups[(labels == label) & ~held_out].tolist())):
            if taken[label] >= target[label]:
                break
            take(group)
    return held_out


def copies_of(entries, reference_entries, threshold: int = NEAR_THRESHOLD) -> list[Match]:
    """Matches of crop-cache entries (with `pixel_sha` and `dhash`) among `reference_entries`.

    Each entry that is an exact or near copy of some reference entry gets its closest match.
    """
    def hashes(items):
        return np.stack([e.dhash for e in items]) if items else np.zeros((0, HASH_BYTES), np.uint8)

    return find_duplicates([e.pixel_sha for e in entries], hashes(entries),
                           [e.pixel_sha for e in reference_entries], hashes(reference_entries), threshold)


def removal_counts(matches: list[Match], checked: int) -> dict:
    """{"checked", "exact", "near", "kept"} for `checked` items of which `matches` are removed."""
    return {"checked": checked, "exact": sum(m.kind == "exact" for m in matches),
            "near": sum(m.kind == "near" for m in matches), "kept": checked - len({m.query for m in matches})}
