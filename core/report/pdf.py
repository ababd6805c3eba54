"""A PDF report to keep: one A4 page per scan, and a summary table first when there are several (or notes).

    page = ReportPage.from_scan(name, file_sha256, scan, probability, threshold, explanation)
    write_pdf([page, ...], card)               -> bytes (for a download button)
    write_pdf([page, ...], card, "out.pdf")    -> Path (written atomically)

Each scan page shows the scan with its crop box, the crop, the explanation
overlay, the tumour probability (with its uncertainty when given), the label at
the threshold, the explanation method and target, the notes, the model id, a
short model-card summary, the weights' SHA-256, the date, the file name and its
SHA-256, and the research-only notice. Pages carry only what a `ReportPage`
holds: pixels and numbers, never a DICOM tag. Drawn with matplotlib's PDF
backend on `matplotlib.figure.Figure` objects (no pyplot state, so app
sessions can write reports at the same time).
"""

from __future__ import annotations

import io
import os
import textwrap
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Mapping, Sequence

import cv2
import numpy as np

from core.imaging.pixels import check_uint8
from core.io.atomic import atomic_path
from core.model.card import ModelCard
from core.model.labels import LABELS, display, label_for
from core.report.card_summary import RESULTS_NOTE, card_summary, results_table

#: The research-only notice on every page (the same words as the app's).
NOTICE = ("Research demo, not for clinical use. It has not been validated for diagnosis; "
          "never base a medical decision on it.")
#: The verdict of a probability too close to the threshold to call (as `core.predict.assessment` spells it).
UNCERTAIN = "uncertain"
#: A4 portrait, inches.
PAGE_SIZE = (8.27, 11.69)
#: Images are kept at most this many pixels on their longer side (memory, file size; ~200 dpi in print).
PRINT_SIDE = 512
#: Rows of the summary table per page.
SUMMARY_ROWS = 40
#: Notes listed on a summary page; the rest are counted.
SUMMARY_NOTES = 8
#: Crop-box colour on the scan (RGB in [0, 1]).
BOX_COLOUR = (0.0, 0.85, 0.0)
#: One lock for every report: matplotlib's font caches are shared by the threads of app sessions.
_LOCK = threading.Lock()
_FONT = "DejaVu Sans"
#: Image panels: side of each square cell and the gap between cells, in the panels' own units.
_CELL, _GAP = 1.0, 0.08
#: Height of one 9-point line at line spacing 1.6, as a fraction of the A4 page height.
_LINE = 9 * 1.6 / (PAGE_SIZE[1] * 72)


@dataclass(frozen=True, eq=False)
class ReportPage:
    """What one scan's page shows.

    pixels: uint8 HxW or HxWx3 [0, 255], the scan; box: its crop box (x0, y0, x1, y1) in `pixels`
    coordinates, x1/y1 exclusive. crop: uint8 hxw or hxwx3, the cropped brain. overlay: uint8 hxwx3 RGB,
    the explanation drawn on the crop, or None. Images larger than PRINT_SIDE are shrunk on creation
    (the box with them). probability, threshold: in [0, 1]. method, target: how the overlay was made
    ("gradcam", "tumour"). uncertainty: a text ("± 0.04") or a (low, high) interval, or None.
    heading: an optional line above the file name ("Slice 3 of 30 of series:3fa9c1d2").
    verdict: an assessment's verdict ("tumour", "no_tumour" or "uncertain") shown as the label; default None:
    the label at the threshold. tumour_type: the type line under the label ("Type: meningioma 71% · ...",
    `core.model.tumour_type.describe_type`), or "" for none.
    """

    name: str
    file_sha256: str
    pixels: np.ndarray
    box: tuple[float, float, float, float]
    crop: np.ndarray
    overlay: np.ndarray | None
    probability: float
    threshold: float
    method: str = ""
    target: str = ""
    notes: tuple[str, ...] = ()
    uncertainty: str | tuple[float, float] | None = None
    heading: str = ""
    verdict: str | None = None
    tumour_type: str = ""

    def __post_init__(self) -> None:
        for what in ("pixels", "crop") + (("overlay",) if self.overlay is not None else ()):
            check_uint8(getattr(self, what), f"ReportPage.{what}", channels=(3,))
        for what in ("probability", "threshold"):
            value = getattr(self, what)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value <= 1:
                raise ValueError(f"ReportPage.{what} must be a number in [0, 1]. Received: {what}={value!r}")
        pixels, scale = _shrunk(self.pixels)
        object.__setattr__(self, "pixels", pixels)
        object.__setattr__(self, "box", tuple(float(v) * scale for v in self.box))
        object.__setattr__(self, "crop", _shrunk(self.crop)[0])
        if self.overlay is not None:
            object.__setattr__(self, "overlay", _shrunk(self.overlay)[0])
        object.__setattr__(self, "notes", tuple(self.notes))
        if self.verdict not in (*LABELS, UNCERTAIN, None):
            raise ValueError(f"ReportPage.verdict must be one of {(*LABELS, UNCERTAIN)} or None. "
                             f"Received: verdict={self.verdict!r}")

    @property
    def label(self) -> str:
        """The verdict when given, else 'tumour' or 'no_tumour' at the threshold (data spelling)."""
        return self.verdict or label_for(float(self.probability), float(self.threshold))

    @classmethod
    def from_scan(cls, name: str, file_sha256: str, scan, probability: float, threshold: float,
                  explanation=None, alpha: float = 0.4, **extra: Any) -> "ReportPage":
        """A page for a :class:`core.imaging.pipeline.PreparedScan` and its :class:`core.explain.Explanation`.

        The overlay is the explanation drawn on the crop at opacity `alpha`; `extra` sets
        notes, uncertainty, heading (and method/target when there is no explanation).
        """
        if explanation is not None:
            extra = {"method": explanation.method, "target": explanation.target, **extra}
        return cls(name=name, file_sha256=file_sha256, pixels=scan.pixels, box=scan.crop.box,
                   crop=scan.crop.image, probability=float(probability), threshold=float(threshold),
                   overlay=None if explanation is None else explanation.overlay(alpha, on="crop"), **extra)


