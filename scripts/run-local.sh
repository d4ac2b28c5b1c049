#!/usr/bin/env bash
# Runs pifleet's main job on this machine: the hub with its embedded MQTT
# broker and HTTP API, and an agent reporting this machine. Ctrl-C stops
# both. Ports: PIFLEET_MQTT (default 127.0.0.1:1883, or the next free one),
# PIFLEET_HTTP (default 127.0.0.1:8080, or the next free one). Called by
# `make run` after `make build`.
set -euo pipefail
# Paths given relative to where make run was called from.
if [ -n "${PIFLEET_BIN:-}" ]; then PIFLEET_BIN=$(cd "$PIFLEET_BIN" && pwd); fi
if [ -n "${PIFLEET_STATE:-}" ]; then mkdir -p "$PIFLEET_STATE" && PIFLEET_STATE=$(cd "$PIFLEET_STATE" && pwd); fi
cd "$(dirname "$0")/.."
STATE=${PIFLEET_STATE:-.run}   # hub signing key, agent command store, broker data
mkdir -p "$STATE/agent"

# in_use HOST:PORT: something already accepts connections there.
in_use() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "${1%:*}" "${1##*:}" 2>/dev/null; }
# free_from PORT: the first free loopback port from PORT on (20 tries).
# A default port that is taken (Debian's mosquitto package starts a system
# broker on 1883) moves up, and says so; a port you set is used as given.
free_from() {
  local p=$1
  for _ in $(seq 1 20); do
    in_use "127.0.0.1:$p" || { echo "127.0.0.1:$p"; return; }
    p=$((p + 1))
  done
  echo "127.0.0.1:$1"
}
if [ -n "${PIFLEET_MQTT:-}" ]; then MQTT=$PIFLEET_MQTT; else
  MQTT=$(free_from 1883)
  [ "$MQTT" = 127.0.0.1:1883 ] || echo "run-local: 127.0.0.1:1883 is taken (a system mosquitto?); the embedded broker uses $MQTT (set PIFLEET_MQTT to choose)" >&2
fi
if [ -n "${PIFLEET_HTTP:-}" ]; then HTTP=$PIFLEET_HTTP; else
  HTTP=$(free_from 8080)
  [ "$HTTP" = 127.0.0.1:8080 ] || echo "run-local: 127.0.0.1:8080 is taken; the HTTP API uses $HTTP (set PIFLEET_HTTP to choose)" >&2
fi

BIN=${PIFLEET_BIN:-bin}   # where make build put the binaries
for bin in "$BIN/pifleet" "$BIN/pifleet-agent"; do
  [ -x "$bin" ] || { echo "run-local: $bin is missing; run 'make build' first" >&2; exit 1; }
done

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$BIN/pifleet" hub --mqtt-listen "$MQTT" --http-listen "$HTTP" --state-dir "$STATE" --mqtt-data "$STATE/broker" &
pids+=($!)
# Wait for the API before starting the agent, so its first report lands.
for _ in $(seq 1 50); do
  if "$BIN/pifleet" devices --hub "http://$HTTP" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "run-local: the hub did not start (see above)" >&2; exit 1; fi
  sleep 0.1
done
# The agent trusts the hub's signing key (the hub creates it on first start).
# Its console banner is for a Pi's serial getty, so it is off here (it would
# reload this machine's gettys); PIFLEET_CONSOLE_ISSUE=PATH turns it on.
for _ in $(seq 1 50); do [ -f "$STATE/hub.key.pub" ] && break; sleep 0.1; done
"$BIN/pifleet-agent" --broker "mqtt://$MQTT" --heartbeat 30s --data-dir "$STATE/agent" \
  --hub-key "$STATE/hub.key.pub" --console-issue "${PIFLEET_CONSOLE_ISSUE:-off}" &
pids+=($!)

cat <<MSG

  pifleet is running: hub + embedded MQTT broker (mqtt://$MQTT) + an agent for this machine.
    fleet view (JSON):  http://$HTTP/api/devices
    table:              $BIN/pifleet devices --hub http://$HTTP
    ask like in Slack:  $BIN/pifleet ask --hub http://$HTTP fleet
                        $BIN/pifleet ask --hub http://$HTTP where $(hostname)
    cloud command:      $BIN/pifleet ask --hub http://$HTTP aws $(hostname) --version
                        (needs the image: make tool-image — Debian packages, no registry)
  State (signing key, broker data, command store) is kept in $STATE/. Ctrl-C stops both.

MSG
wait -n "${pids[@]}"
