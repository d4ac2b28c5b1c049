#!/bin/sh
# build-test-images.sh builds the local Docker images pifleet's runner tests
# use, without any registry:
#   pifleet-test/busybox:latest  busybox-static rootfs (seconds)
#   pifleet-test/awscli:deb      Debian's awscli, by build-tool-image.sh as on a Pi
#                                (minutes; built once)
# An image that is already present is kept; pass -f to rebuild.
# Needs: docker, busybox-static, mmdebstrap (Debian packages), network access
# to the Debian mirror for the awscli image.
set -eu

force=0
[ "${1:-}" = "-f" ] && force=1

# Concurrent test packages may call this at once: build one at a time.
if command -v flock >/dev/null; then
	exec 9>"${TMPDIR:-/tmp}/pifleet-test-images.lock"
	flock 9
fi

have() { [ "$force" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }

BUSYBOX_IMAGE=${BUSYBOX_IMAGE:-pifleet-test/busybox:latest}
AWSCLI_IMAGE=${AWSCLI_IMAGE:-pifleet-test/awscli:deb}
# Tests use the main archive alone (a Pi's build adds the updates and
# security suites): one mirror, one index that must be in sync.
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

if have "$BUSYBOX_IMAGE"; then
	echo "$BUSYBOX_IMAGE: present"
else
	bb=$(command -v busybox) || { echo "busybox missing: apt-get install busybox-static" >&2; exit 1; }
	root=$(mktemp -d)
	trap 'rm -rf "$root"' EXIT
	mkdir -p "$root/bin" "$root/tmp" "$root/etc"
	# Docker copies the image's /tmp mode onto the tmpfs the runner mounts
	# there, so it must be world-writable and sticky like a distro's.
	chmod 755 "$root"
	chmod 1777 "$root/tmp"
	cp "$bb" "$root/bin/busybox"
	for app in $("$bb" --list); do
		[ "$app" = busybox ] || ln -sf busybox "$root/bin/$app"
	done
	echo 'nobody:x:65534:65534:nobody:/tmp:/bin/false' >"$root/etc/passwd"
	tar -C "$root" -c . | docker import -c 'ENTRYPOINT []' - "$BUSYBOX_IMAGE" >/dev/null
	rm -rf "$root"
	trap - EXIT
	echo "$BUSYBOX_IMAGE: built"
fi

if have "$AWSCLI_IMAGE"; then
	echo "$AWSCLI_IMAGE: present"
else
	# The same builder as the Pis' image (one implementation): the tests run
	# what a Pi runs.
	"$(dirname "$0")/build-tool-image.sh" -t "$AWSCLI_IMAGE" -s "$SUITE" -m "$MIRROR"
	echo "$AWSCLI_IMAGE: built"
fi