def _shrunk(image: np.ndarray) -> tuple[np.ndarray, float]:
    """uint8 image -> (the image with its longer side at most PRINT_SIDE, the scale applied)."""
    longer = max(image.shape[:2])
    if longer <= PRINT_SIDE:
        return image, 1.0
    scale = PRINT_SIDE / longer
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def write_pdf(pages: Sequence[ReportPage], card: ModelCard,
              target: str | os.PathLike | BinaryIO | None = None, *, created: datetime | None = None,
              summary: Mapping[str, str] | None = None, heading: str = "",
              notes: Sequence[str] = ()) -> bytes | Path | None:
    """Write the report: summary table page(s) first when there are several pages or notes, then a page per scan.

    card: the model's card (its id, threshold and weights' SHA-256 are printed).
    target: None -> the PDF's bytes are returned; a path -> written atomically, the Path returned;
        a binary file object -> written into it, None returned.
    created: the date printed (default: now, UTC). summary: the card summary to print, e.g. the app's
        `core.report.card_summary.card_summary(card)`, which is the default.
    heading: a line for the summary page, e.g. a series' summary.
    notes: more lines for the summary page (empty ones skipped), e.g. a series' slices at the ends of the
        volume that were not assessed.
    """
    pages = list(pages)
    if not pages or not all(isinstance(page, ReportPage) for page in pages):
        raise ValueError("write_pdf needs at least one ReportPage (one per scan). "
                         f"Received: {[type(page).__name__ for page in pages] or 'no pages'}")
    created = created or datetime.now(timezone.utc)
    context = _Context(card, dict(summary or card_summary(card)), created, heading,
                       tuple(note for note in notes if note))
    if target is None:
        buffer = io.BytesIO()
        _render(pages, context, buffer)
        return buffer.getvalue()
    if hasattr(target, "write"):
        _render(pages, context, target)
        return None
    with atomic_path(target) as tmp:
        _render(pages, context, tmp)
    return Path(target)


@dataclass(frozen=True)
class _Context:
    """What every page of one report shares."""

    card: ModelCard
    summary: dict[str, str]
    created: datetime
    heading: str
    notes: tuple[str, ...] = ()
    page: int = 0
    pages: int = 0


def _render(pages: list[ReportPage], context: _Context, target) -> None:
    from matplotlib.backends.backend_pdf import PdfPages

    chunks = ([pages[i : i + SUMMARY_ROWS] for i in range(0, len(pages), SUMMARY_ROWS)]
              if len(pages) > 1 or context.notes else [])
    total = len(chunks) + len(pages)
    metadata = {"Title": "Brain MRI tumour detector: report", "Creator": "brain-mri (core.report.pdf)",
                "Subject": NOTICE, "CreationDate": context.created}
    with _LOCK, PdfPages(target, metadata=metadata) as pdf:
        number = 0
        for start, chunk in enumerate(chunks):
            number += 1
            pdf.savefig(_summary_figure(chunk, start * SUMMARY_ROWS, len(pages),
                                        replace(context, page=number, pages=total)))
        for page in pages:
            number += 1
            pdf.savefig(_scan_figure(page, replace(context, page=number, pages=total)))


