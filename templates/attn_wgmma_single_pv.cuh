// attn_wgmma_single_pv.cuh — one K/V block's P·V in the single-warpgroup sm_90a kernel
// (attn_wgmma_single.cuh), in its three forms, each named for what it runs:
//   PvFp8Block        FP8 at D = 64, 96 and 128: [O_j | l_j] = P̃ · [V_j | 1] in one wgmma per k-step
//                     into fresh f32, then the promotion O = α·O + O_j, l = α·l + l_j
//   PvFp8PartsBlock   FP8 at D = 256: the same in four parts of kPvPartChannels channels (O alone is
//                     128 registers), two accumulators alternating
//   pv_f16_block      16-bit P̃ on the caller's V: O and l accumulate in the wgmma after a rescale by
//                     α (the f16 sums keep f32 precision: no temporary, no promotion)
// The FP8 forms run in two steps, run() and promote(). Between them the kernel refills the one V
// buffer (the wgmmas have read it), so the copy's latency runs under the last promotion (at D = 256,
// run() has already promoted parts 0–2). The refill is written in the kernel rather than passed in as
// a callback: a lambda capturing the block index changed ptxas' allocation (D = 64: 122 → 125
// registers, f16 D = 128: 190 → 194, a 4-byte spill at D = 256 causal with an LSE;
// bench/results/2026-11-28-pv-parts-and-32k-h100.md §1). promote() takes promote_row_sum(l0, l1),
// the kernel's l = α·l + l_j for rows g and g + 8 (in registers, or in the lean form's shared-memory
// slot).
//
// The accumulators' layout is wgmma's (lane 4g + t of warp w: rows 16w + g and 16w + g + 8, channels
// 8c + 2t and 8c + 2t + 1 in o[4c + 2r], o[4c + 2r + 1]), so α[(i / 2) % 2] is register i's row.
// P̃'s A fragments come from pack_p_e4m3 / pack_p_f16 (hopper_ops.cuh), one per k-step of CtaK / 32
// (FP8) or CtaK / 16 (f16) keys; V is FP8 [D × keys] as the quantizer wrote it (token-permuted: no
// shuffles) followed by the ones tile, or the caller's 16-bit V in AttnWgmmaV16 boxes.
#pragma once

#include "attn_softmax.cuh"
#include "attn_wgmma_smem.cuh"
#include "hopper_ops.cuh"

namespace sagejit::kernels {

// D = 256's P·V parts: channels per part (the last part carries the ones tile's 8 more columns).
constexpr int kPvPartChannels = 64;

// FP8, one wgmma per k-step: pv[0, D/2) is O_j and pv[D/2 + 2r] row r's l_j (N = D + 8: the ones
// tile lies right after V, its 8 rows B's last core-matrix group); fresh accumulators, as the FP8
// sum keeps ~14 bits and is promoted every block of 128 keys.
template <int HeadDim, int CtaK>
struct PvFp8Block {
  static constexpr int kORegs = HeadDim / 2, kSteps = CtaK / 32;
  float pv[kORegs + 4];

  // Issues the block's wgmmas and waits for them: V is free after this.
  __device__ __forceinline__ void run(mma_ops::u32 (&pa)[kSteps][4], mma_ops::u32 v_hi, mma_ops::u32 lo_v) {
    using namespace hopper;
#pragma unroll
    for (int k = 0; k < kSteps; ++k) fence_operands(pa[k]);
    fence_operands(pv);
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < kSteps; ++k) wgmma_e4m3_rs<HeadDim + 8>(pv, pa[k], wgmma_desc(v_hi, lo_v + 2 * k), k > 0);
    wgmma_commit();
    wgmma_wait<0>();
    fence_operands(pv);
  }

  // The promotion: O = α·O + O_j, l = α·l + l_j.
  template <class PromoteRowSum>
  __device__ __forceinline__ void promote(float (&o)[kORegs], const float (&alpha)[2],
                                          PromoteRowSum&& promote_row_sum) {
    promote_o(o, 0, pv, kORegs, alpha);
    promote_row_sum(pv[kORegs], pv[kORegs + 2]);
  }
};

// FP8 at D = 256, in four parts of kPvPartChannels channels, the last with the ones tile's 8 columns
// (N = 72: V's rows 192..255 and the ones tile right after them). Part h + 1 is issued before part h
// is waited on and promoted, so the tensor cores run a part while the warpgroup promotes the one
// before (attn_wgmma.cuh's D = 256 schedule): run() promotes parts 0–2 as it goes, promote() the
// last. Two accumulators alternate; the last part's is 4 registers longer. Part h's B starts
// h · kPvPartChannels · CtaK bytes into V.
template <int HeadDim, int CtaK>
struct PvFp8PartsBlock {
  static constexpr int kORegs = HeadDim / 2, kSteps = CtaK / 32, kPartRegs = kPvPartChannels / 2;
  static_assert(HeadDim == 4 * kPvPartChannels, "four parts");
  float acc0[kPartRegs], acc1[kPartRegs], acc_last[kPartRegs + 4];

