"""Mismatched and damaged artifacts: a model folder, a checkpoint or a processed dataset that does
not fit, or whose arrays lie about themselves, ends a stage or command with exit code 2 and one
paragraph naming the file(s), the problem and the fix; never a traceback, a huge allocation or a
silently wrong number, and never anything written.

Each case is a category of hostile input (wrong shape, wrong dtype, pickled objects, a header
declaring a huge array, truncation...), so an unseen case of the same kind meets the same check:
headers are checked against the file before any data is read (numpynet.arrays), arrays against
what the model or meta.json says, and the model against the data.
"""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers.hardening_stages import (
    NAME,
    assert_one_paragraph_error,
    evaluable_project,
    make_project,
    run_in_process,
    write_data,
    write_model,
)
from numpynet.arrays import ArrayFileError, load_npy, load_npz
from numpynet.model_folder import ARCHITECTURE_FILE, DATASET_FILE, WEIGHTS_FILE, load_model
from numpynet.cli import main as numpynet_main
from numpynet.errors import DataFormatError
from numpynet.files import save_npz
from numpynet.training.checkpoints import CheckpointStore, Snapshot
from numpynet.training.loop import RunState

HUGE = 2**40  # elements a header may declare in a file of a few bytes


def huge_header(dtype="<f4", shape=(HUGE,)) -> bytes:
    """An .npy member whose header declares ``shape`` but whose data is 64 bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue() + b"\0" * 64


def rewrite_npz(path: Path, arrays: dict, raw: dict[str, bytes] | None = None) -> None:
    """Write ``arrays`` (and ``raw`` member bytes) as an uncompressed .npz, like np.savez."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=True)
            archive.writestr(f"{name}.npy", buffer.getvalue())
        for name, content in (raw or {}).items():
            archive.writestr(f"{name}.npy", content)


def no_outputs_written(project: Path) -> None:
    for output in (project / "metrics" / f"{NAME}.json", project / "plots" / NAME):
        assert not output.exists(), f"{output} written by a failed stage"
    for folder in (project / "metrics", project / "plots"):
        if folder.is_dir():
            assert not list(folder.iterdir()), f"left in {folder}: {list(folder.iterdir())}"


# ---------------------------------------------------------------------------------------------
# A model evaluated on data it does not fit
# ---------------------------------------------------------------------------------------------

