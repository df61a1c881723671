"""Podman as the container tests use it: the busybox test image, a podman call,
podman's default seccomp allowlist and a busybox workload to learn one from."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

__all__ = ["BUSYBOX_IMAGE", "PODMAN_DEFAULT_SECCOMP", "WORKLOAD", "default_allowed", "podman"]

BUSYBOX_IMAGE = "localhost/eunomia-busybox:latest"
PODMAN_DEFAULT_SECCOMP = Path("/usr/share/containers/seccomp.json")

# Files, a local HTTP server and clients: a workload whose learned seccomp
# profile must still let it run.
WORKLOAD = """set -e
echo hello-eunomia > /tmp/index.html
cp /tmp/index.html /tmp/copy.txt
cat /tmp/copy.txt
rm /tmp/copy.txt
ls /tmp
httpd -f -p 127.0.0.1:8080 -h /tmp &
pid=$!
dd if=/dev/zero of=/tmp/big bs=64k count=64 2>/dev/null
sleep 0.3
wget -q -O - http://127.0.0.1:8080/index.html
for i in 1 2 3; do wget -q -O /tmp/got http://127.0.0.1:8080/big; done
wc -c < /tmp/got
kill $pid
echo done
"""


def podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)


def default_allowed() -> int:
    """How many syscall names podman's default seccomp profile allows."""
    prof = json.loads(PODMAN_DEFAULT_SECCOMP.read_text())
    return len({n for s in prof["syscalls"] if s["action"] == "SCMP_ACT_ALLOW" for n in s["names"]})
