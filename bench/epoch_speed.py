"""Seconds per training epoch: numpynet in each numeric mode against PyTorch on the CPU, side by
side in one run.

    pip install torch==2.13.0          # benchmark-only: never a dependency of numpynet
    python bench/epoch_speed.py                        # all cases, 5 runs each, every mode
    python bench/epoch_speed.py --repeats 3 --cases mnist-128 cifar10-512
    python bench/epoch_speed.py --modes avx2 exact     # some sides only (torch is one)

numpynet computes in one of three numeric modes (see :mod:`numpynet.backend`), and each is a side
of its own here:

* ``avx2``: OpenBLAS's Haswell kernel and NumPy's loops capped at X86_V3, on every x86-64 CPU
  with AVX2 and FMA (the default mode);
* ``avx512``: the SkylakeX kernel and NumPy's AVX-512 loops, only on CPUs with AVX-512 (its
  columns say "n/a" elsewhere);
* ``exact``: matrix products computed exactly on integers in float64
  (:func:`numpynet.matmul.exact_matmul`) on OpenBLAS's own kernel choice.

All sides train the same network (hidden sizes, dropout, optimizer and its settings from
params.yaml for the dataset named by the case; neither side adds params.yaml's batch
normalization or label smoothing) with the same batch size, float32, the same number of threads
(numpynet's pinned BLAS thread count) and the same work per epoch: shuffle, gather each batch,
forward, softmax cross-entropy, backward, optimizer step, the running loss and accuracy, then the
validation pass. PyTorch runs eager with its stock ``torch.optim.AdamW``/``SGD``, weight decay on
weight matrices only, as numpynet does. The data are random numbers of the real datasets' shapes
(MNIST: 54,000 training and 6,000 validation images of 784 values; CIFAR-10: 45,000 and 5,000 of
3,072): the work does not depend on the values.

Exact mode normally keeps OpenBLAS's own thread count, every core of the machine in real runs;
here its workers get ``OPENBLAS_NUM_THREADS`` = :data:`numpynet.backend.BLAS_THREADS` before
pinning, so that every column computes on the same number of cores and the ratios compare
engines, not core counts. On a machine with more cores a real exact run is faster than its
column here.

Every measurement is a fresh process (numpynet must pin its backend before NumPy loads, a mode
cannot change after that, and two thread pools in one process would disturb each other); the
order of the sides reverses from one repeat to the next so that a slow spell of the machine hits
all of them. Each process warms up on a few batches, then times one full epoch and an evaluation
pass over 10,000 images. The tables show medians, with the fastest and slowest run in brackets:

* seconds per epoch of each side, and the ratios of medians avx2/PyTorch, avx512/avx2 and
  exact/avx2. "floor" beside avx2/PyTorch is the ratio an avx2 epoch would have if its matrix
  products ran at avx2's peak and nothing else took time: no engine on this BLAS can go below
  it. "floor" beside exact/avx2 is this CPU's float32 peak (avx2) over its float64 peak (the
  dgemm on integers of exact mode): the ratio an exact epoch would have against an avx2 one if
  the float64 product were all it cost and the float32 one all avx2's. The work outside the
  products, the same in both modes, pulls a measured ratio below it; the conversions to and from
  integers push it up.
* GFLOP/s of each side, counting the multiply-adds all sides do (forward, weight gradients, input
  gradients of all but the first layer, the validation forward pass), and evaluation images/s.
  The peak rows multiply two 2048x2048 matrices: float32 (sgemm) in each kernel class and in
  PyTorch; in exact mode both the float64 dgemm of integer matrices (OpenBLAS's own kernel, on
  the same threads) and exact_matmul itself, conversions included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "src"))

from numpynet.backend import (  # noqa: E402  (needs the path above; loads no NumPy)
    BLAS_THREADS,
    EXACT,
    NUMERIC_MODES,
    runnable_modes,
)

SHAPES = {  # dataset: (input size, training images, validation images)
    "mnist": (784, 54_000, 6_000),
    "cifar10": (3072, 45_000, 5_000),
}
NUM_CLASSES = 10
EVAL_IMAGES = 10_000
EVAL_BATCH = 1000
WARMUP_BATCHES = 20
ALL_CASES = ("mnist-128", "mnist-512", "cifar10-128", "cifar10-512")
TORCH = "torch"
SIDES = (*NUMERIC_MODES, TORCH)  # the table's column order
LABELS = {"avx2": "avx2", "avx512": "avx512", EXACT: "exact", TORCH: "PyTorch"}
PEAK_SIZE = 2048
# A peak runs products for at least this long (and at least 3 of them): a fixed count would take
# seconds for sgemm on a big machine and most of a minute for exact_matmul on a small one.
PEAK_SECONDS = 1.5
MAX_PEAK_RUNS = 3


def case_settings(case: str) -> dict:
    """The dataset, batch size, layer sizes and optimizer settings of a case like ``mnist-128``."""
    from numpynet.config import load_params

    dataset, batch = case.rsplit("-", 1)
    train = load_params(PROJECT / "params.yaml").train_for(dataset)
    input_size, train_images, val_images = SHAPES[dataset]
    return {
        "batch_size": int(batch),
        "sizes": [input_size, *train.hidden_sizes, NUM_CLASSES],
        "train_images": train_images,
        "val_images": val_images,
        "train": train,
    }


def training_flops(sizes: list[int], train_images: int, val_images: int) -> float:
    """Floating-point operations of one epoch's matrix products (2 per multiply-add)."""
    forward = sum(2 * a * b for a, b in zip(sizes, sizes[1:]))
    input_grads = sum(2 * a * b for a, b in zip(sizes[1:], sizes[2:]))
    return train_images * (2 * forward + input_grads) + val_images * forward


