"""Move a trained model through a channel that limits file sizes.

    brain-mri shards pack MODEL_DIR OUT_DIR [--max-mb 15]
    brain-mri shards unpack SHARD_DIR MODEL_DIR

`pack` writes the weights as numbered .npz shards (large arrays as float16,
which halves them; small ones such as batch-norm statistics stay float32)
plus `manifest.json` holding the model card and the input size. `unpack`
rebuilds the architecture with `core.build_model` (the backbone the card's
recipe names, ResNet50 when it names none), loads the weights and saves
a regular model directory whose card records the float16 round trip and
carries the new weights' SHA-256.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core.io.atomic import atomic_path
from train.report import write_json

#: Arrays with at least this many values travel as float16.
HALF_PRECISION_FROM = 65536


def pack(model_dir, out_dir, max_mb: float = 15.0) -> list[Path]:
    from core.model.classifier import load_classifier

    classifier = load_classifier(model_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards, current, size = [], {}, 0
    for index, weight in enumerate(classifier.model.get_weights()):
        array = weight.astype(np.float16) if weight.size >= HALF_PRECISION_FROM else weight
        if current and size + array.nbytes > max_mb * 1e6:
            shards.append(current)
            current, size = {}, 0
        current[f"w{index:04d}"] = array
        size += array.nbytes
    shards.append(current)
    paths = []
    for number, shard in enumerate(shards):
        path = out_dir / f"weights_{number:02d}.npz"
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **shard)
        paths.append(path)
    manifest = {"input_size": classifier.input_size, "shards": [p.name for p in paths],
                "card": classifier.card.to_dict()}
    write_json(out_dir / "manifest.json", manifest)  # last: shards without a manifest are never read
    return paths


def unpack(shard_dir, model_dir) -> Path:
    from core.model.classifier import build_model, save_classifier

    shard_dir = Path(shard_dir)
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    weights = {}
    for name in manifest["shards"]:
        with np.load(shard_dir / name, allow_pickle=False) as stored:
            weights.update({key: stored[key].astype(np.float32) for key in stored.files})
    recipe = manifest["card"].get("recipe") or {}
    model = build_model(weights=None, input_size=manifest["input_size"], backbone=recipe.get("backbone", "resnet50"))
    model.set_weights([weights[key] for key in sorted(weights)])
    card = dict(manifest["card"])
    card.pop("weights_sha256", None)
    card["transport"] = ("trained weights moved as float16 (arrays of at least "
                         f"{HALF_PRECISION_FROM} values) and restored to float32 before saving")
    return save_classifier(model, card, model_dir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="brain-mri shards", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("pack", help="model directory -> shards")
    p.add_argument("model_dir")
    p.add_argument("out_dir")
    p.add_argument("--max-mb", type=float, default=15.0)
    u = verbs.add_parser("unpack", help="shards -> model directory")
    u.add_argument("shard_dir")
    u.add_argument("model_dir")
    args = parser.parse_args(argv)
    if args.verb == "pack":
        for path in pack(args.model_dir, args.out_dir, args.max_mb):
            print(f"{path} {path.stat().st_size / 1e6:.1f} MB")
    else:
        print(f"Saved {unpack(args.shard_dir, args.model_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
