#!/usr/bin/env bash
# Runs pifleet's main job on this machine: the hub with its embedded MQTT
# broker and HTTP API, and an agent reporting this machine. Ctrl-C stops
# both. Ports: PIFLEET_MQTT (default 127.0.0.1:1883), PIFLEET_HTTP (default
# 127.0.0.1:8080). Called by `make run` after `make build`.
set -euo pipefail
cd "$(dirname "$0")/.."
MQTT=${PIFLEET_MQTT:-127.0.0.1:1883}
STATE=${PIFLEET_STATE:-.run}   # hub signing key, agent command store, broker data
mkdir -p "$STATE/agent"
HTTP=${PIFLEET_HTTP:-127.0.0.1:8080}

for bin in bin/pifleet bin/pifleet-agent; do
  [ -x "$bin" ] || { echo "run-local: $bin is missing; run 'make build' first" >&2; exit 1; }
done

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

bin/pifleet hub --mqtt-listen "$MQTT" --http-listen "$HTTP" --state-dir "$STATE" --mqtt-data "$STATE/broker" &
pids+=($!)
# Wait for the API before starting the agent, so its first report lands.
for _ in $(seq 1 50); do
  if bin/pifleet devices --hub "http://$HTTP" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "run-local: the hub did not start (see above)" >&2; exit 1; fi
  sleep 0.1
done
# The agent trusts the hub's signing key (the hub creates it on first start).
for _ in $(seq 1 50); do [ -f "$STATE/hub.key.pub" ] && break; sleep 0.1; done
bin/pifleet-agent --broker "mqtt://$MQTT" --heartbeat 30s --data-dir "$STATE/agent" \
  --hub-key "$STATE/hub.key.pub" --console-issue "$STATE/pifleet.issue" &
pids+=($!)

cat <<MSG

  pifleet is running: hub + embedded MQTT broker (mqtt://$MQTT) + an agent for this machine.
    fleet view (JSON):  http://$HTTP/api/devices
    table:              bin/pifleet devices --hub http://$HTTP
    ask like in Slack:  bin/pifleet ask --hub http://$HTTP fleet
                        bin/pifleet ask --hub http://$HTTP where $(hostname)
    cloud command:      bin/pifleet ask --hub http://$HTTP aws $(hostname) --version
                        (needs the image: docker build -f agent/Dockerfile.awscli -t pifleet/awscli:latest agent/)
  State (signing key, broker data, command store) is kept in $STATE/. Ctrl-C stops both.

MSG
wait -n "${pids[@]}"