def pinned_numpy(mode: str):
    """Pin numeric ``mode`` in this (fresh) process, then load NumPy; returns the module."""
    from numpynet.backend import finish_pinning, pin_backend

    if mode == EXACT:
        # Exact mode leaves the thread count to OpenBLAS (every core); the bench gives it the
        # others' count so that the columns differ by engine only (see the module docstring).
        os.environ["OPENBLAS_NUM_THREADS"] = str(BLAS_THREADS)
    pin_backend(mode)
    import numpy as np

    finish_pinning()
    return np


def blas_setup() -> dict:
    """The OpenBLAS kernel and thread count this process computes with, to print beside the
    table: the proof that each mode ran the kernel and the threads it claims."""
    # backend_provenance leaves both out in exact mode (they change no bit there), so ask
    # OpenBLAS through the backend's own helpers.
    import ctypes

    from numpynet.backend import _openblas, _openblas_call

    lib = _openblas()
    if lib is None:
        return {"kernel": "not OpenBLAS", "threads": None}
    core = _openblas_call(lib, "openblas_get_corename", ctypes.c_char_p)
    threads = _openblas_call(lib, "openblas_get_num_threads", ctypes.c_int)
    return {"kernel": core.decode() if core else "unknown", "threads": threads}


def numpynet_worker(case: str, mode: str) -> dict:
    np = pinned_numpy(mode)

    from numpynet.evaluation import evaluate_model
    from numpynet.nn.model import MLPConfig, build_mlp
    from numpynet.training.loop import LoopSettings, RandomStreams, Reports, fit, make_optimizer

    settings = case_settings(case)
    train, sizes, batch = settings["train"], settings["sizes"], settings["batch_size"]
    rng = np.random.default_rng(0)

    def images(count):
        x = rng.standard_normal((count, sizes[0]), dtype=np.float32)
        return x, rng.integers(0, NUM_CLASSES, count).astype(np.int64)

    train_set, val_set = images(settings["train_images"]), images(settings["val_images"])
    test_set = images(EVAL_IMAGES)
    config = MLPConfig(sizes[0], tuple(sizes[1:-1]), NUM_CLASSES, train.dropout)
    model = build_mlp(config, rng)
    optimizer = make_optimizer(
        train.optimizer, model.parameters(), momentum=train.momentum, nesterov=train.nesterov,
        betas=train.betas, eps=train.eps, weight_decay=train.weight_decay,
    )

    loop = LoopSettings(
        epochs=1, batch_size=batch, learning_rate=lambda step: train.lr, eval_batch_size=EVAL_BATCH
    )
    quiet = Reports(log=lambda message: None, show_progress=False)

    def epoch(data):
        fit(model, optimizer, data, val_set, loop, RandomStreams(rng), reports=quiet)

    warmup = WARMUP_BATCHES * batch
    epoch((train_set[0][:warmup], train_set[1][:warmup]))
    started = time.perf_counter()
    epoch(train_set)
    epoch_s = time.perf_counter() - started
    started = time.perf_counter()
    evaluate_model(model, *test_set, batch_size=EVAL_BATCH)
    return {"epoch_s": epoch_s, "eval_s": time.perf_counter() - started}


