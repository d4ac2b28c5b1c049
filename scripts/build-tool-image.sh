#!/bin/sh
# build-tool-image — build the image pifleet-agent runs `aws` commands in
# (pifleet/awscli:latest, the built-in aws tool's image) from the
# distribution's packages alone: no container registry, no Alpine mirror.
#
# mmdebstrap installs Debian's awscli and ca-certificates into an
# "essential" root file system (no apt inside) for ARCH, without docs, man
# pages, locales or apt lists; the script wraps that root file system as
# one layer with an image config and manifest, and `docker load` makes
# it an image (-o FILE writes that archive instead) that behaves like
# agent/Dockerfile.awscli's: ENTRYPOINT ["aws"] (exec form:
# the argv reaches aws, never a shell), USER 65534:65534, HOME=/tmp,
# AWS_PAGER empty, a world-writable sticky /tmp for the runner's tmpfs.
# The image is tagged only once the whole root file system was loaded:
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
#   -o FILE     write the image archive to FILE (for `docker load < FILE` on the Pi)
#               instead of loading it into this machine's Docker
#   -n          print the commands instead of running them
#
# On a Pi it builds natively. Elsewhere a foreign ARCH needs qemu-user-static
# registered with binfmt_misc (mmdebstrap runs the packages' maintainer
# scripts); the build stops at once with the fix when it is not.
# TMPDIR (default /var/tmp) holds about 500 MB of scratch during a build.
# Environment for tests: OS_RELEASE (/etc/os-release), HOST_ARCH (dpkg's),
# BINFMT_MISC (/proc/sys/fs/binfmt_misc).
set -eu

prog=build-tool-image
die() { echo "$prog: $*" >&2; exit 1; }
usage() {
	echo "usage: $prog [-n] [-a armhf|arm64|amd64] [-s SUITE] [-m MIRROR] [-k KEYRING] [-t TAG] [-o FILE]" >&2
	exit 2
}

dry=0 ARCH='' SUITE='' MIRROR='' KEYRING='' TAG=pifleet/awscli:latest OUT=''
while getopts na:s:m:k:t:o:h opt; do
	case "$opt" in
	n) dry=1 ;;
	a) ARCH=$OPTARG ;;
	s) SUITE=$OPTARG ;;
	m) MIRROR=$OPTARG ;;
	k) KEYRING=$OPTARG ;;
	t) TAG=$OPTARG ;;
	o) OUT=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
# Both go into the image's JSON as they are.
case "$TAG" in '' | *[!a-zA-Z0-9._/:@-]*) die "bad TAG \"$TAG\": want a Docker reference such as pifleet/awscli:latest" ;; esac

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
armhf) platform='"architecture":"arm","variant":"v7"' qemu=arm ;;
arm64) platform='"architecture":"arm64"' qemu=aarch64 ;;
amd64) platform='"architecture":"amd64"' qemu=x86_64 ;;
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
case "$SUITE" in *[!a-z0-9.-]*) die "bad SUITE \"$SUITE\": want a Debian code name such as bookworm" ;; esac
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

if [ "$dry" = 1 ]; then
	work=WORK
else
	command -v mmdebstrap >/dev/null || die "mmdebstrap missing: apt-get install mmdebstrap"
	if [ -n "$OUT" ]; then
		case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
		mkdir -p "$(dirname "$OUT")" || die "cannot create the directory of $OUT"
	else
		command -v docker >/dev/null || die "docker missing: apt-get install docker.io (or write a file with -o)"
		docker version >/dev/null 2>&1 || die "the Docker Engine does not answer (is dockerd running, may this user use it?)"
	fi
	# About 500 MB of scratch (mmdebstrap's tree and the layer): /var/tmp,
	# not a /tmp that may be a RAM-backed tmpfs on a 1 GB Pi.
	TMPDIR=${TMPDIR:-/var/tmp}
	export TMPDIR
	work=$(mktemp -d "$TMPDIR/pifleet-tool-image.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	trap 'exit 130' INT TERM
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
set -- "$@" "$SUITE" "$work/layer.tar"
[ -z "$MIRROR" ] || set -- "$@" "$MIRROR"

# config DIFF_ID CREATED: the image's configuration (JSON), as the
# Dockerfile's ENTRYPOINT, USER, WORKDIR, ENV and LABEL would make it.
config() {
	printf '{%s,"os":"linux","created":"%s",' "$platform" "$2"
	printf '"config":{"Entrypoint":["aws"],"User":"65534:65534","WorkingDir":"/tmp",'
	printf '"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","HOME=/tmp","AWS_PAGER=","LANG=C.UTF-8"],'
	printf '"Labels":{"org.pifleet.tool":"aws","org.pifleet.source":"debian %s awscli"}},' "$SUITE"
	printf '"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},' "$1"
	printf '"history":[{"created":"%s","created_by":"pifleet build-tool-image -a %s -s %s"}]}\n' "$2" "$ARCH" "$SUITE"
}

# quote ARG...: the arguments shell-quoted on one line.
quote() {
	for a; do printf "'%s' " "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"; done
}

if [ "$dry" = 1 ]; then
	echo "mmdebstrap $(quote "$@")"
	echo "image config: $(config LAYER-SHA256 CREATED)"
	echo "then: ${OUT:-docker load} (tag $TAG)"
	exit 0
fi

start=$(date +%s)
echo "$prog: $ARCH image from Debian $SUITE ${MIRROR:-(deb.debian.org)} -> $TAG" >&2
mmdebstrap "$@" || die "mmdebstrap failed (exit $?); $TAG is unchanged"

diff=$(sha256sum "$work/layer.tar" | cut -d ' ' -f 1)
mkdir "$work/$diff"
mv "$work/layer.tar" "$work/$diff/layer.tar"
config "$diff" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$work/config.json"
cfg=$(sha256sum "$work/config.json" | cut -d ' ' -f 1)
mv "$work/config.json" "$work/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' "$cfg" "$TAG" "$diff" >"$work/manifest.json"
if [ -n "$OUT" ]; then
	# Under another name until complete: no half archive under OUT.
	tar -C "$work" -cf "$OUT.part" manifest.json "$cfg.json" "$diff/layer.tar" || die "writing $OUT failed"
	mv "$OUT.part" "$OUT"
	size=$(wc -c <"$OUT")
	echo "$prog: $OUT ($TAG, $ARCH, $((size / 1000000)) MB) built in $(($(date +%s) - start)) s; on the Pi: docker load < $OUT" >&2
else
	tar -C "$work" -cf - manifest.json "$cfg.json" "$diff/layer.tar" | docker load >&2 || die "docker load failed"
	size=$(docker image inspect --format '{{.Size}}' "$TAG")
	echo "$prog: $TAG ($ARCH, $((size / 1000000)) MB) built in $(($(date +%s) - start)) s" >&2
fi
