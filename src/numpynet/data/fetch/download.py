"""Download dataset files, trying sources in order, and keep only content that matches a pin.

One streaming pass computes both digests a file can be pinned by (see ``catalog``): the md5 of the
bytes as served and the sha256 of the content as stored (decompressed, for a ``.gz`` that is
decompressed). Either pinned digest matching is enough: a mirror that re-compresses an archive
changes its md5 but still carries the content the sha256 proves. A corrupted or truncated file
matches neither. Nothing unverified ever reaches the destination name: each attempt streams into a
hidden temporary file that is renamed into place only after a checksum matched, and deleted
otherwise. Every attempt is bounded in time and size (see :mod:`numpynet.data.fetch.transport`):
a source that trickles, or sends more than the file can hold, fails like any other and the next is
tried.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import secrets
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from numpynet.data.catalog import (
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_BYTES,
    DatasetSource,
    RemoteFile,
)
from numpynet.data.fetch.checksums import checksum_failure, stored_file_is_verified
from numpynet.data.fetch.gunzip import GunzipReader
from numpynet.data.fetch.mirrors import MIRROR_ENV, candidate_urls, shown_source
from numpynet.data.fetch.transport import (
    CountingReader,
    Deadline,
    SourceFailure,
    cap_failure,
    caps_for,
    describe_failure,
    local_path,
    open_local,
    open_url,
)
from numpynet.data.web_page import SNIFF_BYTES, looks_like_a_web_page
from numpynet.errors import DownloadError, NumpynetError
from numpynet.files import public_name
from numpynet.log import Log, log_to_stderr

_CHUNK_BYTES = 1 << 16


def _open_source(
    candidate: str, timeout: float, deadline: Deadline
) -> tuple[BinaryIO, int | None]:
    """Open ``candidate`` for reading; return the stream and its expected size when known.

    Raises :class:`SourceFailure` for a web page in place of the file (see :func:`_refuse_a_page`).
    """
    path = local_path(candidate)
    if path is not None:
        stream, size = open_local(path)
        head = stream.read(SNIFF_BYTES)
        stream.seek(0)
        _refuse_a_page(head, None, stream)
        return stream, size
    # A connect is only watched once it succeeds: bound it by the deadline too.
    response = open_url(candidate, min(timeout, deadline.seconds), deadline)
    _refuse_a_page(response.peek(SNIFF_BYTES)[:SNIFF_BYTES],
                   response.headers.get_content_type(), response)
    length = response.headers.get("Content-Length")
    return response, int(length) if length and length.isdigit() else None




def _refuse_a_page(head: bytes, content_type: str | None, stream: BinaryIO) -> None:
    """Refuse a web page served or saved in place of a dataset file, which no dataset file is:
    a mirror that answers every path with its home page, a login or error page, a page saved
    from a browser. Otherwise it would fail later as a corrupt gzip stream or a bad checksum,
    which sends the user looking for damage instead of at the address."""
    # The content decides, not the Content-Type: some servers label real .gz files text/html.
    if looks_like_a_web_page(head):
        stream.close()
        served = f"served as {content_type}" if content_type else "its content"
        raise SourceFailure(
            f"a web page ({served}), not the dataset file: the address leads to a page (a "
            f"mirror's home or error page, a login) instead of the file; check the URL or "
            f"{MIRROR_ENV}"
        )


def _stream_into(
    candidate: str,
    remote: RemoteFile,
    part: BinaryIO,
    part_path: Path,
    *,
    timeout: float,
    deadline: float,
    max_bytes: int,
) -> tuple[str, str]:
    """Copy ``candidate`` into ``part``, decompressing on the way when ``remote.decompress``.

    Returns ``(md5 of the served bytes, sha256 of the stored content)``. Raises
    :class:`SourceFailure` when the attempt passes ``deadline`` seconds or one of the file's caps
    (:func:`~numpynet.data.fetch.transport.caps_for`); nothing past the stored cap is ever written.
    """
    caps = caps_for(remote, max_bytes)
    with Deadline(deadline) as clock:
        try:
            source, expected_size = _open_source(candidate, timeout, clock)
            with source:
                if expected_size is not None and expected_size > caps.served:
                    # Announced up front (Content-Length, a local file's size): fail before reading.
                    raise cap_failure(remote.name, f"announces {expected_size} bytes,",
                                      caps.served, caps)
                digests = _copy_stream(
                    source, expected_size, remote, part, part_path, caps, clock
                )
            clock.check()  # the watchdog's shutdown can look like a clean end of the stream
            return digests
        except (SourceFailure, NumpynetError):  # a full disk is not the deadline's doing
            raise
        except Exception as error:  # the watchdog's closed socket surfaces as anything
            if clock.passed():
                raise clock.failure() from error
            raise


def _copy_stream(source, expected_size, remote, part, part_path, caps, clock) -> tuple[str, str]:
    """The copy loop of :func:`_stream_into`, with a progress bar."""
    with tqdm(
        total=expected_size,
        desc=remote.name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=None,
        leave=False,
    ) as progress:
        counter = CountingReader(source, progress, remote.name, caps, clock)
        content: BinaryIO = counter  # type: ignore[assignment]
        if remote.decompress:
            content = GunzipReader(counter)  # type: ignore[assignment]
        digest = hashlib.sha256()
        stored = 0
        for chunk in iter(lambda: content.read(_CHUNK_BYTES), b""):
            stored += len(chunk)
            if stored > caps.stored:
                what = "decompresses to" if remote.decompress else "holds"
                raise cap_failure(remote.name, what, caps.stored, caps)
            digest.update(chunk)
            try:
                part.write(chunk)
            except OSError as error:
                # A full disk is not the source's fault: trying other sources would not help.
                shown = public_name(part_path)  # the file the user will look for, not ours
                raise DownloadError(
                    f"cannot write {shown} while downloading {remote.name}: "
                    f"{error.strerror or error}; free disk space or fix the permissions of "
                    f"{Path(shown).parent}"
                ) from error
        # The md5 must cover every served byte, even any the decompressor left unread.
        for _ in iter(lambda: counter.read(_CHUNK_BYTES), b""):
            pass
        # http.client returns a short body without complaint when the peer closes early.
        if expected_size is not None and counter.bytes_read < expected_size:
            raise SourceFailure(
                f"truncated: expected {expected_size} bytes, received {counter.bytes_read}"
            )
    return counter.md5.hexdigest(), digest.hexdigest()


def fetch_file(
    remote: RemoteFile,
    dest: Path,
    candidates: Sequence[str],
    *,
    timeout: float,
    deadline: float = DEFAULT_DEADLINE_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
    log: Log = log_to_stderr,
) -> None:
    """Fetch ``remote`` from the first of ``candidates`` that delivers it intact, into ``dest``.

    ``dest`` is the stored file's path. When ``remote.decompress`` the file is gunzipped while it
    streams. It is accepted when the stored content matches ``remote.sha256`` or the served bytes
    match ``remote.md5``, whichever are pinned. ``timeout`` bounds each blocking step, ``deadline``
    (seconds) each whole attempt, and the bytes one attempt may bring are capped by the file's
    pinned size or else by ``max_bytes`` (see :mod:`numpynet.data.fetch.transport`). A source that
    fails (HTTP error, refused connection, timeout, deadline, cap, dropped connection, bad gzip,
    checksum mismatch) is logged in one line and the next is tried. Raises :class:`DownloadError`
    listing every source and its reason, and the params key to raise where one would help, when
    none succeeds. No temporary or partial file is left behind, whatever happens.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    hints: list[str] = []
    for candidate in candidates:
        # Same directory as dest, so os.replace is an atomic rename; hidden, so no tool picks it
        # up. Opened exclusively rather than via mkstemp so the file gets the umask's permissions.
        part_path = dest.parent / f".{dest.name}.part-{secrets.token_hex(6)}"
        part = open(part_path, "xb")
        try:
            with part:
                try:
                    served_md5, content_sha256 = _stream_into(
                        candidate, remote, part, part_path,
                        timeout=timeout, deadline=deadline, max_bytes=max_bytes,
                    )
                    failure = checksum_failure(
                        remote, served_md5=served_md5, content_sha256=content_sha256
                    )
                    if failure is not None:
                        raise SourceFailure(failure)
                except (SourceFailure, OSError, EOFError, zlib.error, http.client.HTTPException,
                        ValueError) as error:
                    reason = describe_failure(error, timeout)
                    failures.append(f"{shown_source(candidate)}: {reason}")
                    hint = getattr(error, "hint", None)
                    if hint and hint not in hints:
                        hints.append(hint)
                    # A mirror holds a dataset either in a subfolder or not: the miss is expected.
                    if reason != "no such file":
                        log(f"{remote.name}: {shown_source(candidate)} failed: {reason}")
                    continue
            os.replace(part_path, dest)
            log(f"{remote.name}: verified from {shown_source(candidate)}")
            return
        finally:
            part_path.unlink(missing_ok=True)

    listed = "\n".join(f"  - {failure}" for failure in failures) or "  (no sources to try)"
    fixes = [f"{hint[0].upper()}{hint[1:]}." for hint in hints]
    fixes.append(f"Set {MIRROR_ENV} to a directory or URL that holds {remote.name} "
                 f"(see README, 'Using a mirror').")
    raise DownloadError(
        f"could not download {remote.name}; every source failed:\n{listed}\n" + " ".join(fixes)
    )


