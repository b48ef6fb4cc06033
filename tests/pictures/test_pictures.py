"""The evaluate stage's pictures: byte-stable PNGs, every picture renders at most half a
page wide, per-class errors, mistake selection, and the worst classes alone past
MAX_CLASSES_DRAWN, in bounded size and memory."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from numpynet.pictures import (
    LearningCurves,
    displayable,
    draw_confusion_matrix,
    draw_learning_curves,
    draw_mistakes,
    draw_per_class_errors,
    most_confident_mistakes,
    save_figure,
)
from numpynet.pictures import classes as class_pictures
from numpynet.pictures.classes import (
    MAX_CLASSES_DRAWN,
    _bar_text,
    _cell_style,
    _worst_classes_matrix,
    worst_first,
)
from numpynet.pictures.gallery import _titles
from numpynet.pictures.png import DPI, MAX_WIDTH_INCHES, literal

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PAGE_WIDTH_PIXELS = round(MAX_WIDTH_INCHES * DPI)
DIGITS = [str(digit) for digit in range(10)]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]
# CIFAR-100's 20 superclasses: as many classes, with names as long, as a page-wide picture takes.
SUPERCLASSES = [
    "aquatic mammals", "fish", "flowers", "food containers", "fruit and vegetables",
    "household electrical devices", "household furniture", "insects", "large carnivores",
    "large man-made outdoor things", "large natural outdoor scenes",
    "large omnivores and herbivores", "medium-sized mammals", "non-insect invertebrates",
    "people", "reptiles", "small mammals", "trees", "vehicles 1", "vehicles 2",
]
# matplotlib's "tab:blue": the bars of the per-class picture.
BAR_BLUE = (31, 119, 180)

# Draws one picture with text, colours and a colour bar into sys.argv[1]; run in this process
# and in a fresh one, the bytes must agree.
EXAMPLE = """
import sys
import numpy as np
from numpynet.pictures import draw_confusion_matrix
confusion = np.arange(16, dtype=np.int64).reshape(4, 4) + 10 * np.eye(4, dtype=np.int64)
draw_confusion_matrix(confusion, ["cat", "dog", "ship", "truck"], sys.argv[1], "example")
"""


def run_example(path):
    namespace = {}
    saved_argv = sys.argv
    sys.argv = ["example", str(path)]
    try:
        exec(EXAMPLE, namespace)
    finally:
        sys.argv = saved_argv


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a PNG file."""
    assert data[:8] == PNG_SIGNATURE
    chunks, offset = [], 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        chunks.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return chunks


