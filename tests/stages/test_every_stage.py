"""What every stage does the same way: it sweeps the temporary files a killed run left, a full
disk in any of its writes ends it with exit code 2 naming the output and "free disk space" (the
previous outputs byte for byte as they were), and a malformed input ends a real stage process
with exit code 2 and one paragraph.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers.hostile_data import failing_writes
from helpers.project import NAME, make_stage_project, tiny_project, tree_bytes
from helpers.properties import (
    CIFAR_MEMBERS,
    CIFAR_PARAMS,
    CIFAR_STORED,
    IDX_FILES,
    IDX_PARAMS,
    IMAGES,
    IMAGE_PARAMS,
    SHIPPED_TEXT,
)
from helpers.stages import assert_refused, run_stage_in_process, run_stage_process
from helpers.synthetic import make_synthetic_idx_dataset, tar_bytes
from numpynet.data.catalog import IDX_FILE_NAMES


# ---------------------------------------------------------------------------------------------
# Temporary files of a killed run
# ---------------------------------------------------------------------------------------------


HEX = "0123456789ab"


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
    return tiny_project(tmp_path / "p", data={"format": "idx", "sha256": pins, "urls": []})


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMPYNET_MIRROR", str(tmp_path / "mirror"))
    return mirror_project(tmp_path)


@pytest.mark.hostile
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
        code, stderr = run_stage_in_process(project, stage)
        assert code == 0, f"{stage}: {stderr}"
        for path in paths:
            assert not os.path.lexists(path), f"{stage} left {path}"
    assert kept.read_bytes() == b"half"


# ---------------------------------------------------------------------------------------------
# A full disk, in every stage
# ---------------------------------------------------------------------------------------------


def siblings(folder: Path, output: str) -> list[str]:
    """Hidden names beside ``output`` in ``folder``: temporaries a failed write left."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{output}.")) if (
        folder.is_dir()) else []


@pytest.fixture(scope="module")
def built_once(tmp_path_factory):
    """A mirror project after one successful run of every stage (built once, then copied)."""
    root = tmp_path_factory.mktemp("built")
    project = mirror_project(root)
    previous = os.environ.get("NUMPYNET_MIRROR")
    os.environ["NUMPYNET_MIRROR"] = str(root / "mirror")
    try:
        for stage in ("validate", "download", "preprocess", "train", "evaluate"):
            code, stderr = run_stage_in_process(project, stage)
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


@pytest.mark.hostile
@pytest.mark.parametrize("stage, fragment, named, unchanged", STAGE_WRITES,
                         ids=[f"{s}-{f.strip('/.')}" for s, f, _, _ in STAGE_WRITES])
def test_a_full_disk_leaves_the_previous_outputs_and_says_so(
    built, monkeypatch, stage, fragment, named, unchanged
):
    project = built
    before = tree_bytes(*(project / path for path in unchanged))
    with failing_writes(monkeypatch, fragment, errno.ENOSPC):
        code, stderr = run_stage_in_process(project, stage)
    assert_refused(code, stderr, named, "free disk space")
    assert tree_bytes(*(project / path for path in unchanged)) == before
    for path in unchanged:
        output = project / path
        assert siblings(output.parent, output.name) == [], f"temporary files beside {output}"


# ---------------------------------------------------------------------------------------------
# One rule for every failure, across a real process boundary
# ---------------------------------------------------------------------------------------------


@pytest.mark.hostile
@pytest.mark.parametrize("kind", ["params", "idx", "cifar", "image"])
def test_a_real_stage_process_exits_2_with_one_paragraph(tmp_path, kind):
    if kind == "params":
        project = make_stage_project(tmp_path, {})
        # An unclosed list where the shipped file gives its number of epochs: YAML that no
        # longer parses.
        broken = re.sub(rb"\n  epochs: (\d+)", rb"\n  epochs: [\1", SHIPPED_TEXT, count=1)
        assert broken != SHIPPED_TEXT
        (project / "params.yaml").write_bytes(broken)
        result = run_stage_process(project, "validate", "--out", "data/params-valid")
        assert_refused(result.returncode, result.stderr, "params.yaml",
                       output=project / "data" / "params-valid")
        return
    dataset = {"idx": "toy", "cifar": "cifar10", "image": "pics"}[kind]
    project = make_stage_project(tmp_path, {"idx": IDX_PARAMS, "cifar": CIFAR_PARAMS,
                                            "image": IMAGE_PARAMS}[kind])
    raw = project / "data" / "raw" / dataset
    raw.mkdir(parents=True)
    if kind == "idx":
        for role, content in IDX_FILES.items():
            (raw / IDX_FILE_NAMES[role].removesuffix(".gz")).write_bytes(content[:-7])
        name = "train-images-idx3-ubyte"
    elif kind == "cifar":
        (raw / CIFAR_STORED).write_bytes(tar_bytes(CIFAR_MEMBERS)[:5000])
        name = CIFAR_STORED
    else:
        for member, data in IMAGES.items():
            (raw / "images" / member).parent.mkdir(parents=True, exist_ok=True)
            (raw / "images" / member).write_bytes(data[:40])
        name = "cat/0.png"
    output = f"data/processed/{dataset}"
    result = run_stage_process(project, "preprocess", dataset, "--raw", f"data/raw/{dataset}",
                               "--out", output, timeout=120)
    assert_refused(result.returncode, result.stderr, name, output=project / output)
