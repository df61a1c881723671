"""Signal numbers to names, as the signal group's events are read by people.

Python's ``signal.Signals`` lacks the real-time range, which a container's
runtime uses (SIGRTMIN+n); those get the kernel's ``SIGRTMIN+n`` spelling.
``is_fatal`` mirrors ``sig_fatal`` in bpf/signal.c, the set the kernel always
publishes whatever the boundary filter says.
"""

from __future__ import annotations

import signal as _signal

__all__ = ["FATAL", "SIGRTMAX", "SIGRTMIN", "is_fatal", "signal_name"]

SIGRTMIN, SIGRTMAX = 32, 64  # the kernel's numbers; glibc reserves 32 and 33
_NAMES = {s.value: s.name for s in _signal.Signals
          if not s.name.startswith("SIGRT") and s.name not in ("SIGIOT", "SIGPOLL", "SIGCLD")}
FATAL = frozenset({4, 6, 7, 8, 9, 11, 31})  # ILL ABRT BUS FPE KILL SEGV SYS


def signal_name(sig: int) -> str:
    """``SIGTERM`` for 15, ``SIGRTMIN+3`` for 35, the number as text when unknown."""
    name = _NAMES.get(sig)
    if name is not None:
        return name
    if SIGRTMIN <= sig <= SIGRTMAX:
        if sig == SIGRTMAX:
            return "SIGRTMAX"
        return "SIGRTMIN" if sig == SIGRTMIN else f"SIGRTMIN+{sig - SIGRTMIN}"
    return str(sig)


def is_fatal(sig: int) -> bool:
    return sig in FATAL
