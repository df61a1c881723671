"""The lineage stays under its process bound when processes never exit: a flood
of 100k hosts and 100k processes keeps at most ``max_procs`` of them, evicts
(and counts) the least recently seen, and keeps the ones still active."""

from __future__ import annotations

from eunomia.processors.enrich.enricher import Enricher
from tests.support.raw_records import Host, exec_payload, open_payload

HOSTS, PROCS, BOUND = 100_000, 100_000, 10_000
HOST_CG = "/system.slice/app.service"  # host processes: enriched at once, never held


def test_a_flood_of_processes_that_never_exit_stays_bounded() -> None:
    hosts = [Host(f"flood-{i}") for i in range(HOSTS)]
    enricher = Enricher(max_procs=BOUND, max_wall_hold_s=float("inf"))
    keeper = Host("keeper")
    enricher.on_raw_event(keeper.event("exec", pid=1, comm="init", cgroup_id=1, cgroup_path=HOST_CG,
                                        payload=exec_payload("/sbin/init")))
    for n in range(PROCS):
        h = hosts[n % HOSTS]
        enricher.on_raw_event(h.event("exec", pid=100 + n, comm="app", cgroup_id=1, cgroup_path=HOST_CG,
                                      payload=exec_payload("/usr/bin/app", "app", str(n))))
        if n % 1000 == 0:  # the keeper stays active: never evicted
            enricher.on_raw_event(keeper.event("open", pid=1, comm="init", cgroup_id=1, cgroup_path=HOST_CG,
                                                payload=open_payload("/x")))
    lin = enricher.lineage
    assert len(lin.procs) == lin.tracked == BOUND
    assert lin.evicted == PROCS + 1 - BOUND
    assert "keeper" in {rec["h"] for rec in lin.procs.values()}


def test_without_a_bound_nothing_is_evicted() -> None:
    h = Host("h")
    enricher = Enricher(max_wall_hold_s=float("inf"))
    for n in range(500):
        enricher.on_raw_event(h.event("exec", pid=100 + n, comm="app", payload=exec_payload("/a")))
    assert len(enricher.lineage.procs) == 500 and enricher.lineage.evicted == 0
