"""The tumour-type head's training pieces (train.studies.type_fit, train.studies.type_data,
train.studies.type_table) and
`brain-mri type-head` end to end on a small real typed set with a 32-px small-CNN model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.model.tumour_type import CARD_ENTRY, TYPES, softmax
from train.data.discover import DataError
from train.data.folds import folder_of
from train.studies.type_data import group_split, type_of
from train.studies.type_fit import choose_level, fit_temperature, fit_type_head, logits_of, named_recall, type_weights
from train.studies.type_table import glioma_rates, markdown, type_metrics, type_tables


def synthetic_typed(rng, n_per_type: int, width: int = 16, spread: float = 1.0):
    """Three Gaussian clusters in `width` dimensions (non-negative, like max-pooled features)."""
    centres = rng.normal(0, 1.5, size=(len(TYPES), width))
    types = np.repeat(np.arange(len(TYPES)), n_per_type)
    features = np.abs(centres[types] + rng.normal(0, spread, size=(len(types), width))).astype(np.float32)
    return features, types


def test_type_weights_give_every_type_the_same_total():
    types = np.array([0] * 10 + [1] * 30 + [2] * 60)
    weights = type_weights(types)
    assert [round(float(weights[types == t].sum()), 6) for t in range(3)] == [pytest.approx(100 / 3)] * 3
    assert weights.mean() == pytest.approx(1.0)


def test_the_head_learns_a_synthetic_typed_set():
    rng = np.random.default_rng(0)
    train_x, train_t = synthetic_typed(rng, 120)
    test_x, test_t = synthetic_typed(np.random.default_rng(0), 120)  # same centres, fresh noise below
    test_x = np.abs(test_x + np.random.default_rng(1).normal(0, 0.3, size=test_x.shape)).astype(np.float32)
    model, history = fit_type_head(train_x, train_t, test_x, test_t, seed=0, epochs=25, lr=1e-2)
    accuracy = float(np.mean(logits_of(model, test_x).argmax(axis=1) == test_t))
    untrained_like = 1 / 3
    assert accuracy > 0.9 > untrained_like
    assert history["epochs"] >= 1 and np.isfinite(history["val_loss"])


def test_temperature_softens_overconfident_logits():
    rng = np.random.default_rng(2)
    types = rng.integers(0, 3, size=600)
    logits = rng.normal(0, 1, size=(600, 3))
    logits[np.arange(600), types] += 1.0
    overconfident = 8 * logits
    temperature = fit_temperature(overconfident, types)
    assert 4 < temperature < 16  # undoes most of the factor 8

    def nll(t):
        return -np.mean(np.log(softmax(overconfident, t)[np.arange(600), types]))

    assert nll(temperature) < nll(1.0)


def test_the_level_is_raised_until_named_slices_reach_the_target():
    types = np.array([0, 1, 2, 0, 1, 2])
    probabilities = np.array([[0.9, 0.05, 0.05], [0.1, 0.85, 0.05], [0.05, 0.1, 0.85],
                              [0.3, 0.6, 0.1],  # wrong, at 0.6
                              [0.05, 0.9, 0.05], [0.1, 0.1, 0.8]])
    assert named_recall(probabilities, types, 0.5) == (pytest.approx((0.5 + 1 + 1) / 3), 1.0)
    level = choose_level(probabilities, types, target=0.95)
    assert 0.6 < level <= 0.8
    assert named_recall(probabilities, types, level)[0] == 1.0
    assert choose_level(probabilities[[0, 1, 2]], types[[0, 1, 2]]) == 0.5  # never below a majority


def test_group_split_keeps_groups_whole_and_roles_stable():
    groups = np.repeat(np.arange(400), 3)
    roles = group_split(groups, {"val": 0.15, "test": 0.2}, seed=0)
    for group in range(400):
        assert len(set(roles[groups == group].tolist())) == 1
    shares = {role: float(np.mean(roles == role)) for role in ("train", "val", "test")}
    assert abs(shares["val"] - 0.15) < 0.06 and abs(shares["test"] - 0.2) < 0.06
    fewer = group_split(groups[groups < 200], {"val": 0.15, "test": 0.2}, seed=0)
    assert (fewer == roles[groups < 200]).all()  # a group's role does not depend on the other groups
    assert not (group_split(groups, {"val": 0.15, "test": 0.2}, seed=1) == roles).all()


def test_types_come_from_class_folders_and_lgg_is_glioma(tmp_path):
    assert type_of("mos", "Meningioma") == TYPES.index("meningioma")
    assert type_of("lgg", "yes") == TYPES.index("glioma")
    with pytest.raises(DataError, match="not a type"):
        type_of("mos", "tumour")
    assert folder_of(tmp_path / "mos" / "Testing" / "glioma" / "x.jpg") == "mos/Testing"
    assert folder_of(tmp_path / "lgg-t1pre" / "yes" / "x.jpg") == "lgg-t1pre"


def _scores(rng) -> dict:
    rows = []
    for i in range(60):
        t = TYPES[i % 3]
        mos_p = softmax(rng.normal(0, 1, (1, 3)) + 3 * np.eye(3)[i % 3])[0].round(6).tolist()
        rows.append({"path": f"mos/Testing/{t}/{i}.jpg", "folder": "mos/Testing", "source": "mos", "type": t,
                     "role": "test" if i < 45 else "train", "mos_only": mos_p, "shipped": mos_p,
                     **({"plane": ("axial", "sagittal")[i % 2]} if i < 30 else {})})
    for i, folder in enumerate(["lgg", "lgg-t1pre"] * 10):
        p = softmax(rng.normal(0, 1, (1, 3)))[0].round(6).tolist()
        rows.append({"path": f"{folder}/yes/{i}.jpg", "folder": folder, "source": "lgg", "type": "glioma",
                     "role": "test" if i < 8 else "train", "mos_only": p,
                     **({"shipped": p} if i < 8 else {})})
    return {"types": list(TYPES), "heads": {"mos_only": {"temperature": 1.0, "uncertain_below": 0.6},
                                            "shipped": {"temperature": 1.0, "uncertain_below": 0.55}},
            "slices": rows}


def test_the_tables_recompute_from_the_scores_alone():
    scores = _scores(np.random.default_rng(3))
    tables = type_tables(scores)
    mos = [r for r in scores["slices"] if r["source"] == "mos" and r["role"] == "test"]
    p = np.array([r["mos_only"] for r in mos])
    t = np.array([TYPES.index(r["type"]) for r in mos])
    assert tables["mos_only"]["mos_test"] == type_metrics(p, t, 0.6)
    assert np.sum(tables["mos_only"]["mos_test"]["confusion"]) == 45
    by_plane = tables["mos_only"]["mos_test_by_plane"]
    assert sorted(by_plane) == ["axial", "sagittal"] and by_plane["axial"]["n"] == by_plane["sagittal"]["n"] == 15
    axial = [r for r in mos if r.get("plane") == "axial"]
    assert by_plane["axial"] == type_metrics(np.array([r["mos_only"] for r in axial]),
                                             np.array([TYPES.index(r["type"]) for r in axial]), 0.6)
    lgg = np.array([r["mos_only"] for r in scores["slices"] if r["source"] == "lgg"])
    assert tables["mos_only"]["lgg"]["all"] == glioma_rates(lgg, 0.6)
    assert tables["mos_only"]["lgg"]["lgg-t1pre"]["n"] == 10
    assert tables["shipped"]["lgg"]["n"] == 8 and tables["shipped"]["all"]["n"] == 53
    text = markdown(tables, scores["heads"])
    assert "| lgg-t1pre | 10 |" in text and "| glioma |" in text and "| axial (plane labelled by eye) | 15 |" in text


def test_type_metrics_count_uncertain_slices_apart():
    probabilities = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    types = np.array([0, 1, 1, 2])
    m = type_metrics(probabilities, types, level=0.5)
    assert m["uncertain"] == 0.25
    assert m["recall"] == {"glioma": 1.0, "meningioma": 0.5, "pituitary": 1.0}
    assert m["named_recall"] == {"glioma": 1.0, "meningioma": 1.0, "pituitary": 1.0}
    assert m["confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]


def _typed_root(shared_data: Path, root: Path, per_folder: int = 6) -> Path:
    """root/mos/{Training,Testing}/{glioma,meningioma,pituitary,notumor} and root/lgg*/{yes,no} with
    manifest.csv: symlinks to real slices (LGG: the same patients' slices in the three sequences)."""
    for part in ("Training", "Testing"):
        for name in (*TYPES, "notumor"):
            folder = root / "mos" / part / name
            folder.mkdir(parents=True)
            for path in sorted((shared_data / "mos" / part / name).iterdir())[:per_folder]:
                (folder / path.name).symlink_to(path)
    for sequence in ("lgg", "lgg-t1pre", "lgg-t1post"):
        source = shared_data / sequence
        lines = (source / "manifest.csv").read_text().splitlines()
        kept = [lines[0]]
        for label in ("yes", "no"):
            rows = [line for line in lines[1:] if line.split(",")[0].startswith(f"{label}/")][: 2 * per_folder]
            kept += rows
            for row in rows:
                target = root / sequence / row.split(",")[0]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source / row.split(",")[0])
        (root / sequence / "manifest.csv").write_text("\n".join(kept) + "\n")
    return root


