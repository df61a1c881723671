"""A real Prometheus (Debian's ``prometheus``, installed by deploy/host/setup.sh)
on 127.0.0.1 scraping a test's processes every second, and its query API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.ports import free_port_block

__all__ = ["query", "running_prometheus"]


@contextmanager
def running_prometheus(targets: dict[str, int], workdir: Path) -> Iterator[str]:
    """Prometheus scraping ``127.0.0.1:port/metrics`` of each named target (the
    name becomes its ``job``); yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError("prometheus is not installed (deploy/host/setup.sh installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    jobs = "\n".join(f"  - job_name: {name}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']"
                     for name, port in targets.items())
    config = workdir / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}\n")
    port = free_port_block()
    url = f"http://127.0.0.1:{port}"
    with (workdir / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen([binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                                 f"--storage.tsdb.path={workdir / 'data'}"], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log_text = (workdir / "prometheus.log").read_text()[-2000:]
                raise RuntimeError(f"prometheus did not start: {log_text}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """The result vector of an instant query."""
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}",
                                timeout=10) as resp:
        body = json.loads(resp.read())
    if body.get("status") != "success":
        raise RuntimeError(f"query {expr!r} failed: {body}")
    return body["data"]["result"]
