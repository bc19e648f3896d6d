// attn_wgmma.cuh — the first Hopper (sm_90a) SageAttention2 forward kernel: TMA + mbarriers + wgmma.
//
// Same algorithm and numerics as attn_mma.cuh's FP8 path (DESIGN.md §1), on Hopper's warpgroup MMAs:
//   S  = Q_int8 · K_int8ᵀ        wgmma s8 m64n128k32, A (Q tile) and B (K tile) from 128B/64B-swizzled
//                                shared memory written by TMA, s32 accumulators
//   s2 = S · q_scale · k_scale   one product per thread and block: with quantize(block_q 64, warp_q 16,
//                                block_k = warp_k = 128, per_thread) the m64nN accumulator layout gives
//                                each thread one Q group (16w + g, row % 8 == g) and one K group
//                                ((key % 8) / 2 == t) per block (docs/hopper_kernel_plan.md §4)
//   P̃  = exp2(s2 − m + log2 448) online softmax over the quad of 4 lanes (shfl xor 1, 2); the row
//                                sum l accumulates the unquantized P̃ in fp32
//   O  = α·O + P̃_e4m3 · V_e4m3   wgmma e4m3 m64nDk32 with A = P̃ packed from the S accumulators in
//                                registers (pack_p_e4m3; V token-permuted by the quantizer) and B = the
//                                channel-major V tile ([D × 128 keys], K-major) from shared memory, into
//                                a FRESH fp32 accumulator per 128-key block that is then added into O
//                                (two-level accumulation; the FP8 tensor-core sum keeps ~14 bits)
//   out = O / l · v_scale        fp16, plain 4-byte stores from registers; rows >= seq_q not written
//   lse = (m + log2 l − log2 448)·ln 2 + lse_correction      (natural log, optional)
//
// Structure (the simple, correct first version; docs/hopper_kernel_plan.md is the target):
//   CTA = ONE consumer warpgroup (128 threads) owning 64 query rows of one (batch, q head). Thread 0
//   also plays producer: it issues every TMA (Q once; K and V of block j into stage j % stages). K and
//   V have separate "full" mbarriers per stage, so QKᵀ of block j starts before V_j lands. After the
//   P·V of block j is waited on, a CTA barrier (__syncthreads, 128 threads) says stage j % stages is
//   free, and thread 0 refills it with block j + stages. No producer warp, no setmaxnreg, no
//   intra-warpgroup overlap and no ping-pong yet: with 72 KB of shared memory (D = 128, 2 stages) and
//   <= 256 registers per thread, 2 CTAs share an SM and overlap each other's softmax and MMAs.
//
// Kernel parameters / launch contract:
//   attention_wgmma<Cfg>(AttnParams p, const __grid_constant__ TmaDescriptor tma_q,
//                        const __grid_constant__ TmaDescriptor tma_k,
//                        const __grid_constant__ TmaDescriptor tma_v)
//   grid  (ceil(seq_q / 64), heads_q, batch), block 128 threads,
//   dynamic shared memory attn_wgmma_smem_bytes(head_dim, stages) = 64·D + stages·2·128·D + 1024
//   (the +1024 aligns the swizzled tiles by hand; > 48 KiB: Kernel::launch raises the limit).
//   AttnParams fields read: q_scale, v_scale, o, lse, lse_correction, o_stride_b/h/s, batch, heads_q,
//   heads_kv, seq_q, seq_kv, seq_q_pad, seq_kv_pad. p.q / p.k / p.v are NOT read (the tensor maps
//   address them); p.k_scale is read. Not supported (host must not ask): varlen (cu_seqlens must be
//   null), Q smoothing, int4 Q/K, FP16 P·V, bf16 output, other quantization geometries.
//   Tensor maps (cuTensorMapEncodeTiled, 2-D, uint8, zero OOB fill, interleave none), over the
//   quantized workspace of quant_layout.cuh quantized with block_q 64, warp_q 16, block_k 128,
//   warp_k 128, per_thread, int8 Q/K, FP8 V:
//     tma_q: dims {D, B·Hq·seq_q_pad},  row stride D bytes,          box {D, 64}
//     tma_k: dims {D, B·Hkv·seq_kv_pad}, row stride D bytes,         box {D, 128}
//     tma_v: dims {seq_kv_pad, B·Hkv·D}, row stride seq_kv_pad bytes, box {128, D}
//   swizzle: Q and K 128B for D = 128, 64B for D = 64 (the row length in bytes); V always 128B.
//
// Cfg (every member static constexpr; AttnWgmmaCfg below is the ready-made one):
//   int  head_dim   64 or 128
//   int  stages     K/V ring depth, >= 2
//   int  mask       0 none, 1 causal top-left (i sees j <= i), 2 causal bottom-right
//   bool write_lse  write p.lse (when non-null)
//   int  min_ctas_per_sm   optional, default 2 (__launch_bounds__' second argument)
#pragma once

