// quant_layout.cuh — the contract between the quantization kernels and the attention kernels.
//
// Everything that says where a quantized value or a scale lives is here, once, so that the
// quantization kernels (quant_qk.cuh, quant_v.cuh), the attention kernels and the host reference
// (reference/quant_reference.cpp) agree by construction. This header compiles both under NVRTC and
// as plain C++ (the host reference and the planner include it): it uses no CUDA header.
//
// Tensors the quantization kernels write (all contiguous, in a workspace sagejit owns):
//
//   Q (int8)   [B, Hq,  Sq_pad,  D]      Sq_pad  = round_up(Sq,  block_q);  padded rows are 0
//   Q (int4)   [B, Hq,  Sq_pad,  D/2]    two values per byte, even channel in the low nibble
//   Q (int8x2) [B, Hq,  Sq_pad,  2·D]    two-term int8 (below): the value at [0, D), the residual at
//                                        [D, 2D) of each row
//   q_scale    [B, Hq,  Sq_pad / block_q,  q_groups(...)]   float, sm_scale·log2(e) folded in
//   q_mean     [B, Hq,  Sq_pad / block_q,  D]               float, only with Q smoothing
//   K (int8)   [B, Hkv, Skv_pad, D]      Skv_pad = round_up(Skv, block_k);  padded rows are 0
//   K (int4)   [B, Hkv, Skv_pad, D/2]
//   K (int8x2) [B, Hkv, Skv_pad, 2·D]
//   k_scale    [B, Hkv, Skv_pad / block_k, k_groups(...)]   float
//   k_mean     [B, Hkv, D]               float, mean over the Skv valid tokens (K smoothing)
//   V (e4m3)   [B, Hkv, D, Skv_pad]      transposed (channel-major) and token-permuted, see below
//   v_scale    [B, Hkv, D]               float, max over valid tokens of |v| / 448
//   lse_correction [B, Hq, Sq]           float, q·k̄·sm_scale per query row (K smoothing, for the LSE)
//
// Varlen (packed inputs with cumulative sequence offsets, flash-attn's convention). The layout above
// is kept, with B the number of sequences and Sq, Skv the longest lengths (max_seqlen_q / _k): batch
// slot b holds sequence b from row 0. What is defined in slot b, for a sequence of len_b tokens:
//   Q / K values, their scales and q_mean: the blocks [0, ceil(len_b / block)), rows >= len_b of the
//                             last one 0 (exactly as without varlen at S = len_b);
//   V:                        tokens [0, round_up(len_b, block_k)) of each channel row, those >= len_b 0;
//   k_mean, v_scale:          always; over the len_b tokens only. An empty sequence has k_mean 0 and
//                             v_scale kMinScale, so the attention epilogue's v_scale · 0 stays 0;
//   lse_correction:           rows [0, len_b) of [b, h, :].
// Everything else in the slot is left unwritten: the attention kernel reads only the tiles of each
// sequence's own length (its CTAs past a sequence's end exit), so the quantization kernels skip the
// tail blocks of short sequences rather than spend bandwidth zeroing them.
//
// Scale groups follow the m16n8 MMA accumulator layout (wgmma's m64nN layout is four of these, one
// per warp). Lane 4g + t of a warp holds accumulator rows {g, g+8} of each 16-row tile and columns
// {8j + 2t, 8j + 2t + 1} of each 8-column tile. A warp owns `warp_q` consecutive query rows of a
// `block_q` block (warp_q a multiple of 16), and `warp_k` consecutive keys of a `block_k` block.
//   per-thread: the rows of one warp with equal (row % 8) share a scale -> 8 groups per warp;
//               the keys of one warp with equal ((key % 8) / 2) share a scale -> 4 groups per warp.
//   per-warp:   one scale per warp's rows (keys).      per-block: one scale per block.
// So a thread's accumulators are dequantized by one product q_scale[group_q] * k_scale[group_k].
//
// Two-term int8 (int8x2, the precise mode). One int8 term leaves a rounding error of up to half a
// step per element, and in Q Kᵀ these errors alone put the output's relative L1 near 0.01 (float64
// simulation, bench/qk_precision_sim.py). A second int8 term holds the rounding residual at a step
// 256 times finer, with the same scale: x ≈ scale · (q + r / 256), |r| <= 127 (the residual lies in
// [−128, 128]; clamping ±128 costs at most one fine step, 1/256 of a coarse one). The attention kernel
// forms, exactly in one s32 accumulator (|S| < 2³¹ up to D = 256),
//   S = 256 · (q_q · q_k) + q_q · r_k + r_q · q_k
// and dequantizes it with scale_q·scale_k/256: three int8 products instead of one. It drops
// r_q · r_k / 256, at most 0.25 · scale_q·scale_k per channel product: the size of the second terms'
// own rounding error (q · ±0.5 fine steps), so the error stays that of the residuals. Relative L1
// against float64: 0.0002-0.0004 instead of 0.0105-0.030 (f16 P·V, H200;
// bench/results/2026-11-26-precise-mode-h200.md).
//
// V token permutation. P·V with mma m16n8k32 (e4m3) takes P as the A operand straight from the QKᵀ
// accumulators: lane 4g + t holds keys {2t, 2t+1, 8+2t, 9+2t} of each 16 keys, but the A operand
// wants them at logical k positions {4t, 4t+1, 4t+2, 4t+3}. Rather than shuffle registers, V is
// stored so that logical position p of each 16-key group holds token
//   token(p) = 8 * ((p % 4) / 2) + 2 * ((p % 16) / 4) + (p % 2)      (within the 16-key group)
// An 8-byte run of V's row then is exactly what one lane's B fragment needs.
#pragma once

