// quant_qk.cuh — per-group INT8 / INT4 / two-term INT8 quantization of Q or K (SageAttention2 §3,
// DESIGN.md §1; two terms: quant_layout.cuh).
//
// What it computes, for one token block (block_tokens rows) of one (b, h):
//   x      = the block's rows as float (rows >= seq_len are padding)
//   Q, Smooth: mean[c] = (sum of x[r][c] over valid rows, in the order of quant_params.cuh) / n_valid,
//              written to q_mean; y = x - mean
//   K, Smooth: y = x - k_mean[b, h, c]            (k_mean from quant_stats.cuh)
//   otherwise: y = x
//   per scale group g (quant_layout.cuh: per_thread / per_warp / per_block over valid rows):
//     scale_g = max(max|y| / Max, kMinScale)      Max = 127 (int8) or 7 (int4)
//     q       = clamp(rint(y * (1 / scale_g)), -Max, Max)      round to nearest even
//   written: q (padding rows = 0), scale_g * scale_multiplier (Q: sm_scale·log2 e; K: 1).
//   Terms = 2 (two-term int8, the precise mode; quant_layout.cuh): each row is 2·D bytes, q at
//              [0, D) and the residual r = clamp(rint((f − q) · 256), −127, 127) at [D, 2D), where
//              f = y · (1 / scale_g) is the product q rounds; y ≈ scale_g · (q + r / 256).
//   Q, lse_correction non-null: per valid row, (x · k_mean[b, kv head, :]) · sm_scale, from the
//              unsmoothed x, in the order of quant_params.cuh (the LSE term K smoothing removes).
// Every division is IEEE div.rn and every product mul.rn (common.cuh), so the host reference
// reproduces each bit. The reciprocal is taken once per group rather than dividing every element:
// a per-element division would cost more issue slots than the memory time allows.
//
// Launch contract:
//   grid  = (seq_len_pad / block_tokens, heads, batch)      block = kQuantThreads (256)
//   dynamic shared memory: none (static: 10.5 KiB for Q smoothing at D = 256, else <= 1.5 KiB)
//   reads  p.in, p.k_mean (K, Smooth; Q with lse_correction: k_mean must be complete, i.e.
//   quant_stats ran before in the same stream); writes p.out, p.scale, p.q_mean (Q, Smooth),
//   p.lse_correction (Q, when non-null: a runtime choice, so one instantiation serves both).
//   Requires block_tokens % 16 == 0, block_tokens <= kMaxBlockTokens, block_tokens % warp_tokens
//   == 0, HeadDim % 32 == 0, 16-byte aligned rows (quant_params.cuh).
//   Varlen (p.cu_seqlens non-null): seq_len is the longest sequence; CTAs whose block starts past
//   their own sequence's length return at once (quant_layout.cuh says what stays unwritten).
//
// Layout reasoning. A quad of lanes reads one row: lane t of the quad loads the 16-byte chunks
// t + 4j, so each warp instruction covers 8 rows x 64 contiguous bytes (full sectors), and the
// whole block (at most 128 x 256 x 2 B = 64 KiB) is loaded into registers with every load issued
// before the first use: many bytes in flight per SM, which is what a copy-like kernel needs.
// Row maxima come from two quad shuffles; rows meet their scale group through a shared-memory
// atomicMax on the float bits (non-negative floats order like their bit patterns, and a max is
// exact and order independent, so the result is deterministic). Stores are 8 bytes (int8; two of
// them with two terms) or 4 bytes (int4) per lane, 32 / 16 contiguous bytes per row per instruction.
#pragma once

#include "common.cuh"
#include "quant_layout.cuh"
#include "quant_params.cuh"
#include "quant_stats.cuh"

