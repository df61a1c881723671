"""Enricher memory under a flood of processes that never exit: 100k hosts and
1M processes (``--quick``: 250k) through the pure ``Enricher`` with the default
``enrich.max_processes`` bound, against the same flood without a bound, each in
a child process so their RSS does not mix. The figure is the bounded run's RSS
growth over the flood; the unbounded run's is the baseline.

    .venv/bin/python bench/lineage_memory.py [--quick] [--json FILE]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import Figure, bench_args, report  # noqa: E402

HOSTS = 100_000


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def flood(procs: int, bound: int | None) -> dict[str, float]:
    """Inside a child: RSS before and after ``procs`` exec events over HOSTS hosts."""
    from eunomia.processors.enrich.enricher import Enricher
    from tests.support.raw_records import Host, exec_payload

    hosts = [Host(f"flood-{i}") for i in range(HOSTS)]
    enricher = Enricher(max_procs=bound, max_wall_hold_s=float("inf"))
    before = _rss_mb()
    for n in range(procs):
        h = hosts[n % HOSTS]
        enricher.on_raw_event(h.event("exec", pid=100 + n, comm="app", cgroup_id=1,
                                      cgroup_path="/system.slice/app.service",
                                      payload=exec_payload("/usr/bin/app", "app", str(n))))
    return {"before": before, "after": _rss_mb(), "kept": len(enricher.lineage.procs),
            "evicted": enricher.lineage.evicted}


def main() -> None:
    args = bench_args(__doc__ or "").parse_args()
    from eunomia.config import EnrichSettings

    procs = 250_000 if args.quick else 1_000_000
    bound = EnrichSettings().max_processes
    runs = {}
    for name, b in (("bounded", bound), ("unbounded", None)):
        code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
                f"from bench.lineage_memory import flood; print(json.dumps(flood({procs}, {b})))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, runs[name])
    grew = {k: v["after"] - v["before"] for k, v in runs.items()}
    report([Figure("lineage_memory", f"RSS growth, {procs:,} never-exiting processes on {HOSTS:,} hosts "
                   f"(bound {bound:,}, {runs['bounded']['evicted']:,} evicted)", grew["bounded"],
                   grew["unbounded"], "no bound", unit="MB", goal="flat past the bound",
                   higher_is_better=False)], args.json)


if __name__ == "__main__":
    main()
