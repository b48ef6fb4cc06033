"""`numpynet predict`: images converted as preprocessing converts them, known answers, output
formats, and every bad input refused with a message naming it (exit 2, no traceback)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
from PIL import Image

from helpers.project import SHARED_DATASETS
from numpynet.model_folder import DATASET_FILE, save_model
from numpynet.cli import main
from numpynet.data.catalog import BUILTIN
from numpynet.data.fetch.download import download_dataset
from numpynet.data.standardize import prepare_splits, standardize
from numpynet.data.formats.load import load_raw_dataset
from numpynet.evaluation import predict_logits
from numpynet.nn import MLPConfig, build_mlp, learning_rate
from numpynet.nn.loss import log_softmax
from numpynet.predict import load_predictor, predict, prepare_images
from numpynet.portable_math import exp
from numpynet.records import DatasetRecord
from numpynet.training.loop import LoopSettings, RandomStreams, Reports, fit, make_optimizer

MNIST_MIRROR = SHARED_DATASETS / "mnist"

QUADRANTS = ["top-left", "top-right", "bottom-left", "bottom-right"]
COLOURS = ["red", "green", "blue"]


def saved_model(directory, shape, classes, weight=None, hidden=(), normalization="none",
                mean=None, std=None, name="pets"):
    """A model folder as the train stage writes it; ``weight`` (inputs x classes) if given."""
    config = MLPConfig(int(np.prod(shape)), hidden, len(classes), 0.0, normalization)
    model = build_mlp(config, np.random.default_rng(0))
    if weight is not None:
        model.load_state_dict({"layers.1.weight": np.asarray(weight, dtype=np.float32),
                               "layers.1.bias": np.zeros(len(classes), dtype=np.float32)})
    channels = shape[2]
    dataset = {"name": name, "classes": list(classes), "image_shape": list(shape),
               "layout": "NHWC", "mean": mean or [0.5] * channels, "std": std or [0.5] * channels}
    save_model(directory, model, config, dataset=DatasetRecord(**dataset))
    return directory


def quadrant_model(directory):
    """2x2 grayscale: the class is the brightest pixel (standardized white is +1, black -1)."""
    return saved_model(directory, [2, 2, 1], QUADRANTS, weight=10 * np.eye(4))


def colour_model(directory):
    """1x1 RGB: the class is the brightest channel."""
    return saved_model(directory, [1, 1, 3], COLOURS, weight=10 * np.eye(3))


def write_image(path, pixels, mode=None, **save_args):
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode).save(path, **save_args)
    return str(path)


def run(capsys, *argv):
    """``numpynet predict ARGV``: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(["predict", *map(str, argv)])
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *argv):
    """The error message of a ``predict`` that must fail: exit 2, nothing on stdout."""
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and "Traceback" not in err, (code, out, err)
    assert err.startswith("error: ")
    return err


# --- known answers and conversion -------------------------------------------------------------

def test_the_bright_pixel_is_found_and_printed_most_probable_first(tmp_path, capsys):
    model = quadrant_model(tmp_path / "m")
    images = []
    for k in range(4):
        pixels = np.zeros(4, dtype=np.uint8)
        pixels[k] = 255
        images.append(write_image(tmp_path / f"q{k}.png", pixels.reshape(2, 2)))
    code, out, _ = run(capsys, *images, "--model", model)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    for k, line in enumerate(lines):
        name, rest = line.split(": ", 1)
        assert name.strip() == images[k]
        assert rest.startswith(f"{QUADRANTS[k]} (100.0%), ")  # 3 classes shown, by default
        assert rest.count("(") == 3 and rest.endswith("<0.1%)")


def test_a_larger_image_is_resized_bilinearly_to_the_training_size(tmp_path):
    model = quadrant_model(tmp_path / "m")
    pixels = np.zeros((8, 6), dtype=np.uint8)
    pixels[:4, 3:] = 255  # top-right quadrant
    path = write_image(tmp_path / "big.png", pixels)
    [prediction] = predict([path], model, top_k=1)
    assert prediction.top[0][0] == "top-right" and prediction.top[0][1] > 0.99
    # Exactly what preprocessing computes: Pillow's bilinear resize, then standardize.
    _, spec = load_predictor(model)
    expected = np.asarray(Image.open(path).resize((2, 2), Image.Resampling.BILINEAR))
    assert np.array_equal(prepare_images([path], spec),
                          standardize(expected[None, :, :, None], spec.mean, spec.std))


