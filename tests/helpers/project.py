"""Building throwaway copies of the project for the tests, and the params.yaml they run on.

Two kinds of copy, for two jobs:

* :func:`make_dvc_project`: the code and the pipeline definition in a new git repository with
  DVC initialised, for tests that run real ``dvc repro`` (tests/stages/). The test writes its own
  params.yaml and ``dvc init`` writes a new .dvc/config (with the project's page template for
  ``dvc plots``), so no test depends on the user's params, remotes or outputs.
* :func:`make_stage_project`: only ``src/`` and ``stages/`` (a stage runs the code of the tree it
  lies in, see ``stages/_bootstrap.py``), no git and no DVC, for running one stage script at a time
  (:mod:`helpers.stages`). :func:`tiny_project` is one of those with a params.yaml for one tiny
  dataset, :data:`NAME`; :func:`write_data`, :func:`write_model` and :func:`write_live_log` put
  in it what the earlier stages would have written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from configobj import ConfigObj
from ruamel.yaml import YAML

from helpers.loopback import serve_directory
from helpers.synthetic import make_synthetic_idx_dataset
from numpynet.backend import runnable_modes
from numpynet.data.catalog import IDX_ROLES
from numpynet.data.processed import write_processed
from numpynet.model_folder import CONTENTS_FILE, TIED_FILES, save_model
from numpynet.nn import MLPConfig, build_mlp
from numpynet.records import DatasetRecord, TrainingRecord

PROJECT = Path(__file__).resolve().parents[2]
# Real datasets, where a machine has them (tests that need one skip themselves without it).
SHARED_DATASETS = PROJECT.parent / "shared" / "datasets"
COPIED = ("src", "stages", "dvc.yaml", "pyproject.toml", ".gitignore", ".dvcignore", "README.md",
          "plots-page")
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


def pets_params(size: list[int] | None = None, mode: str | None = None, **train) -> dict:
    """A complete params.yaml for one image folder dataset, ``pets``, of declared ``size`` and
    ``mode``, under hidden_sizes [1200, 1200] (``train`` overrides its own settings)."""
    data = {"format": "image-folder", "source": "pets", "size": size, "mode": mode}
    return base_params({"pets": {"data": data, "train": train}}, hidden_sizes=[1200, 1200])


def dvc_environment(**extra: str) -> dict[str, str]:
    """The environment for `dvc`: this interpreter as `python`, no proxies, fixed git identity,
    and bytecode written as on most machines (some set PYTHONDONTWRITEBYTECODE)."""
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("NUMPYNET_", "OPENBLAS_", "NPY_", "DVC_"))
        and key != "PYTHONDONTWRITEBYTECODE"
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


def make_dvc_project(repo: Path, params: dict, env: dict) -> Path:
    """Copy the project's code and pipeline into ``repo``, write ``params``, and commit it in a
    new git repository with DVC initialised: ready for a real ``dvc repro``."""
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
    # The page template of `dvc plots` as the project sets it; nothing else of its DVC settings
    # (a remote there must never receive a test's pushes).
    template = ConfigObj(str(PROJECT / ".dvc" / "config"))["plots"]["html_template"]
    dvc("config", "plots.html_template", template, cwd=repo, env=env)
    git("add", "-A", cwd=repo, env=env)
    git("commit", "-qm", "project", cwd=repo, env=env)
    return repo


def make_built_dvc_project(repo: Path, params: dict, env: dict) -> subprocess.CompletedProcess:
    """:func:`make_dvc_project`, then one `dvc repro` committed; returns what the repro printed."""
    make_dvc_project(repo, params, env)
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


def tree_bytes(*roots: Path) -> dict[str, bytes]:
    """Every file below ``roots`` (or the file itself), by path: to compare before and after."""
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        found.update({str(path): path.read_bytes() for path in paths})
    return found


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


# ---------------------------------------------------------------------------------------------
# Projects that run one stage script at a time: no git, no DVC (see helpers.stages)
# ---------------------------------------------------------------------------------------------

NAME = "digits"  # not a built-in name: its data section is the test's own


def make_stage_project(root: Path, params: dict | None = None, *, src: bool = True) -> Path:
    """Copy the project's ``stages/`` (and ``src/`` unless ``src`` is False) into ``root``, and
    write ``params``, if given, as its params.yaml.

    A stage run as a process runs the ``src/`` beside it; a stage run in this process runs the
    numpynet already imported, so it needs the stage scripts only (``src=False``).
    """
    root.mkdir(parents=True, exist_ok=True)
    for name in ("src", "stages") if src else ("stages",):
        shutil.copytree(PROJECT / name, root / name, ignore=_SKIPPED)
    if params is not None:
        write_params(root, params)
    return root


@contextlib.contextmanager
def temporary_stage_project() -> Iterator[Path]:
    """A stage project (scripts only) with ``data/``, in a folder removed afterwards: one per
    hypothesis example, where pytest's ``tmp_path`` is one per test."""
    with tempfile.TemporaryDirectory() as folder:
        project = make_stage_project(Path(folder), src=False)
        (project / "data").mkdir()
        yield project


