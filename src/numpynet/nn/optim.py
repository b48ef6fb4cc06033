"""Optimizers that update parameter arrays in place.

Each optimizer takes the ``(name, param, grad)`` triples from ``model.parameters()`` and keeps
its state (momentum, moment estimates) in arrays allocated once, updated with ``out=`` and
in-place operators so a step allocates no parameter-sized temporaries. The learning rate is an
argument of ``step`` so that a schedule can drive it.

Weight decay applies only to parameters with ``ndim >= 2`` (weight matrices): decaying biases
buys no regularization and can only hurt the fit.

Hyperparameters and learning rates are used as given: ``params.yaml`` is validated once, by
:mod:`numpynet.config`, before anything runs.

Speed: an update is a dozen element-wise passes over every parameter, as much work per step as a
third of the matrix products, and NumPy runs each pass on one core. So each large parameter is cut
into :data:`UPDATE_THREADS` contiguous shards updated by as many threads at once (NumPy releases
the interpreter lock inside its loops). Every element goes through the same operations whichever
thread holds it, so the bytes do not depend on the thread count.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from numpynet.backend import BLAS_THREADS
from numpynet.portable_math import power

# As many as the BLAS threads the backend pins: the cores the matrix products use.
UPDATE_THREADS = BLAS_THREADS
# A parameter smaller than this is updated whole by one thread: cutting it would cost more in
# thread hand-offs than the shards save.
MIN_SHARDED_SIZE = 1 << 16
# Each thread runs all the passes of an update over one chunk of this many elements before
# moving on, so that the chunk's five arrays stay in cache between passes instead of streaming
# from memory a dozen times (a large network's optimizer state does not fit in cache).
CHUNK_SIZE = 1 << 18


class _Optimizer:
    """Shared bookkeeping: the parameter list, the step counter and state (de)serialization."""

    # Names of the per-parameter state arrays a subclass keeps, e.g. ("exp_avg", "exp_avg_sq").
    buffer_names: tuple[str, ...] = ()

    def __init__(self, parameters, threads: int = UPDATE_THREADS):
        if not (isinstance(threads, int) and threads >= 1):
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
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
            # Updates go through flat views, which only a contiguous array has.
            if not (param.flags.c_contiguous and grad.flags.c_contiguous):
                raise ValueError(f"parameter {name!r} and its gradient must be C-contiguous")
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
        self._shards = self._split(threads)
        self._pool = ThreadPoolExecutor(threads - 1) if threads > 1 else None

    def _split(self, threads: int) -> list[list[tuple]]:
        """Per thread, ``(decays, param, grad, scratch, *buffers)`` tuples of flat views."""
        shards: list[list[tuple]] = [[] for _ in range(threads)]
        load = [0] * threads
        for index, param in enumerate(self.params):
            arrays = [param, self.grads[index], self._scratch[index]]
            arrays += [self.buffers[buffer][index] for buffer in self.buffer_names]
            # reshape(-1) of a C-contiguous array is a view, so the shards write into `param`.
            flat = [array.reshape(-1) for array in arrays]
            if param.size < MIN_SHARDED_SIZE:
                least = load.index(min(load))
                shards[least].append((self._decays(param), *flat))
                load[least] += param.size
                continue
            bounds = [param.size * thread // threads for thread in range(threads + 1)]
            for thread, (start, stop) in enumerate(zip(bounds, bounds[1:])):
                for chunk in range(start, stop, CHUNK_SIZE):
                    end = min(chunk + CHUNK_SIZE, stop)
                    shards[thread].append((self._decays(param), *(a[chunk:end] for a in flat)))
                load[thread] += stop - start
        return shards

    def _update_all(self, update) -> None:
        """Run ``update(shard)`` on every thread's shard list, this thread taking the first."""
        if self._pool is None:
            for shard in self._shards:
                update(shard)
            return
        pending = [self._pool.submit(update, shard) for shard in self._shards[1:]]
        try:
            update(self._shards[0])
        finally:
            # Even when this thread's part fails (or is interrupted), no worker may still be
            # writing parameters once step() has returned or raised.
            wait(pending)
        for future in pending:
            future.result()

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
                 weight_decay: float = 0.0, threads: int = UPDATE_THREADS):
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.buffer_names = ("momentum_buffer",) if momentum > 0 else ()
        super().__init__(parameters, threads)

    def step(self, lr: float) -> None:
        """Apply one update with the gradients currently in the grad arrays."""
        first_step = self.step_count == 0
        momentum, weight_decay, nesterov = self.momentum, self.weight_decay, self.nesterov

        def update(shard):
            for decays, param, grad, scratch, *velocity in shard:
                direction = grad
                if weight_decay and decays:
                    np.multiply(param, weight_decay, out=scratch)
                    scratch += grad
                    direction = scratch
                if not velocity:
                    np.multiply(direction, lr, out=scratch)
                    param -= scratch
                    continue
                (velocity,) = velocity
                if first_step:
                    np.copyto(velocity, direction)
                else:
                    velocity *= momentum
                    velocity += direction
                if nesterov:
                    # p -= lr * (direction + momentum * velocity), split in two so the scratch
                    # array (which may hold `direction`) is reused without a temporary.
                    np.multiply(direction, lr, out=scratch)
                    param -= scratch
                    np.multiply(velocity, lr * momentum, out=scratch)
                    param -= scratch
                else:
                    np.multiply(velocity, lr, out=scratch)
                    param -= scratch

        self._update_all(update)
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
                 weight_decay: float = 0.01, threads: int = UPDATE_THREADS):
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        super().__init__(parameters, threads)

    def step(self, lr: float) -> None:
        """Apply one update with the gradients currently in the grad arrays."""
        self.step_count += 1
        t = self.step_count
        beta1, beta2 = self.beta1, self.beta2
        # Bias corrections undo the zero initialization of m and v during the first steps.
        # power, not **: Python's float ** is the platform's pow.
        correction1 = 1.0 - power(beta1, t)
        correction2 = 1.0 - power(beta2, t)
        # lr * m_hat / (sqrt(v_hat) + eps) with sqrt(correction2) moved out of the denominator:
        # one pass less per step than dividing v (or its root) by the correction.
        root2 = math.sqrt(correction2)
        step_size = lr * root2 / correction1
        eps = self.eps * root2
        decay = 1.0 - lr * self.weight_decay

        def update(shard):
            for decays, param, grad, scratch, m, v in shard:
                if decays and decay != 1.0:
                    param *= decay
                m *= beta1
                np.multiply(grad, 1.0 - beta1, out=scratch)
                m += scratch
                v *= beta2
                np.multiply(grad, grad, out=scratch)
                scratch *= 1.0 - beta2
                v += scratch
                np.sqrt(v, out=scratch)
                scratch += eps
                np.divide(m, scratch, out=scratch)
                scratch *= step_size
                param -= scratch

        self._update_all(update)
