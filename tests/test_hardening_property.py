"""One rule for every failure: a malformed input ends a stage with exit code 2 and one paragraph.

Hypothesis generates broken params files, idx files, CIFAR-10 binary archives and image files,
and runs the stage that reads each (validate for params, preprocess for data) the way DVC does,
with its arguments. Whatever the input, the stage either succeeds and writes its output, or
exits 2 with a message that starts with ``error:``, names the file or key, holds no blank line and
no traceback, and leaves nothing behind: no output, no temporary file. Any other exception is a
bug and fails the test with its traceback, which is the point: programming errors still show one.

The stages run in this process (:func:`helpers.hardening_stages.run_in_process`), since a fresh
interpreter per example would take a second each; a few cases at the end run as real processes
to prove the exit code there too.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from helpers.hardening_stages import run_in_process
from helpers.project import PROJECT, base_params, write_params
from helpers.stage_run import code_copy, run_stage
from helpers.synthetic import cifar10_members, random_cifar10_split, tar_bytes
from numpynet.stage_entry import run_stage as run_stage_main
from numpynet.config.file import read_params_file
from numpynet.data.catalog import IDX_FILE_NAMES
from numpynet.data.formats.idx import write_idx

STAGES = PROJECT / "stages"
EXAMPLES = settings(
    max_examples=int(os.environ.get("NUMPYNET_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples on every run: CI never fails by luck
)


# ---------------------------------------------------------------------------------------------
# The stages run as DVC runs them (see helpers.hardening_stages.run_in_process)
# ---------------------------------------------------------------------------------------------


def assert_refused(code: int, stderr: str, names: tuple[str, ...], output: Path) -> None:
    """Exit 2, one paragraph naming one of ``names``, and nothing written at ``output``."""
    assert code == 2, f"exit code {code}:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    message = stderr[stderr.index("error: "):] if "error: " in stderr else ""
    assert message, f"no 'error:' message:\n{stderr}"
    assert "\n\n" not in message.strip(), f"more than one paragraph:\n{message}"
    assert any(name in message for name in names), f"names none of {names}:\n{message}"
    assert not output.exists(), f"{output} was written although the stage failed"
    siblings = output.parent.iterdir() if output.parent.is_dir() else ()
    leftovers = [p.name for p in siblings if p.name.startswith(f".{output.name}.")]
    assert not leftovers, f"temporary files left beside {output}: {leftovers}"


@contextlib.contextmanager
def fresh_project():
    """A project folder with the stage scripts and ``data/`` (the stages' outputs go below it)."""
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        shutil.copytree(STAGES, project / "stages", ignore=shutil.ignore_patterns("__pycache__"))
        (project / "data").mkdir()
        yield project


# ---------------------------------------------------------------------------------------------
# Malformed params files: the validate stage
# ---------------------------------------------------------------------------------------------

SHIPPED = read_params_file(PROJECT / "params.yaml")

wild_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers(-3, 3), max_size=2),
)


def _key_paths(node, prefix=()):
    """Every path to a value in the nested dicts and lists of ``node``."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield prefix + (key,)
        if isinstance(value, (dict, list)) and value:
            yield from _key_paths(value, prefix + (key,))


PARAM_PATHS = list(_key_paths(SHIPPED))


def _parent(tree, path):
    node = tree
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def broken_params(draw):
    """The shipped params with one to three edits: a value replaced, a key deleted or added."""
    tree = copy.deepcopy(SHIPPED)
    surely_invalid = False
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_key_paths(tree)) or [()]
        path = draw(st.sampled_from(paths))
        edit = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            edit = "add"
        if edit == "replace":
            _parent(tree, path)[path[-1]] = draw(wild_values)
        elif edit == "delete":
            parent = _parent(tree, path)
            del parent[path[-1]]
        else:
            container = _parent(tree, path) if path else tree
            if isinstance(container, dict):
                container[f"unknown_{draw(st.integers(0, 99))}"] = draw(wild_values)
                surely_invalid = True
    return tree, surely_invalid


def _check_validate(project: Path, params_file: Path, must_fail: bool) -> None:
    marker = project / "data" / "params-valid"
    code, stderr = run_in_process(
        "validate", project, ["--out", "data/params-valid", "--params", str(params_file)]
    )
    if code == 0 and not must_fail:
        assert marker.read_text() == "params.yaml passed validation\n"
        return
    assert_refused(code, stderr, (str(params_file),), marker)


@EXAMPLES
@given(broken_params())
def test_edited_params_pass_or_are_refused_with_the_file_and_key(edit):
    tree, surely_invalid = edit
    with fresh_project() as project:
        params_file = project / "params.yaml"
        write_params(project, tree)
        _check_validate(project, params_file, must_fail=surely_invalid)


SHIPPED_TEXT = (PROJECT / "params.yaml").read_bytes()


@st.composite
def damaged_params_text(draw):
    """The shipped file's bytes cut short, with bytes overwritten or inserted, or random bytes."""
    how = draw(st.sampled_from(["truncate", "overwrite", "insert", "random"]))
    data = bytearray(SHIPPED_TEXT)
    if how == "random":
        return draw(st.binary(max_size=300))
    at = draw(st.integers(0, len(data)))
    if how == "truncate":
        return bytes(data[:at])
    chunk = draw(st.one_of(
        st.binary(min_size=1, max_size=8),
        st.sampled_from([b"\t", b":", b"- ", b"&a ", b"*a", b"{", b"]", b"'", b"\xff", b"!!python/object:os.system"]),
    ))
    if how == "overwrite":
        data[at : at + len(chunk)] = chunk
    else:
        data[at:at] = chunk
    return bytes(data)


