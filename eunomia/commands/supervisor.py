"""Run the pipeline's processes as children and stop every one of them.

Each child gets its own session (process group) so a Ctrl-C in the terminal
reaches only the supervisor, which then stops children in order (producer first,
so workers can drain what it sent) and kills whatever survives a grace period,
descendants included: ``eunomia up`` leaves no process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

__all__ = ["Child", "Supervisor"]


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    descendants: set[int] = field(default_factory=set)


class Supervisor:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        """Start ``python -m eunomia ARGS`` with its output in ``<log_dir>/<name>.log``."""
        return self.spawn_command(name, [sys.executable, "-m", "eunomia", *args], env)

    def spawn_command(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child(name, argv, {**os.environ, **env}, self.log_dir / f"{name}.log")
        with child.log.open("ab") as out:
            child.proc = subprocess.Popen(child.argv, env=child.env, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        self.children.append(child)
        return child

    def discard(self, child: Child) -> None:
        """Kill one child (its whole process group) and forget it."""
        self._signal_group(child, signal.SIGKILL)
        if child.proc is not None:
            try:
                child.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.children.remove(child)

    def failed(self) -> list[Child]:
        """Children that exited on their own (a supervisor reports, never respawns silently)."""
        return [c for c in self.children if c.proc is not None and c.proc.poll() is not None]

    def log_tail(self, child: Child, lines: int = 5) -> str:
        try:
            return "\n".join(child.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        # remember every descendant first: a child may fork helpers of its own
        for child in self.children:
            if child.proc is not None:
                try:
                    child.descendants = {p.pid for p in
                                         psutil.Process(child.proc.pid).children(recursive=True)}
                except psutil.NoSuchProcess:
                    pass
        for child in self.children:  # in start order: producer first
            self._signal_group(child, signal.SIGTERM)
            self._wait(child, grace / max(1, len(self.children)))
        for child in self.children:
            self._signal_group(child, signal.SIGKILL)
            for pid in child.descendants:
                try:
                    psutil.Process(pid).kill()
                except psutil.NoSuchProcess:
                    pass
            if child.proc is not None:
                try:
                    child.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass

    @staticmethod
    def _signal_group(child: Child, sig: signal.Signals) -> None:
        if child.proc is None:
            return
        try:
            os.killpg(child.proc.pid, sig)
        except ProcessLookupError:
            pass

    @staticmethod
    def _wait(child: Child, timeout: float) -> None:
        if child.proc is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and child.proc.poll() is None:
            time.sleep(0.1)
