// attn_params.cuh — the launch arguments of the attention kernels (AttnParams) and the shared-memory
// footprint of a tile configuration (attn_smem_bytes), shared by the host planner and the device.
//
// This header compiles under NVRTC (no headers at all) and as plain C++ on the host: it uses only
// builtin types, and the host side asserts the struct's size so that a layout drift between the two
// compilers fails the build, not a launch. All pointers are device pointers.
//
// Where the scale factors live (so that each appears exactly once):
//   * q_scale already contains sm_scale · log2(e) (the quant kernel folds it in), so
//     q_int · k_int · q_scale · k_scale is the score in the log2 domain: s2 = (q·γ(k)) · sm_scale ·
//     log2(e), where γ(k) = k − k̄ (K smoothing).
//   * The static P scale of the FP8 P·V path is 2^kLog2Fp8Max = 448: P̃ = exp2(s2 − m + 8.807…)
//     ∈ [0, 448]. The row sum l accumulates the same P̃ (unquantized, fp32), so O = Σ P̃ V / Σ P̃
//     needs no 1/448 factor; only the LSE subtracts the offset back.
//   * v_scale (per batch, kv-head, channel) is applied once, in the epilogue.
//   * sm_scale itself is read by the kernel only for Q smoothing (ΔS = q̄ · γ(k) · sm_scale · log2 e;
//     q_mean is stored unscaled).
//   * lse_correction = q · k̄ · sm_scale (natural-log units, per query row, from the *original*,
//     unsmoothed q) undoes K smoothing in the LSE: softmax ignores the row constant, the LSE does not.
//
// Launch: grid (ceil(seq_q / cta_q), heads_q, batch), block warps_q · 32 threads, dynamic shared
// memory attn_smem_bytes(...) (above 48 KiB: cuFuncSetAttribute MAX_DYNAMIC_SHARED_SIZE_BYTES).
//
// Varlen (cu_seqlens_q/k non-null): the quantized workspace keeps the padded per-batch layout of
// quant_layout.cuh with seq_q_pad / seq_kv_pad sized for the longest sequence (batch slot b holds
// sequence b from row 0; only the tiles of its own length are written, see "Varlen" there),
// k_mean / v_scale are per sequence, and lse_correction keeps [B, Hq, seq_q] with seq_q the longest.
// The user tensors are packed: output row i of sequence b is at o + (cu_seqlens_q[b] + i)·o_stride_s
// + h·o_stride_h (o_stride_b unused), and likewise the fp16 V of the FP16 P·V mode with cu_seqlens_k.
// The LSE is packed too, as flash-attn's varlen functions return it: float [Hq, total_q], row i of
// sequence b of head h at lse[h·total_q + cu_seqlens_q[b] + i], total_q = cu_seqlens_q[batch]
// (no padding rows for the caller to mask). Causal masks align per sequence (bottom-right: query i
// sees keys j <= i + len_k(b) − len_q(b)). grid.x covers the longest sequence; CTAs past a
// sequence's end exit.
#pragma once

#ifndef __CUDACC_RTC__  // host code (the runtime; CPU tests of attn_wgmma_tile.cuh's tile orders)
#ifndef __host__
#define __host__
#endif
#ifndef __device__
#define __device__
#endif
#ifndef __forceinline__
#define __forceinline__ inline
#endif
#endif