namespace sagejit::kernels {

namespace detail {

// Scale group of row r of the block (quant_layout.cuh).
template <bool IsQuery>
__device__ __forceinline__ int qk_group_of(layout::Granularity g, int r, int warp_tokens) {
  return IsQuery ? layout::q_group_of_row(g, r, warp_tokens)
                 : layout::k_group_of_key(g, r, warp_tokens);
}


// x / d for x >= 0 and d a power of two: a shift.
__device__ __forceinline__ int div_pow2(int x, int d) { return x >> (__ffs(d) - 1); }

// layout::k_group_of_key for warp_k a power of two, without its division.
__device__ __forceinline__ int k_group_of_key_pow2(layout::Granularity g, int c, int warp_k) {
  return g == layout::Granularity::per_thread ? div_pow2(c, warp_k) * 4 + (c & 7) / 2
         : g == layout::Granularity::per_warp ? div_pow2(c, warp_k)
                                              : 0;
}

// Where a tile's rows go: rows [0, n_rows) of one (b, h) starting at `out` (padding rows, from
// n_valid on, written as zeros), in blocks of block_tokens rows, each with `groups` scales stored
// from `scale` on (block i's at scale + i·groups). quantize_qk's tile is one block; quantize_kv's
// (quant_kv.cuh) is a 128-token chunk of K, 128 / block_k blocks.
struct QkTile {
  unsigned char* out;
  float* scale;
  int n_valid, n_rows;
  int block_tokens, warp_tokens, groups;
  layout::Granularity granularity;
  float scale_multiplier;
};

// Steps 3-5 of quantize_qk for the rows this CTA holds (row slot + 64 k of the tile): row maxima to
// group maxima, the scales, then the quantized rows. s_mean holds the channel means when Smooth;
// s_group_max holds a zero per group of the tile and s_group_inv as many floats, and the CTA has
// synchronized since both were written. OneBlock: the tile is one block (n_rows == block_tokens),
// which spares the block arithmetic (the smoothed Q kernel spilled on sm_120 with it). Pow2: K, with
// block_tokens and warp_tokens powers of two (quantize_kv's chunks: see kv_chunk_k_tile), so the
// divisions by them are shifts.
template <typename In, int HeadDim, int Bits, int Terms, bool IsQuery, bool Smooth, bool OneBlock, bool Pow2,
          int Passes>
__device__ __forceinline__ void quantize_rows(const u32x4 (&data)[Passes][HeadDim / 32], const QkTile& t,
                                              const float* s_mean, int* s_group_max, float* s_group_inv) {
  static_assert(!(Pow2 && IsQuery), "Pow2 is for K tiles");
  constexpr int kChunks = HeadDim / 32;
  static_assert(layout::kInt8Max == 127.0f && layout::kInt4Max == 7.0f, "the divisors of div_rn_odd below");
  const int tid = threadIdx.x;
  const int quad_lane = tid & 3;
  const int slot = (tid >> 5) * 8 + ((tid & 31) >> 2);
  // Scale group of the thread's row of pass k: its block's groups, then the group within the block.
  // Divisions by run-time sizes are taken once (steps 3 and 5 both need them); shifts (Pow2) at each
  // use, so that no group index is held across step 4 (held, it spilled at D = 96).
  int group[Passes];
#pragma unroll
  for (int k = 0; k < Passes; ++k) {
    const int r = slot + k * kQuantRowSlots;
    if constexpr (!Pow2) {
      group[k] = OneBlock ? qk_group_of<IsQuery>(t.granularity, r, t.warp_tokens)
                          : (r / t.block_tokens) * t.groups +
                                qk_group_of<IsQuery>(t.granularity, r % t.block_tokens, t.warp_tokens);
    }
  }
  auto group_of = [&](int k) {
    if constexpr (Pow2) {
      const int r = slot + k * kQuantRowSlots;
      return (OneBlock ? 0 : div_pow2(r, t.block_tokens) * t.groups) +
             k_group_of_key_pow2(t.granularity, r & (t.block_tokens - 1), t.warp_tokens);
    } else {
      return group[k];
    }
  };

  // y = x - mean for the 8 channels of chunk j. The loops below run over chunks outside and passes
  // inside, so only one chunk's 8 means are live at a time (read from shared memory as 2 x 16 B: the
  // 4 lanes of a quad hit distinct banks, the 8 quads of a warp broadcast).
  auto chunk_mean = [&](int j, float (&mu)[8]) {
#pragma unroll
    for (int i = 0; i < 8; ++i) mu[i] = Smooth ? s_mean[8 * (quad_lane + 4 * j) + i] : 0.0f;
  };
  auto smoothed = [&](const u32x4& c, const float (&mu)[8], float (&y)[8]) {
    unpack8<In>(c, y);
    if constexpr (Smooth) {
#pragma unroll
      for (int i = 0; i < 8; ++i) y[i] = sub_rn(y[i], mu[i]);
    }
  };

  // 3. Row maxima -> group maxima.
  float row_max[Passes];
#pragma unroll
  for (int k = 0; k < Passes; ++k) row_max[k] = 0.0f;
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    float mu[8];
    chunk_mean(j, mu);
#pragma unroll
    for (int k = 0; k < Passes; ++k) {
      if (slot + k * kQuantRowSlots < t.n_valid) {
        float y[8];
        smoothed(data[k][j], mu, y);
#pragma unroll
        for (int i = 0; i < 8; ++i) row_max[k] = max_f(row_max[k], abs_f(y[i]));
      }
    }
  }
#pragma unroll
  for (int k = 0; k < Passes; ++k) {
    const int r = slot + k * kQuantRowSlots;
    const float m = warp_max<3>(row_max[k]);
    if (quad_lane == 0 && r < t.n_valid) atomicMax(&s_group_max[group_of(k)], static_cast<int>(float_bits(m)));
  }
  __syncthreads();