def tiny_params(data: dict | None = None, **train) -> dict:
    """A params.yaml for the one tiny dataset :data:`NAME`: ``data`` its data section (an idx
    dataset with placeholder pins by default), ``train`` overrides of the shared settings."""
    settings = {"epochs": 2, "hidden_sizes": [8], "batch_size": 16, **train}
    pins = {role: "0" * 64 for role in IDX_ROLES}  # replaced where a test downloads
    dataset = {"data": data or {"format": "idx", "sha256": pins, "urls": []}, "train": {}}
    return base_params({NAME: dataset}, **settings)


def tiny_project(root: Path, data: dict | None = None, **train) -> Path:
    """A stage project (scripts only, for :func:`helpers.stages.run_stage_in_process`) whose
    params.yaml is :func:`tiny_params`."""
    return make_stage_project(root, tiny_params(data, **train), src=False)


def tiny_split(count: int, shape=(4, 4, 1), classes: int = 3, seed: int = 0):
    """``count`` float32 images whose mean encodes their int64 label: learnable in an epoch."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int64) % classes
    images = rng.standard_normal((count, *shape)) + labels[:, None, None, None]
    return images.astype(np.float32), labels


def write_data(project: Path, shape=(4, 4, 1), classes=("a", "b", "c"), name: str = NAME,
               counts=(60, 21, 21)) -> Path:
    """A processed dataset at ``data/processed/<name>``, as the preprocess stage writes one."""
    splits = {split: tiny_split(count, shape, len(classes), seed)
              for seed, (split, count) in enumerate(zip(("train", "val", "test"), counts))}
    directory = project / "data" / "processed" / name
    write_processed(directory, splits, list(classes), np.zeros(shape[2]), np.ones(shape[2]))
    return directory


def write_model(project: Path, shape=(4, 4, 1), classes=("a", "b", "c"), name: str = NAME,
                mean=None, std=None) -> Path:
    """A model folder at ``models/<name>`` as the train stage writes one (random weights)."""
    config = MLPConfig(int(np.prod(shape)), (8,), len(classes), 0.0)
    model = build_mlp(config, np.random.default_rng(0))
    directory = project / "models" / name
    training = TrainingRecord(epochs=2, select_by="last", selected_epoch=1, val_accuracy=0.5,
                              val_loss=1.0, augment_flip=False)
    dataset = DatasetRecord(name=name, classes=list(classes), image_shape=list(shape),
                            mean=mean or [0.0] * shape[2], std=std or [1.0] * shape[2])
    save_model(directory, model, config, training=training, dataset=dataset)
    return directory


def reseal(directory: Path) -> None:
    """Record the digests of a model folder's files in its contents.json anew, as save_model
    does: a folder a test edited by hand, declared whole again."""
    files = {name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
             for name in TIED_FILES if (directory / name).exists()}
    (directory / CONTENTS_FILE).write_text(json.dumps({"files": files}))


def write_live_log(project: Path, name: str = NAME) -> None:
    """A DVCLive training log of one epoch of two steps, as the evaluate stage reads it."""
    folder = project / "dvclive" / name / "plots" / "metrics"
    for metric in ("lr", "train/batch_loss", "train/loss", "train/accuracy", "val/loss",
                   "val/accuracy"):
        path = folder / f"{metric}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        steps = (1, 2) if metric in ("lr", "train/batch_loss") else (2,)
        leaf = metric.rsplit("/", 1)[-1]
        path.write_text(f"timestamp\tstep\t{leaf}\n" + "".join(f"0\t{s}\t0.5\n" for s in steps))


def evaluable_project(root: Path, **model) -> Path:
    """A tiny project ready for the evaluate stage: data, a model and its training log."""
    project = tiny_project(root)
    write_data(project)
    write_model(project, **model)
    write_live_log(project)
    return project
