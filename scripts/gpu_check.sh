#!/usr/bin/env bash
# Runs every GPU test and benchmark on a GPU machine, against a build in ./build, and prints a
# short table last. Logs and JSON go to $OUT (or ./gpu-out); copy the numbers into bench/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
export SAGEJIT_CACHE_DIR=$(mktemp -d)/sagejit-cache
status=0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv | tee "$out/gpu.txt"
./build/sagejit info | tee -a "$out/gpu.txt"
./build/sagejit_gpu_tests 2>&1 | tee "$out/gpu_tests.log" || status=1
./build/sagejit selftest 2>&1 | tee "$out/selftest.log" || status=1
./build/quant_bench --json "$out/quant_bench.json" 2>&1 | tee "$out/quant_bench.txt" || status=1
export PYTHONPATH=$PWD/python SAGEJIT_LIBRARY=$PWD/build/libsagejit.so PYTHONUNBUFFERED=1
if [ "${SKIP_ATTN_BENCH:-0}" != 1 ]; then
  python3 bench/attn_accuracy.py --json "$out/attn_accuracy.json" 2>&1 | tee "$out/attn_accuracy.txt" || status=1
  python3 bench/attn_bench.py --json "$out/attn_bench.json" 2>&1 | tee "$out/attn_bench.txt" || status=1
  # The precise mode (two-term INT8 QKᵀ, f16 P·V), INT8 + f16 P·V, and head dim 96, at three lengths.
  python3 bench/attn_bench.py --qk int8x2 --pv f16 --seq 1024 --seq 4096 --seq 16384 \
    --json "$out/attn_bench_precise.json" 2>&1 | tee "$out/attn_bench_precise.txt" || status=1
  python3 bench/attn_bench.py --pv f16 --seq 1024 --seq 4096 --seq 16384 \
    --json "$out/attn_bench_f16.json" 2>&1 | tee "$out/attn_bench_f16.txt" || status=1
  python3 bench/attn_bench.py --d96 --seq 1024 --seq 4096 --seq 16384 \
    --json "$out/attn_bench_d96.json" 2>&1 | tee "$out/attn_bench_d96.txt" || status=1
fi
# How much of the tensor core's rate survives other issued work, and what the single-warpgroup
# kernel's block loop reaches without data movement (sm_90a, needs nvcc; see bench/overlap_probe.cu,
# bench/pingpong_probe.cu, bench/results/2026-11-26-wgmma-issue-cost-h100.md and
# bench/results/2026-11-27-kv-ring-and-p-from-smem-h100.md §3).
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [ -x "$nvcc_bin" ] && ./build/sagejit info 2>/dev/null | grep -q "(sm 9.0,"; then
  for probe in overlap_probe pingpong_probe; do
    "$nvcc_bin" -std=c++20 -gencode arch=compute_90a,code=sm_90a -O3 -I templates -cudart static \
      -o "$out/$probe" "bench/$probe.cu" && "$out/$probe" | tee "$out/$probe.txt" || status=1
  done
fi
echo "=== summary ==="
grep -E "^\[doctest\] (test cases|assertions)" "$out/gpu_tests.log"
tail -n 1 "$out/selftest.log"
sed -n '/^quantization on/,$p' "$out/quant_bench.txt"
grep -E "test cases|ERROR|FAILED" "$out/gpu_tests.log" | head -20
for probe in overlap_probe pingpong_probe; do [ -f "$out/$probe.txt" ] && cat "$out/$probe.txt"; done
exit $status
