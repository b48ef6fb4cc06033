"""Outputs that would lie or break: no NaN or infinity in any JSON numpynet writes, class names
that survive any character, temporary files of a killed run swept at the next start, and a full
disk (or a read-only, forbidden folder) ending every stage with exit code 2 and one paragraph
naming the path and the fix, the previous outputs byte for byte as they were. A MemoryError
becomes a message too; every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import csv
import errno
import dataclasses
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.hardening_stages import (
    NAME,
    assert_one_paragraph_error,
    evaluable_project,
    failing_writes,
    make_project,
    run_in_process,
    tree_bytes,
    write_data,
    write_model,
)
from helpers.synthetic import make_synthetic_idx_dataset
from numpynet import files
from numpynet.model_folder import WEIGHTS_FILE, save_model
from numpynet.records import TrainingRecord
from numpynet.stage_entry import run_stage
from numpynet.cli import main as numpynet_main
from numpynet.errors import OutputError
from numpynet.files import (
    atomic_directory,
    atomic_path,
    leftovers,
    save_npz,
    write_csv,
    write_json,
)
from numpynet.nn import MLPConfig, build_mlp

HEX = "0123456789ab"


def siblings(folder: Path, output: str) -> list[str]:
    """Hidden names beside ``output`` in ``folder``: temporaries a failed write left."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{output}.")) if (
        folder.is_dir()) else []


# ---------------------------------------------------------------------------------------------
# No NaN or infinity in a JSON file
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_write_json_refuses_a_non_finite_number_naming_its_key(tmp_path, value):
    path = tmp_path / "metrics" / "digits.json"
    write_json(path, {"digits": {"accuracy": 0.5, "loss": 1.0}})
    before = path.read_bytes()
    with pytest.raises(OutputError) as caught:
        write_json(path, {"digits": {"accuracy": 0.5, "loss": value, "per_class": [1.0]}})
    message = str(caught.value)
    assert "digits.loss" in message and str(path) in message and str(value) in message
    assert path.read_bytes() == before and siblings(path.parent, path.name) == []


def test_write_json_names_a_value_nested_in_a_list(tmp_path):
    with pytest.raises(OutputError, match=r"history\.1\.val_loss is inf"):
        write_json(tmp_path / "t.json", {"history": [{"val_loss": 1.0}, {"val_loss": math.inf}]})
    assert not (tmp_path / "t.json").exists()


def test_write_json_text_is_unchanged_for_finite_values(tmp_path):
    data = {"b": {"loss": 0.1 + 0.2, "accuracy": 1e-300, "epoch": 3}, "a": [1.5e308, -0.0]}
    write_json(tmp_path / "m.json", data)
    assert (tmp_path / "m.json").read_text() == json.dumps(data, indent=2, sort_keys=True) + "\n"


def test_a_model_whose_training_record_holds_nan_is_not_saved(tmp_path):
    config = MLPConfig(4, (3,), 2, 0.0)
    model = build_mlp(config, np.random.default_rng(0))
    training = TrainingRecord(epochs=2, select_by="val_loss", selected_epoch=1, val_accuracy=0.5,
                              val_loss=0.5)
    save_model(tmp_path / "model", model, config, training=training)
    before = tree_bytes(tmp_path / "model")
    with pytest.raises(OutputError, match="val_loss is nan"):
        save_model(tmp_path / "model", model, config,
                   training=dataclasses.replace(training, val_loss=math.nan))
    assert tree_bytes(tmp_path / "model") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_the_training_log_refuses_a_non_finite_value(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "stages"))
    try:
        from _dvclive_log import LiveLogger
    finally:
        sys.path.pop(0)
    logger = LiveLogger(tmp_path / "dvclive" / NAME, NAME)
    logger.log_epoch(3, {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0,
                         "val_accuracy": 0.5})
    summary = (tmp_path / "dvclive" / NAME / "metrics.json").read_bytes()
    with pytest.raises(OutputError, match=r"val/loss = nan .*metrics\.json"):
        logger.log_epoch(6, {"epoch": 2, "train_loss": 1.0, "train_accuracy": 0.5,
                             "val_loss": math.nan, "val_accuracy": 0.5})
    with pytest.raises(OutputError, match="train/batch_loss = inf"):
        logger.log_step(7, 0.1, math.inf)
    assert (tmp_path / "dvclive" / NAME / "metrics.json").read_bytes() == summary
    assert json.loads(summary)  # strict JSON still


