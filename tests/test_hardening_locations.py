"""Links and locations of image-folder sources: folders, archives on disk, and archive URLs.

A folder source is copied under the rule archives follow: nothing may reach outside it. Links to a
file inside are copied as that file; links out, dangling links, loops, links to folders and
special files are refused by name. A folder may not swallow the project's data/ (it would copy the
dataset into itself), relative paths start at the project root wherever the stage runs, and an
archive URL is fetched exactly as written (signed query strings included) and stored under its
path's file name.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from numpynet.config import parse_params
from numpynet.config.file import read_params_file
from numpynet.data.formats.archive import TAR_SUFFIXES, ZIP_SUFFIXES
from numpynet.data.catalog import IMAGE_ARCHIVE_SUFFIXES, ImageFolderSource
from numpynet.data.fetch import acquire_dataset
from numpynet.errors import ConfigError, DownloadError, NumpynetError
from helpers import scripted_server as scripts
from helpers.project import base_params, shipped_params
from helpers.stage_run import code_copy, run_stage

ARCHIVE = b"not really a tar, but the download does not read it" * 100
ARCHIVE_SHA = hashlib.sha256(ARCHIVE).hexdigest()
KEY = "datasets.pets.data.source"


def folder_source(location, sha256=None) -> ImageFolderSource:
    return ImageFolderSource("pets", str(location), sha256, None, None, 0.2, 0)


def image_folder(root: Path) -> Path:
    """A small folder of 'images' (the copy does not decode them)."""
    for relative in ("train/cat/0.png", "train/dog/0.png", "test/cat/0.png"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(relative.encode())
    return root


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


# --- links inside a folder source -----------------------------------------------------------

def test_a_link_to_a_file_outside_the_folder_is_refused(tmp_path, out):
    root = image_folder(tmp_path / "pets")
    (tmp_path / "secret.txt").write_bytes(b"SECRET")
    link = root / "train" / "cat" / "1.png"
    link.symlink_to(tmp_path / "secret.txt")
    refused(folder_source(root), out, KEY, str(link), str(tmp_path / "secret.txt"),
            "points outside the folder", "replace the link")


def test_a_relative_link_climbing_out_is_refused(tmp_path, out):
    root = image_folder(tmp_path / "pets")
    (tmp_path / "secret.txt").write_bytes(b"SECRET")
    (root / "train" / "cat" / "1.png").symlink_to("../../../secret.txt")
    refused(folder_source(root), out, "-> ../../../secret.txt", "points outside")


def test_a_dangling_link_is_refused(tmp_path, out):
    root = image_folder(tmp_path / "pets")
    (root / "train" / "cat" / "1.png").symlink_to(tmp_path / "gone.png")
    refused(folder_source(root), out, "1.png", str(tmp_path / "gone.png"), "dangling")


def test_a_loop_of_links_is_refused(tmp_path, out):
    root = image_folder(tmp_path / "pets")
    cat = root / "train" / "cat"
    (cat / "1.png").symlink_to(cat / "2.png")
    (cat / "2.png").symlink_to(cat / "1.png")
    refused(folder_source(root), out, "loop of links")


@pytest.mark.parametrize("target", ["train", ".", "..", "/"])
def test_a_link_to_a_folder_is_refused(tmp_path, out, target):
    # A link back up the tree would copy forever; one sideways would copy images twice.
    root = image_folder(tmp_path / "pets")
    (root / "train" / "cat" / "again").symlink_to(root / target if target != "/" else "/")
    started = time.monotonic()
    refused(folder_source(root), out, "again")
    assert time.monotonic() - started < 2


def test_a_link_to_a_file_inside_is_copied_as_that_file(tmp_path, out):
    root = image_folder(tmp_path / "pets")
    (root / "train" / "dog" / "1.png").symlink_to("../cat/0.png")
    acquire_dataset(folder_source(root), out, mirror=None, timeout=5, log=lambda line: None)
    copy = out / "pets" / "train" / "dog" / "1.png"
    assert not copy.is_symlink() and copy.read_bytes() == b"train/cat/0.png"


def test_the_source_itself_may_be_a_link(tmp_path, out):
    real = image_folder(tmp_path / "disk" / "pets-v2")
    (tmp_path / "pets").symlink_to(real)
    acquire_dataset(folder_source(tmp_path / "pets"), out, mirror=None, timeout=5,
                    log=lambda line: None)
    # Stored under the name written in params.yaml, whatever the link points to.
    assert (out / "pets" / "train" / "cat" / "0.png").read_bytes() == b"train/cat/0.png"


def test_a_special_file_in_the_folder_is_refused_without_hanging(tmp_path, out):
    root = image_folder(tmp_path / "pets")
    os.mkfifo(root / "train" / "cat" / "1.png")
    started = time.monotonic()
    refused(folder_source(root), out, "1.png", "special file")
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_source_that_is_no_regular_file_is_refused(tmp_path, out, kind):
    path = tmp_path / "pets.tar"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    refused(folder_source(path), out, KEY, "neither a folder nor a regular file")


def test_a_folder_larger_than_max_bytes_is_refused(tmp_path, out):
    root = image_folder(tmp_path / "pets")
    (root / "train" / "cat" / "big.png").write_bytes(bytes(5000))
    refused(folder_source(root), out, KEY, "download.max_bytes = 4096",
            "raise download.max_bytes", max_bytes=4096)


def test_an_unpinned_archive_larger_than_max_bytes_is_refused(tmp_path, out):
    archive = tmp_path / "pets.tar"
    archive.write_bytes(bytes(5000))
    refused(folder_source(archive), out, "download.max_bytes", max_bytes=4096)


def test_a_pinned_archive_larger_than_max_bytes_is_refused(tmp_path, out):
    archive = tmp_path / "pets.tar"
    archive.write_bytes(ARCHIVE)
    refused(folder_source(archive, ARCHIVE_SHA), out, "pets.tar", "download.max_bytes",
            listing=True, max_bytes=1024)


# --- where a folder source may be -----------------------------------------------------------

@pytest.fixture
def project(tmp_path) -> Path:
    """A project root with data/raw/, as the stage sees it, and images/pets inside."""
    root = tmp_path / "project"
    (root / "data" / "raw").mkdir(parents=True)
    image_folder(root / "images" / "pets")
    return root


@pytest.fixture
def stage_out(project) -> Path:
    out = project / "data" / "raw" / ".pets.1234.tmp"  # where atomic_directory puts it
    out.mkdir()
    return out


@pytest.mark.parametrize("location", ["{root}", "{root}/", "data", "{root}/data", "{tmp}",
                                      "images/../data"],
                         ids=["root", "root-slash", "data", "abs-data", "parent", "dotdot-data"])
def test_a_folder_holding_the_projects_data_is_refused(project, stage_out, location):
    location = location.format(root=project, tmp=project.parent)
    refused(folder_source(location), stage_out, KEY, "copied into itself",
            project_root=project)


@pytest.mark.parametrize("location", ["data/raw/pets", "data/raw", "data/raw/.pets.1234.tmp"],
                         ids=["final-dest", "data-raw", "temp-dest"])
def test_a_source_inside_data_raw_is_refused(project, stage_out, location):
    (project / location).mkdir(exist_ok=True, parents=True)
    refused(folder_source(location), stage_out, KEY, project_root=project)


def test_a_folder_holding_a_linked_data_folder_is_refused(tmp_path):
    # data/ on another disk, linked into the project: the disk's folder holds the outputs too.
    project, disk = tmp_path / "project", tmp_path / "disk"
    (disk / "data" / "raw").mkdir(parents=True)
    project.mkdir()
    (project / "data").symlink_to(disk / "data")
    image_folder(disk / "pets")
    out = project / "data" / "raw" / ".pets.1234.tmp"
    out.mkdir()
    refused(folder_source(disk), out, "copied into itself", project_root=project)
    acquire_dataset(folder_source(disk / "pets"), out, mirror=None, timeout=5,
                    project_root=project, log=lambda line: None)
    assert (out / "pets" / "train" / "cat" / "0.png").is_file()


def test_a_folder_holding_the_destination_is_refused_without_a_project(tmp_path):
    out = tmp_path / "images" / "out"
    out.mkdir(parents=True)
    refused(folder_source(tmp_path / "images"), out, "copied into itself")


def test_a_folder_elsewhere_in_the_project_is_fine(project, stage_out, monkeypatch):
    monkeypatch.chdir(project / "data")  # relative paths start at the project root regardless
    acquire_dataset(folder_source("images/pets"), stage_out, mirror=None, timeout=5,
                    project_root=project, log=lambda line: None)
    assert (stage_out / "pets" / "test" / "cat" / "0.png").is_file()


# --- the stage, run from elsewhere ----------------------------------------------------------

def image_params(source: str, **data) -> dict:
    return base_params({"pets": {"data": {"format": "image-folder", "source": source, **data},
                                 "train": {}}})


def test_the_stage_takes_relative_sources_from_the_project_root(tmp_path):
    root = code_copy(tmp_path / "project", image_params("images/pets"))
    image_folder(root / "images" / "pets")
    (root / "data").mkdir()
    result = run_stage(root, "download", "pets", "--out", "raw/pets", "--params",
                       "../params.yaml", cwd=root / "data")
    assert result.returncode == 0, result.stderr
    assert (root / "data" / "raw" / "pets" / "pets" / "train" / "cat" / "0.png").is_file()


def test_the_stage_run_elsewhere_without_params_says_how(tmp_path):
    root = code_copy(tmp_path / "project", image_params("images/pets"))
    (root / "data").mkdir()
    result = run_stage(root, "download", "pets", "--out", "raw/pets", cwd=root / "data")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "params.yaml not found: run from the project root or pass --params" in result.stderr


@pytest.mark.parametrize("source, expected", [
    (".", "names no folder or archive of its own"),
    ("{root}", "copied into itself"),
    ("images/outside-link", "points outside the folder"),
], ids=["dot", "project-root", "link-out"])
def test_the_stage_refuses_bad_folders_with_exit_2(tmp_path, source, expected):
    root = code_copy(tmp_path / "project", image_params(source.format(root=tmp_path / "project")))
    link_folder = image_folder(root / "images" / "outside-link")
    (link_folder / "train" / "cat" / "1.png").symlink_to(root / "params.yaml")
    result = run_stage(root, "download", "pets", "--out", "data/raw/pets")
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and KEY in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "data" / "raw" / "pets").exists()


# --- archive URLs ---------------------------------------------------------------------------

@pytest.fixture
def server(scripted_http):
    return scripted_http


@pytest.mark.parametrize("path, name", [
    ("dl/images.tar.gz?X-Amz-Signature=abc&Expires=1", "images.tar.gz"),
    ("dir/images.zip/", "images.zip"),
    ("dir/my%20images.tgz?token=a/b", "my images.tgz"),
], ids=["signed-query", "trailing-slash", "quoted-name"])
def test_an_archive_url_is_fetched_exactly_and_stored_by_its_file_name(server, out, path, name):
    url = server.route(path, scripts.body(ARCHIVE))
    acquire_dataset(folder_source(url, ARCHIVE_SHA), out, mirror=None, timeout=5,
                    log=lambda line: None)
    assert server.requests == ["/" + path]
    assert [p.name for p in out.iterdir()] == [name] and (out / name).read_bytes() == ARCHIVE


def test_a_mirror_is_tried_first_under_the_stored_name(server, out):
    url = server.route("dl/images.tar.gz?sig=abc", scripts.body(ARCHIVE))
    server.route("mirror/pets/images.tar.gz", scripts.body(ARCHIVE))
    acquire_dataset(folder_source(url, ARCHIVE_SHA), out, mirror=server.url + "mirror",
                    timeout=5, log=lambda line: None)
    assert server.requests == ["/mirror/pets/images.tar.gz"]
    server.requests.clear()
    acquire_dataset(folder_source(url, ARCHIVE_SHA), out, mirror=server.url + "empty",
                    timeout=5, log=lambda line: None)
    assert server.requests == ["/empty/pets/images.tar.gz", "/empty/images.tar.gz",
                               "/dl/images.tar.gz?sig=abc"]


def test_messages_show_a_url_without_its_signature(server, out):
    signed = server.route("dl/images.tar.gz?X-Amz-Signature=secret", scripts.body(b"not it"))
    with_password = signed.replace("http://", "http://user:hunter2@")
    lines = []
    with pytest.raises(DownloadError) as raised:
        acquire_dataset(folder_source(with_password, ARCHIVE_SHA), out, mirror=None, timeout=5,
                        log=lines.append)
    shown = "\n".join(lines) + str(raised.value)
    assert "/dl/images.tar.gz?… failed" in shown
    assert "secret" not in shown and "hunter2" not in shown


@pytest.fixture
def raw(tmp_path):
    return read_params_file(shipped_params(tmp_path / "params.yaml"))


@pytest.mark.parametrize("source, expected", [
    ("https://example.org/", "does not end in an archive's file name"),
    ("https://example.org/download?id=5&name=pets.zip", "does not end in an archive's file name"),
    ("https://example.org/pets.rar", "does not end in an archive's file name"),
    ("https://example.org/a%2F..%2F..%2Fpets.zip", "does not end in an archive's file name"),
    ("https://example.org/.pets.zip", "does not end in an archive's file name"),
    ("https:///pets.zip", "has no host"),
    ("https://[::1/pets.zip", "not a valid URL"),
    (".", "names no folder or archive of its own"),
    ("/", "names no folder or archive of its own"),
    ("images/..", "names no folder or archive of its own"),
], ids=["no-name", "query-only-name", "not-archive", "encoded-slash", "hidden-name", "no-host",
        "bad-host", "dot", "root", "dotdot"])
def test_unusable_locations_are_refused_when_params_are_checked(raw, source, expected):
    raw["datasets"] = {"pets": {"data": {"format": "image-folder", "source": source,
                                         "sha256": ARCHIVE_SHA}, "train": {}}}
    with pytest.raises(ConfigError) as caught:
        parse_params(raw)
    assert f"{KEY}: " in str(caught.value) and expected in str(caught.value)
    assert isinstance(caught.value, NumpynetError)


@pytest.mark.parametrize("source", [
    "https://example.org/pets.tar.gz?X-Amz-Signature=abc&Expires=1",
    "https://example.org/dir/pets.ZIP/", "images/pets", "~/datasets/pets.tar.gz",
], ids=["signed-url", "slash-url", "folder", "home-archive"])
def test_usable_locations_pass(raw, source):
    raw["datasets"] = {"pets": {"data": {"format": "image-folder", "source": source,
                                         "sha256": ARCHIVE_SHA}, "train": {}}}
    assert parse_params(raw).dataset("pets").source.local_name


def test_the_archive_suffixes_params_accept_are_those_the_reader_reads():
    assert set(IMAGE_ARCHIVE_SUFFIXES) == set(TAR_SUFFIXES) | set(ZIP_SUFFIXES)