  // Issues the four parts, promoting parts 0–2 as their wgmmas complete; V is free after this.
  __device__ __forceinline__ void run(mma_ops::u32 (&pa)[kSteps][4], float (&o)[kORegs], const float (&alpha)[2],
                                      mma_ops::u32 v_hi, mma_ops::u32 lo_v) {
    using namespace hopper;
#pragma unroll
    for (int k = 0; k < kSteps; ++k) fence_operands(pa[k]);
    issue(acc0, 0, pa, v_hi, lo_v);
    issue(acc1, 1, pa, v_hi, lo_v);
    wgmma_wait<1>();
    promote_part(acc0, 0, o, alpha);
    issue(acc0, 2, pa, v_hi, lo_v);
    wgmma_wait<1>();
    promote_part(acc1, 1, o, alpha);
    issue(acc_last, 3, pa, v_hi, lo_v);
    wgmma_wait<1>();
    promote_part(acc0, 2, o, alpha);
    wgmma_wait<0>();
#pragma unroll
    for (int k = 0; k < kSteps; ++k) fence_operands(pa[k]);
  }

  // The last part's promotion and l = α·l + l_j.
  template <class PromoteRowSum>
  __device__ __forceinline__ void promote(float (&o)[kORegs], const float (&alpha)[2],
                                          PromoteRowSum&& promote_row_sum) {
    promote_part(acc_last, 3, o, alpha);
    promote_row_sum(acc_last[kPartRegs], acc_last[kPartRegs + 2]);
  }

 private:
  template <class Acc>
  __device__ __forceinline__ void issue(Acc& acc, int part, mma_ops::u32 (&pa)[kSteps][4], mma_ops::u32 v_hi,
                                        mma_ops::u32 lo_v) {
    using namespace hopper;
    constexpr int kN = 2 * static_cast<int>(sizeof(Acc) / sizeof(float));  // N = 64 or 72: N / 2 registers a thread
    fence_operands(acc);
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < kSteps; ++k) {
      wgmma_e4m3_rs<kN>(acc, pa[k], wgmma_desc(v_hi, lo_v + ((part * kPvPartChannels * CtaK) >> 4) + 2 * k), k > 0);
    }
    wgmma_commit();
  }
  template <class Acc>
  __device__ __forceinline__ void promote_part(Acc& acc, int part, float (&o)[kORegs], const float (&alpha)[2]) {
    hopper::fence_operands(acc);
    promote_o(o, kPartRegs * part, acc, kPartRegs, alpha);
  }
};

// 16-bit P·V: O = α·O + P̃ V_j and l = α·l + P̃ · 1 on the tensor cores; V MN-major in V16::kBoxes
// boxes, k16 steps of 16 key rows; the row sums come from an m64n8k16 on the 16-bit ones tile at
// `ones`. `keys_left` is seq_kv − the block's first key (below CtaK only in a tail block): with
// varlen views (`varlen`), a tail block's rows past the sequence hold the next sequence's V and are
// zeroed first (AttnWgmmaV16::zero_tail_rows: P̃ = 0 there, but 0·Inf is NaN), which synchronizes
// the CTA, so `varlen` and `keys_left` must be the same in every thread. V is free after this.
template <int HeadDim, int CtaK, bool Bf16, int Threads>
__device__ __forceinline__ void pv_f16_block(float (&o)[HeadDim / 2], float (&l_acc)[4],
                                             mma_ops::u32 (&pa)[CtaK / 16][4], const float (&alpha)[2],
                                             mma_ops::u32 v, mma_ops::u32 ones, bool varlen, int keys_left, int tid) {
  using namespace hopper;
  using V16 = AttnWgmmaV16<HeadDim, CtaK>;
  constexpr int kSteps = CtaK / 16;
  // (Unconditional: skipping it where α = 1, as attn_wgmma.cuh does, measured 0…3.5% slower here.)
  rescale(o, l_acc, alpha);
  if (varlen && keys_left < CtaK) {
    V16::zero_tail_rows(v, keys_left, tid, Threads);
    __syncthreads();
  }
  // MN-major descriptors, as the FP8 ones: a 32-bit low word (start, LBO = the box stride) over a
  // compile-time high word; a k16 step is 16 key rows further.
  constexpr mma_ops::u32 kV16Hi =
      static_cast<mma_ops::u32>(make_mn_major_desc(0, V16::kSwizzle, V16::kBoxBytes) >> 32);
  constexpr mma_ops::u32 kOnesHi = static_cast<mma_ops::u32>(make_mn_major_desc(0, Swizzle::b128, 1024) >> 32);
  const mma_ops::u32 lo_v16 = static_cast<mma_ops::u32>(make_mn_major_desc(v, V16::kSwizzle, V16::kBoxBytes));
  const mma_ops::u64 desc_ones =
      wgmma_desc(kOnesHi, static_cast<mma_ops::u32>(make_mn_major_desc(ones, Swizzle::b128, 1024)));
#pragma unroll
  for (int k = 0; k < kSteps; ++k) fence_operands(pa[k]);
  fence_operands(o);
  fence_operands(l_acc);
  wgmma_fence();
#pragma unroll
  for (int k = 0; k < kSteps; ++k) {
    wgmma_f16_rs_bmn<HeadDim, Bf16>(o, pa[k], wgmma_desc(kV16Hi, lo_v16 + ((16 * V16::kRowBytes * k) >> 4)), true);
  }
#pragma unroll
  for (int k = 0; k < kSteps; ++k) wgmma_f16_rs_bmn<8, Bf16>(l_acc, pa[k], desc_ones, true);
  wgmma_commit();
  wgmma_wait<0>();
  fence_operands(o);
  fence_operands(l_acc);
}

}  // namespace sagejit::kernels
