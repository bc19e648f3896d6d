// quantize_plan.cpp — the rules a quantization call must satisfy, and where its outputs live.
#include "runtime/quantize_plan.hpp"

#include <cmath>
#include <limits>
#include <mutex>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "runtime/error.hpp"
#include "templates/quant_params.cuh"

namespace sagejit {
namespace {

constexpr std::size_t kAlign = 256;

void check_tile(int block, int warp, const char* block_name, const char* warp_name) {
  if (block <= 0 || block % 16 != 0 || block > kernels::kMaxBlockTokens) {
    throw InvalidArgument(block_name, fmt::format("must be a positive multiple of 16, at most {} (got {})",
                                                  kernels::kMaxBlockTokens, block));
  }
  if (warp <= 0 || warp % 16 != 0 || block % warp != 0) {
    throw InvalidArgument(warp_name, fmt::format("must be a positive multiple of 16 that divides {} = {} (got {})",
                                                 block_name, block, warp));
  }
}

void check_fits_int32(std::size_t elements, const char* what) {
  if (elements > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw InvalidArgument(what, fmt::format("its quantized copy would hold {} elements, more than the kernels' 32-bit "
                                            "indexing allows (2^31 - 1)", elements));
  }
}

// int4 on sm_90a / sm_120 runs on ptxas's emulation of mma.sync s4 (Arch::int4_emulated): allowed,
// because that is how its correctness is checked on an H100, but never what a user wants for speed.
// Said once per process, not per call: a warm call must stay cheap and the log readable.
void warn_int4_emulated(const Arch& arch) {
  static std::once_flag once;
  std::call_once(once, [&] {
    spdlog::warn("sagejit: int4 Q/K on {} is emulated (no INT4 tensor cores; ptxas turns each s4 MMA into two "
                 "INT8 ones), so it is no faster than int8 and meant for correctness checks only: use int8 here",
                 arch.name());
  });
}

}  // namespace

QuantizePlan plan_quantize(const TensorRef& q, const TensorRef& k, const TensorRef& v, const QuantizeOptions& o,
                           const Arch& arch, const VarlenBatch* varlen) {
  if (varlen != nullptr) validate_varlen(*varlen, q, k, v);  // packed views: batch 1, offsets in range
  validate_tensor(q, "q");
  validate_tensor(k, "k");
  validate_tensor(v, "v");
  if (k.dtype != q.dtype || v.dtype != q.dtype) {
    throw InvalidArgument("k/v", fmt::format("must have q's dtype {} (got k {}, v {})", name(q.dtype), name(k.dtype),
                                             name(v.dtype)));
  }
  validate_head_dim(static_cast<int>(q.dim), "q.dim");
  if (k.dim != q.dim || v.dim != q.dim) {
    throw InvalidArgument("k/v", fmt::format("head dim must equal q's {} (got k {}, v {})", q.dim, k.dim, v.dim));
  }
  if (k.batch != q.batch || v.batch != q.batch) {
    throw InvalidArgument("k/v", fmt::format("batch must equal q's {} (got k {}, v {})", q.batch, k.batch, v.batch));
  }
  if (v.heads != k.heads || v.seq != k.seq) {
    throw InvalidArgument("v", fmt::format("must have k's heads and length [{}, {}] (got [{}, {}])", k.heads, k.seq,
                                           v.heads, v.seq));
  }
  if (q.heads % k.heads != 0) {
    throw InvalidArgument("k", fmt::format("query heads ({}) must be a multiple of key/value heads ({})", q.heads, k.heads));
  }
  check_tile(o.block_q, o.warp_q, "block_q", "warp_q");
  check_tile(o.block_k, o.warp_k, "block_k", "warp_k");
  if (!is_qk_type(o.qk_type)) {
    throw InvalidArgument("qk_type", fmt::format("must be int8, int4 or int8x2 (got {})", name(o.qk_type)));
  }
  if (o.qk_type == QuantType::int4 && !arch.runs_int4()) {
    throw InvalidArgument("qk_type", fmt::format("int4 needs mma.sync s4 (sm_80 or newer); this GPU is {}", arch.name()));
  }
  if (o.quantize_v && !arch.has_fp8_mma()) {
    throw InvalidArgument("quantize_v", fmt::format("FP8 V needs sm_89 or newer; this GPU is {}", arch.name()));
  }
  if (o.smooth_q && !o.quantize_q) {
    throw InvalidArgument("smooth_q", "needs quantize_q: Q smoothing is part of Q's quantization pass");
  }
  if (!(o.sm_scale >= 0) || !std::isfinite(o.sm_scale)) {
    throw InvalidArgument("sm_scale", fmt::format("must be finite and >= 0, 0 meaning 1/sqrt(head_dim) (got {})", o.sm_scale));
  }

  if (o.qk_type == QuantType::int4 && arch.int4_emulated()) warn_int4_emulated(arch);

  QuantizePlan p;
  p.dtype = q.dtype;
  p.batch = static_cast<int>(q.batch);
  p.heads_q = static_cast<int>(q.heads);
  p.heads_kv = static_cast<int>(k.heads);
  p.seq_q = static_cast<int>(q.seq);
  p.seq_kv = static_cast<int>(k.seq);
  if (varlen != nullptr) {
    // Padded per-batch slots sized for the longest sequences (quant_layout.cuh, "Varlen").
    p.batch = static_cast<int>(varlen->batch);
    p.seq_q = static_cast<int>(varlen->max_seqlen_q);
    p.seq_kv = static_cast<int>(varlen->max_seqlen_k);
    p.cu_seqlens_q = varlen->cu_seqlens_q_device;
    p.cu_seqlens_k = varlen->cu_seqlens_k_device;
  }
  p.head_dim = static_cast<int>(q.dim);
  p.seq_q_pad = layout::round_up(p.seq_q, o.block_q);
  p.seq_kv_pad = layout::round_up(p.seq_kv, o.block_k);
  p.q_blocks = p.seq_q_pad / o.block_q;
  p.k_blocks = p.seq_kv_pad / o.block_k;
  p.q_groups = layout::q_groups(o.granularity, o.block_q, o.warp_q);
  p.k_groups = layout::k_groups(o.granularity, o.block_k, o.warp_k);
  const float sm_scale = o.sm_scale > 0 ? o.sm_scale : 1.0f / std::sqrt(static_cast<float>(p.head_dim));
  p.sm_scale = sm_scale;
  p.scale_multiplier = sm_scale * layout::kLog2e;
  p.stats = o.smooth_k || o.quantize_v;

  const std::size_t bits = qk_storage_bits(o.qk_type);
  const std::size_t bh_q = std::size_t(p.batch) * p.heads_q, bh_kv = std::size_t(p.batch) * p.heads_kv;
  check_fits_int32(bh_q * p.seq_q_pad * p.head_dim, "q");
  check_fits_int32(bh_kv * p.seq_kv_pad * p.head_dim, "k");
  std::size_t offset = 0;
  auto take = [&](std::size_t bytes) {
    const std::size_t at = offset;
    offset += (bytes + kAlign - 1) / kAlign * kAlign;
    return at;
  };
  if (o.quantize_q) {
    p.q = take(bh_q * p.seq_q_pad * p.head_dim * bits / 8);
    p.q_scale = take(bh_q * p.q_blocks * p.q_groups * sizeof(float));
  }
  if (o.smooth_q) p.q_mean = take(bh_q * p.q_blocks * p.head_dim * sizeof(float));
  p.k = take(bh_kv * p.seq_kv_pad * p.head_dim * bits / 8);
  p.k_scale = take(bh_kv * p.k_blocks * p.k_groups * sizeof(float));
  if (o.smooth_k) p.k_mean = take(bh_kv * p.head_dim * sizeof(float));
  if (o.quantize_v) {
    p.v = take(bh_kv * p.head_dim * p.seq_kv_pad);
    p.v_scale = take(bh_kv * p.head_dim * sizeof(float));
  }
  // Without K smoothing the correction is identically 0: not produced (QuantizeOptions); nor
  // without Q's pass, which computes it.
  if (o.lse_correction && o.smooth_k && o.quantize_q) p.lse_correction = take(bh_q * p.seq_q * sizeof(float));
  if (p.stats) {
    const auto partial = static_cast<std::size_t>(kernels::stats_partial_floats(p.batch, p.heads_kv, p.seq_kv, p.head_dim));
    if (o.smooth_k) p.partial_sum = take(partial * sizeof(float));
    if (o.quantize_v) p.partial_max = take(partial * sizeof(float));
    // A ticket counter per (b, h), quantize_kv's work ticket and statistics words (quant_params.cuh,
    // counters_region_bytes).
    p.counters_bytes = static_cast<std::size_t>(kernels::counters_region_bytes(p.batch, p.heads_kv, p.head_dim));
    p.counters = take(p.counters_bytes);
  }
  p.workspace_bytes = offset;
  return p;
}

QuantizedQKV quantized_views(const QuantizePlan& p, void* workspace) {
  auto at = [&](std::size_t offset) -> char* {
    return offset == QuantizePlan::kAbsent ? nullptr : static_cast<char*>(workspace) + offset;
  };
  auto floats = [&](std::size_t offset) { return reinterpret_cast<float*>(at(offset)); };
  QuantizedQKV out;
  out.q = at(p.q), out.q_scale = floats(p.q_scale), out.q_mean = floats(p.q_mean);
  out.k = at(p.k), out.k_scale = floats(p.k_scale), out.k_mean = floats(p.k_mean);
  out.v = at(p.v), out.v_scale = floats(p.v_scale);
  // With no keys there is no k̄ (the statistics kernel writes 0): no correction either.
  out.lse_correction = p.seq_kv > 0 ? floats(p.lse_correction) : nullptr;
  out.seq_q_pad = p.seq_q_pad, out.seq_kv_pad = p.seq_kv_pad;
  out.q_groups = p.q_groups, out.k_groups = p.k_groups;
  return out;
}

}  // namespace sagejit
