"""Listing folders and archives: what is read into memory, and which folders are seen.

Hostile archives are covered through read_image_folder in test_image_folder.py.
"""

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from numpynet.data.formats.archive import list_location

CONTENT = {"train/cat/1.png": b"one", "train/cat/notes.txt": b"skip me", "top.png": b"two"}


def wants_png(parts: tuple[str, ...]) -> bool:
    return parts[-1].endswith(".png")


def make_folder(root: Path) -> Path:
    for name, data in CONTENT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "empty").mkdir()
    return root


def make_tar(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo("empty")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in CONTENT.items():
            info = tarfile.TarInfo("./" + name)  # "./" is dropped from the parts
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("empty/", b"")
        for name, data in CONTENT.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(("make", "name"), [(make_folder, "d"), (make_tar, "d.tar.gz"),
                                            (make_zip, "d.zip")])
def test_only_files_worth_reading_get_a_source(tmp_path, make, name):
    location = make(tmp_path / name)
    found = list_location(location, wants_png)
    by_parts = {f.parts: f for f in found.files}
    assert set(by_parts) == {tuple(name.split("/")) for name in CONTENT}
    assert by_parts[("train", "cat", "notes.txt")].source is None
    for name in ("train/cat/1.png", "top.png"):
        source = by_parts[tuple(name.split("/"))].source
        data = source.read_bytes() if isinstance(source, Path) else source
        assert data == CONTENT[name]
    assert ("empty",) in found.folders
