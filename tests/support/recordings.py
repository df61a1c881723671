"""Raw streams for offline replay tests: what a producer on one host would
publish (container record, execs, connects), as recorded messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eunomia.processors.replay.recording import RecordedMessage, RecordingWriter
from eunomia.schemas import AvroCodec

S = 1_000_000_000
HOST, BOOT = "h1", "b1"
CGROUP = 4242
CPATH = "/machine.slice/libpod-" + "ab" * 32 + ".scope/container"
RAW, CONTAINERS, ENRICHED = "eunomia.raw.events", "eunomia.containers", "eunomia.enriched.events"
LOGICAL = {RAW: "raw.events", CONTAINERS: "containers", ENRICHED: "enriched.events"}

RULES = """
- rule: Shell in container
  id: test_shell_in_container
  desc: a shell started in a container
  level: warning
  tags: [maturity_stable, mitre_execution, T1059]
  output: "shell %process.name in %container.name"
  condition: event.kind = exec and process.name in (sh, bash) and container.id != host
- rule: Shell then outbound connect
  id: test_reverse_shell
  desc: a shell that connects out within 30 s
  level: alert
  tags: [maturity_stable, mitre_command_and_control, T1059]
  output: "reverse shell %process.name to %destination.address:%destination.port"
  condition: container.id != host
  sequence:
    by: process.exec_id
    maxspan: 30s
    steps:
      - condition: event.kind = exec and process.name = sh
      - condition: event.kind = connect
- rule: Port scan
  id: test_port_scan
  desc: many destination ports
  level: alert
  tags: [maturity_stable, mitre_discovery, T1046]
  output: "scan from %process.name"
  condition: event.kind = connect
  distinct:
    group-by: [container.id]
    field: destination.port
    timespan: 60s
    count: {gte: 5}
"""


def _raw(seq: int, t: float, kind: str, pid: int, comm: str, payload: dict[str, Any] | None,
         cgroup: int = CGROUP, path: str | None = CPATH) -> dict[str, Any]:
    return {"host_id": HOST, "boot_id": BOOT, "seq": seq, "ts_ns": int(t * S), "kind": kind,
            "pid": pid, "tid": pid, "ppid": 1, "uid": 0, "gid": 0, "comm": comm, "cgroup_id": cgroup,
            "cgroup_path": path, "ns": dict.fromkeys(("pid", "mnt", "net", "user", "uts", "ipc",
                                                      "cgroup"), 4026531836),
            "exec_id": f"{HOST}:{BOOT}:{pid}:1000", "parent_exec_id": f"{HOST}:{BOOT}:1:1",
            "payload": payload}


def _exec(seq: int, t: float, pid: int, name: str) -> dict[str, Any]:
    return _raw(seq, t, "exec", pid, name, {"filename": f"/bin/{name}", "argv": [name],
                                            "argv_truncated": False, "retval": 0,
                                            "start_time_ns": 1000})


def _connect(seq: int, t: float, pid: int, comm: str, port: int) -> dict[str, Any]:
    return _raw(seq, t, "connect", pid, comm, {"family": 2, "protocol": 6, "saddr": None, "sport": 0,
                                               "daddr": "10.0.0.5", "dport": port, "backlog": 0,
                                               "retval": 0})


def attack_stream() -> list[tuple[str, bytes | None, dict[str, Any] | None, str]]:
    """(topic, key, record, schema): a shell that connects out, a port scan,
    benign work, and the container record arriving after its first events."""
    events = [
        _exec(1, 10.0, 200, "nginx"),
        _exec(2, 11.0, 201, "sh"),
        _connect(3, 12.5, 201, "sh", 4444),
        _exec(4, 13.0, 300, "curl"),
        *[_connect(5 + i, 14.0 + i * 0.1, 300, "curl", 8000 + i) for i in range(6)],
        _exec(11, 40.0, 202, "sh"),  # a shell that never connects
        _raw(12, 41.0, "exec", 9, "cron", {"filename": "/usr/sbin/cron", "argv": ["cron"],
                                           "argv_truncated": False, "retval": 0, "start_time_ns": 5},
             cgroup=1, path="/system.slice/cron.service"),
    ]
    container = {"host_id": HOST, "ts_ns": 10 * S, "container_id": "ab" * 32, "name": "web",
                 "image": "localhost/eunomia-busybox:latest", "image_id": None, "labels": {},
                 "runtime": "podman", "state": "running", "init_pid": 200, "cgroup_path": CPATH,
                 "cgroup_id": CGROUP, "pod_name": None, "pod_namespace": None, "pod_uid": None,
                 "source": "api"}
    out = [(RAW, HOST.encode(), e, "raw_event") for e in events[:2]]
    out.append((CONTAINERS, f"{HOST}/{CGROUP}".encode(), container, "container"))
    out += [(RAW, HOST.encode(), e, "raw_event") for e in events[2:]]
    return out


def write_stream(path: Path, stream: list[tuple[str, bytes | None, dict[str, Any] | None, str]],
                 codec: AvroCodec | None = None, garbage_at: int | None = None) -> None:
    codec = codec or AvroCodec()
    topics = sorted({t for t, *_ in stream})
    with RecordingWriter(path, topics, logical={t: LOGICAL[t] for t in topics}) as w:
        for i, (topic, key, rec, schema) in enumerate(stream):
            if i == garbage_at:
                w.write(RecordedMessage(topic, 0, 10_000 + i, 0, b"\xc3\x01garbage", key))
            value = None if rec is None else codec.encode(schema, rec)
            w.write(RecordedMessage(topic, 0, i, 1_700_000_000_000 + i, value, key))
