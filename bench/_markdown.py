"""The README's benchmark table, from ``bench/results/latest.json`` (written by
``make bench``), so the README shows only figures the command produced.

    .venv/bin/python bench/_markdown.py [bench/results/latest.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(data: dict) -> str:
    rows = ["| bench | figure | ours | baseline (same run) | ratio | goal |", "|---|---|---|---|---|---|"]
    for f in data["figures"]:
        rows.append(f"| {f['bench']} | {f['figure']} | {f['ours']:,.1f} {f['unit']} | "
                    f"{f['baseline']:,.1f} ({f['baseline_name']}) | {f['ratio']:.3f} | {f['goal']} |")
    failed = [f"`bench/{k}.py` {v}" for k, v in data.get("status", {}).items() if not v.startswith("ok")]
    note = f"\n\nRun {data.get('when', '?')}." + (f" Failed: {', '.join(failed)}." if failed else "")
    return "\n".join(rows) + note


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "latest.json"
    print(table(json.loads(path.read_text())))
