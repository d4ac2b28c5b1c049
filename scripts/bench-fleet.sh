#!/usr/bin/env bash
# Fleet-scale benchmark: N simulated Pis (pifleet sim, several processes,
# 16 loopback source addresses) against the real hub, on its embedded
# broker (nats-server) and on the hub + Mosquitto. Prints one Markdown table row per run:
#   time until the API is exact, hub (and broker) RSS and CPU at the
#   heartbeat, GET /api/devices latency, time until exact after half the
#   Pis are killed (SIGKILL: their wills), time until 99 % of the live ones
#   are back online after a hub restart (heard live again, not only claimed
#   by a retained state: /api/summary's online − unconfirmed).
#
#   scripts/bench-fleet.sh                 # 10,000 Pis: embedded, mosquitto
#   PIS=19000 MODES=embedded scripts/bench-fleet.sh   # (MODES=nats: the same, its old name)
#   MODES=cluster scripts/bench-fleet.sh   # three hubs, one NATS cluster, a node killed
#   PROFILE=/tmp/prof MODES=embedded scripts/bench-fleet.sh  # + the hub's CPU and heap profiles
#
# Engine-neutral: it talks to the hub's HTTP API and counts processes only,
# so the same script measures whatever engine the hub embeds.
# Needs: curl, jq, mosquitto (for MODES=mosquitto). Loopback only. Each run
# is bounded (WAIT seconds per step) and cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."

PIS=${PIS:-10000}
PROCS=${PROCS:-2}              # sim processes (≤ ~19,000 sockets each: 20,000 open files per process)
RATE=${RATE:-250}              # connects/s per sim process
HEARTBEAT=${HEARTBEAT:-30s}
KEEPALIVE=${KEEPALIVE:-10s}
MODES=${MODES:-embedded mosquitto}
WAIT=${WAIT:-180}              # seconds each step may take before it counts as failed
WINDOW=${WINDOW:-60}           # seconds of steady state to measure CPU over
SETTLE=${SETTLE:-30}           # seconds after the view is exact before the CPU window (one heartbeat: the connect wave's last statuses and the stores' flushes are over)
MQTT_PORT=${MQTT_PORT:-21883}
HTTP_PORT=${HTTP_PORT:-28080}
PROFILE=${PROFILE:-}            # a directory: save the hub's CPU profile over the CPU window there (<mode>-cpu.pprof) and its heap before and after it (allocations in the window: go tool pprof -sample_index=alloc_space -base <mode>-heap0.pprof <mode>-heap.pprof)
DEBUG_PORT=${DEBUG_PORT:-26060}
CLUSTER_PORT=${CLUSTER_PORT:-26222}  # MODES=cluster: route listeners (3 in a row, as HTTP_PORT and MQTT_PORT)

