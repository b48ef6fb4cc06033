"""Reading untrusted .npy and .npz files: NumPy's arrays for valid files, and everything else
(pickled objects, strings, records, a future format, a negative shape) refused naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.hostile_data import huge_header
from helpers.special_files import SPECIAL_KINDS, make_special, within
from numpynet.arrays import ArrayFileError, load_npy, load_npz


def object_array():
    return np.array([{"payload": 1}, None], dtype=object)


def test_load_npy_refuses_pickled_object_arrays(tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, object_array(), allow_pickle=True)
    with pytest.raises(ValueError):
        load_npy(path)
    with pytest.raises(ValueError):
        load_npy(path, mmap=True)


def test_load_npz_refuses_pickled_object_arrays(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, fine=np.zeros(2), evil=object_array())  # savez pickles object arrays
    with pytest.raises(ValueError):
        load_npz(path)


@pytest.mark.hostile
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


@pytest.mark.hostile
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


@pytest.mark.hostile
@pytest.mark.parametrize("kind", SPECIAL_KINDS)
@pytest.mark.parametrize("reader", ["npy", "npy_mmap", "npz"])
def test_an_array_file_that_is_no_regular_file_is_refused_at_once(tmp_path, kind, reader):
    """data/processed/*.npy and weights or checkpoints (.npz) as a FIFO or /dev/zero: a plain
    open would wait for a writer forever, or read without end."""
    path = make_special(tmp_path / ("x.npz" if reader == "npz" else "x.npy"), kind)
    read = {"npy": load_npy, "npy_mmap": lambda p: load_npy(p, mmap=True), "npz": load_npz}[reader]
    with pytest.raises(ArrayFileError, match="not a regular file"):
        within(lambda: read(path))
