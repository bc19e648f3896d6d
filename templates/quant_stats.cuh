// quant_stats.cuh — per-channel statistics over all valid tokens of each (b, h), one pass:
//   k_mean[b, h, c]  = (sum over the seq_len tokens of K[b, h, :, c]) / seq_len   (K smoothing)
//   v_scale[b, h, c] = max(max over tokens |V[b, h, :, c]| / 448, kMinScale)     (V to e4m3)
//
// Deterministic, with no float atomics: the sum has one fixed order, documented in
// quant_params.cuh and reproduced bit-exactly by reference/quant_reference.cpp:
//   each CTA reduces one kStatsChunkTokens-token chunk of one (b, h) to a partial (row slot
//   leaves -> pairwise tree, as in quantize_qk's q_mean) and writes it to the workspace; the CTA
//   that finishes last for its (b, h) — found with an atomic ticket counter — sums the partials
//   sequentially in chunk order, divides, writes the results and resets the counter to 0, so the
//   next launch (or a CUDA-graph replay) finds it zeroed. Max is exact in any order, so V needs no
//   such care beyond the same structure.
// Why chunked partials: S up to 32k with any B x H must fill the GPU. A fixed chunk (not one derived
// from the grid or the SM count) keeps the summation order a property of the problem alone.
//
// Launch contract:
//   grid  = (max(1, stats_chunks(seq_len)), heads, batch)     block = kQuantThreads (256)
//   (one chunk when seq_len = 0: that CTA writes k_mean 0 and v_scale kMinScale, the defined results
//   for no tokens). Varlen (p.cu_seqlens non-null): seq_len is the longest sequence; each (b, h)
//   counts tickets up to its own sequence's chunks, and CTAs past its end return at once.
//   dynamic shared memory: none (static 2 x 8 x HeadDim floats, 16 KiB at D = 256)
//   reads p.k / p.v (either may be null: that statistic is skipped, its outputs and partials
//   untouched);
//   writes p.partial_sum / p.partial_max [B, H, chunks, D] (workspace), p.k_mean, p.v_scale;
//   p.counters [B * H] must be zero before the first launch and is left zero.
//
// Layout reasoning: the same thread mapping as quantize_qk (a quad of lanes per token row, lane t
// loading the 16-byte chunks t + 4j), so each warp instruction reads 8 rows x 64 contiguous bytes.
// A CTA streams 256 tokens in 4 passes of 64 row slots; each thread keeps D / 4 running sums
// (and maxima) in registers, the warp reduces its 8 row slots with shuffles, and 8 warps meet in
// shared memory.
#pragma once

#include "common.cuh"
#include "quant_layout.cuh"
#include "quant_params.cuh"

namespace sagejit::kernels {

namespace detail {

// Streams this CTA's token chunk of one tensor and leaves, in s_part[warp][c], the warp's partial
// for channel c: a sum (IsSum) or a max of |x|. Order per channel: per row slot sequential over the
// passes, then the butterfly over the warp's 8 row slots (a balanced tree in slot order).
template <typename In, int HeadDim, bool IsSum>
__device__ __forceinline__ void stats_chunk_to_smem(const In* in, long long stride_s, int n_valid,
                                                    float (*s_part)[HeadDim]) {
  constexpr int kChunks = HeadDim / 32;
  constexpr int kPasses = kStatsChunkTokens / kQuantRowSlots;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int quad_lane = lane & 3;
  const int slot = warp * 8 + (lane >> 2);

  float acc[kChunks][8];
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[j][i] = 0.0f;
  }
  // Two passes' loads are issued before they are consumed: 2 x D / 32 x 16 B in flight per thread
  // (64 KiB per CTA at D = 256) without holding the whole chunk in registers.
#pragma unroll 2
  for (int k = 0; k < kPasses; ++k) {
    const int r = slot + k * kQuantRowSlots;
    if (r < n_valid) {
      u32x4 c[kChunks];
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        c[j] = load16_nc(in + r * stride_s + 8 * (quad_lane + 4 * j));
      }
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        float f[8];
        unpack8<In>(c[j], f);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          acc[j][i] = IsSum ? add_rn(acc[j][i], f[i]) : max_f(acc[j][i], abs_f(f[i]));
        }
      }
    }
  }
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      // Lanes with equal lane % 4 (bits 2..4 of the lane id) hold the same channel.
      const float v = IsSum ? warp_sum<28>(acc[j][i]) : warp_max<28>(acc[j][i]);
      if (lane < 4) s_part[warp][8 * (quad_lane + 4 * j) + i] = v;
    }
  }
}

// Pairwise tree over the 8 warps' partials of channel c: ((w0 + w1) + (w2 + w3)) + ((w4 + ...
template <int HeadDim, bool IsSum>
__device__ __forceinline__ float reduce_warps(const float (*s_part)[HeadDim], int c) {
  float w[kQuantWarps];
#pragma unroll
  for (int i = 0; i < kQuantWarps; ++i) w[i] = s_part[i][c];
#pragma unroll
  for (int width = 1; width < kQuantWarps; width *= 2) {
#pragma unroll
    for (int i = 0; i < kQuantWarps; i += 2 * width) {
      w[i] = IsSum ? add_rn(w[i], w[i + width]) : max_f(w[i], w[i + width]);
    }
  }
  return w[0];
}

}  // namespace detail

