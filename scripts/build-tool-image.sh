#!/bin/sh
# build-tool-image — build the image pifleet-agent runs `aws` commands in
# (pifleet/awscli:latest, the built-in aws tool's image) from the
# distribution's packages alone: no container registry, no Alpine mirror.
#
# mmdebstrap installs Debian's awscli and ca-certificates into an
# "essential" root file system (no apt inside) for ARCH, without docs, man
# pages, locales or apt lists, and `docker import` makes it an image that
# behaves like agent/Dockerfile.awscli's: ENTRYPOINT ["aws"] (exec form:
# the argv reaches aws, never a shell), USER 65534:65534, HOME=/tmp,
# AWS_PAGER empty, a world-writable sticky /tmp for the runner's tmpfs.
# The image is tagged only once the whole root file system was imported:
# a failed build never replaces a good image under the tag.
#
# Usage: build-tool-image [-n] [-a ARCH] [-s SUITE] [-m MIRROR] [-k KEYRING] [-t TAG]
#   -a ARCH     armhf, arm64 or amd64 (default: this machine's, dpkg --print-architecture)
#   -s SUITE    Debian suite (default: VERSION_CODENAME of /etc/os-release on Debian
#               and Raspberry Pi OS, else bookworm)
#   -m MIRROR   apt mirror URL or "deb …" line (default: Debian's deb.debian.org with
#               its updates and security suites; on 32-bit Raspberry Pi OS building
#               armhf: http://raspbian.raspberrypi.com/raspbian/)
#   -k KEYRING  keyring apt checks the mirror with (default: the host's apt keys; for
#               the Raspbian mirror /usr/share/keyrings/raspbian-archive-keyring.gpg)
#   -t TAG      image tag (default: pifleet/awscli:latest)
#   -n          print the commands instead of running them
#
# On a Pi it builds natively. Elsewhere a foreign ARCH needs qemu-user-static
# registered with binfmt_misc (mmdebstrap runs the packages' maintainer
# scripts); the build stops at once with the fix when it is not.
# Environment for tests: OS_RELEASE (/etc/os-release), HOST_ARCH (dpkg's),
# BINFMT_MISC (/proc/sys/fs/binfmt_misc).
set -eu

prog=build-tool-image
die() { echo "$prog: $*" >&2; exit 1; }
usage() {
	echo "usage: $prog [-n] [-a armhf|arm64|amd64] [-s SUITE] [-m MIRROR] [-k KEYRING] [-t TAG]" >&2
	exit 2
}

dry=0 ARCH='' SUITE='' MIRROR='' KEYRING='' TAG=pifleet/awscli:latest
while getopts na:s:m:k:t:h opt; do
	case "$opt" in
	n) dry=1 ;;
	a) ARCH=$OPTARG ;;
	s) SUITE=$OPTARG ;;
	m) MIRROR=$OPTARG ;;
	k) KEYRING=$OPTARG ;;
	t) TAG=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
[ -n "$TAG" ] || usage

OS_RELEASE=${OS_RELEASE:-/etc/os-release}
BINFMT_MISC=${BINFMT_MISC:-/proc/sys/fs/binfmt_misc}

# os_field KEY: KEY's value in $OS_RELEASE without quotes (empty if absent).
os_field() {
	[ -r "$OS_RELEASE" ] || return 0
	sed -n "s/^$1=//p" "$OS_RELEASE" | head -n 1 | tr -d "\"'"
}

if [ -z "${HOST_ARCH:-}" ]; then
	HOST_ARCH=$(dpkg --print-architecture 2>/dev/null) || die "dpkg missing: this builder needs a Debian-based system (apt-get install mmdebstrap)"
fi
: "${ARCH:=$HOST_ARCH}"
case "$ARCH" in
armhf) platform=linux/arm/v7 qemu=arm ;;
arm64) platform=linux/arm64 qemu=aarch64 ;;
amd64) platform=linux/amd64 qemu=x86_64 ;;
*) die "unknown ARCH $ARCH: want armhf, arm64 or amd64" ;;
esac

os_id=$(os_field ID)
if [ -z "$SUITE" ]; then
	case "$os_id" in
	debian | raspbian) SUITE=$(os_field VERSION_CODENAME) ;;
	esac
	# Another distribution's code name (Ubuntu's noble) is no Debian suite.
	: "${SUITE:=bookworm}"
