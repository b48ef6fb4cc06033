"""Sequential container, the MLP architecture config, and the builder from one to the other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numpynet.nn.layers import BatchNorm, Dropout, Flatten, Linear, ReLU


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
    and ``architecture.json`` is read back through :class:`numpynet.records.Architecture`.
    """

    input_size: int
    hidden_sizes: tuple[int, ...]
    num_classes: int
    dropout: float
    # "none", or "batch": batch normalization after each hidden Linear. Last and defaulted, so
    # configs built positionally still work.
    normalization: str = "none"

    def __post_init__(self):
        # A conversion, not a check: a list (as params.yaml gives) becomes a tuple, so the frozen
        # config stays hashable and equals the config read back from disk.
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))


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
