#!/bin/sh
# build-deb.sh ARCH... — build the pifleet-agent and pifleet (hub) .deb
# packages for each ARCH (armhf = ARMv7, arm64, amd64) into $OUT_DIR (dist/).
#
# Environment (all optional):
#   VERSION             package version; default from git (0.0.0~gitDATE.SHA without tags)
#   PACKAGES            which packages: "agent hub" (default), "agent" or "hub"
#   OUT_DIR             where the .debs go (default: dist)
#   BUILD_DIR           scratch directory (default: build/deb)
#   PIFLEET_AGENT_BIN   use this prebuilt agent binary instead of go build (one ARCH only)
#   PIFLEET_HUB_BIN     use this prebuilt pifleet binary instead of go build (one ARCH only)
#   GO_LDFLAGS          -ldflags (default: strip, stamp the version into both CLIs)
#   NFPM                the nfpm command (default: go run nfpm@v2.45.0, go.mod untouched)
set -eu

die() { echo "build-deb: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: scripts/build-deb.sh ARCH... (armhf, arm64, amd64)"
cd "$(dirname "$0")/.."

: "${PACKAGES:=agent hub}"
: "${OUT_DIR:=dist}"
: "${NFPM:=go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.0}"
if [ -z "${VERSION:-}" ]; then
	if tag=$(git describe --tags --exact-match 2>/dev/null); then
		VERSION=${tag#v}
	else
		VERSION="0.0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S).$(git rev-parse --short=10 HEAD)"
	fi
fi
case "$VERSION" in [0-9]*) ;; *) die "VERSION $VERSION must start with a digit (Debian policy)" ;; esac
: "${GO_LDFLAGS:=-s -w -X github.com/pifleet/pifleet/agent/internal/cli.Version=$VERSION -X github.com/pifleet/pifleet/hub/internal/cli.Version=$VERSION}"
if [ $# -gt 1 ] && { [ -n "${PIFLEET_AGENT_BIN:-}" ] || [ -n "${PIFLEET_HUB_BIN:-}" ]; }; then
	die "PIFLEET_AGENT_BIN / PIFLEET_HUB_BIN hold one architecture's binary: build one ARCH at a time"
fi
mkdir -p "$OUT_DIR"
BUILD_BASE=${BUILD_DIR:-build/deb}

# render TEMPLATE OUT: replace @KEY@ by $T_KEY (a line holding only @KEY@
# may become several lines).
render() {
	awk '{
		line = $0
		while (match(line, /@[A-Z_]+@/)) {
			key = substr(line, RSTART + 1, RLENGTH - 2)
			line = substr(line, 1, RSTART - 1) ENVIRON["T_" key] substr(line, RSTART + RLENGTH)
		}
		print line
	}' "$1" >"$2"
	chmod 0755 "$2"
}

# expand_env FILE: print FILE with ${VAR} replaced by the environment's
# VAR (nfpm expands only some fields itself, not scripts: paths).
expand_env() {
	awk '{
		line = $0
		while (match(line, /\$\{[A-Z_]+\}/)) {
			key = substr(line, RSTART + 2, RLENGTH - 3)
			line = substr(line, 1, RSTART - 1) ENVIRON[key] substr(line, RSTART + RLENGTH)
		}
		print line
	}' "$1"
}

scripts_for() { # scripts_for agent|hub DIR
	mkdir -p "$2"
	case "$1" in
	agent)
		T_PACKAGE=pifleet-agent T_UNIT=pifleet-agent.service T_STATEDIR=pifleet-agent
		T_TMPFILES=pifleet-agent.conf
		T_EXTRA_GROUPS='	add_to_group docker'
		T_START_CHECK=''
		;;
	hub)
		T_PACKAGE=pifleet T_UNIT=pifleet-hub.service T_STATEDIR=pifleet-hub
		T_TMPFILES=''
		T_EXTRA_GROUPS=''
		# shellcheck disable=SC2016,SC2089 # shell code for the postinst, not run here
		T_START_CHECK='	if [ ! -e /etc/pifleet/credentials.json ]; then
		echo "pifleet: $UNIT is enabled but not started: install the files from scripts/provision in /etc/pifleet first (credentials.json, broker.pem, broker.key, ca.pem, hub-signing.key), then: systemctl start $UNIT" >&2
		return 0
	fi'
		;;
	esac
	# shellcheck disable=SC2090
	export T_PACKAGE T_UNIT T_STATEDIR T_TMPFILES T_EXTRA_GROUPS T_START_CHECK
	for s in postinst prerm postrm; do
		render "scripts/deb/$s.in" "$2/$s"
	done
}

for ARCH in "$@"; do
	case "$ARCH" in
	armhf) GOARCH=arm GOARM=7 ;;
	arm64) GOARCH=arm64 GOARM= ;;
	amd64) GOARCH=amd64 GOARM= ;;
	*) die "unknown ARCH $ARCH: want armhf, arm64 or amd64" ;;
	esac
	BUILD_DIR="$BUILD_BASE/$ARCH"
	mkdir -p "$BUILD_DIR"
	export ARCH VERSION BUILD_DIR
	for pkg in $PACKAGES; do
		case "$pkg" in
		agent) bin=pifleet-agent main=./agent prebuilt=${PIFLEET_AGENT_BIN:-} ;;
		hub) bin=pifleet main=./hub prebuilt=${PIFLEET_HUB_BIN:-} ;;
		*) die "unknown package $pkg: want agent or hub" ;;
		esac
		if [ -n "$prebuilt" ]; then
			install -m 0755 "$prebuilt" "$BUILD_DIR/$bin"
		else
			echo "build-deb: go build $main for $ARCH" >&2
			CGO_ENABLED=0 GOOS=linux GOARCH=$GOARCH GOARM=$GOARM \
				go build -trimpath -ldflags "$GO_LDFLAGS" -o "$BUILD_DIR/$bin" "$main"
		fi
		scripts_for "$pkg" "$BUILD_DIR/$pkg"
		# shellcheck disable=SC2086 # NFPM is a command line
		expand_env "scripts/nfpm-$pkg.yaml" >"$BUILD_DIR/nfpm-$pkg.yaml"
		$NFPM package --config "$BUILD_DIR/nfpm-$pkg.yaml" --packager deb --target "$OUT_DIR/" >&2
	done
done
ls -1 "$OUT_DIR"/*.deb
