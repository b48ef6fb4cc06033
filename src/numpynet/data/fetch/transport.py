"""Bounds on one transfer: a deadline for the whole attempt and caps on the bytes it may bring.

A server can hold a download open forever without ever tripping the per-read timeout: by sending
one byte a second, or an endless body, or a small gzip stream that decompresses without end. So
every attempt to fetch one file from one source gets

* a **deadline** (``download.deadline_s``): a watchdog thread shuts the attempt's sockets down when
  it passes, which wakes any blocked connect, TLS handshake, header or body read; reads from local
  files check the clock between chunks;
* a **cap on the stored content**: the exact size pinned in :mod:`numpynet.data.catalog` for a
  built-in file (a genuine copy is never larger), else ``download.max_bytes``;
* a **cap on the served bytes**, for the bytes that are decompressed or thrown away uncounted
  (anything after the gzip stream still feeds the md5): see :func:`caps_for`.

Only how bytes travel is decided here; what is kept, by the pins (catalog.py, checksums.py).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import socket
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from tqdm import tqdm

from numpynet.data.catalog import RemoteFile

# A gzip stream is its content plus framing: 5 bytes per 64 KiB stored block, about 0.05% for
# block-gzip (bgzf, pigz), headers of at most a few KiB. 1/256 of the content plus 1 MiB covers any
# real compressor with room to spare, and still stops an endless body within 0.4% of the cap.
_GZIP_GROWTH_DIVISOR = 256
_GZIP_SLACK_BYTES = 1 << 20
_BUFFER_BYTES = 1 << 16


class SourceFailure(Exception):
    """One source could not deliver the file; the next one is tried. ``hint``: the fix to name
    when every source fails (which params key to raise), or None when another source is the fix.
    """

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(reason)
        self.hint = hint


@dataclass(frozen=True)
class Caps:
    """How many bytes one attempt may bring: as served, and as stored."""

    served: int
    stored: int
    rule: str  # where the cap comes from, for messages
    hint: str | None  # how to raise it, when the user can


def _size(count: int) -> str:
    return f"{count} bytes ({count / (1 << 30):.3g} GiB)" if count >= 1 << 30 else f"{count} bytes"


def caps_for(remote: RemoteFile, max_bytes: int) -> Caps:
    """The caps for one file: its pinned size when it has one, else ``download.max_bytes``.

    The stored cap is exact (a pinned size, or the limit); the served cap is the same for a file
    stored as served, and for a decompressed one the stored cap plus the most any gzip framing adds
    (a mirror may re-compress, so the publisher's served size is no bound for it).
    """
    if remote.max_stored_size is not None:
        stored = remote.max_stored_size
        rule = f"the size pinned for {remote.name} in numpynet/data/catalog.py"
        hint = None  # a genuine copy is never larger: another source is the fix
    else:
        stored = max_bytes
        rule = "download.max_bytes"
        hint = (f"if {remote.name} really is larger than {_size(max_bytes)}, raise "
                f"download.max_bytes in params.yaml")
    served = stored
    if remote.decompress:
        served = stored + stored // _GZIP_GROWTH_DIVISOR + _GZIP_SLACK_BYTES
    if remote.served_size is not None:
        served = max(served, remote.served_size)
    return Caps(served=served, stored=stored, rule=rule, hint=hint)


def cap_failure(name: str, what: str, cap: int, caps: Caps) -> SourceFailure:
    """The failure for a file that grew past one of its caps."""
    return SourceFailure(
        f"{what} more than {_size(cap)}, the cap for {name} ({caps.rule}); stopped there",
        caps.hint,
    )


class Deadline:
    """A time limit on one attempt, enforced on its sockets by a watchdog thread.

    Use as a context manager around the attempt. :meth:`watch` registers each socket the attempt
    opens; when the deadline passes, every registered socket is shut down (a duplicate descriptor
    is kept for that, so the shutdown reaches the connection even after ``ssl`` took the original
    over), which makes any blocked operation on it return. :meth:`check` raises once it passed.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            while self._watched:
                self._watched.pop().close()

    def watch(self, sock: socket.socket) -> socket.socket:
        """Shut ``sock`` down when the deadline passes; returns it."""
        duplicate = sock.dup()
        with self._lock:
            self._watched.append(duplicate)
            if self.expired:
                _shut_down(duplicate)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for duplicate in self._watched:
                _shut_down(duplicate)

    def passed(self) -> bool:
        """Whether the deadline has passed (the watchdog may not have run yet)."""
        self.expired = self.expired or time.monotonic() >= self._end
        return self.expired

    def check(self) -> None:
        """Raise :class:`SourceFailure` once the deadline has passed."""
        if self.passed():
            raise self.failure()

    def failure(self) -> SourceFailure:
        """The failure to report for an attempt that ran out of time."""
        return SourceFailure(
            f"not complete after download.deadline_s = {self.seconds:g} s",
            f"a slow link needs more time: raise download.deadline_s in params.yaml "
            f"(now {self.seconds:g} s)",
        )


def _shut_down(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other end or by the attempt
        sock.shutdown(socket.SHUT_RDWR)


class _WatchedHandlerMixin:
    """Makes urllib's HTTP(S) connections register their sockets with a :class:`Deadline`."""

    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class, req, **http_conn_args):  # noqa: D102 (urllib's hook)
        deadline = self.deadline

        def connection(host, **kwargs):
            conn = http_class(host, **kwargs)
            create = getattr(conn, "_create_connection", None)
            if create is not None:  # http.client's hook for opening the socket
                conn._create_connection = lambda *a, **k: deadline.watch(create(*a, **k))
            return conn

        return super().do_open(connection, req, **http_conn_args)  # type: ignore[misc]


class _WatchedHTTPHandler(_WatchedHandlerMixin, urllib.request.HTTPHandler):
    """urllib's http:// handler, its sockets watched by a deadline."""


class _WatchedHTTPSHandler(_WatchedHandlerMixin, urllib.request.HTTPSHandler):
    """urllib's https:// handler, its sockets watched by a deadline."""


def open_url(url: str, timeout: float, deadline: Deadline) -> BinaryIO:
    """Open an http(s) URL with each blocking step bounded by ``timeout`` and all by ``deadline``.

    Proxies from the environment apply as with ``urlopen``; redirects may only lead to http(s).
    """
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(), urllib.request.UnknownHandler(),
        _WatchedHTTPHandler(deadline), _WatchedHTTPSHandler(deadline),
        urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener.open(url, timeout=timeout)


def local_path(candidate: str) -> str | None:
    """The path a ``file://`` URL or a plain path names, or None for an http(s) URL."""
    parsed = urllib.parse.urlparse(candidate)
    if parsed.scheme.lower() == "file" and parsed.netloc in ("", "localhost"):
        return urllib.request.url2pathname(parsed.path)
    if parsed.scheme.lower() in ("http", "https", "file"):
        return None
    return candidate


def open_local(path: str) -> tuple[BinaryIO, int]:
    """Open a local file for reading; return the stream and its size.

    Only regular files: a FIFO would block forever and a device (``/dev/zero``) never ends. Opened
    without blocking, so that a FIFO cannot hang the open before it is refused.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        raise SourceFailure("not a regular file (a folder, a device or a pipe)")
    return os.fdopen(descriptor, "rb"), status.st_size


class CountingReader:
    """Wraps a byte stream to count and md5 what was read, within the caps and the deadline.

    The count is of the bytes as delivered (compressed), which is what Content-Length describes;
    the md5 is of the same bytes, which is what publishers' archive checksums describe. The stream
    is read with ``read1`` where it has it, so a trickling server is seen after every byte it
    sends, into a buffer that small reads are served from: gzip skips zero padding one byte at a
    time, and a source may send a lot of it.
    """

    def __init__(
        self, raw: BinaryIO, progress: tqdm, name: str, caps: Caps, deadline: Deadline
    ) -> None:
        self._read = getattr(raw, "read1", raw.read)
        self._progress = progress
        self._name = name
        self._caps = caps
        self._deadline = deadline
        self._buffer = b""
        self._offset = 0
        self.bytes_read = 0
        self.md5 = hashlib.md5(usedforsecurity=False)

    def read(self, size: int = -1) -> bytes:
        """Read at most ``size`` bytes (at most what one read of the stream delivers)."""
        if self._offset >= len(self._buffer):
            self._deadline.check()
            data = self._read(max(size, _BUFFER_BYTES))
            self.bytes_read += len(data)
            if self.bytes_read > self._caps.served:
                raise cap_failure(self._name, "served", self._caps.served, self._caps)
            self.md5.update(data)
            self._progress.update(len(data))
            self._buffer, self._offset = data, 0
        end = len(self._buffer) if size < 0 else self._offset + size
        data = self._buffer[self._offset:end]
        self._offset += len(data)
        return data


def describe_failure(error: BaseException, timeout: float) -> str:
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