@pytest.mark.parametrize("file_name", ["metrics", "training.json"])
def test_info_refuses_a_nan_it_would_print_as_a_fact(tmp_path, capsys, file_name):
    model = write_model(tmp_path)
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({NAME: {"accuracy": 0.9, "loss": 0.1}}))
    target = metrics if file_name == "metrics" else model / file_name
    target.write_text(target.read_text().replace("0.1", "NaN").replace("0.5", "NaN"))
    with pytest.raises(SystemExit) as caught:
        numpynet_main(["info", str(model), "--metrics", str(metrics)])
    assert caught.value.code == 2
    assert_one_paragraph_error(2, capsys.readouterr().err, str(target), "NaN is no JSON number")


def scale_layers(project: Path, *factors: float) -> None:
    """Multiply the weights of the model's Linear layers by ``factors``, first layer first."""
    weights = project / "models" / NAME / WEIGHTS_FILE
    arrays = dict(np.load(weights))
    for name, factor in zip(("layers.1.weight", "layers.3.weight"), factors):
        arrays[name] = arrays[name] * np.float32(factor)
    save_npz(weights, arrays)


def test_a_model_sure_of_the_wrong_class_gets_a_large_finite_loss(tmp_path):
    # Probability ~ exp(-1e30) for the true class: log-probabilities stay finite, so does the loss.
    project = evaluable_project(tmp_path / "p")
    scale_layers(project, 1.0, 1e30)
    code, stderr = run_in_process("evaluate", project)
    assert code == 0, stderr
    text = (project / "metrics" / f"{NAME}.json").read_text()
    loss = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text}"))[NAME][
        "loss"]
    assert math.isfinite(loss) and loss > 1e20


def test_a_model_whose_outputs_overflow_is_refused_and_writes_nothing(tmp_path):
    project = evaluable_project(tmp_path / "p")
    scale_layers(project, 1e20, 1e20)  # each finite; their product is not
    code, stderr = run_in_process("evaluate", project)
    assert_one_paragraph_error(code, stderr, f"models/{NAME}", "NaN or infinite outputs",
                               "rerun the train stage")
    assert not (project / "metrics").exists() and not (project / "plots").exists()


# ---------------------------------------------------------------------------------------------
# Class names with any character
# ---------------------------------------------------------------------------------------------

ODD_CLASSES = ("a,b", 'say "hi"', "two\nlines", "ünï 中文 😀", "$\\frac{$", "100%",
               "tab\there")