for c in curl jq; do command -v $c >/dev/null || { echo "bench-fleet: needs $c" >&2; exit 1; }; done
make --no-print-directory build >/dev/null
BIN=$PWD/bin/pifleet
WORK=$(mktemp -d /tmp/pifleet-bench-fleet.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

api() { curl -sf --max-time 10 "http://127.0.0.1:$HTTP_PORT$1"; }
online() { api /api/summary | jq -r '.online // 0' 2>/dev/null || echo 0; }
# confirmed: online and heard live since the hub started (not only claimed
# by a retained state replayed at the restart)
confirmed() { api /api/summary | jq -r '(.online // 0) - (.unconfirmed // 0)' 2>/dev/null || echo 0; }
total() { api /api/summary | jq -r '.total // 0' 2>/dev/null || echo 0; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
# cpu_ticks PID: utime+stime in clock ticks
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_mib() { awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$1/status"; }

# wait_for DESC CMD: poll CMD (a shell condition) until true or WAIT s.
wait_for() {
  local desc=$1 cond=$2 t0
  t0=$(now)
  for _ in $(seq 1 $((WAIT * 5))); do
    if eval "$cond"; then since "$t0"; return 0; fi
    sleep 0.2
  done
  echo "bench-fleet: $desc: not within ${WAIT}s (online $(online) of total $(total))" >&2
  echo "fail"
}

start_hub() { # args: extra hub flags
  "$BIN" hub --state-dir "$WORK/state" --http-listen "127.0.0.1:$HTTP_PORT" --log-level warn "$@" >>"$WORK/hub.log" 2>&1 &
  HUB=$!
  PIDS+=("$HUB")
  for _ in $(seq 1 100); do api /healthz >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "bench-fleet: hub did not start:" >&2; tail -5 "$WORK/hub.log" >&2; exit 1
}

start_sims() { # args: broker URL
  SIMS=()
  for i in $(seq 0 $((PROCS - 1))); do
    local per=$((16 / PROCS)) lo hi
    lo=$((2 + i * per)); hi=$((lo + per - 1))
    "$BIN" sim --agents "$PIS" --shard "$i/$PROCS" --rate "$RATE" --heartbeat "$HEARTBEAT" --keepalive "$KEEPALIVE" \
      --broker "$1" --source-addrs "127.0.0.$lo-127.0.0.$hi" --log-level error >"$WORK/sim$i.log" 2>&1 &
    SIMS+=($!)
    PIDS+=($!)
  done
}

run() { # mode
  local mode=$1 broker extra=() brokerpid="" t0 exact devlat cpu0 cpu1 bcpu0 bcpu1 rss brss killed restart listed
  [ "$mode" = nats ] && mode=embedded # the embedded engine is nats-server: "nats" is its old mode name
  rm -rf "$WORK/state"; : >"$WORK/hub.log"
  if [ "$mode" = mosquitto ]; then
    command -v mosquitto >/dev/null || { echo "bench-fleet: needs mosquitto (make deps)" >&2; exit 1; }
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MQTT_PORT" >"$WORK/mosquitto.conf"
    mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
    brokerpid=$!; PIDS+=("$brokerpid"); sleep 0.5
    broker="mqtt://127.0.0.1:$MQTT_PORT"; extra=(--broker "$broker")
  else # the hub's embedded nats-server
    broker="mqtt://127.0.0.1:$MQTT_PORT"; extra=(--mqtt-listen "127.0.0.1:$MQTT_PORT")
  fi
  if [ -n "$PROFILE" ]; then mkdir -p "$PROFILE"; extra+=(--debug-listen "127.0.0.1:$DEBUG_PORT"); fi
  start_hub "${extra[@]}"
  t0=$(now)
  start_sims "$broker"
  exact=$(wait_for "all $PIS online" "[ \"\$(online)\" = $PIS ] && [ \"\$(total)\" = $PIS ]")
  # steady state: CPU over WINDOW seconds at the heartbeat, SETTLE s on
  sleep "$SETTLE"
  cpu0=$(cpu_ticks "$HUB"); [ -n "$brokerpid" ] && bcpu0=$(cpu_ticks "$brokerpid")
  if [ -n "$PROFILE" ]; then
    curl -sf -o "$PROFILE/$mode-heap0.pprof" "http://127.0.0.1:$DEBUG_PORT/debug/pprof/heap"
    curl -sf --max-time $((WINDOW + 30)) -o "$PROFILE/$mode-cpu.pprof" "http://127.0.0.1:$DEBUG_PORT/debug/pprof/profile?seconds=$WINDOW"
  else
    sleep "$WINDOW"
  fi
  cpu1=$(cpu_ticks "$HUB"); [ -n "$brokerpid" ] && bcpu1=$(cpu_ticks "$brokerpid")
  if [ -n "$PROFILE" ]; then curl -sf -o "$PROFILE/$mode-heap.pprof" "http://127.0.0.1:$DEBUG_PORT/debug/pprof/heap"; fi
  local hz; hz=$(getconf CLK_TCK)
  local cpu bcpu="–"; cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v w="$WINDOW" -v hz="$hz" 'BEGIN{printf "%.1f", (b-a)/hz/w*100}')
  [ -n "$brokerpid" ] && bcpu=$(awk -v a="$bcpu0" -v b="$bcpu1" -v w="$WINDOW" -v hz="$hz" 'BEGIN{printf "%.1f", (b-a)/hz/w*100}')
  rss=$(rss_mib "$HUB"); brss="–"; [ -n "$brokerpid" ] && brss=$(rss_mib "$brokerpid")
  # API latency: median of 5 full GET /api/devices
  devlat=$(for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$HTTP_PORT/api/devices"; done | sort -n | sed -n 3p | awk '{printf "%.0f", $1*1000}')
  # kill the last sim process (its share of the Pis): wills
  local last=${SIMS[$((PROCS - 1))]} alive
  alive=$(( PIS * (PROCS - 1) / PROCS ))
  kill -9 "$last"
  killed=$(wait_for "$((PIS - alive)) lost" "[ \"\$(online)\" = $alive ]")
  # hub restart (SIGTERM, as systemctl restart)
  kill -TERM "$HUB"; wait "$HUB" 2>/dev/null || true
  start_hub "${extra[@]}"
  restart=$(wait_for "99% of $alive back" "[ \"\$(confirmed)\" -ge $((alive * 99 / 100)) ]")
  listed=$(wait_for "all $PIS listed, $alive online" "[ \"\$(total)\" = $PIS ] && [ \"\$(confirmed)\" = $alive ] && [ \"\$(online)\" = $alive ]")
  local rss_after; rss_after=$(rss_mib "$HUB")
  printf '| %s | %s | %s s | %s MiB | %s %% | %s MiB | %s %% | %s ms | %s s | %s s; exact %s s (RSS then %s MiB) |\n' \
    "$mode" "$PIS" "$exact" "$rss" "$cpu" "$brss" "$bcpu" "$devlat" "$killed" "$restart" "$listed" "$rss_after"
  for p in "${SIMS[@]}" "$HUB" $brokerpid; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if grep -q "are being dropped" "$WORK/mosquitto.log" 2>/dev/null; then
    echo "bench-fleet: Mosquitto dropped messages:" >&2; grep "are being dropped" "$WORK/mosquitto.log" | head -5 >&2
  fi
}

# run_cluster: three hubs whose embedded nats-servers form one cluster
# (hub --cluster-listen/--cluster-routes), the Pis spread over the three
# nodes by their --broker lists (shard i starts at node i), then kill -9
# of hub 1 with its node: how long until both other hubs show every Pi of
# node 1 in a new session (epochs are connect times in ms).
run_cluster() {
  local i routes="" hubs=() t0 exact cpu0=0 cpu1=0 rss_sum=0 rss_max=0 r devlat kill_ms moved
  for i in 0 1 2; do routes+="${routes:+,}nats://127.0.0.1:$((CLUSTER_PORT + i))"; done
  for i in 0 1 2; do
    rm -rf "$WORK/state$i"
    "$BIN" hub --id "hub$((i + 1))" --state-dir "$WORK/state$i" --http-listen "127.0.0.1:$((HTTP_PORT + i))" \
      --mqtt-listen "127.0.0.1:$((MQTT_PORT + i))" --cluster-listen "127.0.0.1:$((CLUSTER_PORT + i))" --cluster-routes "$routes" \
      --log-level warn >>"$WORK/hub$i.log" 2>&1 &
    hubs+=($!); PIDS+=($!)
  done
  for i in 0 1 2; do
    HTTP_PORT=$((HTTP_PORT + i)) wait_for "hub $((i + 1)) up" "api /healthz >/dev/null 2>&1" >/dev/null
  done
  t0=$(now)
  SIMS=()
  for i in 0 1 2; do
    local list="" k lo=$((2 + i * 5)) hi=$((6 + i * 5))
    for k in 0 1 2; do list+="${list:+,}mqtt://127.0.0.1:$((MQTT_PORT + (i + k) % 3))"; done
    "$BIN" sim --agents "$PIS" --shard "$i/3" --rate "$RATE" --heartbeat "$HEARTBEAT" --keepalive "$KEEPALIVE" \
      --broker "$list" --source-addrs "127.0.0.$lo-127.0.0.$hi" --log-level error >"$WORK/csim$i.log" 2>&1 &
    SIMS+=($!); PIDS+=($!)
  done
  for i in 0 1 2; do
    exact=$(HTTP_PORT=$((HTTP_PORT + i)) wait_for "all $PIS online on hub $((i + 1))" "[ \"\$(online)\" = $PIS ] && [ \"\$(total)\" = $PIS ]")
  done
  exact=$(since "$t0")
  sleep "$SETTLE"
  for i in 0 1 2; do cpu0=$((cpu0 + $(cpu_ticks "${hubs[$i]}"))); done
  sleep "$WINDOW"
  for i in 0 1 2; do
    cpu1=$((cpu1 + $(cpu_ticks "${hubs[$i]}")))
    r=$(rss_mib "${hubs[$i]}"); rss_sum=$((rss_sum + r)); [ "$r" -gt "$rss_max" ] && rss_max=$r
  done
  local cpu; cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v w="$WINDOW" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", (b-a)/hz/w*100}')
  devlat=$(for _ in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$((HTTP_PORT + 1))/api/devices"; done | sort -n | sed -n 3p | awk '{printf "%.0f", $1*1000}')
  kill_ms=$(date +%s%3N)
  kill -9 "${hubs[0]}"
  local want=$(( PIS / 3 ))
  t0=$(now)
  for i in 1 2; do
    HTTP_PORT=$((HTTP_PORT + i)) wait_for "the Pis of node 1 in new sessions on hub $((i + 1))" \
      "[ \"\$(api /api/devices | jq '[.[] | select(.online and .epoch > $kill_ms)] | length')\" -ge $want ]" >/dev/null
  done
  moved=$(since "$t0")
  printf '| cluster: 3 hubs, 3 nodes | %s | %s s | %s MiB (largest hub %s MiB) | %s %% (three hubs) | – | – | %s ms | node 1 killed: %s Pis in new sessions on both other hubs %s s later | – |\n' \
    "$PIS" "$exact" "$rss_sum" "$rss_max" "$cpu" "$devlat" "$want" "$moved"
  for p in "${SIMS[@]}" "${hubs[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

echo "| engine | Pis | exact after start | hub RSS | hub CPU | broker RSS | broker CPU | GET /api/devices | exact after killing 1/$PROCS | hub restart: 99 % back; view exact |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for m in $MODES; do
  if [ "$m" = cluster ]; then run_cluster; else run "$m"; fi
done
