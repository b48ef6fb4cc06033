"""A loopback HTTP server whose every path runs a script: hostile servers for hardening tests.

Unlike :mod:`helpers.loopback`, which serves a directory, each path (query string included) is
answered by a function that writes the whole response itself, so a test can trickle bytes, never
end a body, announce a size it never sends, or redirect. Requests are recorded with their query
strings. Every script stops when the client goes away or the server stops, so nothing outlives the
test; the server binds 127.0.0.1 on an ephemeral port.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Script = Callable[[BaseHTTPRequestHandler, threading.Event], None]


class ScriptedServer:
    """Handle on a running server: its URL, the scripts by path, the requests it received."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.scripts: dict[str, Script] = {}
        self.requests: list[str] = []

    def route(self, path: str, script: Script) -> str:
        """Answer requests for ``path`` (e.g. ``"a/b.gz?x=1"``) with ``script``; return its URL."""
        self.scripts["/" + path.lstrip("/")] = script
        return self.url + path.lstrip("/")


def _headers(handler: BaseHTTPRequestHandler, length: int | None = None, status: int = 200) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/octet-stream")
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.end_headers()


def body(data: bytes) -> Script:
    """A normal response: ``data`` with its Content-Length."""
    def script(handler, stop):
        _headers(handler, len(data))
        handler.wfile.write(data)
    return script


def trickle(interval: float, length: int | None = None) -> Script:
    """Headers at once, then one byte every ``interval`` seconds, forever."""
    def script(handler, stop):
        _headers(handler, length)
        while not stop.wait(interval):
            handler.wfile.write(b"x")
            handler.wfile.flush()
    return script


def trickle_headers(interval: float) -> Script:
    """A status line, then one byte of an endless header every ``interval`` seconds."""
    def script(handler, stop):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        handler.wfile.flush()
        while not stop.wait(interval):
            handler.wfile.write(b"x")
            handler.wfile.flush()
    return script


def silence() -> Script:
    """Accept the request and never answer (until the server stops)."""
    def script(handler, stop):
        stop.wait(30)
    return script


def endless(chunk: bytes = b"\xa5" * 65536, length: int | None = None) -> Script:
    """Headers (``length`` announced, if given), then ``chunk`` over and over."""
    def script(handler, stop):
        _headers(handler, length)
        while not stop.is_set():
            handler.wfile.write(chunk)
    return script


def endless_chunked(chunk: bytes = b"\x5a" * 65536) -> Script:
    """A chunked body (Transfer-Encoding: chunked) whose last chunk never comes."""
    def script(handler, stop):
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        while not stop.is_set():
            handler.wfile.write(framed)
    return script


def endless_gzip() -> Script:
    """A gzip stream of zeros that never ends: a few KiB a second decompress to gigabytes."""
    def script(handler, stop):
        _headers(handler)
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
        zeros = bytes(1 << 20)
        while not stop.is_set():
            out = compressor.compress(zeros)
            if out:
                handler.wfile.write(out)
    return script


def gzip_then_garbage(content: bytes) -> Script:
    """A complete gzip stream followed by endless bytes the decompressor never asks for."""
    def script(handler, stop):
        _headers(handler)
        handler.wfile.write(gzip.compress(content, mtime=0))
        while not stop.is_set():
            handler.wfile.write(bytes(65536))
    return script


def redirect(location: str) -> Script:
    """A 302 to ``location``."""
    def script(handler, stop):
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return script


@contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    """Run a :class:`ScriptedServer` on 127.0.0.1 until the block exits."""
    stop = threading.Event()
    state: ScriptedServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            state.requests.append(self.path)
            script = state.scripts.get(self.path)
            self.close_connection = True
            if script is None:
                self.send_error(404)
                return
            try:
                script(self, stop)
            except (ConnectionError, OSError):
                pass  # the client gave up: that is what most scripts are for

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    state = ScriptedServer(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