def test_odd_class_names_survive_evaluate_info_and_predict(tmp_path, capsys):
    project = evaluable_project(tmp_path / "p", classes=ODD_CLASSES[:3])
    write_data(project, classes=ODD_CLASSES[:3])
    code, stderr = run_in_process("evaluate", project)
    assert code == 0, stderr
    model = str(project / "models" / NAME)
    Image.new("L", (4, 4), 128).save(tmp_path / "x.png")
    numpynet_main(["predict", str(tmp_path / "x.png"), "--model", model, "--top-k", "3"])
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "two\\nlines" in line  # one line per image, escaped
    numpynet_main(["info", model])
    assert "classes a,b, say \"hi\", two\\nlines" in capsys.readouterr().out
    numpynet_main(["predict", str(tmp_path / "x.png"), "--model", model, "--json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert {p["class"] for p in row["predictions"]} == set(ODD_CLASSES[:3])  # exact in JSON
    for classes in (ODD_CLASSES[3:6], ODD_CLASSES[5:]):  # the rest, three at a time
        write_data(project, classes=classes)
        write_model(project, classes=classes)
        code, stderr = run_in_process("evaluate", project)
        assert code == 0, stderr
        assert sorted(p.name for p in (project / "plots" / NAME).iterdir()) == [
            "confusion_matrix.png", "learning_curves.png", "misclassified.png",
            "per_class_accuracy.png"]
    json.loads((project / "metrics" / f"{NAME}.json").read_text())


def test_write_csv_round_trips_any_class_name(tmp_path):
    rows = [{"class": name, "accuracy": 0.5} for name in ODD_CLASSES]
    write_csv(tmp_path / "t.csv", ["class", "accuracy"], rows)
    with open(tmp_path / "t.csv", encoding="utf-8", newline="") as stream:
        read = list(csv.DictReader(stream))
    assert [row["class"] for row in read] == list(ODD_CLASSES)


# ---------------------------------------------------------------------------------------------
# Temporary files of a killed run
# ---------------------------------------------------------------------------------------------

KEPT_LOOK_ALIKES = (".out.json.0123456789AB.tmp", ".out.json.0123456789a.tmp", ".out.json.tmp",
                    "out.json.0123456789ab.tmp", ".out.json.0123456789ab.tmp.keep",
                    ".other.json.0123456789ab.tmp", ".out.json.part-0123456789abc",
                    ".out.0123456789ab.tmp", "notes.txt")


def test_a_write_sweeps_exactly_the_leftovers_of_its_destination(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    (folder / f".out.json.{HEX}.tmp").write_text("half")
    (folder / ".out.json.part-abcdefabcdef").write_text("part")
    (folder / ".out.json.fedcba987654.tmp").mkdir()
    (folder / ".out.json.fedcba987654.tmp" / "inner").write_text("x")
    (folder / ".out.json.aaaaaaaaaaaa.tmp").symlink_to(outside)  # removed, never followed
    for name in KEPT_LOOK_ALIKES:
        (folder / name).write_text("mine")
    assert len(leftovers(folder / "out.json")) == 4
    write_json(folder / "out.json", {"a": 1})
    assert sorted(p.name for p in folder.iterdir()) == sorted([*KEPT_LOOK_ALIKES, "out.json"])
    assert (outside / "precious").read_text() == "keep"
    with atomic_directory(folder / "out.json.d") as tmp:  # folders too, and only theirs
        (tmp / "f").write_text("x")
    assert (folder / ".out.json.0123456789ab.tmp.keep").exists()


def _leftover(path: Path, folder: bool = False) -> Path:
    if folder:
        path.mkdir(parents=True)
        (path / "half-written.npy").write_bytes(b"\x93NUMPY")
        (path / f".x.part-{HEX}").write_bytes(b"part")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    return path


def mirror_project(tmp_path: Path) -> Path:
    """A project whose dataset downloads from a local mirror, so download and preprocess run."""
    found = make_synthetic_idx_dataset(tmp_path / "mirror" / NAME, n_train=60, n_test=20,
                                       rng=np.random.default_rng(0))
    pins = {role: digest for role, (_, digest) in found.items()}
    return make_project(tmp_path / "p", data={"format": "idx", "sha256": pins, "urls": []})


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMPYNET_MIRROR", str(tmp_path / "mirror"))
    return mirror_project(tmp_path)


def test_each_stage_sweeps_the_leftovers_of_a_killed_run(mirror):
    project = mirror
    stale = {
        "validate": [_leftover(project / "data" / f".params-valid.{HEX}.tmp")],
        "download": [_leftover(project / "data" / "raw" / f".{NAME}.{HEX}.tmp", folder=True)],
        "preprocess": [_leftover(project / "data" / "processed" / f".{NAME}.{HEX}.tmp", True)],
        "train": [_leftover(project / "models" / f".{NAME}.{HEX}.tmp", folder=True),
                  _leftover(project / "checkpoints" / f".{NAME}.npz.{HEX}.tmp")],
        "evaluate": [_leftover(project / "plots" / f".{NAME}.{HEX}.tmp", folder=True),
                     _leftover(project / "metrics" / f".{NAME}.json.{HEX}.tmp")],
    }
    kept = _leftover(project / "models" / f".{NAME}.{HEX}.tmp.notes")
    for stage, paths in stale.items():
        code, stderr = run_in_process(stage, project)
        assert code == 0, f"{stage}: {stderr}"
        for path in paths:
            assert not os.path.lexists(path), f"{stage} left {path}"
    assert kept.read_bytes() == b"half"


# ---------------------------------------------------------------------------------------------
# A full disk, a quota, a read-only or forbidden folder, in every stage
# ---------------------------------------------------------------------------------------------

FIXES = {errno.ENOSPC: "free disk space", errno.EDQUOT: "quota", errno.EROFS: "read-only",
         errno.EACCES: "permission"}


@pytest.fixture(scope="module")
def built_once(tmp_path_factory):
    """A mirror project after one successful run of every stage (built once, then copied)."""
    root = tmp_path_factory.mktemp("built")
    project = mirror_project(root)
    previous = os.environ.get("NUMPYNET_MIRROR")
    os.environ["NUMPYNET_MIRROR"] = str(root / "mirror")
    try:
        for stage in ("validate", "download", "preprocess", "train", "evaluate"):
            code, stderr = run_in_process(stage, project)
            assert code == 0, f"{stage}: {stderr}"
    finally:
        if previous is None:
            del os.environ["NUMPYNET_MIRROR"]
        else:
            os.environ["NUMPYNET_MIRROR"] = previous
    return root


@pytest.fixture
def built(built_once, tmp_path, monkeypatch):
    """A private copy of :func:`built_once`'s project, its mirror set for downloads."""
    shutil.copytree(built_once, tmp_path / "built", symlinks=True)
    monkeypatch.setenv("NUMPYNET_MIRROR", str(tmp_path / "built" / "mirror"))
    return tmp_path / "built" / "p"


STAGE_WRITES = [
    # stage, the path fragment whose writes fail, the output named, outputs that must not change
    ("validate", "params-valid", "data/params-valid", ["data/params-valid"]),
    ("download", f"raw/.{NAME}", f"data/raw/{NAME}/", [f"data/raw/{NAME}"]),
    ("preprocess", f"processed/.{NAME}", f"data/processed/{NAME}", [f"data/processed/{NAME}"]),
    ("train", f"models/.{NAME}", f"models/{NAME}", [f"models/{NAME}"]),
    ("train", "checkpoints/", f"checkpoints/{NAME}.npz", [f"models/{NAME}"]),
    ("train", f"dvclive/{NAME}", f"dvclive/{NAME}", [f"models/{NAME}"]),
    ("evaluate", f"plots/.{NAME}", f"plots/{NAME}", [f"plots/{NAME}", f"metrics/{NAME}.json"]),
    ("evaluate", "metrics/", f"metrics/{NAME}.json", [f"plots/{NAME}", f"metrics/{NAME}.json"]),
]


@pytest.mark.parametrize("stage, fragment, named, unchanged", STAGE_WRITES,
                         ids=[f"{s}-{f.strip('/.')}" for s, f, _, _ in STAGE_WRITES])
def test_a_full_disk_leaves_the_previous_outputs_and_says_so(
    built, monkeypatch, stage, fragment, named, unchanged
):
    project = built
    before = tree_bytes(*(project / path for path in unchanged))
    with failing_writes(monkeypatch, fragment, errno.ENOSPC):
        code, stderr = run_in_process(stage, project)
    assert_one_paragraph_error(code, stderr, named, "free disk space")
    assert tree_bytes(*(project / path for path in unchanged)) == before
    for path in unchanged:
        output = project / path
        assert siblings(output.parent, output.name) == [], f"temporary files beside {output}"


@pytest.mark.parametrize("code_", [errno.EDQUOT, errno.EROFS, errno.EACCES])
def test_other_environment_errors_on_outputs_are_messages_too(tmp_path, monkeypatch, code_):
    project = evaluable_project(tmp_path / "p")
    with failing_writes(monkeypatch, "metrics/", code_):
        code, stderr = run_in_process("evaluate", project)
    assert_one_paragraph_error(code, stderr, f"metrics/{NAME}.json", FIXES[code_])
    assert not (project / "plots" / NAME).exists()  # nothing half-written: the pictures neither


def test_an_unreadable_input_names_the_file(tmp_path, monkeypatch):
    project = make_project(tmp_path / "p")
    write_data(project)
    real = Path.read_text

    def forbidden(path, *args, **kwargs):
        if path.name == "meta.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", forbidden)
    code, stderr = run_in_process("train", project)
    assert_one_paragraph_error(code, stderr, f"train@{NAME}", "permission denied",
                               f"data/processed/{NAME}/meta.json", "chmod")


def test_a_failed_final_rename_puts_the_previous_folder_back(tmp_path, monkeypatch):
    dest = tmp_path / "models" / NAME
    with atomic_directory(dest) as tmp:
        (tmp / "weights.npz").write_bytes(b"old")
    real_replace, failed = os.replace, []

    def failing(source, target):
        # The new folder's rename onto dest fails; moving the old one back must still work.
        if Path(target) == dest and (Path(source) / "weights.npz").read_bytes() == b"new":
            failed.append(source)
            raise OSError(errno.EACCES, "Permission denied", str(target))
        return real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", failing)
    with pytest.raises(OutputError, match=f"cannot write {dest}: permission denied"):
        with atomic_directory(dest) as tmp:
            (tmp / "weights.npz").write_bytes(b"new")
    assert failed and tree_bytes(dest) == {str(dest / "weights.npz"): b"old"}
    assert sorted(p.name for p in dest.parent.iterdir()) == [NAME]


def test_an_output_parent_that_is_a_file_is_named(tmp_path):
    (tmp_path / "metrics").write_text("not a folder")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        write_json(tmp_path / "metrics" / "m.json", {})


# ---------------------------------------------------------------------------------------------
# MemoryError becomes a message; programming errors keep their traceback
# ---------------------------------------------------------------------------------------------


def test_a_memory_error_names_the_stage(tmp_path, monkeypatch):
    project = evaluable_project(tmp_path / "p")

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 4.00 TiB for an array with shape (2**40,)")

    monkeypatch.setattr("numpynet.evaluation.flip_horizontally", exhausted)
    monkeypatch.setattr("numpynet.nn.model.Sequential.forward", exhausted)
    code, stderr = run_in_process("evaluate", project)
    assert_one_paragraph_error(code, stderr, f"evaluate@{NAME} ran out of memory", "4.00 TiB",
                               "larger than")
    assert not (project / "metrics").exists()


@pytest.mark.parametrize("error", [RuntimeError("bug"), OSError(errno.EINVAL, "Invalid argument"),
                                   KeyError("x"), ValueError("bug")])
def test_programming_errors_still_raise_with_their_traceback(error):
    def broken():
        raise error

    with pytest.raises(type(error)):
        run_stage(broken)


def test_an_os_error_of_a_bug_inside_a_writer_is_not_disguised(tmp_path):
    with pytest.raises(OSError) as caught:
        with atomic_path(tmp_path / "out.txt"):
            raise OSError(errno.EBADF, "Bad file descriptor")
    assert not isinstance(caught.value, OutputError) and caught.value.errno == errno.EBADF
    assert list(tmp_path.iterdir()) == []


def test_the_numpynet_command_names_itself(tmp_path, capsys, monkeypatch):
    model = write_model(tmp_path)

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr("numpynet.model_info.load_model", exhausted)
    with pytest.raises(SystemExit) as caught:
        numpynet_main(["info", str(model)])
    assert caught.value.code == 2
    assert capsys.readouterr().err.startswith("error: numpynet info ran out of memory:")