def test_a_photo_past_preprocess_pixel_bound_is_still_predicted(tmp_path, capsys):
    # 41 megapixels: past preprocess.max_image_pixels (a folder's bound), within what Pillow opens.
    model = quadrant_model(tmp_path / "m")
    pixels = np.zeros((5000, 8200), dtype=np.uint8)
    pixels[2500:, :4100] = 255  # bottom-left quadrant
    path = write_image(tmp_path / "photo.png", pixels, compress_level=1)
    [prediction] = predict([path], model, top_k=1)
    assert prediction.top[0][0] == "bottom-left"


def test_rgb_palette_and_alpha_images_feed_a_colour_model(tmp_path):
    model = colour_model(tmp_path / "m")
    red = write_image(tmp_path / "red.png", np.full((3, 5, 3), (200, 10, 10)))
    # Alpha is dropped, not composited: a fully transparent blue pixel is blue.
    blue = write_image(tmp_path / "blue.png", np.full((2, 2, 4), (0, 0, 255, 0)), "RGBA")
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 0, 250, 0] + [0] * 762)
    palette.save(tmp_path / "green.png")
    predictions = predict([red, blue, str(tmp_path / "green.png")], model, top_k=1)
    assert [p.top[0][0] for p in predictions] == ["red", "blue", "green"]


def test_a_gray_image_becomes_rgb_and_ties_keep_the_class_order(tmp_path):
    model = colour_model(tmp_path / "m")
    gray = write_image(tmp_path / "gray.png", np.full((4, 4), 128))
    [prediction] = predict([gray], model)
    assert [name for name, _ in prediction.top] == COLOURS
    assert [p for _, p in prediction.top] == pytest.approx([1 / 3] * 3)


def test_a_colour_image_becomes_grayscale_for_a_grayscale_model(tmp_path):
    model = saved_model(tmp_path / "m", [1, 1, 1], ["dark", "light"], weight=[[-10, 10]])
    red = write_image(tmp_path / "red.png", np.full((2, 2, 3), (255, 0, 0)))  # L = 76
    yellow = write_image(tmp_path / "yellow.jpg", np.full((2, 2, 3), (255, 255, 0)), quality=95)
    _, spec = load_predictor(model)
    assert prepare_images([red], spec).shape == (1, 1, 1, 1)
    assert [p.top[0][0] for p in predict([red, yellow], model, top_k=1)] == ["dark", "light"]


def test_probabilities_are_the_softmax_of_the_models_logits_on_preprocessed_images(tmp_path):
    shape = [4, 4, 3]
    model_dir = saved_model(tmp_path / "m", shape, ["a", "b", "c", "d", "e"], hidden=(7,),
                            normalization="batch", mean=[0.3, 0.4, 0.5], std=[0.2, 0.25, 0.3])
    pixels = np.random.default_rng(1).integers(0, 256, (3, *shape), dtype=np.uint8)
    paths = [write_image(tmp_path / f"{i}.png", pixels[i]) for i in range(3)]
    paths.append(write_image(tmp_path / "3.jpg", pixels[0], quality=90))
    model, spec = load_predictor(model_dir)
    inputs = prepare_images(paths, spec)
    # PNG is lossless: the input is the stored pixels standardized as preprocessing does, bit
    # for bit; the JPEG is whatever Pillow decodes it to, standardized the same way.
    jpeg = np.asarray(Image.open(paths[3]).convert("RGB"))
    assert np.array_equal(inputs, standardize(np.stack([*pixels, jpeg]), spec.mean, spec.std))
    expected = exp(log_softmax(predict_logits(model, inputs, 8).astype(np.float64)))
    for row, prediction in zip(expected, predict(paths, model_dir, top_k=5)):
        order = np.argsort(-row, kind="stable")
        assert [name for name, _ in prediction.top] == [spec.classes[i] for i in order]
        assert [p for _, p in prediction.top] == row[order].tolist()