def torch_worker(case: str) -> dict:
    import torch

    torch.set_num_threads(BLAS_THREADS)
    torch.manual_seed(0)
    settings = case_settings(case)
    train, sizes, batch = settings["train"], settings["sizes"], settings["batch_size"]
    layers = []
    for fan_in, width in zip(sizes[:-2], sizes[1:-1]):
        layers += [torch.nn.Linear(fan_in, width), torch.nn.ReLU()]
        if train.dropout > 0:
            layers.append(torch.nn.Dropout(train.dropout))
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    model = torch.nn.Sequential(*layers)
    weights = [p for p in model.parameters() if p.ndim >= 2]
    biases = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": weights, "weight_decay": train.weight_decay},
              {"params": biases, "weight_decay": 0.0}]
    if train.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=train.lr, betas=tuple(train.betas), eps=train.eps)
    else:
        optimizer = torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum,
                                    nesterov=train.nesterov)
    loss_fn = torch.nn.CrossEntropyLoss()

    def images(count):
        return torch.randn(count, sizes[0]), torch.randint(0, NUM_CLASSES, (count,))

    train_set, val_set = images(settings["train_images"]), images(settings["val_images"])
    test_set = images(EVAL_IMAGES)

    def evaluate(x, y):
        model.eval()
        loss = correct = 0.0
        with torch.no_grad():
            for start in range(0, x.shape[0], EVAL_BATCH):
                logits = model(x[start:start + EVAL_BATCH])
                labels = y[start:start + EVAL_BATCH]
                loss += loss_fn(logits, labels).item() * labels.shape[0]
                correct += (logits.argmax(1) == labels).sum().item()
        return loss / x.shape[0], correct / x.shape[0]

    def epoch(x, y):
        model.train()
        order = torch.randperm(x.shape[0])
        loss_sum = correct = 0.0
        for start in range(0, x.shape[0], batch):
            index = order[start:start + batch]
            inputs, labels = x[index], y[index]
            optimizer.zero_grad()
            logits = model(inputs)
            loss = loss_fn(logits, labels)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * labels.shape[0]
            correct += (logits.argmax(1) == labels).sum().item()
        evaluate(*val_set)

    warmup = WARMUP_BATCHES * batch
    epoch(train_set[0][:warmup], train_set[1][:warmup])
    started = time.perf_counter()
    epoch(*train_set)
    epoch_s = time.perf_counter() - started
    started = time.perf_counter()
    evaluate(*test_set)
    return {"epoch_s": epoch_s, "eval_s": time.perf_counter() - started}


def product_rate(multiply) -> float:
    """GFLOP/s of ``multiply``, a product of two PEAK_SIZE x PEAK_SIZE matrices."""
    for _ in range(2):  # thread pools up, buffers allocated
        multiply()
    count, started = 0, time.perf_counter()
    while count < 3 or time.perf_counter() - started < PEAK_SECONDS:
        multiply()
        count += 1
    return 2 * PEAK_SIZE**3 * count / (time.perf_counter() - started) / 1e9


