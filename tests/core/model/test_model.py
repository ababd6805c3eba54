"""The classifier (core/model/classifier.py): graph, freezing, argument checks, saving and safe loading.

Models are built at 32 px (the full ResNet50 graph, ~5-10 s each on a laptop CPU)
and shared through module-scoped fixtures; nothing is downloaded.
"""

from __future__ import annotations

import io
import json
import urllib.error
import zipfile

import numpy as np
import pytest

import core.model.classifier as model_module
from core.model.classifier import (
    CARD_FILE,
    LAST_CONV_LAYER,
    LOGIT_LAYER,
    MODEL_FILE,
    OUTPUT_LAYER,
    build_model,
    load_classifier,
    save_classifier,
    set_trainable_from,
    sha256_of,
)

SIZE = 32
HEAD_LAYERS = {"max_pool", "head_dense", "head_bn", "head_dropout", LOGIT_LAYER, OUTPUT_LAYER}


def inputs(n=3, seed=0):
    return np.random.default_rng(seed).uniform(-120, 150, (n, SIZE, SIZE, 3)).astype(np.float32)


def trainable_stages(model) -> dict[str, bool]:
    """Stage -> trainable, asserting every layer of a stage agrees."""
    stages: dict[str, set[bool]] = {}
    for layer in model.layers:
        if layer.name == "image":
            continue
        stages.setdefault(model_module._stage_of(layer.name), set()).add(layer.trainable)
    assert all(len(flags) == 1 for flags in stages.values()), stages
    return {stage: flags.pop() for stage, flags in stages.items()}


@pytest.fixture(scope="module")
def model():
    """One random-init model for the whole module (tests restore what they change)."""
    return build_model(weights=None, input_size=SIZE)


@pytest.fixture
def restore_trainable(model):
    yield
    set_trainable_from(model, "conv1")


# --------------------------------------------------------------------------- graph


def test_layer_names_and_flat_graph(model):
    import keras

    names = [layer.name for layer in model.layers]
    for name in (LAST_CONV_LAYER, LOGIT_LAYER, OUTPUT_LAYER, "conv1_conv", "conv4_block6_out"):
        assert name in names
    assert HEAD_LAYERS <= set(names)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers), "nested model"
    assert model.get_layer(LAST_CONV_LAYER).output.shape[1:] == (1, 1, 2048)
    assert model.input_shape == (None, SIZE, SIZE, 3)


def test_output_shape_and_range(model):
    out = np.asarray(model(inputs(), training=False))
    assert out.shape == (3, 1) and out.dtype == np.float32
    assert np.all((0 <= out) & (out <= 1))


def test_logit_layer_feeds_the_sigmoid(model):
    import keras

    logit_model = keras.Model(model.input, model.get_layer(LOGIT_LAYER).output)
    x = inputs(2, seed=1)
    logits = np.asarray(logit_model(x, training=False))
    probs = np.asarray(model(x, training=False))
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- freezing


def test_random_init_trains_every_layer_by_default(model):
    assert all(trainable_stages(model).values())


@pytest.mark.parametrize(
    "trainable_from, frozen",
    [
        ("conv1", set()),
        ("conv4", {"conv1", "conv2", "conv3"}),
        ("conv5", {"conv1", "conv2", "conv3", "conv4"}),
        ("head", {"conv1", "conv2", "conv3", "conv4", "conv5"}),
    ],
)
def test_set_trainable_from(model, restore_trainable, trainable_from, frozen):
    set_trainable_from(model, trainable_from)
    stages = trainable_stages(model)
    assert {stage for stage, trainable in stages.items() if not trainable} == frozen
    if trainable_from == "head":
        owners = {weight.path.split("/")[0] for weight in model.trainable_weights}
        assert owners == {"head_dense", "head_bn", LOGIT_LAYER}


def test_pretrained_weights_default_to_the_recipe_conv4(monkeypatch):
    """weights='imagenet' without downloading: ResNet50 is asked for it but built at random."""
    import keras

    real = keras.applications.ResNet50
    asked = []

    def offline_resnet50(*args, weights=None, **kwargs):
        asked.append(weights)
        return real(*args, weights=None, **kwargs)

    monkeypatch.setattr(keras.applications, "ResNet50", offline_resnet50)
    pretrained = build_model(weights="imagenet", input_size=SIZE)
    assert asked == ["imagenet"]
    stages = trainable_stages(pretrained)
    assert stages == {"conv1": False, "conv2": False, "conv3": False, "conv4": True, "conv5": True, "head": True}


