// attn_wgmma_smem.cuh — the shared-memory operand layouts both sm_90a attention kernels use
// (attn_wgmma.cuh, attn_wgmma_single.cuh): where a QKᵀ k-step starts in a Q or K tile stored as
// boxes, the word that fills the ones tile of the row-sum wgmma, the caller's 16-bit V as TMA
// boxes, with the zeroing of a varlen block's tail rows, and the epilogue's staged O tile (padded, or
// in parts through a Q tile or a buffer of their own).
#pragma once

#include "attn_params.cuh"
#include "hopper_ops.cuh"

namespace sagejit::kernels {

// Byte offset of QKᵀ k-step s (32 bytes of every row) in a Q or K tile of `rows` rows stored as boxes
// of `box` bytes per row (attn_wgmma_qk_box_bytes), box after box: inside the one box, or box
// (32·s) / box.
__host__ __device__ constexpr mma_ops::u32 attn_wgmma_qk_step_bytes(int s, int rows, int box) {
  return static_cast<mma_ops::u32>((32 * s) / box * rows * box + (32 * s) % box);
}

// The 32-bit word the ones tile is filled with: four e4m3 1.0 (FP8 P·V) or two f16 / bf16 1.0.
__host__ __device__ constexpr mma_ops::u32 attn_wgmma_ones_word(bool pv_f16, bool bf16) {
  return !pv_f16 ? 0x38383838u : bf16 ? 0x3F803F80u : 0x3C003C00u;
}

// The caller's 16-bit V block in shared memory: TMA boxes of CtaK keys × kChan channels
// (attn_wgmma_v16_box_channels), rows of 2·kChan bytes swizzled by their length, box after box; the
// MN-major B of the 16-bit P·V wgmma (LBO = kBoxBytes).
template <int HeadDim, int CtaK>
struct AttnWgmmaV16 {
  static constexpr int kChan = attn_wgmma_v16_box_channels(HeadDim), kBoxes = HeadDim / kChan;
  static constexpr mma_ops::u32 kRowBytes = 2 * kChan, kBoxBytes = CtaK * kRowBytes;
  static constexpr hopper::Swizzle kSwizzle = hopper::swizzle_of_span(kRowBytes);
  static_assert(kBoxBytes % (8 * kRowBytes) == 0, "16-bit V boxes keep their swizzle alignment");

  // Varlen: a sequence's last block, if it reaches past the sequence, holds the next sequence's V in
  // its tail rows; P̃ = 0 there, but 0·Inf is NaN. Zeroes rows [first_row, CtaK) of every box of the
  // block at `tile` (whole rows, so the swizzle does not matter), shared by `threads` threads of which
  // this is `thread`, then fences them for wgmma; the caller synchronizes the threads before P·V.
  __device__ static void zero_tail_rows(mma_ops::u32 tile, int first_row, int thread, int threads) {
    constexpr int kRowChunks = kRowBytes / 16;  // 16-byte stores per row of a box
    const int chunks = (CtaK - first_row) * kBoxes * kRowChunks;
    for (int i = thread; i < chunks; i += threads) {
      const int row = first_row + i / (kBoxes * kRowChunks), box = (i / kRowChunks) % kBoxes;
      mma_ops::st_shared_zero_v4(tile + box * kBoxBytes + row * kRowBytes + (i % kRowChunks) * 16);
    }
    hopper::fence_proxy_async_shared();  // generic-proxy stores, read by wgmma
  }
};

// The epilogue's stmatrix writes of O, 8-channel slices [c_begin, c_end) (in pairs): o holds this
// thread's HeadDim / 2 accumulators (lane 4g + t of warp `warp`: rows g and g + 8 of the warp's 16,
// channels 8c + 2t and 8c + 2t + 1 in o[4c + 2r], o[4c + 2r + 1]); inv_sum: 1 / l of its two rows;
// scale(c, c0, c1) sets the factors of channels 8c + 2t and 8c + 2t + 1 (v_scale, or 1); at(row, c)
// is the shared address of slice c of the warpgroup's tile row `row`.
template <int HeadDim, bool Bf16, class Scale, class At>
__device__ __forceinline__ void stage_o_slices(const float (&o)[HeadDim / 2], const float (&inv_sum)[2], int warp,
                                               int lane, int c_begin, int c_end, Scale&& scale, At&& at) {
#pragma unroll
  for (int c = c_begin; c < c_end; c += 2) {  // 8-channel slices c and c + 1
    mma_ops::u32 h[2][2];
#pragma unroll
    for (int cc = 0; cc < 2; ++cc) {
      float c0, c1;
      scale(c + cc, c0, c1);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        h[cc][r] = mma_ops::f32x2_to_half2<Bf16>(o[4 * (c + cc) + 2 * r] * (inv_sum[r] * c0),
                                                 o[4 * (c + cc) + 2 * r + 1] * (inv_sum[r] * c1));
      }
    }
    // Matrix k: rows + 8 (k % 2) of the warp's 16, slice c + k / 2; lane 8k + i addresses its row i.
    const int k = lane / 8, row = 16 * warp + lane % 8 + 8 * (k % 2);
    hopper::stmatrix_x4(at(row, c + k / 2), h[0][0], h[0][1], h[1][0], h[1][1]);
  }
}

