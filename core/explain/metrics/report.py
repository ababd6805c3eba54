"""The explanation evaluation's outputs: the JSON report, CSV, Markdown table, example figure and the card's
`explanations` entry."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from core.explain.metrics.evaluation import CURVE_FRACTIONS, SCORES, Case, Results, Settings, summarise_method
from core.explain.registry import get_method
from core.io.atomic import atomic_path, write_atomic
from core.model.labels import TUMOUR

JSON_FILE, CSV_FILE, FIGURE_FILE = "explain_eval.json", "explain_eval.csv", "explain_eval.png"


def build_report(classifier, arguments: dict, settings: Settings, results: Results, sanity: dict,
                 seconds: float) -> dict:
    """The JSON report: settings, data counts, outline handling, per-method scores, sanity check, curves.

    arguments: the command's options as given (recorded in the report as they are)."""
    import keras

    scans = results.scans
    inside = np.array([row["outline_in_crop"] for row in scans])
    curves = {name: np.mean(values, axis=0).tolist() for name, values in results.curves.items()}
    return {
        "command": "python -m core explain-eval", "arguments": arguments,
        "model": {"id": classifier.model_id, "directory": str(classifier.directory),
                  "layer": settings.layer or classifier.card.explain_layer},
        "target": TUMOUR, "fraction_hidden": settings.fraction, "random_draws": settings.draws,
        "tolerance_px": settings.tolerance, "bootstrap": {"draws": settings.bootstrap, "over": "patients"},
        "slices": {"evaluated": len(scans), "patients": len({row["patient"] for row in scans}),
                   "mean_probability": float(np.mean([row["probability"] for row in scans]))},
        "outline": {"entirely_outside_crop": int((inside == 0).sum()),
                    "partly_outside_crop": int(((inside > 0) & (inside < 1)).sum()),
                    "mean_share_outside_crop": float(1 - inside.mean()),
                    "chance_energy_inside": float(np.mean([row["chance_energy"] for row in scans])),
                    "handling": "kept in every score: the map is zero outside the crop box, so an outline outside "
                                "it receives no mass (energy) and a peak can reach it only within the tolerance"},
        "methods": {m: summarise_method(m, rows, settings) for m, rows in results.rows.items() if rows},
        "randomisation": sanity,
        "per_slice": {"slices": scans, "methods": results.rows},
        "deletion_curves": {"fractions": [0.0, *CURVE_FRACTIONS],
                            "slices": len(next(iter(results.curves.values()), [])),
                            "mean_probability": curves},
        "timing": {"build_seconds": results.build_seconds, "total_seconds": seconds,
                   "load_average": list(os.getloadavg()), "cpus": os.cpu_count(), "keras": keras.__version__},
    }


#: What the card keeps of each method's summary.
CARD_KEYS = ("label", "slices", "patients", *(key for key, _ in SCORES), "drop_top", "drop_random", "ms_per_scan")


def card_entry(report: dict) -> dict:
    """The model card's `explanations`: per method the scores with 95% intervals (over patients), the mean
    probability drops and time; the randomisation check's mean Spearman correlation per stage; the settings;
    and the table as markdown_table prints it."""
    local = ("data", "masks", "out", "model", "write_card")  # paths of this machine, and the option itself
    settings = {k: v for k, v in report["arguments"].items() if k not in local}
    return {"command": "python -m core explain-eval", "data": Path(report["arguments"]["data"]).name,
            "settings": settings, "target": report["target"], "slices": report["slices"],
            "methods": {m: {k: summary[k] for k in CARD_KEYS} for m, summary in report["methods"].items()},
            "randomisation": [{"randomised_layers": stage["randomised_layers"],
                               "mean_spearman": {m: _finite(v.get("mean")) for m, v in stage["spearman"].items()}}
                              for stage in report["randomisation"]["stages"]],
            "table": markdown_table(report)}


def _finite(value):
    """A float, or None for NaN (the card stays strict JSON)."""
    return None if value is None or not np.isfinite(value) else float(value)


def write_card_entry(model_dir: Path, report: dict) -> Path:
    """Store card_entry(report) as the card's `explanations` (the weights and their hash unchanged)."""
    from core.model.card import CARD_FILE, update_card

    update_card(model_dir, explanations=json.loads(json.dumps(card_entry(report), default=_json_default)))
    return Path(model_dir) / CARD_FILE


