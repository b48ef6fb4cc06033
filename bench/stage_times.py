"""Wall time and peak memory of each pipeline stage on real data, in a fresh copy of the project.

    NUMPYNET_MIRROR=../shared/datasets/mnist python bench/stage_times.py --dataset mnist
    python bench/stage_times.py --dataset cifar10-jpeg --train-like cifar10 \\
        --image-folder ../shared/datasets/cifar10-jpeg.tar.gz \\
        --sha256 67544cf5786884d3142edbad0e3888b5c4b10b3d1b3c97e3b96a74238c41c209

Copies the committed project (`git archive HEAD`, so local outputs and caches stay behind; in a
repository without commits, such as a downloaded archive after `git init`, the files git does not
ignore) into a temporary git repository, left without commits as such a copy would be. With
--image-folder, the copy's params.yaml gains that dataset (the committed file is not edited),
trained with the settings of the dataset named by --train-like; each --set KEY=VALUE then sets a
key of the copy's params.yaml, as `dvc exp run -S` does. Then it runs `dvc repro -s` stage by
stage (validate first) and a final no-op `dvc repro`, and prints the seconds and peak resident
memory of each, plus the test metrics. A stage that fails ends the bench with what DVC and the
stage printed.
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

# Runs a command, its output and errors both on stderr, and prints its exit status and the peak
# RSS (KiB) of its process tree, measured in a fresh process so that earlier stages do not count.
_PEAK_RSS = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:], stdout=sys.stderr)"
    ".returncode; print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
# How much of a failing command's output the bench shows: DVC's error and the stage's message
# come last.
SHOWN_LINES = 40


def fail(what: str, output: str) -> None:
    """End the bench: ``what`` failed, with the last lines of what it printed."""
    tail = "\n".join(output.rstrip().splitlines()[-SHOWN_LINES:])
    sys.exit(f"error: {what}; it printed (last {SHOWN_LINES} lines at most):\n{tail}")


def run(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """Run ``args``; a failure ends the bench with what the command printed."""
    result = subprocess.run(args, cwd=cwd, capture_output=True, **kwargs)
    if result.returncode != 0:
        printed = result.stderr
        if isinstance(printed, bytes):
            printed = printed.decode(errors="replace")
        fail(f"`{' '.join(map(str, args))}` exited with {result.returncode} in {cwd}", printed)
    return result


def measure(args: list[str], cwd: Path) -> tuple[float, float]:
    """Seconds and peak resident memory (MiB) of running ``args``; a failure ends the bench with
    what the command (DVC, and the stage it ran) printed."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, *args], cwd=cwd, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    code, peak_kib = (result.stdout.split() + ["", ""])[:2]
    if result.returncode != 0 or code != "0":
        fail(f"`{' '.join(args[-3:])}` failed (exit status {code or result.returncode})",
             result.stderr)
    return seconds, int(peak_kib) / 1024


def copy_project(destination: Path) -> None:
    """Copy the project's committed files into ``destination`` (an empty folder); in a repository
    without commits, the files git does not ignore."""
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=PROJECT,
                            capture_output=True, text=True)
    if inside.stdout.strip() != "true":
        sys.exit(f"error: {PROJECT} is no git repository, and the bench copies the files git "
                 f"tracks (so that outputs and caches stay behind); run `git init` there first")
    has_commit = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=PROJECT,
                                capture_output=True).returncode == 0
    if has_commit:
        archive = run(["git", "archive", "HEAD"], PROJECT)
        run(["tar", "-x", "-C", str(destination)], PROJECT, input=archive.stdout)
        return
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], PROJECT)
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = PROJECT / name
        if source.is_file():  # a file deleted but still in the index is no longer there
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def set_params(repo: Path, settings: list[str]) -> None:
    """Set each ``KEY=VALUE`` of ``settings`` in ``repo``'s params.yaml: a dotted key, a YAML
    value (``train.hidden_sizes=[16]``)."""
    if not settings:
        return
    yaml = YAML()
    params = yaml.load((repo / "params.yaml").read_text())
    for setting in settings:
        key, separator, text = setting.partition("=")
        if not separator:
            sys.exit(f"error: --set {setting}: expected KEY=VALUE, such as train.epochs=2")
        *parents, leaf = key.split(".")
        section = params
        for name in parents:
            section = section.setdefault(name, {})
        section[leaf] = YAML(typ="safe").load(text)
    with open(repo / "params.yaml", "w") as stream:
        yaml.dump(params, stream)


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
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="set a key of the copy's params.yaml (train.epochs=2); repeatable")
    args = parser.parse_args()
    if os.environ.get("NUMPYNET_MIRROR"):
        os.environ["NUMPYNET_MIRROR"] = os.path.abspath(os.environ["NUMPYNET_MIRROR"])
    # The stages run `python`: make it this interpreter, which has numpynet installed.
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    dvc = [sys.executable, "-m", "dvc"]
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(scratch) / "project"
        repo.mkdir()
        copy_project(repo)
        # No commit: the stages run as they do in a downloaded archive after `git init`.
        run(["git", "init", "-q"], repo)
        (repo / "dvc.lock").unlink(missing_ok=True)
        if args.image_folder:
            add_image_folder(repo, args.dataset, args.image_folder, args.sha256, args.train_like)
        set_params(repo, args.set)
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
