"""Unbounded downloads: every attempt ends by its deadline and writes no more than its cap.

Hostile servers (tests/helpers/scripted_server.py) trickle bytes, never finish a body or a header,
stream gzip that decompresses forever, or announce more than the cap. Each case must fail fast
with a message naming the file, the bound and the params key that raises it, leave no partial
file, and still let the next source be tried. A mirror "file" that is no regular file is refused
at once.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from pathlib import Path

import pytest

from helpers import scripted_server as scripts
from numpynet.config import MAX_DOWNLOAD_BYTES
from numpynet.data.catalog import BUILTIN, DatasetSource, RemoteFile
from numpynet.data.fetch.download import download_dataset, fetch_file
from numpynet.data.fetch.transport import caps_for
from numpynet.errors import DownloadError


CONTENT = bytes(range(256)) * 64  # 16 KiB
CONTENT_SHA = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def server(scripted_http):
    return scripted_http


class PartSizes:
    """A log that records, at each failure, how large the attempt's hidden .part file had grown.

    fetch_file logs a failed source while its temporary file still exists.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lines: list[str] = []
        self.sizes: list[int] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self.sizes += [p.stat().st_size for p in self.folder.glob(".*.part-*")]


def fetch(remote, out, candidates, log=None, **limits) -> PartSizes:
    """fetch_file into ``out`` with a 5 s timeout unless ``limits`` say otherwise; timed."""
    log = log or PartSizes(out)
    started = time.monotonic()
    try:
        fetch_file(remote, out / remote.local_name, candidates, log=log,
                   **{"timeout": 5, **limits})
    finally:
        log.elapsed = time.monotonic() - started
    return log


def fails(remote, out, candidates, *fragments, **limits):
    """Run fetch_file expecting a DownloadError holding every fragment; return (message, log)."""
    log = PartSizes(out)
    with pytest.raises(DownloadError) as caught:
        fetch(remote, out, candidates, log, **limits)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert list(out.iterdir()) == [], "a failed download must leave nothing behind"
    return message, log


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


PLAIN = RemoteFile("blob.bin", sha256=CONTENT_SHA)
GZ = RemoteFile("blob.bin.gz", sha256=CONTENT_SHA)


# --- deadline -----------------------------------------------------------------------------------


@pytest.mark.hostile
@pytest.mark.parametrize("script", [
    scripts.trickle(0.2), scripts.trickle(0.2, length=10**6), scripts.trickle_headers(0.2),
    scripts.silence(),
], ids=["trickle-body", "trickle-body-announced", "trickle-headers", "silent-past-deadline"])
def test_a_source_that_never_finishes_fails_at_the_deadline(server, out, script):
    url = server.route("blob.bin", script)
    # The per-read timeout alone would never fire: each byte comes well within it.
    message, log = fails(PLAIN, out, [url], "blob.bin", "download.deadline_s", url,
                         timeout=5, deadline=1.0)
    assert 0.9 <= log.elapsed < 2.5, log.elapsed
    assert "raise download.deadline_s in params.yaml" in message


@pytest.mark.hostile
def test_a_redirect_to_a_trickle_is_bound_by_the_same_deadline(server, out):
    slow = server.route("slow.bin", scripts.trickle(0.2))
    url = server.route("blob.bin", scripts.redirect(slow))
    _, log = fails(PLAIN, out, [url], "download.deadline_s", deadline=1.0)
    assert log.elapsed < 2.5 and server.requests == ["/blob.bin", "/slow.bin"]


@pytest.mark.hostile
def test_after_a_deadline_the_next_source_is_tried(server, out):
    slow = server.route("a/blob.bin", scripts.trickle(0.1))
    good = server.route("b/blob.bin", scripts.body(CONTENT))
    log = fetch(PLAIN, out, [slow, good], deadline=0.5)
    assert (out / "blob.bin").read_bytes() == CONTENT
    assert "deadline_s" in log.lines[0] and slow in log.lines[0]


# --- size caps ----------------------------------------------------------------------------------


CAP = 1 << 20  # 1 MiB: the tests' download.max_bytes


@pytest.mark.hostile
@pytest.mark.parametrize("script", [scripts.endless(), scripts.endless_chunked()],
                         ids=["until-close", "chunked"])
def test_an_endless_body_stops_at_max_bytes(server, out, script):
    url = server.route("blob.bin", script)
    message, log = fails(PLAIN, out, [url], "blob.bin", f"more than {CAP} bytes",
                         "raise download.max_bytes in params.yaml", max_bytes=CAP)
    assert log.elapsed < 2
    assert log.sizes and max(log.sizes) <= CAP


