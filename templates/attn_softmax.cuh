// attn_softmax.cuh — the softmax steps the sm_90a kernels share (attn_wgmma.cuh,
// attn_wgmma_single.cuh), on the m64nN wgmma accumulator layout (hopper_ops.cuh): register i of a
// thread holds row (i / 2) % 2 of its pair and column acc_col(tid, i) = 2t + acc_col(0, i); and the
// log-sum-exp the epilogues write from the final row maxima and sums.
#pragma once

#include "attn_params.cuh"
#include "attn_wgmma_tile.cuh"
#include "hopper_ops.cuh"

namespace sagejit::kernels {

constexpr float kLog2Fp8Max = 8.807354922057604f;  // log2(448): P̃ peaks at the e4m3 maximum
constexpr float kMagicFloat = 12582912.0f;          // 1.5·2²³, the float whose bits start the QKᵀ sums
constexpr mma_ops::i32 kMagicBits = 0x4B400000;     // (the s32 → f32 trick: 0x4B400000 + S is 1.5·2²³ + S)

// Scores of keys past the sequence (column >= kv_limit) and, with a causal mask, past the row's
// diagonal (column > causal_limit, + 8 for the second row of the pair) become −inf. The limits are
// the per-block references minus 2t, so the columns compared are compile-time constants.
template <int Mask, int Count>
__device__ __forceinline__ void mask_scores(float (&s)[Count], int kv_limit, int causal_limit) {
#pragma unroll
  for (int i = 0; i < Count; ++i) {
    const int c = hopper::acc_col(0, i);
    bool masked = c >= kv_limit;
    if constexpr (Mask != 0) masked = masked || c > causal_limit + 8 * ((i / 2) % 2);
    if (masked) s[i] = mma_ops::neg_inf();
  }
}

// One block of the online softmax in the log2 domain: s holds raw scores (the magic-number floats
// when magic_dq = 1.5·2²³·dq, or plain values with magic_dq = 0), dq the dequantization factor (> 0);
// on return s holds P̃ = exp2(raw·dq + log2 448 − m) — one FFMA and one MUFU per element — row_max
// the new maxima and alpha = exp2(m_old − m_new) per row. The max is taken on the raw values (dq is
// the same for all of a thread's elements), as a tree of 8 independent chains (one dependent chain
// of 32 FMNMX stalls the warp), then over the quad. With RowSumFadd the thread-partial sums of P̃
// are kept too (row_sum = α·row_sum + Σ P̃, quad-reduced by the caller); otherwise the row sums come
// from the tensor cores.
template <bool RowSumFadd, int Count>
__device__ __forceinline__ void online_softmax(float (&s)[Count], float dq, float magic_dq, float (&row_max)[2],
                                               float (&alpha)[2], float (&row_sum)[2]) {
  using namespace mma_ops;
  constexpr int kLanes = 8;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float mx8[kLanes];
#pragma unroll
    for (int l = 0; l < kLanes; ++l) mx8[l] = fmaxf(s[4 * l + 2 * r], s[4 * l + 2 * r + 1]);
#pragma unroll
    for (int c = kLanes; c < Count / 4; ++c) {
      mx8[c % kLanes] = fmaxf(mx8[c % kLanes], fmaxf(s[4 * c + 2 * r], s[4 * c + 2 * r + 1]));
    }
#pragma unroll
    for (int v = kLanes / 2; v > 0; v /= 2) {
#pragma unroll
      for (int l = 0; l < v; ++l) mx8[l] = fmaxf(mx8[l], mx8[l + v]);
    }
    const float mx = quad_max(fmaf(mx8[0], dq, -magic_dq));  // −inf stays −inf
    const float m_new = fmaxf(row_max[r], mx);
    const float m_use = m_new == neg_inf() ? 0.0f : m_new;  // no visible key yet: never NaN
    alpha[r] = fast_exp2(row_max[r] - m_use);
    row_max[r] = m_new;
    const float bias = (kLog2Fp8Max - m_use) - magic_dq;
    if constexpr (!RowSumFadd) {
#pragma unroll
      for (int c = 0; c < Count / 4; ++c) {
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) s[4 * c + e] = fast_exp2(fmaf(s[4 * c + e], dq, bias));
      }
    } else {  // thread-partial sums of the fp32 P̃ in kLanes chains
      float sum8[kLanes] = {};
#pragma unroll
      for (int c = 0; c < Count / 4; ++c) {
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          s[4 * c + e] = fast_exp2(fmaf(s[4 * c + e], dq, bias));
          sum8[c % kLanes] += s[4 * c + e];
        }
      }
#pragma unroll
      for (int v = kLanes / 2; v > 0; v /= 2) {
#pragma unroll
        for (int l = 0; l < v; ++l) sum8[l] += sum8[l + v];
      }
      row_sum[r] = row_sum[r] * alpha[r] + sum8[0];
    }
  }
}

