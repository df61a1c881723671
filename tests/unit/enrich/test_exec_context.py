"""What an exec tells the rules: the applet a multi-call binary runs, where the
image file lives, sockets on the standard streams, the pid in the namespace."""

from __future__ import annotations

import pytest

from eunomia.processors.enrich.container_join import container_key
from eunomia.processors.enrich.enricher import Enricher
from eunomia.processors.enrich.lineage import program_name
from eunomia.schemas import AvroCodec
from tests.support.raw_records import Host, connect_payload, container_record, exec_payload, podman_path

CODEC = AvroCodec()


@pytest.mark.parametrize(("comm", "filename", "argv", "name"), [
    ("exe", "/proc/self/exe", ["nc", "-w", "1"], "nc"),
    ("busybox", "/bin/busybox", ["busybox", "nc", "1.2.3.4"], "nc"),
    ("busybox", "/bin/busybox", ["/bin/busybox", "id"], "id"),
    ("toybox", "/usr/bin/toybox", ["toybox"], "toybox"),
    ("sh", "/bin/sh", ["sh", "-c", "x"], "sh"),  # a symlink to busybox: the comm says it
    ("nginx", "/usr/sbin/nginx", ["nginx: master"], "nginx"),
    ("exe", "/proc/self/exe", [], "exe"),
    ("x", "/tmp/busybox", ["/tmp/busybox", "whoami"], "whoami"),
])
def test_program_name(comm: str, filename: str, argv: list[str], name: str) -> None:
    assert program_name(comm, filename, argv) == name


def _enricher() -> tuple[Enricher, Host]:
    e = Enricher()
    e.on_container(container_key("h1", 1000), container_record("h1", 1000))
    return e, Host()


def _one(e: Enricher, ev: dict) -> dict:
    [(_, rec)] = e.on_raw_event(ev)
    return CODEC.decode(CODEC.encode("enriched_event", rec), expect="enriched_event")


def test_an_applet_keeps_its_name_on_later_events_of_its_process() -> None:
    e, h = _enricher()
    ex = _one(e, h.event("exec", pid=7, comm="exe", cgroup_path=podman_path(),
                         payload=exec_payload("/proc/self/exe", "nc", "10.0.0.1", "4444")))
    conn = _one(e, h.event("connect", pid=7, comm="exe", cgroup_path=podman_path(),
                           payload=connect_payload("10.0.0.1", 4444)))
    assert ex["process"]["name"] == conn["process"]["name"] == "nc"


@pytest.mark.parametrize(("flags", "families", "origin", "stdio"), [
    (0, [0, 0, 0], "image", ""),
    (1, [2, 2, 0], "upper_layer", "ipv4"),
    (2, [0, 10, 0], "tmpfs", "ipv6"),
    (4 | 2, [1, 1, 1], "memfd", "unix"),
])
def test_exec_context_fields(flags: int, families: list[int], origin: str, stdio: str) -> None:
    e, h = _enricher()
    pl = {**exec_payload("/tmp/x", "x"), "exe_flags": flags, "stdio_families": families, "vpid": 1}
    rec = _one(e, h.event("exec", pid=7, comm="x", cgroup_path=podman_path(), payload=pl))
    p = rec["process"]
    assert (p["exe_origin"], p["stdio_socket"], p["vpid"]) == (origin, stdio, 1)


def test_other_events_and_failed_execs_carry_no_exec_context() -> None:
    e, h = _enricher()
    failed = {**exec_payload("/tmp/x", "x"), "retval": -13, "exe_flags": 1, "vpid": 3}
    rec = _one(e, h.event("exec", pid=7, cgroup_path=podman_path(), payload=failed))
    conn = _one(e, h.event("connect", pid=7, cgroup_path=podman_path(),
                           payload=connect_payload("10.0.0.1", 1)))
    for r in (rec, conn):
        assert (r["process"]["exe_origin"], r["process"]["stdio_socket"], r["process"]["vpid"]) == ("", "", 0)