@EXAMPLES
@given(damaged_params_text())
def test_damaged_params_text_passes_or_is_refused_with_the_file(data):
    with fresh_project() as project:
        params_file = project / "params.yaml"
        params_file.write_bytes(data)
        _check_validate(project, params_file, must_fail=False)


# ---------------------------------------------------------------------------------------------
# Malformed data files: the preprocess stage
# ---------------------------------------------------------------------------------------------


def _mutated(data: bytes, draw, header_bytes: int) -> tuple[bytes, bool]:
    """``data`` cut short, extended, or with bytes overwritten (often in the header).

    Returns the bytes and whether they are surely unreadable: empty or cut short.
    """
    how = draw(st.sampled_from(["truncate", "overwrite_header", "overwrite", "append", "random",
                                "empty"]))
    if how == "empty":
        return b"", True
    if how == "random":
        return draw(st.binary(min_size=1, max_size=2048)), False
    if how == "truncate":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))], True
    if how == "append":
        return data + draw(st.binary(min_size=1, max_size=64)), False
    limit = header_bytes if how == "overwrite_header" else len(data)
    at = draw(st.integers(0, max(min(limit, len(data)) - 1, 0)))
    chunk = draw(st.binary(min_size=1, max_size=8))
    mutated = bytearray(data)
    mutated[at : at + len(chunk)] = chunk
    return bytes(mutated[: max(len(data), at + len(chunk))]), False


def _preprocess(project: Path, name: str, params: dict) -> tuple[int, str, Path]:
    write_params(project, params)
    out = project / "data" / "processed" / name
    code, stderr = run_in_process(
        "preprocess", project, [name, "--raw", f"data/raw/{name}", "--out", f"data/processed/{name}"]
    )
    return code, stderr, out


_IDX_ARRAYS = {
    "train_images": np.random.default_rng(0).integers(0, 256, (40, 6, 6), dtype=np.uint8),
    "train_labels": (np.arange(40) % 4).astype(np.uint8),
    "test_images": np.random.default_rng(1).integers(0, 256, (12, 6, 6), dtype=np.uint8),
    "test_labels": (np.arange(12) % 4).astype(np.uint8),
}


def _idx_bytes(array: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "file")
        write_idx(path, array)
        return path.read_bytes()


_IDX_FILES = {role: _idx_bytes(array) for role, array in _IDX_ARRAYS.items()}
_IDX_PARAMS = base_params({"toy": {
    "data": {"format": "idx", "urls": [], "sha256": {role: "0" * 64 for role in IDX_FILE_NAMES}},
    "train": {},
}})


@EXAMPLES
@given(role=st.sampled_from(sorted(_IDX_FILES)), data=st.data())
def test_malformed_idx_files_pass_or_are_refused_naming_the_file(role, data):
    stored_name = IDX_FILE_NAMES[role].removesuffix(".gz")
    with fresh_project() as project:
        raw = project / "data" / "raw" / "toy"
        raw.mkdir(parents=True)
        for other, content in _IDX_FILES.items():
            (raw / IDX_FILE_NAMES[other].removesuffix(".gz")).write_bytes(content)
        content, unreadable = _mutated(_IDX_FILES[role], data.draw, header_bytes=16)
        (raw / stored_name).write_bytes(content)
        code, stderr, out = _preprocess(project, "toy", _IDX_PARAMS)
        if code != 0 or unreadable:
            assert_refused(code, stderr, (stored_name,), out)
        else:
            assert (out / "meta.json").is_file()


_CIFAR_MEMBERS = cifar10_members(*random_cifar10_split(20, np.random.default_rng(2)),
                                 *random_cifar10_split(10, np.random.default_rng(3)))
_CIFAR_PARAMS = base_params({"cifar10": {"data": {"format": "cifar10-binary"}, "train": {}}})
_CIFAR_STORED = "cifar-10-binary.tar"


