// quant_params.cuh — the parameter structs of the quantization kernels, shared by host and device.
//
// Plain structs of pointers, strides and sizes, passed by value as the kernel's only argument, so
// the host fills exactly the bytes the kernel reads (the struct layout is the ABI: reorder a field
// and both sides change together, because both include this file). Compiles as plain C++: no CUDA
// keyword outside the macros quant_layout.cuh provides.
//
// Input tensors are [B, H, S, D] addressed through (stride_b, stride_h, stride_s), in elements; the
// channel dimension D is contiguous (stride 1) and every row starts 16-byte aligned (so D * 2 bytes
// rows and the strides must be multiples of 8 elements), which is what lets every load be 16 bytes.
// HND, NHD and any other stride pattern satisfying that are accepted as they are, without a copy.
// Outputs follow quant_layout.cuh and are contiguous.
//
// Varlen (`cu_seqlens` non-null: B + 1 int32 prefix sums of the sequence lengths, in device memory):
// the input is packed, token i of sequence b at in + (cu_seqlens[b] + i) * stride_s + h * stride_h
// (stride_b unused), and `seq_len` is the longest sequence, the row count the padded per-batch
// outputs are laid out for (quant_layout.cuh, "Varlen"). Each CTA reads its sequence's length and
// returns at once when its tile lies wholly past that sequence's padded end: the grid covers the
// longest sequence, so the shorter ones leave their tail blocks unwritten (never read).
//
// The constants below fix the kernels' thread mapping and summation order. The host reference
// (reference/quant_reference.cpp) includes this file and reproduces those orders from them, which
// is what makes k_mean and q_mean bit-exact between host and GPU.
#pragma once

#include "quant_layout.cuh"

