"""Optimizers that update parameter arrays in place.

Each optimizer takes the ``(name, param, grad)`` triples from ``model.parameters()`` and keeps
its state (momentum, moment estimates) in arrays allocated once, updated with ``out=`` and
in-place operators so a step allocates no parameter-sized temporaries. The learning rate is an
argument of ``step`` so that a schedule can drive it.

Weight decay applies only to parameters with ``ndim >= 2`` (weight matrices): decaying biases
buys no regularization and can only hurt the fit.

Hyperparameters and learning rates are used as given: ``params.yaml`` is validated once, by
:mod:`numpynet.config`, before anything runs.
"""

from __future__ import annotations

import numpy as np


class _Optimizer:
    """Shared bookkeeping: the parameter list, the step counter and state (de)serialization."""

    # Names of the per-parameter state arrays a subclass keeps, e.g. ("exp_avg", "exp_avg_sq").
    buffer_names: tuple[str, ...] = ()

    def __init__(self, parameters):
        self.names: list[str] = []
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        # Checked once per optimizer because both mistakes would go unnoticed: a repeated name
        # makes two parameters share one state_dict key, and a smaller gradient broadcasts.
        for name, param, grad in parameters:
            if name in self.names:
                raise ValueError(f"parameter name {name!r} appears twice")
            if grad.shape != param.shape:
                raise ValueError(
                    f"gradient of {name!r} has shape {grad.shape}, parameter has {param.shape}"
                )
            self.names.append(name)
            self.params.append(param)
            self.grads.append(grad)
        # One scratch array per parameter holds intermediate terms of the update.
        self._scratch = [np.empty_like(param) for param in self.params]
        self.buffers: dict[str, list[np.ndarray]] = {
            buffer: [np.zeros_like(param) for param in self.params]
            for buffer in self.buffer_names
        }
        self.step_count = 0

    @staticmethod
    def _decays(param: np.ndarray) -> bool:
        return param.ndim >= 2

    def state_dict(self) -> dict:
        """Return ``{"step": int, "<buffer>.<param name>": array copy, ...}``."""
        state: dict = {"step": self.step_count}
        for buffer, arrays in self.buffers.items():
            for name, array in zip(self.names, arrays):
                state[f"{buffer}.{name}"] = array.copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore state saved by :meth:`state_dict` (checks keys and shapes, copies in place)."""
        expected = {"step"} | {
            f"{buffer}.{name}" for buffer in self.buffers for name in self.names
        }
        missing = sorted(expected - state.keys())
        unexpected = sorted(state.keys() - expected)
        if missing:
            raise ValueError(f"optimizer state is missing key {missing[0]!r} (missing: {missing})")
        if unexpected:
            raise ValueError(
                f"optimizer state has unexpected key {unexpected[0]!r} (unexpected: {unexpected})"
            )
        # "step" comes back as a 0-d array when the state went through np.savez.
        step = np.asarray(state["step"])
        if step.shape != () or not np.issubdtype(step.dtype, np.integer) or step < 0:
            raise ValueError(
                f"optimizer state 'step' must be an integer >= 0, got {state['step']!r}"
            )
        for buffer, arrays in self.buffers.items():
            for name, array in zip(self.names, arrays):
                key = f"{buffer}.{name}"
                value = np.asarray(state[key])
                if value.shape != array.shape:
                    raise ValueError(
                        f"optimizer state {key!r} has shape {value.shape}, expected {array.shape}"
                    )
        for buffer, arrays in self.buffers.items():
            for name, array in zip(self.names, arrays):
                np.copyto(array, state[f"{buffer}.{name}"], casting="same_kind")
        self.step_count = int(step)


class SGD(_Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and coupled L2 decay.

    Follows PyTorch's ``torch.optim.SGD`` with ``dampening=0``::

        g = grad + weight_decay * p            # weights only
        buf = g                                # first step
        buf = momentum * buf + g               # later steps
        update = g + momentum * buf if nesterov else buf   (or g when momentum == 0)
        p -= lr * update
    """

    def __init__(self, parameters, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.buffer_names = ("momentum_buffer",) if momentum > 0 else ()
        super().__init__(parameters)

    def step(self, lr: float) -> None:
        """Apply one update with the gradients currently in the grad arrays."""
        first_step = self.step_count == 0
        momentum = self.momentum
        velocities = self.buffers.get("momentum_buffer", [None] * len(self.params))
        for param, grad, scratch, velocity in zip(
            self.params, self.grads, self._scratch, velocities
        ):
            direction = grad
            if self.weight_decay and self._decays(param):
                np.multiply(param, self.weight_decay, out=scratch)
                scratch += grad
                direction = scratch
            if velocity is None:
                np.multiply(direction, lr, out=scratch)
                param -= scratch
                continue
            if first_step:
                np.copyto(velocity, direction)
            else:
                velocity *= momentum
                velocity += direction
            if self.nesterov:
                # p -= lr * (direction + momentum * velocity), split in two so the scratch
                # array (which may hold `direction`) is reused without a temporary.
                np.multiply(direction, lr, out=scratch)
                param -= scratch
                np.multiply(velocity, lr * momentum, out=scratch)
                param -= scratch
            else:
                np.multiply(velocity, lr, out=scratch)
                param -= scratch
        self.step_count += 1


class AdamW(_Optimizer):
    """Adam with decoupled weight decay, as PyTorch's ``torch.optim.AdamW``::

        p *= 1 - lr * weight_decay             # weights only
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)
    """

    buffer_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, parameters, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        super().__init__(parameters)

    def step(self, lr: float) -> None:
        """Apply one update with the gradients currently in the grad arrays."""
        self.step_count += 1
        t = self.step_count
        beta1, beta2 = self.beta1, self.beta2
        # Bias corrections undo the zero initialization of m and v during the first steps.
        correction1 = 1.0 - beta1**t
        correction2 = 1.0 - beta2**t
        for param, grad, scratch, m, v in zip(
            self.params, self.grads, self._scratch,
            self.buffers["exp_avg"], self.buffers["exp_avg_sq"],
        ):
            if self.weight_decay and self._decays(param):
                param *= 1.0 - lr * self.weight_decay
            m *= beta1
            np.multiply(grad, 1.0 - beta1, out=scratch)
            m += scratch
            v *= beta2
            np.multiply(grad, grad, out=scratch)
            scratch *= 1.0 - beta2
            v += scratch
            # scratch <- sqrt(v_hat) + eps, then the step lr * m_hat / scratch.
            np.divide(v, correction2, out=scratch)
            np.sqrt(scratch, out=scratch)
            scratch += self.eps
            np.divide(m, scratch, out=scratch)
            scratch *= lr / correction1
            param -= scratch
