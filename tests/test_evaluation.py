"""Scoring: confusion matrix, per-class accuracy, loss/accuracy and batched inference."""

import math
import warnings

import numpy as np
import pytest

from numpynet import evaluation
from numpynet.evaluation import (
    class_errors,
    confusion_matrix,
    evaluate_model,
    loss_and_accuracy,
    predict_logits,
    top_predictions,
)
from numpynet.nn import MLPConfig, build_mlp
from numpynet.matmul import exact_products


def test_confusion_matrix_known_answer():
    labels = np.array([0, 0, 1, 1, 1, 2])
    predictions = np.array([0, 1, 1, 1, 2, 0])
    expected = np.array(
        [
            [1, 1, 0],  # true 0: once right, once taken for 1
            [0, 2, 1],  # true 1: twice right, once taken for 2
            [1, 0, 0],  # true 2: taken for 0
        ]
    )
    matrix = confusion_matrix(labels, predictions, num_classes=3)
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == labels.size


def test_confusion_matrix_has_rows_and_columns_for_unseen_classes():
    matrix = confusion_matrix(np.array([1, 1]), np.array([1, 0]), num_classes=4)
    assert matrix.shape == (4, 4)
    expected = np.zeros((4, 4), dtype=int)
    expected[1, 1] = expected[1, 0] = 1
    np.testing.assert_array_equal(matrix, expected)


def test_class_errors_known_answer_with_an_empty_class():
    labels = np.array([0, 0, 0, 0, 1, 1, 3])
    predictions = np.array([0, 0, 0, 1, 0, 0, 3])
    wrong, total, percent = class_errors(confusion_matrix(labels, predictions, num_classes=4))
    np.testing.assert_array_equal(wrong, [1, 2, 0, 0])
    np.testing.assert_array_equal(total, [4, 2, 0, 1])
    np.testing.assert_array_equal(percent[[0, 1, 3]], [25.0, 100.0, 0.0])
    assert math.isnan(percent[2])  # class 2 has no test samples: undefined, not 0


def test_class_errors_known_answer_with_an_absent_class():
    confusion = np.array([[9, 1, 0], [0, 0, 0], [2, 2, 6]])
    wrong, total, percent = class_errors(confusion)
    np.testing.assert_array_equal(wrong, [1, 0, 4])
    np.testing.assert_array_equal(total, [10, 0, 10])
    np.testing.assert_array_equal(percent, [10.0, np.nan, 40.0])


def test_loss_and_accuracy_known_answer():
    # Two equal logits: p(true class) = 1/2 on every row, so the loss is exactly log 2.
    logits = np.array([[3.0, 3.0], [-1.0, -1.0], [0.0, 0.0]], dtype=np.float32)
    labels = np.array([0, 1, 1])
    loss, accuracy = loss_and_accuracy(logits, labels)
    assert loss == pytest.approx(math.log(2), rel=1e-12)
    # argmax picks the first of equal logits, so only row 0 counts as correct.
    assert accuracy == pytest.approx(1 / 3)
    assert isinstance(loss, float) and isinstance(accuracy, float)


def test_loss_and_accuracy_mixed_rows():
    logits = np.array([[0.0, math.log(3.0)], [10.0, 0.0]])
    labels = np.array([1, 1])
    loss, accuracy = loss_and_accuracy(logits, labels)
    # Row 0: p = 3/4; row 1: p = 1 / (1 + e^10).
    expected = (-math.log(0.75) + math.log1p(math.exp(10.0))) / 2
    assert loss == pytest.approx(expected, rel=1e-12)
    assert accuracy == 0.5


def test_loss_is_stable_for_huge_float32_logits():
    logits = np.array([[1e30, 0.0], [0.0, 1e30]], dtype=np.float32)
    loss, accuracy = loss_and_accuracy(logits, np.array([0, 1]))
    assert loss == 0.0 and accuracy == 1.0


def make_model(dropout):
    return build_mlp(MLPConfig(12, (16,), 5, dropout), np.random.default_rng(3))