def test_weights_path_is_passed_to_keras(tmp_path, monkeypatch):
    import keras

    weights = tmp_path / "resnet50_notop.h5"
    weights.write_bytes(b"not really weights")
    asked = []

    class Stop(Exception):
        pass

    def recording_resnet50(*args, weights=None, **kwargs):
        asked.append(weights)
        raise Stop

    monkeypatch.setattr(keras.applications, "ResNet50", recording_resnet50)
    with pytest.raises(Stop):
        build_model(weights=weights, input_size=SIZE)
    assert asked == [str(weights)]


@pytest.mark.parametrize(
    "error", [urllib.error.URLError("no route to host"), ConnectionError("offline"), OSError("DNS failure")]
)
def test_imagenet_download_failure_names_offline_options(monkeypatch, error):
    import keras

    def failing_resnet50(*args, **kwargs):
        raise error

    monkeypatch.setattr(keras.applications, "ResNet50", failing_resnet50)
    with pytest.raises(RuntimeError, match="weights=None") as raised:
        build_model(weights="imagenet", input_size=SIZE)
    message = str(raised.value)
    assert "Offline options" in message and "~/.keras/models" in message
    assert raised.value.__cause__ is error


BAD_BUILD = {
    "weights int": (dict(weights=5), ValueError, "weights=5"),
    "weights missing file": (dict(weights="/nonexistent/resnet.h5"), FileNotFoundError, "/nonexistent/resnet.h5"),
    "trainable_from": (dict(weights=None, trainable_from="conv6"), ValueError, "trainable_from='conv6'"),
    "input_size small": (dict(weights=None, input_size=16), ValueError, "input_size=16"),
    "input_size float": (dict(weights=None, input_size=224.0), ValueError, "input_size=224.0"),
    "input_size bool": (dict(weights=None, input_size=True), ValueError, "input_size=True"),
    "backbone unknown": (dict(weights=None, backbone="vgg16"), ValueError, "backbone='vgg16'"),
    "small backbone pretrained": (dict(weights="imagenet", backbone="small"), ValueError,
                                  "The small backbone has no pretrained weights"),
}


@pytest.mark.parametrize("kwargs, error, named", BAD_BUILD.values(), ids=BAD_BUILD.keys())
def test_bad_build_arguments_are_refused_before_any_work(kwargs, error, named):
    with pytest.raises(error) as raised:
        build_model(**kwargs)
    assert named in str(raised.value)


def test_small_backbone_has_the_recipe_head_and_resnet_stage_names():
    small = build_model(weights=None, input_size=32, backbone="small", trainable_from="conv4")
    names = [layer.name for layer in small.layers]
    assert names[-6:] == ["max_pool", "head_dense", "head_bn", "head_dropout", LOGIT_LAYER, OUTPUT_LAYER]
    assert small.get_layer(LAST_CONV_LAYER).output.shape[1:] == (2, 2, 64)
    trainable = {layer.name: layer.trainable for layer in small.layers if layer.weights}
    assert not trainable["conv3_conv"] and trainable["conv4_conv"] and trainable["head_dense"]
    probabilities = small.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0)
    assert probabilities.shape == (2, 1) and np.all((probabilities >= 0) & (probabilities <= 1))


def test_set_trainable_from_refuses_unknown_stage(model):
    with pytest.raises(ValueError, match="trainable_from='conv0'"):
        set_trainable_from(model, "conv0")


# --------------------------------------------------------------------------- save and load

CARD = {"name": "test-model", "threshold": 0.4, "input_size": SIZE, "trained_on": "synthetic"}