@pytest.mark.hostile
def test_an_endless_gzip_stream_stops_at_max_bytes_of_content(server, out):
    url = server.route("blob.bin.gz", scripts.endless_gzip())
    message, log = fails(GZ, out, [url], "blob.bin.gz", "decompresses to more than",
                         "download.max_bytes", max_bytes=CAP)
    assert log.elapsed < 2
    assert log.sizes and max(log.sizes) <= CAP


@pytest.mark.hostile
def test_a_small_gzip_bomb_on_disk_stops_at_max_bytes(tmp_path, out):
    bomb = tmp_path / "blob.bin.gz"
    bomb.write_bytes(gzip.compress(bytes(64 << 20), compresslevel=9, mtime=0))  # 64 KiB -> 64 MiB
    for candidate in (str(bomb), bomb.as_uri()):
        _, log = fails(GZ, out, [candidate], "decompresses to more than", max_bytes=CAP)
        assert max(log.sizes) <= CAP


@pytest.mark.hostile
def test_endless_zeros_after_the_gzip_stream_are_capped_and_skipped_fast(server, out):
    # The md5 covers every served byte, so the tail is read: it must be bounded as well. gzip
    # allows zero padding after a member; GzipFile skipped it one byte per Python call.
    url = server.route("blob.bin.gz", scripts.gzip_then_garbage(CONTENT))
    _, log = fails(GZ, out, [url], "served more than", max_bytes=16 * CAP)
    assert log.elapsed < 3


@pytest.mark.hostile
def test_an_announced_size_past_the_cap_fails_before_reading(server, out):
    url = server.route("blob.bin", scripts.endless(length=10 * CAP))
    _, log = fails(PLAIN, out, [url], f"announces {10 * CAP} bytes", max_bytes=CAP)
    assert log.sizes == [0]


@pytest.mark.hostile
def test_a_built_in_file_is_capped_at_its_pinned_size_whatever_max_bytes_says(server, out):
    labels = BUILTIN["mnist"].files["train_labels"]
    url = server.route(labels.name, scripts.body(gzip.compress(bytes(60_009), mtime=0)))
    message, log = fails(labels, out, [url], "more than 60008 bytes", "catalog.py",
                         max_bytes=MAX_DOWNLOAD_BYTES)
    assert max(log.sizes) <= 60_008
    assert "raise download.max_bytes" not in message  # no key makes a genuine copy larger


@pytest.mark.hostile
def test_after_a_cap_the_next_source_is_tried(server, out):
    endless = server.route("a/blob.bin", scripts.endless())
    good = server.route("b/blob.bin", scripts.body(CONTENT))
    log = fetch(PLAIN, out, [endless, good], max_bytes=CAP)
    assert (out / "blob.bin").read_bytes() == CONTENT and "max_bytes" in log.lines[0]


def test_caps_rule():
    plain = caps_for(RemoteFile("a.bin", sha256=CONTENT_SHA), 1000)
    assert (plain.served, plain.stored) == (1000, 1000) and "download.max_bytes" in plain.hint
    packed = caps_for(RemoteFile("a.gz", sha256=CONTENT_SHA), 1 << 30)
    assert packed.stored == 1 << 30 and packed.served == (1 << 30) + (1 << 22) + (1 << 20)
    cifar = caps_for(BUILTIN["cifar10"].files["archive"], 1)
    assert cifar.hint is None and cifar.served >= 170_052_171


# --- files that are no regular file -------------------------------------------------------------


@pytest.mark.hostile
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_a_mirror_file_that_is_no_regular_file_is_refused_at_once(tmp_path, out, kind):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    path = mirror / "blob.bin"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block forever
    elif kind == "device":
        path.symlink_to("/dev/zero")  # never ends
    else:
        path.mkdir()
    started = time.monotonic()
    with pytest.raises(DownloadError, match="not a regular file"):
        download_dataset(one_file_source(PLAIN), out, mirror=str(mirror), timeout=5,
                         max_bytes=CAP, log=lambda line: None)
    assert time.monotonic() - started < 2


def one_file_source(remote: RemoteFile) -> DatasetSource:
    """A one-file dataset with no URLs of its own, for mirror tests."""
    return DatasetSource(name="blob", format="idx", files={"blob": remote}, urls=())