  // 4. Scales: one thread per group. Every group is written, an all-padding one as kMinScale.
  // (With Pow2 the tile's blocks are those holding a valid row: n_rows is not kept live.)
  const int n_blocks = OneBlock ? 1
                       : Pow2   ? div_pow2(t.n_valid + t.block_tokens - 1, t.block_tokens)
                                : t.n_rows / t.block_tokens;
  if (tid < n_blocks * t.groups) {
    const float amax = bits_float(static_cast<uint32_t>(s_group_max[tid]));
    const float scale = max_f(div_rn_odd<Bits == 8 ? 127 : 7>(amax), layout::kMinScale);
    s_group_inv[tid] = div_rn(1.0f, scale);
    t.scale[tid] = mul_rn(scale, t.scale_multiplier);
  }
  __syncthreads();

  // 5. Quantize and store; rows in [n_valid, n_rows) are written as zeros.
  constexpr int kRowBytes = HeadDim * Bits * Terms / 8;
  unsigned char* out = t.out;
  float inv[Passes];
#pragma unroll
  for (int k = 0; k < Passes; ++k) {
    const int r = slot + k * kQuantRowSlots;
    inv[k] = r < t.n_valid ? s_group_inv[group_of(k)] : 0.0f;
  }
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int chunk = quad_lane + 4 * j;
    float mu[8];
    chunk_mean(j, mu);
#pragma unroll
    for (int k = 0; k < Passes; ++k) {
      const int r = slot + k * kQuantRowSlots;
      if (OneBlock ? r >= t.block_tokens : Pow2 ? (r & -t.block_tokens) >= t.n_valid : r >= t.n_rows) continue;
      uint32_t w0 = 0, w1 = 0, r0 = 0, r1 = 0;
      if (r < t.n_valid) {
        float y[8];
        smoothed(data[k][j], mu, y);
        if constexpr (Bits == 8 && Terms == 1) {
          // (The group's scale is at least its max |y| / 127: pack_int8x4_scaled applies.)
          w0 = pack_int8x4_scaled(mul_rn(y[0], inv[k]), mul_rn(y[1], inv[k]), mul_rn(y[2], inv[k]),
                                  mul_rn(y[3], inv[k]));
          w1 = pack_int8x4_scaled(mul_rn(y[4], inv[k]), mul_rn(y[5], inv[k]), mul_rn(y[6], inv[k]),
                                  mul_rn(y[7], inv[k]));
        } else if constexpr (Bits == 8) {
          // The value and the residual of the product it rounds (exact: f and q lie within 0.5 of
          // each other), scaled by 256 (exact).
          auto pack = [&](float x, uint32_t& w, uint32_t& res, int i) {
            const float f = mul_rn(x, inv[k]);
            const int8_t q = to_int8(f);
            w |= (static_cast<uint32_t>(q) & 0xffu) << (8 * i);
            const float rest = mul_rn(sub_rn(f, static_cast<float>(q)), layout::kResidualScale);
            res |= (static_cast<uint32_t>(to_int8(rest)) & 0xffu) << (8 * i);
          };
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            pack(y[i], w0, r0, i);
            pack(y[i + 4], w1, r1, i);
          }
        } else {
          // Two values per byte, even channel in the low nibble (quant_layout.cuh).
#pragma unroll
          for (int i = 0; i < 8; ++i) w0 |= to_int4_nibble(mul_rn(y[i], inv[k])) << (4 * i);
        }
      }
      if constexpr (Bits == 8) {
        store8(out + r * kRowBytes + 8 * chunk, w0, w1);
        if constexpr (Terms == 2) store8(out + r * kRowBytes + HeadDim + 8 * chunk, r0, r1);
      } else {
        store4(out + r * kRowBytes + 4 * chunk, w0);
      }
    }
  }
}

}  // namespace detail