def test_top_k_and_json_output(tmp_path, capsys):
    model = quadrant_model(tmp_path / "m")
    pixels = np.array([[255, 128], [64, 0]])
    path = write_image(tmp_path / "steps.png", pixels)
    code, out, _ = run(capsys, path, "--model", model, "--top-k", "4", "--json")
    assert code == 0
    [entry] = json.loads(out)
    assert entry["image"] == path
    assert [p["class"] for p in entry["predictions"]] == QUADRANTS
    probabilities = [p["probability"] for p in entry["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0)
    code, out, _ = run(capsys, path, path, "--model", model, "--top-k", "2")
    assert code == 0 and [line.count("(") for line in out.splitlines()] == [2, 2]


def test_the_only_model_under_models_is_the_default(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    quadrant_model(tmp_path / "models" / "quads")
    (tmp_path / "models" / "not-a-model").mkdir()
    write_image(tmp_path / "q.png", np.array([[0, 0], [0, 255]]))
    code, out, _ = run(capsys, "q.png", "--top-k", "1")
    assert code == 0 and out.split() == ["q.png:", "bottom-right", "(100.0%)"]


# --- bad input: exit 2 and a message naming it ------------------------------------------------

def test_bad_image_files_are_named_and_nothing_is_printed(tmp_path, capsys):
    model = quadrant_model(tmp_path / "m")
    good = write_image(tmp_path / "good.png", np.zeros((2, 2)))
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    full = tmp_path / "full.png"
    write_image(full, np.random.default_rng(0).integers(0, 256, (64, 64)))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(full.read_bytes()[:200])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    cases = {
        tmp_path / "missing.png": "not found",
        tmp_path: "is a folder",
        text: "cannot read image",
        truncated: "cannot read image",
        empty: "cannot read image",
    }
    for bad, problem in cases.items():
        # The good image before the bad one: one bad file stops all, before any output.
        err = refused(capsys, good, bad, "--model", model)
        assert str(bad) in err and problem in err


@pytest.mark.parametrize("k", ["0", "5", "-1"])
def test_top_k_outside_the_classes_is_refused(tmp_path, capsys, k):
    model = quadrant_model(tmp_path / "m")
    good = write_image(tmp_path / "good.png", np.zeros((2, 2)))
    err = refused(capsys, good, "--model", model, "--top-k", k)
    assert f"--top-k {k}" in err and "from 1 to 4" in err


def test_a_missing_model_folder_is_named(tmp_path, capsys):
    good = write_image(tmp_path / "good.png", np.zeros((2, 2)))
    err = refused(capsys, good, "--model", tmp_path / "models" / "nothing")
    assert f"{tmp_path / 'models' / 'nothing'} does not exist" in err and "dvc repro" in err


def test_no_model_or_several_under_models_need_model(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = write_image(tmp_path / "good.png", np.zeros((2, 2)))
    err = refused(capsys, good)
    assert "no trained model in models/" in err and "dvc repro" in err and "--model" in err
    quadrant_model(tmp_path / "models" / "b")
    quadrant_model(tmp_path / "models" / "a")
    err = refused(capsys, good)
    assert "holds 2 models (models/a, models/b)" in err and "--model" in err


def test_a_model_without_its_dataset_record_must_be_retrained(tmp_path, capsys):
    config = MLPConfig(4, (), 4, 0.0)
    model = tmp_path / "old"
    save_model(model, build_mlp(config, np.random.default_rng(0)), config)  # no dataset.json
    good = write_image(tmp_path / "good.png", np.zeros((2, 2)))
    err = refused(capsys, good, "--model", model)
    assert "has no dataset.json" in err and "predates self-contained models" in err
    assert "dvc repro train@old" in err


def test_a_model_whose_dataset_record_was_removed_is_incomplete(tmp_path, capsys):
    model = quadrant_model(tmp_path / "m")
    (model / DATASET_FILE).unlink()
    good = write_image(tmp_path / "good.png", np.zeros((2, 2)))
    err = refused(capsys, good, "--model", model)
    assert f"{model / DATASET_FILE} is missing" in err and "copy the whole folder" in err
    assert "dvc repro train@m" in err


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"classes": ["a", "b"]}, "2 classes, but the architecture has 4 outputs"),
        ({"classes": None}, "classes: wrong type NoneType"),
        ({"image_shape": [2, 2]}, "image_shape: expected [height, width, channels]"),
        # A valid record of the same size, but not the one saved with the model.
        ({"image_shape": [1, 4, 1]}, None),
        ({"image_shape": [3, 3, 1]}, "takes 4 values"),
        ({"layout": "NCHW"}, "layout"),
        ({"mean": [0.5, 0.5]}, "mean, std: expected 1 finite number(s) each"),
        ({"std": [0.0]}, "std positive"),
        ({"std": ["1"]}, "std: item 0: wrong type str"),
        ({"mean": [10**400]}, "mean: item 0: got 1"),
        ({"name": 3}, "name"),
    ],
)
def test_an_invalid_dataset_record_is_named(tmp_path, capsys, change, problem):
    model = quadrant_model(tmp_path / "m")
    record = json.loads((model / DATASET_FILE).read_text())
    (model / DATASET_FILE).write_text(json.dumps({**record, **change}))
    good = write_image(tmp_path / "good.png", np.zeros((2, 2)))
    err = refused(capsys, good, "--model", model)
    if problem is None:
        assert "dataset.json in" in err and "does not belong with the rest of the model" in err
        return
    assert "dataset.json is not as numpynet writes it" in err and problem in err
    assert "dvc repro train@" in err


