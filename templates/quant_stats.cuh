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
// A CTA loads its 128 tokens as 2 passes of 64 row slots, every load in flight before the first
// use; each thread sums (or takes the maximum of) its rows one 8-channel chunk at a time, the warp
// reduces its 8 row slots with shuffles, and 8 warps meet in shared memory. The same steps
// (detail:: below) serve quantize_kv (quant_kv.cuh), which computes these statistics from the tiles
// it quantizes, and quantize_qk's Q smoothing (quant_qk.cuh), whose block means sum the same way.
#pragma once

#include "common.cuh"
#include "quant_layout.cuh"
#include "quant_params.cuh"

namespace sagejit::kernels {

namespace detail {

// One chunk's partial of one tensor, from the rows this CTA holds in registers (row slot + 64 k of
// the chunk, as load_tile_rows leaves them): in s_part[warp][c], the warp's partial for channel c,
// a sum (IsSum) or a max of |x| over the valid rows. Order per channel: per row slot sequential over
// the passes, then a balanced tree over the warp's 8 row slots in slot order (warp_sum<28>'s,
// computed as a reduce-scatter: common.cuh).
template <typename In, int HeadDim, bool IsSum, int Passes>
__device__ __forceinline__ void chunk_partial(const u32x4 (&data)[Passes][HeadDim / 32], int n_valid,
                                              float (*s_part)[HeadDim]) {
  constexpr int kChunks = HeadDim / 32;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int quad_lane = lane & 3;
  const int slot = warp * 8 + (lane >> 2);
  if constexpr (!IsSum) {
    // The maxima on the packed 16-bit elements (max_abs2): a quarter of the instructions of
    // widening each element and taking float maxima, and the same bits, as a max is exact in any
    // order.
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      uint32_t acc[4] = {0u, 0u, 0u, 0u};
#pragma unroll
      for (int k = 0; k < Passes; ++k) {
        if (slot + k * kQuantRowSlots < n_valid) max_abs8<In>(acc, data[k][j]);
      }
      // Over the lanes of equal lane % 4, each lane left with one channel's maximum.
      const uint32_t m = warp_max2_scatter4<In>(acc, lane);
      const int i = reduce_scatter8_index(lane);
      s_part[warp][8 * (quad_lane + 4 * j) + i] = i % 2 != 0 ? unpack_hi<In>(m) : unpack_lo<In>(m);
      __syncwarp();
    }
    return;
  }
  // The sums: one 16-byte chunk of channels at a time, 8 running values beside the tile's registers
  // (all D / 4 at once made quantize_kv spill at D = 256).
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    float acc[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i] = 0.0f;
#pragma unroll
    for (int k = 0; k < Passes; ++k) {
      if (slot + k * kQuantRowSlots < n_valid) {
        float f[8];
        unpack8<In>(data[k][j], f);
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[i] = add_rn(acc[i], f[i]);
      }
    }
    // Lanes with equal lane % 4 (bits 2..4 of the lane id) hold the same channels: warp_sum<28>'s
    // sums, each lane left with one.
    s_part[warp][8 * (quad_lane + 4 * j) + reduce_scatter8_index(lane)] = warp_sum_scatter8(acc, lane);
    __syncwarp();  // keeps ptxas from interleaving the chunks' shuffle trees (quantize_qk, step 2)
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

// Called by every thread once its partials are stored: publishes them and takes a ticket on
// `counter`. True, in every thread, for the CTA that arrives last of `n`; that CTA may then read
// every partial. One thread fences for the CTA, as cooperative groups' grid barrier does: the CTA
// barrier orders every thread's stores before thread 0's fence, whose cumulativity carries them to
// the GPU before its ticket; in the last CTA, thread 0's fence after the ticket and the barrier after
// it order the other threads' reads after every CTA's partials. (A fence in every thread, as the
// threadFenceReduction sample has, cost 3.8% of quantize_kv's stall samples at MEMBAR.SC.)
__device__ __forceinline__ bool arrive_last(unsigned int* counter, int n, int* s_flag) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    const bool last = atomicAdd(counter, 1u) == static_cast<unsigned int>(n - 1);
    if (last) __threadfence();
    *s_flag = last;
  }
  __syncthreads();
  return *s_flag != 0;
}

