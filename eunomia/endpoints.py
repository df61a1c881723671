"""Liveness, readiness and Prometheus metrics over HTTP for every long-running
process (producer and workers), so orchestrators and Prometheus see them the
same way: ``/healthz`` (the process loop is alive), ``/readyz`` (it is doing its
job, e.g. probes attached or partitions assigned), ``/metrics``.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

__all__ = ["Endpoints", "is_ready", "wait_ready"]


class Endpoints:
    """A tiny HTTP server in a daemon thread.

    ``beat()`` is called from the process's main loop; liveness fails when no
    beat came for ``stale_after`` seconds, which catches a wedged loop that a
    mere open port would hide.
    """

    def __init__(self, port: int, addr: str = "127.0.0.1", *,
                 ready: Callable[[], bool] = lambda: True, stale_after: float = 30.0) -> None:
        self._ready = ready
        self._stale_after = stale_after
        self._last_beat = time.monotonic()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    ok = time.monotonic() - outer._last_beat < outer._stale_after
                    self._send(200 if ok else 503, b"ok\n" if ok else b"stale\n")
                elif self.path == "/readyz":
                    ok = outer._ready()
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # scrapes every 15 s: keep logs quiet
                pass

        self._server = ThreadingHTTPServer((addr, port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="endpoints",
                                        daemon=True)

    def start(self) -> Endpoints:
        self._thread.start()
        return self

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def is_ready(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the process serving ``port`` answers ``/readyz`` with 200."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def wait_ready(port: int, *, timeout: float, alive: Callable[[], bool] = lambda: True,
               interval: float = 0.5) -> bool:
    """Poll ``/readyz`` until it answers 200 (True), or until ``timeout`` passes
    or ``alive()`` turns False (False): callers starting a child pass its
    ``poll() is None`` so a crashed child is reported at once, not after the timeout."""
    deadline = time.monotonic() + timeout
    while alive():
        if is_ready(port):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return False
