#!/usr/bin/env bash
# Idempotent set-up of a Debian 12 host for Eunomia Stream: the apt packages
# (bcc, podman, runc, kcat, prometheus), kernel headers linked where bcc looks for them, tracefs,
# podman configured for runc + cgroupfs, and a local busybox image built from
# busybox-static (no registry is reachable on these hosts).
set -euo pipefail

log() { printf 'setup: %s\n' "$*"; }

need_pkgs=(bpfcc-tools python3-bpfcc bpftool linux-headers-amd64 podman runc
           busybox-static libseccomp2 maven openjdk-17-jre-headless docker-compose
           gcc libc6-dev make xz-utils
           # what a SIEM team and an operator read the pipeline with, used by tests:
           # kcat (Avro through the schema registry) and Prometheus (the dashboard's queries)
           kcat prometheus)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages ${missing[*]} and not root: run this script as root" >&2
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "$(id -u)" = 0 ] || { log "not root: skipping kernel and podman set-up"; exit 0; }

# bcc compiles against headers under /lib/modules/$(uname -r); the running
# kernel ships none, so point them at the installed Debian headers. Only
# tracepoint fields, helpers and BTF are used, never struct offsets from them.
kdir="/lib/modules/$(uname -r)"
mkdir -p "$kdir"
hdr_arch=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1 || true)
hdr_common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1 || true)
if [ -n "$hdr_arch" ] && [ ! -e "$kdir/build" ]; then ln -sfn "$hdr_arch" "$kdir/build"; fi
if [ -n "$hdr_common" ] && [ ! -e "$kdir/source" ]; then ln -sfn "$hdr_common" "$kdir/source"; fi

if [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || log "could not mount tracefs"
fi

conf=/etc/containers/containers.conf
if ! grep -q 'runtime = "runc"' "$conf" 2>/dev/null; then
  mkdir -p /etc/containers
  cat > "$conf" <<'CONF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  log "wrote $conf"
fi

# (re)build the image unless it exists and runs a command
if ! podman run --rm --network none localhost/eunomia-busybox:latest /bin/true >/dev/null 2>&1; then
  podman rmi -f localhost/eunomia-busybox:latest >/dev/null 2>&1 || true
  tmp=$(mktemp -d)
  mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/tmp" "$tmp/rootfs/etc" "$tmp/rootfs/proc" "$tmp/rootfs/sys" "$tmp/rootfs/dev"
  cp /bin/busybox "$tmp/rootfs/bin/busybox"
  # --list names busybox itself: linking it would replace the binary with a loop
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$tmp/rootfs/bin/$a"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$tmp/rootfs/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >> "$tmp/rootfs/etc/passwd"
  echo 'root:x:0:' > "$tmp/rootfs/etc/group"
  echo 'root:*:19000:0:99999:7:::' > "$tmp/rootfs/etc/shadow"
  chmod 640 "$tmp/rootfs/etc/shadow"
  tar -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
  podman import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$tmp/rootfs.tar" localhost/eunomia-busybox:latest >/dev/null
  rm -rf "$tmp"
  log "built localhost/eunomia-busybox:latest"
fi
log "host ready"
