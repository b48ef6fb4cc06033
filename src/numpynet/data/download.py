"""Download dataset files, trying sources in order, and keep only content that matches a pin.

One streaming pass computes both digests a file can be pinned by (see ``catalog``): the md5 of the
bytes as served and the sha256 of the content as stored (decompressed, for a ``.gz`` that is
decompressed). Either pinned digest matching is enough: a mirror that re-compresses an archive
changes its md5 but still carries the content the sha256 proves. A corrupted or truncated file
matches neither. Nothing unverified ever reaches the destination name: each attempt streams into a
hidden temporary file that is renamed into place only after a checksum matched, and deleted
otherwise.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import secrets
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from numpynet.data.catalog import DatasetSource, RemoteFile, is_url
from numpynet.data.checksums import checksum_failure, stored_file_is_verified
from numpynet.errors import DownloadError
from numpynet.log import Log, log_to_stderr

MIRROR_ENV = "NUMPYNET_MIRROR"

_CHUNK_BYTES = 1 << 16


class _SourceFailure(Exception):
    """One source could not deliver the file; the next one is tried."""


def resolve_mirror(mirror: str | None) -> str | None:
    """Check a mirror setting: a URL, or a folder that exists; None when there is no mirror.

    A relative folder is refused when it is not there: queued and ``--temp`` experiments run in a
    copy of the project elsewhere, where a path that worked in the project means something else.
    """
    if not mirror or is_url(mirror):
        return mirror or None
    folder = os.path.expanduser(mirror)
    if not os.path.isabs(folder) and not os.path.isdir(folder):
        raise DownloadError(
            f"{MIRROR_ENV}={mirror} is a relative path and no such folder exists here "
            f"({os.getcwd()}); give an absolute path, e.g. {MIRROR_ENV}=$(realpath {mirror}), "
            f"so that queued and --temp experiments find it too"
        )
    return mirror


def candidate_urls(
    file_name: str, dataset_name: str, urls: Sequence[str], mirror: str | None
) -> list[str]:
    """List the places to fetch ``file_name`` from, in the order they should be tried.

    A mirror comes first, both as ``<mirror>/<dataset_name>/<file_name>`` and as
    ``<mirror>/<file_name>``, so it may point at a folder of datasets or at one dataset's folder.
    A mirror that is not an http(s):// or file:// URL is a local directory; it is made absolute
    against the current directory so the candidates do not depend on where they are opened.
    The dataset's own ``urls`` (base URLs ending in ``/``) follow.
    """
    candidates: list[str] = []
    if mirror:
        if is_url(mirror):
            base = mirror.rstrip("/")
            candidates += [f"{base}/{dataset_name}/{file_name}", f"{base}/{file_name}"]
        else:
            base_dir = Path(os.path.abspath(os.path.expanduser(mirror)))
            candidates += [str(base_dir / dataset_name / file_name), str(base_dir / file_name)]
    for url in urls:
        base_url = url if url.endswith("/") else url + "/"
        candidates.append(base_url + file_name)
    return candidates


class _CountingReader:
    """Wraps a byte stream to count and md5 what was read and advance a progress bar.

    The count is of the bytes as delivered (compressed), which is what Content-Length describes;
    the md5 is of the same bytes, which is what publishers' archive checksums describe.
    """

    def __init__(self, raw: BinaryIO, progress: tqdm) -> None:
        self._raw = raw
        self._progress = progress
        self.bytes_read = 0
        self.md5 = hashlib.md5(usedforsecurity=False)

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.bytes_read += len(data)
        self.md5.update(data)
        self._progress.update(len(data))
        return data


def _open_source(candidate: str, timeout: float) -> tuple[BinaryIO, int | None]:
    """Open ``candidate`` for reading; return the stream and its expected size when known."""
    if is_url(candidate):
        response = urllib.request.urlopen(candidate, timeout=timeout)  # noqa: S310 (scheme checked)
        length = response.headers.get("Content-Length")
        return response, int(length) if length and length.isdigit() else None
    stream = open(candidate, "rb")
    return stream, os.fstat(stream.fileno()).st_size


def _stream_into(
    candidate: str, remote: RemoteFile, part: BinaryIO, part_path: Path, timeout: float
) -> tuple[str, str]:
    """Copy ``candidate`` into ``part``, decompressing on the way when ``remote.decompress``.

    Returns ``(md5 of the served bytes, sha256 of the stored content)``.
    """
    source, expected_size = _open_source(candidate, timeout)
    with source, tqdm(
        total=expected_size,
        desc=remote.name,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=None,
        leave=False,
    ) as progress:
        counter = _CountingReader(source, progress)
        content: BinaryIO = counter  # type: ignore[assignment]
        if remote.decompress:
            content = gzip.GzipFile(fileobj=counter, mode="rb")  # type: ignore[arg-type]
        digest = hashlib.sha256()
        for chunk in iter(lambda: content.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
            try:
                part.write(chunk)
            except OSError as error:
                # A full disk is not the source's fault: trying other sources would not help.
                raise DownloadError(
                    f"cannot write {part_path} while downloading {remote.name} from {candidate}: "
                    f"{error}; free disk space or fix the permissions of {part_path.parent}"
                ) from error
        # The md5 must cover every served byte, even any the decompressor left unread.
        for _ in iter(lambda: counter.read(_CHUNK_BYTES), b""):
            pass
        # http.client returns a short body without complaint when the peer closes early.
        if expected_size is not None and counter.bytes_read < expected_size:
            raise _SourceFailure(
                f"truncated: expected {expected_size} bytes, received {counter.bytes_read}"
            )
    return counter.md5.hexdigest(), digest.hexdigest()


def _describe_failure(error: BaseException, timeout: float) -> str:
    """Turn an exception raised while fetching from one source into a short reason."""
    if isinstance(error, urllib.error.HTTPError):
        error.close()
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        if isinstance(reason, TimeoutError):
            return f"timed out after {timeout:g} s"
        if isinstance(reason, FileNotFoundError):
            return "no such file"
        return f"cannot connect ({reason})"
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout:g} s without data"
    if isinstance(error, (EOFError, gzip.BadGzipFile, zlib.error)):
        return f"corrupt or truncated gzip stream ({error})"
    if isinstance(error, (ConnectionError, http.client.HTTPException)):
        return f"connection dropped ({type(error).__name__}: {error})"
    if isinstance(error, FileNotFoundError):
        return "no such file"
    return str(error) or type(error).__name__


def fetch_file(
    remote: RemoteFile,
    dest: Path,
    candidates: Sequence[str],
    *,
    timeout: float,
    log: Log = log_to_stderr,
) -> None:
    """Fetch ``remote`` from the first of ``candidates`` that delivers it intact, into ``dest``.

    ``dest`` is the stored file's path. When ``remote.decompress`` the file is gunzipped while it
    streams. It is accepted when the stored content matches ``remote.sha256`` or the served bytes
    match ``remote.md5``, whichever are pinned. A source that fails (HTTP error, refused
    connection, timeout, dropped connection, bad gzip, checksum mismatch) is logged in one line and
    the next is tried. Raises :class:`DownloadError` listing every source and its reason when none
    succeeds. No temporary or partial file is left behind, whatever happens.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for candidate in candidates:
        # Same directory as dest, so os.replace is an atomic rename; hidden, so no tool picks it
        # up. Opened exclusively rather than via mkstemp so the file gets the umask's permissions.
        part_path = dest.parent / f".{dest.name}.part-{secrets.token_hex(6)}"
        part = open(part_path, "xb")
        try:
            with part:
                try:
                    served_md5, content_sha256 = _stream_into(
                        candidate, remote, part, part_path, timeout
                    )
                    failure = checksum_failure(
                        remote, served_md5=served_md5, content_sha256=content_sha256
                    )
                    if failure is not None:
                        raise _SourceFailure(failure)
                except (_SourceFailure, OSError, EOFError, zlib.error, http.client.HTTPException,
                        ValueError) as error:
                    reason = _describe_failure(error, timeout)
                    failures.append(f"{candidate}: {reason}")
                    # A mirror holds a dataset either in a subfolder or not: the miss is expected.
                    if reason != "no such file":
                        log(f"{remote.name}: {candidate} failed: {reason}")
                    continue
            os.replace(part_path, dest)
            log(f"{remote.name}: verified from {candidate}")
            return
        finally:
            part_path.unlink(missing_ok=True)

    listed = "\n".join(f"  - {failure}" for failure in failures) or "  (no sources to try)"
    raise DownloadError(
        f"could not download {remote.name}; every source failed:\n{listed}\n"
        f"Set {MIRROR_ENV} to a directory or URL that holds {remote.name} "
        f"(see README, 'Using a mirror')."
    )


def download_dataset(
    source: DatasetSource,
    out_dir: Path,
    *,
    mirror: str | None,
    timeout: float,
    log: Log = log_to_stderr,
) -> None:
    """Download every file of ``source`` into ``out_dir``.

    Files are stored under their ``local_name`` (decompressed ``.gz`` files without the suffix). A
    file already there whose checksum matches is kept without downloading; one whose checksum does
    not, or that no pin can check (a decompressed file pinned only by its archive's md5), is
    deleted first and downloaded again, so ``out_dir`` never holds unverified content. ``mirror``
    (a URL or a local directory, usually read from ``$NUMPYNET_MIRROR`` by the caller) is tried
    before the source's own URLs.
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
        fetch_file(remote, dest, candidates, timeout=timeout, log=log)
