"""Shared output of every benchmark: each figure is our rate next to a baseline
measured in the same run, and their ratio (absolute times are not comparable
between runs on these noisy machines).

``--json FILE`` appends the figures so ``bench/run_all.py`` can print one table.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["Figure", "bench_args", "best_rate", "peak_rss_mb", "report"]


@dataclass
class Figure:
    bench: str
    figure: str
    ours: float
    baseline: float
    baseline_name: str
    unit: str = "events/s"
    goal: str = ""
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("nan")


def bench_args(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", type=Path, help="append figures to this JSON-lines file")
    p.add_argument("--quick", action="store_true", help="smaller inputs (smoke run)")
    return p


def best_rate(fn: Callable[[], int], repeats: int = 3) -> float:
    """Items per second of the best of ``repeats`` runs; ``fn`` returns the item count."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t0
        best = max(best, n / dt if dt > 0 else 0.0)
    return best


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(figures: list[Figure], json_path: Path | None = None) -> None:
    table = Table("bench", "figure", "ours", "baseline", "ratio", "goal")
    for f in figures:
        table.add_row(f.bench, f.figure, f"{f.ours:,.1f} {f.unit}",
                      f"{f.baseline:,.1f} ({f.baseline_name})", f"{f.ratio:.3f}", f.goal)
    Console().print(table)
    if json_path:
        with json_path.open("a") as fh:
            for f in figures:
                fh.write(json.dumps({**asdict(f), "ratio": f.ratio}) + "\n")
