"""Running the stages in this process on tiny projects, for the hostile-input tests.

A stage runs as ``python stages/<name>.py ARGS`` from the project root runs it: its ``main``
under :func:`numpynet.stage_entry.run_stage`, with ``sys.argv`` and the working directory set, and the
exit code and stderr captured. The stage scripts are copied into each project, so the train
stage's code digest and its "outputs inside the project" check see that project. NumPy is loaded
already: ``_bootstrap`` is replaced by a module that only names the project root.

:func:`failing_writes` makes every file opened for writing under a path fragment fail with an
``OSError`` of a given errno (a full disk, a read-only file system), whoever opens it: numpynet,
NumPy, zipfile, Pillow (for matplotlib) or DVCLive.
"""

from __future__ import annotations

import builtins
import contextlib
import errno as errno_codes
import importlib.util
import io
import os
import shutil
import sys
import types
from pathlib import Path

import numpy as np
from ruamel.yaml import YAML

from helpers.project import PROJECT, base_params
from numpynet.model_folder import save_model
from numpynet.records import DatasetRecord, TrainingRecord
from numpynet.stage_entry import run_stage
from numpynet.data.catalog import IDX_ROLES
from numpynet.data.processed import write_processed
from numpynet.nn import MLPConfig, build_mlp

NAME = "digits"  # not a built-in name: its data section is the test's own
TRAIN_ARGS = ["--data", f"data/processed/{NAME}", "--model", f"models/{NAME}",
              "--live", f"dvclive/{NAME}", "--checkpoint", f"checkpoints/{NAME}.npz"]
EVALUATE_ARGS = ["--data", f"data/processed/{NAME}", "--model", f"models/{NAME}",
                 "--live", f"dvclive/{NAME}", "--metrics", f"metrics/{NAME}.json",
                 "--pictures", f"plots/{NAME}"]
STAGE_ARGS = {
    "validate": ["--out", "data/params-valid"],
    "download": [NAME, "--out", f"data/raw/{NAME}"],
    "preprocess": [NAME, "--raw", f"data/raw/{NAME}", "--out", f"data/processed/{NAME}"],
    "train": [NAME, *TRAIN_ARGS],
    "evaluate": [NAME, *EVALUATE_ARGS],
}


def make_project(root: Path, data: dict | None = None, **train) -> Path:
    """A project folder with the stage scripts and a params.yaml for one tiny dataset."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(PROJECT / "stages", root / "stages",
                    ignore=shutil.ignore_patterns("__pycache__"))
    settings = {"epochs": 2, "hidden_sizes": [8], "batch_size": 16, **train}
    pins = {role: "0" * 64 for role in IDX_ROLES}  # replaced where a test downloads
    dataset = {"data": data or {"format": "idx", "sha256": pins, "urls": []}, "train": {}}
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    with open(root / "params.yaml", "w", encoding="utf-8") as stream:
        yaml.dump(base_params({NAME: dataset}, **settings), stream)
    return root


def run_in_process(stage: str, project: Path, args: list[str] | None = None) -> tuple[int, str]:
    """Run ``stage`` in ``project`` as DVC would; return its exit code and stderr."""
    bootstrap = types.ModuleType("_bootstrap")
    bootstrap.PROJECT_ROOT = project
    script = project / "stages" / f"{stage}.py"
    spec = importlib.util.spec_from_file_location(f"_hardening_stage_{stage}", script)
    module = importlib.util.module_from_spec(spec)
    saved = {name: sys.modules.get(name) for name in ("_bootstrap", "_dvclive_log")}
    sys.modules["_bootstrap"] = bootstrap
    sys.modules.pop("_dvclive_log", None)
    sys.path.insert(0, str(project / "stages"))
    argv, cwd, stderr = sys.argv, os.getcwd(), io.StringIO()
    try:
        spec.loader.exec_module(module)
        sys.argv = [f"stages/{stage}.py", *(STAGE_ARGS[stage] if args is None else args)]
        os.chdir(project)
        with contextlib.redirect_stderr(stderr):
            try:
                run_stage(module.main)
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
        os.chdir(cwd)
        sys.path.remove(str(project / "stages"))
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return code, stderr.getvalue()


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
    """A project ready for the evaluate stage: data, a model and its training log."""
    project = make_project(root)
    write_data(project)
    write_model(project, **model)
    write_live_log(project)
    return project


class _FailingFile:
    """A file opened for writing whose every write fails as the disk would."""

    def __init__(self, stream, code: int):
        self._stream, self._code = stream, code

    def _fail(self, *args, **kwargs):
        raise OSError(self._code, os.strerror(self._code))

    write = writelines = truncate = _fail

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._stream.close()

    def __iter__(self):
        return iter(self._stream)


@contextlib.contextmanager
def failing_writes(monkeypatch, fragment: str, code: int = errno_codes.ENOSPC):
    """Make every write to a file whose path contains ``fragment`` fail with errno ``code``."""
    real_open = io.open

    def patched(file, mode="r", *args, **kwargs):
        stream = real_open(file, mode, *args, **kwargs)
        path = os.fsdecode(file) if isinstance(file, (str, bytes, os.PathLike)) else ""
        if fragment in path and any(flag in mode for flag in "wax+"):
            return _FailingFile(stream, code)
        return stream

    with monkeypatch.context() as patch:
        patch.setattr(io, "open", patched)
        patch.setattr(builtins, "open", patched)
        yield


def tree_bytes(*roots: Path) -> dict[str, bytes]:
    """Every file below ``roots`` (or the file itself), by path: to compare before and after."""
    found = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        found.update({str(path): path.read_bytes() for path in paths})
    return found


def assert_one_paragraph_error(code: int, stderr: str, *named: str) -> str:
    """Exit code 2, an ``error:`` message of one paragraph naming each of ``named``, and no
    traceback; returns the message."""
    assert code == 2, f"exit code {code}:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert "error: " in stderr, stderr
    message = stderr[stderr.index("error: "):].strip()
    assert "\n\n" not in message, f"more than one paragraph:\n{message}"
    assert "allow_pickle" not in message, message
    for name in named:
        assert name in message, f"{name!r} not named:\n{message}"
    return message
