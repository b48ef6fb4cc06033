"""Where a dataset's files are looked for: a mirror first (a URL or a folder that exists), then
the dataset's own URLs."""

from __future__ import annotations

import pytest

from numpynet.data.fetch.mirrors import candidate_urls
from numpynet.errors import DownloadError


def test_candidates_without_mirror_are_the_source_urls():
    urls = ("https://a.example/mnist/", "https://b.example/mnist")
    assert candidate_urls("f.gz", "mnist", urls, None) == [
        "https://a.example/mnist/f.gz",
        "https://b.example/mnist/f.gz",
    ]


@pytest.mark.parametrize("mirror", ["http://127.0.0.1:9/data", "http://127.0.0.1:9/data/"])
def test_url_mirror_comes_first_with_and_without_dataset_folder(mirror):
    assert candidate_urls("f.gz", "mnist", ("https://a.example/",), mirror) == [
        "http://127.0.0.1:9/data/mnist/f.gz",
        "http://127.0.0.1:9/data/f.gz",
        "https://a.example/f.gz",
    ]


def test_local_mirror_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = candidate_urls("f.gz", "mnist", (), "../shared/datasets/")
    expected = tmp_path.parent / "shared" / "datasets"
    assert found == [str(expected / "mnist" / "f.gz"), str(expected / "f.gz")]


def test_a_mirror_is_a_url_or_a_folder_that_exists(tmp_path, monkeypatch):
    from numpynet.data.fetch.mirrors import resolve_mirror

    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()
    assert resolve_mirror(None) is None and resolve_mirror("") is None
    assert resolve_mirror("http://127.0.0.1:9/x") == "http://127.0.0.1:9/x"
    assert resolve_mirror("here") == "here"
    assert resolve_mirror(str(tmp_path / "absent")) == str(tmp_path / "absent")  # sources say
    with pytest.raises(DownloadError, match="relative path.*realpath ../elsewhere"):
        resolve_mirror("../elsewhere")


@pytest.mark.hostile
@pytest.mark.parametrize("mirror", ["ftp://example.org/mnist", "s3://user:secret@bucket/mnist",
                                    "gs://bucket/data?sig=abc", "HDFS://namenode/x"])
def test_a_mirror_url_of_another_scheme_is_named_as_such_not_as_a_relative_path(mirror):
    from numpynet.data.fetch.mirrors import resolve_mirror

    with pytest.raises(DownloadError) as raised:
        resolve_mirror(mirror)
    message = str(raised.value)
    scheme = mirror.split("://")[0]
    assert f"{scheme}:// URLs are not supported" in message and "http://" in message
    assert "relative path" not in message
    assert "secret" not in message and "sig=abc" not in message