def test_the_command_writes_a_type_head_the_model_then_uses(shared_data, tmp_path):
    import keras

    from core.model.classifier import build_model, load_classifier, save_classifier
    from train.studies import type_head

    if not (shared_data / "lgg-t1pre" / "manifest.csv").is_file():
        pytest.skip(f"LGG T1 folders not found under {shared_data}")
    root = _typed_root(shared_data, tmp_path / "data")
    keras.utils.set_random_seed(0)
    model_dir = save_classifier(build_model(weights=None, input_size=32, backbone="small"),
                                {"name": "small-typed", "threshold": 0.5}, tmp_path / "model")
    card_before = json.loads((model_dir / "model_card.json").read_text())
    code = type_head.main(["--model", str(model_dir), "--data-root", str(root), "--cache-dir",
                           str(tmp_path / "cache"), "--workers", "1", "--epochs", "3"])
    assert code == 0
    card = json.loads((model_dir / "model_card.json").read_text())
    assert {k: v for k, v in card.items() if k != CARD_ENTRY} == card_before  # the binary model is untouched
    entry = card[CARD_ENTRY]
    scores = json.loads((model_dir / entry["scores_file"]).read_text())
    assert entry["table"] == json.loads(json.dumps(type_tables(scores)))
    assert all(not row["path"].startswith("/") for row in scores["slices"])
    assert {row["source"] for row in scores["slices"] if "mos_only" in row} == {"mos", "lgg"}
    assert all(row["role"] == "test" for row in scores["slices"] if "shipped" in row)
    assert (model_dir / type_head.RUN_FOLDER / "results.md").read_text().startswith("#### MOS alone")
    classifier = load_classifier(model_dir)
    assert classifier.type_head is not None
    assert classifier.type_head.probabilities(np.zeros((1, 64), np.float32)).shape == (1, 3)


def test_planes_are_read_and_checked(tmp_path):
    from train.studies.type_head import PLANES_FILE, read_planes

    shipped = read_planes(PLANES_FILE)
    assert len(shipped) == 144 and set(shipped.values()) == {"axial", "coronal", "sagittal"}
    assert all(path.startswith("mos/") for path in shipped)
    assert read_planes(tmp_path / "none.csv") == {}
    (tmp_path / "bad.csv").write_text("path,plane\nmos/Testing/glioma/x.jpg,oblique\n")
    with pytest.raises(DataError, match="oblique"):
        read_planes(tmp_path / "bad.csv")


def test_the_command_refuses_a_missing_data_root(tmp_path, capsys):
    from train.studies import type_head

    assert type_head.main(["--data-root", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