// __launch_bounds__(256, 2) at D = 256: lets ptxas use up to 128 registers. With the default bound
// its occupancy heuristic squeezed those variants (64 registers of block data) into 80 registers
// with a spill under NVRTC; two 64 KiB CTAs per SM keep enough loads in flight anyway. Up to
// D = 128, (256, 4): 64 registers, no spill, and twice the resident warps of the 85-register
// smoothed K kernel that the (256, 2) bound produced (ncu on the H200, B4 H32 D128: 23% achieved
// occupancy and 56% of DRAM bandwidth at S = 4096, against 47% and 77% for Q). Two terms at D = 128:
// (256, 3), 80 registers; within 64 the smoothed Q kernel spilled 4 bytes on sm_120 (NVRTC 13.0).
template <typename In, int HeadDim, int Bits, int Terms, bool IsQuery, bool Smooth>
__global__ void __launch_bounds__(kQuantThreads, HeadDim <= 128 ? (Terms == 1 ? 4 : 3) : 2)
    quantize_qk(QuantQKParams p) {
  static_assert(HeadDim % 32 == 0 && HeadDim <= 256, "HeadDim: a multiple of 32, at most 256");
  static_assert(Bits == 8 || Bits == 4, "Bits: 8 (int8) or 4 (int4)");
  static_assert(Terms == 1 || (Terms == 2 && Bits == 8), "Terms: 1, or 2 with int8");
  constexpr int kChunks = HeadDim / 32;  // 16-byte chunks per lane per row
  constexpr int kPasses = kMaxBlockTokens / kQuantRowSlots;
  constexpr int kMaxGroups = kMaxBlockTokens / 16 * 8;  // per_thread, warp_q = 16

  __shared__ int s_group_max[kMaxGroups];  // float bits of max|y| per group
  __shared__ float s_group_inv[kMaxGroups];
  __shared__ alignas(16) float s_mean[Smooth ? HeadDim : 4];
  __shared__ float s_warp_sum[IsQuery && Smooth ? kQuantWarps : 1][IsQuery && Smooth ? HeadDim : 1];
  __shared__ alignas(16) float s_k_mean[IsQuery ? HeadDim : 4];  // Q: for the LSE correction

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int quad_lane = lane & 3;
  const int slot = warp * 8 + (lane >> 2);
  const int blk = blockIdx.x;
  const int head = blockIdx.y;
  const int batch = blockIdx.z;
  const int row0 = blk * p.block_tokens;
  // This (b, h)'s rows: batch slot b of a padded tensor, or sequence b of a packed one (varlen).
  const Sequence sequence = sequence_of(p.cu_seqlens, batch, p.seq_len);
  const int seq_len = sequence.len;
  const long long first_row = sequence.first_row(p.stride_b, p.stride_s);
  // Varlen: a block past this sequence's end is never read (quant_layout.cuh); the whole CTA
  // leaves before any barrier. Without varlen the grid holds no such block.
  if (row0 >= seq_len) return;
  const int n_valid = seq_len - row0 < p.block_tokens ? seq_len - row0 : p.block_tokens;
  const int n_blocks = p.seq_len_pad / p.block_tokens;
  const long long bh = static_cast<long long>(batch) * p.heads + head;
  const int groups = IsQuery ? layout::q_groups(p.granularity, p.block_tokens, p.warp_tokens)
                             : layout::k_groups(p.granularity, p.block_tokens, p.warp_tokens);

  // 1. Issue every load of the block first: nothing below waits until all are in flight.
  const In* in = static_cast<const In*>(p.in) + first_row + head * p.stride_h +
                 static_cast<long long>(row0) * p.stride_s;
  u32x4 data[kPasses][kChunks];
  load_tile_rows<kPasses, kChunks, kQuantRowSlots>(in, p.stride_s, n_valid, slot, quad_lane, data);
  if (tid < groups) s_group_max[tid] = 0;
  if constexpr (Smooth && !IsQuery) {
    if (tid < HeadDim) s_mean[tid] = p.k_mean[bh * HeadDim + tid];
  }
  // Uniform over the grid, so the branches on it below never diverge (the quad shuffles need all
  // lanes).
  const bool lse = IsQuery && p.lse_correction != nullptr;
  if constexpr (IsQuery) {
    if (lse && tid < HeadDim) {
      const long long kv_bh =
          static_cast<long long>(batch) * p.heads_kv + head / (p.heads / p.heads_kv);
      s_k_mean[tid] = p.k_mean[kv_bh * HeadDim + tid];
    }
  }

  // 2. Q smoothing: the block's channel means, in the order quant_params.cuh documents: the same
  // steps as a statistics chunk's K sums (quant_stats.cuh), each warp's partial by a reduce-scatter,
  // then the pairwise tree over the 8 warps.
  if constexpr (Smooth && IsQuery) {
    detail::chunk_partial<In, HeadDim, true>(data, n_valid, s_warp_sum);
    __syncthreads();
    if (tid < HeadDim) {
      const float mean = div_rn(detail::reduce_warps<HeadDim, true>(s_warp_sum, tid), static_cast<float>(n_valid));
      s_mean[tid] = mean;
      p.q_mean[(bh * n_blocks + blk) * HeadDim + tid] = mean;
    }
  }
  __syncthreads();

  // 2b. LSE correction from the unsmoothed rows, in the order of quant_params.cuh: each lane's
  // channels sequentially (chunks outside, passes inside, as below), then the quad's 4 partials as
  // ((0 + 1) + (2 + 3)) by two xor shuffles (addition commutes exactly, so all 4 lanes agree).
  if constexpr (IsQuery) {
    if (lse) {
      float dot[kPasses];
#pragma unroll
      for (int k = 0; k < kPasses; ++k) dot[k] = 0.0f;
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        float m[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) m[i] = s_k_mean[8 * (quad_lane + 4 * j) + i];
#pragma unroll
        for (int k = 0; k < kPasses; ++k) {
          if (slot + k * kQuantRowSlots < n_valid) {
            float x[8];
            unpack8<In>(data[k][j], x);
#pragma unroll
            for (int i = 0; i < 8; ++i) dot[k] = add_rn(dot[k], mul_rn(x[i], m[i]));
          }
        }
        // As in step 2: one chunk at a time (measured: without it ptxas interleaves the chunks and
        // the plain variants take 6-8 more registers).
        __syncwarp();
      }
#pragma unroll
      for (int k = 0; k < kPasses; ++k) {
        const int r = slot + k * kQuantRowSlots;
        const float sum = warp_sum<3>(dot[k]);
        if (quad_lane == 0 && r < n_valid) {
          p.lse_correction[bh * p.seq_len + row0 + r] = mul_rn(sum, p.sm_scale);
        }
      }
    }
  }

  // 3-5. Scales and quantized rows of this one-block tile.
  detail::QkTile tile{static_cast<unsigned char*>(p.out) + (bh * p.seq_len_pad + row0) * (HeadDim * Bits * Terms / 8),
                      p.scale + (bh * n_blocks + blk) * groups, n_valid, p.block_tokens, p.block_tokens,
                      p.warp_tokens, groups, p.granularity, p.scale_multiplier};
  detail::quantize_rows<In, HeadDim, Bits, Terms, IsQuery, Smooth, true, false>(data, tile, s_mean, s_group_max,
                                                                                s_group_inv);
}

}  // namespace sagejit::kernels
