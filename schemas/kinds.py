"""Event kinds with a meaning of their own in the contract between producer and
processors (every other kind names what the kernel saw)."""

from __future__ import annotations

__all__ = ["HEARTBEAT"]

# A producer's time mark on raw.events (and enriched.events): every event of its
# host up to this time was sent before it. It carries no process and matches no
# rule; it moves its host's event time while the host has nothing else to say.
HEARTBEAT = "heartbeat"
