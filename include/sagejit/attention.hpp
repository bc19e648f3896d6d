// attention.hpp — the one call: attention(q, k, v, out, options, stream).
//
// Plans (validates every argument first: nothing is launched on bad input), compiles on first use
// (the quantization and attention kernels of a problem compile in parallel), keeps a workspace per
// (context, stream), quantizes Q/K/V (independent passes side by side on an internal helper
// stream forked from and joined back into the caller's) and runs the attention kernel on the
// caller's stream. Once
// warm, a call allocates nothing, synchronizes nothing and can be captured in a CUDA graph. The
// workspace grows (a synchronizing reallocation) only when a larger problem arrives on a stream.
#pragma once

#include <cuda.h>

#include <optional>

#include "generator/attn_spec.hpp"
#include "sagejit/tensor.hpp"
#include "sagejit/varlen.hpp"

namespace sagejit {

struct AttentionOptions {
  Mask mask = Mask::none;
  // int8, int4 (INT4 tensor cores on sm_80/86/89, emulated elsewhere) or int8x2 (two int8 terms:
  // with f16 P·V, the precise mode, ~40x less error than int8 with f16 P·V).
  QuantType qk = QuantType::int8;
  // default: FP8 where it runs on tensor cores — sm_89/sm_120 (mma.sync) and sm_90a (the wgmma
  // kernel, for the specs it supports) — else FP16 (3.5x less error than FP8); always FP16 with int8x2.
  std::optional<PvType> pv;
  layout::Granularity granularity = layout::Granularity::per_thread;
  bool smooth_q = false;
  bool smooth_k = true;
  float sm_scale = 0;        // 0: 1/sqrt(head_dim)
  // The kernel variant. Default: a tuned record for this GPU and problem bucket if the cache or
  // bundle has one (`sagejit tune`, SAGEJIT_TUNE=1), else the heuristic: the wgmma kernel on sm_90a
  // where it supports the problem, else mma.sync with default_tile(arch, head_dim, pv, qk).
  // A tile alone means the mma family; a family alone takes that family's default tile.
  std::optional<AttnTile> tile;
  std::optional<AttnFamily> family;
  // Q quantized inside the attention kernel where the kernel does that (sm_90a: the single-warpgroup
  // wgmma form, int8 Q/K at head dims 64, 96 and 128, and 256 with FP8 P·V, the default there; the
  // warp-specialized form with FP8 P·V), which saves Q's separate pass and its int8 copy; the same bits
  // either way. false: always a separate pass (for comparing).
  bool fused_q = true;
  // Benchmarking only: inputs unchanged since the previous call on this stream with the same
  // shapes and options; only the attention kernel runs (with fused_q, Q's quantization included).
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

// Variable-length packed batch (flash-attn's varlen convention; include/sagejit/varlen.hpp): q and
// out [1, Hq, total_q, D], k and v [1, Hkv, total_kv, D], sequence b at tokens
// [cu_seqlens_q[b], cu_seqlens_q[b + 1]) of q and out and [cu_seqlens_k[b], cu_seqlens_k[b + 1]) of
// k and v. Each sequence is attended on its own: its own K mean and V scale, causal masks aligned
// per sequence (bottom-right: query i sees keys j <= i + len_k(b) − len_q(b)). lse: null, or float
// [Hq, total_q] contiguous (packed like flash-attn's varlen LSE: row i of sequence b of head h at
// lse[h·total_q + cu_seqlens_q[b] + i]). A sequence with queries but no keys gets output 0 and LSE
// −inf; one without queries writes nothing. The offsets are validated from their host copy before
// anything else (no device synchronization); the kernels read the device copy.
// Runs on the kernel `attention` would choose for a padded batch of the longest sequences (on sm_90a
// the wgmma kernels, whose tiles stay within one sequence).
void attention_varlen(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out, float* lse,
                      const VarlenBatch& varlen, const AttentionOptions& options, CUstream stream);

// The kernel spec `attention_varlen` would run (throws like it).
AttnSpec attention_varlen_spec(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out,
                               float* lse, const VarlenBatch& varlen, const AttentionOptions& options);

}  // namespace sagejit
