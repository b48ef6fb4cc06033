"""An image folder's ``source`` in params.yaml: URLs without an archive's file name, an encoded
``/``, a leading dot or no host, and local paths naming no folder of their own, refused naming
``datasets.<name>.data.source``; usable locations pass."""

from __future__ import annotations

import hashlib

import pytest

from helpers.project import shipped_params
from numpynet.config import parse_params
from numpynet.config.file import read_params_file
from numpynet.errors import ConfigError, NumpynetError


ARCHIVE = b"not really a tar, but the download does not read it" * 100
ARCHIVE_SHA = hashlib.sha256(ARCHIVE).hexdigest()
KEY = "datasets.pets.data.source"


@pytest.fixture
def raw(tmp_path):
    return read_params_file(shipped_params(tmp_path / "params.yaml"))


@pytest.mark.hostile
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


@pytest.mark.hostile
@pytest.mark.parametrize("source", [
    "https://example.org/pets.tar.gz?X-Amz-Signature=abc&Expires=1",
    "https://example.org/dir/pets.ZIP/", "images/pets", "~/datasets/pets.tar.gz",
], ids=["signed-url", "slash-url", "folder", "home-archive"])
def test_usable_locations_pass(raw, source):
    raw["datasets"] = {"pets": {"data": {"format": "image-folder", "source": source,
                                         "sha256": ARCHIVE_SHA}, "train": {}}}
    assert parse_params(raw).dataset("pets").source.local_name