def open_png(path):
    """The picture as an RGB array, after Pillow checked the file's structure."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture
def strict():
    """Any warning (matplotlib's, NumPy's division by zero) fails the test."""
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        yield


def curves(epochs: int, steps_per_epoch: int, selected_epoch):
    steps = epochs * steps_per_epoch
    step = np.arange(steps)
    epoch = np.arange(1, epochs + 1)
    return LearningCurves(
        epoch=epoch,
        train_loss=1.0 / epoch,
        val_loss=0.8 / epoch,
        train_accuracy=1 - 0.5 / epoch,
        val_accuracy=1 - 0.4 / epoch,
        step_epoch=step // steps_per_epoch + (step % steps_per_epoch + 1) / steps_per_epoch,
        step_lr=np.minimum((step + 1) / steps_per_epoch, 1.0) * 0.1,
        step_loss=2.0 / (1 + step / steps_per_epoch),
        selected_epoch=selected_epoch,
    )


# --- byte-stable PNG files ---------------------------------------------------------------------


def test_same_picture_gives_same_bytes_in_this_process_and_another(tmp_path):
    first, second, other_process = tmp_path / "1.png", tmp_path / "2.png", tmp_path / "3.png"
    run_example(first)
    run_example(second)
    # Another hash seed too: nothing may depend on set or dict ordering of strings.
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run(
        [sys.executable, "-c", EXAMPLE, str(other_process)], check=True, env=env, timeout=60
    )
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == other_process.read_bytes()


def test_png_carries_no_software_version_or_time(tmp_path):
    path = tmp_path / "example.png"
    run_example(path)
    chunks = png_chunks(path.read_bytes())
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert b"tIME" not in kinds
    text = b"".join(payload for kind, payload in chunks if kind in (b"tEXt", b"iTXt", b"zTXt"))
    assert b"Software" not in text and b"matplotlib" not in text
    with Image.open(path) as image:
        assert "Software" not in image.info


def test_save_figure_writes_atomically_at_the_fixed_resolution_and_frees_the_figure(tmp_path):
    figure = Figure(figsize=(3, 2))
    figure.subplots().plot([0, 1], [1, 0])
    path = tmp_path / "sub" / "line.png"
    save_figure(figure, path)
    assert open_png(path).shape == (2 * DPI, 3 * DPI, 3)
    assert figure.axes == []
    # Only the picture: no temporary file left beside it.
    assert [entry.name for entry in path.parent.iterdir()] == ["line.png"]


# --- learning curves ---------------------------------------------------------------------------


def test_learning_curves_render_at_a_plausible_size(tmp_path, strict):
    path = tmp_path / "curves.png"
    draw_learning_curves(curves(60, 20, selected_epoch=41), path, "MNIST: learning curves")
    pixels = open_png(path)
    height, width, _ = pixels.shape
    # The page's width; the three panels one above the other make it taller than wide.
    assert width == PAGE_WIDTH_PIXELS and 1.2 * width < height < 2 * width
    assert 20_000 < path.stat().st_size < 2_000_000
    # Lines in several colours, not a blank canvas.
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50


def test_learning_curves_of_one_epoch_without_a_selected_epoch(tmp_path, strict):
    path = tmp_path / "one.png"
    draw_learning_curves(curves(1, 5, selected_epoch=None), path, "one epoch")
    assert open_png(path).shape[2] == 3


def test_learning_curves_reject_arrays_of_different_lengths():
    with pytest.raises(ValueError, match="val_loss"):
        LearningCurves([1, 2], [1, 1], [1], [0, 0], [0, 0], [1], [0.1], [1.0], None)
    with pytest.raises(ValueError, match="step_lr"):
        LearningCurves([1], [1], [1], [0], [0], [0.5, 1.0], [0.1], [1.0, 1.0], 1)


# --- per-class pictures ------------------------------------------------------------------------


def test_confusion_matrix_with_a_class_without_test_images(tmp_path, strict):
    confusion = np.diag(np.arange(10, 20)).astype(np.int64)
    confusion[3] = 0  # no test image of class 3
    confusion[5, 3] = 4  # but class 3 was predicted
    path = tmp_path / "confusion.png"
    draw_confusion_matrix(confusion, DIGITS, path, "confusion")
    pixels = open_png(path)
    # The empty row is a band of grey (0.85 of white), a colour the Blues map does not have;
    # antialiased text makes a few such pixels, not thousands.
    assert np.count_nonzero(np.all(pixels == 216, axis=2)) > 5_000


def test_confusion_matrix_of_two_classes(tmp_path, strict):
    path = tmp_path / "two.png"
    draw_confusion_matrix(np.array([[50, 3], [7, 40]]), ["negative", "positive"], path, "two")
    open_png(path)


def test_confusion_matrix_of_a_hundred_classes(tmp_path, strict):
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 3, size=(100, 100)) + 50 * np.eye(100, dtype=np.int64)
    path = tmp_path / "hundred.png"
    draw_confusion_matrix(confusion, [f"class {k}" for k in range(100)], path, "hundred")
    height, width, _ = open_png(path).shape
    assert 2000 < width < 4000 and 2000 < height < 4000


def test_confusion_matrix_rejects_a_shape_that_does_not_match_the_classes(tmp_path):
    with pytest.raises(ValueError, match="3 classes"):
        draw_confusion_matrix(np.zeros((2, 2), np.int64), ["a", "b", "c"], tmp_path / "x.png", "")


def test_confusion_matrix_cells_keep_their_percent_sign_while_it_fits():
    # Ten digits: half-inch cells, "100%" at the names' 10 points.
    assert _cell_style(0.5, 10) == (10, True)
    # Twenty classes on the page's width: the numbers alone, at a readable size.
    points, with_sign = _cell_style(0.27, 10)
    assert not with_sign and 8 < points < 9


def test_worst_first_breaks_ties_in_class_order_and_puts_absent_classes_last():
    percent = np.array([0.5, np.nan, 1.0, 0.5, 0.0, np.nan, 0.0])
    order = worst_first(percent)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(order, [2, 0, 3, 4, 6, 1, 5])


def test_bar_text_gives_the_rate_and_its_counts():
    assert _bar_text(100 * 9 / 1010, 9, 1010) == "0.89% (9 of 1,010)"
    assert _bar_text(0.0, 0, 980) == "0% (0 of 980)"
    assert _bar_text(100.0, 12, 12) == "100.00% (12 of 12)"


def red(pixels: np.ndarray) -> np.ndarray:
    """Where the mean line and its title are ("tab:red", 214, 39, 40, antialiased on white)."""
    r, g, b = (pixels[..., channel].astype(int) for channel in range(3))
    return (r > 180) & (g < 120) & (b < 120)


def bar_ends(pixels: np.ndarray) -> list[int]:
    """The rightmost column of each bar, top to bottom: bars are runs of pixel rows holding the
    bars' blue (the mean line and the labels cross them, but not their right ends)."""
    blue = np.all(pixels == BAR_BLUE, axis=2)
    rows = np.flatnonzero(blue.sum(axis=1) > 3)
    bars = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    return [int(np.flatnonzero(blue[bar].any(axis=0)).max()) for bar in bars]


