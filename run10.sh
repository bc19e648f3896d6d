#!/usr/bin/env bash
set -uo pipefail
out=${OUT:-gpu-out}; mkdir -p $out/r
export SAGEJIT_CACHE_DIR=$(mktemp -d)/c
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $out/r/gpu.txt
./build/sagejit_gpu_tests > $out/r/gpu_tests.log 2>&1; grep -E "^\[doctest\] (test cases|assertions)" $out/r/gpu_tests.log; grep -E "ERROR" -A4 $out/r/gpu_tests.log | head -30
OUT=$out/r bash scripts/sanitize.sh 2>&1 | tail -8
export PYTHONPATH=$PWD/python SAGEJIT_LIBRARY=$PWD/build/libsagejit.so PYTHONUNBUFFERED=1
python3 bench/attn_bench.py --d256 --seq 1024 --seq 4096 --seq 16384 --budget 150 --json $out/r/bench_d256.json 2>/dev/null | grep -E "^\| 256|^attention"
python3 bench/attn_bench.py --d256 --pv f16 --seq 1024 --seq 4096 --seq 16384 --budget 150 --json $out/r/bench_d256_f16.json 2>/dev/null | grep -E "^\| 256|^attention"
tar czf $out/r.tgz -C $out r && rm -rf $out/r
