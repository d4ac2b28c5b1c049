#!/usr/bin/env bash
# bench-agent.sh measures pifleet-agent against the goals of issue 4 and
# prints a markdown table:
#   - stripped ARMv7 (and arm64) binary size
#   - idle RSS and CPU at the default heartbeat, over WINDOW seconds, of a
#     real agent connected to a real hub on loopback (/proc/PID/stat, status)
#   - bytes the agent writes to disk, per hour (/proc/PID/io write_bytes)
#   - address change → hub latency (p50/p99/max) from the netns benchmark
#     (needs root and iproute2; skipped with a note otherwise)
#   - the cost of one health sample (BenchmarkCollect on the Pi 3 fixtures)
#
# Usage: scripts/bench-agent.sh            (WINDOW=60 LAT_N=30 by default)
#        WINDOW=20 LAT_N=10 scripts/bench-agent.sh   (quicker)
# Only loopback and a network namespace the benchmark makes are used.
set -euo pipefail

WINDOW=${WINDOW:-60}
LAT_N=${LAT_N:-30}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

say() { echo "bench-agent: $*" >&2; }

# free_port picks a loopback TCP port nobody listens on.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "no free port" >&2
	exit 1
}

# http_get HOST PORT PATH prints the body (HTTP/1.0 over bash's /dev/tcp).
http_get() {
	exec 3<>"/dev/tcp/$1/$2" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "$1" >&3
	sed '1,/^\r$/d' <&3
	exec 3<&-
}

size_mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# --- binaries ---------------------------------------------------------------
say "building (ARMv7, arm64 stripped; native hub and agent)"
CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 go build -trimpath -ldflags='-s -w' -o "$tmp/agent-armv7" ./agent
CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags='-s -w' -o "$tmp/agent-arm64" ./agent
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp/pifleet-agent" ./agent
go build -o "$tmp/pifleet" ./hub
armv7_size=$(size_mib "$tmp/agent-armv7")
arm64_size=$(size_mib "$tmp/agent-arm64")

# --- idle agent against a real hub ----------------------------------------
mqtt=$(free_port)
http=$(free_port)
"$tmp/pifleet" hub --mqtt-listen "127.0.0.1:$mqtt" --http-listen "127.0.0.1:$http" --state-dir "$tmp/hub" --log-level warn >"$tmp/hub.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do http_get 127.0.0.1 "$http" /api/devices >/dev/null 2>&1 && break; sleep 0.1; done

# Default heartbeat: no --heartbeat flag.
"$tmp/pifleet-agent" --broker "mqtt://127.0.0.1:$mqtt" --id bench-agent --log-level warn >"$tmp/agent.log" 2>&1 &
agent=$!
pids+=("$agent")
online=""
for _ in $(seq 150); do
	if http_get 127.0.0.1 "$http" /api/devices 2>/dev/null | tr -d ' \n' | grep -q '"id":"bench-agent","online":true'; then
		online=yes
		break
	fi
	sleep 0.2
done
if [ -z "$online" ]; then
	say "the agent did not come online; logs:"
	cat "$tmp/hub.log" "$tmp/agent.log" >&2
	exit 1
fi
sleep 5 # let start-up settle (first publishes, GC)

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$agent/stat"; }
wbytes() { awk '/^write_bytes:/ { print $2 }' "/proc/$agent/io"; }
rss_kb() { awk -v k="${1:-VmRSS}:" '$1 == k { print $2 }' "/proc/$agent/status"; }

say "measuring the idle agent for ${WINDOW}s"
hz=$(getconf CLK_TCK)
t0=$(ticks)
w0=$(wbytes)
s0=$(date +%s.%N)
max_rss=0
end=$((SECONDS + WINDOW))
while [ $SECONDS -lt "$end" ]; do
	r=$(rss_kb)
	[ "$r" -gt "$max_rss" ] && max_rss=$r
	sleep 1
done
t1=$(ticks)
w1=$(wbytes)
s1=$(date +%s.%N)
rss=$(rss_kb)
[ "$rss" -gt "$max_rss" ] && max_rss=$rss
# RssFile: the binary's pages mapped in (text, rodata: about its size, as
# the kernel maps by default 64 KB around each page touched); RssAnon: heap
# and stacks.
rss_anon=$(rss_kb RssAnon)
rss_file=$(rss_kb RssFile)
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s0="$s0" -v s1="$s1" 'BEGIN { printf "%.3f %%", 100 * (b - a) / hz / (s1 - s0) }')
wph=$(awk -v a="$w0" -v b="$w1" -v s0="$s0" -v s1="$s1" 'BEGIN { printf "%d B/h", (b - a) * 3600 / (s1 - s0) }')
rss_txt=$(awk -v r="$rss" -v m="$max_rss" -v a="$rss_anon" -v f="$rss_file" 'BEGIN { printf "%.1f MiB (max %.1f): binary pages %.1f, heap and stacks %.1f", r / 1024, m / 1024, f / 1024, a / 1024 }')
kill "$agent" 2>/dev/null || true

# --- address change → hub latency (netns) ----------------------------------
lat="not measured (needs root and ip: run as root)"
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null; then
	say "measuring address change → hub latency (${LAT_N} changes in a network namespace)"
	out=$(go test -run '^$' -bench BenchmarkNetnsAddrToHub -benchtime "${LAT_N}x" ./agent/internal/netwatch/e2e/ 2>&1) || {
		echo "$out" >&2
		exit 1
	}
	lat=$(echo "$out" | awk '/^BenchmarkNetnsAddrToHub/ {
		for (i = 1; i <= NF; i++) { if ($(i+1) == "p50-ms") p50 = $i; if ($(i+1) == "p99-ms") p99 = $i; if ($(i+1) == "max-ms") mx = $i }
		printf "p50 %.0f ms, p99 %.0f ms, max %.0f ms (n=%s)", p50, p99, mx, $2 }')
fi

# --- one health sample ------------------------------------------------------
collect=$(go test -run '^$' -bench 'BenchmarkCollect$' -benchtime 2000x ./agent/internal/health/ 2>&1 |
	awk '/^BenchmarkCollect/ { printf "%.0f µs, %s allocs", $3 / 1000, $7 }')

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cat <<EOF

### pifleet-agent measurements ($(uname -m), ${cpu_model:-unknown CPU}, $(go env GOVERSION), window ${WINDOW}s)

| Measure | Goal | Measured |
|---|---|---|
| Stripped binary, ARMv7 (\`GOARCH=arm GOARM=7 -ldflags='-s -w'\`) | ≤ 10 MB | ${armv7_size} (arm64: ${arm64_size}) |
| Idle RSS (native $(uname -m) build, default heartbeat) | ≤ 10 MiB | ${rss_txt} |
| CPU at the default heartbeat | ≤ 0.2 % of a core | ${cpu} |
| Disk writes by the agent | none in steady state | ${wph} |
| Address change → hub \`/api/devices\` | p99 ≤ 1 s | ${lat} |
| One health sample (\`BenchmarkCollect\`, Pi 3 fixtures) | – | ${collect} |
EOF
