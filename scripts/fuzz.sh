#!/usr/bin/env bash
# Runs each fuzzer for FUZZTIME (make fuzz; make test runs it with 5s
# each). A fuzzer is named NAME (a fuzzer of internal/wire) or DIR:NAME (a
# fuzzer of the package in DIR, e.g. internal/shellwords:FuzzSplit). Go's
# fuzzing engine occasionally fails without finding anything ("context
# deadline exceeded" as -fuzztime ends, or a worker it lost track of:
# golang/go#51484, #56238). A real finding always writes a reproducer under
# DIR/testdata/fuzz/<Fuzzer>/, so: a failure with a new reproducer fails at
# once; one without is retried once.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}

snapshot() { find "$1" -type f 2>/dev/null | sort; }

for arg in "$@"; do
  dir=internal/wire f=$arg
  if [[ $arg == *:* ]]; then
    dir=${arg%%:*} f=${arg#*:}
  fi
  corpus=$dir/testdata/fuzz
  for attempt in 1 2; do
    before=$(snapshot "$corpus")
    if "$GO" test "./$dir" -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME"; then
      break
    fi
    found=$(comm -13 <(echo "$before") <(snapshot "$corpus"))
    if [ -n "$found" ]; then
      echo "fuzz: $f found a failing input; reproduce with: $GO test ./$dir -run '$f/'" >&2
      echo "$found" >&2
      exit 1
    fi
    if [ "$attempt" = 2 ]; then
      echo "fuzz: $f failed twice without a reproducer; see the output above" >&2
      exit 1
    fi
    echo "fuzz: $f: the fuzzing engine failed without a finding; retrying once" >&2
  done
done
