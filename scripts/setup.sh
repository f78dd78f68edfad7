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
  jq curl                  # the retention CronJob's pod runs cleanup.sh with BusyBox sh, curl and jq
  qemu-user                # runs the smoke image's linux/arm64 program (tests/test_smoke_image.py)
  chromium                 # checks the HTML report in a real browser
  wrk                      # benchmarks: the registry's own HEAD ceiling
  git make
)
BINARIES=(docker-registry htpasswd containerd ctr runc prometheus promtool prometheus-pushgateway podman sshd chromium wrk git make jq curl qemu-aarch64)

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
# Python packages from the hash-pinned lock (scripts/lock.sh writes it from pyproject.toml): the
# exact versions and files CI tested, nothing resolved anew. The lock holds the build backend too, so
# the editable install of phasegate itself builds without fetching an unpinned setuptools; the
# venv's own pip is used as it comes (an unpinned `pip install --upgrade pip` would be the one
# package taken from outside the lock).
LOCK=requirements-dev.lock
stamp=.venv/.phasegate-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$LOCK" -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --require-hashes -r "$LOCK"
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  touch "$stamp"
fi
# The HTML report (phasegate report): Allure 3 (npm `allure`, Java-free) and Allure 2
# (npm `allure-commandline`, the fallback; it needs Java) in project-local npm prefixes under
# .tools/ -- no global install. Versions pinned; reinstalled only when the pin changes.
ALLURE3_VERSION=3.18.0
ALLURE2_VERSION=2.34.1
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
npm_tool() {  # npm_tool DIR PACKAGE VERSION
  if ! grep -qs "\"version\": \"$3\"" "$1/node_modules/$2/package.json"; then
    npm install --no-audit --no-fund --loglevel=error --prefix "$1" "$2@$3" >/dev/null
  fi
}
npm_tool .tools/allure3 allure "$ALLURE3_VERSION"
npm_tool .tools/allure2 allure-commandline "$ALLURE2_VERSION" || echo "setup: Allure 2 fallback not installed (Allure 3 renders the report)"
echo "setup: ok (.venv ready, lab binaries installed, Allure in .tools/)"