def _figure(title: str, context: _Context):
    """An A4 figure with the title, the page number, the research notice and the date drawn."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=PAGE_SIZE)
    _text(figure, 0.06, 0.975, title, 14, weight="bold")
    _text(figure, 0.94, 0.975, f"page {context.page} of {context.pages}", ha="right")
    _text(figure, 0.5, 0.045, NOTICE, ha="center", va="center", color="#8b0000", weight="bold", wrap=True,
          bbox={"facecolor": "#fdecea", "edgecolor": "#8b0000", "pad": 6})
    _text(figure, 0.5, 0.015, f"Created {context.created.strftime('%Y-%m-%d %H:%M %Z').strip()} with "
          f"model {context.card.model_id}", 7, ha="center", va="bottom")
    return figure


def _scan_figure(page: ReportPage, context: _Context):
    figure = _figure("Brain MRI tumour detector: scan report", context)
    y = 0.945
    if page.heading:
        _text(figure, 0.06, y, page.heading, 10)
        y -= 0.02
    y = _lines(figure, y, [("File", page.name), ("File SHA-256", page.file_sha256)])
    _images(figure, page, y - 0.01)
    y = _result(figure, page, 0.6)
    _model_section(figure, y - 0.015, context)
    return figure


def _images(figure, page: ReportPage, top: float) -> None:
    """Three panels in a row under `top`: scan with its crop box, crop, overlay (one axes: faster)."""
    from matplotlib.patches import Rectangle

    explained = f"{_method(page.method)}, evidence for '{page.target}'" if page.method else "no explanation"
    titles = ("Scan and brain crop box", "Brain crop", f"Overlay: {explained}")
    axes = figure.add_axes((0.06, top - 0.27, 0.88, 0.24))
    axes.set_axis_off()
    axes.set(xlim=(0, 3 * _CELL + 2 * _GAP), ylim=(_CELL, 0), aspect="equal", anchor="N")
    for column, image in enumerate((page.pixels, page.crop, page.overlay)):
        left = column * (_CELL + _GAP)
        _text(figure, 0.06 + 0.88 * (left + _CELL / 2) / (3 * _CELL + 2 * _GAP), top,
              textwrap.fill(titles[column], 42), 8, ha="center")
        if image is None:
            _text(axes, left + _CELL / 2, _CELL / 2, "No explanation was made.", ha="center", va="center")
            continue
        scale = _CELL / max(image.shape[:2])
        width, height = image.shape[1] * scale, image.shape[0] * scale
        x0 = left + (_CELL - width) / 2
        axes.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="none",
                    extent=(x0, x0 + width, height, 0))
        if column == 0:
            bx0, by0, bx1, by1 = page.box
            axes.add_patch(Rectangle((x0 + bx0 * scale, by0 * scale), (bx1 - bx0) * scale, (by1 - by0) * scale,
                                     fill=False, lw=1.5, edgecolor=BOX_COLOUR))
    axes.set(xlim=(0, 3 * _CELL + 2 * _GAP), ylim=(_CELL, 0))


def _result(figure, page: ReportPage, top: float) -> float:
    """The probability (large), its uncertainty, the label and the notes; returns the next free y."""
    _text(figure, 0.06, top, f"Tumour probability {page.probability:.3f}", 16, weight="bold")
    lines = []
    if page.uncertainty is not None:
        lines.append(("Uncertainty", _uncertainty(page.uncertainty)))
    lines.append((f"Label at the model's threshold {page.threshold:.3f}", _label_text(page.label)))
    if page.tumour_type:
        lines.append(("Tumour type", page.tumour_type.removeprefix("Type: ")))
    if page.method:
        lines.append(("Explanation", f"{_method(page.method)}; the map shows evidence for '{page.target}'"))
    lines += [("Note", note) for note in page.notes]
    return _lines(figure, top - 0.035, lines)


def _label_text(label: str) -> str:
    """'tumour' -> 'Tumour'; 'uncertain' -> a sentence saying no label is given."""
    return "Uncertain (too close to the threshold to call)" if label == UNCERTAIN else display(label)


def _method(name: str) -> str:
    """'gradcam' -> 'Grad-CAM' (the registry's label), unknown names as given."""
    from core.explain.registry import method_labels

    return next((label for label, known in method_labels().items() if known == name), name)


def _uncertainty(value: str | tuple[float, float]) -> str:
    if isinstance(value, str):
        return value
    low, high = value
    return f"interval {float(low):.3f} to {float(high):.3f}"


def _model_section(figure, top: float, context: _Context) -> None:
    """One line naming the model and its AUC on unseen sources, the threshold, the card's results as a table
    (core.report.card_summary.results_table), then training data, weights and intended use."""
    summary, card = context.summary, context.card
    unseen = summary.get("unseen_sources")
    y = _lines(figure, top, [("Model", card.model_id + (f" · {unseen}" if unseen else "")),
                             ("Decision threshold", summary["threshold"])], title="Model")
    rows = results_table(card)
    if rows:
        y = _table(figure, y, rows, RESULTS_NOTE)
    lines = [] if rows else [("Tested on", summary.get("metrics", ""))]
    lines += [("Trained on", summary.get("data", "")),
              ("Weights SHA-256", summary.get("weights_sha256") or card.weights_sha256 or "unknown")]
    if card.intended_use:
        lines.append(("Intended use", card.intended_use))
    _lines(figure, y, lines)


def _table(figure, top: float, rows: list[dict[str, str]], note: str) -> float:
    """`rows` (same keys, in order) as a ruled table under `top`, the note in small print under it; returns the
    next free y."""
    height = _LINE * 1.15 * (len(rows) + 1)
    axes = figure.add_axes((0.06, top - height, 0.88, height))
    axes.set_axis_off()
    columns = list(rows[0])
    table = axes.table(cellText=[[row[c] for c in columns] for row in rows], colLabels=columns, cellLoc="left",
                       colLoc="left", colWidths=[0.34, 0.2, 0.26, 0.2], bbox=(0, 0, 1, 1))
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (line, _), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
        if line == 0:
            cell.set_text_props(weight="bold")
    note_top = top - height - 0.008
    wrapped = textwrap.fill(note, 125)
    _text(figure, 0.06, note_top, wrapped, 7, color="#444444")
    return note_top - _LINE * 0.8 * (wrapped.count("\n") + 1) - 0.01


def _lines(figure, top: float, lines: list[tuple[str, str]], title: str = "", width: int = 100) -> float:
    """'Key: value' lines wrapped to `width` characters, as one text block from `top` down.

    Returns the next free y (figure fraction).
    """
    if title:
        _text(figure, 0.06, top, title, 11, weight="bold")
        top -= 0.022
    text = "\n".join(textwrap.fill(f"{key}: {value}", width, subsequent_indent="    ") for key, value in lines)
    _text(figure, 0.06, top, text, linespacing=1.6)
    return top - _LINE * (text.count("\n") + 1) - 0.006


def _summary_figure(chunk: list[ReportPage], offset: int, count: int, context: _Context):
    """A table of `chunk` (rows offset+1 ...): file, probability, label, notes."""
    figure = _figure("Brain MRI tumour detector: summary", context)
    top = _lines(figure, 0.945, [("Scans", f"{count}; one page each follows"),
                                 ("Threshold", f"{context.card.threshold:.3f} (model {context.card.model_id})")]
                 + ([("Summary", context.heading)] if context.heading else [])
                 + [("Note", note) for note in _listed(context.notes)])
    rows = [[str(offset + i), _short(page.name, 60), f"{page.probability:.3f}",
             "Uncertain" if page.label == UNCERTAIN else display(page.label),
             str(len(page.notes)) if page.notes else ""] for i, page in enumerate(chunk, start=1)]
    height = min(top - 0.09, 0.02 * (len(rows) + 1))
    axes = figure.add_axes((0.06, top - 0.01 - height, 0.88, height))
    axes.set_axis_off()
    table = axes.table(cellText=rows, colLabels=["#", "file", "tumour probability", "label", "notes"],
                       colWidths=[0.06, 0.56, 0.16, 0.12, 0.1], loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for cell in table.get_celld().values():
        cell.get_text().set(parse_math=False, family=_FONT)
    return figure


def _listed(notes: tuple[str, ...]) -> list[str]:
    """The first SUMMARY_NOTES notes, and how many more there are."""
    more = len(notes) - SUMMARY_NOTES
    return list(notes[:SUMMARY_NOTES]) + ([f"... and {more} more, not listed here"] if more > 0 else [])


def _text(where, x: float, y: float, text: str, size: float = 9, **style: Any):
    """Plain text (no mathtext: '$' in file names stays) in the report's font on a figure or axes."""
    return where.text(x, y, text, fontsize=size, family=_FONT, parse_math=False, **{"va": "top", **style})


def _short(text: str, width: int) -> str:
    """`text` cut in the middle with '...' to at most `width` characters."""
    if len(text) <= width:
        return text
    keep = (width - 3) // 2
    return f"{text[:keep]}...{text[len(text) - (width - 3 - keep):]}"
