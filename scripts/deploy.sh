#!/bin/sh
# deploy.sh [options] HOST... — install the pifleet .deb on each Pi over ssh,
# in parallel, and report per host: "HOST ok: …" or "HOST failed: reason".
#
# For each host: detect its architecture (dpkg --print-architecture), pick
# dist/PACKAGE_VERSION_ARCH.deb (newest), skip hosts that already have that
# version and an active service (idempotent), otherwise copy it over the ssh
# connection itself (no scp/sftp needed), dpkg -i, systemctl restart, and
# check the service is active. Non-root logins use sudo -n (never prompts).
#
# Options:
#   --dry-run        connect and plan (arch, installed version), change nothing
#   --package NAME   pifleet-agent (default) or pifleet (the hub)
#   --dist DIR       where the .debs are (default: dist)
#   --force          reinstall and restart even when the version is installed
# Environment:
#   SSH              the ssh command (default: ssh); e.g. "ssh -F my_config"
# Exit status: 0 when every host is ok, 1 when any failed, 2 on bad usage.
# Output never contains file contents or credentials: only host names,
# versions, architectures, states and the last line of a failing step.
set -u

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

DRY_RUN=0 FORCE=0 PACKAGE=pifleet-agent DIST=dist
while [ $# -gt 0 ]; do
	case "$1" in
	--dry-run) DRY_RUN=1 ;;
	--force) FORCE=1 ;;
	--package) [ $# -ge 2 ] || usage; PACKAGE=$2; shift ;;
	--package=*) PACKAGE=${1#*=} ;;
	--dist) [ $# -ge 2 ] || usage; DIST=$2; shift ;;
	--dist=*) DIST=${1#*=} ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) echo "deploy: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
	shift
done
[ $# -ge 1 ] || { echo "deploy: no hosts (make deploy HOSTS=\"pi@a pi@b\")" >&2; usage; }
case "$PACKAGE" in
pifleet-agent) UNIT=pifleet-agent.service ;;
pifleet) UNIT=pifleet-hub.service ;;
*) echo "deploy: unknown package $PACKAGE: want pifleet-agent or pifleet" >&2; exit 2 ;;
esac
: "${SSH:=ssh}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pifleet-deploy.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT INT TERM

# rssh HOST CMD: run CMD on HOST without prompts; stdin passes through.
rssh() {
	host=$1
	shift
	# One connection per host, shared by the steps (ControlMaster): a Pi on
	# Wi-Fi pays for the key exchange once.
	# shellcheck disable=SC2086 # SSH is a command line
	$SSH -o BatchMode=yes -o ConnectTimeout=10 -o ControlMaster=auto \
		-o "ControlPath=$WORK/%C" -o ControlPersist=120 -- "$host" "$@"
}

# close_all: stop the shared connections.
close_all() {
	for host in "$@"; do
		# shellcheck disable=SC2086
		$SSH -o "ControlPath=$WORK/%C" -O exit -- "$host" >/dev/null 2>&1 || true
	done
}

# lastline FILE: the last non-empty line, for a one-line reason.
lastline() { grep -v '^[[:space:]]*$' "$1" | tail -n 1; }

# newest_deb ARCH: the newest package file for ARCH in DIST.
newest_deb() {
	# shellcheck disable=SC2012 # file names are ours: NAME_VERSION_ARCH.deb
	ls -t "$DIST/${PACKAGE}_"*"_$1.deb" 2>/dev/null | head -n 1
}

# deploy_one HOST: prints exactly one line "ok: …" or "failed: …" to stdout.
deploy_one() {
	h=$1
	err="$WORK/$2.err"
	say() { echo "$h: $*" >&2; }

	# One round trip: architecture, installed version (empty: none), unit state.
	probe=$(rssh "$h" "dpkg --print-architecture && { dpkg-query -W -f='\${Status} \${Version}' $PACKAGE 2>/dev/null | sed -n 's/^install ok installed //p'; echo; systemctl is-active $UNIT 2>/dev/null; true; }" 2>"$err") || {
		echo "failed: ssh/dpkg --print-architecture: $(lastline "$err")"
		return
	}
	arch=$(echo "$probe" | sed -n 1p)
	have=$(echo "$probe" | sed -n 2p)
	state=$(echo "$probe" | sed -n 3p)
	case "$arch" in
	armhf | arm64 | amd64) ;;
	*) echo "failed: architecture '$arch' is not built (armhf, arm64, amd64)"; return ;;
	esac
	deb=$(newest_deb "$arch")
	if [ -z "$deb" ]; then
		echo "failed: no ${PACKAGE}_*_$arch.deb in $DIST (run: make deb)"
		return
	fi
	want=$(basename "$deb" .deb)
	want=${want#"${PACKAGE}_"}
	want=${want%"_$arch"}
	if [ "$have" = "$want" ] && [ "$FORCE" = 0 ] && [ "$state" = active ]; then
		echo "ok: $PACKAGE $want ($arch) already installed, $UNIT $state"
		return
	fi
	if [ "$DRY_RUN" = 1 ]; then
		echo "ok: dry run: would install $(basename "$deb") (installed: ${have:-none}, $UNIT ${state:-unknown}) and restart"
		return
	fi

	say "copying $(basename "$deb")"
	# shellcheck disable=SC2016 # these run on the Pi
	sudo='if [ "$(id -u)" = 0 ]; then s=; else s="sudo -n"; fi'
	# shellcheck disable=SC2016
	remote=$(rssh "$h" 'umask 077; f=$(mktemp /tmp/pifleet-deploy.XXXXXX) && cat >"$f" && echo "$f"' <"$deb" 2>"$err") || {
		echo "failed: copy: $(lastline "$err")"
		return
	}
	case "$remote" in /tmp/pifleet-deploy.*) ;; *) echo "failed: copy: unexpected remote file name"; return ;; esac
	say "installing $want"
	rssh "$h" "$sudo; \$s dpkg --force-confold --force-confdef -i $remote; rc=\$?; rm -f $remote; exit \$rc" >"$err" 2>&1 || {
		echo "failed: dpkg -i: $(lastline "$err")"
		return
	}
	say "restarting $UNIT"
	rssh "$h" "$sudo; \$s systemctl restart $UNIT" >"$err" 2>&1 || {
		echo "failed: systemctl restart $UNIT: $(lastline "$err")"
		return
	}
	state=$(rssh "$h" "systemctl is-active $UNIT" 2>/dev/null)
	case "$state" in
	active | activating) echo "ok: installed $PACKAGE $want ($arch), $UNIT $state" ;;
	*) echo "failed: $UNIT is ${state:-unknown} after restart (see: journalctl -u $UNIT)" ;;
	esac
}

i=0
for h in "$@"; do
	i=$((i + 1))
	deploy_one "$h" "$i" >"$WORK/$i.result" &
done
wait
close_all "$@"

status=0
i=0
for h in "$@"; do
	i=$((i + 1))
	r=$(cat "$WORK/$i.result")
	[ -n "$r" ] || r="failed: no result (deploy crashed)"
	echo "$h $r"
	case "$r" in ok:*) ;; *) status=1 ;; esac
done
exit $status