namespace sagejit::kernels {

// Threads per CTA of every quantization kernel. Each row (token) of a tile is read by a quad of 4
// lanes; lane t of the quad owns the 16-byte chunks t, t + 4, t + 8, ... (8 channels each) so one
// warp instruction reads 8 rows x 64 contiguous bytes: every 32-byte sector fully used.
constexpr int kQuantThreads = 256;
constexpr int kQuantWarps = kQuantThreads / 32;
// A CTA covers 64 rows per pass: row slot s = 8 * warp + lane / 4 reads rows s, s + 64, s + 128...
constexpr int kQuantRowSlots = kQuantThreads / 4;
// The largest block_q / block_k quantize_qk handles (two passes over the 64 row slots).
constexpr int kMaxBlockTokens = 128;
// Tokens per CTA of quantize_v: 128 tokens = 128 bytes of e4m3 per channel, one full cache line.
constexpr int kVTileTokens = 128;
// Tokens per statistics chunk: each chunk of each (b, h) gives one partial. Fixed (not derived from
// the grid) so the summation order does not depend on the device; equal to the V tile so that one
// CTA of quantize_kv (quant_kv.cuh) holds exactly one chunk of K and one V tile.
constexpr int kStatsChunkTokens = kVTileTokens;

// Summation order, shared by quant_stats (k_mean) and quantize_qk (q_mean), per channel, over the
// valid rows of a tile of T rows (T a multiple of 64):
//   leaf[s] = ((0 + x[s]) + x[s + 64]) + x[s + 128] + ...   sequential over the rows of slot s,
//                                                           skipping invalid rows, s = 0..63
//   tile    = balanced pairwise tree over leaf[0..63] in slot order
//             (((leaf0 + leaf1) + (leaf2 + leaf3)) + ...)
// For k_mean the tiles are the kStatsChunkTokens-token chunks, summed sequentially in chunk order
// (starting from 0), then divided by seq_len. q_mean is one tile (the Q block) divided by its
// number of valid rows. All in float32, round to nearest even, no FMA.
//
// LSE correction (quantize_qk for Q, DESIGN.md §1): per valid query row, from the unsmoothed row x,
//   part[t] = ((0 + x[c0]·m[c0]) + x[c1]·m[c1]) + ...   t = 0..3, sequential over the channels
//             c = 8 * (t + 4j) + i, j = 0..D/32-1 outer, i = 0..7 inner (lane t's 16-byte chunks)
//   lse_correction = ((part[0] + part[1]) + (part[2] + part[3])) · sm_scale
// with m the K mean of the row's kv head; every product and sum rounded on its own (no FMA).

// Sequence `batch` of a call as the kernels see it (the varlen rule above): its length, and where
// its first row lies in a tensor with strides (stride_b, stride_s) — batch slot b of a padded
// tensor (len = seq_len), or sequence b of packed inputs (cu_seqlens non-null).
struct Sequence {
  int batch;
  int begin;  // packed: the first token's index in the packed tensor; else -1
  int len;
  __host__ __device__ long long first_row(long long stride_b, long long stride_s) const {
    return begin < 0 ? static_cast<long long>(batch) * stride_b : static_cast<long long>(begin) * stride_s;
  }
};
__host__ __device__ inline Sequence sequence_of(const int* cu_seqlens, int batch, int seq_len) {
  if (cu_seqlens == nullptr) return {batch, -1, seq_len};
  return {batch, cu_seqlens[batch], cu_seqlens[batch + 1] - cu_seqlens[batch]};
}

struct QuantQKParams {
  const void* in;              // [B, H, S, D] fp16 / bf16
  long long stride_b, stride_h, stride_s;  // elements
  void* out;                   // int8 [B, H, S_pad, D] or packed int4 [B, H, S_pad, D/2]
  float* scale;                // [B, H, S_pad / block_tokens, q_groups or k_groups]
  float* q_mean;               // Q with Smooth: written, [B, H, S_pad / block_tokens, D]
  const float* k_mean;         // read, [B, Hkv, D] (from quant_stats): K with Smooth, subtracted;
                               // Q with lse_correction, the mean of the q head's kv head
  float* lse_correction;       // Q: written when non-null, [B, H, S] (unpadded) = q·k̄·sm_scale
  const int* cu_seqlens;       // varlen: [B + 1] (see above), else null
  int batch, heads;
  int heads_kv;                // K heads (divides heads); kv head = head / (heads / heads_kv)
                               // (read by Q with lse_correction only)
  int seq_len;                 // valid tokens S (varlen: the longest sequence; the row stride of
                               // lse_correction)
  int seq_len_pad;             // S_pad = round_up(S, block_tokens)
  int block_tokens;            // block_q or block_k: multiple of 16, <= kMaxBlockTokens
  int warp_tokens;             // warp_q / warp_k: a multiple of 16 that divides block_tokens
  layout::Granularity granularity;
  float scale_multiplier;      // Q: sm_scale * log2(e), folded into the written scale; K: 1
  float sm_scale;              // Q with lse_correction: the plain softmax scale (natural log)
};

struct QuantStatsParams {
  const void* k;               // [B, H, S, D] or null (no K mean wanted)
  long long k_stride_b, k_stride_h, k_stride_s;
  const void* v;               // [B, H, S, D] or null (no V scale wanted)
  long long v_stride_b, v_stride_h, v_stride_s;
  float* k_mean;               // [B, H, D]
  float* v_scale;              // [B, H, D] = max(absmax / 448, kMinScale)
  float* partial_sum;          // workspace [B, H, stats_chunks(S), D]
  float* partial_max;          // workspace [B, H, stats_chunks(S), D]
  unsigned int* counters;      // workspace [B * H], zero before the first launch; left zero
  const int* cu_seqlens;       // varlen: [B + 1] (see above), else null
  int batch, heads, seq_len;   // seq_len: varlen, the longest sequence (sizes the partials)
};

struct QuantVParams {
  const void* in;              // [B, H, S, D] fp16 / bf16
  long long stride_b, stride_h, stride_s;
  const float* v_scale;        // [B, H, D] (from quant_stats)
  void* out;                   // e4m3 [B, H, D, S_pad], token-permuted (layout::v_token_at)
  const int* cu_seqlens;       // varlen: [B + 1] (see above), else null
  int batch, heads, seq_len;   // seq_len: varlen, the longest sequence
  int seq_len_pad;             // multiple of 16 (round_up(S, block_k))
  int block_tokens;            // block_k: varlen, sequence b's tokens [0, round_up(len_b, block_k))
                               // are written (what the attention kernel's K/V tiles cover)
};

// quantize_kv (quant_kv.cuh): K, and V when FP8, with K's mean and V's scale computed in the same
// kernel. The three structs are filled as for the separate kernels (stats.partial_*, stats.counters
// as for quant_stats), plus:
struct QuantKVParams {
  QuantQKParams k;             // K: in, strides, out, scale, k_mean (read back after the statistics)
  QuantVParams v;              // V (when the kernel quantizes it): in, strides, v_scale, out
  QuantStatsParams stats;      // k / v (null: statistic not wanted), k_mean, v_scale, partials, counters
  unsigned int* next_item;     // workspace [1]: the work ticket (quant_kv.cuh, "Order")
  unsigned long long* stats_words;  // workspace [B * H * HeadDim]: (b, h, c)'s k_mean and v_scale bits
                                    // in one word, 0 until written (quant_kv.cuh, "Statistics words")
  int lag;                     // steps between a (b, h)'s statistics and its quantization items (>= 1)
  int release_dependents;      // non-zero: each CTA runs griddepcontrol.launch_dependents as it starts
                               // (the attention call's programmatic launch follows; quant_kv.cuh)
  // next_item and stats_words, like counters, are zero before each launch (the host clears them).
};

// Grid sizes and workspace, so host code never re-derives them.
// The counters region: one ticket counter per (b, h) (quant_stats' or quantize_kv's statistics
// items, whichever runs), quantize_kv's work ticket, then (8-byte aligned) its statistics words.
__host__ __device__ constexpr long long stats_words_offset(int batch, int heads) {
  return (static_cast<long long>(batch) * heads + 1 + 1) / 2 * 8;
}
__host__ __device__ constexpr long long counters_region_bytes(int batch, int heads, int head_dim) {
  return stats_words_offset(batch, heads) + static_cast<long long>(batch) * heads * head_dim * 8;
}
__host__ __device__ constexpr int stats_chunks(int seq_len) {
  return (seq_len + kStatsChunkTokens - 1) / kStatsChunkTokens;
}
// Floats of each of partial_sum / partial_max.
__host__ __device__ constexpr long long stats_partial_floats(int batch, int heads, int seq_len,
                                                            int head_dim) {
  return static_cast<long long>(batch) * heads * stats_chunks(seq_len) * head_dim;
}
__host__ __device__ constexpr int v_tiles(int seq_len_pad) {
  return (seq_len_pad + kVTileTokens - 1) / kVTileTokens;
}
// quantize_kv_cluster (quant_kv_cluster.cuh): the most chunks of 128 keys it serves, one CTA each in
// one cluster: 16 (2k keys; beyond 8 CTAs a cluster size is not portable, and the host asks the GPU
// whether it holds one). With the partials pushed (st.async) rather than exchanged by a releasing
// cluster barrier, 16-CTA clusters beat quantize_kv at 2k keys on the H100 (B4, D128 98.1 -> 76.8 us,
// call 423 -> 396 us; D64 91.8 -> 85.7 us; bench/results/2026-11-27-cluster-exchange-h100.md); with
// the barrier they had lost (0.451-0.457 against 0.447-0.449 ms end to end). D = 256 stopped at 8
// until its pushed partials shared the V tile's bytes (bench/results/2026-11-27-quant-geometry-h100.md §8).
__host__ __device__ constexpr int kv_cluster_max_chunks(int /*head_dim*/) { return 16; }

// quantize_kv's items hold one tensor each where a chunk of K and V together would leave one CTA per
// SM: D = 256 with V (128 registers of chunk data; one tensor's 64 give 2). Elsewhere an item holds
// both (one tensor per item there measured slower at 8k: twice the tickets and set-ups;
// bench/results/2026-11-27-round-robin-and-two-levers-h100.md §2).
__host__ __device__ constexpr bool kv_split_tensors(int head_dim, bool with_v) { return with_v && head_dim > 128; }
// A step's segments of statistics items: one, or with split tensors K's (when smoothing) and V's.
__host__ __device__ constexpr int kv_stats_segments(int head_dim, bool smooth, bool with_v) {
  return kv_split_tensors(head_dim, with_v) && smooth ? 2 : 1;
}
// A step's segments, each of one item per chunk: the statistics segments, then one quantization
// segment, or K's and V's with split tensors.
__host__ __device__ constexpr int kv_step_segments(int head_dim, bool smooth, bool with_v) {
  return kv_stats_segments(head_dim, smooth, with_v) + (kv_split_tensors(head_dim, with_v) ? 2 : 1);
}

// quantize_kv: work items in steps of `segments` (kv_step_segments) x chunks of the longest sequence
// (at least 1), one step per (b, h) and `lag` more (quant_kv.cuh, "Order"); one CTA each.
__host__ __device__ constexpr long long kv_items(int batch, int heads, int seq_len, int lag, int segments) {
  return (static_cast<long long>(batch) * heads + lag) * segments *
         (stats_chunks(seq_len) > 0 ? stats_chunks(seq_len) : 1);
}

// Work item `ticket` of quantize_kv (quant_kv.cuh, "Order"): its (b, h) index (outside [0, B·H) in
// the first and last half steps, which hold no work), its segment of the step and its chunk. Step s
// holds `segments` segments of `grid_chunks` items: the first `stats_segments` the statistics items
// of (b, h) = s, the rest the quantization items of (b, h) = s − lag.
struct KvItem {
  int bh, segment, chunk;
};
__host__ __device__ constexpr KvItem kv_item(int ticket, int grid_chunks, int segments, int stats_segments, int lag) {
  const int step = ticket / (segments * grid_chunks);
  const int within = ticket - step * segments * grid_chunks;
  // (Two segments, every head dim but 256 with V, by a compare: the division cost quantize_kv D128 24
  // SASS instructions.)
  const int segment = segments == 2 ? (within < grid_chunks ? 0 : 1) : within / grid_chunks;
  return {segment < stats_segments ? step : step - lag, segment, within - segment * grid_chunks};
}

}  // namespace sagejit::kernels
