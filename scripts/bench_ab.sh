#!/usr/bin/env bash
# A/B of builds with `sagejit bench` (kernel only and end to end, as the runtime chooses the kernel):
# for each round and each shape in SHAPES (';'-separated, sagejit tune's syntax), every build in
# BUILDS (directories holding a sagejit binary and its libsagejit.so) in turn, one line per timing.
# A build may carry bench arguments after a ':', comma-separated, to compare kernels of one build:
# BUILDS="build:--family=wgmma,--tile=t128x64w8s3p build:--family=wgmma,--tile=t128x128w8s2p".
# Each build has its own kernel cache. Output: $OUT/bench_ab.txt (or ./gpu-out). Where nvidia-smi
# runs, it samples the clock and power every 50 ms through the run, and scripts/phase_clocks.py
# prints each timing's clock, power and TOPS per GHz last (the kernels are power-bound: a change can
# move the clock instead of the work per clock).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
read -ra builds <<< "${BUILDS:-build-base build}"
IFS=';' read -ra shapes <<< "${SHAPES:-b=4 hq=32 sq=4096 d=128;b=4 hq=32 sq=1024 d=128;b=4 hq=64 sq=4096 d=64}"
cache=$(mktemp -d)
: > "$out/phases.txt"
sampler=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,power.draw,clocks.sm,clocks_throttle_reasons.active,temperature.gpu \
    --format=csv,noheader -lms 50 > "$out/smi.csv" &
  sampler=$!
fi
for round in $(seq "${ROUNDS:-2}"); do
  for shape in "${shapes[@]}"; do
    for entry in "${builds[@]}"; do
      b=${entry%%:*} args=""
      [[ "$entry" == *:* ]] && args=${entry#*:}
      t0=$(date +%s.%N)
      # shellcheck disable=SC2086  # the extra arguments split on purpose
      line=$(SAGEJIT_CACHE_DIR="$cache/$b" LD_LIBRARY_PATH="$PWD/$b" timeout 120 "./$b/sagejit" bench \
        --shape "$shape" --repeat "${REPEAT:-3}" ${args//,/ } 2>&1 | grep -E "kernel|end to end|error" | tr -s ' ' | paste -sd'|')
      echo "r${round}_${shape// /_}_$entry $t0 $(date +%s.%N) $line" >> "$out/phases.txt"
      echo "r$round | $shape | $entry | $line"
    done
  done
done | tee "$out/bench_ab.txt"
if [ -n "$sampler" ]; then
  kill "$sampler"
  python3 scripts/phase_clocks.py "$out"
fi
