"""What happened to one scan, spelled once for the app, `brain-mri predict` (CSV `status`) and series.

Status is a StrEnum: each member is its plain string ("ok", ...), so CSV, JSON and comparisons with the
strings keep working.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """OK: assessed. NOT_BRAIN_MRI: the input check refused it (no probability; the reason says why).
    UNREADABLE: not a readable image. VOLUME_EDGE: refused at an end of a series whose other slices passed."""

    OK = "ok"
    NOT_BRAIN_MRI = "not_brain_mri"
    UNREADABLE = "unreadable"
    VOLUME_EDGE = "volume_edge"


OK, NOT_BRAIN_MRI, UNREADABLE, VOLUME_EDGE = Status.OK, Status.NOT_BRAIN_MRI, Status.UNREADABLE, Status.VOLUME_EDGE
