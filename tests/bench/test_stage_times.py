"""bench/stage_times.py, the README's benchmark, run end to end on tiny data from a copy of the
project without commits (a downloaded archive after `git init`), and a stage that fails in it
ending the bench with the stage's own message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.project import PROJECT, dvc_environment

pytestmark = pytest.mark.slow

# Few steps of a small net: the bench's own work (a copy, six `dvc repro`) is what is tested.
TINY_TRAINING = ["--set", "train.epochs=2", "--set", "train.hidden_sizes=[16]"]


def project_without_commits(destination: Path) -> Path:
    """The project's files as a downloaded archive holds them (what git does not ignore), in a
    new git repository without commits."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=PROJECT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PROJECT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            (destination / name).write_bytes(source.read_bytes())
    subprocess.run(["git", "init", "-q"], cwd=destination, check=True)
    return destination


def tiny_image_folder(root: Path) -> Path:
    """8x8 gray PNGs of three classes, brighter class by class: 20 to train, 5 to test each."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 20), ("test", 5)):
        for index, label in enumerate(("dark", "mid", "light")):
            folder = root / split / label
            folder.mkdir(parents=True)
            for k in range(count):
                pixels = np.clip(rng.normal(60 + 70 * index, 30, (8, 8)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8), "L").save(folder / f"{k}.png")
    return root


def run_bench(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(project / "bench" / "stage_times.py"), *args],
                          cwd=project, env=dvc_environment(), capture_output=True, text=True,
                          timeout=300)


@pytest.mark.hostile
def test_the_bench_runs_end_to_end_from_a_project_without_commits(tmp_path):
    project = project_without_commits(tmp_path / "project")
    images = tiny_image_folder(tmp_path / "images")
    bench = run_bench(project, "--dataset", "tiny", "--image-folder", str(images),
                      "--set", "datasets.tiny.data.mode=L", *TINY_TRAINING)
    assert bench.returncode == 0, bench.stdout + bench.stderr
    lines = bench.stdout.splitlines()
    stages = [line.split()[0] for line in lines[1:7]]
    assert stages == ["validate", "download", "preprocess", "train", "evaluate", "no-op"], lines
    assert lines[-1].strip().startswith("test accuracy "), lines


@pytest.mark.hostile
def test_a_failing_stage_ends_the_bench_with_the_stages_message(tmp_path):
    project = project_without_commits(tmp_path / "project")
    missing = tmp_path / "no-such-images"
    bench = run_bench(project, "--dataset", "tiny", "--image-folder", str(missing),
                      *TINY_TRAINING)
    assert bench.returncode == 1
    assert "Traceback" not in bench.stderr and "CalledProcessError" not in bench.stderr
    assert bench.stderr.startswith("error: `repro -s download@tiny` failed"), bench.stderr
    # The stage's own paragraph, as the stage printed it, and DVC's line after it.
    assert f"\nerror: datasets.tiny.data.source: {missing} does not exist" in bench.stderr
    assert bench.stderr.rstrip().splitlines()[-1].startswith("ERROR: failed to reproduce")
