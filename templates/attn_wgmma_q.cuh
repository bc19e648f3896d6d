// attn_wgmma_q.cuh — Q quantized inside the sm_90a attention kernels (Cfg::fused_q): a warpgroup
// (the single-warpgroup kernel's CTA, or a consumer of the warp-specialized kernel) reads its 64
// query rows from the caller's fp16/bf16 Q, quantizes them to int8 with per-thread scales and stores
// them in shared memory exactly as the TMA load of a quantized Q would have, so the separate Q pass
// (its launch, its int8 copy written and read back) goes away.
//
// Same bits as quantize_qk (quant_qk.cuh) with block_q 64, warp_q 16, per_thread scales, no Q
// smoothing: scale group g of warp w is rows 16w + g and 16w + g + 8 of the tile, which are the
// rows of the wgmma accumulator that lane 4g + t of warp w holds. Its quad reads both rows, lane t
// the 16-byte chunks t + 4j (as quantize_qk's quads do), so the group's max |x| is a quad max —
// exact and order-free, like quantize_qk's atomicMax over row maxima. Then
//   scale = max(max|x| / 127, kMinScale),  q = clamp(rint(x · (1 / scale)), −127, 127),
// and the kernel keeps scale · sm_scale·log2 e (p.q_scale_multiplier, rounded as the plan rounds
// it). Rows past the sequence read as 0: quantize_qk leaves them out of the max and writes 0, which
// is the same.
// The LSE correction (K smoothing with an LSE: the row constant q·k̄·sm_scale the smoothing drops)
// comes from the unquantized rows in quantize_qk's order: each lane's chunks in order, then the
// quad's four partial sums as a butterfly.
#pragma once

#include "attn_params.cuh"
#include "attn_wgmma_tile.cuh"
#include "common.cuh"
#include "mma_ops.cuh"

namespace sagejit::kernels {

// The byte of a Q/K tile of `Rows` rows in shared memory that holds byte `col` of row `row`, as TMA
// stores it: boxes of `Box` bytes per row (attn_wgmma_qk_box_bytes), box after box, each swizzled
// by its span (16-byte unit bits 4.. XOR address bits 7..; 128B: 3 bits, 64B: 2, 32B: 1). The tile
// starts on its swizzle repeat.
template <int Rows, int Box>
__device__ __forceinline__ unsigned qk_tile_offset(int row, int col) {
  const unsigned o = static_cast<unsigned>(row * Box + col % Box);
  return static_cast<unsigned>((col / Box) * Rows * Box) + (o ^ (((o >> 7) & (Box / 16 - 1)) << 4));
}

// Q's element type: the output's (the API requires q and out to share it).
template <bool Bf16>
struct QElement {
  using type = f16;
};
template <>
struct QElement<true> {
  using type = bf16;
};

template <typename In, int HeadDim>
struct FusedQRows {
  static constexpr int kChunks = HeadDim / 32;  // 16-byte chunks a lane reads per row
  u32x4 x[2][kChunks];                          // rows 16·warp + g and + 8, chunks t + 4j

  // Issues the loads of rows row0 + 16·warp + g and + 8 of tile w's sequence (row0: the warpgroup's
  // first row, w.q0 plus 64 per earlier consumer); nothing waits on them here.
  // (The warp's 16 rows as two passes of 8 row slots, slot g: load_tile_rows' walk, rows past the
  // sequence zero.)
  __device__ __forceinline__ void load(const AttnParams& p, const AttnWgmmaTile& w, int row0, int warp, int g, int t) {
    const int warp_row0 = row0 + 16 * warp;
    const In* rows = static_cast<const In*>(p.q) + w.q_rows_at(p, p.q_stride_b, p.q_stride_h, p.q_stride_s) +
                     warp_row0 * p.q_stride_s;
    load_tile_rows<2, kChunks, 8>(rows, p.q_stride_s, w.seq_q - warp_row0, g, t, x);
  }

  // f(r, j, y) for each of the thread's chunks (row r of its two, chunk t + 4j), y its 8 values.
  template <class F>
  __device__ __forceinline__ void each_chunk(F&& f) const {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        float y[8];
        unpack8<In>(x[r][j], y);
        f(r, j, y);
      }
    }
  }

  // Quantizes the two rows into the Q tile at shared address sQ (tile rows 16·warp + g and + 8) and
  // returns the group's scale times `multiplier`. All four lanes of the quad must call it.
  template <int Box>
  __device__ __forceinline__ float quantize(unsigned sQ, int warp, int g, int t, float multiplier) const {
    // max |x| on the packed 16-bit pairs (max_abs2: the same value as on the widened floats, in a
    // quarter of the instructions) in four accumulators, combined packed, then its 2 halves as
    // floats.
    uint32_t acc[4] = {0u, 0u, 0u, 0u};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
      for (int j = 0; j < kChunks; ++j) max_abs8<In>(acc, x[r][j]);
    }
    const uint32_t m2 = max2<In>(max2<In>(acc[0], acc[1]), max2<In>(acc[2], acc[3]));
    const float amax = warp_max<3>(max_f(unpack_lo<In>(m2), unpack_hi<In>(m2)));
    const float scale = max_f(div_rn_odd<127>(amax), layout::kMinScale);
    const float inv = div_rn(1.0f, scale);
    each_chunk([&](int r, int j, const float (&y)[8]) {
      const uint32_t w0 =
          pack_int8x4_scaled(mul_rn(y[0], inv), mul_rn(y[1], inv), mul_rn(y[2], inv), mul_rn(y[3], inv));
      const uint32_t w1 =
          pack_int8x4_scaled(mul_rn(y[4], inv), mul_rn(y[5], inv), mul_rn(y[6], inv), mul_rn(y[7], inv));
      mma_ops::st_shared_v2_u32(sQ + qk_tile_offset<kWgmmaRowsPerWg, Box>(16 * warp + g + 8 * r, 8 * (t + 4 * j)), w0,
                                w1);
    });
    return mul_rn(scale, multiplier);
  }

  // (x_r · k_mean) · sm_scale for the two rows, r = 0 in corr0 (garbage for rows past the sequence,
  // which the LSE store skips). All four lanes of the quad must call it.
  __device__ __forceinline__ void lse_correction(const float* k_mean, int t, float sm_scale, float& corr0,
                                                 float& corr1) const {
    float dot0 = 0.0f, dot1 = 0.0f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      float m[8], f0[8], f1[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) m[i] = mma_ops::ldg_f32(k_mean + 8 * (t + 4 * j) + i);
      unpack8<In>(x[0][j], f0);
      unpack8<In>(x[1][j], f1);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        dot0 = add_rn(dot0, mul_rn(f0[i], m[i]));
        dot1 = add_rn(dot1, mul_rn(f1[i], m[i]));
      }
    }
    corr0 = mul_rn(warp_sum<3>(dot0), sm_scale);
    corr1 = mul_rn(warp_sum<3>(dot1), sm_scale);
  }
};

}  // namespace sagejit::kernels
