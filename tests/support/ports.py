"""Free loopback ports for the brokers, registries and metrics servers tests start."""

from __future__ import annotations

import socket

__all__ = ["free_port_block"]


def free_port_block(n: int = 1) -> int:
    """A port p such that p..p+n-1 and their controller ports (+100) look free."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 100 + n > 65535:
            continue
        ok = True
        for p in [*range(base, base + n), *range(base + 100, base + 100 + n)]:
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")
