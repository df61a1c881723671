"""Seccomp fold: per-event cost of the worker's pure path (name resolution via
libseccomp, per-image fold, violation check) next to the Avro decode of the same
enriched event, which every processor pays anyway. Also the profile size vs
podman's default profile."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from _common import Figure, bench_args, best_rate, report

from eunomia.processors.seccomp.observation import observation
from eunomia.processors.seccomp.profile import allowlist, fold, mark_published, new_state, violations
from eunomia.schemas import AvroCodec


def events(n: int, codec: AvroCodec) -> list[bytes]:
    rnd = random.Random(7)
    out = []
    for i in range(n):
        nrs = rnd.sample(range(0, 330), 40)
        out.append(codec.encode("enriched_event", {
            "event": {"id": f"h:b:s:{i}", "kind": "syscall_counts", "category": "syscalls",
                      "ts_ns": time.time_ns(), "seq": i},
            "host": {"id": f"h{i % 4}", "boot_id": "b"},
            "process": {"pid": i, "name": "sh", "exec_id": f"e{i}"},
            "user": {"id": 0, "group_id": 0},
            "container": {"id": f"c{i % 50}", "image_name": f"img{i % 10}", "image_id": None},
            "syscalls": {"arch": "x86_64", "interval_ns": 10**9,
                         "counts": [{"nr": nr, "count": 1} for nr in nrs]}}))
    return out


def main() -> None:
    args = bench_args(__doc__ or "").parse_args()
    n = 2000 if args.quick else 20000
    codec = AvroCodec()
    data = events(n, codec)
    decoded = [codec.decode(d, expect="enriched_event") for d in data]

    def decode_only() -> int:
        for d in data:
            codec.decode(d, expect="enriched_event")
        return n

    def fold_path() -> int:
        states: dict[str, dict] = {}
        now = time.time_ns()
        for i, ev in enumerate(decoded):
            obs = observation(ev)
            assert obs is not None
            st = states.setdefault(obs.image, new_state(obs.image, None, obs.arch))
            violations(st, obs)
            fold(st, obs, now)
            if i == n // 2:
                for s in states.values():
                    mark_published(s, now)
                    s["frozen"] = True  # learning over: the second half is checked
        return n

    default = json.loads(Path("/usr/share/containers/seccomp.json").read_text())
    allowed_default = len({x for s in default["syscalls"] if s["action"] == "SCMP_ACT_ALLOW"
                           for x in s["names"]})
    st = new_state("busybox", None, "x86_64")
    report([
        Figure("seccomp", "fold path (resolve+fold+check)", best_rate(fold_path), best_rate(decode_only),
               "Avro decode of the same events", goal=">= 1 (not the bottleneck)"),
        Figure("seccomp", "runtime baseline size vs podman default", len(allowlist(st)), allowed_default,
               "podman default allowed names", unit="syscalls", higher_is_better=False),
    ], args.json)


if __name__ == "__main__":
    main()