@st.composite
def broken_cifar_archive(draw):
    """A CIFAR-10 binary tar with one member damaged, dropped or added, or the tar itself damaged."""
    members = dict(_CIFAR_MEMBERS)
    how = draw(st.sampled_from(["member", "drop", "extra", "tar", "label"]))
    name = draw(st.sampled_from(sorted(members)))
    if how == "member":
        members[name] = _mutated(members[name], draw, header_bytes=4)[0]
    elif how == "drop":
        del members[name]
    elif how == "extra":
        members[f"cifar-10-batches-bin/{draw(st.sampled_from(['x.bin', 'data_batch_6.bin']))}"] = (
            draw(st.binary(max_size=3073 * 2)))
    elif how == "label" and name.endswith(".bin"):
        records = bytearray(members[name])
        record = draw(st.integers(0, len(records) // 3073 - 1))
        records[record * 3073] = draw(st.integers(10, 255))
        members[name] = bytes(records)
    data = tar_bytes(members)
    if how == "tar":
        data = _mutated(data, draw, header_bytes=512)[0]
    return data


@EXAMPLES
@given(broken_cifar_archive())
def test_malformed_cifar_archives_pass_or_are_refused_naming_the_archive(archive):
    with fresh_project() as project:
        raw = project / "data" / "raw" / "cifar10"
        raw.mkdir(parents=True)
        (raw / _CIFAR_STORED).write_bytes(archive)
        code, stderr, out = _preprocess(project, "cifar10", _CIFAR_PARAMS)
        if code != 0:
            assert_refused(code, stderr, (_CIFAR_STORED,), out)
        else:
            assert (out / "meta.json").is_file()


def _png(seed: int, mode: str = "RGB", side: int = 8) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (side, side, 3) if mode == "RGB" else (side, side), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()


_IMAGES = {f"{label}/{index}.png": _png(10 * i + index)
           for i, label in enumerate(("cat", "dog")) for index in range(5)}
_IMAGE_PARAMS = base_params({"pics": {
    "data": {"format": "image-folder", "source": "images", "test_fraction": 0.2},
    "train": {},
}})


@st.composite
def broken_image(draw):
    """One image of the folder damaged, replaced by another kind of file, or of another size."""
    name = draw(st.sampled_from(sorted(_IMAGES)))
    how = draw(st.sampled_from(["bytes", "other_size", "gzip", "text"]))
    unreadable = how in ("gzip", "text")
    if how == "bytes":
        # The PNG signature and header chunk come first: overwriting them often.
        content, unreadable = _mutated(_IMAGES[name], draw, header_bytes=33)
    elif how == "other_size":
        side = draw(st.integers(1, 12))
        content = _png(99, draw(st.sampled_from(["RGB", "L"])), side=side)
        unreadable = side != 8
    elif how == "gzip":
        content = gzip.compress(_IMAGES[name], mtime=0)
    else:
        content = draw(st.text(max_size=40)).encode()
    return name, content, unreadable


@EXAMPLES
@given(broken_image())
def test_malformed_images_pass_or_are_refused_naming_the_image(edit):
    name, content, unreadable = edit
    with fresh_project() as project:
        folder = project / "data" / "raw" / "pics" / "images"
        for member, data in _IMAGES.items():
            (folder / member).parent.mkdir(parents=True, exist_ok=True)
            (folder / member).write_bytes(content if member == name else data)
        code, stderr, out = _preprocess(project, "pics", _IMAGE_PARAMS)
        if code != 0 or unreadable:
            assert_refused(code, stderr, (name,), out)
        else:
            assert (out / "meta.json").is_file()


# ---------------------------------------------------------------------------------------------
# The same rule across a real process boundary
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["params", "idx", "cifar", "image"])
def test_a_real_stage_process_exits_2_with_one_paragraph(tmp_path, kind):
    if kind == "params":
        project = code_copy(tmp_path, {})
        (project / "params.yaml").write_bytes(SHIPPED_TEXT.replace(b"epochs: 60", b"epochs: [60"))
        result = run_stage(project, "validate", "--out", "data/params-valid")
        assert_refused(result.returncode, result.stderr, ("params.yaml",),
                       project / "data" / "params-valid")
        return
    dataset = {"idx": "toy", "cifar": "cifar10", "image": "pics"}[kind]
    project = code_copy(tmp_path, {"idx": _IDX_PARAMS, "cifar": _CIFAR_PARAMS,
                                   "image": _IMAGE_PARAMS}[kind])
    raw = project / "data" / "raw" / dataset
    raw.mkdir(parents=True)
    if kind == "idx":
        for role, content in _IDX_FILES.items():
            (raw / IDX_FILE_NAMES[role].removesuffix(".gz")).write_bytes(content[:-7])
        name = "train-images-idx3-ubyte"
    elif kind == "cifar":
        (raw / _CIFAR_STORED).write_bytes(tar_bytes(_CIFAR_MEMBERS)[:5000])
        name = _CIFAR_STORED
    else:
        for member, data in _IMAGES.items():
            (raw / "images" / member).parent.mkdir(parents=True, exist_ok=True)
            (raw / "images" / member).write_bytes(data[:40])
        name = "cat/0.png"
    output = f"data/processed/{dataset}"
    result = run_stage(project, "preprocess", dataset, "--raw", f"data/raw/{dataset}",
                       "--out", output, timeout=120)
    assert_refused(result.returncode, result.stderr, (name,), project / output)


def test_a_programming_error_still_shows_its_traceback():
    def buggy_stage():
        return {}["a key no input can explain"]

    with pytest.raises(KeyError):
        run_stage_main(buggy_stage)
