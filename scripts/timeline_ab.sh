#!/usr/bin/env bash
# A/B of builds on the per-kernel timeline (bench/attn_timeline.py, torch profiler): for each S in
# SEQS and each round, every build in BUILDS (directories holding a libsagejit.so) in turn, printing
# the quantization and attention kernels' durations and the call's GPU span. Extra arguments go to
# attn_timeline.py (e.g. --head-dim 64 --causal). Output: $OUT/timeline_ab.txt (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
export PYTHONPATH=$PWD/python
read -ra builds <<< "${BUILDS:-build-base build}"
for s in ${SEQS:-1024 4096}; do
  for round in 1 2; do
    for b in "${builds[@]}"; do
      echo "== $b S=$s round $round $*"
      SAGEJIT_LIBRARY=$PWD/$b/libsagejit.so timeout 120 python3 bench/attn_timeline.py --seq "$s" "$@" 2>&1 |
        grep -E "quantize|attention_|span" | sed -E 's/^ *[0-9]+ void sagejit::kernels::([a-z_0-9]+)[^ ]* .* ([0-9.]+) +([0-9.]+)$/  \1 \2 \3/'
    done
  done
done | tee "$out/timeline_ab.txt"
