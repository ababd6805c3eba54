"""The one path from a scan to an answer: prepare, check the input, assess. The app, `brain-mri predict` and
whole series all go through it.

    analyse(classifier, source, name=None) -> Analysis            one scan: read, crop, check, assess
    analyse_prepared(classifier, scans, tta=True) -> [(InputCheck, Assessment | None)]
                                                                   many prepared scans, assessed in one batch
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence

from core.imaging.pipeline import OfScan, PreparedScan, prepare_scan
from core.io.sniff import read_bytes
from core.predict.assessment import Assessment, assess
from core.predict.status import Status
from core.quality.input_check import InputCheck, check_input


@dataclass(frozen=True)
class Analysis(OfScan):
    """One scan run through `core`: the prepared scan, the input check and, when it passed, the assessment.

    digest: hex SHA-256 of the file's bytes (a cache key; never stored on disk). assessment: a
    `core.predict.assessment.Assessment` (calibrated probability, its range over test-time views, threshold,
    verdict), or None when the input check refused the scan.
    """

    name: str
    digest: str
    scan: PreparedScan
    check: InputCheck
    assessment: Assessment | None

    @property
    def refused(self) -> bool:
        return self.assessment is None

    @property
    def probability(self) -> float | None:
        return None if self.assessment is None else self.assessment.probability

    @property
    def label(self) -> str:
        """'tumour', 'no_tumour', 'uncertain' (data spelling) or 'not_brain_mri'."""
        return Status.NOT_BRAIN_MRI if self.assessment is None else self.assessment.verdict


def digest_of(data: bytes) -> str:
    """Hex SHA-256 of a scan file's bytes: Analysis.digest, the app's per-session cache key, a series slice's id."""
    return hashlib.sha256(data).hexdigest()


def check(scan: PreparedScan) -> InputCheck:
    """The input check of a prepared scan (its pixels, crop and file metadata)."""
    return check_input(scan.pixels, scan.crop, scan.meta)


def refusal(scan: PreparedScan) -> str:
    """The input check's reason for refusing `scan`, or '' when it passes."""
    result = check(scan)
    return "" if result.ok else result.reason


def analyse_prepared(classifier, scans: Sequence[PreparedScan],
                     tta: bool = True) -> list[tuple[InputCheck, Assessment | None]]:
    """Check every scan, then assess those that pass in one batch; (check, assessment or None) per scan, in order."""
    checks = [check(scan) for scan in scans]
    assessments = iter(assess(classifier, [scan for scan, c in zip(scans, checks) if c.ok], tta=tta))
    return [(c, next(assessments) if c.ok else None) for c in checks]


def analyse(classifier, source: bytes | str | os.PathLike | BinaryIO, name: str | None = None,
            tta: bool = True) -> Analysis:
    """Read, crop, check and assess one scan (bytes, a path or a binary file). Raises `core.io.ScanError` for a
    file it cannot read."""
    if isinstance(source, (str, os.PathLike)):
        name = name or Path(source).name
    data = read_bytes(source, f"'{name}'" if name else "This file")  # ScanError when missing, empty or too large
    scan = prepare_scan(data, classifier.input_size, name=name)
    ((result, assessment),) = analyse_prepared(classifier, [scan], tta=tta)
    return Analysis(name=name or "", digest=digest_of(data), scan=scan, check=result,
                    assessment=assessment)
