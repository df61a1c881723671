"""The default rule pack: every rule fires on its attack and not on a near miss."""

from __future__ import annotations

import re
from typing import Any

import pytest

from eunomia.processors.rules import Engine, lint_files, load_files, pack_files
from eunomia.schemas import AvroCodec
from tests.support.enriched_events import ev, parent

SH = [parent("sh", "shell-1", 50), parent("runc", "p0")]


def fired(events: list[dict[str, Any]], end: float = 10_000) -> list[str]:
    engine = Engine(load_files(pack_files()), lateness_ns=0)
    out = [a for e in events for a in engine.process(e)]
    out += engine.flush() + engine.advance_watermark(int(end * 1e9))
    return [a["rule_id"] for a in out]


def w(path: str, t: float = 1, **kw: Any) -> dict[str, Any]:
    return ev("open", t, file={"path": path, "write": True}, **kw)


def r(path: str, t: float = 1, **kw: Any) -> dict[str, Any]:
    return ev("open", t, file={"path": path}, **kw)


CASES: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "EUN-1001": ([ev("exec", 1, name="bash"), ev("exec", 1, name="sh", vpid=7)],
                 [ev("exec", 1, name="bash", container="host"), ev("exec", 1, name="nginx"),
                  ev("exec", 1, name="sh", vpid=1)]),
    "EUN-1002": ([ev("exec", 1, name="sh", stdio_socket="ipv4"),
                  ev("exec", 1, name="bash", stdio_socket="ipv6", vpid=1)],
                 [ev("exec", 1, name="sh", stdio_socket="unix"), ev("exec", 1, name="sh"),
                  ev("exec", 1, name="nc", stdio_socket="ipv4"),
                  ev("exec", 1, name="sh", stdio_socket="ipv4", container="host")]),
    "EUN-1003": ([r("/etc/shadow"), r("/var/run/secrets/kubernetes.io/serviceaccount/token")],
                 [r("/etc/passwd"), r("/etc/shadow", name="sshd")]),
    "EUN-1004": ([w("/etc/passwd"), w("/usr/bin/x")], [w("/tmp/x"), w("/etc/x", name="apk"),
                                                       w("/etc/x", container="host")]),
    "EUN-1005": ([ev("exec", 1, name="x", executable="/tmp/x", exe_origin="upper_layer"),
                  ev("exec", 1, name="x", executable="/dev/shm/x", exe_origin="tmpfs"),
                  ev("exec", 1, name="x", executable="/memfd:x (deleted)", exe_origin="memfd")],
                 [ev("exec", 1, name="x", executable="/bin/x", exe_origin="image"),
                  ev("exec", 1, name="x", executable="/tmp/x", exe_origin="upper_layer",
                     container="host"),
                  ev("open", 1, file={"path": "/tmp/x", "write": True}, exe_origin="upper_layer")]),
    "EUN-1006": ([ev("exec", 1, name="apk", args=["apk", "add", "curl"])], [ev("exec", 1, name="curl")]),
    "EUN-1007": ([ev("unshare", 1, syscall="unshare"), ev("mount", 2, syscall="mount"),
                  ev("mount", 2, syscall="mount", outcome="failure")],
                 [ev("setns", 1, syscall="setns", container="host"),
                  ev("mount", 2, syscall="mount", name="runc:[1:CHILD]")]),
    "EUN-1008": ([ev("finit_module", 1, syscall="finit_module", container="host")],
                 [ev("open", 1, file={"path": "/lib/modules/x.ko"})]),
    "EUN-1009": ([ev("ptrace", 1, syscall="ptrace", sargs=[16, 77], target_pid=77)],
                 [ev("ptrace", 1, syscall="ptrace", sargs=[0, 0])]),
    "EUN-1010": ([ev("memfd_create", 1, syscall="memfd_create", str_arg="x"),
                  ev("exec", 2, executable="/memfd:x (deleted)")],
                 [ev("memfd_create", 1, syscall="memfd_create"), ev("exec", 2, executable="/bin/ls"),
                  ev("exec", 100, executable="/memfd:x (deleted)")]),
    "EUN-1011": ([ev("setuid", 1, exec_id="esc-1", syscall="setuid", sargs=[0], uid=1000),
                  ev("exec", 2, name="sh", exec_id="esc-1", uid=0)],
                 [ev("setuid", 1, exec_id="esc-1", syscall="setuid", sargs=[0], uid=0),
                  ev("exec", 2, name="sh", exec_id="esc-1", uid=0),
                  ev("setuid", 3, exec_id="esc-2", syscall="setuid", sargs=[1000], uid=1000),
                  ev("exec", 4, name="sh", exec_id="esc-2")]),
    "EUN-1012": ([r("/var/run/docker.sock"), ev("connect", 1, dport=0, daddr="/run/podman/podman.sock")],
                 [r("/var/run/docker.sock", container="host")]),
    "EUN-1013": ([w("/sys/fs/cgroup/rdma/release_agent"), w("/proc/sys/kernel/core_pattern")],
                 [r("/proc/sys/kernel/core_pattern")]),
    "EUN-1014": ([ev("connect", i, dport=1000 + i) for i in range(20)],
                 [ev("connect", i * 4, dport=1000 + i) for i in range(20)]),
    "EUN-1015": ([ev("open", i, file={"path": "/etc/shadow"}, outcome="failure") for i in range(5)],
                 [ev("open", i * 3, file={"path": "/etc/shadow"}, outcome="failure") for i in range(5)]),
    "EUN-2001": ([ev("exec", 1, name="nc")], [ev("exec", 1, name="nc", container="host")]),
    "EUN-2002": ([ev("connect", 1, dport=3333)], [ev("connect", 1, dport=443)]),
    "EUN-2003": ([ev("exec", 1, name="id"), ev("exec", 2, name="uname"), ev("exec", 3, name="whoami")],
                 [ev("exec", 1, name="id"), ev("exec", 2, name="id"), ev("exec", 90, name="uname")]),
    "EUN-2004": ([ev("unlink", 1, file={"path": "/root/.bash_history", "write": True})],
                 [ev("unlink", 1, file={"path": "/tmp/x", "write": True})]),
    "EUN-2005": ([w("/root/.ssh/authorized_keys")], [r("/root/.ssh/authorized_keys")]),
    "EUN-2006": ([ev("bpf", 1, syscall="bpf")], [ev("bpf", 1, syscall="bpf", container="host")]),
    "EUN-2007": ([ev("exec", 1, name="sh", exec_id="shell-1"),
                  ev("connect", 5, name="nc", exec_id="nc-1", ancestors=SH, dport=4444)],
                 [ev("exec", 1, name="sh", exec_id="shell-1"),
                  ev("connect", 40, name="nc", exec_id="nc-1", ancestors=SH, dport=4444),
                  ev("connect", 5, name="nc", exec_id="nc-2", dport=4444, daddr="127.0.0.1",
                     ancestors=SH)]),
    "EUN-3001": ([r("/etc/passwd", 1), ev("exec", 30, name="id")],
                 [r("/etc/passwd", 1), ev("exec", 300, name="id")]),
    "EUN-3002": ([ev("bind", 1, name="nc", exec_id="n1"), ev("accept", 2, name="nc", exec_id="n1")],
                 [ev("accept", 1, name="nc", exec_id="n1"), ev("bind", 2, name="nc", exec_id="n1")]),
    "EUN-3003": ([ev("exec", 1, name="sh", exec_id="s1")],
                 [ev("exec", 1, name="sh", exec_id="s1"), ev("exit", 30, name="sh", exec_id="s1")]),
}


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_on_its_attack_only(rule_id: str) -> None:
    positive, negative = CASES[rule_id]
    assert rule_id in fired(positive)
    assert rule_id not in fired(negative)


