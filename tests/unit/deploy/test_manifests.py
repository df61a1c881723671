"""The deployment files carry what an operator relies on: the producer gets the
host access eBPF needs and nothing more, workers scale and are probed, metrics
are scraped, each component authenticates as its own role to a broker that
enforces ACLs. Parsed from the files themselves."""

from __future__ import annotations

import os
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


ROLES = ("producer", "enrich", "rules", "seccomp", "health", "siem", "admin")
# every password variable docker-compose.yml needs, for `docker-compose config`
COMPOSE_ENV = {f"EUNOMIA_{r.upper()}_PASSWORD": f"test-{r}" for r in (*ROLES, "broker")}


def test_every_manifest_parses_and_is_namespaced() -> None:
    docs = _docs()
    assert {d["kind"] for d in docs} >= {"Namespace", "ConfigMap", "DaemonSet", "Deployment",
                                         "Service", "ServiceMonitor", "Kustomization", "Secret", "Job"}
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


def _credentials(container: dict) -> tuple[str, str]:
    """The Secrets a container's Kafka username and password come from."""
    env = {e["name"]: e for e in container.get("env", [])}
    user = env["EUNOMIA_KAFKA__SASL_USERNAME"]["valueFrom"]["secretKeyRef"]
    password = env["EUNOMIA_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert (user["key"], password["key"]) == ("username", "password")
    assert user["name"] == password["name"]
    return user["name"], container["name"]


def test_each_role_has_its_own_secret_and_every_pod_uses_its_roles() -> None:
    secrets = {d["metadata"]["name"]: d for d in _kind("Secret")}
    assert set(secrets) == {f"eunomia-kafka-{r}" for r in ROLES}
    for role in ROLES:
        assert secrets[f"eunomia-kafka-{role}"]["stringData"]["username"] == f"eunomia-{role}"
    (config,) = [d for d in _kind("ConfigMap") if d["metadata"]["name"] == "eunomia-config"]
    assert config["data"]["EUNOMIA_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["data"]["EUNOMIA_KAFKA__SASL_MECHANISM"].startswith("SCRAM-")
    used = []
    for d in _kind("Deployment"):
        (c,) = d["spec"]["template"]["spec"]["containers"]
        used.append(_credentials(c))
    (ds,) = _kind("DaemonSet")
    used.append(_credentials(ds["spec"]["template"]["spec"]["containers"][0]))
    assert sorted(used) == sorted((f"eunomia-kafka-{c}", c) for c in
                                  ("enrich", "rules", "seccomp", "health", "producer"))
    (job,) = _kind("Job")
    spec = job["spec"]["template"]["spec"]
    assert [c["args"] for c in spec["initContainers"]] == [["topics", "create"]]
    assert spec["containers"][0]["args"][:2] == ["acls", "apply"]
    for c in [*spec["initContainers"], *spec["containers"]]:
        assert _credentials(c)[0] == "eunomia-kafka-admin"


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


def test_compose_runs_each_role_with_its_own_user_on_a_broker_enforcing_acls() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert "PLAINTEXT:PLAINTEXT" not in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    users = {}
    for name in ("producer", "enrich", "rules", "seccomp", "health", "topics", "acls"):
        env = services[name]["environment"]
        users[name] = (env["EUNOMIA_KAFKA__SASL_USERNAME"], env["EUNOMIA_KAFKA__SASL_PASSWORD"])
        role = "admin" if name in ("topics", "acls") else name
        assert users[name] == (f"eunomia-{role}", f"${{EUNOMIA_{role.upper()}_PASSWORD}}"), name
        assert f'user_eunomia-{role}="${{EUNOMIA_{role.upper()}_PASSWORD' in \
            kafka["KAFKA_LISTENER_NAME_CLIENT_PLAIN_SASL_JAAS_CONFIG"]
    assert services["acls"]["command"][:2] == ["acls", "apply"]
    for name in ("producer", "enrich"):
        assert services[name]["depends_on"]["acls"]["condition"] == "service_completed_successfully"


def test_docker_compose_config_accepts_the_file() -> None:
    """The compose client validates the file (no engine needed)."""
    exe = shutil.which("docker-compose")
    require(exe is not None, "needs the docker-compose client (deploy/host/setup.sh installs it)")
    assert exe is not None
    proc = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **COMPOSE_ENV})
    assert proc.returncode == 0, proc.stderr
