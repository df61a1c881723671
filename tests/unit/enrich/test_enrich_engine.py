"""The pure enrichment engine: join, holds, lineage, ECS mapping (no Kafka)."""

from __future__ import annotations

import pytest

from eunomia.processors.enrich.container_join import container_key
from eunomia.processors.enrich.enricher import Enricher
from eunomia.processors.enrich.lineage import MAX_ANCESTORS, CachedMapping
from eunomia.schemas import AvroCodec
from tests.support.raw_records import (
    CID,
    Host,
    connect_payload,
    container_record,
    exec_payload,
    fork_payload,
    open_payload,
    podman_path,
)

CODEC = AvroCodec()


def encodable(outs):
    for _, rec in outs:
        assert CODEC.decode(CODEC.encode("enriched_event", rec), expect="enriched_event") is not None
    return outs


def test_known_container_enriched_with_metadata_and_k8s_labels() -> None:
    e = Enricher()
    h = Host()
    labels = {"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop",
              "io.kubernetes.pod.uid": "1234", "app": "web"}
    e.on_container(container_key("h1", 1000), container_record("h1", 1000, labels=labels))
    outs = encodable(e.on_raw_event(h.event("open", pid=5, cgroup_path=podman_path(),
                                            payload=open_payload("/etc/shadow"))))
    assert len(outs) == 1
    key, rec = outs[0]
    assert key == f"h1/{CID}"
    c = rec["container"]
    assert (c["id"], c["name"], c["image_name"], c["labels"]["app"], c["metadata_complete"]) == (
        CID, "web", "localhost/web:1", "web", True)
    assert rec["orchestrator"] == {"namespace": "shop", "pod_name": "web-0", "pod_uid": "1234"}
    assert rec["file"]["path"] == "/etc/shadow" and rec["file"]["write"] is False
    assert rec["event"] | {} == rec["event"] and rec["event"]["id"] == "h1:b00tb00tb00tb00t:e1"
    assert rec["event"]["category"] == "file" and rec["event"]["outcome"] == "success"


def test_host_process_is_not_held() -> None:
    e = Enricher()
    outs = encodable(e.on_raw_event(Host().event("connect", pid=9, cgroup_id=1,
                                                 cgroup_path="/system.slice/sshd.service",
                                                 payload=connect_payload("1.2.3.4", 22))))
    assert outs[0][0] == "h1/host"
    assert outs[0][1]["container"]["id"] == "host"
    assert outs[0][1]["destination"] == {"address": "1.2.3.4", "port": 22}
    assert outs[0][1]["network"] == {"family": "ipv4", "transport": "tcp"}


def test_events_before_container_record_are_held_then_enriched_in_order() -> None:
    e = Enricher()
    h = Host()
    evs = [h.event("open", pid=5, cgroup_path=podman_path(), payload=open_payload(f"/f{i}"))
           for i in range(3)]
    assert all(e.on_raw_event(ev) == [] for ev in evs)
    outs = encodable(e.on_container(container_key("h1", 1000), container_record("h1", 1000)))
    assert [r["file"]["path"] for _, r in outs] == ["/f0", "/f1", "/f2"]
    assert all(r["container"]["metadata_complete"] and r["container"]["name"] == "web" for _, r in outs)
    assert e.pending == {}


def test_hold_expires_on_event_time_with_path_identity() -> None:
    e = Enricher(grace_ns=10**9)
    h = Host()
    first = h.event("open", pid=5, cgroup_path=podman_path(), payload=open_payload("/a"))
    assert e.on_raw_event(first) == []
    # a later event of another (host) cgroup moves the watermark past the grace
    outs = encodable(e.on_raw_event(h.event("open", pid=6, cgroup_id=1, cgroup_path="/user.slice",
                                            payload=open_payload("/b"), dt=2 * 10**9)))
    assert [(k, r["file"]["path"], r["container"]["metadata_complete"]) for k, r in outs] == [
        (f"h1/{CID}", "/a", False), ("h1/host", "/b", True)]
    assert outs[0][1]["container"]["runtime"] == "podman"


def test_events_queue_behind_held_ones_even_after_the_record_arrived() -> None:
    e = Enricher()
    h = Host()
    assert e.on_raw_event(h.event("open", pid=5, cgroup_path=podman_path(), payload=open_payload("/1"))) == []
    e.directory.apply(container_key("h1", 1000), container_record("h1", 1000))  # arrives, not drained
    outs = e.on_raw_event(h.event("open", pid=5, cgroup_path=podman_path(), payload=open_payload("/2")))
    assert [r["file"]["path"] for _, r in outs] == ["/1", "/2"]


def test_wall_clock_release_when_host_goes_quiet() -> None:
    e = Enricher(max_wall_hold_s=5)
    h = Host()
    e.on_raw_event(h.event("open", pid=5, cgroup_path=None, payload=open_payload("/x")))
    assert e.tick(now=0) == []
    outs = e.tick(now=10**9)
    assert outs[0][1]["container"] | {} == outs[0][1]["container"]
    assert outs[0][0] == "h1/cgroup-1000" and not outs[0][1]["container"]["metadata_complete"]


