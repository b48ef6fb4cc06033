"""Atomic writes, deterministic .npz archives, pickle-free saving and file permissions; no NaN or
infinity in any JSON, CSV fields that survive any class name, the leftovers of a killed run
swept, and a failed write that leaves the previous output as it was. Reading back: anything but
a regular file refused at once, a read capped at its bound."""

from __future__ import annotations

import csv
import errno
import json
import math
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers.hostile_data import ODD_CLASSES
from helpers.project import NAME, tree_bytes
from helpers.special_files import SPECIAL_KINDS, make_special, within
from numpynet import files
from numpynet.arrays import load_npy, load_npz
from numpynet.errors import OutputError
from numpynet.files import (
    RefusedFileError,
    atomic_directory,
    atomic_path,
    leftovers,
    open_regular_file,
    read_regular_file,
    regular_file_path,
    save_npy,
    save_npz,
    write_csv,
    write_json,
    write_text,
)


class Boom(Exception):
    """Raised inside a with-block to simulate a crash half-way through writing."""


def entries(directory):
    return sorted(path.name for path in directory.iterdir())


# --- atomic_path ---------------------------------------------------------------------------------


def test_atomic_path_replaces_dest_on_success(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with atomic_path(dest) as tmp:
        assert tmp != dest
        assert tmp.parent == dest.parent  # same filesystem: the rename is atomic
        tmp.write_text("new")
        assert dest.read_text() == "old"  # nothing visible before the block ends
    assert dest.read_text() == "new"
    assert entries(tmp_path) == ["out.txt"]


def test_atomic_path_failure_keeps_old_dest_and_leaves_no_temp(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(Boom):
        with atomic_path(dest) as tmp:
            tmp.write_text("half-writ")
            raise Boom
    assert dest.read_text() == "old"
    assert entries(tmp_path) == ["out.txt"]


def test_atomic_path_failure_without_old_dest_creates_nothing(tmp_path):
    dest = tmp_path / "sub" / "out.txt"
    with pytest.raises(Boom):
        with atomic_path(dest) as tmp:
            tmp.write_text("partial")
            raise Boom
    assert not dest.exists()
    assert entries(tmp_path / "sub") == []


# --- atomic_directory ----------------------------------------------------------------------------


def test_atomic_directory_replaces_existing_directory_on_success(tmp_path):
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "stale.txt").write_text("from the previous run")
    with atomic_directory(dest) as tmp:
        assert tmp.parent == tmp_path and tmp != dest
        (tmp / "fresh.txt").write_text("new")
        assert entries(dest) == ["stale.txt"]  # untouched until the block succeeds
    assert entries(dest) == ["fresh.txt"]  # replaced, not merged
    assert (dest / "fresh.txt").read_text() == "new"
    assert entries(tmp_path) == ["model"]


def test_atomic_directory_failure_keeps_old_directory_and_leaves_no_temp(tmp_path):
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "weights.txt").write_text("good")
    with pytest.raises(Boom):
        with atomic_directory(dest) as tmp:
            (tmp / "weights.txt").write_text("half")
            (tmp / "nested").mkdir()
            (tmp / "nested" / "file").write_text("x")
            raise Boom
    assert entries(dest) == ["weights.txt"]
    assert (dest / "weights.txt").read_text() == "good"
    assert entries(tmp_path) == ["model"]  # no hidden temporary directory left


def test_atomic_directory_failure_without_old_directory_creates_nothing(tmp_path):
    with pytest.raises(Boom):
        with atomic_directory(tmp_path / "model") as tmp:
            (tmp / "a").write_text("a")
            raise Boom
    assert entries(tmp_path) == []


# --- save_npz / load_npz -------------------------------------------------------------------------


def sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "weight": rng.standard_normal((5, 3)).astype(np.float32),
        "transposed": np.arange(12, dtype=np.float64).reshape(3, 4).T,  # not C-contiguous
        "labels": np.arange(7, dtype=np.int64),
        "step": np.array(42, dtype=np.int64),  # 0-d must stay 0-d
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


def test_save_npz_round_trips(tmp_path):
    arrays = sample_arrays()
    save_npz(tmp_path / "a.npz", arrays)
    loaded = load_npz(tmp_path / "a.npz")
    assert sorted(loaded) == sorted(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype, name
        assert loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array)
    # np.load reads it as an ordinary .npz too.
    with np.load(tmp_path / "a.npz") as archive:
        np.testing.assert_array_equal(archive["weight"], arrays["weight"])


