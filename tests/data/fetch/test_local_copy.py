"""Image-folder sources on disk: folders and archives, copied under the rule archives follow.

Nothing may reach outside the folder. Links to a file inside are copied as that file; links out,
dangling links, loops, links to folders and special files are refused by name. A folder or an
archive larger than ``download.max_bytes`` is refused, a folder may not swallow the project's
data/ (it would copy the dataset into itself), and relative paths start at the project root
wherever the stage runs (the stage itself: tests/stages/test_download_stage.py).
"""

from __future__ import annotations

import hashlib
import os
import time
import unicodedata
from pathlib import Path

import pytest

from helpers.hostile_data import fake_image_folder
from numpynet.data.catalog import ImageFolderSource
from numpynet.data.fetch import acquire_dataset, local_copy
from numpynet.errors import DownloadError


ARCHIVE = b"not really a tar, but the download does not read it" * 100
ARCHIVE_SHA = hashlib.sha256(ARCHIVE).hexdigest()
KEY = "datasets.pets.data.source"


def folder_source(location, sha256=None) -> ImageFolderSource:
    return ImageFolderSource("pets", str(location), sha256, None, None, 0.2, 0)


def refused(source, out, *fragments, listing=False, **options):
    """acquire_dataset must raise a DownloadError holding every fragment and leave out empty.

    The message is one line, unless it is a download's ``listing`` of the sources it tried.
    """
    with pytest.raises(DownloadError) as caught:
        acquire_dataset(source, out, mirror=None, timeout=5, log=lambda line: None, **options)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert listing or "\n" not in message
    assert list(out.iterdir()) == [], "nothing half-copied"
    return message


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


# --- links inside a folder source ---------------------------------------------------------------


@pytest.mark.hostile
def test_a_link_to_a_file_outside_the_folder_is_refused(tmp_path, out):
    root = fake_image_folder(tmp_path / "pets")
    (tmp_path / "secret.txt").write_bytes(b"SECRET")
    link = root / "train" / "cat" / "1.png"
    link.symlink_to(tmp_path / "secret.txt")
    refused(folder_source(root), out, KEY, str(link), str(tmp_path / "secret.txt"),
            "points outside the folder", "replace the link")


@pytest.mark.hostile
def test_a_relative_link_climbing_out_is_refused(tmp_path, out):
    root = fake_image_folder(tmp_path / "pets")
    (tmp_path / "secret.txt").write_bytes(b"SECRET")
    (root / "train" / "cat" / "1.png").symlink_to("../../../secret.txt")
    refused(folder_source(root), out, "-> ../../../secret.txt", "points outside")


@pytest.mark.hostile
def test_a_dangling_link_is_refused(tmp_path, out):
    root = fake_image_folder(tmp_path / "pets")
    (root / "train" / "cat" / "1.png").symlink_to(tmp_path / "gone.png")
    refused(folder_source(root), out, "1.png", str(tmp_path / "gone.png"), "dangling")


@pytest.mark.hostile
def test_a_loop_of_links_is_refused(tmp_path, out):
    root = fake_image_folder(tmp_path / "pets")
    cat = root / "train" / "cat"
    (cat / "1.png").symlink_to(cat / "2.png")
    (cat / "2.png").symlink_to(cat / "1.png")
    refused(folder_source(root), out, "loop of links")


@pytest.mark.hostile
@pytest.mark.parametrize("target", ["train", ".", "..", "/"])
def test_a_link_to_a_folder_is_refused(tmp_path, out, target):
    # A link back up the tree would copy forever; one sideways would copy images twice.
    root = fake_image_folder(tmp_path / "pets")
    (root / "train" / "cat" / "again").symlink_to(root / target if target != "/" else "/")
    started = time.monotonic()
    refused(folder_source(root), out, "again")
    assert time.monotonic() - started < 2


