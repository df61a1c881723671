"""A real podman container with Kubernetes-style labels, captured by the real
producer and enriched by a real enrich worker: its events on enriched.events
carry the container's name, image, labels and the pod's name, namespace and
uid (what a kubelet's CRI labels give a real pod's containers)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from eunomia.config import Settings
from tests.conftest import BUSYBOX_IMAGE
from tests.e2e.test_live_equals_offline import pipeline  # noqa: F401 - the fixture
from tests.e2e.test_seccomp_enforce_bpfcount import podman
from tests.unit.enrich import kafka_io

pytestmark = [pytest.mark.kafka, pytest.mark.bpf, pytest.mark.podman, pytest.mark.root]


def test_container_and_pod_fields(pipeline: None, settings: Settings, tmp_path: Path) -> None:  # noqa: F811
    name = f"enr-{uuid.uuid4().hex[:8]}"
    pod_uid = str(uuid.uuid4())
    labels = {"io.kubernetes.pod.name": "web-7d9f", "io.kubernetes.pod.namespace": "shop",
              "io.kubernetes.pod.uid": pod_uid, "team": "blue"}
    args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    try:
        run = podman("run", "--name", name, *args, BUSYBOX_IMAGE, "sh", "-c",
                     "sleep 1; cat /etc/hostname; ls /etc > /dev/null")
        assert run.returncode == 0, run.stderr

        def mine(out: list) -> list[dict]:
            return [v for _, v, _, _ in out if (v.get("container") or {}).get("name") == name]

        out = kafka_io.consume(settings, "enriched.events", timeout=120,
                               until=lambda out: any(v["event"]["kind"] == "exec" for v in mine(out)))
        events = mine(out)
        assert any(e["event"]["kind"] == "exec" for e in events), "no exec of the container enriched"
        for e in events:
            c, o = e["container"], e["orchestrator"]
            assert c["image_name"] == BUSYBOX_IMAGE and c["metadata_complete"] is True
            assert {k: c["labels"].get(k) for k in labels} == labels
            assert o is not None and (o["pod_name"], o["namespace"], o["pod_uid"]) == (
                "web-7d9f", "shop", pod_uid)
    finally:
        podman("rm", "-f", name)