fi
# 32-bit Raspberry Pi OS is Raspbian: build from the mirror the Pi already
# uses (ARMv6 userland, runs on every Pi). 64-bit Raspberry Pi OS says
# ID=debian and uses Debian's mirror, mmdebstrap's default.
if [ -z "$MIRROR" ] && [ "$os_id" = raspbian ] && [ "$ARCH" = armhf ]; then
	MIRROR=http://raspbian.raspberrypi.com/raspbian/
	: "${KEYRING:=/usr/share/keyrings/raspbian-archive-keyring.gpg}"
fi

# Native: the same architecture, or armhf on an arm64 kernel (Pis run
# AArch32 code natively). Anything else runs under qemu via binfmt_misc.
if [ "$ARCH" != "$HOST_ARCH" ] && ! { [ "$ARCH" = armhf ] && [ "$HOST_ARCH" = arm64 ]; }; then
	entry=$BINFMT_MISC/qemu-$qemu
	if ! [ -r "$entry" ] || [ "$(head -n 1 "$entry")" != enabled ]; then
		die "$ARCH programs cannot run on this $HOST_ARCH machine ($entry missing or disabled): mmdebstrap runs the packages' maintainer scripts under qemu. Fix: apt-get install qemu-user-static binfmt-support arch-test; if $BINFMT_MISC is not mounted (containers): mount -t binfmt_misc binfmt_misc $BINFMT_MISC && update-binfmts --enable"
	fi
fi

# The root file system: Debian's awscli and nothing to read or configure.
set -- --variant=essential --architectures="$ARCH" --include=awscli,ca-certificates \
	--aptopt='APT::Install-Recommends "false"' \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/lintian/*' \
	--dpkgopt='path-exclude=/usr/lib/python3/dist-packages/awscli/examples/*' \
	--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old "$1"/var/log/*' \
	--customize-hook='chmod 1777 "$1"/tmp'
# Merged /usr by mmdebstrap's hook instead of the usrmerge package, which
# would bring perl (55 MB) into the image.
hooks=/usr/share/mmdebstrap/hooks/merged-usr
[ ! -d "$hooks" ] || set -- "$@" --hook-dir="$hooks"
[ -z "$KEYRING" ] || set -- "$@" --keyring="$KEYRING"
set -- "$@" "$SUITE" -
[ -z "$MIRROR" ] || set -- "$@" "$MIRROR"

# import_image: docker import the root file system on stdin with what the image
# says about itself, as agent/Dockerfile.awscli; prints the new image's id.
import_image() {
	docker import --platform "$platform" -m "pifleet build-tool-image $ARCH $SUITE" \
		-c 'ENTRYPOINT ["aws"]' -c 'USER 65534:65534' -c 'WORKDIR /tmp' \
		-c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		-c 'ENV HOME=/tmp' -c 'ENV AWS_PAGER=""' -c 'ENV LANG=C.UTF-8' \
		-c "LABEL org.pifleet.tool=aws org.pifleet.source=\"debian $SUITE awscli\"" -
}

# quote ARG...: the arguments shell-quoted on one line.
quote() {
	for a; do printf "'%s' " "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"; done
}

if [ "$dry" = 1 ]; then
	echo "mmdebstrap $(quote "$@")|"
	docker() { echo "docker $(quote "$@")"; }
	import_image </dev/null
	echo "docker tag IMAGE $(quote "$TAG")"
	exit 0
fi

command -v mmdebstrap >/dev/null || die "mmdebstrap missing: apt-get install mmdebstrap"
command -v docker >/dev/null || die "docker missing: apt-get install docker.io"
docker version >/dev/null 2>&1 || die "the Docker Engine does not answer (is dockerd running, may this user use it?)"

start=$(date +%s)
status=$(mktemp)
trap 'rm -f "$status"' EXIT
echo "$prog: $ARCH image from Debian $SUITE ${MIRROR:-(deb.debian.org)} -> $TAG" >&2
# docker import takes a tar that ends early as a smaller image: mmdebstrap's
# own exit status decides, and the image is tagged only after both succeeded.
id=$({ mmdebstrap "$@" || echo "$?" >"$status"; } | import_image) || die "docker import failed; $TAG is unchanged"
if [ -s "$status" ]; then
	[ -z "$id" ] || docker image rm "$id" >/dev/null 2>&1 || true
	die "mmdebstrap failed (exit $(cat "$status")); $TAG is unchanged"
fi
docker tag "$id" "$TAG"
size=$(docker image inspect --format '{{.Size}}' "$TAG")
echo "$prog: $TAG ($ARCH, $((size / 1000000)) MB) built in $(($(date +%s) - start)) s" >&2
