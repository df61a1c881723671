"""The HTTP endpoints answer like an orchestrator expects (real sockets on
127.0.0.1; no Kafka needed)."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client import Counter

from eunomia.endpoints import Endpoints, is_ready, wait_ready

DEMO = Counter("eunomia_test_endpoint_demo", "a counter the test increments")


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_ready_and_metrics() -> None:
    ready = {"v": False}
    ep = Endpoints(0, ready=lambda: ready["v"], stale_after=0.2).start()
    try:
        DEMO.inc(3)
        assert _get(ep.port, "/healthz") == (200, "ok\n")
        assert _get(ep.port, "/readyz") == (503, "not ready\n")
        ready["v"] = True
        assert _get(ep.port, "/readyz") == (200, "ready\n")
        code, body = _get(ep.port, "/metrics")
        assert code == 200
        assert "eunomia_test_endpoint_demo_total 3.0" in body
        import time

        time.sleep(0.3)  # no beat: the loop looks wedged
        assert _get(ep.port, "/healthz") == (503, "stale\n")
        ep.beat()
        assert _get(ep.port, "/healthz")[0] == 200
        assert _get(ep.port, "/nope")[0] == 404
    finally:
        ep.stop()


def test_wait_ready_returns_when_ready_and_gives_up_on_a_dead_child_or_timeout() -> None:
    import threading

    ready = {"v": False}
    ep = Endpoints(0, ready=lambda: ready["v"]).start()
    try:
        assert not is_ready(ep.port)
        threading.Timer(0.3, lambda: ready.update(v=True)).start()
        assert wait_ready(ep.port, timeout=10, interval=0.05)
        assert not wait_ready(ep.port, timeout=10, alive=lambda: False), "the child died"
        ready["v"] = False
        assert not wait_ready(ep.port, timeout=0.2, interval=0.05)
    finally:
        ep.stop()
    assert not is_ready(ep.port)  # nothing listening
