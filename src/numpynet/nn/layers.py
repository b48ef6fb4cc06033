"""Layers of a multilayer perceptron, each with a hand-written backward pass.

Every layer follows one protocol so that :class:`numpynet.nn.model.Sequential` can chain them
without knowing what they are:

* ``forward(x, training)`` returns the output and caches whatever ``backward`` needs;
* ``backward(grad_out)`` returns the gradient with respect to the last ``forward`` input and,
  for layers with parameters, overwrites their gradient buffers;
* ``parameters()`` lists ``(name, param, grad)`` triples of plain NumPy arrays; a layer that
  has some also takes ``backward(grad_out, need_input_grad=False)``, which fills the parameter
  gradients only (the first layer of a network has no one to pass its input gradient to);
* ``buffers()``, only on layers with state that is saved but not trained (the running statistics
  of :class:`BatchNorm`), lists ``(name, array)`` pairs that no optimizer sees.
"""

from __future__ import annotations

import numpy as np

from numpynet.matmul import matmul
from numpynet.portable_math import standard_normal


def _require_cached(value, layer: str):
    # Calling backward first is a programming error; say so instead of failing on `None`.
    if value is None:
        raise RuntimeError(f"{layer}.backward() called before {layer}.forward()")
    return value


class Linear:
    """Affine map ``y = x @ weight + bias`` with ``weight`` of shape (in_features, out_features).

    The weight is drawn from a Kaiming (He) normal distribution with fan-in scaling,
    ``std = sqrt(2 / in_features)``, which keeps activation variance roughly constant through
    ReLU layers; the bias starts at zero. Gradient buffers are allocated once here and
    overwritten (never accumulated) by every ``backward`` call.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rng: np.random.Generator,
        dtype=np.float32,
    ):
        self.in_features = in_features
        self.out_features = out_features
        std = np.sqrt(2.0 / self.in_features)
        # Draw in float64 and cast, so float32 and float64 layers built from the same seed hold
        # the same weights up to rounding (useful for float64 gradient checks). NumPy's own
        # normal draws call the platform's exp and log; these are the same bits everywhere.
        weight = standard_normal(rng, (self.in_features, self.out_features)) * std
        self.weight = weight.astype(dtype)
        self.bias = np.zeros(self.out_features, dtype=dtype)
        self.grad_weight = np.zeros_like(self.weight)
        self.grad_bias = np.zeros_like(self.bias)
        self._input = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """Return ``x @ weight + bias``: (N, in_features) -> (N, out_features)."""
        self._input = x
        out = matmul(x, self.weight)
        out += self.bias
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Fill ``grad_weight``/``grad_bias`` in place; return the input gradient.

        ``grad_out`` (N, out_features) -> gradient w.r.t. the input, (N, in_features), or None
        when ``need_input_grad`` is false: the first layer of a network has no one to pass it
        to, and it would cost as much as the weight gradient.
        """
        x = _require_cached(self._input, "Linear")
        matmul(x.T, grad_out, out=self.grad_weight)
        np.sum(grad_out, axis=0, out=self.grad_bias)
        return matmul(grad_out, self.weight.T) if need_input_grad else None

    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Return ``[("weight", weight, grad_weight), ("bias", bias, grad_bias)]``."""
        return [
            ("weight", self.weight, self.grad_weight),
            ("bias", self.bias, self.grad_bias),
        ]

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, dtype={self.weight.dtype})"


class ReLU:
    """Elementwise ``max(x, 0)``; the gradient at exactly 0 is taken as 0."""

    def __init__(self):
        self._positive = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """Return ``x`` where it is positive and zero elsewhere (-0.0 for negative ``x``).

        Same shape as ``x``; remembers where ``x`` was positive for the backward pass.
        """
        self._positive = x > 0
        # Multiplying by the mask costs half of np.maximum, which also sorts out NaNs. A NaN
        # still comes through (NaN * 0 is NaN), so a diverged run is still caught.
        return x * self._positive

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Pass ``grad_out`` (shape of the input) through where the input was positive, else 0."""
        positive = _require_cached(self._positive, "ReLU")
        return grad_out * positive

    def parameters(self) -> list:
        """ReLU has no parameters."""
        return []

    def __repr__(self) -> str:
        return "ReLU()"


