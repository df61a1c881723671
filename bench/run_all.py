"""`make bench`: every bench/*.py in one run, one table, one JSON file.

Each script measures its own baseline in the same run and prints ratios; this
collects their figures (``--json``) into bench/results/latest.json and prints
them together. A script that fails is reported as failed, not skipped silently.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="pass --quick to every bench")
    p.add_argument("--only", nargs="*", help="bench names (file stems) to run")
    p.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = p.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # one JSON-lines file per script: --only reruns some and keeps the others' figures
    parts = args.out.parent / "parts"
    parts.mkdir(exist_ok=True)
    console = Console()
    scripts = sorted(s for s in HERE.glob("*.py") if not s.name.startswith("_") and s.name != "run_all.py")
    if args.only:
        scripts = [s for s in scripts if s.stem in args.only]
    status: dict[str, str] = {}
    if args.only and args.out.exists():
        status = {k: v for k, v in json.loads(args.out.read_text()).get("status", {}).items()
                  if k not in args.only}
    else:
        for old in parts.glob("*.jsonl"):
            old.unlink()
    for script in scripts:
        console.rule(f"bench/{script.name}")
        t0 = time.monotonic()
        lines = parts / f"{script.stem}.jsonl"
        lines.unlink(missing_ok=True)
        cmd = [sys.executable, str(script), "--json", str(lines)] + (["--quick"] if args.quick else [])
        rc = subprocess.call(cmd, cwd=HERE.parent)
        status[script.stem] = f"ok ({time.monotonic() - t0:.0f}s)" if rc == 0 else f"FAILED rc={rc}"
    figures = [json.loads(ln) for part in sorted(parts.glob("*.jsonl"))
               for ln in part.read_text().splitlines()]
    table = Table("bench", "figure", "ours", "baseline", "ratio", "goal", title="Eunomia Stream benchmarks")
    for f in figures:
        table.add_row(f["bench"], f["figure"], f"{f['ours']:,.1f} {f['unit']}",
                      f"{f['baseline']:,.1f} {f['unit']} ({f['baseline_name']})", f"{f['ratio']:.3f}",
                      f["goal"])
    console.rule("summary")
    console.print(table)
    for name, st in status.items():
        console.print(f"{name}: {st}")
    args.out.write_text(json.dumps({"figures": figures, "status": status,
                                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                                   indent=1))
    console.print(f"wrote {args.out}")
    return 0 if all(s.startswith("ok") for s in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
