// quant_kv.cuh — K (smoothed by its channel mean) and V (to e4m3 by its channel scale) quantized by
// one kernel that also computes that mean and that scale, reading K and V from DRAM once. (On sm_90a,
// up to 2k keys, quant_kv_cluster.cuh computes the same with one cluster per (b, h)
// and tensor.)
//
// What it computes: exactly what quant_stats, quantize_qk (K) and quantize_v compute, bit for bit
// (the same summation order and rounding: it runs their steps, the detail:: functions of
// quant_stats.cuh, quant_qk.cuh and quant_v.cuh). Work comes as items of one 128-token chunk
// (kStatsChunkTokens) of one (b, h), each a CTA:
//   statistics item: the chunk's partial sum of K and max|V| (quant_stats' order) to the workspace;
//     the last of the (b, h) to arrive reduces all partials in chunk order, writes k_mean and
//     v_scale and the (b, h)'s statistics words;
//   quantization item: loads the chunk, waits for the statistics words of its (b, h), then
//     quantizes K's rows (128 / block_k blocks) and the V tile.
// At D = 256 with V an item holds one tensor (kv_split_tensors, quant_params.cuh): a chunk of both
// is 128 registers of data a thread, one CTA per SM, whose load, arithmetic and stores then run one
// after another; one tensor's 64 leave room for 2 CTAs. The last of the (b, h)'s statistics items of
// both tensors reduces.
// Statistics words: channel c's k_mean bits (low half; 0 without smoothing) and v_scale bits (high
// half; 1.0f without V) in one 64-bit word, written once by one relaxed 64-bit store and polled by
// thread c of each quantization item with relaxed 64-bit loads. The high half is never 0 once
// written (v_scale >= kMinScale), so a word read non-zero is the whole result, and one location's
// coherence is all the handover needs: no flag, no fence, no barrier around a spin. Against an
// acquire-loaded ready flag followed by loads of k_mean and v_scale, this takes a round trip and a
// CTA barrier off each quantization item (H100, B4 H32 D128, same runs: 198.7 -> 194.3 us at 4k
// keys, 447 -> 430 us at 8k; bench/results/2026-11-26-quant-instructions-h100.md).
// The separate passes read K and V twice from DRAM (6.5 tensor-sized transfers per call instead of
// 4.5, bench/results/2026-11-25-quant-h100.md); here the second read is served by L2 (below).
//
// Order. Items are numbered by an atomic ticket (next_item), not by blockIdx, in steps of segments
// of n items (n = chunks of the longest sequence; kv_step_segments, kv_item): step s holds the
// statistics items of (b, h) = s, then the quantization items of (b, h) = s - lag (at D = 256 with
// V, one tensor per item: K's statistics when smoothing, V's, K's quantization, V's). Every
// statistics item of a (b, h) has a lower ticket than every quantization item of it, so it was taken
// by a CTA that is running or done, and statistics items wait for nothing: no CTA ever waits for one
// that cannot start, whatever the grid or the GPU share (tests/cpu/kernels/test_quant_kv_order.cpp).
// The host sets lag so that about a GPU-full of CTAs and one step more separate the two
// (runtime/quantize.cpp): the statistics are then usually written when the quantization items come
// (with lag 1 they waited for statistics items still in flight, holding their slots: 0.329 against
// 0.280 ms at S = 4k, B4 H32 D128), and a chunk's second read, under an evict_first policy, comes
// early enough to find it in L2 for the shapes the host runs this kernel for. A quantization item
// issues its loads before it waits, so any wait overlaps them.
//
// Launch contract:
//   grid  = (kv_items(batch, heads, seq_len, lag, kv_step_segments(HeadDim, Smooth, WithV))),
//   block = kQuantThreads (256)
//   dynamic shared memory: none (static: the V tile, HeadDim x 128 B, in the bytes of the partials,
//   2 x 8 x HeadDim floats; 17 KiB at D = 128)
//   p.k as for quantize_qk (K): block_tokens must divide kStatsChunkTokens; p.v as for quantize_v
//   (when WithV); p.stats as for quant_stats (its k / v pointers unused: p.k.in and p.v.in are
//   read), its partials sized for stats_chunks(seq_len) chunks; p.stats.counters, p.next_item and
//   p.stats_words zero before the launch (left non-zero); p.lag >= 1 and the grid
//   kv_items(..., p.lag, ...). Writes what the three separate kernels write. Other schedules measured
//   slower (persistent CTAs, V staged in shared memory, Q blocks as items, a per-(b, h) barrier):
//   bench/results/2026-11-26-quant-fused-stats-h100.md.
//   Varlen (cu_seqlens in all three structs): as for the separate kernels; a sequence with no keys
//   gets k_mean 0 and v_scale kMinScale from its chunk-0 statistics item.
#pragma once

