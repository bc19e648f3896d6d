#!/usr/bin/env bash
# Runs the wgmma kernel's small-shape GPU test (FP8, f16 and two-term forms) under compute-sanitizer's
# memcheck, racecheck and synccheck, then the varlen test under memcheck, the precise mode's small
# shapes under memcheck and racecheck, quantize_kv (the graph-captured quantization call), the fused-Q
# attention call and the shared-ring form under all three (an H100 or H200 with the CUDA tools on
# PATH, a build in ./build). Prints one line per tool and exits non-zero if any tool reports an
# error. Logs go to $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
export SAGEJIT_CACHE_DIR=${SAGEJIT_CACHE_DIR:-$(mktemp -d)/sagejit-cache}
status=0
# sanitize LABEL FILTER TOOL...: the GPU tests matching FILTER under each tool; logs
# sanitize_[LABEL_]TOOL.log. The kernels are compiled outside the sanitizer first (NVRTC under the
# sanitizer is slow but harmless).
sanitize() {
  local label=$1 filter=$2
  shift 2
  ./build/sagejit_gpu_tests -tc="$filter" >/dev/null 2>&1
  for tool in "$@"; do
    local log="$out/sanitize_${label:+${label}_}$tool.log"
    timeout 300 compute-sanitizer --tool "$tool" --error-exitcode 9 \
      ./build/sagejit_gpu_tests -tc="$filter" >"$log" 2>&1
    local rc=$?
    echo "compute-sanitizer $tool${label:+ ($label)}: rc $rc, $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$log" | tail -1)"
    [ "$rc" -eq 0 ] || status=1
  done
}
sanitize "" "attn_wgmma: small shapes*" memcheck racecheck synccheck
# The varlen path (packed batches through the runtime; on sm_90a the D 64/128 cases run the wgmma
# kernel with per-sequence tiles).
sanitize varlen "attention_varlen equals*" memcheck
# Varlen with f16 P·V: both consumers zero the next sequence's rows of a last V block, then meet on a
# named barrier before P·V reads them.
sanitize varlen_tail "a non-finite V*" memcheck racecheck
# The precise mode (two-term int8 Q/K), small shapes on every head dim: on sm_90a D 64/128 run the
# wgmma kernel, 96/256 the portable one.
sanitize precise "precise mode*" memcheck racecheck
# K, V and their statistics in one kernel (B2 H4 S300 D64, FP8 V, K smoothing; on sm_90a both
# quantize_kv_cluster and quantize_kv's items, elsewhere quantize_kv).
sanitize quant_kv "a warm quantization call*" memcheck racecheck synccheck
# The single-warpgroup kernel quantizing Q itself (fused_q), launched programmatically after
# quantize_kv: FP8 and f16 P·V, LSE, causal, varlen, bf16.
sanitize fused_q "fused_q: small shapes*" memcheck racecheck synccheck
# Its shared-ring form (three warpgroups on one K/V ring; mbarrier releases and refills in turns),
# without a mask, causal at both alignments, varlen.
sanitize shared "attn_wgmma shared-ring form: small shapes*" memcheck racecheck synccheck
exit $status