def test_per_class_errors_are_drawn_worst_first_to_scale(tmp_path, strict):
    # Error rates 1%, 4%, 2% and 0.5%: drawn 4%, 2%, 1%, 0.5% from the top.
    confusion = np.diag([990, 960, 980, 995])
    confusion[[0, 1, 2, 3], [1, 0, 3, 2]] = [10, 40, 20, 5]
    path = tmp_path / "errors.png"
    draw_per_class_errors(confusion, ["a", "b", "c", "d"], path, "per class")
    pixels = open_png(path)
    assert pixels.shape[1] == PAGE_WIDTH_PIXELS
    ends = bar_ends(pixels)
    assert len(ends) == 4
    # The axis starts at 0 (the bars' common left end), so lengths are in the rates' ratios;
    # the worst fills most of the axis, which ends a little past it.
    left = int(np.flatnonzero(np.all(pixels == BAR_BLUE, axis=2).any(axis=0)).min())
    lengths = np.array(ends) - left
    np.testing.assert_allclose(lengths / lengths[0], [1, 0.5, 0.25, 0.125], atol=0.01)
    assert lengths[0] > 0.75 * PAGE_WIDTH_PIXELS
    # The mean line is drawn, and said in the title.
    assert red(pixels).sum() > 300


def test_per_class_errors_with_an_absent_class(tmp_path, strict):
    confusion = np.array([[99, 1, 0], [0, 0, 0], [5, 0, 45]])
    path = tmp_path / "absent.png"
    draw_per_class_errors(confusion, ["zero", "one", "two"], path, "per class")
    # Bars for the two classes with test images only.
    assert len(bar_ends(open_png(path))) == 2


def test_per_class_errors_with_no_class_present(tmp_path, strict):
    path = tmp_path / "none.png"
    draw_per_class_errors(np.zeros((3, 3), np.int64), ["a", "b", "c"], path, "nothing to show")
    pixels = open_png(path)
    assert not np.all(pixels == BAR_BLUE, axis=2).any()
    assert not red(pixels).any()


def test_per_class_errors_without_a_mistake_has_no_mean_line(tmp_path, strict):
    path = tmp_path / "perfect.png"
    draw_per_class_errors(np.diag([980, 1135, 0]), ["0", "1", "2"], path, "all correct")
    pixels = open_png(path)
    # No bars, and no mean line along the axis; the title says there is no mistake.
    assert not np.all(pixels == BAR_BLUE, axis=2).any()
    assert not red(pixels).any()
    assert (pixels < 128).any()


def test_per_class_errors_rejects_a_shape_that_does_not_match_the_classes(tmp_path):
    with pytest.raises(ValueError, match="3 classes"):
        draw_per_class_errors(np.zeros((2, 2), np.int64), ["a", "b", "c"], tmp_path / "x.png", "")


def test_per_class_errors_of_two_hundred_classes(tmp_path, strict):
    rng = np.random.default_rng(3)
    confusion = rng.integers(0, 2, size=(200, 200)) + 50 * np.eye(200, dtype=np.int64)
    path = tmp_path / "many.png"
    draw_per_class_errors(confusion, [f"class {k}" for k in range(200)], path, "many")
    height, width, _ = open_png(path).shape
    assert width == PAGE_WIDTH_PIXELS and 3000 < height < 3500


# --- every picture fits half the page ---------------------------------------------------------