@pytest.mark.hostile
def test_a_link_to_a_file_inside_is_copied_as_that_file(tmp_path, out):
    root = fake_image_folder(tmp_path / "pets")
    (root / "train" / "dog" / "1.png").symlink_to("../cat/0.png")
    acquire_dataset(folder_source(root), out, mirror=None, timeout=5, log=lambda line: None)
    copy = out / "pets" / "train" / "dog" / "1.png"
    assert not copy.is_symlink() and copy.read_bytes() == b"train/cat/0.png"


@pytest.mark.hostile
def test_the_source_itself_may_be_a_link(tmp_path, out):
    real = fake_image_folder(tmp_path / "disk" / "pets-v2")
    (tmp_path / "pets").symlink_to(real)
    acquire_dataset(folder_source(tmp_path / "pets"), out, mirror=None, timeout=5,
                    log=lambda line: None)
    # Stored under the name written in params.yaml, whatever the link points to.
    assert (out / "pets" / "train" / "cat" / "0.png").read_bytes() == b"train/cat/0.png"


@pytest.mark.hostile
def test_a_special_file_in_the_folder_is_refused_without_hanging(tmp_path, out):
    root = fake_image_folder(tmp_path / "pets")
    os.mkfifo(root / "train" / "cat" / "1.png")
    started = time.monotonic()
    refused(folder_source(root), out, "1.png", "special file")
    assert time.monotonic() - started < 2


@pytest.mark.hostile
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_source_that_is_no_regular_file_is_refused(tmp_path, out, kind):
    path = tmp_path / "pets.tar"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    refused(folder_source(path), out, KEY, "neither a folder nor a regular file")


@pytest.mark.hostile
def test_a_folder_larger_than_max_bytes_is_refused(tmp_path, out):
    root = fake_image_folder(tmp_path / "pets")
    (root / "train" / "cat" / "big.png").write_bytes(bytes(5000))
    refused(folder_source(root), out, KEY, "download.max_bytes = 4096",
            "raise download.max_bytes", max_bytes=4096)


@pytest.mark.hostile
def test_an_unpinned_archive_larger_than_max_bytes_is_refused(tmp_path, out):
    archive = tmp_path / "pets.tar"
    archive.write_bytes(bytes(5000))
    refused(folder_source(archive), out, "download.max_bytes", max_bytes=4096)


@pytest.mark.hostile
def test_a_pinned_archive_larger_than_max_bytes_is_refused(tmp_path, out):
    archive = tmp_path / "pets.tar"
    archive.write_bytes(ARCHIVE)
    refused(folder_source(archive, ARCHIVE_SHA), out, "pets.tar", "download.max_bytes",
            listing=True, max_bytes=1024)


# --- where a folder source may be ---------------------------------------------------------------


@pytest.fixture
def project(tmp_path) -> Path:
    """A project root with data/raw/, as the stage sees it, and images/pets inside."""
    root = tmp_path / "project"
    (root / "data" / "raw").mkdir(parents=True)
    fake_image_folder(root / "images" / "pets")
    return root


@pytest.fixture
def stage_out(project) -> Path:
    out = project / "data" / "raw" / ".pets.1234.tmp"  # where atomic_directory puts it
    out.mkdir()
    return out


@pytest.mark.hostile
@pytest.mark.parametrize("location", ["{root}", "{root}/", "data", "{root}/data", "{tmp}",
                                      "images/../data"],
                         ids=["root", "root-slash", "data", "abs-data", "parent", "dotdot-data"])
def test_a_folder_holding_the_projects_data_is_refused(project, stage_out, location):
    location = location.format(root=project, tmp=project.parent)
    refused(folder_source(location), stage_out, KEY, "copied into itself",
            project_root=project)


@pytest.mark.hostile
@pytest.mark.parametrize("location", ["data/raw/pets", "data/raw", "data/raw/.pets.1234.tmp"],
                         ids=["final-dest", "data-raw", "temp-dest"])
def test_a_source_inside_data_raw_is_refused(project, stage_out, location):
    (project / location).mkdir(exist_ok=True, parents=True)
    refused(folder_source(location), stage_out, KEY, project_root=project)


