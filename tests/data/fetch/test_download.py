"""Downloading against a loopback server and local directories: verification, fallbacks, cleanup."""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from helpers.loopback import DROP_MID_FILE, NOT_FOUND, STALL, closed_port_url
from helpers.synthetic import make_synthetic_idx_dataset, stored_paths, synthetic_source
from numpynet.data.catalog import DatasetSource, RemoteFile
from numpynet.data.fetch.checksums import checksum_failure
from numpynet.data.fetch.download import download_dataset, fetch_file
from numpynet.data.fetch.mirrors import MIRROR_ENV
from numpynet.errors import DownloadError


CONTENT = bytes(range(256)) * 2000  # 512 KB, several chunks, compresses a little
CONTENT_SHA = hashlib.sha256(CONTENT).hexdigest()
GZ_NAME = "blob.bin.gz"


class Log:
    """Collects log lines so tests can check what the user was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines)


def put_gz(directory: Path, name: str = GZ_NAME, content: bytes = CONTENT, level: int = 9) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(gzip.compress(content, compresslevel=level, mtime=0))
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def out(tmp_path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


REMOTE = RemoteFile(GZ_NAME, CONTENT_SHA)
ORIGINAL_GZ = gzip.compress(CONTENT, compresslevel=9, mtime=0)
ORIGINAL_MD5 = hashlib.md5(ORIGINAL_GZ).hexdigest()


def test_success_verifies_decompresses_and_renames(http_server, out):
    put_gz(http_server.root)
    log = Log()
    dest = out / "blob.bin"
    fetch_file(REMOTE, dest, [http_server.url + GZ_NAME], timeout=5, log=log)
    assert dest.read_bytes() == CONTENT
    assert leftovers(out) == ["blob.bin"]
    assert "verified" in log.text()


def test_checksum_mismatch_raises_and_leaves_nothing(http_server, out):
    put_gz(http_server.root, content=CONTENT[:-1] + b"X")
    log = Log()
    with pytest.raises(DownloadError) as caught:
        fetch_file(REMOTE, out / "blob.bin", [http_server.url + GZ_NAME], timeout=5, log=log)
    message = str(caught.value)
    assert "checksum mismatch" in message and CONTENT_SHA in message
    assert GZ_NAME in message and http_server.url in message and MIRROR_ENV in message
    assert leftovers(out) == []


def test_404_falls_back_to_next_source(http_server, out):
    put_gz(http_server.root / "a")
    put_gz(http_server.root / "b")
    http_server.fail("a/" + GZ_NAME, NOT_FOUND)
    log = Log()
    first, second = http_server.url + "a/" + GZ_NAME, http_server.url + "b/" + GZ_NAME
    fetch_file(REMOTE, out / "blob.bin", [first, second], timeout=5, log=log)
    assert (out / "blob.bin").read_bytes() == CONTENT
    assert http_server.requests == ["/a/" + GZ_NAME, "/b/" + GZ_NAME]
    failure_lines = [line for line in log.lines if "HTTP 404" in line]
    assert len(failure_lines) == 1 and GZ_NAME in failure_lines[0] and first in failure_lines[0]


def test_dropped_connection_falls_back_to_next_source(http_server, out):
    put_gz(http_server.root / "a")
    put_gz(http_server.root / "b")
    http_server.fail("a/" + GZ_NAME, DROP_MID_FILE)
    log = Log()
    fetch_file(
        REMOTE,
        out / "blob.bin",
        [http_server.url + "a/" + GZ_NAME, http_server.url + "b/" + GZ_NAME],
        timeout=5,
        log=log,
    )
    assert (out / "blob.bin").read_bytes() == CONTENT
    assert "failed" in log.lines[0] and "/a/" in log.lines[0]
    assert leftovers(out) == ["blob.bin"]


@pytest.mark.parametrize("name", [GZ_NAME, "blob.bin"], ids=["gzip", "plain"])
def test_dropped_connection_on_only_source_leaves_no_partial_file(http_server, out, name):
    if name.endswith(".gz"):
        put_gz(http_server.root)
    else:
        (http_server.root / name).write_bytes(CONTENT)
    http_server.fail(name, DROP_MID_FILE)
    with pytest.raises(DownloadError) as caught:
        fetch_file(RemoteFile(name, CONTENT_SHA), out / "blob.bin", [http_server.url + name],
                   timeout=5, log=Log())
    assert "truncated" in str(caught.value)
    assert leftovers(out) == []


def test_truncated_gzip_is_rejected(tmp_path, out):
    source = put_gz(tmp_path / "src")
    source.write_bytes(source.read_bytes()[:-100])
    with pytest.raises(DownloadError) as caught:
        fetch_file(REMOTE, out / "blob.bin", [str(source)], timeout=5, log=Log())
    assert "gzip" in str(caught.value)
    assert leftovers(out) == []


def test_corrupt_gzip_is_rejected(tmp_path, out):
    source = put_gz(tmp_path / "src")
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    source.write_bytes(bytes(data))
    with pytest.raises(DownloadError):
        fetch_file(REMOTE, out / "blob.bin", [str(source)], timeout=5, log=Log())
    assert leftovers(out) == []


def test_unreachable_source_fails_fast_and_is_reported(http_server, out):
    put_gz(http_server.root)
    dead = closed_port_url() + GZ_NAME
    log = Log()
    started = time.monotonic()
    fetch_file(REMOTE, out / "blob.bin", [dead, http_server.url + GZ_NAME], timeout=5, log=log)
    assert time.monotonic() - started < 3
    assert dead in log.lines[0] and "refused" in log.lines[0].lower()
    assert (out / "blob.bin").read_bytes() == CONTENT


def test_unreachable_only_source_raises_download_error(out):
    dead = closed_port_url() + GZ_NAME
    with pytest.raises(DownloadError) as caught:
        fetch_file(REMOTE, out / "blob.bin", [dead], timeout=5, log=Log())
    assert dead in str(caught.value)
    assert leftovers(out) == []


def test_stalled_source_times_out(http_server, out):
    put_gz(http_server.root)
    http_server.fail(GZ_NAME, STALL)
    started = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        fetch_file(REMOTE, out / "blob.bin", [http_server.url + GZ_NAME], timeout=0.3, log=Log())
    assert time.monotonic() - started < 3
    assert "timed out" in str(caught.value)
    assert leftovers(out) == []


def test_interrupt_leaves_no_temp_file(tmp_path, out):
    source = put_gz(tmp_path / "src")

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    # A failed source is logged while its temp file still exists: an interrupt there (Ctrl-C
    # during the log call) must still remove it.
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(b"not gzip at all")
    with pytest.raises(KeyboardInterrupt):
        fetch_file(REMOTE, out / "blob.bin", [str(corrupt), str(source)],
                   timeout=5, log=interrupt)
    assert leftovers(out) == []


def test_recompressed_file_with_same_content_is_accepted(tmp_path, out):
    source = put_gz(tmp_path / "src", level=1)
    assert source.read_bytes() != gzip.compress(CONTENT, compresslevel=9, mtime=0)
    fetch_file(REMOTE, out / "blob.bin", [str(source)], timeout=5, log=Log())
    assert (out / "blob.bin").read_bytes() == CONTENT


def test_uncompressed_file_is_verified_as_is(http_server, out):
    (http_server.root / "blob.bin").write_bytes(CONTENT)
    fetch_file(RemoteFile("blob.bin", CONTENT_SHA), out / "blob.bin",
               [http_server.url + "blob.bin"], timeout=5, log=Log())
    assert (out / "blob.bin").read_bytes() == CONTENT


def test_no_candidates_raises(out):
    with pytest.raises(DownloadError, match="no sources"):
        fetch_file(REMOTE, out / "blob.bin", [], timeout=5, log=Log())


# --- download_dataset -----------------------------------------------------------------------

def all_verified(source: DatasetSource, out: Path) -> bool:
    """Whether every file of ``source`` is stored in ``out`` with its pinned content sha256."""
    paths = stored_paths(source, out)
    return all(
        path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == source.files[r].sha256
        for r, path in paths.items()
    )


@pytest.fixture
def synthetic_mirror(tmp_path):
    """A folder of datasets holding a synthetic MNIST under ``mnist/``; returns (root, source)."""
    root = tmp_path / "datasets"
    files = make_synthetic_idx_dataset(root / "mnist", 40, 20, np.random.default_rng(0))
    return root, synthetic_source(files, urls=(closed_port_url(),))


@pytest.mark.parametrize("subfolder", [False, True], ids=["datasets-folder", "dataset-folder"])
def test_local_directory_mirror(synthetic_mirror, out, subfolder):
    root, source = synthetic_mirror
    mirror = str(root / "mnist") if subfolder else str(root)
    download_dataset(source, out, mirror=mirror, timeout=5, log=Log())
    paths = stored_paths(source, out)
    assert set(paths) == {"train_images", "train_labels", "test_images", "test_labels"}
    for role, path in paths.items():
        assert not path.name.endswith(".gz")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == source.files[role].sha256
    assert sorted(leftovers(out)) == sorted(path.name for path in paths.values())


@pytest.mark.parametrize("subfolder", [False, True], ids=["datasets-folder", "dataset-folder"])
def test_http_mirror(http_server, out, subfolder):
    files = make_synthetic_idx_dataset(http_server.root / "mnist", 30, 10, np.random.default_rng(1))
    source = synthetic_source(files)
    mirror = http_server.url + ("mnist/" if subfolder else "")
    download_dataset(source, out, mirror=mirror, timeout=5, log=Log())
    assert all_verified(source, out) and len(leftovers(out)) == 4


def test_file_url_mirror(synthetic_mirror, out):
    root, source = synthetic_mirror
    download_dataset(source, out, mirror=root.as_uri(), timeout=5, log=Log())
    assert all_verified(source, out)


def test_verified_files_are_not_downloaded_again(synthetic_mirror, out):
    root, source = synthetic_mirror
    download_dataset(source, out, mirror=str(root), timeout=5, log=Log())
    log = Log()
    download_dataset(source, out, mirror=None, timeout=5, log=log)
    assert all_verified(source, out)
    assert sum("already verified" in line for line in log.lines) == 4


def test_corrupt_existing_file_is_replaced(synthetic_mirror, out):
    root, source = synthetic_mirror
    download_dataset(source, out, mirror=str(root), timeout=5, log=Log())
    paths = stored_paths(source, out)
    paths["train_labels"].write_bytes(b"garbage")
    download_dataset(source, out, mirror=str(root), timeout=5, log=Log())
    assert hashlib.sha256(paths["train_labels"].read_bytes()).hexdigest() == (
        source.files["train_labels"].sha256
    )


def test_corrupt_existing_file_is_removed_when_no_source_works(synthetic_mirror, out):
    root, source = synthetic_mirror
    download_dataset(source, out, mirror=str(root), timeout=5, log=Log())
    paths = stored_paths(source, out)
    paths["train_labels"].write_bytes(b"garbage")
    with pytest.raises(DownloadError) as caught:
        download_dataset(source, out, mirror=str(root / "empty"), timeout=5, log=Log())
    assert "train-labels-idx1-ubyte.gz" in str(caught.value)
    assert not paths["train_labels"].exists()
    assert not any(name.startswith(".") for name in leftovers(out))


def test_temp_files_are_hidden_in_destination_dir(http_server, out, monkeypatch):
    """While streaming, the partial file lives next to dest under a hidden .part name."""
    put_gz(http_server.root)
    seen: list[list[str]] = []
    real_replace = os.replace

    def spy_replace(src, dst):
        seen.append([Path(src).name, Path(src).parent == out])
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy_replace)
    fetch_file(REMOTE, out / "blob.bin", [http_server.url + GZ_NAME], timeout=5, log=Log())
    [[name, same_dir]] = seen
    assert name.startswith(".blob.bin.part-") and same_dir


# --- pins: sha256 of the stored content, md5 of the served bytes ----------------------------

WRONG_SHA = "0" * 64
WRONG_MD5 = "0" * 32


def test_remote_file_needs_a_pin():
    with pytest.raises(ValueError, match="at least one checksum"):
        RemoteFile("a.gz")


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"sha256": "abc"}, "sha256 must be 64"),
    ({"md5": CONTENT_SHA}, "md5 must be 32"),
    ({"md5": "z" * 32}, "md5 must be 32"),
])
def test_remote_file_rejects_malformed_digests(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        RemoteFile("a.gz", **kwargs)


def test_remote_file_defaults_and_local_names():
    assert RemoteFile("a.gz", md5=ORIGINAL_MD5).decompress is True
    assert RemoteFile("a.gz", md5=ORIGINAL_MD5).local_name == "a"
    assert RemoteFile("a.bin", md5=ORIGINAL_MD5).decompress is False
    assert RemoteFile("a.gz", md5=ORIGINAL_MD5, decompress=False).local_name == "a.gz"
    assert RemoteFile("a.tar", md5=ORIGINAL_MD5, decompress=True).local_name == "a.tar"
    assert RemoteFile("a.gz", md5=ORIGINAL_MD5.upper()).md5 == ORIGINAL_MD5
    assert RemoteFile("a.gz", CONTENT_SHA) == RemoteFile("a.gz", sha256=CONTENT_SHA)


# (sha256 pin, md5 pin) -> whether the original archive / a re-compressed copy is accepted.
PIN_CASES = {
    "sha256-only": ((CONTENT_SHA, None), True, True),
    "md5-only": ((None, ORIGINAL_MD5), True, False),
    "both": ((CONTENT_SHA, ORIGINAL_MD5), True, True),
    "md5-right-sha256-wrong": ((WRONG_SHA, ORIGINAL_MD5), True, False),
    "sha256-right-md5-wrong": ((CONTENT_SHA, WRONG_MD5), True, True),
    "both-wrong": ((WRONG_SHA, WRONG_MD5), False, False),
}


@pytest.mark.parametrize("recompressed", [False, True], ids=["original", "recompressed"])
@pytest.mark.parametrize("case", PIN_CASES)
def test_any_pinned_digest_suffices(tmp_path, out, case, recompressed):
    (sha256, md5), original_ok, recompressed_ok = PIN_CASES[case]
    remote = RemoteFile(GZ_NAME, sha256=sha256, md5=md5)
    source = put_gz(tmp_path / "src", level=1 if recompressed else 9)
    assert (source.read_bytes() == ORIGINAL_GZ) is not recompressed
    if (recompressed_ok if recompressed else original_ok):
        fetch_file(remote, out / "blob.bin", [str(source)], timeout=5, log=Log())
        assert (out / "blob.bin").read_bytes() == CONTENT
    else:
        with pytest.raises(DownloadError, match="checksum mismatch"):
            fetch_file(remote, out / "blob.bin", [str(source)], timeout=5, log=Log())
        assert leftovers(out) == []


def test_md5_only_pin_explains_why_a_recompressed_copy_is_rejected(http_server, out):
    put_gz(http_server.root, level=1)
    served_md5 = hashlib.md5((http_server.root / GZ_NAME).read_bytes()).hexdigest()
    with pytest.raises(DownloadError) as caught:
        fetch_file(RemoteFile(GZ_NAME, md5=ORIGINAL_MD5), out / "blob.bin",
                   [http_server.url + GZ_NAME], timeout=5, log=Log())
    message = str(caught.value)
    assert f"served md5 {served_md5} ≠ pinned {ORIGINAL_MD5}" in message
    assert "only the publisher's original archive can be verified for this file" in message
    assert leftovers(out) == []


def test_failure_reason_names_every_pinned_digest():
    reason = checksum_failure(RemoteFile(GZ_NAME, sha256=CONTENT_SHA, md5=ORIGINAL_MD5),
                              served_md5=WRONG_MD5, content_sha256=WRONG_SHA)
    assert reason is not None
    assert f"content sha256 {WRONG_SHA} ≠ pinned {CONTENT_SHA}" in reason
    assert f"served md5 {WRONG_MD5} ≠ pinned {ORIGINAL_MD5}" in reason
    # A content pin could have proven a re-compressed copy, so that hint would mislead.
    assert "original archive" not in reason
    assert checksum_failure(REMOTE, served_md5=WRONG_MD5, content_sha256=CONTENT_SHA) is None


def test_md5_covers_the_served_bytes_even_past_the_gzip_stream(tmp_path, out):
    # Trailing zero padding is skipped by gzip but is part of what was served.
    source = tmp_path / GZ_NAME
    source.write_bytes(ORIGINAL_GZ + b"\0" * 100)
    with pytest.raises(DownloadError, match="served md5"):
        fetch_file(RemoteFile(GZ_NAME, md5=ORIGINAL_MD5), out / "blob.bin", [str(source)],
                   timeout=5, log=Log())


def test_gz_kept_compressed_is_stored_as_served(http_server, out):
    put_gz(http_server.root)
    remote = RemoteFile(GZ_NAME, md5=ORIGINAL_MD5, decompress=False)
    fetch_file(remote, out / remote.local_name, [http_server.url + GZ_NAME], timeout=5, log=Log())
    assert (out / GZ_NAME).read_bytes() == ORIGINAL_GZ
    assert leftovers(out) == [GZ_NAME]


def test_kept_compressed_sha256_pin_is_of_the_served_bytes(tmp_path, out):
    # Stored as served, so the stored content is the .gz itself: a pin of the decompressed bytes
    # does not match it.
    source = put_gz(tmp_path / "src")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch_file(RemoteFile(GZ_NAME, sha256=CONTENT_SHA, decompress=False), out / GZ_NAME,
                   [str(source)], timeout=5, log=Log())
    gz_sha = hashlib.sha256(ORIGINAL_GZ).hexdigest()
    fetch_file(RemoteFile(GZ_NAME, sha256=gz_sha, decompress=False), out / GZ_NAME,
               [str(source)], timeout=5, log=Log())


def single_file_source(remote: RemoteFile, url: str) -> DatasetSource:
    return DatasetSource(name="blob", format="idx", files={"blob": remote}, urls=(url,))


def test_existing_md5_only_decompressed_file_is_downloaded_again(http_server, out):
    put_gz(http_server.root)
    source = single_file_source(RemoteFile(GZ_NAME, md5=ORIGINAL_MD5), http_server.url)
    download_dataset(source, out, mirror=None, timeout=5, log=Log())
    log = Log()
    download_dataset(source, out, mirror=None, timeout=5, log=log)
    assert "cannot be checked" in log.text() and "verified from" in log.text()
    assert stored_paths(source, out)["blob"].read_bytes() == CONTENT and http_server.requests == ["/" + GZ_NAME] * 2


def test_existing_md5_only_file_stored_as_served_is_checked_by_md5(http_server, out):
    put_gz(http_server.root)
    remote = RemoteFile(GZ_NAME, md5=ORIGINAL_MD5, decompress=False)
    source = single_file_source(remote, http_server.url)
    download_dataset(source, out, mirror=None, timeout=5, log=Log())
    paths = stored_paths(source, out)
    log = Log()
    download_dataset(source, out, mirror=None, timeout=5, log=log)
    assert "already verified" in log.text() and len(http_server.requests) == 1
    paths["blob"].write_bytes(b"garbage")
    log = Log()
    download_dataset(source, out, mirror=None, timeout=5, log=log)
    assert "wrong checksum" in log.text() and paths["blob"].read_bytes() == ORIGINAL_GZ


HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body>Hi</body></html>\n"


@pytest.mark.hostile
@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_a_web_page_in_place_of_the_file_is_named_as_one(scripted_http, out, content_type):
    """A mirror answering every path with its home page, whatever Content-Type it claims."""
    def page(handler, stop):
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(HTML_PAGE)))
        handler.end_headers()
        handler.wfile.write(HTML_PAGE)

    url = scripted_http.route(GZ_NAME, page)
    with pytest.raises(DownloadError) as raised:
        fetch_file(REMOTE, out / "blob.bin", [url], timeout=5, log=Log())
    message = str(raised.value)
    assert "a web page" in message and "not the dataset file" in message
    assert MIRROR_ENV in message and "gzip" not in message
    assert leftovers(out) == []


@pytest.mark.hostile
def test_a_web_page_saved_in_a_mirror_folder_is_named_as_one(tmp_path, out):
    source = tmp_path / "mirror" / GZ_NAME
    source.parent.mkdir()
    source.write_bytes(b"\xef\xbb\xbf\n  " + HTML_PAGE.upper())
    with pytest.raises(DownloadError, match="a web page"):
        fetch_file(REMOTE, out / "blob.bin", [str(source)], timeout=5, log=Log())
    assert leftovers(out) == []


@pytest.mark.hostile
def test_a_real_file_served_as_text_html_is_accepted(scripted_http, out):
    """Some servers label every file text/html: the content decides, not the label."""
    def labelled(handler, stop):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(ORIGINAL_GZ)))
        handler.end_headers()
        handler.wfile.write(ORIGINAL_GZ)

    url = scripted_http.route(GZ_NAME, labelled)
    fetch_file(REMOTE, out / "blob.bin", [url], timeout=5, log=Log())
    assert (out / "blob.bin").read_bytes() == CONTENT