def peak_worker(side: str, mode: str | None) -> dict:
    """The peak GFLOP/s of a side: sgemm in a kernel class and in PyTorch; in exact mode the
    float64 dgemm of integer matrices and exact_matmul itself."""
    if side == TORCH:
        import torch

        torch.set_num_threads(BLAS_THREADS)
        a = torch.randn(PEAK_SIZE, PEAK_SIZE)
        return {"sgemm": product_rate(lambda: a @ a)}
    np = pinned_numpy(mode)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((PEAK_SIZE, PEAK_SIZE), dtype=np.float32)
    if mode != EXACT:
        return {"sgemm": product_rate(lambda: a @ a), **blas_setup()}
    from numpynet.matmul import exact_bits, exact_matmul

    # The integers exact_matmul hands to the BLAS: as many bits as a 2048-term sum allows. NumPy's
    # own @ (not numpynet's matmul) so that this is the bare dgemm.
    integers = np.rint(np.ldexp(rng.uniform(-1.0, 1.0, a.shape), exact_bits(PEAK_SIZE)))
    return {"dgemm": product_rate(lambda: integers @ integers),
            "exact_matmul": product_rate(lambda: exact_matmul(a, a)), **blas_setup()}


def run_worker(side: str, case: str) -> dict:
    what = ["--peak"] if case == "peak" else ["--cases", case]
    who = ["--worker", TORCH] if side == TORCH else ["--worker", "numpynet", "--mode", side]
    command = [sys.executable, __file__, *who, *what]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT)
    if result.returncode != 0:
        sys.exit(f"the {side} worker for {case} failed:\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    runnable = runnable_modes()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5,
                        help=f"runs of each side per case (and up to {MAX_PEAK_RUNS} of each peak)")
    parser.add_argument("--cases", nargs="+", default=list(ALL_CASES), choices=ALL_CASES)
    parser.add_argument("--modes", nargs="+", default=[*runnable, TORCH], choices=SIDES,
                        help="numeric modes to measure, and torch (default: every mode this CPU "
                             f"runs, and torch: {' '.join([*runnable, TORCH])})")
    parser.add_argument("--worker", choices=["numpynet", TORCH], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=NUMERIC_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--peak", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.worker == "numpynet" and args.mode is None:
            parser.error("--worker numpynet needs --mode")
        side = args.mode if args.worker == "numpynet" else TORCH
        if args.peak:
            result = peak_worker(args.worker, args.mode)
        elif side == TORCH:
            result = torch_worker(args.cases[0])
        else:
            result = numpynet_worker(args.cases[0], side)
        print(json.dumps(result))
        return
    unrunnable = [mode for mode in args.modes if mode != TORCH and mode not in runnable]
    if unrunnable:
        print(f"this CPU cannot run {', '.join(unrunnable)}: shown as n/a", file=sys.stderr)
    sides = [side for side in SIDES if side in args.modes and side not in unrunnable]
    if not sides:
        sys.exit("nothing to measure")
    # The exact floor needs avx2's sgemm peak even when avx2's epochs are not measured.
    peak_sides = [side for side in SIDES if side in sides
                  or (side == "avx2" and EXACT in sides and side in runnable)]
    peak_runs = max(1, min(MAX_PEAK_RUNS, args.repeats))
    peaks = {side: [] for side in peak_sides}
    for repeat in range(peak_runs):
        for side in peak_sides if repeat % 2 == 0 else reversed(peak_sides):
            peaks[side].append(run_worker(side, "peak"))
    rows = []
    for case in args.cases:
        runs = {side: [] for side in sides}
        for repeat in range(args.repeats):
            for side in sides if repeat % 2 == 0 else reversed(sides):
                runs[side].append(run_worker(side, case))
                print(f"{case} {side} run {repeat + 1}: {runs[side][-1]['epoch_s']:.2f} s",
                      file=sys.stderr, flush=True)
        rows.append((case, runs))
    print_tables(runnable, args.modes, peaks, rows)


def version(package: str) -> str:
    """An installed package's version, read without importing it (the parent loads no BLAS)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def print_tables(runnable: list[str], asked: list[str], peaks: dict, rows: list) -> None:
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())

    def missing(side: str) -> str:
        # "n/a": this CPU cannot run the mode; "-": left out by --modes.
        return "n/a" if side != TORCH and side not in runnable else "-"

    def peak(side: str, key: str) -> float | None:
        runs = peaks.get(side)
        return statistics.median(run[key] for run in runs) if runs else None

    def cell(value: float | None, side: str | None = None, spec: str = ".0f") -> str:
        if value is None:
            return missing(side) if side else "-"
        return f"{value:{spec}}"

    def ratio(top: float | None, bottom: float | None) -> str:
        return f"{top / bottom:.2f}x" if top is not None and bottom is not None else "-"

    setups = [f"{side} {run[0]['kernel']} kernel, {run[0]['threads']} threads"
              for side, run in peaks.items() if side != TORCH]
    print(f"CPU: {cpu}; AVX-512: {'yes' if 'avx512' in runnable else 'no'}; "
          f"NumPy {version('numpy')}; PyTorch {version('torch')}")
    if setups:
        print(f"OpenBLAS: {'; '.join(setups)}")
    print(f"PyTorch: {BLAS_THREADS} threads")
    print(f"medians of the runs, (min-max) in brackets; n/a: this CPU cannot run the mode; "
          f"-: not measured (--modes {' '.join(asked)})\n")

    sgemm = peak("avx2", "sgemm")
    dgemm = peak(EXACT, "dgemm")
    exact_floor = ratio(sgemm, dgemm)
    print("| case | avx2 s/epoch | avx512 s/epoch | exact s/epoch | PyTorch s/epoch | "
          "avx2/PyTorch | floor | avx512/avx2 | exact/avx2 | floor |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    throughput = []
    for case, runs in rows:
        settings = case_settings(case)
        flops = training_flops(settings["sizes"], settings["train_images"], settings["val_images"])
        epoch = {side: [run["epoch_s"] for run in side_runs] for side, side_runs in runs.items()}
        median = {side: statistics.median(epoch[side]) if side in epoch else None
                  for side in SIDES}
        spread = {side: f"{median[side]:.2f} ({min(epoch[side]):.2f}-{max(epoch[side]):.2f})"
                  if side in epoch else missing(side) for side in SIDES}
        floor = ratio(flops / (sgemm * 1e9), median[TORCH]) if sgemm else "-"
        print(f"| {case} | {' | '.join(spread[side] for side in SIDES)} | "
              f"{ratio(median['avx2'], median[TORCH])} | {floor} | "
              f"{ratio(median['avx512'], median['avx2'])} | "
              f"{ratio(median[EXACT], median['avx2'])} | {exact_floor} |")
        gflops = [cell(flops / median[side] / 1e9 if median[side] else None, side)
                  for side in SIDES]
        evals = [cell(EVAL_IMAGES / statistics.median(run["eval_s"] for run in runs[side])
                      if side in runs else None, side, ",.0f") for side in SIDES]
        throughput.append(f"| {case} | {' | '.join(gflops)} | {' | '.join(evals)} |")

    print("\n| case | GFLOP/s avx2 | avx512 | exact | PyTorch | "
          "eval images/s avx2 | avx512 | exact | PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(throughput))

    def peak_row(label: str, gflops: list[str]) -> None:
        print(f"| {label} | {' | '.join(gflops)} |{' |' * len(SIDES)}")

    peak_row(f"sgemm peak {PEAK_SIZE}^2 float32",
             ["" if side == EXACT else cell(peak(side, "sgemm"), side) for side in SIDES])
    if EXACT in peaks:
        for label, key in ((f"exact: dgemm peak {PEAK_SIZE}^2 float64 on integers", "dgemm"),
                           (f"exact: exact_matmul {PEAK_SIZE}^2 float32", "exact_matmul")):
            peak_row(label, [cell(peak(side, key)) if side == EXACT else "" for side in SIDES])

if __name__ == "__main__":
    main()