def test_every_pack_rule_has_a_case_and_the_pack_is_clean() -> None:
    rules = load_files(pack_files()).rules
    assert len(rules) >= 20
    assert {r.id for r in rules} == set(CASES)
    assert lint_files(pack_files()) == []
    for rule in rules:
        assert rule.tags[0].startswith("maturity_"), rule.id
        assert rule.tags[1].startswith("mitre_"), rule.id
        assert any(re.fullmatch(r"T\d{4}(\.\d{3})?", t) for t in rule.tags), rule.id
        assert rule.desc and rule.output


def test_multi_event_rules_use_multi_event_forms() -> None:
    forms = {r.id: r.form for r in load_files(pack_files()).rules}
    for rid in ("EUN-2007", "EUN-1010", "EUN-1011"):
        assert forms[rid] == "sequence"
    assert forms["EUN-1014"] == "distinct" and forms["EUN-1015"] == "threshold"


def test_pack_alerts_fit_the_alert_schema_and_render_ocsf() -> None:
    from eunomia.processors.rules import to_ocsf

    codec = AvroCodec()
    ruleset = load_files(pack_files())
    alerts = []
    for positive, _ in CASES.values():  # one engine per case: their timestamps overlap
        engine = Engine(ruleset, lateness_ns=0)
        for e in positive:
            alerts += engine.process(e)
        alerts += engine.flush() + engine.advance_watermark(10**13)
    assert {a["rule_id"] for a in alerts} == set(CASES)
    for a in alerts:
        assert codec.decode(codec.encode("alert", a), expect="alert") == a
        o = to_ocsf(a)
        assert o["class_uid"] == 2004 and o["severity_id"] == a["severity_id"]
        assert o["finding_info"]["uid"] == a["alert_id"]
        assert o["metadata"]["product"]["name"] == "Eunomia Stream"
        assert len(o["evidences"]) == len(a["events"])


def test_message_template_renders_fields() -> None:
    engine = Engine(load_files(pack_files()), lateness_ns=0)
    [a] = [x for x in engine.process(ev("exec", 1, name="bash", pname="runc")) if x["rule_id"] == "EUN-1001"]
    assert a["message"] == ("Shell in container (proc=bash parent=runc user=1000 container=c1 "
                            "image=busybox)")
    assert a["fields"]["process.parent.name"] == "runc"
    assert a["level"] == "warning" and a["severity_id"] == 3