def download_dataset(
    source: DatasetSource,
    out_dir: Path,
    *,
    mirror: str | None,
    timeout: float,
    deadline: float = DEFAULT_DEADLINE_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
    log: Log = log_to_stderr,
) -> None:
    """Download every file of ``source`` into ``out_dir``.

    Files are stored under their ``local_name`` (decompressed ``.gz`` files without the suffix). A
    file already there whose checksum matches is kept without downloading; one whose checksum does
    not, or that no pin can check (a decompressed file pinned only by its archive's md5), is
    deleted first and downloaded again, so ``out_dir`` never holds unverified content. ``mirror``
    (a URL or a local directory, usually read from ``$NUMPYNET_MIRROR`` by the caller) is tried
    before the source's own URLs. ``timeout``, ``deadline`` and ``max_bytes`` bound each attempt
    (see :func:`fetch_file`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for remote in source.files.values():
        dest = out_dir / remote.local_name
        if dest.is_file():
            verified = stored_file_is_verified(remote, dest)
            if verified:
                log(f"{remote.name}: {dest} already verified")
                continue
            if verified is None:
                log(f"{remote.name}: {dest} cannot be checked (only the md5 of the served archive "
                    f"is pinned); downloading it again")
            else:
                log(f"{remote.name}: {dest} has the wrong checksum; downloading it again")
            dest.unlink()
        candidates = candidate_urls(remote.name, source.name, source.urls, mirror)
        fetch_file(remote, dest, candidates, timeout=timeout, deadline=deadline,
                   max_bytes=max_bytes, log=log)