namespace sagejit::kernels {

struct AttnParams {
  // --- quantized inputs (quant_layout.cuh) ---
  // int8 [B, Hq, seq_q_pad, D] or packed int4 [.., D/2]; with the single-warpgroup kernel's fused_q
  // the caller's fp16/bf16 Q (the output's dtype), element strides q_stride_*, which the kernel
  // quantizes itself (attn_wgmma_q.cuh); q_scale, q_mean and lse_correction are then not read.
  const void* q;
  const float* q_scale;      // [B, Hq, seq_q_pad / cta_q, q_groups]; contains sm_scale·log2(e)
  const float* q_mean;       // [B, Hq, seq_q_pad / cta_q, D], unscaled; only with Cfg::smooth_q
  const void* k;             // int8 [B, Hkv, seq_kv_pad, D] or packed int4 [.., D/2]
  const float* k_scale;      // [B, Hkv, seq_kv_pad / cta_k, k_groups]
  const float* k_mean;       // [B, Hkv, D]: k̄ (K was quantized as K − k̄); read only by fused_q with an
                             // LSE (for the correction q·k̄·sm_scale), else null allowed
  // --- V ---
  // FP8 P·V: e4m3 [B, Hkv, D, seq_kv_pad], channel-major and token-permuted (quant_layout.cuh),
  //          padded tokens must be 0.
  // FP16 P·V: the user's fp16/bf16 V (same dtype as the output), channel contiguous, element
  //          strides below; rows must be 16-byte aligned (strides multiples of 8 elements).
  const void* v;
  const float* v_scale;      // [B, Hkv, D]; FP8 P·V only
  // --- outputs ---
  void* o;                   // fp16/bf16, channel contiguous, 16-byte aligned rows
  float* lse;                // [B, Hq, seq_q] natural log (varlen: [Hq, total_q]), or null (read
                             // only with Cfg::write_lse)
  const float* lse_correction;  // [B, Hq, seq_q] = q·k̄·sm_scale, or null (no K smoothing)
  // --- varlen (both null, or both [B + 1] int32 prefix sums of the sequence lengths) ---
  const int* cu_seqlens_q;
  const int* cu_seqlens_k;
  // --- element strides ---
  long long v_stride_b, v_stride_h, v_stride_s;  // FP16 P·V only
  long long q_stride_b, q_stride_h, q_stride_s;  // fused_q only (the caller's Q)
  long long o_stride_b, o_stride_h, o_stride_s;
  // --- shapes ---
  int batch;
  int heads_q;
  int heads_kv;              // divides heads_q; kv head = q head / (heads_q / heads_kv)
  int seq_q;                 // without varlen: the length; with: the longest
  int seq_kv;
  int seq_q_pad;             // round_up(seq_q, cta_q)   (the quant kernel's block_q == cta_q)
  int seq_kv_pad;            // round_up(seq_kv, cta_k)  (the quant kernel's block_k == cta_k)
  float sm_scale;            // softmax scale (1/sqrt(D) by default); see the header comment
  float q_scale_multiplier;  // fused_q only: sm_scale·log2(e) as the quantization plan rounds it
  int lpt_heads;             // causal, single-warpgroup kernel: (b, h) per group of its longest-first
                             // order (attn_wgmma_tile_lpt; 0: one group)
};

#ifndef __CUDACC_RTC__
static_assert(sizeof(void*) == 8, "sagejit targets 64-bit hosts only");
static_assert(sizeof(AttnParams) == 13 * 8 + 9 * 8 + 10 * 4, "AttnParams layout drifted");
#endif

// Shared-memory layout of one CTA. Rows are padded to an odd number of 16-byte chunks so that the
// 8 row addresses of an ldmatrix phase fall into 8 distinct bank groups for any row length
// (64/96/128/256 channels, int8 or int4, V rows of cta_k bytes) — a swizzle would need a power-of-2
// row length, which D = 96 is not.
struct AttnSmemLayout {
  int q_stride, k_stride, v_stride;  // bytes per smem row
  int q_offset, k_offset, v_offset, qmean_offset, dscore_offset;
  int k_stage_bytes, v_stage_bytes;
  int mainloop_bytes, epilogue_bytes, total_bytes;
};

__host__ __device__ constexpr int attn_padded_row_bytes(int bytes) {
  return ((bytes / 16) % 2 == 0 ? bytes / 16 + 1 : bytes / 16) * 16;
}

__host__ __device__ constexpr AttnSmemLayout attn_smem_layout(int head_dim, int cta_q, int cta_k,
                                                              int stages, int qk_bits, bool pv_fp8,
                                                              bool smooth_q) {
  AttnSmemLayout s{};
  const int qk_row = head_dim * qk_bits / 8;
  s.q_stride = attn_padded_row_bytes(qk_row);
  s.k_stride = s.q_stride;
  // FP8: V^T rows of cta_k bytes (one per channel); FP16: V rows of 2·D bytes (one per key).
  s.v_stride = pv_fp8 ? attn_padded_row_bytes(cta_k) : attn_padded_row_bytes(2 * head_dim);
  s.k_stage_bytes = cta_k * s.k_stride;
  s.v_stage_bytes = pv_fp8 ? head_dim * s.v_stride : cta_k * s.v_stride;
  s.q_offset = 0;
  s.k_offset = cta_q * s.q_stride;
  s.v_offset = s.k_offset + stages * s.k_stage_bytes;
  s.qmean_offset = s.v_offset + stages * s.v_stage_bytes;
  s.dscore_offset = s.qmean_offset + (smooth_q ? head_dim * 4 : 0);
  s.mainloop_bytes = s.dscore_offset + (smooth_q ? cta_k * 4 : 0);
  // The epilogue stages the fp16/bf16 output tile through shared memory (reusing the above).
  s.epilogue_bytes = cta_q * attn_padded_row_bytes(2 * head_dim);
  s.total_bytes = s.mainloop_bytes > s.epilogue_bytes ? s.mainloop_bytes : s.epilogue_bytes;
  return s;
}

__host__ __device__ constexpr int attn_smem_bytes(int head_dim, int cta_q, int cta_k, int stages,
                                                  int qk_bits, bool pv_fp8, bool smooth_q) {
  return attn_smem_layout(head_dim, cta_q, cta_k, stages, qk_bits, pv_fp8, smooth_q).total_bytes;
}

// The sm_90a kernel (attn_wgmma.cuh): a producer warpgroup and `consumers` (1 or 2) consumer
// warpgroups of 64 query rows each (cta_q = 64·consumers), K/V blocks of cta_k keys (128, or 64),
// and a ring of `stages` K+V slots, the ones tile and the v_scale buffers (+1 KiB to align tiles for
// swizzling). P·V is FP8 (quantized V) or f16/bf16 (the caller's V, attn_wgmma.cuh).
// One consumer leaves room for 2 CTAs per SM (so a CTA's softmax overlaps the other's MMAs); two
// consumers run 1 CTA per SM (ping-pong between them is optional).
constexpr int kWgmmaRowsPerWg = 64;  // query rows per consumer warpgroup (wgmma M); warp_q 16
constexpr int kWgmmaCtaK = 128;  // keys per K/V block (the default; 64 at head dim 256) == block_k == warp_k
// Q and K rows are read in TMA boxes as wide as their swizzle span: D = 128 one 128B-swizzled box,
// 256 two, 64 one 64B box, 96 three 32B boxes (96 bytes is no swizzle span; each 32B box is one
// k32 step).
__host__ __device__ constexpr int attn_wgmma_qk_box_bytes(int head_dim) {
  return head_dim % 128 == 0 ? 128 : head_dim == 64 ? 64 : 32;
}

// 16-bit V (the caller's) is read in boxes of [cta_k keys × this many channels]: rows of 128 bytes
// (128B swizzle), or 64 bytes (64B swizzle) at D = 96, which 64 does not divide.
__host__ __device__ constexpr int attn_wgmma_v16_box_channels(int head_dim) { return head_dim % 64 == 0 ? 64 : 32; }

// The tile of ones the row sums multiply by (B of P̃ · 1): e4m3 8 rows × 128 bytes (one 128B swizzle
// atom, whatever cta_k: the k-steps move 32 bytes along a row), or f16 16 key rows of 64 (one
// MN-major k16 step, two 1024-byte swizzle atoms).
__host__ __device__ constexpr int attn_wgmma_ones_bytes(bool pv_f16) { return pv_f16 ? 2048 : 1024; }

// The tile's v_scale row, copied to shared memory by the producer at tile start (two buffers by
// tile parity): the epilogue reads it there instead of waiting on 32 global loads per thread. f16
// P·V has no v_scale.
__host__ __device__ constexpr int attn_wgmma_vscale_bytes(int head_dim, bool pv_f16) {
  return pv_f16 ? 0 : 2 * 4 * head_dim;
}
__host__ __device__ constexpr int attn_wgmma_threads(int consumers) { return 128 * (consumers + 1); }
__host__ __device__ constexpr int attn_wgmma_min_ctas(int consumers) { return consumers == 1 ? 2 : 1; }
// Static shared memory of the kernel, an upper bound (what ptxas reports, checked by
// tests/cpu/kernels/test_attn_wgmma_compiles.cpp): the consumers' loop state (kWgmmaStateSlots ints
// per consumer thread) plus 1 KiB for the mbarriers and the problem geometry.
constexpr int kWgmmaStateSlots = 10;
__host__ __device__ constexpr int attn_wgmma_static_smem_bytes(int consumers) {
  return kWgmmaStateSlots * 4 * 128 * consumers + 1024;
}
// Dynamic shared memory without the O staging: Q and the ring of K (int8; two terms: both twice) and
// V (e4m3, or the caller's f16) blocks, the ones tile, the v_scale buffers, and 1 KiB to align the
// swizzled tiles.
__host__ __device__ constexpr int attn_wgmma_ring_smem_bytes(int head_dim, int consumers, int stages, bool pv_f16,
                                                             int qk_terms = 1, int cta_k = kWgmmaCtaK) {
  return qk_terms * consumers * kWgmmaRowsPerWg * head_dim +
         stages * (qk_terms + (pv_f16 ? 2 : 1)) * cta_k * head_dim + attn_wgmma_ones_bytes(pv_f16) +
         attn_wgmma_vscale_bytes(head_dim, pv_f16) + 1024;
}
// The epilogue's O staging: each consumer's 64 rows of 16-bit O, rows padded by 16 bytes (stmatrix
// in, 16-byte pieces out; attn_wgmma.cuh), where it fits beside the ring (attn_wgmma_smem_fits).
__host__ __device__ constexpr int attn_wgmma_o_row_bytes(int head_dim) { return 2 * head_dim + 16; }
__host__ __device__ constexpr int attn_wgmma_o_stage_bytes(int head_dim, int consumers) {
  return consumers * kWgmmaRowsPerWg * attn_wgmma_o_row_bytes(head_dim);
}
// Whether a CTA of per_cta bytes of shared memory (dynamic and static) fits: within 227 KiB, and
// attn_wgmma_min_ctas of them (with the 1 KiB the driver reserves each) within an SM's 228 KiB.
__host__ __device__ constexpr bool attn_wgmma_smem_fits(int per_cta, int consumers) {
  return per_cta <= 227 * 1024 && attn_wgmma_min_ctas(consumers) * (per_cta + 1024) <= 228 * 1024;
}
__host__ __device__ constexpr bool attn_wgmma_stages_o(int head_dim, int consumers, int stages, bool pv_f16,
                                                       int qk_terms = 1, int cta_k = kWgmmaCtaK) {
  return attn_wgmma_smem_fits(attn_wgmma_ring_smem_bytes(head_dim, consumers, stages, pv_f16, qk_terms, cta_k) +
                                  attn_wgmma_o_stage_bytes(head_dim, consumers) +
                                  attn_wgmma_static_smem_bytes(consumers),
                              consumers);
}
// Where the whole staging tile does not fit and the consumers quantize Q themselves, the one-term FP8
// form at head dim 256 stages O in parts of 128 channels in each consumer's Q tile, which nothing
// refills before the next tile's Q quantization (attn_wgmma.cuh, kStageOInQ).
__host__ __device__ constexpr bool attn_wgmma_stages_o_in_q(int head_dim, int consumers, int stages, bool pv_f16,
                                                            int qk_terms = 1, int cta_k = kWgmmaCtaK,
                                                            bool fused_q = false) {
  return !attn_wgmma_stages_o(head_dim, consumers, stages, pv_f16, qk_terms, cta_k) && fused_q && head_dim == 256 &&
         qk_terms == 1 && !pv_f16;
}
// The buffer of O's parts: per consumer 64 rows of 2·channels bytes.
__host__ __device__ constexpr int attn_wgmma_o_parts_bytes(int consumers, int channels) {
  return consumers * kWgmmaRowsPerWg * 2 * channels;
}
// Elsewhere, where the whole staging tile does not fit, O leaves in parts of 128 or 64 channels
// through a buffer of their own (attn_wgmma_o_parts_bytes, XOR-swizzled: AttnWgmmaStagedOParts), the
// wider where it fits by the same rule; 0 where neither does (or O is staged whole or in the Q tile).
__host__ __device__ constexpr int attn_wgmma_o_part_channels(int head_dim, int consumers, int stages, bool pv_f16,
                                                             int qk_terms = 1, int cta_k = kWgmmaCtaK,
                                                             bool fused_q = false) {
  if (attn_wgmma_stages_o(head_dim, consumers, stages, pv_f16, qk_terms, cta_k) ||
      attn_wgmma_stages_o_in_q(head_dim, consumers, stages, pv_f16, qk_terms, cta_k, fused_q)) {
    return 0;
  }
  const int per_cta = attn_wgmma_ring_smem_bytes(head_dim, consumers, stages, pv_f16, qk_terms, cta_k) +
                      attn_wgmma_static_smem_bytes(consumers);
  for (int channels = 128; channels >= 64; channels /= 2) {
    if (head_dim % channels == 0 &&
        attn_wgmma_smem_fits(per_cta + attn_wgmma_o_parts_bytes(consumers, channels), consumers)) {
      return channels;
    }
  }
  return 0;
}
// Dynamic shared memory of the kernel: the ring's, plus the O staging (whole or in parts) where it fits.
__host__ __device__ constexpr int attn_wgmma_smem_bytes(int head_dim, int consumers, int stages, bool pv_f16,
                                                        int qk_terms = 1, int cta_k = kWgmmaCtaK, bool fused_q = false) {
  return attn_wgmma_ring_smem_bytes(head_dim, consumers, stages, pv_f16, qk_terms, cta_k) +
         (attn_wgmma_stages_o(head_dim, consumers, stages, pv_f16, qk_terms, cta_k)
              ? attn_wgmma_o_stage_bytes(head_dim, consumers)
              : attn_wgmma_o_parts_bytes(
                    consumers, attn_wgmma_o_part_channels(head_dim, consumers, stages, pv_f16, qk_terms, cta_k, fused_q)));
}
// The single-warpgroup form (attn_wgmma_single.cuh; wgmma tiles with one stage): 128 threads, no
// producer; dynamic shared memory for Q, one K and one V block, the ones tile and 1 KiB to align the
// swizzled tiles. Its static shared memory is three mbarriers, which ptxas reports as 1024 bytes (the
// dynamic array's 1024-byte alignment), and in the lean form (FP8 P·V at D = 96 with 4 CTAs per SM,
// and at D = 256) 20 bytes a thread of values its block loop does not hold in registers: 3072. The
// bound is the larger; the compile test checks it.
constexpr int kWgmmaSingleThreads = 128;
constexpr int kWgmmaSingleStaticSmem = 3072;
__host__ __device__ constexpr int attn_wgmma_single_smem_bytes(int head_dim, bool pv_f16 = false) {
  return kWgmmaRowsPerWg * head_dim + (pv_f16 ? 3 : 2) * kWgmmaCtaK * head_dim + attn_wgmma_ones_bytes(pv_f16) + 1024;
}
// The shared-ring form of the single-warpgroup kernel (attn_wgmma_single.cuh with Cfg::warpgroups
// > 1; attn_wgmma_kv_ring.cuh): one CTA per SM whose `warpgroups` warpgroups (64 query rows each)
// read every K/V block from one ring of kWgmmaSharedSlots slots (K, FP8 V and the ones tile), so a
// block leaves L2 once per SM instead of once per warpgroup. Dynamic shared memory: a Q tile and an
// O staging tile per warpgroup, the slots, and 1 KiB to align the swizzled tiles.
constexpr int kWgmmaSharedSlots = 4;
__host__ __device__ constexpr int attn_wgmma_shared_slot_bytes(int head_dim) {
  return 2 * kWgmmaCtaK * head_dim + attn_wgmma_ones_bytes(false);
}
__host__ __device__ constexpr int attn_wgmma_shared_smem_bytes(int head_dim, int warpgroups) {
  return warpgroups * kWgmmaRowsPerWg * head_dim + kWgmmaSharedSlots * attn_wgmma_shared_slot_bytes(head_dim) +
         attn_wgmma_o_stage_bytes(head_dim, warpgroups) + 1024;
}
// Tile slots per (batch, head) of the wgmma kernel: the q tiles, rounded up to even with a causal
// mask, where slots 2i and 2i + 1 pair the i-th longest and the i-th shortest tile (equal work per
// pair; an odd middle tile's partner slot is empty). The grid of a one-tile-per-CTA launch is
// (slots, heads_q, batch).
__host__ __device__ constexpr int attn_wgmma_q_slots(int seq_q, int cta_q, bool causal) {
  return causal ? (seq_q + 2 * cta_q - 1) / (2 * cta_q) * 2 : (seq_q + cta_q - 1) / cta_q;
}
// CTAs of a persistent launch: one per resident slot, never more than there is work (tiles; with a
// causal mask a CTA takes its tiles in pairs, so half of the slots).
__host__ __device__ constexpr int attn_wgmma_persistent_ctas(int slots, int sm_count, int consumers, bool causal) {
  const int work = causal ? slots / 2 : slots;
  return work < sm_count * attn_wgmma_min_ctas(consumers) ? work : sm_count * attn_wgmma_min_ctas(consumers);
}

}  // namespace sagejit::kernels