@pytest.mark.hostile
@pytest.mark.parametrize("file_name", [DATASET_FILE, "weights.npz"])
def test_a_model_folder_with_a_file_of_another_model_is_refused(tmp_path, capsys, file_name):
    # Two models of the same shapes: the quadrants and another that learned clothes. With the
    # other's dataset.json the quadrant model would label its images "sandal"; with the other's
    # weights the quadrants would be scored by a stranger, without a word.
    model = quadrant_model(tmp_path / "quadrants")
    other = saved_model(tmp_path / "clothes", [2, 2, 1], ["sandal", "shirt", "bag", "boot"],
                        weight=-10 * np.eye(4), name="clothes")
    (model / file_name).write_bytes((other / file_name).read_bytes())
    good = write_image(tmp_path / "good.png", np.zeros((2, 2)))
    err = refused(capsys, good, "--model", model)
    assert f"{file_name} in {model} does not belong with the rest of the model" in err, err
    assert "copy the whole folder" in err and "dvc repro train@quadrants" in err, err


def test_a_damaged_model_is_named(tmp_path, capsys):
    model = quadrant_model(tmp_path / "m")
    (model / "weights.npz").write_bytes(b"junk")
    good = write_image(tmp_path / "good.png", np.zeros((2, 2)))
    err = refused(capsys, good, "--model", model)
    assert f"cannot load the model in {model}" in err


# --- real data: MNIST digits saved as PNG files -----------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not MNIST_MIRROR.is_dir(),
                    reason=f"real-MNIST mirror not found at {MNIST_MIRROR}")
def test_real_mnist_digits_from_png_files(tmp_path, capsys):
    # No official URLs: should the mirror fail, the test fails rather than going online.
    source = replace(BUILTIN["mnist"], urls=())
    download_dataset(source, tmp_path / "raw", mirror=str(MNIST_MIRROR), timeout=30,
                     log=lambda _: None)
    raw = load_raw_dataset(source, tmp_path / "raw")
    # A small training set and 200 test digits, through preprocessing's own code.
    splits, mean, std = prepare_splits(raw.x_train[:12000], raw.y_train[:12000],
                                       raw.x_test[:200], raw.y_test[:200],
                                       val_fraction=0.1, rng=np.random.default_rng(0))
    config = MLPConfig(784, (128,), 10, 0.0)
    model = build_mlp(config, np.random.default_rng(0))
    optimizer = make_optimizer("adamw", model.parameters(), momentum=0.0, nesterov=False,
                               betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    steps = 2 * math.ceil(splits["train"][0].shape[0] / 128)
    schedule = partial(learning_rate, base_lr=2e-3, total_steps=steps, warmup_steps=0,
                       min_lr=0.0, kind="cosine")
    fit(model, optimizer, splits["train"], splits["val"],
        LoopSettings(epochs=2, batch_size=128, learning_rate=schedule),
        RandomStreams(np.random.default_rng(1)), reports=Reports(show_progress=False))
    model_dir = tmp_path / "models" / "mnist"
    save_model(model_dir, model, config, dataset=DatasetRecord(
        name="mnist", classes=raw.classes, image_shape=[28, 28, 1], mean=mean.tolist(),
        std=std.tolist()))

    x_test, y_test = splits["test"]
    paths = [write_image(tmp_path / f"{i:03d}.png", digit)
             for i, digit in enumerate(raw.x_test[:200])]
    # Each PNG becomes exactly the test image preprocessing made of the idx file's bytes.
    assert np.array_equal(prepare_images(paths, load_predictor(model_dir)[1]), x_test)
    code, out, err = run(capsys, *paths, "--model", model_dir, "--json", "--top-k", "1")
    assert code == 0, err
    predicted = [int(entry["predictions"][0]["class"]) for entry in json.loads(out)]
    # In predict's own batches: a kernel class may round differently in batches of other sizes.
    assert predicted == predict_logits(model, x_test, 256).argmax(axis=1).tolist()
    accuracy = np.mean(np.array(predicted) == y_test)
    print(f"predict on 200 real MNIST PNGs: accuracy {accuracy:.3f}")
    assert accuracy >= 0.9
