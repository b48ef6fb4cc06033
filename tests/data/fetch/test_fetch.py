"""acquire_dataset on an image folder at a URL: the archive is fetched exactly as written (signed
query strings included), a mirror's copy first, stored under its path's file name, and messages
show the URL without its signature."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from helpers import scripted_server as scripts
from numpynet.data.catalog import ImageFolderSource
from numpynet.data.fetch import acquire_dataset
from numpynet.errors import DownloadError


ARCHIVE = b"not really a tar, but the download does not read it" * 100
ARCHIVE_SHA = hashlib.sha256(ARCHIVE).hexdigest()


def folder_source(location, sha256=None) -> ImageFolderSource:
    return ImageFolderSource("pets", str(location), sha256, None, None, 0.2, 0)


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def server(scripted_http):
    return scripted_http


@pytest.mark.hostile
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


@pytest.mark.hostile
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


@pytest.mark.hostile
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