MISMATCHES = {
    # name: (model keywords, data keywords, what the message must name)
    "input_size": ({"shape": (4, 4, 1)}, {"shape": (5, 5, 1)}, ["4x4x1", "5x5x1", "16", "25"]),
    "image_shape": ({"shape": (2, 8, 1)}, {"shape": (4, 4, 1)}, ["2x8x1", "4x4x1", "input shape"]),
    "more_classes": ({}, {"classes": ("a", "b", "c", "d")}, ["3 classes", "4 classes"]),
    "fewer_classes": ({}, {"classes": ("a", "b")}, ["3 classes", "2 classes"]),
    "class_names": ({"classes": ("x", "y", "z")}, {}, ["class names", "'x'", "'a'"]),
    "standardization": ({"mean": [0.5], "std": [2.0]}, {}, ["standardization", "0.5"]),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_evaluate_refuses_a_model_that_does_not_fit_the_data(tmp_path, case):
    model_keywords, data_keywords, named = MISMATCHES[case]
    project = evaluable_project(tmp_path / "p", **model_keywords)
    write_data(project, **data_keywords)
    code, stderr = run_in_process("evaluate", project)
    assert_one_paragraph_error(
        code, stderr, f"models/{NAME}", f"data/processed/{NAME}", f"dvc repro train@{NAME}",
        *named,
    )
    no_outputs_written(project)


@pytest.mark.parametrize("label", [3, 7, -1, 2**40])
def test_evaluate_refuses_labels_outside_the_classes(tmp_path, label):
    project = evaluable_project(tmp_path / "p")
    path = project / "data" / "processed" / NAME / "y_test.npy"
    labels = np.load(path)
    labels[5] = label
    np.save(path, labels)
    code, stderr = run_in_process("evaluate", project)
    assert_one_paragraph_error(code, stderr, f"data/processed/{NAME}/y_test.npy", str(label),
                               f"dvc repro --force preprocess@{NAME}")
    no_outputs_written(project)


def test_a_model_saved_without_its_dataset_record_still_evaluates(tmp_path):
    # Older model folders have no dataset.json: only the architecture is checked against the data.
    project = evaluable_project(tmp_path / "p")
    (project / "models" / NAME / DATASET_FILE).unlink()
    code, stderr = run_in_process("evaluate", project)
    assert code == 0, stderr
    write_data(project, classes=("a", "b"))
    code, stderr = run_in_process("evaluate", project)
    assert_one_paragraph_error(code, stderr, "3 classes", "2 classes")


def console(capsys, *argv: str) -> tuple[int, str]:
    """Run the ``numpynet`` command in this process: its exit code and stderr."""
    try:
        numpynet_main(list(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["info", "predict"])
def test_info_and_predict_refuse_a_folder_whose_record_contradicts_the_model(
    tmp_path, capsys, command
):
    model = write_model(tmp_path, classes=("a", "b", "c"))
    record = json.loads((model / DATASET_FILE).read_text())
    (model / DATASET_FILE).write_text(json.dumps({**record, "classes": ["a", "b"]}))
    argv = ["info", str(model)] if command == "info" else ["predict", "x.png", "--model",
                                                            str(model)]
    code, stderr = console(capsys, *argv)
    assert_one_paragraph_error(code, stderr, DATASET_FILE, "2 classes", "3 outputs",
                               "dvc repro train@")


@pytest.mark.parametrize("command", ["info", "predict"])
def test_info_and_predict_refuse_weights_of_another_dtype(tmp_path, capsys, command):
    model = write_model(tmp_path)
    arrays = dict(np.load(model / WEIGHTS_FILE))
    save_npz(model / WEIGHTS_FILE, {k: v.astype(np.float64) for k, v in arrays.items()})
    argv = ["info", str(model)] if command == "info" else ["predict", "x.png", "--model",
                                                            str(model)]
    code, stderr = console(capsys, *argv)
    assert_one_paragraph_error(code, stderr, WEIGHTS_FILE, "float64", "float32",
                               "rerun the train stage")


# ---------------------------------------------------------------------------------------------
# Damaged weights and architecture: load_model
# ---------------------------------------------------------------------------------------------


def _as(dtype):
    def damage(model: Path, arrays: dict) -> None:
        arrays["layers.1.weight"] = arrays["layers.1.weight"].astype(dtype)
        rewrite_npz(model / WEIGHTS_FILE, arrays)
    return damage


def _pickled(model, arrays):
    arrays["layers.1.bias"] = np.array([{"payload": 1}], dtype=object)
    rewrite_npz(model / WEIGHTS_FILE, arrays)


def _missing(model, arrays):
    del arrays["layers.1.bias"]
    save_npz(model / WEIGHTS_FILE, arrays)


def _extra(model, arrays):
    save_npz(model / WEIGHTS_FILE, {**arrays, "layers.9.weight": np.zeros(3, np.float32)})


def _wrong_shape(model, arrays):
    save_npz(model / WEIGHTS_FILE, {**arrays, "layers.1.bias": np.zeros(9, np.float32)})


def _non_finite(model, arrays):
    arrays["layers.3.weight"][0, 0] = np.inf
    save_npz(model / WEIGHTS_FILE, arrays)


def _huge_header(model, arrays):
    del arrays["layers.1.bias"]
    rewrite_npz(model / WEIGHTS_FILE, arrays, {"layers.1.bias": huge_header()})


def _huge_expected_shape(model, arrays):  # the header matches its data, but not the model
    rewrite_npz(model / WEIGHTS_FILE, {**arrays, "layers.1.bias": np.zeros(HUGE // 2**30)})


def _compressed(model, arrays):
    np.savez_compressed(model / WEIGHTS_FILE, **arrays)


def _overlapping_members(model, arrays):
    # A "zip bomb": the central directory lists one member's data under many names.
    content = (model / WEIGHTS_FILE).read_bytes()
    end = content.rindex(b"PK\x05\x06")
    size, offset = int.from_bytes(content[end + 12:end + 16], "little"), int.from_bytes(
        content[end + 16:end + 20], "little")
    first = content[offset:offset + 46 + int.from_bytes(content[offset + 28:offset + 30], "little")]
    name_length = len(first) - 46
    copies = b"".join(first[:46] + f"x{index:0{name_length - 5}d}.npy".encode()
                      for index in range(500))
    directory = content[offset:offset + size] + copies
    count = int.from_bytes(content[end + 10:end + 12], "little") + 500
    tail = (content[end:end + 8] + count.to_bytes(2, "little") * 2
            + len(directory).to_bytes(4, "little") + offset.to_bytes(4, "little") + b"\0\0")
    (model / WEIGHTS_FILE).write_bytes(content[:offset] + directory + tail)


def _lying_member_size(model, arrays):
    content = bytearray((model / WEIGHTS_FILE).read_bytes())
    entry = content.index(b"PK\x01\x02")
    content[entry + 20:entry + 28] = (2**31).to_bytes(4, "little") * 2  # both sizes
    (model / WEIGHTS_FILE).write_bytes(bytes(content))


def _truncated(model, arrays):
    content = (model / WEIGHTS_FILE).read_bytes()
    (model / WEIGHTS_FILE).write_bytes(content[: len(content) * 2 // 3])


def _not_a_zip(model, arrays):
    (model / WEIGHTS_FILE).write_bytes(b"\x93NUMPY garbage" * 1000)


def _architecture(**values):
    def damage(model: Path, arrays: dict) -> None:
        record = json.loads((model / ARCHITECTURE_FILE).read_text())
        (model / ARCHITECTURE_FILE).write_text(json.dumps({**record, **values}))
    return damage


WEIGHT_DAMAGE = {
    "float64": (_as(np.float64), "float64"),
    "int32": (_as(np.int32), "int32"),
    "bool": (_as(bool), "bool"),
    "big_endian": (_as(">f4"), ">f4"),
    "complex": (_as(np.complex64), "complex64"),
    "pickled_object": (_pickled, "pickled Python objects"),
    "missing_array": (_missing, "lacks the arrays ['layers.1.bias']"),
    "extra_array": (_extra, "unexpected arrays ['layers.9.weight']"),
    "wrong_shape": (_wrong_shape, "shape (9,)"),
    "non_finite": (_non_finite, "NaN or infinite"),
    "huge_header": (_huge_header, "1099511627776"),
    "huge_but_consistent_member": (_huge_expected_shape, "shape (1024,)"),
    "compressed": (_compressed, "compressed"),
    "overlapping_members": (_overlapping_members, "more bytes than the file holds"),
    "lying_member_size": (_lying_member_size, "more bytes than the file holds"),
    "truncated": (_truncated, WEIGHTS_FILE),
    "not_a_zip": (_not_a_zip, "not a readable .npz"),
    "absurd_input_size": (_architecture(input_size=10**11), "more than the"),
    "absurd_hidden_sizes": (_architecture(hidden_sizes=[10**9, 10**9]), "more than the"),
    "absurd_class_count": (_architecture(num_classes=2**40), "more than the"),
    "nan_dropout": (_architecture(dropout=float("nan")), "NaN is no JSON number"),
    "negative_size": (_architecture(input_size=-16), "input_size"),
}


@pytest.mark.parametrize("case", sorted(WEIGHT_DAMAGE))
def test_damaged_weights_or_architecture_are_refused_with_bounded_memory(tmp_path, case):
    damage, named = WEIGHT_DAMAGE[case]
    model = write_model(tmp_path)
    damage(model, dict(np.load(model / WEIGHTS_FILE)))
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError) as caught:
            load_model(model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert named in message, message
    assert str(model) in message and "rerun the train stage" in message, message
    assert "allow_pickle" not in message, message
    assert peak < 16 * 2**20, f"{peak:,} bytes allocated to refuse a {case} model"


def test_the_evaluate_stage_refuses_damaged_weights_naming_the_file(tmp_path):
    project = evaluable_project(tmp_path / "p")
    _huge_header(project / "models" / NAME, dict(np.load(project / "models" / NAME / WEIGHTS_FILE)))
    code, stderr = run_in_process("evaluate", project)
    assert_one_paragraph_error(code, stderr, f"models/{NAME}/{WEIGHTS_FILE}",
                               "truncated or corrupt", "rerun the train stage")
    no_outputs_written(project)


# ---------------------------------------------------------------------------------------------
# Damaged training checkpoints: discarded with a message, memory bounded
# ---------------------------------------------------------------------------------------------

FINGERPRINT = {"code": "c", "data": "d"}


def saved_checkpoint(path: Path) -> Path:
    weights = {"layers.1.weight": np.ones((4, 2), np.float32)}
    optimizer = {"step": np.int64(3), "m.layers.1.weight": np.zeros((4, 2), np.float32)}
    generators = {"init": np.random.default_rng(0).bit_generator.state}
    state = RunState(1, [{"epoch": 1}], [0.1], [0.5], 0.5, 1, dict(weights))
    CheckpointStore(path, FINGERPRINT, log=lambda _: None).write(
        Snapshot(weights, optimizer, generators, state))
    return path


def _record(**changes):
    def damage(path: Path, arrays: dict) -> None:
        record = json.loads(arrays["record"].tobytes())
        record.update(changes)
        for key in [k for k, v in changes.items() if v is None and k != "best_score"]:
            del record[key]
        arrays["record"] = np.frombuffer(json.dumps(record).encode(), np.uint8)
        save_npz(path, arrays)
    return damage


def _checkpoint_array(key, value):
    def damage(path: Path, arrays: dict) -> None:
        rewrite_npz(path, {**arrays, key: value})
    return damage


def _checkpoint_huge(path, arrays):
    del arrays["model:layers.1.weight"]
    rewrite_npz(path, arrays, {"model:layers.1.weight": huge_header()})


CHECKPOINT_DAMAGE = {
    "huge_header": (_checkpoint_huge, "1099511627776"),
    "pickled": (_checkpoint_array("model:layers.1.weight", np.array([{}], dtype=object)),
                "pickled Python objects"),
    "complex": (_checkpoint_array("model:layers.1.weight", np.ones((4, 2), np.complex64)),
                "complex64"),
    "float64_weights": (_checkpoint_array("model:layers.1.weight", np.ones((4, 2))), "float64"),
    "int_optimizer_state": (_checkpoint_array("optimizer:m.layers.1.weight",
                                              np.zeros((4, 2), np.int32)), "int32"),
    "best_of_another_shape": (_checkpoint_array("best:layers.1.weight",
                                                np.ones((5, 2), np.float32)), "best epoch"),
    "float_step": (_checkpoint_array("optimizer:step", np.float64(3.0)), "optimizer step"),
    "optimizer_of_another_shape": (_checkpoint_array("optimizer:m.layers.1.weight",
                                                     np.zeros((5, 2), np.float32)),
                                   "fits no model array"),
    "missing_record_key": (_record(epochs_done=None), "epochs_done"),
    "wrong_record_type": (_record(epochs_done="one"), "wrong type"),
    "unknown_generator": (_record(generators={"init": {"bit_generator": "os.system"}}),
                          "unknown random generator"),
    "bad_generator_state": (_record(generators={"init": {"bit_generator": "PCG64",
                                                          "state": {}}}), "state"),
    "member_without_group": (_checkpoint_array("nogroup", np.zeros(2)), "cannot be read"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_DAMAGE))
def test_a_damaged_checkpoint_is_discarded_with_a_message(tmp_path, case):
    damage, named = CHECKPOINT_DAMAGE[case]
    path = saved_checkpoint(tmp_path / "checkpoints" / "run.npz")
    assert CheckpointStore(path, FINGERPRINT, log=lambda _: None).load() is not None
    damage(path, dict(np.load(path)))
    messages = []
    tracemalloc.start()
    try:
        assert CheckpointStore(path, FINGERPRINT, log=messages.append).load() is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not path.exists()
    assert len(messages) == 1 and "discarded the checkpoint" in messages[0], messages
    assert named in messages[0] and "allow_pickle" not in messages[0], messages[0]
    assert peak < 16 * 2**20


def test_a_checkpoint_shaped_for_another_model_is_discarded(tmp_path):
    path = saved_checkpoint(tmp_path / "run.npz")
    messages = []
    store = CheckpointStore(path, FINGERPRINT, log=messages.append)
    assert store.load({"layers.1.weight": (5, 2)}) is None and not path.exists()
    assert "not shaped as this run's model" in messages[0]


def test_the_train_stage_starts_afresh_from_a_checkpoint_with_a_huge_header(tmp_path):
    project = make_project(tmp_path / "p")
    write_data(project)
    checkpoint = project / "checkpoints" / f"{NAME}.npz"
    checkpoint.parent.mkdir()
    rewrite_npz(checkpoint, {}, {"record": huge_header("|u1")})
    code, stderr = run_in_process("train", project)
    assert code == 0, stderr
    assert f"discarded the checkpoint checkpoints/{NAME}.npz" in stderr
    assert (project / "models" / NAME / WEIGHTS_FILE).is_file()
    assert not checkpoint.exists()


# ---------------------------------------------------------------------------------------------
# Damaged processed data, when train or evaluate reads it
# ---------------------------------------------------------------------------------------------


def _save(name, make):
    def damage(folder: Path) -> None:
        np.save(folder / name, make(np.load(folder / name)), allow_pickle=True)
    return damage


def _cut(name, keep):
    def damage(folder: Path) -> None:
        content = (folder / name).read_bytes()
        (folder / name).write_bytes(content[: int(len(content) * keep)])
    return damage


def _raw(name, content):
    def damage(folder: Path) -> None:
        (folder / name).write_bytes(content)
    return damage


def _meta(**values):
    def damage(folder: Path) -> None:
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps({**meta, **values}))
    return damage


def _set(array, index, value):
    array = array.copy()
    array[index] = value
    return array


def data_damage(split: str) -> dict:
    x, y = f"x_{split}.npy", f"y_{split}.npy"
    return {
        "missing_images": (lambda f: (f / x).unlink(), x, "dvc repro"),
        "missing_labels": (lambda f: (f / y).unlink(), y, "dvc repro"),
        "missing_meta": (lambda f: (f / "meta.json").unlink(), "meta.json", "dvc repro"),
        "truncated_images": (_cut(x, 0.6), x, "truncated or corrupt"),
        "truncated_labels": (_cut(y, 0.9), y, "truncated or corrupt"),
        "empty_file": (_raw(x, b""), x, "not a NumPy array file"),
        "not_npy": (_raw(y, b"label,0\n"), y, "not a NumPy array file"),
        "huge_header_images": (_raw(x, huge_header("<f4", (HUGE, 4, 4, 1))), x, "1099511627776"),
        "huge_header_labels": (_raw(y, huge_header("<i8")), y, "1099511627776"),
        "pickled_images": (_save(x, lambda a: np.array([{}], dtype=object)), x, "pickled"),
        "float64_images": (_save(x, lambda a: a.astype(np.float64)), x, "float64"),
        "float_labels": (_save(y, lambda a: a.astype(np.float32)), y, "float32"),
        "int32_labels": (_save(y, lambda a: a.astype(np.int32)), y, "int32"),
        "column_labels": (_save(y, lambda a: a[:, None]), y, "(N,)"),
        "fewer_images": (_save(x, lambda a: a[:-3]), x, "do not belong together"),
        "fewer_labels": (_save(y, lambda a: a[:-3]), y, "do not belong together"),
        "other_image_shape": (_save(x, lambda a: np.zeros((len(a), 5, 5, 1), np.float32)), x,
                              "5, 5, 1"),
        "label_too_large": (_save(y, lambda a: _set(a, 4, 3)), y, "label 3"),
        "negative_label": (_save(y, lambda a: _set(a, 4, -1)), y, "label -1"),
        "nan_pixel": (_save(x, lambda a: _set(a, (7, 1, 1, 0), np.nan)), x, "NaN"),
        "infinite_pixel": (_save(x, lambda a: _set(a, (7, 1, 1, 0), -np.inf)), x, "infinity"),
        "empty_split": (lambda f: (np.save(f / x, np.zeros((0, 4, 4, 1), np.float32)),
                                   np.save(f / y, np.zeros(0, np.int64)), _meta(
                                       sizes={split: 0})(f)), x, "empty"),
        "meta_not_json": (_raw("meta.json", b"{classes"), "meta.json", "meta.json"),
        "meta_absurd_shape": (_meta(image_shape=[10**6, 10**6, 1]), x, "1000000"),
        "meta_classes_string": (_meta(classes="abc"), "meta.json", "classes"),
        "meta_nan_std": (_raw("meta.json", b'{"classes": ["a", "b", "c"], "image_shape": '
                              b'[4, 4, 1], "sizes": {}, "mean": [0.0], "std": [NaN]}'),
                         "meta.json", "NaN"),
        "meta_two_channels": (_meta(image_shape=[4, 4, 2]), "meta.json", "channels"),
        "meta_unknown_key": (_meta(extra=1), "meta.json", "extra"),
    }


def _damaged_data_cases(split):
    return [pytest.param(split, case, id=f"{split}-{case}") for case in data_damage(split)]


@pytest.mark.parametrize("split, case",
                         _damaged_data_cases("train") + _damaged_data_cases("val")[:3])
def test_the_train_stage_refuses_damaged_processed_data(tmp_path, split, case):
    damage, file_name, named = data_damage(split)[case]
    project = make_project(tmp_path / "p")
    folder = write_data(project)
    damage(folder)
    code, stderr = run_in_process("train", project)
    fix = "dvc repro" if named == "dvc repro" else f"dvc repro --force preprocess@{NAME}"
    assert_one_paragraph_error(code, stderr, f"data/processed/{NAME}/{file_name}", named, fix)
    assert not (project / "models").exists() and not (project / "checkpoints").exists()


@pytest.mark.parametrize("case", ["truncated_images", "huge_header_labels", "pickled_images",
                                  "nan_pixel", "label_too_large", "empty_split",
                                  "meta_classes_string"])
def test_the_evaluate_stage_refuses_damaged_processed_data(tmp_path, case):
    damage, file_name, named = data_damage("test")[case]
    project = evaluable_project(tmp_path / "p")
    damage(project / "data" / "processed" / NAME)
    code, stderr = run_in_process("evaluate", project)
    assert_one_paragraph_error(code, stderr, f"data/processed/{NAME}/{file_name}", named,
                               f"preprocess@{NAME}")
    no_outputs_written(project)


# ---------------------------------------------------------------------------------------------
# The readers themselves
# ---------------------------------------------------------------------------------------------


def test_readers_give_numpys_arrays_for_valid_files(tmp_path):
    arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "step": np.array(3),
              "f": np.asfortranarray(np.ones((2, 3))), "empty": np.zeros((0, 4), np.float32),
              "flags": np.array([True, False])}
    np.savez(tmp_path / "a.npz", **arrays)
    loaded = load_npz(tmp_path / "a.npz")
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        np.testing.assert_array_equal(loaded[name], array)
    loaded["w"][0, 0] = 7  # writable, like NumPy's
    np.save(tmp_path / "a.npy", arrays["w"])
    np.testing.assert_array_equal(load_npy(tmp_path / "a.npy", mmap=True), arrays["w"])


@pytest.mark.parametrize("make", [
    lambda path: np.save(path, np.array(["text"])),
    lambda path: np.save(path, np.zeros(2, dtype=[("a", "<f4")])),
    lambda path: np.save(path, np.array([{}], dtype=object), allow_pickle=True),
    lambda path: path.write_bytes(b"\x93NUMPY\x03\x00" + b"\x00" * 20),
    lambda path: path.write_bytes(huge_header("<f8", (-5,))),
])
def test_load_npy_refuses_what_is_no_plain_number_array(tmp_path, make):
    make(tmp_path / "a.npy")
    with pytest.raises(ArrayFileError) as caught:
        load_npy(tmp_path / "a.npy")
    assert str(tmp_path / "a.npy") in str(caught.value)
    assert "allow_pickle" not in str(caught.value)
