"""Unbounded downloads: every attempt ends by its deadline and writes no more than its cap.

Hostile servers (tests/helpers/scripted_server.py) trickle bytes, never finish a body or a header,
stream gzip that decompresses forever, or announce more than the cap. Each case must fail fast
with a message naming the file, the bound and the params key that raises it, leave no partial
file, and still let the next source be tried.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import time
import zlib
from pathlib import Path

import pytest

from numpynet.config import MAX_DEADLINE_S, MAX_DOWNLOAD_BYTES, parse_params
from numpynet.config.file import read_params_file
from numpynet.data.catalog import (
    BUILTIN,
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_BYTES,
    DatasetSource,
    RemoteFile,
)
from numpynet.data.fetch.download import download_dataset, fetch_file
from numpynet.data.fetch.gunzip import GunzipReader
from numpynet.data.fetch.transport import caps_for
from numpynet.errors import ConfigError, DownloadError
from helpers import scripted_server as scripts
from helpers.project import base_params, shipped_params
from helpers.stage_run import code_copy, run_stage

CONTENT = bytes(range(256)) * 64  # 16 KiB
CONTENT_SHA = hashlib.sha256(CONTENT).hexdigest()
SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


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


# --- deadline -------------------------------------------------------------------------------

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


def test_a_redirect_to_a_trickle_is_bound_by_the_same_deadline(server, out):
    slow = server.route("slow.bin", scripts.trickle(0.2))
    url = server.route("blob.bin", scripts.redirect(slow))
    _, log = fails(PLAIN, out, [url], "download.deadline_s", deadline=1.0)
    assert log.elapsed < 2.5 and server.requests == ["/blob.bin", "/slow.bin"]


def test_after_a_deadline_the_next_source_is_tried(server, out):
    slow = server.route("a/blob.bin", scripts.trickle(0.1))
    good = server.route("b/blob.bin", scripts.body(CONTENT))
    log = fetch(PLAIN, out, [slow, good], deadline=0.5)
    assert (out / "blob.bin").read_bytes() == CONTENT
    assert "deadline_s" in log.lines[0] and slow in log.lines[0]


# --- size caps ------------------------------------------------------------------------------

CAP = 1 << 20  # 1 MiB: the tests' download.max_bytes


@pytest.mark.parametrize("script", [scripts.endless(), scripts.endless_chunked()],
                         ids=["until-close", "chunked"])
def test_an_endless_body_stops_at_max_bytes(server, out, script):
    url = server.route("blob.bin", script)
    message, log = fails(PLAIN, out, [url], "blob.bin", f"more than {CAP} bytes",
                         "raise download.max_bytes in params.yaml", max_bytes=CAP)
    assert log.elapsed < 2
    assert log.sizes and max(log.sizes) <= CAP


def test_an_endless_gzip_stream_stops_at_max_bytes_of_content(server, out):
    url = server.route("blob.bin.gz", scripts.endless_gzip())
    message, log = fails(GZ, out, [url], "blob.bin.gz", "decompresses to more than",
                         "download.max_bytes", max_bytes=CAP)
    assert log.elapsed < 2
    assert log.sizes and max(log.sizes) <= CAP


def test_a_small_gzip_bomb_on_disk_stops_at_max_bytes(tmp_path, out):
    bomb = tmp_path / "blob.bin.gz"
    bomb.write_bytes(gzip.compress(bytes(64 << 20), compresslevel=9, mtime=0))  # 64 KiB -> 64 MiB
    for candidate in (str(bomb), bomb.as_uri()):
        _, log = fails(GZ, out, [candidate], "decompresses to more than", max_bytes=CAP)
        assert max(log.sizes) <= CAP


def test_endless_zeros_after_the_gzip_stream_are_capped_and_skipped_fast(server, out):
    # The md5 covers every served byte, so the tail is read: it must be bounded as well. gzip
    # allows zero padding after a member; GzipFile skipped it one byte per Python call.
    url = server.route("blob.bin.gz", scripts.gzip_then_garbage(CONTENT))
    _, log = fails(GZ, out, [url], "served more than", max_bytes=16 * CAP)
    assert log.elapsed < 3


def gunzip(data: bytes, read_size: int) -> bytes:
    class Source:
        stream = io.BytesIO(data)

        def read(self, size=-1):
            return self.stream.read(min(size, 7))  # a stingy source: 7 bytes at most per read

    reader, parts = GunzipReader(Source()), []
    while part := reader.read(read_size):
        parts.append(part)
    return b"".join(parts)


PACKED = gzip.compress(CONTENT, mtime=0)


@pytest.mark.parametrize("data", [
    b"", PACKED, PACKED + PACKED, PACKED + bytes(1000) + PACKED, PACKED + bytes(70000),
    gzip.compress(b"", mtime=0), PACKED + b"junk", PACKED[:-3], PACKED[:40], bytes(20),
    PACKED + b"\x1f", PACKED[:30] + bytes([PACKED[30] ^ 0xFF]) + PACKED[31:],
], ids=["empty", "one", "two", "padded-two", "padded", "empty-member", "junk-after",
        "no-trailer", "cut", "zeros", "half-magic", "flipped"])
def test_the_streaming_gunzip_reads_what_gzip_reads(data):
    try:
        expected = gzip.decompress(data)
    except (EOFError, OSError, zlib.error):
        expected = None
    for read_size in (1, 4096):
        if expected is None:
            with pytest.raises((EOFError, zlib.error)):
                gunzip(data, read_size)
        else:
            assert gunzip(data, read_size) == expected


def test_an_announced_size_past_the_cap_fails_before_reading(server, out):
    url = server.route("blob.bin", scripts.endless(length=10 * CAP))
    _, log = fails(PLAIN, out, [url], f"announces {10 * CAP} bytes", max_bytes=CAP)
    assert log.sizes == [0]


def test_a_built_in_file_is_capped_at_its_pinned_size_whatever_max_bytes_says(server, out):
    labels = BUILTIN["mnist"].files["train_labels"]
    url = server.route(labels.name, scripts.body(gzip.compress(bytes(60_009), mtime=0)))
    message, log = fails(labels, out, [url], "more than 60008 bytes", "catalog.py",
                         max_bytes=MAX_DOWNLOAD_BYTES)
    assert max(log.sizes) <= 60_008
    assert "raise download.max_bytes" not in message  # no key makes a genuine copy larger


def test_after_a_cap_the_next_source_is_tried(server, out):
    endless = server.route("a/blob.bin", scripts.endless())
    good = server.route("b/blob.bin", scripts.body(CONTENT))
    log = fetch(PLAIN, out, [endless, good], max_bytes=CAP)
    assert (out / "blob.bin").read_bytes() == CONTENT and "max_bytes" in log.lines[0]


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


def test_caps_rule():
    plain = caps_for(RemoteFile("a.bin", sha256=CONTENT_SHA), 1000)
    assert (plain.served, plain.stored) == (1000, 1000) and "download.max_bytes" in plain.hint
    packed = caps_for(RemoteFile("a.gz", sha256=CONTENT_SHA), 1 << 30)
    assert packed.stored == 1 << 30 and packed.served == (1 << 30) + (1 << 22) + (1 << 20)
    cifar = caps_for(BUILTIN["cifar10"].files["archive"], 1)
    assert cifar.hint is None and cifar.served >= 170_052_171


# --- pinned sizes ---------------------------------------------------------------------------

SIZES = {  # served (.gz) and stored (decompressed) sizes of the official files
    "mnist": {"train_images": (9912422, 47040016), "train_labels": (28881, 60008),
              "test_images": (1648877, 7840016), "test_labels": (4542, 10008)},
    "fashion-mnist": {"train_images": (26421880, 47040016), "train_labels": (29515, 60008),
                      "test_images": (4422102, 7840016), "test_labels": (5148, 10008)},
}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_built_in_idx_files_pin_their_official_sizes(name):
    files = BUILTIN[name].files
    assert {role: (f.served_size, f.max_stored_size) for role, f in files.items()} == SIZES[name]


def test_cifar10_bound_holds_a_tar_of_the_official_members():
    archive = BUILTIN["cifar10"].files["archive"]
    assert archive.served_size == 170_052_171
    members = {f"cifar-10-batches-bin/{n}.bin": 30_730_000 for n in
               ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                "test_batch")}
    members.update({"cifar-10-batches-bin/batches.meta.txt": 61,
                    "cifar-10-batches-bin/readme.html": 88})
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        size = _tar_size(members, fmt)
        assert 184_380_000 < size <= archive.max_stored_size, (fmt, size)


def _tar_size(members: dict[str, int], fmt: int) -> int:
    """The size of a tar of ``members`` (zeros), counted without keeping it."""

    class Counter:
        total = 0

        def write(self, data):
            self.total += len(data)
            return len(data)

        def tell(self):
            return self.total

    sink = Counter()
    with tarfile.open(fileobj=sink, mode="w", format=fmt) as tar:
        directory = tarfile.TarInfo("cifar-10-batches-bin")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        zeros = bytes(max(members.values()))
        for name, size in members.items():
            tar.addfile(_info(name, size), io.BytesIO(zeros[:size]))
    return sink.total


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="no real MNIST copy on this machine")
def test_real_mnist_fits_its_pinned_sizes_exactly():
    for remote in BUILTIN["mnist"].files.values():
        with gzip.open(SHARED_MNIST / remote.name) as stream:
            assert len(stream.read()) == remote.max_stored_size


# --- params ---------------------------------------------------------------------------------

@pytest.fixture
def raw(tmp_path):
    return read_params_file(shipped_params(tmp_path / "params.yaml"))


@pytest.mark.parametrize("key, value, expected", [
    ("deadline_s", 0, "<= 604800"), ("deadline_s", -5, "<= 604800"),
    ("deadline_s", MAX_DEADLINE_S + 1, "<= 604800"), ("deadline_s", "1h", "wrong type str"),
    ("max_bytes", 0, "from 1 to"), ("max_bytes", MAX_DOWNLOAD_BYTES + 1, "from 1 to"),
    ("max_bytes", 8.5e9, "wrong type float"), ("max_bytes", True, "wrong type bool"),
], ids=["deadline-zero", "deadline-negative", "deadline-over-week", "deadline-text",
        "max-zero", "max-over-tib", "max-float", "max-bool"])
def test_bad_bounds_are_rejected_with_their_key(raw, key, value, expected):
    raw["download"][key] = value
    with pytest.raises(ConfigError) as caught:
        parse_params(raw)
    assert f"download.{key}" in str(caught.value) and expected in str(caught.value)


def test_bounds_may_be_left_out_and_take_their_defaults(raw):
    raw["download"] = {"timeout_s": 30}
    download = parse_params(raw).download
    assert (download.deadline_s, download.max_bytes) == (DEFAULT_DEADLINE_S, DEFAULT_MAX_BYTES)
    assert DEFAULT_DEADLINE_S == 3600 and DEFAULT_MAX_BYTES == 8 << 30


# --- the stage ------------------------------------------------------------------------------

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
    root = code_copy(tmp_path / "project", params)
    result = run_stage(root, "download", "pets", "--out", "data/raw/pets")
    assert result.returncode == 2, result.stderr
    assert "error: could not download pets.tar.gz; every source failed" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "data" / "raw").exists() or list((root / "data" / "raw").iterdir()) == []
