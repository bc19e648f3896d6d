// attn_wgmma_smem.cuh — the shared-memory operand layouts both sm_90a attention kernels use
// (attn_wgmma.cuh, attn_wgmma_single.cuh): where a QKᵀ k-step starts in a Q or K tile stored as
// boxes, the word that fills the ones tile of the row-sum wgmma, and the caller's 16-bit V as TMA
// boxes, with the zeroing of a varlen block's tail rows.
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

}  // namespace sagejit::kernels
