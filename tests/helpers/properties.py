"""What the hypothesis properties share: one rule for every failure, checked on malformed input.

Hypothesis generates broken params files, idx files, CIFAR-10 binary archives and image files
(each property lives beside the tests of the module that reads its input), and runs the stage
that reads each (validate for params, preprocess for data) the way DVC does, with its arguments.
Whatever the input, the stage either succeeds and writes its output, or exits 2 with a message
that starts with ``error:``, names the file or key, holds no blank line and no traceback, and
leaves nothing behind: no output, no temporary file. Any other exception is a bug and fails the
test with its traceback, which is the point: programming errors still show one.

The stages run in this process (:func:`helpers.stages.run_stage_in_process`), since a fresh
interpreter per example would take a second each; tests/stages/test_every_stage.py runs a few of
the same inputs as real processes to prove the exit code there too. Here: the settings, the valid
inputs the properties damage, how bytes are damaged, and the two stage checks.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

from helpers.project import PROJECT, base_params, write_params
from helpers.stages import assert_refused, run_stage_in_process
from helpers.synthetic import cifar10_members, random_cifar10_split
from numpynet.data.catalog import IDX_FILE_NAMES
from numpynet.data.formats.idx import write_idx

EXAMPLES = settings(
    max_examples=int(os.environ.get("NUMPYNET_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples on every run: CI never fails by luck
)


# The project's own params.yaml, valid: the properties edit and damage it.
SHIPPED_TEXT = (PROJECT / "params.yaml").read_bytes()


# ---------------------------------------------------------------------------------------------
# The stages' checks
# ---------------------------------------------------------------------------------------------


def check_validate(project: Path, params_file: Path, must_fail: bool) -> None:
    """Run validate on ``params_file``: it passes (unless ``must_fail``) or is refused naming the
    file, writing nothing."""
    marker = project / "data" / "params-valid"
    code, stderr = run_stage_in_process(
        project, "validate", "--out", "data/params-valid", "--params", str(params_file)
    )
    if code == 0 and not must_fail:
        assert marker.read_text() == "params.yaml passed validation\n"
        return
    assert_refused(code, stderr, str(params_file), output=marker)


def preprocess(project: Path, name: str, params: dict) -> tuple[int, str, Path]:
    """Run preprocess on dataset ``name`` under ``params``: exit code, stderr, output folder."""
    write_params(project, params)
    out = project / "data" / "processed" / name
    code, stderr = run_stage_in_process(
        project, "preprocess", name, "--raw", f"data/raw/{name}", "--out", f"data/processed/{name}"
    )
    return code, stderr, out


# ---------------------------------------------------------------------------------------------
# Damaged bytes
# ---------------------------------------------------------------------------------------------


def mutated(data: bytes, draw, header_bytes: int) -> tuple[bytes, bool]:
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
    changed = bytearray(data)
    changed[at : at + len(chunk)] = chunk
    return bytes(changed[: max(len(data), at + len(chunk))]), False


# ---------------------------------------------------------------------------------------------
# The valid inputs the properties damage
# ---------------------------------------------------------------------------------------------

IDX_ARRAYS = {
    "train_images": np.random.default_rng(0).integers(0, 256, (40, 6, 6), dtype=np.uint8),
    "train_labels": (np.arange(40) % 4).astype(np.uint8),
    "test_images": np.random.default_rng(1).integers(0, 256, (12, 6, 6), dtype=np.uint8),
    "test_labels": (np.arange(12) % 4).astype(np.uint8),
}


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of an idx file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "file")
        write_idx(path, array)
        return path.read_bytes()


IDX_FILES = {role: idx_bytes(array) for role, array in IDX_ARRAYS.items()}
IDX_PARAMS = base_params({"toy": {
    "data": {"format": "idx", "urls": [], "sha256": {role: "0" * 64 for role in IDX_FILE_NAMES}},
    "train": {},
}})


CIFAR_MEMBERS = cifar10_members(*random_cifar10_split(20, np.random.default_rng(2)),
                                *random_cifar10_split(10, np.random.default_rng(3)))
CIFAR_PARAMS = base_params({"cifar10": {"data": {"format": "cifar10-binary"}, "train": {}}})
CIFAR_STORED = "cifar-10-binary.tar"


def random_png(seed: int, mode: str = "RGB", side: int = 8) -> bytes:
    """A PNG of random ``side`` x ``side`` pixels in ``mode`` (RGB or L)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (side, side, 3) if mode == "RGB" else (side, side), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGES = {f"{label}/{index}.png": random_png(10 * i + index)
          for i, label in enumerate(("cat", "dog")) for index in range(5)}
IMAGE_PARAMS = base_params({"pics": {
    "data": {"format": "image-folder", "source": "images", "test_fraction": 0.2},
    "train": {},
}})