template <typename In, int HeadDim>
__global__ void __launch_bounds__(kQuantThreads) quant_stats(QuantStatsParams p) {
  static_assert(HeadDim % 32 == 0 && HeadDim <= kQuantThreads, "HeadDim: multiple of 32, <= 256");
  static_assert(kStatsChunkTokens % kQuantRowSlots == 0, "a chunk is whole passes");

  // Which statistics are wanted is a run-time choice (a null input pointer skips it): uniform
  // branches, and one compiled kernel per (dtype, head_dim) covers all three uses.
  const bool with_k = p.k != nullptr;
  const bool with_v = p.v != nullptr;
  __shared__ float s_sum[kQuantWarps][HeadDim];
  __shared__ float s_max[kQuantWarps][HeadDim];
  __shared__ int s_is_last;

  const int tid = threadIdx.x;
  const int chunk = blockIdx.x;
  const int head = blockIdx.y;
  const int batch = blockIdx.z;
  const long long bh = static_cast<long long>(batch) * p.heads + head;
  // This (b, h)'s tokens: batch slot b, or sequence b of packed inputs (varlen).
  int seq_len = p.seq_len;
  long long k_first = static_cast<long long>(batch) * p.k_stride_b;
  long long v_first = static_cast<long long>(batch) * p.v_stride_b;
  if (p.cu_seqlens != nullptr) {
    const int begin = p.cu_seqlens[batch];
    seq_len = p.cu_seqlens[batch + 1] - begin;
    k_first = static_cast<long long>(begin) * p.k_stride_s;
    v_first = static_cast<long long>(begin) * p.v_stride_s;
  }
  // The chunks of this sequence; the grid covers the longest (gridDim.x, the partials' stride).
  const int n_chunks = stats_chunks(seq_len);
  const int grid_chunks = gridDim.x;
  if (n_chunks == 0) {
    // No tokens (a zero-length sequence, or Skv = 0): defined results rather than 0 / 0, so that
    // the attention epilogue's O · v_scale stays 0 and lse_correction finite (quant_layout.cuh).
    if (chunk == 0 && tid < HeadDim) {
      if (with_k) p.k_mean[bh * HeadDim + tid] = 0.0f;
      if (with_v) p.v_scale[bh * HeadDim + tid] = layout::kMinScale;
    }
    return;
  }
  if (chunk >= n_chunks) return;  // varlen: past this sequence's end (whole CTA, before barriers)
  const int tok0 = chunk * kStatsChunkTokens;
  const int n_valid = seq_len - tok0 < kStatsChunkTokens ? seq_len - tok0 : kStatsChunkTokens;
  const long long part = (bh * grid_chunks + chunk) * HeadDim;

  if (with_k) {
    const In* k = static_cast<const In*>(p.k) + k_first + head * p.k_stride_h +
                  static_cast<long long>(tok0) * p.k_stride_s;
    detail::stats_chunk_to_smem<In, HeadDim, true>(k, p.k_stride_s, n_valid, s_sum);
  }
  if (with_v) {
    const In* v = static_cast<const In*>(p.v) + v_first + head * p.v_stride_h +
                  static_cast<long long>(tok0) * p.v_stride_s;
    detail::stats_chunk_to_smem<In, HeadDim, false>(v, p.v_stride_s, n_valid, s_max);
  }
  __syncthreads();
  if (tid < HeadDim) {
    if (with_k) p.partial_sum[part + tid] = detail::reduce_warps<HeadDim, true>(s_sum, tid);
    if (with_v) p.partial_max[part + tid] = detail::reduce_warps<HeadDim, false>(s_max, tid);
  }

  // Publish the partials before taking a ticket (threadFenceReduction pattern): every writer
  // fences, the CTA synchronizes, then one thread takes the ticket.
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    const unsigned int ticket = atomicAdd(&p.counters[bh], 1u);
    s_is_last = ticket == static_cast<unsigned int>(n_chunks - 1);
  }
  __syncthreads();
  if (!s_is_last) return;
  __threadfence();

  if (tid < HeadDim) {
    // Sequential in chunk order from 0 (the order the reference reproduces). Loads go through L2
    // (.cg: other CTAs wrote them) and are issued 8 at a time so their latencies overlap.
    constexpr int kBatch = 8;
    const long long col = bh * grid_chunks * HeadDim + tid;
    float sum = 0.0f, amax = 0.0f;
    for (int c0 = 0; c0 < n_chunks; c0 += kBatch) {
      float s[kBatch], m[kBatch];
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        if (c0 + i < n_chunks) {
          s[i] = with_k ? load_cg(p.partial_sum + col + (c0 + i) * HeadDim) : 0.0f;
          m[i] = with_v ? load_cg(p.partial_max + col + (c0 + i) * HeadDim) : 0.0f;
        }
      }
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        if (c0 + i < n_chunks) {
          sum = add_rn(sum, s[i]);
          amax = max_f(amax, m[i]);
        }
      }
    }
    if (with_k) p.k_mean[bh * HeadDim + tid] = div_rn(sum, static_cast<float>(seq_len));
    if (with_v) {
      p.v_scale[bh * HeadDim + tid] =
          max_f(div_rn(amax, layout::kFp8Max), layout::kMinScale);
    }
  }
  if (tid == 0) p.counters[bh] = 0u;
}

}  // namespace sagejit::kernels
