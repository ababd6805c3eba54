"""Whole DICOM series: unpack an upload, group its slices by series, order them, classify them all.

    expand_upload(name, bytes) -> [(name, bytes), ...]    a .zip is unpacked in memory, anything else passes
    group_series(files) -> SeriesGroups                    DICOM slices by SeriesInstanceUID, in slice order
    analyse_series(classifier, series) -> SeriesAnalysis   every slice read, cropped and predicted in one batch
    mark_volume_edges(slices) -> slices                    refusals at either end of a series: VOLUME_EDGE
    series_rows(classifier, files, row_type=Row) -> rows  the command line's CSV rows (slices + summary)

Only the tags in ``SERIES_TAGS`` are parsed to group and order slices (pydicom
``specific_tags``), and decoding a slice parses only the display tags of
:mod:`core.io.dicom`, so patient tags are never read. A series is named by
a short hash of its SeriesInstanceUID (``series:3fa9c1d2``), never by the UID
itself, which can embed dates and device serial numbers. Nothing is written to
disk: a .zip is read member by member into memory, under limits on the number
of files and their total size.
"""

from core.predict.series.analysis import (
    TOP_SLICES,
    VOLUME_EDGE_REASON,
    SeriesAnalysis,
    SliceResult,
    analyse_series,
    mark_volume_edges,
    slice_ranges,
)
from core.predict.series.archive import (
    MAX_ZIP_BYTES,
    MAX_ZIP_FILES,
    File,
    expand_upload,
    read_for_series,
    safe_relative,
)
from core.predict.series.grouping import SERIES_TAGS, Series, SeriesFile, SeriesGroups, group_series
from core.predict.series.outputs import SINGLES_BATCH, series_pages, series_rows
from core.predict.status import NOT_BRAIN_MRI, OK, UNREADABLE, VOLUME_EDGE

__all__ = ["MAX_ZIP_BYTES", "MAX_ZIP_FILES", "NOT_BRAIN_MRI", "OK", "SERIES_TAGS", "SINGLES_BATCH", "TOP_SLICES",
           "UNREADABLE", "VOLUME_EDGE", "VOLUME_EDGE_REASON", "File", "Series", "SeriesAnalysis", "SeriesFile",
           "SeriesGroups", "SliceResult", "analyse_series", "expand_upload", "group_series", "mark_volume_edges",
           "read_for_series", "safe_relative", "series_pages", "series_rows", "slice_ranges"]