def test_predict_logits_in_batches_equals_one_forward():
    model = make_model(dropout=0.0)
    images = np.random.default_rng(1).standard_normal((23, 3, 4)).astype(np.float32)
    whole = model.forward(images, training=False)
    for batch_size in (1, 5, 23, 100):  # 5 leaves a partial last batch of 3
        logits = predict_logits(model, images, batch_size)
        assert logits.shape == (23, 5)
        np.testing.assert_allclose(logits, whole, rtol=1e-5, atol=1e-6)


def test_predict_logits_uses_inference_mode():
    model = make_model(dropout=0.5)
    images = np.random.default_rng(1).standard_normal((20, 12)).astype(np.float32)
    first = predict_logits(model, images, batch_size=7)
    second = predict_logits(model, images, batch_size=7)
    np.testing.assert_array_equal(first, second)  # no random dropout masks
    np.testing.assert_allclose(first, model.forward(images, training=False), rtol=1e-5, atol=1e-6)
    # Sanity check that this model's training mode is random, so the test can tell them apart.
    assert not np.array_equal(model.forward(images, training=True), first)


def test_evaluate_model_matches_its_parts():
    model = make_model(dropout=0.0)
    rng = np.random.default_rng(2)
    images = rng.standard_normal((30, 12)).astype(np.float32)
    labels = rng.integers(0, 5, size=30)
    # Batches of 8 against one of 30: the same bits only where the mode promises it (exact).
    with exact_products():
        loss, accuracy = evaluate_model(model, images, labels, batch_size=8)
        expected = loss_and_accuracy(model.forward(images, training=False), labels)
    assert loss == pytest.approx(expected[0], rel=1e-5)
    assert accuracy == expected[1]


def test_test_time_flip_averages_each_image_with_its_mirror():
    model = build_mlp(MLPConfig(2 * 3 * 2, (8,), 4, 0.0), np.random.default_rng(0))
    images = np.random.default_rng(1).standard_normal((7, 2, 3, 2)).astype(np.float32)
    plain = predict_logits(model, images, batch_size=3)
    mirrored = predict_logits(model, images[:, :, ::-1], batch_size=3)
    voted = predict_logits(model, images, batch_size=3, test_time_flip=True)
    np.testing.assert_allclose(voted, (plain + mirrored) / 2, rtol=1e-6, atol=1e-6)
    # A mirror-symmetric image looks the same both ways: its vote changes nothing.
    symmetric = images + images[:, :, ::-1]
    np.testing.assert_allclose(predict_logits(model, symmetric, 3, test_time_flip=True),
                               predict_logits(model, symmetric, 3), rtol=1e-6, atol=1e-6)


@pytest.mark.hostile
def test_logits_that_overflow_come_back_without_a_numpy_warning():
    """The callers' own check (check_finite_outputs) names the model and the fix; NumPy's
    "overflow encountered in matmul" printed before it only confused."""
    model = build_mlp(MLPConfig(4, (8,), 3, 0.0), np.random.default_rng(0))
    for _, parameter, _ in model.parameters():
        parameter *= np.float32(1e30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        logits = predict_logits(model, np.ones((5, 2, 2, 1), np.float32), batch_size=2)
    assert not np.isfinite(logits).all()


@pytest.mark.hostile
def test_scores_of_many_classes_are_computed_in_blocks_to_the_same_bits(monkeypatch):
    """5,000 classes made N x K float64 probabilities and the portable exp's temporaries take
    5 GB in evaluate: rows now go a block at a time, and every value is what the whole matrix
    at once gives."""
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((37, 11)) * 5).astype(np.float32)
    labels = rng.integers(0, 11, 37)
    whole = loss_and_accuracy(logits, labels), top_predictions(logits)
    monkeypatch.setattr(evaluation, "_VALUES_PER_BLOCK", 30)  # 2 rows a block, the last alone
    blocked = loss_and_accuracy(logits, labels), top_predictions(logits)
    assert blocked[0] == whole[0]
    for got, expected in zip(blocked[1], whole[1]):
        np.testing.assert_array_equal(got, expected)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(whole[1][0], probabilities.argmax(axis=1))
    np.testing.assert_allclose(whole[1][1], probabilities.max(axis=1), rtol=1e-5)