def test_save_npz_is_byte_identical_and_uses_the_fixed_epoch(tmp_path):
    arrays = sample_arrays()
    save_npz(tmp_path / "a.npz", arrays)
    # Same content, different insertion order and memory layout.
    reordered = {name: arrays[name] for name in reversed(list(arrays))}
    reordered["weight"] = np.asfortranarray(arrays["weight"])
    save_npz(tmp_path / "b.npz", reordered)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == sorted(f"{name}.npy" for name in arrays)
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)


def test_save_npz_replaces_existing_file_and_leaves_no_temp(tmp_path):
    save_npz(tmp_path / "a.npz", {"x": np.zeros(3)})
    save_npz(tmp_path / "a.npz", {"y": np.ones(2)})
    assert list(load_npz(tmp_path / "a.npz")) == ["y"]
    assert entries(tmp_path) == ["a.npz"]


def test_save_npy_round_trips_and_mmaps(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4).T
    save_npy(tmp_path / "x.npy", array)
    np.testing.assert_array_equal(load_npy(tmp_path / "x.npy"), array)
    mapped = load_npy(tmp_path / "x.npy", mmap=True)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, array)
    save_npy(tmp_path / "s.npy", np.array(3.5))
    assert load_npy(tmp_path / "s.npy").shape == ()


def object_array():
    return np.array([{"payload": 1}, None], dtype=object)


def test_save_npy_and_npz_refuse_object_arrays(tmp_path):
    with pytest.raises(ValueError):
        save_npy(tmp_path / "x.npy", object_array())
    with pytest.raises(ValueError):
        save_npz(tmp_path / "x.npz", {"x": object_array()})
    assert entries(tmp_path) == []  # the failed writes left nothing behind


# --- JSON, text, CSV -----------------------------------------------------------------------------


