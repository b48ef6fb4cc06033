"""A loopback HTTP server for download tests: serves a directory on 127.0.0.1 and injects faults.

It binds 127.0.0.1 on an ephemeral port, runs in a daemon thread and is stopped by its context
manager, so a test can never reach another machine or leave a server running.
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

NOT_FOUND = "404"
DROP_MID_FILE = "drop"  # full Content-Length, half the body, then the connection closes
STALL = "stall"  # headers, then silence until the client gives up (bounded by STALL_SECONDS)
FAULTS = (NOT_FOUND, DROP_MID_FILE, STALL)
STALL_SECONDS = 5.0


class LoopbackServer:
    """Handle on a running loopback server: where it serves, what it was asked, what should fail."""

    def __init__(self, root: Path, server: ThreadingHTTPServer, stop: threading.Event) -> None:
        self.root = root
        self.url = f"http://127.0.0.1:{server.server_address[1]}/"
        self.faults: dict[str, str] = {}
        self.requests: list[str] = []
        self._stop = stop

    def fail(self, path: str, fault: str) -> None:
        """Make requests for ``path`` (relative to the root, e.g. ``"mnist/a.gz"``) fail."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {FAULTS}")
        self.faults["/" + path.lstrip("/")] = fault


def _handler_class(state: LoopbackServer, stop: threading.Event, root: Path) -> type:
    class FaultyHandler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            state.requests.append(path)
            fault = state.faults.get(path)
            if fault == NOT_FOUND:
                self.send_error(HTTPStatus.NOT_FOUND)
            elif fault in (DROP_MID_FILE, STALL):
                body = (root / path.lstrip("/")).read_bytes()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == DROP_MID_FILE:
                    self.wfile.write(body[: len(body) // 2])
                else:
                    self.wfile.flush()
                    stop.wait(STALL_SECONDS)
                self.close_connection = True
            else:
                super().do_GET()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep test output clean; requests are recorded in state.requests

    return functools.partial(FaultyHandler, directory=str(root))


@contextmanager
def serve_directory(root: Path) -> Iterator[LoopbackServer]:
    """Serve ``root`` over http://127.0.0.1:<ephemeral port>/ until the block exits."""
    root = Path(root)
    stop = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: None)  # handler set below
    state = LoopbackServer(root, server, stop)
    server.RequestHandlerClass = _handler_class(state, stop, root)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        stop.set()  # release stalled handlers so they end promptly
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """Return an http://127.0.0.1 URL on a port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
