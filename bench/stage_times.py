"""Wall time of each pipeline stage on real data, in a fresh clone-like copy of the project.

    NUMPYNET_MIRROR=../shared/datasets/mnist python bench/stage_times.py [--dataset mnist]

Copies the committed project (git archive of HEAD, so local outputs and caches are left behind)
into a temporary git repository, then runs `dvc repro -s` stage by stage, then a no-op
`dvc repro`, and prints the seconds of each plus the test metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def timed(args: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    args = parser.parse_args()
    if "NUMPYNET_MIRROR" in os.environ:
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
        rows = []
        for stage in ("download", "preprocess", "train", "evaluate"):
            rows.append((stage, timed([*dvc, "repro", "-s", f"{stage}@{args.dataset}"], repo)))
        rows.append(("no-op dvc repro", timed([*dvc, "repro"], repo)))
        metrics = json.loads((repo / "metrics" / f"{args.dataset}.json").read_text())
    for name, seconds in rows:
        print(f"{name:<18}{seconds:8.1f} s")
    print(f"{'pipeline total':<18}{sum(s for _, s in rows[:4]):8.1f} s")
    print(f"test accuracy     {metrics['test']['accuracy']:.4f}   test loss {metrics['test']['loss']:.4f}")


if __name__ == "__main__":
    main()