def tree(e: Enricher, h: Host, cg_kw: dict) -> None:
    e.on_raw_event(h.event("proc_snapshot", pid=1, start=1, ppid=0, comm="init", **cg_kw,
                           payload={"exe": "/sbin/init", "argv": ["/sbin/init"], "start_time_ns": 0}))
    e.on_raw_event(h.event("fork", pid=1, start=1, ppid=0, comm="init", **cg_kw,
                           payload=fork_payload("h1", 50, 40)))
    e.on_raw_event(h.event("exec", pid=50, start=40, comm="bash", **cg_kw,
                           payload=exec_payload("/bin/bash", "bash")))


def test_lineage_parent_and_ancestors() -> None:
    e = Enricher()
    h = Host()
    kw = {"cgroup_id": 1, "cgroup_path": "/user.slice"}
    tree(e, h, kw)
    e.on_raw_event(h.event("fork", pid=50, start=40, **kw, payload=fork_payload("h1", 60, 55)))
    e.on_raw_event(h.event("exec", pid=60, start=55, ppid=50, pstart=40, comm="cat", **kw,
                           payload=exec_payload("/bin/cat", "cat", "/etc/passwd")))
    (_, rec), = encodable(e.on_raw_event(h.event("open", pid=60, start=55, ppid=50, pstart=40, comm="cat",
                                                 **kw, payload=open_payload("/etc/passwd"))))
    p = rec["process"]
    assert (p["executable"], p["args"], p["parent"]["executable"], p["parent"]["name"]) == (
        "/bin/cat", ["cat", "/etc/passwd"], "/bin/bash", "bash")
    assert [a["executable"] for a in p["ancestors"]] == ["/bin/bash", "/sbin/init"]
    assert p["lineage_complete"] is True


def test_pid_reuse_never_shares_lineage() -> None:
    e = Enricher()
    h = Host()
    kw = {"cgroup_id": 1, "cgroup_path": "/user.slice"}
    tree(e, h, kw)
    # pid 70 first as a child of bash, exits; later pid 70 again (new start) as a child of init
    e.on_raw_event(h.event("fork", pid=50, start=40, **kw, payload=fork_payload("h1", 70, 60)))
    e.on_raw_event(h.event("exec", pid=70, start=60, ppid=50, pstart=40, comm="old", **kw,
                           payload=exec_payload("/bin/old")))
    e.on_raw_event(h.event("exit", pid=70, start=60, ppid=50, pstart=40, comm="old", **kw,
                           payload={"exit_code": 0, "signal": 0}))
    e.on_raw_event(h.event("fork", pid=1, start=1, ppid=0, comm="init", **kw,
                           payload=fork_payload("h1", 70, 90)))
    e.on_raw_event(h.event("exec", pid=70, start=90, ppid=1, pstart=1, comm="new", **kw,
                           payload=exec_payload("/bin/new")))
    (_, new), = e.on_raw_event(h.event("open", pid=70, start=90, ppid=1, pstart=1, comm="new", **kw,
                                       payload=open_payload("/x")))
    (_, old), = e.on_raw_event(h.event("open", pid=70, start=60, ppid=50, pstart=40, comm="old", **kw,
                                       payload=open_payload("/y")))
    def exes(r: dict) -> tuple:
        return r["process"]["executable"], r["process"]["parent"]["executable"]

    assert exes(new) == ("/bin/new", "/sbin/init")
    assert exes(old) == ("/bin/old", "/bin/bash")


def test_image_chosen_by_event_time_so_reprocessing_gives_same_output() -> None:
    e = Enricher()
    h = Host()
    kw = {"cgroup_id": 1, "cgroup_path": "/user.slice"}
    tree(e, h, kw)
    before = h.event("open", pid=50, start=40, comm="bash", **kw, payload=open_payload("/a"))
    out1 = e.on_raw_event(before)
    e.on_raw_event(h.event("exec", pid=50, start=40, comm="python", **kw,
                           payload=exec_payload("/usr/bin/python3")))
    assert e.on_raw_event(before) == out1  # state is ahead, the answer is not


def test_ancestors_bounded() -> None:
    e = Enricher()
    h = Host()
    kw = {"cgroup_id": 1, "cgroup_path": "/user.slice"}
    for pid in range(2, 20):
        e.on_raw_event(h.event("exec", pid=pid, start=pid, ppid=pid - 1, pstart=pid - 1, **kw,
                               payload=exec_payload(f"/bin/p{pid}")))
    (_, rec), = e.on_raw_event(h.event("open", pid=19, start=19, ppid=18, pstart=18, **kw,
                                       payload=open_payload("/x")))
    assert len(rec["process"]["ancestors"]) == MAX_ANCESTORS
    assert rec["process"]["ancestors"][0]["executable"] == "/bin/p18"


