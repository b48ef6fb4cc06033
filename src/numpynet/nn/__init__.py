"""The neural-network library: layers, loss, model container, optimizers, schedules."""

from numpynet.nn.layers import BatchNorm, Dropout, Flatten, Linear, Projection, ReLU
from numpynet.nn.loss import SoftmaxCrossEntropy, log_softmax
from numpynet.nn.model import MLPConfig, Sequential, build_mlp
from numpynet.nn.optim import SGD, AdamW
from numpynet.nn.schedule import learning_rate

__all__ = [
    "AdamW",
    "BatchNorm",
    "Dropout",
    "Flatten",
    "Linear",
    "MLPConfig",
    "Projection",
    "ReLU",
    "SGD",
    "Sequential",
    "SoftmaxCrossEntropy",
    "build_mlp",
    "learning_rate",
    "log_softmax",
]