def csv_text(report: dict) -> str:
    """One row per method: scores with interval bounds, drops, ratios, blanks, time, randomisation."""
    stages = report["randomisation"]["stages"]
    header = ["method", "label", "slices", "patients"]
    for key, _ in SCORES:
        header += [key, f"{key}_low", f"{key}_high"]
    header += ["drop_top", "drop_random", "drop_random_pixels", "ratio_vs_random_pixels", "blank_maps",
               "ms_per_scan_median"] + [f"spearman_top{len(stage['randomised_layers'])}" for stage in stages]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for method, summary in report["methods"].items():
        row = [method, summary["label"], summary["slices"], summary["patients"]]
        for key, _ in SCORES:
            row += [_fmt(summary[key]["value"]), *(_fmt(v) for v in summary[key]["ci95"])]
        row += [_fmt(summary[key]["value"]) for key in ("drop_top", "drop_random", "drop_random_pixels",
                                                        "ratio_vs_random_pixels")]
        row += [summary["blank_maps"], f"{summary['ms_per_scan']['median']:.0f}"]
        row += [_fmt(stage["spearman"].get(method, {}).get("mean")) for stage in stages]
        writer.writerow(row)
    return buffer.getvalue()


def _fmt(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"


def markdown_table(report: dict) -> str:
    """The per-method table for people: scores [95% CI], mean drops, blanks, ms per scan."""
    lines = ["| method | slices (patients) | " + " | ".join(label for _, label in SCORES)
             + " | drop top / random | blank | ms/scan |", "|---" * (len(SCORES) + 5) + "|"]
    for summary in report["methods"].values():
        cells = [f"{summary['label']}", f"{summary['slices']} ({summary['patients']})"]
        for key, _ in SCORES:
            value, (low, high) = summary[key]["value"], summary[key]["ci95"]
            cells.append(f"{value:.2f} [{low:.2f}, {high:.2f}]")
        cells.append(f"{summary['drop_top']['value']:.3f} / {summary['drop_random']['value']:.3f}")
        cells += [str(summary["blank_maps"]), f"{summary['ms_per_scan']['median']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(out: Path, report: dict, results: Results, cases: list[Case], settings: Settings) -> None:
    """explain_eval.json, .csv and .png in `out`, each written atomically."""
    write_atomic(out / JSON_FILE, json.dumps(report, indent=2, default=_json_default) + "\n")
    write_atomic(out / CSV_FILE, csv_text(report))
    examples = [index for index in results.kept if len(results.kept[index]["explanations"]) == len(settings.methods)]
    examples = sorted(examples, key=lambda i: -cases[i].mask_area)[: max(settings.examples, 1)]
    with atomic_path(out / FIGURE_FILE, suffix=".png") as tmp:
        draw_figure(tmp, [results.kept[i] for i in examples], [cases[i].image.name for i in examples],
                    settings.methods)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, np.ndarray)):
        return str(value) if isinstance(value, Path) else value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def draw_figure(path: Path, examples: list[dict], names: list[str], methods: tuple[str, ...]) -> None:
    """PNG grid: one row per example slice (the scan, then each method's map), the outline in cyan."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, columns = max(len(examples), 1), len(methods) + 1
    figure = Figure(figsize=(2.1 * columns, 2.3 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for row, (example, name) in enumerate(zip(examples, names)):
        explanations, mask = example["explanations"], example["mask"]
        panels = [("scan", None)] + [(get_method(m).label, explanations[m]) for m in methods]
        for column, (title, explanation) in enumerate(panels):
            axis = figure.add_subplot(rows, columns, row * columns + column + 1)
            scan = next(iter(explanations.values())).pixels
            axis.imshow(explanation.overlay(alpha=0.6) if explanation else scan, cmap="gray")
            axis.contour(mask, levels=[0.5], colors="cyan", linewidths=0.7)
            if explanation is not None and not explanation.blank:
                y, x = np.unravel_index(int(np.argmax(explanation.heatmap)), explanation.heatmap.shape)
                axis.plot([x], [y], marker="x", color="lime", markersize=6)
            axis.set_title(title if column else name[:24], fontsize=7)
            axis.set_axis_off()
    figure.savefig(path, format="png", dpi=110)
