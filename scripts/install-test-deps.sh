#!/usr/bin/env bash
# Installs the real parts pifleet's tests talk to, from Debian packages:
# Mosquitto (external broker), socat (PTY cable), util-linux (agetty),
# qemu-user-static (ARMv7 test run), iproute2 (network namespaces),
# busybox-static and mmdebstrap (local Docker test images: no registry),
# systemd (systemd-analyze verify), dpkg-dev (inspecting .deb packages),
# openssh (deploy tests), jq and curl (make bench-fleet), strace (the
# hub's state file is fsynced before it replaces the old one), chromium and
# fonts-noto-color-emoji (the Slack message gallery's screenshot test),
# avahi-daemon, avahi-utils and dbus (mDNS discovery works beside avahi,
# as on Raspberry Pi OS, and avahi-browse resolves the hub).
# Idempotent: it only calls apt-get when something is missing. The
# Docker Engine itself is part of the machine; the tests fail with a
# clear message when it is not reachable.
set -euo pipefail

pkgs_needed=(mosquitto socat util-linux qemu-user-static iproute2 busybox-static mmdebstrap
  systemd dpkg openssh-server openssh-client openssl passwd init-system-helpers shellcheck
  jq curl strace chromium fonts-noto-color-emoji avahi-daemon avahi-utils dbus)

missing=()
for p in "${pkgs_needed[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# nfpm builds the .deb packages (scripts/build-deb.sh), staticcheck and
# deadcode keep make lint at zero: fetch them now, not mid-test (versions
# as pinned in the Makefile).
if command -v go >/dev/null 2>&1; then
  go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.0 --version >/dev/null
  go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -version >/dev/null
  go run golang.org/x/tools/cmd/deadcode@v0.52.0 -h >/dev/null 2>&1 || true
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: everything is installed"
  exit 0
fi

pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
echo "install-test-deps: installing $pkgs"
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may still be running its own apt (unattended upgrades):
# wait for the dpkg lock, saying who holds it, instead of failing; apt's
# own lock timeout covers a holder that starts between the two.
"$(dirname "$0")/wait-dpkg-lock.sh" 600
lock=(-o DPkg::Lock::Timeout=600)
$SUDO apt-get "${lock[@]}" update -qq
# shellcheck disable=SC2086
$SUDO apt-get "${lock[@]}" install -y -qq --no-install-recommends $pkgs >/dev/null
# The Debian mosquitto package starts a system broker on :1883 when systemd
# runs; tests use their own on free ports, so nothing else is needed.
echo "install-test-deps: done"
