"""Wall time and peak memory of each pipeline stage on real data, in a fresh copy of the project.

    NUMPYNET_MIRROR=../shared/datasets/mnist python bench/stage_times.py --dataset mnist
    python bench/stage_times.py --dataset cifar10-jpeg --train-like cifar10 \\
        --image-folder ../shared/datasets/cifar10-jpeg.tar.gz \\
        --sha256 67544cf5786884d3142edbad0e3888b5c4b10b3d1b3c97e3b96a74238c41c209

Copies the committed project (`git archive HEAD`, so local outputs and caches stay behind) into a
temporary git repository. With --image-folder, the copy's params.yaml gains that dataset (the
committed file is not edited), trained with the settings of the dataset named by --train-like.
Then it runs `dvc repro -s` stage by stage (validate first) and a final no-op `dvc repro`, and prints the seconds
and peak resident memory of each, plus the test metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

PROJECT = Path(__file__).resolve().parents[1]
STAGES = ("download", "preprocess", "train", "evaluate")

# Runs a command and prints the peak RSS (KiB) of its process tree, measured in a fresh process so
# that earlier stages do not count.
_PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def measure(args: list[str], cwd: Path) -> tuple[float, float]:
    """Seconds and peak resident memory (MiB) of running ``args``."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *args], cwd=cwd, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"{' '.join(args[-2:])} failed:\n{result.stderr[-4000:]}")
    return time.perf_counter() - started, int(result.stdout.split()[-1]) / 1024


def add_image_folder(repo: Path, name: str, location: str, sha256: str | None, train_like: str | None) -> None:
    yaml = YAML()  # round-trip, as `dvc exp run -S` rewrites params.yaml: comments stay
    params = yaml.load((repo / "params.yaml").read_text())
    data = {"format": "image-folder", "source": str(Path(location).resolve())}
    if sha256:
        data["sha256"] = sha256
    train = dict(params["datasets"][train_like]["train"]) if train_like else {}
    params["datasets"][name] = {"data": data, "train": train}
    with open(repo / "params.yaml", "w") as stream:
        yaml.dump(params, stream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--image-folder", help="add --dataset as an image folder read from this path")
    parser.add_argument("--sha256", help="the image folder archive's sha256")
    parser.add_argument("--train-like", help="train the added dataset with this dataset's overrides")
    parser.add_argument("--keep", type=Path, help="copy the run's metrics, plots and training.json here")
    args = parser.parse_args()
    if os.environ.get("NUMPYNET_MIRROR"):
        os.environ["NUMPYNET_MIRROR"] = os.path.abspath(os.environ["NUMPYNET_MIRROR"])
    # The stages run `python`: make it this interpreter, which has numpynet installed.
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    dvc = [sys.executable, "-m", "dvc"]
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(scratch) / "project"
        repo.mkdir()
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=PROJECT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(repo)], input=archive.stdout, check=True)
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        (repo / "dvc.lock").unlink(missing_ok=True)
        if args.image_folder:
            add_image_folder(repo, args.dataset, args.image_folder, args.sha256, args.train_like)
        # DVCLive, in the train stage, needs a commit to start from.
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit",
                        "-qm", "bench"], cwd=repo, check=True)
        rows = [("validate", *measure([*dvc, "repro", "-s", "validate"], repo))]
        rows += [(stage, *measure([*dvc, "repro", "-s", f"{stage}@{args.dataset}"], repo)) for stage in STAGES]
        rows.append(("no-op dvc repro", *measure([*dvc, "repro", f"evaluate@{args.dataset}"], repo)))
        metrics = json.loads((repo / "metrics" / f"{args.dataset}.json").read_text())
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copytree(repo / "plots" / args.dataset, args.keep / "plots", dirs_exist_ok=True)
            shutil.copy(repo / "metrics" / f"{args.dataset}.json", args.keep)
            shutil.copy(repo / "models" / args.dataset / "training.json", args.keep)
    print(f"{args.dataset}: {'stage':<16}{'seconds':>9}{'peak MiB':>10}")
    for name, seconds, peak in rows:
        print(f"  {name:<26}{seconds:9.1f}{peak:10.0f}")
    print(f"  {'pipeline total':<26}{sum(row[1] for row in rows[:-1]):9.1f}")
    scores = metrics[args.dataset]
    print(f"  test accuracy {scores['accuracy']:.4f}, test loss {scores['loss']:.4f}")


if __name__ == "__main__":
    main()
