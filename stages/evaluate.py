"""evaluate stage: score the trained model on the test split and draw what it learned.

Reads ``--model`` (``models/<name>``), its training log ``--live`` (``dvclive/<name>``, DVCLive's
files), ``--data`` (``data/processed/<name>``) and from params.yaml ``evaluate`` and whether the
dataset trains on mirrored images (``augment_flip``, for ``evaluate.test_time_flip``); writes
``--metrics`` (``metrics/<name>.json``: test accuracy and loss, and the epoch whose weights
training kept, under the dataset's name, so every dataset gets its own columns in
``dvc exp show``) and ``--plots`` (``plots/<name>/``, replaced whole, together with the metrics:
a stop changes both or neither): ``pictures/``, PNG files
drawn with matplotlib (learning curves, the confusion matrix, each class's test error and the
most confident mistakes), and ``curves/``, the validation accuracy, validation loss and training
loss of each epoch, one CSV file each, which dvc.yaml declares as the charts of ``dvc plots``.
"""

import _bootstrap  # noqa: I001  (first: this tree's code, on a pinned numeric backend)

import numpy as np

from _dvclive_log import read_log
from numpynet.config import load_params
from numpynet.data.processed import read_meta, read_split
from numpynet.evaluation import (
    check_finite_outputs,
    check_model_fits_data,
    confusion_matrix,
    loss_and_accuracy,
    predict_logits,
    top_predictions,
)
from numpynet.files import atomic_outputs, write_json
from numpynet.model_folder import load_model
from numpynet.pictures import (
    LearningCurves,
    displayable,
    draw_confusion_matrix,
    draw_learning_curves,
    draw_mistakes,
    draw_per_class_errors,
    most_confident_mistakes,
    write_epoch_curves,
)
from numpynet.records import EvaluationScores, record_json
from numpynet.stage_entry import run_stage, stage_arguments

MISTAKES_SHOWN = 20
# The two folders of --plots, whose files dvc.yaml declares one by one.
PICTURES = "pictures"
CURVES = "curves"


def main() -> None:
    args = stage_arguments(
        __doc__,
        _bootstrap.PROJECT_ROOT,
        inputs=["data", "model", "live"],
        outputs=["metrics", "plots"],
    )
    params = load_params(args.params)
    # An unknown name fails here, with the configured ones listed. Only a model trained on
    # mirrored images is asked about mirrored ones: a mirrored digit is not the same digit.
    test_time_flip = params.evaluate.test_time_flip and params.train_for(args.dataset).augment_flip
    meta = read_meta(args.data)
    x_test, y_test = read_split(args.data, "test", meta)
    saved = load_model(args.model)
    check_model_fits_data(args.model, saved, args.data, meta)
    selected_epoch = saved.training.selected_epoch if saved.training else None
    curves = LearningCurves.from_log(*read_log(args.live), selected_epoch=selected_epoch)

    logits = predict_logits(saved.model, x_test, params.evaluate.batch_size, test_time_flip)
    check_finite_outputs(logits, args.model, args.data / "x_test.npy")
    loss, accuracy = loss_and_accuracy(logits, y_test)
    predictions, confidences = top_predictions(logits)
    confusion = confusion_matrix(y_test, predictions, len(meta.classes))
    mistakes = most_confident_mistakes(predictions, confidences, y_test, MISTAKES_SHOWN)

    scores = EvaluationScores(accuracy=accuracy, loss=loss, selected_epoch=selected_epoch)
    title = f"{args.dataset}: test accuracy {accuracy:.2%}"
    # Both outputs replaced together, or neither: metrics beside pictures of another run would
    # lie about both. The metrics go first: the last to arrive, if a kill -9 cuts the renames short.
    with atomic_outputs(args.metrics, args.plots) as (metrics, folder):
        folder.mkdir()
        (folder / CURVES).mkdir()
        write_epoch_curves(curves, folder / CURVES)
        out = folder / PICTURES
        out.mkdir()
        draw_learning_curves(curves, out / "learning_curves.png", f"{args.dataset}: training")
        draw_confusion_matrix(confusion, meta.classes, out / "confusion_matrix.png", title)
        draw_per_class_errors(confusion, meta.classes, out / "per_class_errors.png", title)
        draw_mistakes(
            displayable(np.asarray(x_test[mistakes]), meta.mean, meta.std),
            y_test[mistakes],
            predictions[mistakes],
            confidences[mistakes],
            meta.classes,
            out / "misclassified.png",
            f"{args.dataset}: the most confident mistakes on the test set",
        )
        write_json(metrics, {args.dataset: record_json(scores)})


if __name__ == "__main__":
    run_stage(main)