@pytest.mark.parametrize(
    "classes", [DIGITS, FASHION, SUPERCLASSES], ids=["digits", "fashion", "twenty"]
)
def test_every_picture_is_at_most_the_page_width_for_up_to_twenty_classes(
    tmp_path, strict, classes
):
    rng = np.random.default_rng(4)
    k = len(classes)
    confusion = rng.integers(0, 5, size=(k, k)) + 950 * np.eye(k, dtype=np.int64)
    draw_confusion_matrix(confusion, classes, tmp_path / "confusion.png", "a long title: 99.42%")
    draw_per_class_errors(confusion, classes, tmp_path / "errors.png", "a long title: 99.42%")
    # The gallery's twenty mistakes, with the widest confidence text.
    labels = np.arange(20) % k
    draw_mistakes(rng.random((20, 28, 28, 1), dtype=np.float32), labels, (labels + 1) % k,
                  np.linspace(0.9999, 0.6, 20), classes, tmp_path / "mistakes.png", "mistakes")
    draw_mistakes(np.zeros((0, 28, 28, 1)), [], [], [], classes, tmp_path / "none.png", "none")
    for path in sorted(tmp_path.glob("*.png")):
        with Image.open(path) as image:
            assert image.width <= PAGE_WIDTH_PIXELS, path.name


@pytest.mark.parametrize("epochs", [1, 60, 300])
def test_learning_curves_are_at_most_the_page_width(tmp_path, strict, epochs):
    path = tmp_path / "curves.png"
    draw_learning_curves(curves(epochs, 7, selected_epoch=epochs), path, "a long title: training")
    with Image.open(path) as image:
        assert image.width <= PAGE_WIDTH_PIXELS


def test_mistake_titles_take_four_columns_and_a_third_line_for_long_names():
    confidences = [0.83, 0.5]
    # Digits: five columns of two lines.
    titles, columns, lines = _titles([5, 7], [3, 1], confidences, DIGITS)
    assert (columns, lines) == (5, 2) and titles[0] == "true: 5\npredicted: 3 (83%)"
    # "99.9%" needs the width of four columns.
    assert _titles([5], [3], [0.9996], DIGITS)[1:] == (4, 2)
    # Fashion-MNIST's names stay whole on three lines.
    titles, columns, lines = _titles([0, 9], [9, 0], confidences, FASHION)
    assert (columns, lines) == (4, 3)
    assert titles[0] == "true: T-shirt/top\npredicted: Ankle boot\n(83%)"
    # Names too long even then are cut with an ellipsis, and dollar signs escaped after the cut.
    titles, _, _ = _titles([0], [1], [0.5], ["a" * 40, "$5 notes"])
    assert titles[0].startswith("true: aaaaaaaaaa") and "a\u2026\npredicted: " in titles[0]
    assert titles[0].endswith(r"\$5 notes" + "\n(50%)")


# --- most confident mistakes -------------------------------------------------------------------


def top(probabilities):
    """Each row's most probable class and its probability, as evaluation.top_predictions gives."""
    probabilities = np.asarray(probabilities)
    return probabilities.argmax(axis=1), probabilities.max(axis=1)


def test_most_confident_mistakes_known_answer_with_ties():
    probabilities = np.array(
        [
            [0.9, 0.1],  # 0: wrong (label 1), 0.9
            [0.2, 0.8],  # 1: right
            [0.3, 0.7],  # 2: wrong (label 0), 0.7
            [0.9, 0.1],  # 3: wrong, 0.9: ties with 0, so after it
            [0.6, 0.4],  # 4: wrong, 0.6
        ]
    )
    labels = np.array([1, 1, 0, 1, 1])
    chosen = most_confident_mistakes(*top(probabilities), labels, count=3)
    assert chosen.dtype == np.int64
    np.testing.assert_array_equal(chosen, [0, 3, 2])


def test_most_confident_mistakes_returns_fewer_when_there_are_fewer_mistakes():
    probabilities = np.array([[0.7, 0.3], [0.4, 0.6], [0.45, 0.55]])
    labels = np.array([0, 0, 0])
    np.testing.assert_array_equal(most_confident_mistakes(*top(probabilities), labels, 10), [1, 2])
    assert most_confident_mistakes(*top(probabilities), labels, 0).shape == (0,)


def test_most_confident_mistakes_with_no_mistakes():
    probabilities = np.eye(3)
    chosen = most_confident_mistakes(*top(probabilities), np.arange(3), count=5)
    assert chosen.shape == (0,) and chosen.dtype == np.int64


# --- the mistakes gallery ----------------------------------------------------------------------