@pytest.fixture(scope="module")
def trained_dir(model, tmp_path_factory):
    """The module's model, compiled with a built Adam (so it has optimizer state), saved with a card."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy")
    model.optimizer.build(model.trainable_variables)  # the state a fit would create, without training
    root = tmp_path_factory.mktemp("saved")
    compiled = root / "compiled.keras"
    model.save(compiled)
    directory = save_classifier(model, CARD, root / "model")
    return directory, compiled


@pytest.fixture(scope="module")
def loaded(trained_dir):
    """The saved classifier, loaded once (through the model file's path, which is also accepted)."""
    directory, _ = trained_dir
    return load_classifier(directory / MODEL_FILE)


def test_round_trip_predicts_the_same(model, loaded):
    classifier = loaded
    x = inputs(4, seed=3)
    expected = np.asarray(model(x, training=False))[:, 0]
    np.testing.assert_allclose(classifier.predict_inputs(x), expected, rtol=1e-5, atol=1e-6)
    assert classifier.input_size == SIZE
    assert classifier.threshold == pytest.approx(0.4)


def test_card_records_the_weights_hash(trained_dir, loaded):
    directory, _ = trained_dir
    card = json.loads((directory / CARD_FILE).read_text())
    assert {key: card[key] for key in CARD} == CARD
    assert card["weights_file"] == MODEL_FILE
    assert card["weights_sha256"] == sha256_of(directory / MODEL_FILE)
    assert loaded.card.to_dict() == card and loaded.directory == directory
    assert loaded.model_id == f"test-model@{card['weights_sha256'][:12]}"
    assert sorted(path.name for path in directory.iterdir()) == sorted([CARD_FILE, MODEL_FILE])


def test_saved_file_has_no_optimizer_state(trained_dir):
    import h5py

    directory, compiled = trained_dir
    ours, with_optimizer = (directory / MODEL_FILE).stat().st_size, compiled.stat().st_size
    with zipfile.ZipFile(directory / MODEL_FILE) as archive:
        config = json.loads(archive.read("config.json"))
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
            groups = set(weights.keys())
    assert "optimizer" not in groups and not config.get("compile_config")
    # Adam keeps two moments per trainable weight: the compiled file is about three times larger
    assert ours < 0.5 * with_optimizer, (ours, with_optimizer)


# Small models keep the remaining load tests fast.


def tiny_model(with_lambda=False):
    import keras

    x_in = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.GlobalAveragePooling2D()(x_in)
    if with_lambda:
        x = keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(x_in, out)


def test_tampered_weights_are_refused_with_the_hash(tmp_path):
    directory = save_classifier(tiny_model(), CARD, tmp_path / "tiny")
    path = directory / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        load_classifier(directory)


def test_lambda_layer_is_refused(tmp_path):
    directory = save_classifier(tiny_model(with_lambda=True), CARD, tmp_path / "lambda")
    with pytest.raises(ValueError, match="(?i)lambda"):
        load_classifier(directory)


@pytest.mark.parametrize(
    "card_text, named", [("{not json", "not valid JSON"), ('{"name": "x"}', "weights_sha256")]
)
def test_bad_card_is_refused(tmp_path, card_text, named):
    directory = save_classifier(tiny_model(), CARD, tmp_path / "card")
    (directory / CARD_FILE).write_text(card_text)
    with pytest.raises(ValueError, match=named):
        load_classifier(directory)


def test_a_model_trained_with_brain_normalisation_gets_it_at_prediction_time(tmp_path):
    from core.imaging.normalise import normalise_brain
    from core.imaging.pipeline import prepare_pixels
    from core.imaging.preprocess import caffe_normalise
    from core.predict.assessment import assess

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:96, :96]
    head = ((yy - 48) ** 2 + (xx - 48) ** 2 < 38 ** 2) * (60 + 40 * rng.random((96, 96)))  # a dim, textured disc
    scan = prepare_pixels(head.astype(np.uint8), SIZE)
    weights = tiny_model()
    normalised = load_classifier(save_classifier(weights, {**CARD, "input": {"size": SIZE, "normalise": "brain"}},
                                                 tmp_path / "brain"))
    plain = load_classifier(save_classifier(weights, CARD, tmp_path / "plain"))
    expected = plain.predict_inputs(caffe_normalise(normalise_brain(scan.grey))[None])
    assert normalised.normalise == "brain" and plain.normalise == "none"
    np.testing.assert_allclose(normalised.predict_prepared([scan]), expected, rtol=1e-5)
    np.testing.assert_array_equal(normalised.inputs_of(scan.grey), caffe_normalise(normalise_brain(scan.grey)))
    assert np.abs(normalised.inputs_of(scan.grey) - plain.inputs_of(scan.grey)).max() > 50  # it changes the input
    assert assess(normalised, [scan], tta=False)[0].raw == pytest.approx(float(expected[0]), rel=1e-5)
    np.testing.assert_allclose(normalised.predict_grey(scan.grey[None]), expected, rtol=1e-5)


def test_a_card_naming_an_unknown_normalisation_is_refused_when_written_and_when_read(tmp_path):
    message = "'input.normalise' must be one of none, brain. Received: 'zscore'"
    with pytest.raises(ValueError, match=message):
        save_classifier(tiny_model(), {**CARD, "input": {"size": SIZE, "normalise": "zscore"}}, tmp_path / "new")
    directory = save_classifier(tiny_model(), CARD, tmp_path / "edited")
    card = json.loads((directory / CARD_FILE).read_text())
    (directory / CARD_FILE).write_text(json.dumps({**card, "input": {"size": SIZE, "normalise": "zscore"}}))
    with pytest.raises(ValueError, match=message):
        load_classifier(directory)


def test_missing_directory_says_how_to_get_a_model(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as raised:
        load_classifier(missing)
    message = str(raised.value)
    assert str(missing) in message and "python -m train" in message and MODEL_FILE in message


def test_no_shipped_model_raises_file_not_found(tmp_path, monkeypatch):
    monkeypatch.setattr(model_module, "DEFAULT_MODEL_DIR", tmp_path / "shipped")
    with pytest.raises(FileNotFoundError, match="No trained model found") as raised:
        load_classifier()
    assert str(tmp_path / "shipped") in str(raised.value)
