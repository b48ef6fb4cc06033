"""Sequential container, the MLP architecture config, and the builder from one to the other."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields

import numpy as np

from numpynet.nn.layers import BatchNorm, Dropout, Flatten, Linear, ReLU

# What MLPConfig.normalization may be: none, or batch normalization after each hidden Linear.
NORMALIZATIONS = ("none", "batch")


class Sequential:
    """Apply layers one after another; backpropagate through them in reverse order."""

    def __init__(self, layers):
        self.layers = list(layers)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Run ``x`` (N, ...) through every layer; ``training`` switches dropout on.

        It also makes batch normalization use (and update) the batch's statistics. For an MLP
        the result is the logits, (N, num_classes).
        """
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Backpropagate ``grad`` (shape of the output); return the input gradient (N, ...).

        With ``need_input_grad`` false, as in training, backpropagation stops at the first layer
        with parameters, which skips its input gradient (the largest product of the pass), and
        None is returned.
        """
        if need_input_grad:
            for layer in reversed(self.layers):
                grad = layer.backward(grad)
            return grad
        first = next((i for i, layer in enumerate(self.layers) if layer.parameters()), None)
        if first is None:
            return None
        for layer in reversed(self.layers[first + 1 :]):
            grad = layer.backward(grad)
        self.layers[first].backward(grad, need_input_grad=False)
        return None

    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Return ``(qualified_name, param, grad)`` triples, e.g. ``"layers.1.weight"``.

        The arrays are the live ones, so an optimizer holding them updates the model directly.
        """
        return [
            (f"layers.{index}.{name}", param, grad)
            for index, layer in enumerate(self.layers)
            for name, param, grad in layer.parameters()
        ]

    def buffers(self) -> list[tuple[str, np.ndarray]]:
        """Return ``(qualified_name, array)`` pairs, e.g. ``"layers.2.running_mean"``.

        Buffers are state that is saved but not trained (batch normalization's running
        statistics); layers without a ``buffers`` method have none.
        """
        return [
            (f"layers.{index}.{name}", array)
            for index, layer in enumerate(self.layers)
            for name, array in (layer.buffers() if hasattr(layer, "buffers") else [])
        ]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return a copy of every parameter and buffer, keyed by qualified name."""
        state = {name: param.copy() for name, param, _ in self.parameters()}
        state.update((name, array.copy()) for name, array in self.buffers())
        return state

    def load_state_dict(self, state: dict) -> None:
        """Copy ``state`` into the parameters and buffers in place, after checking names and shapes.

        In-place copies keep any optimizer that already holds the parameter arrays valid.
        Nothing is modified unless every key and shape matches.
        """
        params = {name: param for name, param, _ in self.parameters()}
        buffers = dict(self.buffers())
        params.update(buffers)
        missing = sorted(params.keys() - state.keys())
        unexpected = sorted(state.keys() - params.keys())
        if missing:
            kind = "buffer" if missing[0] in buffers else "parameter"
            raise ValueError(f"state dict is missing {kind} {missing[0]!r} (missing: {missing})")
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


@dataclass(frozen=True)
class MLPConfig:
    """The architecture of an MLP, stored beside its weights so a saved model can be rebuilt.

    Values are trusted as given: ``params.yaml`` is validated once, in :mod:`numpynet.config`,
    and a file read back from disk goes through :meth:`from_dict`.
    """

    input_size: int
    hidden_sizes: tuple[int, ...]
    num_classes: int
    dropout: float
    # Last and defaulted, so configs built positionally, and files written before it, still work.
    normalization: str = "none"

    def __post_init__(self):
        # A conversion, not a check: a list (as params.yaml gives) becomes a tuple, so the frozen
        # config stays hashable and equals the config read back from disk.
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))

    def to_dict(self) -> dict:
        """Return the config as plain JSON types (a list for ``hidden_sizes``)."""
        # A NumPy integer (say, from an array shape) is not JSON-serialisable, and a dropout of
        # 0 should be written as 0.0 whichever number type it arrived as.
        data = {
            "input_size": int(self.input_size),
            "hidden_sizes": [int(size) for size in self.hidden_sizes],
            "num_classes": int(self.num_classes),
            "dropout": float(self.dropout),
        }
        # Written only when it is not the default, which from_dict assumes when the key is
        # absent: a model without normalization keeps the exact architecture.json (and so the
        # DVC hash) that it had before the option existed.
        if self.normalization != "none":
            data["normalization"] = str(self.normalization)
        return data

    @classmethod
    def from_dict(cls, data) -> MLPConfig:
        """Rebuild a config from :meth:`to_dict` output that was read back from a file.

        A file is an edge where anything may arrive, so this checks what the constructor
        trusts: raises ``ValueError`` naming the key for a missing or unknown key, a value of
        the wrong type, a size below 1 (building would divide by zero), a dropout outside
        [0, 1) or a normalization not in ``NORMALIZATIONS``. A key with a default (only
        ``normalization``, which files written before it lack) may be absent.
        """
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        names = [field.name for field in fields(cls)]
        for field in fields(cls):
            if field.name not in data and field.default is MISSING:
                raise ValueError(f"missing key {field.name!r}")
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (known: {names})")
        for name in ("input_size", "num_classes"):
            if not _is_positive_int(data[name]):
                raise ValueError(f"key {name!r} must be an integer >= 1, got {data[name]!r}")
        hidden_sizes = data["hidden_sizes"]
        if not isinstance(hidden_sizes, list) or not all(map(_is_positive_int, hidden_sizes)):
            raise ValueError(
                f"key 'hidden_sizes' must be a list of integers >= 1, got {hidden_sizes!r}"
            )
        dropout = data["dropout"]
        is_number = isinstance(dropout, (int, float)) and not isinstance(dropout, bool)
        if not is_number or not 0 <= dropout < 1:
            raise ValueError(f"key 'dropout' must be a number in [0, 1), got {dropout!r}")
        normalization = data.get("normalization", "none")
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"key 'normalization' must be one of {list(NORMALIZATIONS)}, got {normalization!r}"
            )
        return cls(
            data["input_size"], tuple(hidden_sizes), data["num_classes"], float(dropout),
            normalization,
        )


def _is_positive_int(value) -> bool:
    # bool is an int subclass, and JSON's `true` is no layer width.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def build_mlp(config: MLPConfig, rng: np.random.Generator, dtype=np.float32) -> Sequential:
    """Build ``Flatten -> [Linear -> BatchNorm -> ReLU -> Dropout] * len(hidden_sizes) -> Linear``.

    BatchNorm layers are there only when ``config.normalization == "batch"``, and Dropout layers
    only when ``config.dropout > 0``. The weights, then (in training) the dropout masks, draw
    from ``rng``, so the same seed gives the same network and the same run; BatchNorm draws
    nothing, so it leaves the Linear weights of a seed as they are. ``dtype`` exists for float64
    gradient checks; training uses float32.
    """
    layers = [Flatten()]
    fan_in = config.input_size
    for width in config.hidden_sizes:
        layers.append(Linear(fan_in, width, rng, dtype=dtype))
        if config.normalization == "batch":
            layers.append(BatchNorm(width, dtype=dtype))
        layers.append(ReLU())
        if config.dropout > 0:
            layers.append(Dropout(config.dropout, rng))
        fan_in = width
    layers.append(Linear(fan_in, config.num_classes, rng, dtype=dtype))
    return Sequential(layers)