def test_displayable_undoes_standardization_and_clips():
    mean, std = np.array([0.5, 0.25, 0.0]), np.array([0.25, 0.5, 0.1])
    # One 2x2 image: each pixel's channels, and what x * std + mean clipped to 0..1 gives.
    images = np.array(
        [[[[0.0, 0.0, 0.0], [2.0, 1.5, 10.0]], [[-2.0, -0.5, 5.0], [1.0, -1.0, 3.0]]]]
    )
    expected = np.array(
        [[[[0.5, 0.25, 0.0], [1.0, 1.0, 1.0]], [[0.0, 0.0, 0.5], [0.75, 0.0, 0.3]]]]
    )
    restored = displayable(images.astype(np.float32), mean, std)
    assert restored.dtype == np.float32 and restored.shape == images.shape
    np.testing.assert_allclose(restored, expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(7, 28, 28, 1), (2, 32, 32, 3)])
def test_mistakes_gallery_renders_gray_and_colour_images(tmp_path, strict, shape):
    rng = np.random.default_rng(1)
    count = shape[0]
    classes = ["airplane", "a class with a rather long name indeed"] + DIGITS[2:]
    path = tmp_path / "mistakes.png"
    draw_mistakes(
        rng.random(shape, dtype=np.float32),
        labels=np.arange(count) % 10,
        predictions=(np.arange(count) + 1) % 10,
        confidences=np.linspace(0.99999, 0.5, count),
        classes=classes,
        path=path,
        title="most confident mistakes",
    )
    assert open_png(path).shape[2] == 3


def test_mistakes_gallery_without_mistakes_says_so(tmp_path, strict):
    path = tmp_path / "none.png"
    draw_mistakes(np.zeros((0, 28, 28, 1)), [], [], [], DIGITS, path, "no mistakes")
    pixels = open_png(path)
    # Some dark text on the white page.
    assert (pixels < 128).any()


# --- past MAX_CLASSES_DRAWN classes: the worst classes alone, in bounded size and memory --------


