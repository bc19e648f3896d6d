// quant_spec.hpp — the quantization kernel family (shared/DESIGN.md §1, steps 1–4).
//
// One spec is one kernel. Tile geometry (block and warp sizes of the attention kernel that reads
// the result) and scale granularity are launch parameters, not spec fields: they change integer
// index arithmetic only, so one cubin serves every attention tile config.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "generator/types.hpp"
#include "generator/unit.hpp"

namespace sagejit {

enum class QuantOp {
  quantize_q,  // Q -> int8/int4/int8x2 with per-group scales (sm_scale·log2e folded in), optional smoothing
  quantize_k,  // K -> int8/int4/int8x2, optionally smoothed by the channel mean
  channel_stats,  // K's channel mean and V's channel max|v|/448 over tokens, per (batch, head)
  quantize_v,  // V -> e4m3, transposed and token-permuted (sm_89+)
  quantize_kv,  // K (and V with with_v) as quantize_k / quantize_v, with the statistics computed in the
                // same kernel (quant_kv.cuh): K and V read once
  quantize_kv_cluster,  // quantize_kv for up to kv_cluster_max_chunks(D) chunks of keys (16),
                        // one cluster per (b, h) and tensor that holds its chunks in registers
                        // (quant_kv_cluster.cuh; sm_90a)
};

std::string_view name(QuantOp op);
QuantOp parse_quant_op(std::string_view text, std::string_view argument = "op");

struct QuantSpec {
  Arch arch{9, 0, true};
  QuantOp op = QuantOp::quantize_q;
  DType input = DType::f16;
  int head_dim = 128;
  QuantType output = QuantType::int8;  // quantize_q/k: int8, int4 or int8x2; quantize_v: fp8_e4m3; stats: ignored
  bool smooth = false;                 // quantize_q/k/kv only
  bool with_v = false;                 // quantize_kv only: V to e4m3 as well (sm_89+)

  // "quant.quantize_k.f16.d128.int8.smooth.sm_90a"; stats ops omit the output and smoothing;
  // quantize_kv with V ends in ".v_fp8_e4m3" before the arch.
  std::string canonical_name() const;
  std::uint64_t hash() const;  // fnv1a64 of canonical_name()
  // Throws InvalidArgument naming the field and the allowed values.
  void validate() const;
  GeneratedUnit generate() const;  // validates first
};

// Whether quantize_kv_cluster exists for `arch` (thread-block clusters: sm_90a).
bool has_kv_cluster(const Arch& arch);

// The quantization kernels one call may need, in this order: stats, Q, K, then V when FP8 P·V, then
// quantize_kv when there are statistics to compute (K smoothing or FP8 V), and then, where
// has_kv_cluster, quantize_kv_cluster. A call runs one of the last two or the stats, K and V kernels
// (runtime/quantize.cpp).
std::vector<QuantSpec> quant_specs_for_call(const Arch& arch, DType input, int head_dim, QuantType qk_type,
                                            bool smooth_q, bool smooth_k, bool quantize_v);

// Every quantization kernel sagejit ships for `arch` (what CI compiles and `sagejit compile --all`
// builds).
std::vector<QuantSpec> shipped_quant_specs(const Arch& arch);

}  // namespace sagejit
