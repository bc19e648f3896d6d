// quant_v.cuh — V to FP8 e4m3, transposed and token-permuted for the P·V MMA (DESIGN.md §1.4).
//
// What it computes, for one tile of kVTileTokens (128) tokens of one (b, h):
//   out[b, h, c, t0 + 16 g + p] = e4m3( V[b, h, t0 + 16 g + v_token_at(p), c] * inv[b, h, c] )
// with e4m3 = round to nearest even, saturating to +-448 (cvt.rn.satfinite), inv = 1 / v_scale an
// IEEE division done once per channel (common.cuh div_rn; detail::v_inv_of), the product a mul.rn:
// exactly what the host reference computes. Tokens in [seq_len, seq_len_pad) are written as 0;
// every byte of [B, H, D, seq_len_pad] is written once. A channel whose scale is NaN (a NaN in it:
// the maxima propagate NaN) is quantized with inv = 0, so its padding stays 0; its outputs are NaN
// through the epilogue's v_scale.
//
// Launch contract:
//   grid  = (v_tiles(seq_len_pad), heads, batch)      block = kQuantThreads (256)
//   dynamic shared memory: none (static HeadDim x 128 B tile + HeadDim floats: 33 KiB at D = 256)
//   reads p.in, p.v_scale; writes p.out. seq_len_pad % 16 == 0. sm_89 or newer (e4m3 cvt).
//   Varlen (p.cu_seqlens non-null): seq_len / seq_len_pad size the longest sequence's slot; slot b
//   is written for tokens [0, round_up(len_b, block_tokens)) only (quant_layout.cuh).
//
// Layout reasoning. Loads use the quad-per-row mapping of quantize_qk (8 rows x 64 contiguous bytes
// per warp instruction). Each value becomes one byte of channel c's row of a [HeadDim][128] shared
// tile, at its permuted position; the tile is then written out row by row with 16-byte stores, one
// 16-token group per store, so each channel row of the output is one full 128-byte line.
// Shared-memory banks: a warp's byte stores touch channels 8 (t + 4j) + i (4 rows, t = quad lane)
// and 8 consecutive tokens (4 words of one 16-byte group). With a plain 128-byte row pitch the 4
// rows would share banks (4-way conflict); the 16-byte group index is therefore XOR-swizzled with
// (c / 8) % 8, which puts the 4 rows' words in 4 different 16-byte bank quads. The read side loads
// whole physical 16-byte chunks (8 lanes per row: conflict-free) and undoes the swizzle in the
// global address, so each row is still written as one contiguous line.
#pragma once

#include "common.cuh"
#include "quant_layout.cuh"
#include "quant_params.cuh"

namespace sagejit::kernels {

namespace detail {

// The factor V's channel is quantized with: 1 / v_scale, or 0 for a NaN scale (see above).
__device__ __forceinline__ float v_inv_of(float v_scale) {
  return v_scale != v_scale ? 0.0f : div_rn(1.0f, v_scale);
}

// The V tile a CTA holds in registers (row slot + 64 k of tokens [tok0, tok0 + 128) of one (b, h)),
// quantized with s_inv[c] = 1 / v_scale[c] (written, and the CTA synchronized, before the call) into
// the swizzled shared tile and written out: out_bh is the (b, h)'s [HeadDim][seq_len_pad] row block,
// tokens below write_end are written.
template <typename In, int HeadDim, int Passes>
__device__ __forceinline__ void quantize_v_tile(const u32x4 (&data)[Passes][HeadDim / 32], const float* s_inv,
                                                unsigned char (*s_tile)[kVTileTokens], unsigned char* out_bh,
                                                int seq_len_pad, int tok0, int write_end) {
  static_assert(kVTileTokens == 128 && Passes * kQuantRowSlots == kVTileTokens,
                "the swizzle below assumes 8 groups of 16 tokens per tile row");
  constexpr int kChunks = HeadDim / 32;
  constexpr int kGroups = kVTileTokens / 16;
  const int tid = threadIdx.x;
  const int quad_lane = tid & 3;
  const int slot = (tid >> 5) * 8 + ((tid & 31) >> 2);

  // Quantize into the swizzled, token-permuted tile. Invalid tokens hold zeros in `data`, which
  // convert to e4m3 zero, so padding needs no special case here.
#pragma unroll
  for (int k = 0; k < Passes; ++k) {
    const int r = slot + k * kQuantRowSlots;
    const int group = r / 16;
    const int pos = layout::v_position_of(r % 16);
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int c0 = 8 * (quad_lane + 4 * j);
      const int phys = group ^ ((c0 / 8) % kGroups);
      float f[8];
      unpack8<In>(data[k][j], f);
#pragma unroll
      for (int i = 0; i < 8; i += 2) {
        const uint32_t b2 =
            to_e4m3x2(mul_rn(f[i + 1], s_inv[c0 + i + 1]), mul_rn(f[i], s_inv[c0 + i]));
        s_tile[c0 + i][phys * 16 + pos] = static_cast<unsigned char>(b2 & 0xffu);
        s_tile[c0 + i + 1][phys * 16 + pos] = static_cast<unsigned char>(b2 >> 8);
      }
    }
  }
  __syncthreads();

