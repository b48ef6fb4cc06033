"""Sequential container, the MLP builder, and the JSON-able architecture description."""

from __future__ import annotations

import numbers

import numpy as np

from numpynet.nn.layers import Dropout, Flatten, Linear, ReLU


class Sequential:
    """Apply layers one after another; backpropagate through them in reverse order."""

    def __init__(self, layers):
        self.layers = list(layers)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Run ``x`` through every layer. ``training`` switches dropout on."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """Backpropagate ``grad`` (w.r.t. the output) and return the gradient w.r.t. the input."""
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Return ``(qualified_name, param, grad)`` triples, e.g. ``"layers.1.weight"``.

        The arrays are the live ones, so an optimizer holding them updates the model directly.
        """
        return [
            (f"layers.{index}.{name}", param, grad)
            for index, layer in enumerate(self.layers)
            for name, param, grad in layer.parameters()
        ]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return a copy of every parameter, keyed by qualified name."""
        return {name: param.copy() for name, param, _ in self.parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Copy ``state`` into the parameters in place, after checking names and shapes.

        In-place copies keep any optimizer that already holds the parameter arrays valid.
        Nothing is modified unless every key and shape matches.
        """
        params = {name: param for name, param, _ in self.parameters()}
        missing = sorted(params.keys() - state.keys())
        unexpected = sorted(state.keys() - params.keys())
        if missing:
            raise ValueError(f"state dict is missing parameter {missing[0]!r} (missing: {missing})")
        if unexpected:
            raise ValueError(
                f"state dict has unexpected key {unexpected[0]!r} (unexpected: {unexpected})"
            )
        for name, param in params.items():
            value = np.asarray(state[name])
            if value.shape != param.shape:
                raise ValueError(
                    f"state dict entry {name!r} has shape {value.shape}, "
                    f"but the model expects {param.shape}"
                )
        for name, param in params.items():
            np.copyto(param, state[name], casting="same_kind")

    def __repr__(self) -> str:
        inner = ",\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


def _is_int(value) -> bool:
    # bool is an int subclass, but `True` hidden units is certainly a mistake.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _validate_mlp_arguments(input_size, hidden_sizes, num_classes, dropout) -> None:
    if not _is_int(input_size) or input_size < 1:
        raise ValueError(f"input_size must be a positive integer, got {input_size!r}")
    if isinstance(hidden_sizes, (str, bytes)) or not hasattr(hidden_sizes, "__iter__"):
        raise ValueError(f"hidden_sizes must be a list of positive integers, got {hidden_sizes!r}")
    for size in hidden_sizes:
        if not _is_int(size) or size < 1:
            raise ValueError(
                f"hidden_sizes must be a list of positive integers, got {list(hidden_sizes)!r}"
            )
    if not _is_int(num_classes) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if (
        not isinstance(dropout, numbers.Real)
        or isinstance(dropout, bool)
        or not 0.0 <= dropout < 1.0
    ):
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")


def build_mlp(
    input_size: int,
    hidden_sizes: list[int],
    num_classes: int,
    dropout: float,
    rng: np.random.Generator,
    dtype=np.float32,
) -> Sequential:
    """Build ``Flatten -> [Linear -> ReLU -> Dropout] * len(hidden_sizes) -> Linear``.

    Dropout layers are left out when ``dropout == 0``. All weights and dropout masks draw from
    ``rng``, so the same seed gives the same network. ``dtype`` exists for float64 gradient
    checks; training uses the float32 default.
    """
    _validate_mlp_arguments(input_size, hidden_sizes, num_classes, dropout)
    layers = [Flatten()]
    fan_in = input_size
    for width in hidden_sizes:
        layers.append(Linear(fan_in, width, rng, dtype=dtype))
        layers.append(ReLU())
        if dropout > 0:
            layers.append(Dropout(dropout, rng))
        fan_in = width
    layers.append(Linear(fan_in, num_classes, rng, dtype=dtype))
    return Sequential(layers)


_MLP_KEYS = ("input_size", "hidden_sizes", "num_classes", "dropout")


def mlp_architecture(
    input_size: int, hidden_sizes: list[int], num_classes: int, dropout: float
) -> dict:
    """Describe an MLP as a JSON-able dict; :func:`build_from_architecture` rebuilds it."""
    _validate_mlp_arguments(input_size, hidden_sizes, num_classes, dropout)
    return {
        "type": "mlp",
        "input_size": int(input_size),
        "hidden_sizes": [int(size) for size in hidden_sizes],
        "num_classes": int(num_classes),
        "dropout": float(dropout),
    }


def build_from_architecture(arch: dict, rng: np.random.Generator) -> Sequential:
    """Build the network an architecture dict (from :func:`mlp_architecture`) describes.

    Raises ``ValueError`` naming the problem for a non-dict, an unknown ``type``, or a missing,
    unexpected or invalid key.
    """
    if not isinstance(arch, dict):
        raise ValueError(f"architecture must be a dict, got {type(arch).__name__}")
    if "type" not in arch:
        raise ValueError("architecture is missing key 'type'")
    if arch["type"] != "mlp":
        raise ValueError(f"unknown architecture type {arch['type']!r}; supported: 'mlp'")
    for key in _MLP_KEYS:
        if key not in arch:
            raise ValueError(f"architecture of type 'mlp' is missing key {key!r}")
    unexpected = sorted(set(arch) - set(_MLP_KEYS) - {"type"})
    if unexpected:
        raise ValueError(f"architecture of type 'mlp' has unexpected keys {unexpected}")
    return build_mlp(
        arch["input_size"], arch["hidden_sizes"], arch["num_classes"], arch["dropout"], rng
    )
