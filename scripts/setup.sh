#!/usr/bin/env bash
# Installs everything phasegate and its lab need on a fresh Debian/Ubuntu machine.
# Safe to rerun: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  docker-registry          # registry-private and the Forgejo stand-in's engine (distribution 2.8)
  apache2-utils            # htpasswd for the lab's Basic auth
  containerd runc          # one real containerd per lab node
  prometheus prometheus-pushgateway   # bake metrics (promtool comes with prometheus)
  podman                   # Docker-compatible API for docker login/push and the registry VM
  openssh-server           # the registry VM's sshd
  busybox-static           # the lab VM's container image (imported from a rootfs tar, no network)
  chromium                 # checks the HTML report in a real browser
  wrk                      # benchmarks: the registry's own HEAD ceiling
  git make
)
BINARIES=(docker-registry htpasswd containerd ctr runc prometheus promtool prometheus-pushgateway podman sshd chromium wrk git make)

missing=0
for b in "${BINARIES[@]}"; do command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing=1; done
dpkg -s busybox-static >/dev/null 2>&1 || missing=1   # a dynamic busybox cannot run in the lab's bare image
if [ "$missing" = 1 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
fi

# The lab VM's `docker` (the CLI that answers `docker system dial-stdio` over SSH). Debian ships the
# CLI only inside docker.io (its daemon is not needed and not started by the lab).
if ! command -v docker >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.phasegate-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
echo "setup: ok (.venv ready, lab binaries installed)"
