"""The whole front of the pipeline with nothing simulated: the real producer
(bcc on the real kernel, podman's API for container records), a real enrich
worker process and a real podman container carrying the labels a kubelet puts
on a pod's containers. Its events must leave enriched.events with its name,
image, labels and pod fields: here the identity comes from podman through the
producer, not from a record the test wrote itself."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eunomia.config import Settings
from tests.e2e.producer_run import running_producer
from tests.requirements import require_podman
from tests.support import kafka_io
from tests.support.podman import BUSYBOX_IMAGE
from tests.support.workers import start_worker, stop

pytestmark = [pytest.mark.kafka, pytest.mark.bpf, pytest.mark.podman, pytest.mark.root]

SCRIPT = "cat /etc/shadow > /dev/null; nc -w 1 127.0.0.1 9 < /dev/null; exit 4"
# Generous: the record comes through podman's event stream and an inspect, which
# on a loaded shared host can take longer than the default 5 s of event time;
# this test is about the join, the grace itself is tested in
# tests/integration/test_enrich_worker.py.
GRACE_S = "60"


@pytest.fixture
def producer(settings: Settings, podman_socket: str, tmp_path: Path) -> Iterator[subprocess.Popen]:
    require_podman()
    with running_producer(settings, tmp_path, {}, podman_socket) as (proc, _cfg, _port):
        yield proc


def test_podman_container_events_come_out_enriched_with_its_identity_and_pod(
        producer: subprocess.Popen, settings: Settings, tmp_path: Path) -> None:
    name = f"eunomia-enrich-{uuid.uuid4().hex[:6]}"
    pod_uid = str(uuid.uuid4())
    labels = {"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop",
              "io.kubernetes.pod.uid": pod_uid, "team": "blue"}
    label_args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    worker = start_worker(settings, "enrich", "--grace", GRACE_S, workdir=tmp_path / "enrich")
    try:
        run = subprocess.run(["podman", "run", "--name", name, *label_args, BUSYBOX_IMAGE,
                              "sh", "-c", SCRIPT], capture_output=True, text=True, timeout=120)
        assert run.returncode == 4, run.stderr
        cid = subprocess.run(["podman", "inspect", "-f", "{{.Id}}", name], capture_output=True,
                             text=True, timeout=60).stdout.strip()

        def mine(out: list[Any]) -> list[dict[str, Any]]:
            return [v for _, v, _, _ in out if v["container"]["name"] == name]

        def done(out: list[Any]) -> bool:
            return any(v["event"]["kind"] == "exit" and v["process"]["exit_code"] == 4
                       for v in mine(out))

        got = kafka_io.consume(settings, "enriched.events", until=done, timeout=240)
        out = mine(got)
    finally:
        stop(worker)
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, timeout=60)
    by_id = [(v["event"]["kind"], v["container"]["metadata_complete"]) for _, v, _, _ in got
             if v["container"]["id"] == cid]
    assert done(got), (f"no exit 4 named {name} among {len(got)} enriched events; "
                       f"those of its id {cid}: (kind, metadata_complete) {by_id[:20]}")
    kinds = {v["event"]["kind"] for v in out}
    assert {"exec", "exit", "open", "connect"} <= kinds, kinds
    ids = {v["container"]["id"] for v in out}
    assert len(ids) == 1 and len(next(iter(ids))) == 64, ids
    for v in out:
        c = v["container"]
        assert c["image_name"].startswith("localhost/eunomia-busybox"), c["image_name"]
        # the producer names the runtime of a container with a pod uid "kubernetes"
        assert c["runtime"] == "kubernetes" and c["metadata_complete"] is True
        assert c["id"] == cid
        assert {k: c["labels"].get(k) for k in labels} == labels, c["labels"]
        assert v["orchestrator"] == {"namespace": "shop", "pod_name": "web-0", "pod_uid": pod_uid}
    sh = [v for v in out if v["event"]["kind"] == "exec" and (v["process"]["args"] or [])[:2] == ["sh", "-c"]]
    assert sh and sh[0]["process"]["name"] == "sh"
    exits = [v for v in out if v["event"]["kind"] == "exit" and v["process"]["exit_code"] == 4]
    assert exits[0]["process"]["exec_id"] == sh[0]["process"]["exec_id"], "the exit's lineage"