// The FP8 promotion of a fresh P·V accumulator into O: O[first, first + n) = α·O + acc (n a multiple
// of 4, so that register i holds row (i / 2) % 2, as wgmma lays out its accumulators).
template <int ORegs>
__device__ __forceinline__ void promote_o(float (&o)[ORegs], int first, const float* acc, int n,
                                          const float (&alpha)[2]) {
#pragma unroll
  for (int i = 0; i < n; ++i) o[first + i] = o[first + i] * alpha[(i / 2) % 2] + acc[i];
}

// O = α·O and l = α·l before a 16-bit P·V accumulates onto them (register i of O and of l holds row
// (i / 2) % 2, as wgmma lays out its accumulators).
template <int ORegs>
__device__ __forceinline__ void rescale(float (&o)[ORegs], float (&l_acc)[4], const float (&alpha)[2]) {
#pragma unroll
  for (int i = 0; i < ORegs; ++i) o[i] *= alpha[(i / 2) % 2];
#pragma unroll
  for (int i = 0; i < 4; ++i) l_acc[i] *= alpha[(i / 2) % 2];
}

// rescale as attn_wgmma.cuh's f16 forms run it: skipped where α = 1 for every row of the warp. Once
// the running maxima settle, most blocks raise none, and O·1 is O, so the skip changes no bit
// (scripts/ab_bits.py: the same output and LSE bits on its 10 shapes, D 64–256, with f16 P·V and
// with two-term Q/K). A warp's threads vote; the wgmma that follows is the warpgroup's, and each
// warp's registers are its own. H100, B4, kernel only, same call: D 128
// and 256 4.4–7.0% faster from 4k (two-term Q/K included), the precise mode at D 96 8–11%, equal at
// D 64, at 1k and at causal 4k (bench/results/2026-11-28-pv-parts-and-32k-h100.md §4). The
// single-warpgroup kernel's f16 form measured 0…3.5% slower with it and keeps the plain rescale.
template <int ORegs>
__device__ __forceinline__ void rescale_unless_one(float (&o)[ORegs], float (&l_acc)[4], const float (&alpha)[2]) {
  if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) rescale(o, l_acc, alpha);
}

// The LSE (natural log, −inf for a row that saw no key) of the thread's rows row0 and row0 + 8 of
// tile w, for one thread of the quad. lse_correction is [B, Hq, seq_q] (seq_q the longest with
// varlen); the LSE too, except with varlen, where it is packed [Hq, total_q] (attn_params.cuh).
// own_corr: the rows' corrections corr0 / corr1 were computed in the kernel (fused_q) and replace
// lse_correction (values, not an array: an array's address would put it in local memory).
__device__ __forceinline__ void store_lse(const AttnParams& p, const AttnWgmmaTile& w, long long bh_q, int row0,
                                          const float (&row_max)[2], const float (&row_sum)[2],
                                          bool own_corr = false, float corr0 = 0.0f, float corr1 = 0.0f) {
  constexpr float kLn2 = 0.6931471805599453f;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + 8 * r;
    if (row < w.seq_q) {
      const long long row_index = bh_q * p.seq_q + row;
      const long long idx =
          p.cu_seqlens_q != nullptr ? w.h * static_cast<long long>(p.cu_seqlens_q[p.batch]) + w.q_tok0 + row : row_index;
      float lse = mma_ops::neg_inf();
      if (row_sum[r] > 0.0f) {
        lse = (row_max[r] + mma_ops::fast_log2(row_sum[r]) - kLog2Fp8Max) * kLn2;
        if (own_corr) lse += r == 0 ? corr0 : corr1;
        else if (p.lse_correction != nullptr) lse += p.lse_correction[row_index];
      }
      p.lse[idx] = lse;
    }
  }
}

}  // namespace sagejit::kernels
