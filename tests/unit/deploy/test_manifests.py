"""The deployment files carry what an operator relies on: the producer gets the
host access eBPF needs and nothing more, workers scale and are probed, metrics
are scraped. Parsed from the files themselves."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.requirements import require

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
PRODUCER_CAPS = {"BPF", "PERFMON", "SYS_RESOURCE", "SYS_PTRACE", "DAC_READ_SEARCH"}
EBPF_MOUNTS = {"/sys/kernel/tracing", "/sys/kernel/btf", "/sys/fs/cgroup", "/lib/modules", "/usr/src"}


def _docs() -> list[dict]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def _kind(kind: str) -> list[dict]:
    return [d for d in _docs() if d["kind"] == kind]


def test_every_manifest_parses_and_is_namespaced() -> None:
    docs = _docs()
    assert {d["kind"] for d in docs} >= {"Namespace", "ConfigMap", "DaemonSet", "Deployment",
                                         "Service", "ServiceMonitor", "Kustomization"}
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    for d in docs:
        if d["kind"] not in ("Namespace", "Kustomization"):
            assert d["metadata"]["namespace"] == "eunomia", d["metadata"]["name"]


def test_producer_daemonset_least_privilege() -> None:
    (ds,) = _kind("DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostPID"] is True
    assert {"operator": "Exists"} in spec["tolerations"]
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["privileged"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) == PRODUCER_CAPS
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert mounts >= EBPF_MOUNTS
    assert any("sock" in m for m in mounts)
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_processor_deployments_scale_and_are_probed() -> None:
    deps = {d["metadata"]["name"]: d for d in _kind("Deployment")}
    assert set(deps) == {"eunomia-enrich", "eunomia-rules", "eunomia-seccomp", "eunomia-health"}
    for name, d in deps.items():
        assert d["spec"]["replicas"] >= 1
        (c,) = d["spec"]["template"]["spec"]["containers"]
        assert c["args"] == ["worker", name.removeprefix("eunomia-")]
        assert c["securityContext"]["runAsNonRoot"] is True
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    rules_vols = deps["eunomia-rules"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "rules", "configMap": {"name": "eunomia-rules"}} in rules_vols


def test_metrics_service_and_monitor() -> None:
    (svc,) = _kind("Service")
    (mon,) = _kind("ServiceMonitor")
    ports = {p["name"] for p in svc["spec"]["ports"]}
    assert {e["port"] for e in mon["spec"]["endpoints"]} <= ports
    assert mon["spec"]["selector"]["matchLabels"] == svc["metadata"]["labels"]


def test_compose_file_has_the_pipeline() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "producer", "enrich", "rules", "seccomp", "health", "prometheus",
            "grafana"} <= set(services)
    prod = services["producer"]
    assert prod["pid"] == "host"
    assert set(prod["cap_add"]) == PRODUCER_CAPS
    assert prod["cap_drop"] == ["ALL"]
    mounts = {v.split(":")[1] for v in prod["volumes"]}
    assert mounts >= EBPF_MOUNTS
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]
    for svc in ("producer", "enrich"):
        assert services[svc]["build"]["dockerfile"].startswith("deploy/docker/")
        assert (ROOT / services[svc]["build"]["dockerfile"]).is_file()


def test_docker_compose_config_accepts_the_file() -> None:
    """The compose client validates the file (no engine needed)."""
    exe = shutil.which("docker-compose")
    require(exe is not None, "needs the docker-compose client (deploy/host/setup.sh installs it)")
    assert exe is not None
    proc = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