@pytest.mark.hostile
def test_a_folder_holding_a_linked_data_folder_is_refused(tmp_path):
    # data/ on another disk, linked into the project: the disk's folder holds the outputs too.
    project, disk = tmp_path / "project", tmp_path / "disk"
    (disk / "data" / "raw").mkdir(parents=True)
    project.mkdir()
    (project / "data").symlink_to(disk / "data")
    fake_image_folder(disk / "pets")
    out = project / "data" / "raw" / ".pets.1234.tmp"
    out.mkdir()
    refused(folder_source(disk), out, "copied into itself", project_root=project)
    acquire_dataset(folder_source(disk / "pets"), out, mirror=None, timeout=5,
                    project_root=project, log=lambda line: None)
    assert (out / "pets" / "train" / "cat" / "0.png").is_file()


@pytest.mark.hostile
def test_a_folder_holding_the_destination_is_refused_without_a_project(tmp_path):
    out = tmp_path / "images" / "out"
    out.mkdir(parents=True)
    refused(folder_source(tmp_path / "images"), out, "copied into itself")


@pytest.mark.hostile
def test_a_folder_elsewhere_in_the_project_is_fine(project, stage_out, monkeypatch):
    monkeypatch.chdir(project / "data")  # relative paths start at the project root regardless
    acquire_dataset(folder_source("images/pets"), stage_out, mirror=None, timeout=5,
                    project_root=project, log=lambda line: None)
    assert (stage_out / "pets" / "test" / "cat" / "0.png").is_file()


# --- names a case- or normalization-insensitive file system stores as one ------------------------


def _folding_file_system(monkeypatch) -> None:
    """Make the copy's destination behave like macOS's or Windows' file system: names that differ
    only by case or Unicode normalization are one name (the first one created keeps it)."""
    real_mkdir, real_open = Path.mkdir, open

    def folded(path) -> Path:
        path = Path(path)
        return path.with_name(unicodedata.normalize("NFD", path.name).casefold())

    monkeypatch.setattr(Path, "mkdir", lambda self, *a, **k: real_mkdir(folded(self), *a, **k))
    monkeypatch.setattr(local_copy, "open", lambda path, mode: real_open(folded(path), mode),
                        raising=False)


@pytest.mark.hostile
@pytest.mark.parametrize(("first", "second"), [
    ("train/Cat", "train/cat"), ("train/caf\u00e9", "train/cafe\u0301"),
    ("train/cat/1.png", "train/cat/1.PNG"),
], ids=["case", "normalization", "image-case"])
def test_names_the_destination_stores_as_one_are_refused_naming_both(tmp_path, out, monkeypatch,
                                                                     first, second):
    # Before: two folders merged into one class (or a FileExistsError traceback), two images one.
    root = fake_image_folder(tmp_path / "pets")
    for name in (first, second):
        path = root / name if name.endswith(".png") else root / name / "0.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
    _folding_file_system(monkeypatch)
    a, b = sorted([first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]])
    # Escaped, so that 'caf\xe9' and 'cafe\u0301' show how they differ.
    refused(folder_source(root), out, KEY, f"{ascii(a)} and {ascii(b)}",
            "differ only by case or by Unicode normalization", "nothing was copied",
            "Rename one of them, or merge the two")


@pytest.mark.hostile
def test_names_alike_but_for_case_are_two_where_the_file_system_keeps_them_apart(tmp_path, out):
    root = fake_image_folder(tmp_path / "pets")
    for name in ("Cat", "cat"):
        (root / "train" / name).mkdir(exist_ok=True)
        (root / "train" / name / "9.png").write_bytes(name.encode())
    acquire_dataset(folder_source(root), out, mirror=None, timeout=5, log=lambda line: None)
    assert (out / "pets" / "train" / "Cat" / "9.png").read_bytes() == b"Cat"
    assert (out / "pets" / "train" / "cat" / "9.png").read_bytes() == b"cat"
