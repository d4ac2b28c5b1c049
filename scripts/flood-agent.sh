#!/usr/bin/env bash
# flood-agent.sh measures a real pifleet-agent under a flood of forged
# commands (issue 14, item 1): RATE forged commands a second (10,000) for
# DURATION seconds (60) on its command topic, through the hub's embedded
# broker, with a real signed command sent during the flood. It runs the e2e test
# TestDockerForgedCommandFlood (needs Docker and the busybox test image,
# which the test builds if missing) and prints its figures: the rate
# reached, the agent's peak RSS (VmHWM, a build without -race), its CPU,
# the intake's counters (received, dropped, rejected, …), the real
# command's latency, whether the MQTT session held, and the log lines the
# flood caused. The test fails if the agent went over 32 MiB, lost its
# session, did not run the real command or logged more than a few lines.
#
# Usage: scripts/flood-agent.sh                 (RATE=10000 DURATION=60)
#        RATE=30000 DURATION=20 scripts/flood-agent.sh
#        AGENT=/path/to/pifleet-agent scripts/flood-agent.sh   (measure another build; not judged)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
RATE=${RATE:-10000}
DURATION=${DURATION:-60}
out=$(PIFLEET_FLOOD_RATE=$RATE PIFLEET_FLOOD_SECONDS=$DURATION PIFLEET_FLOOD_AGENT=${AGENT:-} \
	go test -count=1 -timeout $((DURATION + 300))s -run '^TestDockerForgedCommandFlood$' -v ./hub/internal/e2e/ 2>&1)
code=$?
grep -E '^\s+flood_test\.go:[0-9]+: ' <<<"$out" | sed -E 's/^\s+flood_test\.go:[0-9]+: //'
if [ "$code" -ne 0 ]; then
	echo "$out" >&2
	echo "flood-agent: FAILED" >&2
fi
exit "$code"
