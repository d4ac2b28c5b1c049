#!/usr/bin/env bash
# wait-dpkg-lock.sh [SECONDS] — wait, bounded, until no process holds the
# dpkg/apt locks, saying who holds them. A fresh machine often runs its
# own apt (unattended-upgrades, cloud-init) for minutes after boot; make
# test (through install-test-deps.sh) then waits with a message instead of
# failing at once or hanging silently.
#   SECONDS            how long to wait at most (default $DPKG_LOCK_TIMEOUT or 600)
#   DPKG_LOCKS         the lock files to watch (tests point it elsewhere)
# Exit status: 0 when the locks are free, 1 after SECONDS with a lock held.
# A holder is found in /proc/locks (dpkg and apt take POSIX fcntl locks),
# matched by the lock file's device and inode.
set -euo pipefail

timeout=${1:-${DPKG_LOCK_TIMEOUT:-600}}
read -r -a locks <<<"${DPKG_LOCKS:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}"

# holder prints "PID (COMMAND)" for the first held lock, or nothing.
holder() {
	local f dev ino maj min id
	for f in "${locks[@]}"; do
		[ -e "$f" ] || continue
		read -r dev ino < <(stat -L -c '%d %i' "$f")
		# st_dev as the kernel prints it in /proc/locks (MAJOR:MINOR in hex).
		maj=$(((dev >> 8) & 0xfff | ((dev >> 32) & ~0xfff)))
		min=$(((dev & 0xff) | ((dev >> 12) & ~0xff)))
		id=$(printf '%02x:%02x:%s' "$maj" "$min" "$ino")
		# "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; OFD locks show pid -1.
		# shellcheck disable=SC2034
		while read -r _ _ _ _ pid where _; do
			[ "$where" = "$id" ] || continue
			if [ "$pid" -gt 0 ] 2>/dev/null; then
				echo "$pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo gone))"
			else
				echo "another process"
			fi
			return 0
		done </proc/locks
	done
}

who=$(holder)
[ -n "$who" ] || exit 0
echo "waiting up to ${timeout} s for the dpkg lock, held by $who (a fresh machine's own apt run, usually)" >&2
start=$SECONDS
while [ -n "$who" ]; do
	if [ $((SECONDS - start)) -ge "$timeout" ]; then
		echo "the dpkg lock is still held by $who after ${timeout} s: let it finish (or stop it), then run this again" >&2
		exit 1
	fi
	sleep 1
	who=$(holder)
done
echo "the dpkg lock is free after $((SECONDS - start)) s" >&2