def test_exited_processes_expire_after_grace() -> None:
    e = Enricher(exit_grace_ns=10**9)
    h = Host()
    kw = {"cgroup_id": 1, "cgroup_path": "/user.slice"}
    tree(e, h, kw)
    e.on_raw_event(h.event("exit", pid=50, start=40, comm="bash", **kw, payload={"exit_code": 1}))
    assert e.lineage.known("h1:b00tb00t:50:40")
    e.on_raw_event(h.event("open", pid=1, start=1, ppid=0, **kw, payload=open_payload("/"), dt=2 * 10**9))
    assert not e.lineage.known("h1:b00tb00t:50:40")


def test_syscall_counts_become_enriched_events() -> None:
    e = Enricher()
    h = Host()
    e.on_container(container_key("h1", 1000), container_record("h1", 1000))
    (key, rec), = encodable(e.on_syscalls(h.syscalls(pid=5, counts={0: 10, 59: 1})))
    assert key == f"h1/{CID}"
    assert rec["event"]["kind"] == "syscall_counts" and rec["event"]["category"] == "syscalls"
    assert rec["event"]["id"] == "h1:b00tb00tb00tb00t:s1"
    assert [(c["nr"], c["name"], c["count"]) for c in rec["syscalls"]["counts"]] == \
        [(0, "read", 10), (59, "execve", 1)]


def test_syscall_names_of_an_unknown_architecture_stay_null_and_say_so(
        caplog: pytest.LogCaptureFixture) -> None:
    e = Enricher()
    h = Host()
    e.on_container(container_key("h1", 1000), container_record("h1", 1000))
    recs = [{**h.syscalls(pid=5, counts={0: 1}), "arch": "pdp11"} for _ in range(2)]
    outs = [out for r in recs for out in encodable(e.on_syscalls(r))]
    assert [c["name"] for _, rec in outs for c in rec["syscalls"]["counts"]] == [None, None]
    warned = [r.getMessage() for r in caplog.records if "pdp11" in r.getMessage()]
    assert len(warned) == 1 and "unknown to libseccomp" in warned[0]


def test_state_export_import_continues_identically() -> None:
    h = Host()
    kw = {"cgroup_id": 1, "cgroup_path": "/user.slice"}
    a = Enricher()
    tree(a, h, kw)
    a.on_raw_event(h.event("open", pid=5, cgroup_path=podman_path(), payload=open_payload("/held")))
    b = Enricher(CachedMapping({}), CachedMapping({}))
    b.import_state(a.export_state())
    ev = h.event("open", pid=50, start=40, comm="bash", **kw, payload=open_payload("/z"))
    assert a.on_raw_event(ev) == b.on_raw_event(ev)
    rec = container_record("h1", 1000)
    assert a.on_container(container_key("h1", 1000), rec) == b.on_container(container_key("h1", 1000), rec)


@pytest.mark.parametrize(("kind", "payload", "field", "expect"), [
    ("setuid", {"args": [0], "str_arg": None, "retval": -1}, "syscall", {"name": "setuid", "args": [0]}),
    ("signal", {"sig": 9, "target_pid": 3}, "syscall", {"signal": "SIGKILL", "target_pid": 3}),
    ("oom_kill", {"victim_pid": 3, "victim_comm": "x"}, "oom", {"victim_pid": 3, "victim_name": "x"}),
    ("open", open_payload("/w", flags=1), "file", {"write": True}),
])
def test_payload_kinds_map_to_ecs(kind: str, payload: dict, field: str, expect: dict) -> None:
    e = Enricher()
    (_, rec), = encodable(e.on_raw_event(Host().event(kind, pid=3, cgroup_path="/", payload=payload)))
    assert {k: rec[field][k] for k in expect} == expect


def test_a_heartbeat_passes_as_the_hosts_time_mark() -> None:
    e = Enricher()
    outs = encodable(e.on_raw_event(Host().event("heartbeat", pid=0, cgroup_id=0)))
    assert [(k, r["event"]["kind"], r["host"]["id"]) for k, r in outs] == [("h1/host", "heartbeat", "h1")]


def test_a_heartbeat_waits_out_while_the_hosts_events_wait_for_their_container() -> None:
    """Passed on, it would move the host's time past events still held: they would be late."""
    e = Enricher(grace_ns=5 * 10**9)
    h = Host()
    assert e.on_raw_event(h.event("open", pid=5, cgroup_id=1000, cgroup_path=podman_path(),
                                  payload=open_payload("/etc/shadow"))) == []
    assert e.on_raw_event(h.event("heartbeat", pid=0, cgroup_id=0)) == []
    e.on_container(container_key("h1", 1000), container_record("h1", 1000))
    later = encodable(e.on_raw_event(h.event("heartbeat", pid=0, cgroup_id=0)))
    assert [r["event"]["kind"] for _, r in later] == ["heartbeat"]