// The epilogue's copy of staged O to the caller: tile row r, Pieces 16-byte pieces of it (the
// shared address at(r, piece)), to elements [8·piece, +8) of the caller's row row0 + r (offset
// (row0 + r)·stride_s from `out`); rows >= seq_q skipped; `thread` of the warpgroup's 128.
// Where Pieces divides 128, each thread keeps one piece and steps 128 / Pieces rows at a time, so the
// loop has a constant trip count and one 64-bit address advanced by a constant (a loop from `thread`
// with a run-time start compiled to a remainder loop with the address recomputed per row).
template <int Pieces, class At>
__device__ __forceinline__ void store_o_rows(mma_ops::u16* out, long long stride_s, int row0, int seq_q, int thread,
                                             At&& at) {
  if constexpr (128 % Pieces == 0) {
    constexpr int kRowStep = 128 / Pieces, kIters = kWgmmaRowsPerWg / kRowStep;
    const int r0 = thread / Pieces, piece = thread % Pieces;
    mma_ops::u16* dst = out + static_cast<long long>(row0 + r0) * stride_s + 8 * piece;
#pragma unroll
    for (int k = 0; k < kIters; ++k) {
      const int r = r0 + kRowStep * k;
      if (row0 + r < seq_q) {
        mma_ops::u32 v[4];
        mma_ops::ld_shared_v4(v, at(r, piece));
        mma_ops::st_global_v4(dst, v);
      }
      dst += kRowStep * stride_s;
    }
  } else {
#pragma unroll
    for (int i = thread; i < kWgmmaRowsPerWg * Pieces; i += 128) {
      const int r = i / Pieces, piece = i % Pieces;
      if (row0 + r < seq_q) {
        mma_ops::u32 v[4];
        mma_ops::ld_shared_v4(v, at(r, piece));
        mma_ops::st_global_v4(out + static_cast<long long>(row0 + r) * stride_s + 8 * piece, v);
      }
    }
  }
}

// The epilogue's O tile: a warpgroup's 64 rows of 16-bit O in shared memory, rows padded by 16
// bytes (attn_wgmma_o_row_bytes) so that the 8 rows of one stmatrix matrix fall on distinct banks.
// write() puts each warp's 16 rows there from its m64nD accumulators with stmatrix (the accumulator
// fragment is stmatrix's); then, after a barrier over the warpgroup, store() copies them to the
// caller's rows in 16-byte pieces, 16 threads per 256 bytes of a row. 4-byte stores straight from the
// accumulators touch 8 rows per warp instruction (measured 2–9% slower end to end,
// bench/results/2026-11-26-epilogue-h100.md). The caller's rows are 16-byte aligned (tensor.cpp).
template <int HeadDim, bool Bf16>
struct AttnWgmmaStagedO {
  static constexpr int kRowBytes = attn_wgmma_o_row_bytes(HeadDim), kPieces = HeadDim / 8;
  static_assert(HeadDim % 16 == 0, "stmatrix takes 8-channel slices in pairs");

