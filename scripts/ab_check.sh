#!/usr/bin/env bash
# End-to-end A/B of builds on the GPU: `sagejit bench` over a list of shapes, each build in turn,
# in two rounds. BUILDS names build directories holding sagejit (and its libsagejit.so; default:
# "build-base build", where build-base holds another commit's two files), each optionally with
# environment settings for its runs ("build:NAME=VALUE,NAME=VALUE"); SHAPES is a ';'-separated
# list of bench shapes. Optionally runs the GPU tests named by TESTS first against
# ./build. Prints a table of end-to-end medians (ms) and, with KERNEL=1, kernel-only medians too.
# Logs go to $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
export SAGEJIT_CACHE_DIR=$(mktemp -d)/sagejit-cache
status=0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$out/gpu.txt"
if [ -n "${TESTS:-}" ]; then
  timeout 400 ./build/sagejit_gpu_tests -tc="$TESTS" > "$out/ab_tests.log" 2>&1 || status=1
  grep -E "ERROR|FAILED|test cases|assertions" "$out/ab_tests.log" | head -30
fi
read -ra builds <<< "${BUILDS:-build-base build}"
shapes=${SHAPES:-"b=4 hq=32 sq=1024 d=128;b=4 hq=32 sq=4096 d=128;b=4 hq=64 sq=1024 d=64"}
IFS=';' read -ra list <<< "$shapes"
# "kernel-ms end-to-end-ms" of one bench run.
times() {
  local dir=${1%%:*} envs=""
  [[ "$1" == *:* ]] && envs=${1#*:}
  env ${envs//,/ } timeout 120 "$dir"/sagejit bench --shape "$2" --repeat "${REPEAT:-3}" 2>&1 |
    awk '/kernel only/ {k=$3} /end to end/ {e=$4} END {print k, e}'
}
{
  printf "%-40s %-5s" shape round
  for b in "${builds[@]}"; do printf " %19s" "$b"; done
  printf "\n"
} | tee "$out/ab_table.txt"
for shape in "${list[@]}"; do
  for round in 1 2; do
    line=$(printf "%-40s %-5s" "$shape" "$round")
    for b in "${builds[@]}"; do line+=$(printf " %9s/%9s" $(times "$b" "$shape")); done
    echo "$line" | tee -a "$out/ab_table.txt"
  done
done
echo "=== summary (kernel only / end to end, ms) ==="
[ -f "$out/ab_tests.log" ] && grep -E "test cases|assertions" "$out/ab_tests.log"
cat "$out/ab_table.txt"
exit $status
