"""What the evaluate stage draws: pictures, with matplotlib (Agg, no display) into PNG files,
and the per-epoch curves whose charts ``dvc plots`` draws.

Each ``draw_*`` function takes plain arrays, a path and a title and writes one PNG whose bytes
depend only on its inputs (see :mod:`numpynet.pictures.png`).

* :mod:`~numpynet.pictures.curves`: loss, accuracy and learning rate over training.
* :mod:`~numpynet.pictures.epoch_curves`: the per-epoch curves as CSV files, which ``dvc plots``
  draws as charts.
* :mod:`~numpynet.pictures.classes`: the row-normalized confusion matrix, each class's test
  error rate, worst first; past ``MAX_CLASSES_DRAWN`` classes, the worst ones only.
* :mod:`~numpynet.pictures.gallery`: the most confident mistakes on the test set.
"""

from numpynet.pictures.classes import draw_confusion_matrix, draw_per_class_errors
from numpynet.pictures.curves import LearningCurves, draw_learning_curves
from numpynet.pictures.epoch_curves import EPOCH_CURVES, write_epoch_curves
from numpynet.pictures.gallery import displayable, draw_mistakes, most_confident_mistakes
from numpynet.pictures.png import save_figure

__all__ = [
    "EPOCH_CURVES",
    "LearningCurves",
    "displayable",
    "draw_confusion_matrix",
    "draw_learning_curves",
    "draw_mistakes",
    "draw_per_class_errors",
    "most_confident_mistakes",
    "save_figure",
    "write_epoch_curves",
]
