// quantize.hpp — SageAttention2's quantization of Q, K and V as a public call.
//
// `quantize` validates everything first (nothing is launched on bad input), then launches on the
// caller's stream: the K mean / V scale statistics, Q and K to INT8, INT4 or two-term INT8 with per-group scales
// following the attention kernel's MMA layout (the Q pass also writing, on request, the LSE
// correction that undoes K smoothing), and V to FP8 e4m3 transposed and token-permuted. Passes that
// do not depend on each other run side by side on an internal helper stream forked from and joined
// back into the caller's, so the caller sees them ordered on its stream like a single launch.
// Results live in a caller-provided device workspace of `quantize_workspace_bytes` bytes, in the
// layouts of templates/quant_layout.cuh. Once the kernels are loaded a call allocates nothing and
// synchronizes nothing.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>

#include "sagejit/tensor.hpp"
#include "sagejit/varlen.hpp"
#include "templates/quant_layout.cuh"

namespace sagejit {

struct QuantizeOptions {
  QuantType qk_type = QuantType::int8;  // int4 (native on sm_80/86/89, emulated elsewhere); int8x2 (two terms)
  layout::Granularity granularity = layout::Granularity::per_thread;
  // Tile geometry of the attention kernel that will read the result.
  int block_q = 128, warp_q = 32;
  int block_k = 64, warp_k = 64;
  bool smooth_q = false;
  bool smooth_k = true;
  // false: Q is left alone (the sm_90a single-warpgroup attention kernel quantizes it itself); q,
  // q_scale, q_mean and lse_correction are then not produced, and smooth_q must be false.
  bool quantize_q = true;
  bool quantize_v = true;   // FP8 V (sm_89+); off leaves V to be read as fp16/bf16
  float sm_scale = 0;       // 0 means 1/sqrt(head_dim)
  // Also write QuantizedQKV::lse_correction = q·k̄·sm_scale per query row (natural log), which an
  // LSE-returning attention adds back: K smoothing drops that row constant from the scores. Only
  // meaningful with smooth_k; without it the correction is 0 and nothing is reserved or written
  // (lse_correction stays null), as also when there are no keys (Skv = 0: no k̄).
  bool lse_correction = false;
  // K's mean and V's scale computed inside the kernel that quantizes K and V, which then reads each
  // from memory once (quant_kv.cuh), wherever that kernel applies and measured faster: block_k
  // divides 128, at most 64 chunks of 128 keys per (batch, head), and the bytes moved between a
  // chunk's two reads within half of L2 (runtime/quantize.cpp; on the H100 at D = 128, S <= 8k).
  // false: a separate statistics pass first. Both give the same bits; the option is for comparing.
  bool fused_stats = true;
  // With fused_stats, on sm_90a, for key sequences of up to 16 chunks of 128 keys (2k keys, where the
  // GPU holds clusters of that many CTAs): one thread-block cluster per (batch,
  // head) and tensor, one CTA per chunk, each holding its chunk in registers while the cluster agrees on
  // the statistic (quant_kv_cluster.cuh): one read of K and V, no counters.
  // false: quantize_kv's work items. Both give the same bits; the option is for comparing.
  bool kv_cluster = true;
};

// Device pointers into the workspace (null where not produced).
struct QuantizedQKV {
  void* q = nullptr;
  float* q_scale = nullptr;
  float* q_mean = nullptr;
  void* k = nullptr;
  float* k_scale = nullptr;
  float* k_mean = nullptr;
  void* v = nullptr;
  float* v_scale = nullptr;
  float* lse_correction = nullptr;  // [B, Hq, Sq] (unpadded), with options.lse_correction and smooth_k
                                    // (varlen: Sq = max_seqlen_q, rows [0, len_b) of slot b written)
  int seq_q_pad = 0, seq_kv_pad = 0;
  int q_groups = 0, k_groups = 0;
};

// Workspace bytes for these shapes and options (throws InvalidArgument like `quantize`).
std::size_t quantize_workspace_bytes(const TensorRef& q, const TensorRef& k, const TensorRef& v,
                                     const QuantizeOptions& options);

// Quantizes on `stream` into `workspace` (device memory, 256-byte aligned, at least
// quantize_workspace_bytes). Compiles the kernels on first use for the current device.
QuantizedQKV quantize(const TensorRef& q, const TensorRef& k, const TensorRef& v, const QuantizeOptions& options,
                      void* workspace, std::size_t workspace_bytes, CUstream stream);

// Varlen: q, k, v packed ([1, H, total, D] views, include/sagejit/varlen.hpp). The outputs keep the
// padded per-batch layout of quant_layout.cuh with B = varlen.batch and Sq / Skv = max_seqlen_q / _k;
// slot b holds sequence b from row 0, and only the blocks of its own length are written (the
// "Varlen" paragraph of quant_layout.cuh). K mean and V scale are per sequence.
std::size_t quantize_varlen_workspace_bytes(const TensorRef& q, const TensorRef& k, const TensorRef& v,
                                            const VarlenBatch& varlen, const QuantizeOptions& options);
QuantizedQKV quantize_varlen(const TensorRef& q, const TensorRef& k, const TensorRef& v, const VarlenBatch& varlen,
                             const QuantizeOptions& options, void* workspace, std::size_t workspace_bytes,
                             CUstream stream);

}  // namespace sagejit
