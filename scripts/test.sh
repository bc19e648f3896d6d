#!/usr/bin/env bash
# Sets up, builds and runs both suites: CPU tests always run; GPU tests run on a GPU and are
# reported as skipped ("skipped: no GPU") without one. Ends with one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
bash scripts/build.sh || exit 1
export SAGEJIT_CACHE_DIR=${SAGEJIT_CACHE_DIR:-$(mktemp -d)/sagejit-cache}
log=$(mktemp)
status=0
./build/sagejit_tests 2>&1 | tee -a "$log" || status=1
./build/sagejit_gpu_tests 2>&1 | tee -a "$log" || status=1
# doctest prints "[doctest] test cases: N | P passed | F failed | S skipped" per suite.
awk -F'|' '/^\[doctest\] test cases:/ {
  for (i = 2; i <= NF; i++) { split($i, w, " "); n[w[2]] += w[1] }
} END { printf "tests: %d passed, %d failed, %d skipped\n", n["passed"], n["failed"], n["skipped"] }' "$log"
rm -f "$log"
exit $status