def test_write_json_is_sorted_and_stable(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": {"z": [1, 2], "y": 0.5}})
    write_json(tmp_path / "b.json", {"a": {"y": 0.5, "z": [1, 2]}, "b": 1})
    text = (tmp_path / "a.json").read_text(encoding="utf-8")
    assert text == (tmp_path / "b.json").read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert text.index('"a"') < text.index('"b"')
    assert text.index('"y"') < text.index('"z"')
    assert json.loads(text) == {"a": {"y": 0.5, "z": [1, 2]}, "b": 1}


def test_write_csv(tmp_path):
    write_csv(tmp_path / "t.csv", ["epoch", "loss"], [{"epoch": 1, "loss": 0.5, "extra": 0}])
    assert (tmp_path / "t.csv").read_text() == "epoch,loss\n1,0.5\n"


@pytest.mark.hostile
def test_write_csv_round_trips_any_class_name(tmp_path):
    rows = [{"class": name, "accuracy": 0.5} for name in ODD_CLASSES]
    write_csv(tmp_path / "t.csv", ["class", "accuracy"], rows)
    with open(tmp_path / "t.csv", encoding="utf-8", newline="") as stream:
        read = list(csv.DictReader(stream))
    assert [row["class"] for row in read] == list(ODD_CLASSES)


# --- no NaN or infinity in a JSON file ----------------------------------------------------------


def siblings(folder: Path, output: str) -> list[str]:
    """Hidden names beside ``output`` in ``folder``: temporaries a failed write left."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{output}.")) if (
        folder.is_dir()) else []


@pytest.mark.hostile
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


@pytest.mark.hostile
def test_write_json_names_a_value_nested_in_a_list(tmp_path):
    with pytest.raises(OutputError, match=r"history\.1\.val_loss is inf"):
        write_json(tmp_path / "t.json", {"history": [{"val_loss": 1.0}, {"val_loss": math.inf}]})
    assert not (tmp_path / "t.json").exists()


@pytest.mark.hostile
def test_write_json_text_is_unchanged_for_finite_values(tmp_path):
    data = {"b": {"loss": 0.1 + 0.2, "accuracy": 1e-300, "epoch": 3}, "a": [1.5e308, -0.0]}
    write_json(tmp_path / "m.json", data)
    assert (tmp_path / "m.json").read_text() == json.dumps(data, indent=2, sort_keys=True) + "\n"


# --- temporary files of a killed run, failed renames, bugs --------------------------------------


HEX = "0123456789ab"
KEPT_LOOK_ALIKES = (".out.json.0123456789AB.tmp", ".out.json.0123456789a.tmp", ".out.json.tmp",
                    "out.json.0123456789ab.tmp", ".out.json.0123456789ab.tmp.keep",
                    ".other.json.0123456789ab.tmp", ".out.json.part-0123456789abc",
                    ".out.0123456789ab.tmp", "notes.txt")


@pytest.mark.hostile
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


@pytest.mark.hostile
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


@pytest.mark.hostile
def test_an_output_parent_that_is_a_file_is_named(tmp_path):
    (tmp_path / "metrics").write_text("not a folder")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        write_json(tmp_path / "metrics" / "m.json", {})


@pytest.mark.hostile
def test_an_os_error_of_a_bug_inside_a_writer_is_not_disguised(tmp_path):
    with pytest.raises(OSError) as caught:
        with atomic_path(tmp_path / "out.txt"):
            raise OSError(errno.EBADF, "Bad file descriptor")
    assert not isinstance(caught.value, OutputError) and caught.value.errno == errno.EBADF
    assert list(tmp_path.iterdir()) == []


# --- permissions ---------------------------------------------------------------------------------


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_umask(mask):
        os.umask(mask)

    yield set_umask
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize(
    "mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)]
)
def test_written_files_get_umask_permissions(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    write_json(tmp_path / "a.json", {"a": 1})
    write_text(tmp_path / "a.txt", "x")
    write_csv(tmp_path / "a.csv", ["a"], [{"a": 1}])
    save_npy(tmp_path / "a.npy", np.zeros(2))
    save_npz(tmp_path / "a.npz", {"a": np.zeros(2)})
    with atomic_directory(tmp_path / "d") as tmp:
        (tmp / "inner.txt").write_text("x")
    for name in ("a.json", "a.txt", "a.csv", "a.npy", "a.npz"):
        assert mode(tmp_path / name) == file_mode, name  # not mkstemp's private 0600
    assert mode(tmp_path / "d") == dir_mode  # not mkdtemp's private 0700


# ---------------------------------------------------------------------------------------------
# Reading back: regular files only, each read capped
# ---------------------------------------------------------------------------------------------


def _socket_file(path: Path) -> Path:
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.close()  # the socket file stays behind, as a crashed server leaves it
    return path


@pytest.mark.hostile
@pytest.mark.parametrize("kind", [*SPECIAL_KINDS, "socket"])
def test_a_file_read_back_that_is_no_regular_file_is_refused_at_once(tmp_path, kind):
    path = tmp_path / "record.json"
    _socket_file(path) if kind == "socket" else make_special(path, kind)
    for read in (lambda: read_regular_file(path, 1 << 20, "BOUND in here"),
                 lambda: open_regular_file(path).__enter__(),
                 lambda: regular_file_path(path).__enter__()):
        with pytest.raises(RefusedFileError) as caught:
            within(read)
        message = str(caught.value)
        assert message.startswith(str(path)) and "not a regular file" in message, message
        assert ("a link to" in message) == kind.startswith("link"), message
    assert os.path.lexists(path)  # refused, never removed: the caller decides


@pytest.mark.hostile
def test_a_read_is_capped_at_its_bound_before_a_byte_is_read(tmp_path):
    import tracemalloc

    path = tmp_path / "record.json"
    path.write_bytes(b"x" * 100)
    assert read_regular_file(path, 100, "BOUND") == b"x" * 100  # exactly the bound passes
    with pytest.raises(RefusedFileError, match=r"holds 100 bytes, more than the 99 .*\(BOUND\)"):
        read_regular_file(path, 99, "BOUND")
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as stream:  # sparse: 1 TiB on no disk space
        stream.truncate(1 << 40)
    tracemalloc.start()
    try:
        with pytest.raises(RefusedFileError, match="1,099,511,627,776 bytes"):
            read_regular_file(huge, 16 << 20, "BOUND")
        small = read_regular_file(path, 16 << 20, "BOUND")  # asks for what the file holds
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert small == b"x" * 100 and peak < 1 << 20


@pytest.mark.hostile
def test_a_checked_path_reopens_the_file_checked_not_what_replaced_it(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"checked")
    with regular_file_path(path) as checked:
        assert str(checked) == str(path)  # messages name the file the user knows
        os.unlink(path)
        os.mkfifo(path)  # swapped in after the check: never opened
        assert within(lambda: Path(checked).read_bytes()) == b"checked"
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing", 10, "BOUND")
    with pytest.raises(IsADirectoryError):
        read_regular_file(tmp_path, 10, "BOUND")


@pytest.mark.hostile
def test_json_nested_too_deeply_is_a_value_error_not_a_recursion_error():
    """Every reader of records and checkpoints catches ValueError; "[[[[…" raised
    RecursionError past them (a traceback, and a checkpoint never discarded)."""
    with pytest.raises(ValueError, match="nested too deeply"):
        files.parse_json("[" * 200_000)