#include "attn_params.cuh"
#include "hopper_ops.cuh"
#include "quant_layout.cuh"

namespace sagejit::kernels {

template <int HeadDim, int Stages, int Mask, bool WriteLse>
struct AttnWgmmaCfg {
  static constexpr int head_dim = HeadDim;
  static constexpr int stages = Stages;
  static constexpr int mask = Mask;
  static constexpr bool write_lse = WriteLse;
};

// kWgmmaCtaQ, kWgmmaCtaK and attn_wgmma_smem_bytes live in attn_params.cuh: the host planner
// needs them too, and this header only compiles for sm_90a.

template <class C, class = void>
struct AttnWgmmaMinCtas {
  static constexpr int value = 2;
};
template <class C>
struct AttnWgmmaMinCtas<C, decltype(void(C::min_ctas_per_sm))> {
  static constexpr int value = C::min_ctas_per_sm;
};

template <class Cfg>
__global__ void __launch_bounds__(128, AttnWgmmaMinCtas<Cfg>::value)
    attention_wgmma(AttnParams p, const __grid_constant__ hopper::TmaDescriptor tma_q,
                    const __grid_constant__ hopper::TmaDescriptor tma_k,
                    const __grid_constant__ hopper::TmaDescriptor tma_v) {
  using namespace mma_ops;
  using namespace hopper;
  constexpr int kD = Cfg::head_dim, kStages = Cfg::stages;
  constexpr int kCtaQ = kWgmmaCtaQ, kCtaK = kWgmmaCtaK;
  constexpr int kQKSteps = kD / 32;          // k32 steps of QKᵀ
  constexpr int kPVSteps = kCtaK / 32;       // k32 steps of P·V
  constexpr int kSRegs = kCtaK / 2;          // S accumulators per thread (m64n128)
  constexpr int kORegs = kD / 2;             // O accumulators per thread (m64nD)
  constexpr Swizzle kQKSwizzle = kD == 128 ? Swizzle::b128 : Swizzle::b64;
  constexpr u32 kQBytes = kCtaQ * kD, kKBytes = kCtaK * kD, kVBytes = kD * kCtaK;
  constexpr int kQGroups = layout::q_groups(layout::Granularity::per_thread, kCtaQ, 16);  // 32
  constexpr int kKGroups = layout::k_groups(layout::Granularity::per_thread, kCtaK, kCtaK);  // 4
  constexpr float kLog2Fp8Max = 8.807354922057604f;  // log2(448), as attn_mma.cuh
  constexpr float kLn2 = 0.6931471805599453f;
  static_assert(kD == 64 || kD == 128, "attention_wgmma: head_dim 64 or 128");
  static_assert(kStages >= 2, "stages >= 2");
  static_assert(Cfg::mask >= 0 && Cfg::mask <= 2, "mask: 0 none, 1 top-left, 2 bottom-right");
  static_assert(attn_wgmma_smem_bytes(kD, kStages) <= 227 * 1024, "shared memory over 227 KB");

  extern __shared__ __attribute__((aligned(1024))) u8 smem[];
  __shared__ u64 bar_q;
  __shared__ u64 bar_k[kStages];
  __shared__ u64 bar_v[kStages];

  // Swizzled tiles start on 1024-byte boundaries (the 128B swizzle repeat): align by hand.
  const u32 sQ = (smem_u32(smem) + 1023) & ~1023u;
  const u32 sK = sQ + kQBytes;
  const u32 sV = sK + kStages * kKBytes;

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const int b = blockIdx.z, h = blockIdx.y;
  const int hk = h / (p.heads_q / p.heads_kv);
  const int qt = Cfg::mask != 0 ? static_cast<int>(gridDim.x - 1 - blockIdx.x)
                                : static_cast<int>(blockIdx.x);
  const int seq_q = p.seq_q, seq_kv = p.seq_kv;
  const int q0 = qt * kCtaQ;
  if (q0 >= seq_q) return;  // whole CTA, before any barrier

  const int diag = Cfg::mask == 2 ? seq_kv - seq_q : 0;
  int n_tiles = (seq_kv + kCtaK - 1) / kCtaK;
  if constexpr (Cfg::mask != 0) {
    const int last_row = (q0 + kCtaQ < seq_q ? q0 + kCtaQ : seq_q) - 1;
    const int last_key = last_row + diag;
    const int causal_tiles = last_key < 0 ? 0 : last_key / kCtaK + 1;
    n_tiles = causal_tiles < n_tiles ? causal_tiles : n_tiles;
  }

  const int q_blocks = p.seq_q_pad / kCtaQ, k_blocks = p.seq_kv_pad / kCtaK;
  const long long bh_q = static_cast<long long>(b) * p.heads_q + h;
  const long long bh_kv = static_cast<long long>(b) * p.heads_kv + hk;
  // TMA row coordinates (2-D maps over the whole workspace tensors).
  const int q_row = static_cast<int>(bh_q * p.seq_q_pad + q0);
  const int k_row0 = static_cast<int>(bh_kv * p.seq_kv_pad);
  const int v_row = static_cast<int>(bh_kv * kD);

  const float q_scale = ldg_f32(p.q_scale + (bh_q * q_blocks + qt) * kQGroups +
                                layout::q_group_of_row(layout::Granularity::per_thread, 16 * warp + g, 16));
  const float* k_scale_ptr = p.k_scale + bh_kv * k_blocks * kKGroups + t;  // group t of each block

  const u32 bq = smem_u32(&bar_q);
  const u32 bk0 = smem_u32(&bar_k[0]), bv0 = smem_u32(&bar_v[0]);
  // K and V of a tile are refilled separately: K slot j % stages is free once QKᵀ(j) completed,
  // V slot j % stages only once the (deferred) P·V(j) completed one iteration later.
  auto issue_k = [&](int tile) {
    const int s = tile % kStages;
    mbarrier_arrive_expect_tx(bk0 + 8 * s, kKBytes);
    tma_load_2d(sK + s * kKBytes, tma_k, bk0 + 8 * s, 0, k_row0 + tile * kCtaK);
  };
  auto issue_v = [&](int tile) {
    const int s = tile % kStages;
    mbarrier_arrive_expect_tx(bv0 + 8 * s, kVBytes);
    tma_load_2d(sV + s * kVBytes, tma_v, bv0 + 8 * s, tile * kCtaK, v_row);
  };

  if (tid == 0) {
    prefetch_tma_descriptor(tma_q);
    prefetch_tma_descriptor(tma_k);
    prefetch_tma_descriptor(tma_v);
    mbarrier_init(bq, 1);
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(bk0 + 8 * s, 1);
      mbarrier_init(bv0 + 8 * s, 1);
    }
    fence_barrier_init();
  }
  __syncthreads();
  if (tid == 0) {
    mbarrier_arrive_expect_tx(bq, kQBytes);
    tma_load_2d(sQ, tma_q, bq, 0, q_row);
    for (int j = 0; j < kStages && j < n_tiles; ++j) {
      issue_k(j);
      issue_v(j);
    }
  }

