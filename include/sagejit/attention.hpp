// attention.hpp — the one call: attention(q, k, v, out, options, stream).
//
// Plans (validates every argument first: nothing is launched on bad input), compiles on first use
// (the quantization and attention kernels of a problem compile in parallel), keeps a workspace per
// (context, stream), quantizes Q/K/V and runs the attention kernel on the caller's stream. Once
// warm, a call allocates nothing, synchronizes nothing and can be captured in a CUDA graph. The
// workspace grows (a synchronizing reallocation) only when a larger problem arrives on a stream.
#pragma once

#include <cuda.h>

#include <optional>

#include "generator/attn_spec.hpp"
#include "sagejit/tensor.hpp"

namespace sagejit {

struct AttentionOptions {
  Mask mask = Mask::none;
  QuantType qk = QuantType::int8;
  // default: FP8 where it runs on tensor cores — sm_89/sm_120 (mma.sync) and sm_90a (the wgmma
  // kernel, for the specs it supports) — else FP16. FP16 is the precise mode (3.5x less error).
  std::optional<PvType> pv;
  layout::Granularity granularity = layout::Granularity::per_thread;
  bool smooth_q = false;
  bool smooth_k = true;
  float sm_scale = 0;        // 0: 1/sqrt(head_dim)
  std::optional<AttnTile> tile;  // default: default_tile(arch, head_dim, pv, qk bits)
  // Benchmarking only: inputs unchanged since the previous call on this stream with the same
  // shapes and options; only the attention kernel runs.
  bool reuse_quantized = false;
};

// q [B, Hq, Sq, D]; k, v [B, Hkv, Skv, D] (Hq % Hkv == 0); out [B, Hq, Sq, D] with q's dtype, not
// overlapping q, k or v; lse null or float [B, Hq, Sq] contiguous (natural log).
// Sq == 0 or B == 0: nothing to do. Skv == 0: out is 0 and lse is -inf.
void attention(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out, float* lse,
               const AttentionOptions& options, CUstream stream);

// The kernel spec `attention` would run for these shapes on the current GPU (throws like it).
AttnSpec attention_spec(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out,
                        float* lse, const AttentionOptions& options);

}  // namespace sagejit
