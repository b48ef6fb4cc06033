"""Layers of a multilayer perceptron, each with a hand-written backward pass.

Every layer follows one protocol so that :class:`numpynet.nn.model.Sequential` can chain them
without knowing what they are:

* ``forward(x, training)`` returns the output and caches whatever ``backward`` needs;
* ``backward(grad_out)`` returns the gradient with respect to the last ``forward`` input and,
  for layers with parameters, overwrites their gradient buffers;
* ``parameters()`` lists ``(name, param, grad)`` triples of plain NumPy arrays; a layer that
  has some also takes ``backward(grad_out, need_input_grad=False)``, which fills the parameter
  gradients only (the first layer of a network has no one to pass its input gradient to).
"""

from __future__ import annotations

import numpy as np


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
        # the same weights up to rounding (useful for float64 gradient checks).
        weight = rng.standard_normal((self.in_features, self.out_features)) * std
        self.weight = weight.astype(dtype)
        self.bias = np.zeros(self.out_features, dtype=dtype)
        self.grad_weight = np.zeros_like(self.weight)
        self.grad_bias = np.zeros_like(self.bias)
        self._input = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """Return ``x @ weight + bias``: (N, in_features) -> (N, out_features)."""
        self._input = x
        out = x @ self.weight
        out += self.bias
        return out

    def backward(self, grad_out: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Fill ``grad_weight``/``grad_bias`` in place; return the input gradient.

        ``grad_out`` (N, out_features) -> gradient w.r.t. the input, (N, in_features), or None
        when ``need_input_grad`` is false: the first layer of a network has no one to pass it
        to, and it would cost as much as the weight gradient.
        """
        x = _require_cached(self._input, "Linear")
        np.matmul(x.T, grad_out, out=self.grad_weight)
        np.sum(grad_out, axis=0, out=self.grad_bias)
        return grad_out @ self.weight.T if need_input_grad else None

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