  float o[kORegs];
#pragma unroll
  for (int i = 0; i < kORegs; ++i) o[i] = 0.0f;
  float row_max[2] = {neg_inf(), neg_inf()}, row_sum[2] = {0.0f, 0.0f};

  const u64 desc_q = make_kmajor_desc(sQ, kQKSwizzle);
  // Rows of this thread within the sequence (acc_row: 16w + g + 8r).
  const int my_row0 = q0 + 16 * warp + g;

  mbarrier_wait_parity(bq, 0);  // always: no CTA exits with its Q copy in flight

  // Issue S_j = Q K_jᵀ (s32, both operands from shared memory) as one commit group.
  auto issue_qk = [&](int j, i32 (&acc)[kSRegs]) {
    const u64 desc_k = make_kmajor_desc(sK + (j % kStages) * kKBytes, kQKSwizzle);
#pragma unroll
    for (int ks = 0; ks < kQKSteps; ++ks) {
      wgmma_s8_ss<kCtaK>(acc, desc_advance(desc_q, 32 * ks), desc_advance(desc_k, 32 * ks), ks > 0);
    }
    wgmma_commit();
  };
  // Issue pv = P̃_j V_j (fresh fp32 accumulator) as one commit group.
  auto issue_pv = [&](int j, float (&pv)[kORegs], u32 (&pa)[kPVSteps][4]) {
    const u64 desc_v = make_kmajor_desc(sV + (j % kStages) * kVBytes, Swizzle::b128);
#pragma unroll
    for (int k = 0; k < kPVSteps; ++k) wgmma_e4m3_rs<kD>(pv, pa[k], desc_advance(desc_v, 32 * k), k > 0);
    wgmma_commit();
  };
  // Dequantize, mask and online-softmax S_j (completed accumulators) into P̃_j (fp32, in s);
  // alpha = exp2(m_old − m_new) per row. Updates row_max and the thread-partial row_sum.
  // The e4m3 packing is separate (pack_p): it must not run while a P·V wgmma is in flight, or
  // ptxas serializes every wgmma (C7513: non-wgmma defs of wgmma input registers in the stage).
  auto softmax_block = [&](int j, i32 (&acc)[kSRegs], float (&s)[kSRegs], float (&alpha)[2]) {
    const float dequant = q_scale * ldg_f32(k_scale_ptr + j * kKGroups);
#pragma unroll
    for (int i = 0; i < kSRegs; ++i) s[i] = s32_to_f32(acc[i]) * dequant;

    // ---- mask: keys past seq_kv and, on diagonal blocks, causal ----
    const int key0 = j * kCtaK;
    const bool tail = key0 + kCtaK > seq_kv;
    const bool diagonal = Cfg::mask != 0 && key0 + kCtaK - 1 > q0 + diag;
    if (tail || diagonal) {
#pragma unroll
      for (int i = 0; i < kSRegs; ++i) {
        const int key = key0 + acc_col(tid, i);
        const int row = my_row0 + 8 * ((i / 2) % 2);
        bool masked = key >= seq_kv;
        if constexpr (Cfg::mask != 0) masked = masked || key > row + diag;
        if (masked) s[i] = neg_inf();
      }
    }

    // ---- online softmax (log2 domain); register i is row r = (i / 2) % 2 ----
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = neg_inf();
#pragma unroll
      for (int c = 0; c < kSRegs / 4; ++c) mx = fmaxf(mx, fmaxf(s[4 * c + 2 * r], s[4 * c + 2 * r + 1]));
      mx = quad_max(mx);
      const float m_new = fmaxf(row_max[r], mx);
      const float m_use = m_new == neg_inf() ? 0.0f : m_new;  // no visible key yet: never NaN
      alpha[r] = fast_exp2(row_max[r] - m_use);
      row_max[r] = m_new;
      const float bias = m_use - kLog2Fp8Max;
      float sum = 0.0f;
#pragma unroll
      for (int c = 0; c < kSRegs / 4; ++c) {
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          s[4 * c + e] = fast_exp2(s[4 * c + e] - bias);
          sum += s[4 * c + e];
        }
      }
      row_sum[r] = row_sum[r] * alpha[r] + sum;  // thread-partial; quad-reduced in the epilogue
    }
  };
  // ---- P̃ → e4m3 A fragments (no shuffles; V is token-permuted) ----
  auto pack_p = [&](const float (&s)[kSRegs], u32 (&pa)[kPVSteps][4]) {
#pragma unroll
    for (int k = 0; k < kPVSteps; ++k) pack_p_e4m3(s, k, pa[k]);
  };

  // ============================ main loop over K/V blocks (pipelined) ============================
  // Intra-warpgroup overlap (FA3 §3.2): iteration j issues QKᵀ(j) and then P·V(j − 1), waits for
  // QKᵀ(j) only, and runs the softmax of block j while the tensor cores still do P·V(j − 1).
  // o holds blocks < j − 1 (scaled to m_{j−2}); pa / alpha_prev hold P̃_{j−1} and exp2(m_{j−2} − m_{j−1}).
  u32 pa[kPVSteps][4];
  float alpha_prev[2] = {0.0f, 0.0f};
  if (n_tiles > 0) {
    mbarrier_wait_parity(bk0, 0);
    i32 acc[kSRegs];
    fence_operands(acc);
    wgmma_fence();
    issue_qk(0, acc);
    wgmma_wait<0>();
    fence_operands(acc);
    float s[kSRegs];
    softmax_block(0, acc, s, alpha_prev);
    pack_p(s, pa);
    __syncthreads();  // K slot 0 is free for every thread
    if (tid == 0 && kStages < n_tiles) issue_k(kStages);
  }
  for (int j = 1; j < n_tiles; ++j) {
    const int stage = j % kStages, pstage = (j - 1) % kStages;
    const u32 parity = (j / kStages) & 1, pparity = ((j - 1) / kStages) & 1;

    mbarrier_wait_parity(bk0 + 8 * stage, parity);
    mbarrier_wait_parity(bv0 + 8 * pstage, pparity);
    i32 acc[kSRegs];
    float pv[kORegs];
    fence_operands(acc);
#pragma unroll
    for (int k = 0; k < kPVSteps; ++k) fence_operands(pa[k]);
    fence_operands(pv);
    wgmma_fence();
    issue_qk(j, acc);      // group 1
    issue_pv(j - 1, pv, pa);  // group 2
    wgmma_wait<1>();       // S_j done; P·V(j − 1) may still run
    fence_operands(acc);

    float s[kSRegs];
    float alpha_next[2];
    softmax_block(j, acc, s, alpha_next);

    wgmma_wait<0>();  // P·V(j − 1) done
    fence_operands(pv);
#pragma unroll
    for (int k = 0; k < kPVSteps; ++k) fence_operands(pa[k]);
    fence_operands(s);
    // ---- promote: O = α_{j−1}·O + pv ----
#pragma unroll
    for (int i = 0; i < kORegs; ++i) o[i] = o[i] * alpha_prev[(i / 2) % 2] + pv[i];
    pack_p(s, pa);  // only now: P·V(j − 1) no longer reads pa
    alpha_prev[0] = alpha_next[0];
    alpha_prev[1] = alpha_next[1];

    // ---- K slot of block j and V slot of block j − 1 are free for every thread: refill ----
    __syncthreads();
    if (tid == 0) {
      if (j + kStages < n_tiles) issue_k(j + kStages);
      if (j - 1 + kStages < n_tiles) issue_v(j - 1 + kStages);
    }
  }
  if (n_tiles > 0) {  // drain: P·V of the last block
    const int jl = n_tiles - 1;
    mbarrier_wait_parity(bv0 + 8 * (jl % kStages), (jl / kStages) & 1);
    float pv[kORegs];
#pragma unroll
    for (int k = 0; k < kPVSteps; ++k) fence_operands(pa[k]);
    fence_operands(pv);
    wgmma_fence();
    issue_pv(jl, pv, pa);
    wgmma_wait<0>();
    fence_operands(pv);
#pragma unroll
    for (int i = 0; i < kORegs; ++i) o[i] = o[i] * alpha_prev[(i / 2) % 2] + pv[i];
  }

  // ================================ epilogue ================================
  const int eb = cta_id_z(), eh = cta_id_y();
  const long long e_bh_q = static_cast<long long>(eb) * p.heads_q + eh;
  const long long e_bh_kv = static_cast<long long>(eb) * p.heads_kv + eh / (p.heads_q / p.heads_kv);

  float inv_sum[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float l = quad_sum(row_sum[r]);
    row_sum[r] = l;
    inv_sum[r] = l > 0.0f ? 1.0f / l : 0.0f;  // no visible key: output 0, never NaN
  }

  if constexpr (Cfg::write_lse) {
    if (p.lse != nullptr && t == 0) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = my_row0 + 8 * r;
        if (row < seq_q) {
          const long long idx = e_bh_q * seq_q + row;
          float lse = neg_inf();
          if (row_sum[r] > 0.0f) {
            lse = (row_max[r] + fast_log2(row_sum[r]) - kLog2Fp8Max) * kLn2;
            if (p.lse_correction != nullptr) lse += p.lse_correction[idx];
          }
          p.lse[idx] = lse;
        }
      }
    }
  }

  const float* vs = p.v_scale + e_bh_kv * kD;
  u16* gO = static_cast<u16*>(p.o) + eb * p.o_stride_b + eh * p.o_stride_h;
#pragma unroll
  for (int c = 0; c < kORegs / 4; ++c) {  // 8-channel slice c: channels 8c + 2t, 8c + 2t + 1
    const float c0 = ldg_f32(vs + 8 * c + 2 * t), c1 = ldg_f32(vs + 8 * c + 2 * t + 1);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = my_row0 + 8 * r;
      if (row < seq_q) {
        const u32 v = f32x2_to_half2<false>(o[4 * c + 2 * r] * (inv_sum[r] * c0),
                                             o[4 * c + 2 * r + 1] * (inv_sum[r] * c1));
        *reinterpret_cast<u32*>(gO + row * p.o_stride_s + 8 * c + 2 * t) = v;
      }
    }
  }
}

}  // namespace sagejit::kernels
