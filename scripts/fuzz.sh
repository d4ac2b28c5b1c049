#!/usr/bin/env bash
# Runs each wire decoder fuzzer for FUZZTIME (make fuzz; make test runs it
# with 5s each). Go's fuzzing engine occasionally fails without finding
# anything ("context deadline exceeded" as -fuzztime ends, or a worker it
# lost track of: golang/go#51484, #56238). A real finding always writes a
# reproducer under internal/wire/testdata/fuzz/<Fuzzer>/, so: a failure with a
# new reproducer fails at once; one without is retried once.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}
corpus=internal/wire/testdata/fuzz

snapshot() { find "$corpus" -type f 2>/dev/null | sort; }

for f in "$@"; do
  for attempt in 1 2; do
    before=$(snapshot)
    if "$GO" test ./internal/wire -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME"; then
      break
    fi
    found=$(comm -13 <(echo "$before") <(snapshot))
    if [ -n "$found" ]; then
      echo "fuzz: $f found a failing input; reproduce with: $GO test ./internal/wire -run '$f/'" >&2
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