class Dropout:
    """Inverted dropout: zero each unit with probability ``p`` and scale survivors by 1/(1-p).

    Scaling at training time (rather than at evaluation time) keeps the expected activation
    unchanged, so evaluation is a plain identity. The mask comes from the generator given at
    construction, so a run is reproducible from its seed.
    """

    def __init__(self, p: float, rng: np.random.Generator):
        self.p = p
        self.rng = rng
        self._mask = None
        self._identity = False

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """Apply a fresh random mask (same shape as ``x``) in training mode; identity otherwise."""
        self._identity = not training or self.p == 0.0
        if self._identity:
            self._mask = None
            return x
        # 16 random bits decide keep or drop: half the cost of float32 uniforms, and p is
        # honoured to within 2**-16.
        bits = self.rng.integers(0, 1 << 16, size=x.shape, dtype=np.uint16)
        # At most 65535: a p within 2**-17 of 1 must still keep a unit in 65536, not none.
        keep = bits >= min(round(self.p * (1 << 16)), (1 << 16) - 1)
        mask = keep.astype(x.dtype)
        mask *= 1.0 / (1.0 - self.p)
        self._mask = mask
        return x * mask

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Scale ``grad_out`` (shape of the input) by the mask the forward pass used."""
        if self._identity:
            return grad_out
        return grad_out * _require_cached(self._mask, "Dropout")

    def parameters(self) -> list:
        """Dropout has no parameters."""
        return []

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class Flatten:
    """Reshape a batch (N, d1, d2, ...) to (N, d1*d2*...), e.g. 28x28 images to 784 vectors."""

    def __init__(self):
        self._input_shape = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """Return ``x`` (N, d1, d2, ...) viewed as (N, d1*d2*...)."""
        self._input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Reshape ``grad_out`` (N, d1*d2*...) back to the input's shape (N, d1, d2, ...)."""
        return grad_out.reshape(_require_cached(self._input_shape, "Flatten"))

    def parameters(self) -> list:
        """Flatten has no parameters."""
        return []

    def __repr__(self) -> str:
        return "Flatten()"


class Projection:
    """A fixed linear map ``y = x @ matrix``, (N, D) -> (N, K), that learns nothing.

    Placed in front of the first Linear layer, it shows that layer fewer values than the input
    has (the principal directions of :func:`numpynet.training.whitening.principal_directions`),
    so the largest product of a training step shrinks from D to K rows of weights. Once training
    is done, the matrix is folded into the Linear layer and the Projection removed.
    """

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """Return ``x @ matrix``: (N, D) -> (N, K)."""
        return matmul(x, self.matrix)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """Return the input gradient ``grad_out @ matrix.T``: (N, K) -> (N, D)."""
        return matmul(grad_out, self.matrix.T)

    def parameters(self) -> list:
        """The matrix is fixed: no parameters."""
        return []

    def __repr__(self) -> str:
        return f"Projection({self.matrix.shape[0]}, {self.matrix.shape[1]})"