// One statistic of channel c of one (b, h) from its n_chunks partials (col + i·HeadDim): a sum
// (IsSum) or a max, taken sequentially in chunk order from 0, the order the reference reproduces.
// Loads go through L2 (.cg: other CTAs wrote them) and are issued Batch at a time so their latencies
// overlap: the CTAs of a (b, h) in quantize_kv wait for this, so it is one round trip per Batch.
template <int HeadDim, bool IsSum, int Batch>
__device__ __forceinline__ float reduce_chunks(const float* partial, long long col, int n_chunks) {
  float r = 0.0f;
  for (int c0 = 0; c0 < n_chunks; c0 += Batch) {
    float x[Batch];
#pragma unroll
    for (int i = 0; i < Batch; ++i) {
      if (c0 + i < n_chunks) x[i] = load_cg(partial + col + (c0 + i) * HeadDim);
    }
#pragma unroll
    for (int i = 0; i < Batch; ++i) {
      if (c0 + i < n_chunks) r = IsSum ? add_rn(r, x[i]) : max_f(r, x[i]);
    }
  }
  return r;
}
__device__ __forceinline__ float k_mean_of(float sum, int seq_len) {
  return div_rn(sum, static_cast<float>(seq_len));
}
__device__ __forceinline__ float v_scale_of(float amax) {
  return max_f(div_rn(amax, layout::kFp8Max), layout::kMinScale);
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
  const Sequence sequence = sequence_of(p.cu_seqlens, batch, p.seq_len);
  const int seq_len = sequence.len;
  const long long k_first = sequence.first_row(p.k_stride_b, p.k_stride_s);
  const long long v_first = sequence.first_row(p.v_stride_b, p.v_stride_s);
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

  constexpr int kPasses = kStatsChunkTokens / kQuantRowSlots;
  constexpr int kChunks = HeadDim / 32;
  const int slot = (tid >> 5) * 8 + ((tid & 31) >> 2);
  if (with_k) {
    const In* k = static_cast<const In*>(p.k) + k_first + head * p.k_stride_h +
                  static_cast<long long>(tok0) * p.k_stride_s;
    u32x4 data[kPasses][kChunks];
    load_tile_rows<kPasses, kChunks, kQuantRowSlots>(k, p.k_stride_s, n_valid, slot, tid & 3, data);
    detail::chunk_partial<In, HeadDim, true>(data, n_valid, s_sum);
  }
  if (with_v) {
    const In* v = static_cast<const In*>(p.v) + v_first + head * p.v_stride_h +
                  static_cast<long long>(tok0) * p.v_stride_s;
    u32x4 data[kPasses][kChunks];
    load_tile_rows<kPasses, kChunks, kQuantRowSlots>(v, p.v_stride_s, n_valid, slot, tid & 3, data);
    detail::chunk_partial<In, HeadDim, false>(data, n_valid, s_max);
  }
  __syncthreads();
  if (tid < HeadDim) {
    if (with_k) p.partial_sum[part + tid] = detail::reduce_warps<HeadDim, true>(s_sum, tid);
    if (with_v) p.partial_max[part + tid] = detail::reduce_warps<HeadDim, false>(s_max, tid);
  }
  if (!detail::arrive_last(&p.counters[bh], n_chunks, &s_is_last)) return;

  if (tid < HeadDim) {
    const long long col = bh * grid_chunks * HeadDim + tid;
    if (with_k) {
      p.k_mean[bh * HeadDim + tid] =
          detail::k_mean_of(detail::reduce_chunks<HeadDim, true, 8>(p.partial_sum, col, n_chunks), seq_len);
    }
    if (with_v) {
      p.v_scale[bh * HeadDim + tid] =
          detail::v_scale_of(detail::reduce_chunks<HeadDim, false, 8>(p.partial_max, col, n_chunks));
    }
  }
  if (tid == 0) p.counters[bh] = 0u;
}

}  // namespace sagejit::kernels