#ifndef __CUDACC_RTC__
#ifndef __host__
#define __host__
#endif
#ifndef __device__
#define __device__
#endif
#endif

namespace sagejit::layout {

enum class Granularity : int { per_thread = 0, per_warp = 1, per_block = 2 };

// The largest finite e4m3 value: P̃ and V are scaled into [-448, 448] before conversion.
constexpr float kFp8Max = 448.0f;
constexpr float kInt8Max = 127.0f;
constexpr float kInt4Max = 7.0f;
// A scale never drops below this, so an all-zero group dequantizes to exactly zero, never NaN.
constexpr float kMinScale = 1e-7f;
// Two-term int8: the residual's step is scale / kResidualScale (see above).
constexpr float kResidualScale = 256.0f;
constexpr float kLog2e = 1.4426950408889634f;

__host__ __device__ constexpr int round_up(int x, int m) { return (x + m - 1) / m * m; }

__host__ __device__ constexpr int q_groups(Granularity g, int block_q, int warp_q) {
  return g == Granularity::per_thread ? (block_q / warp_q) * 8
         : g == Granularity::per_warp ? block_q / warp_q
                                      : 1;
}

__host__ __device__ constexpr int k_groups(Granularity g, int block_k, int warp_k) {
  return g == Granularity::per_thread ? (block_k / warp_k) * 4
         : g == Granularity::per_warp ? block_k / warp_k
                                      : 1;
}

// Scale group of row `r` (0 <= r < block_q) of a Q block.
__host__ __device__ constexpr int q_group_of_row(Granularity g, int r, int warp_q) {
  return g == Granularity::per_thread ? (r / warp_q) * 8 + (r % 8)
         : g == Granularity::per_warp ? r / warp_q
                                      : 0;
}

// Scale group of key `c` (0 <= c < block_k) of a K block.
__host__ __device__ constexpr int k_group_of_key(Granularity g, int c, int warp_k) {
  return g == Granularity::per_thread ? (c / warp_k) * 4 + (c % 8) / 2
         : g == Granularity::per_warp ? c / warp_k
                                      : 0;
}

// Token (relative to the start of its 16-key group) stored at logical position p of V's row.
__host__ __device__ constexpr int v_token_at(int p) {
  return 8 * ((p % 4) / 2) + 2 * ((p % 16) / 4) + (p % 2);
}

// Logical position within a 16-key group at which token `k` (relative) is stored: inverse of
// v_token_at.
__host__ __device__ constexpr int v_position_of(int k) {
  return 4 * ((k % 8) / 2) + 2 * ((k % 16) / 8) + (k % 2);
}

}  // namespace sagejit::layout