def many_classes(count: int, seed: int = 5) -> tuple[np.ndarray, list[str]]:
    """A confusion matrix of ``count`` classes of 10 test images each, 60% right."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(count), 10)
    predictions = np.where(rng.random(labels.size) < 0.6, labels,
                           rng.integers(0, count, labels.size))
    confusion = np.bincount(labels * count + predictions, minlength=count * count)
    return confusion.reshape(count, count), [f"class {k:05d}" for k in range(count)]


@pytest.fixture
def drawn_texts(monkeypatch) -> list[str]:
    """Every text of each class picture saved while the test runs (as matplotlib holds it)."""
    texts: list[str] = []
    save = class_pictures.save_figure

    def spy(figure, path):
        texts.extend(text.get_text() for text in figure.findobj(Text))
        save(figure, path)

    monkeypatch.setattr(class_pictures, "save_figure", spy)
    return texts


def test_the_matrix_of_the_worst_classes_keeps_each_row_whole():
    count = MAX_CLASSES_DRAWN + 100
    confusion = 10 * np.eye(count, dtype=np.int64)
    confusion[7, [7, 250, 100]] = [6, 3, 1]  # 40% wrong, one of them to a class not shown
    confusion[250, [250, 7]] = [8, 2]  # 20% wrong
    confusion[12] = 0  # no test images: shown last, if at all
    names = [f"c{k}" for k in range(count)]
    counts, fractions, rows, columns, note = _worst_classes_matrix(confusion, names)
    # The two with mistakes, then the first of the rest in class order.
    assert rows == ["c7", "c250", "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c8", "c9", "c10",
                    "c11", "c13", "c14", "c15", "c16", "c17", "c18", "c19"]
    assert columns == [*rows, "(other classes)"] and counts.shape == (20, 21)
    np.testing.assert_array_equal(counts[0, [0, 1, -1]], [6, 3, 1])
    np.testing.assert_array_equal(counts[1, [0, 1, -1]], [2, 8, 0])
    np.testing.assert_allclose(fractions.sum(axis=1), 1)
    assert note == ("the 20 worst of 300 classes (highest test error), worst first;\n"
                    "(other classes): predicted as one of the 280 classes not shown")


@pytest.mark.hostile
def test_past_the_cap_the_pictures_show_the_worst_classes_and_say_so(
    tmp_path, strict, drawn_texts
):
    confusion, names = many_classes(MAX_CLASSES_DRAWN + 100)
    draw_confusion_matrix(confusion, names, tmp_path / "confusion.png", "many: 60.00%")
    assert "the 20 worst of 300 classes (highest test error), worst first;\n(other classes): " \
           "predicted as one of the 280 classes not shown" in drawn_texts
    assert open_png(tmp_path / "confusion.png").shape[1] <= PAGE_WIDTH_PIXELS
    drawn_texts.clear()
    draw_per_class_errors(confusion, names, tmp_path / "errors.png", "many: 60.00%")
    assert "the 40 worst of 300 classes, worst first" in drawn_texts
    assert "dashed line: mean over all 300 classes, 38.57%" in drawn_texts
    assert "not shown: the other 260 classes, test error 0% to 50.00%" in drawn_texts
    pixels = open_png(tmp_path / "errors.png")
    assert pixels.shape[1] == PAGE_WIDTH_PIXELS and len(bar_ends(pixels)) == 40


def test_the_note_counts_the_classes_without_test_images_left_out(tmp_path, drawn_texts):
    confusion, names = many_classes(MAX_CLASSES_DRAWN + 1)
    confusion[100:110] = 0
    draw_per_class_errors(confusion, names, tmp_path / "errors.png", "many")
    assert any(text.startswith("not shown: the other 161 classes, test error 0% to ")
               and text.endswith("; 10 of them without test images") for text in drawn_texts)
    assert "dashed line: mean over the 191 classes with test images" in " ".join(drawn_texts)


# Draws both class pictures of argv[1] classes into argv[2] as evaluate calls them, and prints the
# peak resident memory the drawing added (KiB, over the peak of building the inputs) and the
# pictures' sizes in pixels.
AT_SCALE = """
import json, resource, sys
from PIL import Image
from numpynet.pictures import draw_confusion_matrix, draw_per_class_errors
sys.path.insert(0, sys.argv[3])
from test_pictures import many_classes
confusion, names = many_classes(int(sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
draw_confusion_matrix(confusion, names, sys.argv[2] + "/confusion.png", "many: 60.00%")
draw_per_class_errors(confusion, names, sys.argv[2] + "/errors.png", "many: 60.00%")
added = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
sizes = {name: Image.open(f"{sys.argv[2]}/{name}.png").size for name in ("confusion", "errors")}
print(json.dumps({"added_kib": added, "sizes": sizes}))
"""


@pytest.mark.hostile
def test_five_thousand_classes_are_drawn_in_page_wide_pictures_and_little_memory(tmp_path):
    # Before: 3,065 x 2,925 pixels, 2.4 GB and 67 s of CPU for the matrix, 600 x 3,140 pixels and
    # 45 s for the bars. Now 13 MiB, well under a second each (measured beside other jobs).
    result = subprocess.run(
        [sys.executable, "-c", AT_SCALE, "5000", str(tmp_path), str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    measured = json.loads(result.stdout)
    (matrix_width, matrix_height), (bars_width, bars_height) = measured["sizes"].values()
    assert matrix_width <= PAGE_WIDTH_PIXELS and matrix_height < 800
    assert bars_width == PAGE_WIDTH_PIXELS and bars_height < 1500
    assert measured["added_kib"] < 100 * 1024


@pytest.mark.hostile
def test_class_names_the_font_cannot_draw_are_escaped_not_boxed(tmp_path, strict):
    """Glyphs DejaVu Sans lacks (CJK here) would draw as boxes with a warning each, or come from
    whatever other font the machine has: written as escapes instead, the same bytes anywhere."""
    names = ["猫", "犬\tdog", "café"]
    escaped = ["\\u732b", "\\u72ac\\tdog", "café"]
    confusion = np.array([[8, 2, 0], [1, 9, 0], [0, 3, 7]])
    labels, predictions = np.array([0, 1, 2]), np.array([1, 0, 1])
    images = np.zeros((3, 8, 8, 1), np.uint8)
    for label, classes in (("raw", names), ("escaped", escaped)):
        draw_confusion_matrix(confusion, classes, tmp_path / f"{label}-matrix.png", "t")
        draw_per_class_errors(confusion, classes, tmp_path / f"{label}-errors.png", "t")
        draw_mistakes(images, labels, predictions, np.full(3, 0.7), classes,
                      tmp_path / f"{label}-mistakes.png", "t")
    for picture in ("matrix", "errors", "mistakes"):
        assert (tmp_path / f"raw-{picture}.png").read_bytes() == (
            tmp_path / f"escaped-{picture}.png").read_bytes()
    assert literal("猫 $5") == "\\u732b \\$5"