  // The whole tile (o, inv_sum, scale: as stage_o_slices).
  template <class Scale>
  __device__ static void write(mma_ops::u32 tile, const float (&o)[HeadDim / 2], const float (&inv_sum)[2], int warp,
                               int lane, Scale&& scale) {
    stage_o_slices<HeadDim, Bf16>(o, inv_sum, warp, lane, 0, HeadDim / 8, scale,
                                  [&](int row, int slice) { return tile + row * kRowBytes + slice * 16; });
  }

  // Tile row r to the caller's row row0 + r (element offset (row0 + r)·stride_s from `out`), rows
  // >= seq_q skipped; `thread` of the warpgroup's 128.
  __device__ static void store(mma_ops::u32 tile, mma_ops::u16* out, long long stride_s, int row0, int seq_q,
                               int thread) {
    store_o_rows<kPieces>(out, stride_s, row0, seq_q, thread,
                          [&](int r, int piece) { return tile + r * kRowBytes + piece * 16; });
  }
};

// The epilogue's O tile where no whole staging tile fits beside the ring, in parts of PartChannels
// (128 or 64) channels: in the warpgroup's Q tile (head dim 256 with FP8 P·V: 64 rows × 256 bytes,
// free after its last QKᵀ when the warpgroup quantizes Q itself, so that no copy refills it), or in a
// buffer of their own (attn_wgmma_o_part_channels).
// A part's rows are 2·PartChannels bytes, unpadded; their 16-byte chunks are XOR-swizzled by row % 8,
// so the 8 rows of one stmatrix matrix still fall on distinct banks. write(part), a barrier of the
// warpgroup, store(part), a barrier before the next part's write.
template <int HeadDim, bool Bf16, int PartChannels = 128>
struct AttnWgmmaStagedOParts {
  static constexpr int kPartChannels = PartChannels, kParts = HeadDim / kPartChannels;
  static constexpr int kRowBytes = 2 * kPartChannels, kPieces = kPartChannels / 8;
  static constexpr int kTileBytes = kWgmmaRowsPerWg * kRowBytes;
  static_assert(HeadDim % kPartChannels == 0, "whole parts");
  static_assert(kPieces >= 8, "a row holds the 8 chunks its swizzle permutes");

  __device__ static mma_ops::u32 chunk_at(mma_ops::u32 tile, int row, int chunk) {
    return tile + row * kRowBytes + ((chunk ^ (row & 7)) * 16);
  }
  // Channels [PartChannels·part, +PartChannels) of O (o, inv_sum, scale: as stage_o_slices).
  template <class Scale>
  __device__ static void write(mma_ops::u32 tile, int part, const float (&o)[HeadDim / 2], const float (&inv_sum)[2],
                               int warp, int lane, Scale&& scale) {
    stage_o_slices<HeadDim, Bf16>(o, inv_sum, warp, lane, part * kPieces, (part + 1) * kPieces, scale,
                                  [&](int row, int slice) { return chunk_at(tile, row, slice - part * kPieces); });
  }
  // The part's tile row r to channels [PartChannels·part, +PartChannels) of the caller's row row0 + r
  // (rows >= seq_q skipped); `thread` of the warpgroup's 128.
  __device__ static void store(mma_ops::u32 tile, int part, mma_ops::u16* out, long long stride_s, int row0, int seq_q,
                               int thread) {
    store_o_rows<kPieces>(out + part * kPartChannels, stride_s, row0, seq_q, thread,
                          [&](int r, int piece) { return chunk_at(tile, r, piece); });
  }
};

}  // namespace sagejit::kernels
