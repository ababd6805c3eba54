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


def duplicate_groups(sha: list[str], hashes: np.ndarray, threshold: int = NEAR_THRESHOLD) -> np.ndarray:
    """int (n,) group id per item: items linked by exact or near duplication share a group."""
    n = len(sha)
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    first_of = {}
    for i, digest in enumerate(sha):
        if digest in first_of:
            join(i, first_of[digest])
        first_of.setdefault(digest, i)
    for start in range(0, n, 1024):  # blocks keep memory bounded for large sets
        block = hamming_matrix(hashes[start : start + 1024], hashes)
        rows, cols = np.nonzero(block <= threshold)
        for i, j in zip(rows + start, cols):
            if i < j:
                join(int(i), int(j))
    return np.array([root(i) for i in range(n)])


def grouped_split(groups: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """bool (n,) mask of the held-out side: whole duplicate groups, about `fraction` of each class.

    Groups are assigned by their first member's label, so both classes are held out in proportion.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"The validation fraction must be between 0 and 1. Received: {fraction!r}")
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(groups), dtype=bool)
    first_label = {}
    for group, label in zip(groups.tolist(), labels.tolist()):
        first_label.setdefault(group, label)
    for label in (0, 1):
        class_groups = np.array(sorted(g for g, l in first_label.items() if l == label))
        rng.shuffle(class_groups)
        target = fraction * np.sum(labels == label)
        taken = 0
        for group in class_groups:
            if taken >= target:
                break
            members = groups == group
            held_out |= members
            taken += int(members.sum())
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
