"""A fresh copy of the project in a temporary git repository, for tests that run real `dvc`.

Only the code and the pipeline definition are copied: the test writes its own params.yaml and
`dvc init` writes a new .dvc/config, so no test depends on the user's params, remotes or outputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ruamel.yaml import YAML

from helpers.loopback import serve_directory
from helpers.synthetic import make_synthetic_idx_dataset
from numpynet.backend import runnable_modes

PROJECT = Path(__file__).resolve().parents[2]
COPIED = ("src", "stages", "dvc.yaml", "pyproject.toml", ".gitignore", ".dvcignore", "README.md")
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.egg-info")


def base_params(datasets: dict, **train) -> dict:
    """A complete params.yaml for tiny, fast runs; ``train`` overrides the shared settings."""
    shared = {
        "lr": 0.001, "epochs": 3, "hidden_sizes": [32], "batch_size": 32, "dropout": 0.2,
        "weight_decay": 0.01, "optimizer": "adamw", "schedule": "cosine", "warmup_epochs": 0,
        "min_lr": 0.0, "momentum": 0.9, "nesterov": False, "betas": [0.9, 0.999], "eps": 1e-08,
        "seed": 0, "normalization": "none", "whitening": "none", "label_smoothing": 0.0, "augment_shift": 0,
        "augment_flip": False, "augment_elastic": 0.0, "select_by": "last",
    }
    return {
        "train": {**shared, **train},
        "datasets": datasets,
        "preprocess": {"val_fraction": 0.1, "seed": 0},
        "evaluate": {"batch_size": 1000, "test_time_flip": False},
        "download": {"timeout_s": 30},
        # The default class where this CPU runs it (avx2 on any x86-64 of the last decade).
        "numerics": {"mode": runnable_modes()[0]},
    }


@contextlib.contextmanager
def synthetic_mirror(
    root: Path, seeds: dict[str, int], at_root: str | None = None
) -> Iterator[tuple[str, dict]]:
    """Serve one synthetic MNIST-format dataset per name over loopback, under ``root/<name>``
    (or right in ``root`` for the dataset named ``at_root``: a mirror may be laid out either way).

    Yields the mirror's URL and each dataset's sha256 pins by role (see :func:`idx_dataset`).
    """
    pins = {}
    for name, seed in seeds.items():
        folder = root if name == at_root else root / name
        files = make_synthetic_idx_dataset(folder, n_train=600, n_test=200,
                                           rng=np.random.default_rng(seed))
        pins[name] = {role: digest for role, (_, digest) in files.items()}
    with serve_directory(root) as server:
        yield server.url, pins


def idx_dataset(sha256_by_role: dict[str, str], **train) -> dict:
    """A ``datasets:`` entry for idx files served by the mirror, pinned by their sha256."""
    return {"data": {"format": "idx", "sha256": sha256_by_role, "urls": []}, "train": train}


def dvc_environment(**extra: str) -> dict[str, str]:
    """The environment for `dvc`: this interpreter as `python`, no proxies, fixed git identity."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("NUMPYNET_", "OPENBLAS_", "NPY_", "DVC_"))
    }
    env.update(
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        no_proxy="127.0.0.1,localhost",
        NO_PROXY="127.0.0.1,localhost",
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.invalid",
    )
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def dvc(*args: str, cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, env, check)


def git(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return run(["git", *args], cwd, env)


def _yaml() -> YAML:
    """The YAML dialect DVC reads params.yaml with (1.2), writing one item per line."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # keys in the order given, as a user writes
    return yaml


def read_params(repo: Path) -> dict:
    return _yaml().load((repo / "params.yaml").read_text(encoding="utf-8"))


def write_params(repo: Path, params: dict) -> None:
    with open(repo / "params.yaml", "w", encoding="utf-8") as stream:
        _yaml().dump(params, stream)


def make_project(repo: Path, params: dict, env: dict) -> Path:
    """Copy the project's code into ``repo``, write ``params``, and commit it in a new git repo."""
    repo.mkdir(parents=True)
    for name in COPIED:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=_SKIPPED)
        else:
            shutil.copy2(source, repo / name)
    write_params(repo, params)
    git("init", "-q", "-b", "main", cwd=repo, env=env)
    dvc("init", "-q", cwd=repo, env=env)
    git("add", "-A", cwd=repo, env=env)
    git("commit", "-qm", "project", cwd=repo, env=env)
    return repo


def make_built_project(repo: Path, params: dict, env: dict) -> subprocess.CompletedProcess:
    """:func:`make_project`, then one `dvc repro` committed; returns what the repro printed."""
    make_project(repo, params, env)
    first = dvc("repro", cwd=repo, env=env)
    git("add", "-A", cwd=repo, env=env)
    git("commit", "-qm", "first run", cwd=repo, env=env)
    return first


def private_copy(repo: Path, destination: Path) -> Path:
    """A copy of ``repo``, its DVC cache included, for a test to change freely."""
    shutil.copytree(repo, destination, symlinks=True)
    return destination


def ran_stages(output: str) -> set[str]:
    """The stages `dvc repro` or `dvc exp run` ran, from its output."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def cached_stages(output: str) -> set[str]:
    """The stages DVC restored from its run-cache instead of running."""
    return {
        line.split("'")[1] for line in output.splitlines()
        if line.startswith("Stage '") and "is cached - skipping run" in line
    }


def tree_digest(*roots: Path) -> dict[str, str]:
    """sha256 of every file below ``roots``, by path relative to the roots' parent."""
    digests = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digests[str(path.relative_to(root.parent))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def shipped_params(destination: Path) -> Path:
    """Write the params.yaml the project ships (the committed one) to ``destination``.

    Tests of the shipped file read it from git, so a user's own edits of params.yaml never make
    them fail; outside a git checkout the file on disk is the shipped one.
    """
    committed = subprocess.run(
        ["git", "show", "HEAD:params.yaml"], cwd=PROJECT, capture_output=True, check=False
    )
    text = committed.stdout if committed.returncode == 0 else (PROJECT / "params.yaml").read_bytes()
    destination.write_bytes(text)
    return destination