class BatchNorm:
    """Batch normalization of (N, num_features) inputs, one mean and variance per feature.

    In training, ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` with the batch's mean and
    biased variance, and the running statistics move towards the batch's as
    ``running = (1 - momentum) * running + momentum * batch``, the variance there unbiased (the
    PyTorch convention, so its models and numbers compare). In evaluation the running statistics
    take the batch's place, which makes the layer a fixed per-feature affine map; its backward
    pass then treats them as the constants they are.

    ``gamma`` (ones) and ``beta`` (zeros) are parameters; being 1-D, they escape AdamW's weight
    decay. ``running_mean`` (zeros) and ``running_var`` (ones) are buffers: saved with the model
    through :meth:`buffers`, never given to an optimizer. Nothing is drawn at random, so adding
    the layer leaves the weights of the layers around it unchanged for a given seed.
    """

    def __init__(
        self, num_features: int, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32
    ):
        self.num_features = num_features
        self.momentum = momentum
        self.eps = eps
        self.gamma = np.ones(num_features, dtype=dtype)
        self.beta = np.zeros(num_features, dtype=dtype)
        self.grad_gamma = np.zeros_like(self.gamma)
        self.grad_beta = np.zeros_like(self.beta)
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)
        # Training caches xhat; evaluation caches the input and the statistics it used, so that
        # the forward pass alone (all that evaluation runs) costs two passes over the batch.
        self._xhat = self._input = self._mean = self._inv_std = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """Return the normalized, scaled and shifted ``x``: (N, num_features), same shape.

        In training, also update the running statistics; that takes N >= 2 (the unbiased
        variance of one sample is undefined), so a batch of one raises ``ValueError``.
        """
        if not training:
            self._xhat = None
            self._input = x
            self._mean = self.running_mean.copy()
            self._inv_std = 1.0 / np.sqrt(self.running_var + self.eps)
            scale = self.gamma * self._inv_std
            out = x * scale
            out += self.beta - self._mean * scale
            return out
        n = x.shape[0]
        if n < 2:
            raise ValueError(
                f"BatchNorm needs at least 2 samples per training batch, got {n}; "
                f"choose a batch size that leaves no last batch of one sample"
            )
        mean = x.mean(axis=0)
        xhat = x - mean
        # The variance is the biased one. Products and sums as separate passes, row after row:
        # einsum's loops fuse and reorder them differently on every instruction set.
        var = np.square(xhat).sum(axis=0)
        var /= n
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat *= inv_std
        m = self.momentum
        self.running_mean *= 1.0 - m
        self.running_mean += m * mean
        self.running_var *= 1.0 - m
        self.running_var += (m * n / (n - 1)) * var
        self._xhat, self._input, self._mean, self._inv_std = xhat, None, None, inv_std
        out = xhat * self.gamma
        out += self.beta
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Fill ``grad_gamma``/``grad_beta`` in place; return the input gradient.

        ``grad_out`` (N, num_features) -> gradient w.r.t. the input, same shape, or None when
        ``need_input_grad`` is false. After a training forward pass the gradient flows through
        the batch statistics too; after an evaluation one, through the fixed affine map only.
        """
        inv_std = _require_cached(self._inv_std, "BatchNorm")
        training = self._xhat is not None
        if training:
            xhat = self._xhat
        else:
            xhat = self._input - self._mean
            xhat *= inv_std
        np.sum(grad_out, axis=0, out=self.grad_beta)
        np.multiply(grad_out, xhat).sum(axis=0, out=self.grad_gamma)
        if not need_input_grad:
            return None
        scale = self.gamma * inv_std
        if not training:
            return grad_out * scale
        # With dxhat = grad_out * gamma, the textbook
        #   dx = (inv_std / N) * (N * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
        # has its two sums equal to gamma * grad_beta and gamma * grad_gamma, already computed:
        #   dx = gamma * inv_std * (grad_out - (grad_beta + xhat * grad_gamma) / N),
        # four passes over one new (N, D) array.
        n = grad_out.shape[0]
        grad_in = xhat * (self.grad_gamma / n)
        grad_in += self.grad_beta / n
        np.subtract(grad_out, grad_in, out=grad_in)
        grad_in *= scale
        return grad_in

    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Return ``[("gamma", gamma, grad_gamma), ("beta", beta, grad_beta)]``."""
        return [
            ("gamma", self.gamma, self.grad_gamma),
            ("beta", self.beta, self.grad_beta),
        ]

    def buffers(self) -> list[tuple[str, np.ndarray]]:
        """Return ``[("running_mean", running_mean), ("running_var", running_var)]``, live."""
        return [("running_mean", self.running_mean), ("running_var", self.running_var)]

    def __repr__(self) -> str:
        return (
            f"BatchNorm({self.num_features}, momentum={self.momentum}, eps={self.eps}, "
            f"dtype={self.gamma.dtype})"
        )
