"""The Grafana dashboard against a running pipeline (issue 22, item 6): the real
producer and the four workers, each serving /metrics, scraped by a real
Prometheus; every query of every panel in deploy/grafana/dashboards/eunomia.json
returns series. A seq hole and a garbage record from a second (synthetic) host
make sure there are alerts and dead letters to show."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eunomia.config import Settings
from eunomia.endpoints import wait_ready
from eunomia.kafka.topics import create_topics
from tests.requirements import require, require_bpf
from tests.support import kafka_io
from tests.support.ports import free_port_block
from tests.support.prometheus import query, running_prometheus
from tests.support.raw_records import Host, open_payload
from tests.support.workers import eunomia_env, start_worker, stop

pytestmark = [pytest.mark.kafka, pytest.mark.bpf, pytest.mark.root]
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "eunomia.json"
WORKERS = ("enrich", "rules", "seccomp", "health")


def panel_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def test_every_dashboard_panel_has_data(settings: Settings, tmp_path: Path) -> None:
    require_bpf()
    require(shutil.which("prometheus") is not None, "needs prometheus (deploy/host/setup.sh installs it)")
    create_topics(settings)
    ports = {name: free_port_block() for name in ("producer", *WORKERS)}
    env = {**eunomia_env(settings), "EUNOMIA_METRICS_PORT": str(ports["producer"]),
           "EUNOMIA_PRODUCER__SPOOL_DIR": str(tmp_path / "spool")}
    with (tmp_path / "producer.log").open("wb") as log:
        producer = subprocess.Popen([sys.executable, "-m", "eunomia", "producer"], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
    procs = [start_worker(settings.model_copy(update={"metrics_port": ports[n]}), n,
                          workdir=tmp_path / n) for n in WORKERS]
    try:
        assert wait_ready(ports["producer"], timeout=120, alive=lambda: producer.poll() is None), \
            (tmp_path / "producer.log").read_text()[-3000:]
        for name, proc in zip(WORKERS, procs, strict=True):
            assert wait_ready(ports[name], timeout=120, alive=lambda p=proc: p.poll() is None), name
        h = Host("dash-host", t0=time.time_ns())
        events = [h.event("open", pid=5, comm="app", payload=open_payload(f"/d/{i}")) for i in range(4)]
        del events[1]  # a hole: the health worker's producer-gap alert
        kafka_io.publish(settings, "raw.events", [*kafka_io.raw_items(events), (b"dash-host", b"garbage")])
        with running_prometheus(ports, tmp_path / "prometheus") as url:
            missing = set(panel_queries())
            deadline = time.monotonic() + 120
            while missing and time.monotonic() < deadline:
                missing = {(title, expr) for title, expr in missing if not query(url, expr)}
                time.sleep(1.0)
            assert not missing, f"panels without data: {missing}"
            lag = {r["metric"]["worker"] for r in query(url, "sum by (worker) (eunomia_worker_consumer_lag)")}
            assert lag == set(WORKERS)
            alerts = {r["metric"]["worker"] for r in query(url, "eunomia_alerts_total")}
            assert "health" in alerts
    finally:
        for p in procs:
            stop(p)
        producer.terminate()
        try:
            producer.wait(60)
        except subprocess.TimeoutExpired:
            producer.kill()
