"""Score a finished fine-tuning run: four variants of its weights, on validation and the held-out source.

Variants: `raw` or `averaged` (EMA) weights, each with BatchNorm `as trained` (frozen statistics) or
`re-estimated` (train.studies.finetune_loop.reestimate_batchnorm on a balanced sample of the training sources).
Each variant's threshold is chosen by Youden's J on the validation split (training sources only) and
applied unchanged to the test scans; the test metrics are given overall and per folder (LGG's three
sequences apart). Writes results.json, results.md and scores.json (every scan's probability, so every
figure recomputes); for a run on every source (held out: none), finetuned.keras holds the averaged weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from train import metrics

SCORES_FILE = "scores.json"
RESULTS_FILE = "results.json"
STRATA_FILE = "strata.json"  # written by train.studies.finetune_strata
MODEL_FILE = "finetuned.keras"


def _probabilities(model, crops: np.ndarray) -> np.ndarray:
    from train.scoring import predict_crops

    return predict_crops(lambda x: np.asarray(model.predict_on_batch(x), np.float32)[:, 0], crops)


def _bn_layers(model) -> list:
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float, seed: int) -> dict:
    """AUC with interval and the figures at `threshold` for one set (AUC None with one class)."""
    at = metrics.at_threshold(labels, probs, threshold)
    return {"tumour": int(labels.sum()), "no_tumour": int(len(labels) - labels.sum()),
            **metrics.auc_with_interval(labels, probs, seed=seed),
            **{k: at[k] for k in ("balanced_accuracy", "sensitivity", "specificity")}}


def variant_row(val: tuple, test: tuple, folders: np.ndarray, seed: int) -> dict:
    """One variant's threshold (Youden's J on validation) and test metrics, overall and per folder."""
    threshold = metrics.choose_threshold(*val)
    val_auc = metrics.auc_with_interval(*val, rounds=0)["auc"] if len(set(val[0].tolist())) > 1 else None
    row = {"threshold": threshold, "val_auc": val_auc}
    if len(test[0]):
        row["test"] = test_metrics(*test, threshold, seed)
        row["by_folder"] = {folder: test_metrics(test[0][folders == folder], test[1][folders == folder],
                                                 threshold, seed) for folder in sorted(set(folders.tolist()))}
    return row


def _relative(path, root) -> str:
    """`path` relative to the data root where it lies inside it (as the data root's layout names it), else whole."""
    path, root = Path(path).absolute(), Path(root).absolute()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def evaluate_variants(tuner, pool, split: dict, held_out: str, data_root: Path, seed: int = 0,
                      log=print) -> tuple[dict, dict]:
    """(results, scores) of the four variants (module docstring); the model ends with the averaged weights
    (raw when there is no average) and BatchNorm as trained. held_out: the held-out source or "none";
    data_root: scan paths are stored relative to it; seed: of the bootstrap intervals."""
    from train.data.folds import folder_of

    model = tuner.model
    crops = {name: np.stack([pool.entries[i].crop for i in split[name]]) if len(split[name]) else
             np.zeros((0,) + pool.entries[0].crop.shape, np.uint8) for name in ("val", "test", "bn")}
    labels = {name: pool.labels[split[name]].astype(int) for name in ("val", "test")}
    folders = np.array([folder_of(str(pool.samples[i].path)) for i in split["test"]])
    raw = [np.array(v.numpy()) for v in model.trainable_variables]
    weights = {"raw": raw, "averaged": tuner.averaged_weights()}
    bn_state = [[np.array(w) for w in layer.get_weights()] for layer in _bn_layers(model)]
    rows, scores = {}, {}
    for name, values in weights.items():
        if values is None:
            continue
        for variable, value in zip(model.trainable_variables, values):
            variable.assign(value)
        for bn in ("as trained", "re-estimated"):
            if bn == "re-estimated":
                from train.studies.finetune_loop import reestimate_batchnorm

                reestimate_batchnorm(model, crops["bn"])
            key = f"{name} weights, BatchNorm {bn}"
            # rounded as stored in scores.json, so every figure recomputes from it exactly
            probs = {part: np.round(_probabilities(model, crops[part]).astype(np.float64), 6)
                     for part in ("val", "test")}
            rows[key] = variant_row((labels["val"], probs["val"]), (labels["test"], probs["test"]), folders,
                                    seed)
            scores[key] = {part: probs[part].tolist() for part in probs}
            log(f"{key}: " + (f"test AUC {rows[key]['test']['auc']:.3f}" if "test" in rows[key] else "scored"))
            for layer, state in zip(_bn_layers(model), bn_state):
                layer.set_weights(state)
    final = weights["averaged"] if weights["averaged"] is not None else raw
    for variable, value in zip(model.trainable_variables, final):
        variable.assign(value)
    paths = {part: [_relative(pool.samples[i].path, data_root) for i in split[part]] for part in ("val", "test")}
    payload = {"scans": paths, "labels": {part: labels[part].tolist() for part in labels},
               "sources": {part: pool.sources[split[part]].tolist() for part in ("val", "test")},
               "variants": scores}
    results = {"held_out": held_out, "variants": rows,
               "counts": {part: int(len(split[part])) for part in split}}
    return results, payload


def recompute(run_dir: Path, seed: int | None = None) -> dict:
    """The variants' rows recomputed from scores.json (what results.json must hold). seed: the bootstrap's
    (default: the run's own --seed, from its results.json, as the run used; 0 without one)."""
    from train.data.folds import folder_of

    if seed is None:
        results = Path(run_dir) / RESULTS_FILE
        seed = json.loads(results.read_text())["settings"].get("seed", 0) if results.is_file() else 0

    payload = json.loads((Path(run_dir) / SCORES_FILE).read_text())
    labels = {part: np.asarray(payload["labels"][part], int) for part in ("val", "test")}
    folders = np.array([folder_of(f"x/{path}") for path in payload["scans"]["test"]])
    return {key: variant_row((labels["val"], np.asarray(s["val"])), (labels["test"], np.asarray(s["test"])),
                             folders, seed) for key, s in payload["variants"].items()}


def to_markdown(results: dict) -> str:
    """The variants as a table: test AUC [CI], balanced accuracy, sensitivity, specificity; per folder AUC."""
    rows = results["variants"]
    folders = sorted({f for row in rows.values() for f in row.get("by_folder", {})})
    head = ["variant", "threshold", "val AUC", "test AUC [95% CI]", "bal. acc.", "sens.", "spec."]
    lines = [f"Held out: {results['held_out']}", "", "| " + " | ".join(head + [f"AUC {f}" for f in folders]) + " |",
             "|" + "---|" * (len(head) + len(folders))]

    def number(value):
        return "-" if value is None else f"{value:.3f}"

    for key, row in rows.items():
        test = row.get("test", {})
        ci = test.get("auc_ci95")
        auc = number(test.get("auc")) + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
        cells = [key, number(row["threshold"]), number(row["val_auc"]), auc,
                 number(test.get("balanced_accuracy")), number(test.get("sensitivity")),
                 number(test.get("specificity"))]
        cells += [number(row.get("by_folder", {}).get(f, {}).get("auc")) for f in folders]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, results: dict, scores: dict, tuner) -> None:
    """scores.json, results.json, results.md; for a run on every source also finetuned.keras (the averaged
    weights, BatchNorm as trained, no optimizer state: the card, threshold and calibration come after)."""
    from core.io.atomic import atomic_path, write_atomic
    from core.model.classifier import without_optimizer

    out_dir = Path(out_dir)
    write_atomic(out_dir / SCORES_FILE, json.dumps(scores) + "\n")
    write_atomic(out_dir / RESULTS_FILE, json.dumps(results, indent=1) + "\n")
    write_atomic(out_dir / "results.md", to_markdown(results))
    if results["held_out"] == "none":
        with atomic_path(out_dir / MODEL_FILE, suffix=".keras") as temporary:
            without_optimizer(tuner.model).save(temporary)