  // Write out: unit u = (channel c, physical chunk). 8 lanes cover one channel row (one line).
#pragma unroll
  for (int u = tid; u < HeadDim * kGroups; u += kQuantThreads) {
    const int c = u / kGroups;
    const int phys = u % kGroups;
    const int group = phys ^ ((c / 8) % kGroups);
    const int tok = tok0 + 16 * group;
    if (tok < write_end) {
      const u32x4 v = *reinterpret_cast<const u32x4*>(&s_tile[c][phys * 16]);
      store16(out_bh + static_cast<long long>(c) * seq_len_pad + tok, v);
    }
  }
}

}  // namespace detail

template <typename In, int HeadDim>
__global__ void __launch_bounds__(kQuantThreads) quantize_v(QuantVParams p) {
  static_assert(HeadDim % 32 == 0 && HeadDim <= kQuantThreads, "HeadDim: multiple of 32, <= 256");
  constexpr int kChunks = HeadDim / 32;
  constexpr int kPasses = kVTileTokens / kQuantRowSlots;

  __shared__ alignas(16) unsigned char s_tile[HeadDim][kVTileTokens];
  __shared__ float s_inv[HeadDim];

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int quad_lane = lane & 3;
  const int slot = warp * 8 + (lane >> 2);
  const int tile = blockIdx.x;
  const int head = blockIdx.y;
  const int batch = blockIdx.z;
  const long long bh = static_cast<long long>(batch) * p.heads + head;
  const int tok0 = tile * kVTileTokens;
  // This (b, h)'s tokens and how far its row is written: the whole padded row, or for sequence b
  // of packed inputs (varlen) round_up(len_b, block_k), all that the attention kernel's tiles of
  // this sequence cover; a tile past that returns at once (before any barrier).
  const Sequence sequence = sequence_of(p.cu_seqlens, batch, p.seq_len);
  const int seq_len = sequence.len;
  const int seq_len_pad = p.cu_seqlens != nullptr ? layout::round_up(seq_len, p.block_tokens) : p.seq_len_pad;
  const long long first_row = sequence.first_row(p.stride_b, p.stride_s);
  if (tok0 >= seq_len_pad) return;
  const int n_valid = seq_len - tok0 < kVTileTokens ? seq_len - tok0 : kVTileTokens;

  const In* in = static_cast<const In*>(p.in) + first_row + head * p.stride_h +
                 static_cast<long long>(tok0) * p.stride_s;
  u32x4 data[kPasses][kChunks];
  load_tile_rows<kPasses, kChunks, kQuantRowSlots>(in, p.stride_s, n_valid, slot, quad_lane, data);
  if (tid < HeadDim) s_inv[tid] = detail::v_inv_of(p.v_scale[bh * HeadDim + tid]);
  __syncthreads();

  detail::quantize_v_tile<In, HeadDim>(data, s_inv, s_tile, static_cast<unsigned char*>(p.out) + bh * HeadDim * p.seq_len_pad,
                                      p.seq_len_pad, tok0, seq_len_pad);
}

}  // namespace sagejit::kernels