#include "common.cuh"
#include "quant_layout.cuh"
#include "quant_params.cuh"
#include "quant_qk.cuh"
#include "quant_stats.cuh"
#include "quant_v.cuh"

namespace sagejit::kernels {

namespace detail {

__device__ __forceinline__ unsigned long long load_relaxed_gpu(const unsigned long long* p) {
  unsigned long long v;
  asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void store_relaxed_gpu(unsigned long long* p, unsigned long long v) {
  asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

// Row 0 of the chunk at token tok0 of head `head` of `sequence` in the caller's K or V (`in`, with
// these element strides): the rows quantize_kv and quantize_kv_cluster load.
template <typename In>
__device__ __forceinline__ const In* kv_chunk_rows(const void* in, const Sequence& sequence, long long stride_b,
                                                   long long stride_h, long long stride_s, int head, int tok0) {
  return static_cast<const In*>(in) + sequence.first_row(stride_b, stride_s) + head * stride_h +
         static_cast<long long>(tok0) * stride_s;
}

// round_up(seq_len, k.block_tokens) for quantize_kv's K: block_tokens divides the 128-token chunk
// and is a multiple of 16 (the launch contract), so it is a power of two, and so is warp_tokens (a
// multiple of 16 that divides it): the geometry's divisions are shifts (quantize_rows' Pow2).
__device__ __forceinline__ int kv_seq_pad(const QuantQKParams& k, int seq_len) {
  return (seq_len + k.block_tokens - 1) & -k.block_tokens;
}

// The K rows of the chunk at token tok0 of (b, h) as quantize_rows writes them, and their scales
// (quantize_kv and quantize_kv_cluster). block_k divides the chunk, so the chunk's rows padded to
// kv_seq_pad end at a block boundary.
template <int HeadDim, int Bits, int Terms>
__device__ __forceinline__ QkTile kv_chunk_k_tile(const QuantQKParams& k, long long bh, int tok0, int n_valid,
                                                  int seq_len) {
  const int seq_pad = kv_seq_pad(k, seq_len);
  const int n_rows = seq_pad - tok0 < kStatsChunkTokens ? seq_pad - tok0 : kStatsChunkTokens;
  const int k_groups = k.granularity == layout::Granularity::per_thread ? div_pow2(k.block_tokens, k.warp_tokens) * 4
                       : k.granularity == layout::Granularity::per_warp ? div_pow2(k.block_tokens, k.warp_tokens)
                                                                        : 1;
  return QkTile{static_cast<unsigned char*>(k.out) + (bh * k.seq_len_pad + tok0) * (HeadDim * Bits * Terms / 8),
                k.scale + (bh * div_pow2(k.seq_len_pad, k.block_tokens) + div_pow2(tok0, k.block_tokens)) * k_groups,
                n_valid, n_rows, k.block_tokens, k.warp_tokens, k_groups, k.granularity, k.scale_multiplier};
}

// (b, h)'s FP8 V in the workspace, [HeadDim x seq_len_pad] (quantize_v_tile's destination).
template <int HeadDim>
__device__ __forceinline__ unsigned char* kv_v_out(const QuantVParams& v, long long bh) {
  return static_cast<unsigned char*>(v.out) + bh * HeadDim * v.seq_len_pad;
}

}  // namespace detail

// Registers of tile data per thread: a chunk of K, and of V with WithV (2 x 32 at D = 128) unless
// an item holds one tensor (kv_split_tensors: D = 256 with V, 64).
template <int HeadDim, bool WithV>
constexpr int kv_data_registers() {
  return (WithV && !kv_split_tensors(HeadDim, WithV) ? 2 : 1) * (kStatsChunkTokens / kQuantRowSlots) * HeadDim / 8;
}

// The occupancy bound follows the data held: up to 32 registers of it, 4 CTAs per SM (64 registers
// each); up to 48 (D = 96 with V), 3 (80; two-term K spills there: 2); up to 64, 2 (128 registers).
// (H100, 2026-11-26: D = 64 4 against 3 CTAs, 197 -> 178 us at B4 H64 S4k;
// bench/results/2026-11-26-levers-h100.md.)
template <int HeadDim, bool WithV, int Terms>
constexpr int kv_min_ctas() {
  constexpr int data = kv_data_registers<HeadDim, WithV>();
  return data <= 32 ? 4 : data <= 48 && Terms == 1 ? 3 : data <= 64 ? 2 : 1;
}

template <typename In, int HeadDim, int Bits, int Terms, bool Smooth, bool WithV>
__global__ void __launch_bounds__(kQuantThreads, kv_min_ctas<HeadDim, WithV, Terms>())
    quantize_kv(QuantKVParams p) {
  static_assert(HeadDim % 32 == 0 && HeadDim <= kQuantThreads, "HeadDim: multiple of 32, <= 256");
  static_assert(Smooth || WithV, "without K smoothing or FP8 V there is nothing to compute first");
  static_assert(kStatsChunkTokens == kVTileTokens, "one chunk is one V tile");
  constexpr int kChunks = HeadDim / 32;
  constexpr int kPasses = kStatsChunkTokens / kQuantRowSlots;
  // K per_thread groups of a chunk at the smallest warp_k, 16 (the planner's rule, check_tile).
  constexpr int kMaxGroups = kStatsChunkTokens / 16 * 4;
  // A step's segments of items (kv_step_segments): the statistics segments, then the quantization
  // segments; with one tensor per item (kPerTensor) [K's statistics,] V's, K's quantization, V's.
  constexpr bool kPerTensor = kv_split_tensors(HeadDim, WithV);
  constexpr int kStatsSegments = kv_stats_segments(HeadDim, Smooth, WithV);
  constexpr int kSegments = kv_step_segments(HeadDim, Smooth, WithV);

  // The warps' partials and the V tile share their bytes: a statistics item uses only the partials,
  // a quantization item only the tile (48 KiB of static shared memory is the most a kernel may
  // declare; D = 256 would need 49).
  constexpr int kPartialBytes = ((Smooth ? 1 : 0) + (WithV ? 1 : 0)) * kQuantWarps * HeadDim * 4;
  constexpr int kTileBytes = WithV ? HeadDim * kVTileTokens : 0;
  __shared__ alignas(16) unsigned char s_raw[kPartialBytes > kTileBytes ? kPartialBytes : kTileBytes];
  auto s_tile = reinterpret_cast<unsigned char (*)[kVTileTokens]>(s_raw);
  auto s_sum = reinterpret_cast<float (*)[HeadDim]>(s_raw);
  auto s_max = reinterpret_cast<float (*)[HeadDim]>(s_raw + (Smooth ? kQuantWarps * HeadDim * 4 : 0));
  __shared__ alignas(16) float s_mean[HeadDim];
  __shared__ float s_inv[HeadDim];
  __shared__ int s_group_max[kMaxGroups];
  __shared__ float s_group_inv[kMaxGroups];
  __shared__ int s_item, s_is_last;

  const int tid = threadIdx.x;
  // The attention kernel after this one (a programmatic launch) may take the slots this grid's last
  // CTAs leave free; it waits for this grid's completion before it reads K or V (attn_wgmma_single.cuh).
  // Only inside an attention call: after a bare quantize() the next kernel is the caller's.
  if (p.release_dependents != 0) griddep_launch_dependents();
  if (tid == 0) s_item = static_cast<int>(atomicAdd(p.next_item, 1u));
  __syncthreads();
  const int grid_chunks = stats_chunks(p.stats.seq_len) > 0 ? stats_chunks(p.stats.seq_len) : 1;
  const KvItem item = kv_item(s_item, grid_chunks, kSegments, kStatsSegments, p.lag);
  const int segment = item.segment, chunk = item.chunk;
  const bool is_stats = segment < kStatsSegments;
  // The tensors the item reads: K (a statistics item only when smoothing) and V, or its segment's one.
  const bool has_k = kPerTensor ? (is_stats ? Smooth && segment == 0 : segment == kStatsSegments) : Smooth || !is_stats;
  const bool has_v = WithV && (!kPerTensor || !has_k);
  const int bh_index = item.bh;
  if (bh_index < 0 || bh_index >= p.k.batch * p.k.heads) return;  // the first and last half steps
  const int head = bh_index % p.k.heads;
  const int batch = bh_index / p.k.heads;
  const long long bh = bh_index;

  // This (b, h)'s keys: batch slot b, or sequence b of packed inputs (varlen); the K rows written
  // reach round_up(len, block_k) (quantize_qk's last block), V's the same (quantize_v).
  const Sequence sequence = sequence_of(p.k.cu_seqlens, batch, p.k.seq_len);
  const int seq_len = sequence.len;
  // Clamped to the grid's chunks: a device-side length beyond max_seqlen (which the host cannot
  // check) must not leave a (b, h) waiting for chunks that have no item.
  const int n_chunks = stats_chunks(seq_len) < grid_chunks ? stats_chunks(seq_len) : grid_chunks;
  if (n_chunks == 0) {
    // No keys: the defined statistics of quant_stats, and nothing to quantize.
    if (segment == 0 && chunk == 0 && tid < HeadDim) {
      if (Smooth) p.stats.k_mean[bh * HeadDim + tid] = 0.0f;
      if (WithV) p.stats.v_scale[bh * HeadDim + tid] = layout::kMinScale;
    }
    return;
  }
  if (chunk >= n_chunks) return;  // varlen: past this sequence's end (whole CTA, before barriers)
  const int tok0 = chunk * kStatsChunkTokens;
  const int n_valid = seq_len - tok0 < kStatsChunkTokens ? seq_len - tok0 : kStatsChunkTokens;

  // Every load of the chunk in flight before the first use. With one tensor per item, one array
  // holds K or V.
  const int slot = (tid >> 5) * 8 + ((tid & 31) >> 2);
  // A quantization item reads its chunk for the second and last time: evict_first, so that L2 keeps
  // the chunks the statistics items read before them (H100: D256 H32 4k 430 -> 383 us, D128 H32 8k
  // 413 -> 369 us; evict_last on the statistics items' reads added nothing).
  const unsigned long long policy = is_stats ? l2_policy_evict_normal() : l2_policy_evict_first();
  u32x4 k_data[kPasses][kChunks];
  u32x4 v_own[WithV && !kPerTensor ? kPasses : 1][WithV && !kPerTensor ? kChunks : 1];
  auto& v_data = *[&] {
    if constexpr (kPerTensor) return &k_data;
    else return &v_own;
  }();
  if (has_k) {
    load_tile_rows<kPasses, kChunks, kQuantRowSlots>(
        detail::kv_chunk_rows<In>(p.k.in, sequence, p.k.stride_b, p.k.stride_h, p.k.stride_s, head, tok0),
        p.k.stride_s, n_valid, slot, tid & 3, k_data, policy);
  }
  if constexpr (WithV) {
    if (has_v) {
      load_tile_rows<kPasses, kChunks, kQuantRowSlots>(
          detail::kv_chunk_rows<In>(p.v.in, sequence, p.v.stride_b, p.v.stride_h, p.v.stride_s, head, tok0),
          p.v.stride_s, n_valid, slot, tid & 3, v_data, policy);
    }
  }

  if (is_stats) {
    if constexpr (Smooth) {
      if (has_k) detail::chunk_partial<In, HeadDim, true>(k_data, n_valid, s_sum);
    }
    if constexpr (WithV) {
      if (has_v) detail::chunk_partial<In, HeadDim, false>(v_data, n_valid, s_max);
    }
    __syncthreads();
    const long long part = (bh * grid_chunks + chunk) * HeadDim;
    if (tid < HeadDim) {
      if (Smooth && has_k) p.stats.partial_sum[part + tid] = detail::reduce_warps<HeadDim, true>(s_sum, tid);
      if (WithV && has_v) p.stats.partial_max[part + tid] = detail::reduce_warps<HeadDim, false>(s_max, tid);
    }
    if (!detail::arrive_last(&p.stats.counters[bh], n_chunks * kStatsSegments, &s_is_last)) return;
    // The (b, h)'s statistics. Up to D = 128 the sums and the maxima go to different threads, with
    // 32 loads in flight each (16 under the 3-CTA register bound, where 32 spilled).
    constexpr bool kSplit = Smooth && WithV && 2 * HeadDim <= kQuantThreads;
    constexpr int kBatch = kv_data_registers<HeadDim, WithV>() <= 32 ? 16 : 32;
    const int c = tid % HeadDim;
    const long long col = bh * grid_chunks * HeadDim + c;
    float mean = 0.0f, scale = 1.0f;
    if (Smooth && tid < HeadDim) {
      mean = detail::k_mean_of(detail::reduce_chunks<HeadDim, true, kBatch>(p.stats.partial_sum, col, n_chunks),
                               seq_len);
      p.stats.k_mean[bh * HeadDim + c] = mean;
    }
    if (WithV && (kSplit ? tid >= HeadDim && tid < 2 * HeadDim : tid < HeadDim)) {
      scale = detail::v_scale_of(detail::reduce_chunks<HeadDim, false, kBatch>(p.stats.partial_max, col, n_chunks));
      p.stats.v_scale[bh * HeadDim + c] = scale;
    }
    if constexpr (kSplit) {  // channel c's scale to thread c, which writes the word
      if (tid >= HeadDim && tid < 2 * HeadDim) s_inv[c] = scale;
      __syncthreads();
      if (tid < HeadDim) scale = s_inv[c];
    }
    if (tid < HeadDim) {
      detail::store_relaxed_gpu(&p.stats_words[bh * HeadDim + c],
                                static_cast<unsigned long long>(float_bits(scale)) << 32 | float_bits(mean));
    }
    return;
  }

  // Quantization item: the statistics words (written lag steps of items ago, so usually there at
  // once; the load itself paces the loop), then K and V (or the item's one tensor) from the registers
  // loaded above.
  if (tid < kMaxGroups) s_group_max[tid] = 0;
  if (tid < HeadDim) {
    unsigned long long word;
    while ((word = detail::load_relaxed_gpu(&p.stats_words[bh * HeadDim + tid])) >> 32 == 0u) {
    }
    if (Smooth) s_mean[tid] = bits_float(static_cast<uint32_t>(word));
    if (WithV) s_inv[tid] = detail::v_inv_of(bits_float(static_cast<uint32_t>(word >> 32)));
  }
  __syncthreads();
  // V first: its registers are free before K's scales are taken (step 4 of quantize_rows, where a
  // few threads' double-precision reciprocals meet every other register live).
  if constexpr (WithV) {
    if (has_v) {
      detail::quantize_v_tile<In, HeadDim>(v_data, s_inv, s_tile, detail::kv_v_out<HeadDim>(p.v, bh),
                                           p.v.seq_len_pad, tok0, detail::kv_seq_pad(p.k, seq_len));
    }
  }
  if (has_k) {
    detail::quantize_rows<In, HeadDim, Bits, Terms, false, Smooth, false, true>(
        k_data, detail::kv_chunk_k_tile<HeadDim, Bits, Terms>(p.k, bh, tok0, n_valid, seq_len), s_mean,
        s_group_max, s_group_inv);
  }
}

}  // namespace sagejit::kernels
