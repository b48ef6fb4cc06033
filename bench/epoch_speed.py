"""Seconds per training epoch, numpynet against PyTorch on the CPU, side by side in one run.

    pip install torch==2.13.0          # benchmark-only: never a dependency of numpynet
    python bench/epoch_speed.py                        # all cases, 5 runs each
    python bench/epoch_speed.py --repeats 3 --cases mnist-128 cifar10-512

Both sides train the same network (hidden sizes, dropout, optimizer and its settings from
params.yaml for the dataset named by the case) with the same batch size, float32, the same number
of threads (numpynet's pinned BLAS thread count) and the same work per epoch: shuffle, gather each
batch, forward, softmax cross-entropy, backward, optimizer step, the running loss and accuracy,
then the validation pass. PyTorch runs eager with its stock ``torch.optim.AdamW``/``SGD``, weight
decay on weight matrices only, as numpynet does. The data are random numbers of the real
datasets' shapes (MNIST: 54,000 training and 6,000 validation images of 784 values; CIFAR-10:
45,000 and 5,000 of 3,072): the work does not depend on the values.

Every measurement is a fresh process (numpynet must pin its backend before NumPy loads, and two
thread pools in one process would disturb each other); runs alternate between the two sides so
that a slow spell of the machine hits both. Each process warms up on a few batches, then times
one full epoch and an evaluation pass over 10,000 images. The table shows medians; the ratio is
numpynet's median over PyTorch's. GFLOP/s counts the multiply-adds both sides do (forward,
weight gradients, input gradients of all but the first layer, the validation forward pass).
The peak row is each side's float32 matrix multiply of two 2048x2048 matrices; "floor" is the
ratio an epoch would have if its matrix products ran at numpynet's peak and nothing else took
time: no engine on this BLAS can go below it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "src"))

SHAPES = {  # dataset: (input size, training images, validation images)
    "mnist": (784, 54_000, 6_000),
    "cifar10": (3072, 45_000, 5_000),
}
NUM_CLASSES = 10
EVAL_IMAGES = 10_000
EVAL_BATCH = 1000
WARMUP_BATCHES = 20
ALL_CASES = ("mnist-128", "mnist-512", "cifar10-128", "cifar10-512")


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


def numpynet_worker(case: str) -> dict:
    from numpynet.backend import pin_backend

    pin_backend()
    import numpy as np

    from numpynet.backend import pin_blas_threads
    from numpynet.evaluation import evaluate_model
    from numpynet.nn.model import MLPConfig, build_mlp
    from numpynet.training import fit, make_optimizer

    pin_blas_threads()
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

    def epoch(data):
        fit(model, optimizer, data, val_set, epochs=1, batch_size=batch,
            learning_rate=lambda step: train.lr, rng=rng, eval_batch_size=EVAL_BATCH,
            show_progress=False, log=lambda message: None)

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

    from numpynet.backend import BLAS_THREADS

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


def peak_worker(side: str) -> dict:
    size, reps = 2048, 20
    if side == "numpynet":
        from numpynet.backend import pin_backend

        pin_backend()
        import numpy as np

        from numpynet.backend import pin_blas_threads

        pin_blas_threads()
        a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
        multiply = lambda: a @ a  # noqa: E731
    else:
        import torch

        from numpynet.backend import BLAS_THREADS

        torch.set_num_threads(BLAS_THREADS)
        a = torch.randn(size, size)
        multiply = lambda: a @ a  # noqa: E731
    for _ in range(3):
        multiply()
    started = time.perf_counter()
    for _ in range(reps):
        multiply()
    return {"gflops": 2 * size**3 * reps / (time.perf_counter() - started) / 1e9}


def run_worker(side: str, case: str) -> dict:
    what = ["--peak"] if case == "peak" else ["--cases", case]
    command = [sys.executable, __file__, "--worker", side, *what]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT)
    if result.returncode != 0:
        sys.exit(f"the {side} worker for {case} failed:\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each side per case")
    parser.add_argument("--cases", nargs="+", default=list(ALL_CASES), choices=ALL_CASES)
    parser.add_argument("--worker", choices=["numpynet", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--peak", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker = {"numpynet": numpynet_worker, "torch": torch_worker}[args.worker]
        print(json.dumps(peak_worker(args.worker) if args.peak else worker(args.cases[0])))
        return
    sides = ("numpynet", "torch")
    peaks = {side: [run_worker(side, "peak")["gflops"] for _ in range(3)] for side in sides}
    rows = []
    for case in args.cases:
        runs = {side: [] for side in sides}
        for repeat in range(args.repeats):
            for side in sides if repeat % 2 == 0 else reversed(sides):
                runs[side].append(run_worker(side, case))
                print(f"{case} {side} run {repeat + 1}: {runs[side][-1]['epoch_s']:.2f} s",
                      file=sys.stderr, flush=True)
        rows.append((case, runs))
    print_table(peaks, rows)


def print_table(peaks: dict, rows: list) -> None:
    import platform

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"CPU: {cpu}; PyTorch {torch.__version__}; medians of the runs in brackets (min-max)\n")
    peak = statistics.median(peaks["numpynet"])
    print("| case | numpynet s/epoch | PyTorch s/epoch | ratio | floor | numpynet GFLOP/s | "
          "PyTorch GFLOP/s | eval images/s numpynet | PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case, runs in rows:
        settings = case_settings(case)
        flops = training_flops(settings["sizes"], settings["train_images"], settings["val_images"])
        epoch = {side: [run["epoch_s"] for run in side_runs] for side, side_runs in runs.items()}
        median = {side: statistics.median(times) for side, times in epoch.items()}
        evals = {side: EVAL_IMAGES / statistics.median(run["eval_s"] for run in side_runs)
                 for side, side_runs in runs.items()}
        spread = {side: f"{median[side]:.2f} ({min(times):.2f}-{max(times):.2f})"
                  for side, times in epoch.items()}
        floor = flops / (peak * 1e9) / median["torch"]
        print(f"| {case} | {spread['numpynet']} | {spread['torch']} | "
              f"{median['numpynet'] / median['torch']:.2f}x | {floor:.2f}x | "
              f"{flops / median['numpynet'] / 1e9:.0f} | {flops / median['torch'] / 1e9:.0f} | "
              f"{evals['numpynet']:,.0f} | {evals['torch']:,.0f} |")
    print(f"| sgemm peak 2048^2 | | | | | {peak:.0f} | "
          f"{statistics.median(peaks['torch']):.0f} | | |")


if __name__ == "__main__":
    main()
