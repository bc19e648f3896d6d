#!/usr/bin/env bash
# Runs the wgmma kernel's small-shape GPU test under compute-sanitizer's memcheck, racecheck and
# synccheck, then the varlen test under memcheck and the precise mode's small shapes under memcheck
# and racecheck (an H100 with the CUDA tools on PATH, a build in ./build). Prints one line per tool
# and exits non-zero if any tool reports an error. Logs go to $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
export SAGEJIT_CACHE_DIR=${SAGEJIT_CACHE_DIR:-$(mktemp -d)/sagejit-cache}
# Compile outside the sanitizer first (NVRTC under the sanitizer is slow but harmless).
./build/sagejit_gpu_tests -tc="attn_wgmma: small shapes*" >/dev/null 2>&1
status=0
for tool in memcheck racecheck synccheck; do
  log="$out/sanitize_$tool.log"
  timeout 300 compute-sanitizer --tool "$tool" --error-exitcode 9 \
    ./build/sagejit_gpu_tests -tc="attn_wgmma: small shapes*" >"$log" 2>&1
  rc=$?
  echo "compute-sanitizer $tool: rc $rc, $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$log" | tail -1)"
  [ "$rc" -eq 0 ] || status=1
done
# The varlen path (packed batches through the runtime; on sm_90a the FP8 cases run the wgmma
# kernel with per-sequence tiles), under memcheck.
./build/sagejit_gpu_tests -tc="attention_varlen equals*" >/dev/null 2>&1
log="$out/sanitize_varlen_memcheck.log"
timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 \
  ./build/sagejit_gpu_tests -tc="attention_varlen equals*" >"$log" 2>&1
rc=$?
echo "compute-sanitizer memcheck (varlen): rc $rc, $(grep -E "ERROR SUMMARY" "$log" | tail -1)"
[ "$rc" -eq 0 ] || status=1
# The precise mode (two-term int8 Q/K on the portable kernel), small shapes, under memcheck and racecheck.
./build/sagejit_gpu_tests -tc="precise mode*" >/dev/null 2>&1
for tool in memcheck racecheck; do
  log="$out/sanitize_precise_$tool.log"
  timeout 300 compute-sanitizer --tool "$tool" --error-exitcode 9 \
    ./build/sagejit_gpu_tests -tc="precise mode*" >"$log" 2>&1
  rc=$?
  echo "compute-sanitizer $tool (precise mode): rc $rc, $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$log" | tail -1)"
  [ "$rc" -eq 0 ] || status=1
done
exit $status
