"""The download stage, run as a process: against an endless or trickling source it exits 2 with
the fix and writes nothing; relative sources start at the project root wherever it runs; bad
folder sources are refused naming the key."""

from __future__ import annotations

import hashlib

import pytest

from helpers import scripted_server as scripts
from helpers.hostile_data import fake_image_folder
from helpers.project import base_params, make_stage_project
from helpers.stages import run_stage_process


CONTENT = bytes(range(256)) * 64  # 16 KiB
CONTENT_SHA = hashlib.sha256(CONTENT).hexdigest()
CAP = 1 << 20  # 1 MiB: the tests' download.max_bytes


@pytest.fixture
def server(scripted_http):
    return scripted_http


@pytest.mark.hostile
@pytest.mark.parametrize("script, limits, expected", [
    (scripts.endless(), {"max_bytes": CAP}, "raise download.max_bytes in params.yaml"),
    (scripts.trickle(0.2), {"deadline_s": 1}, "raise download.deadline_s in params.yaml"),
], ids=["endless", "trickle"])
def test_the_stage_exits_2_with_the_fix_and_writes_nothing(server, tmp_path, script, limits,
                                                           expected):
    url = server.route("pets.tar.gz?sig=abc", script)
    params = base_params({"pets": {"data": {"format": "image-folder", "source": url,
                                            "sha256": CONTENT_SHA}, "train": {}}})
    params["download"].update(limits)
    root = make_stage_project(tmp_path / "project", params)
    result = run_stage_process(root, "download", "pets", "--out", "data/raw/pets")
    assert result.returncode == 2, result.stderr
    assert "error: could not download pets.tar.gz; every source failed" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "data" / "raw").exists() or list((root / "data" / "raw").iterdir()) == []


KEY = "datasets.pets.data.source"


def image_params(source: str, **data) -> dict:
    return base_params({"pets": {"data": {"format": "image-folder", "source": source, **data},
                                 "train": {}}})


@pytest.mark.hostile
def test_the_stage_takes_relative_sources_from_the_project_root(tmp_path):
    root = make_stage_project(tmp_path / "project", image_params("images/pets"))
    fake_image_folder(root / "images" / "pets")
    (root / "data").mkdir()
    result = run_stage_process(root, "download", "pets", "--out", "raw/pets", "--params",
                               "../params.yaml", cwd=root / "data")
    assert result.returncode == 0, result.stderr
    assert (root / "data" / "raw" / "pets" / "pets" / "train" / "cat" / "0.png").is_file()


@pytest.mark.hostile
def test_the_stage_run_elsewhere_without_params_says_how(tmp_path):
    root = make_stage_project(tmp_path / "project", image_params("images/pets"))
    (root / "data").mkdir()
    result = run_stage_process(root, "download", "pets", "--out", "raw/pets", cwd=root / "data")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "params.yaml not found: run from the project root or pass --params" in result.stderr


@pytest.mark.hostile
@pytest.mark.parametrize("source, expected", [
    (".", "names no folder or archive of its own"),
    ("{root}", "copied into itself"),
    ("images/outside-link", "points outside the folder"),
], ids=["dot", "project-root", "link-out"])
def test_the_stage_refuses_bad_folders_with_exit_2(tmp_path, source, expected):
    root = make_stage_project(tmp_path / "project",
                              image_params(source.format(root=tmp_path / "project")))
    link_folder = fake_image_folder(root / "images" / "outside-link")
    (link_folder / "train" / "cat" / "1.png").symlink_to(root / "params.yaml")
    result = run_stage_process(root, "download", "pets", "--out", "data/raw/pets")
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and KEY in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "data" / "raw" / "pets").exists()
