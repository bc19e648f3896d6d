// attn_wgmma_single.cuh — the sm_90a attention kernel in its simplest form: one warpgroup per CTA
// (64 query rows), no producer, one K and one V buffer, each K/V block in order, and several CTAs
// per SM (Cfg::min_ctas: 3 at head dim 128, 4 at 96 and 64, 2 at 256 by default), whose independent
// warpgroups fill each other's gaps on the tensor cores and the MUFU.
//
// Why this form: the warp-specialized kernel (attn_wgmma.cuh) keeps two consumer warpgroups and a
// producer on an SM, overlaps each consumer's softmax with its own P·V, and pays for it in registers
// (the loop state goes to shared memory, descriptors and barrier addresses are recomputed per block)
// with only two consumer warps per scheduler. Its loop is latency-bound (ncu: CPI ~5, tensor pipe
// 38%). Here a warpgroup needs 164–166 registers at D = 128 (144–147 at 96, or 128 in the lean form
// below; 122–128 at 64), so three (four) CTAs share an SM: three (four) warps per scheduler, each
// running the plain chain below; at D = 256 (FP8 P·V only) O alone is 128 registers, P·V runs in four
// parts of 64 channels and the lean form fits 2 CTAs at 254–255. Measured on the H100
// (B4, S4096, kernel only): 895 TOPS against 713 at D = 128, 605 against 444 at D = 64
// (bench/results/2026-11-26-wgmma-single-warpgroup-h100.md).
//
// Instructions cost tensor time: on the H100 a wgmma loses the cycles in which its SM sub-partition
// runs other math (bench/overlap_probe.cu: it keeps 86% of its rate beside a MUFU.EX2 stream, ~50%
// beside half-rate ALU work and ~7% beside full-rate FFMA), so a block costs about its wgmma time
// plus its register-reading instructions (~4.5 per score at D = 128: max, FFMA, MUFU, half a pack
// and the promotion; the magic-number start is immediate moves, which measured free). Hence the row
// sum rides the P·V wgmma as 8 more columns and the descriptors are a 32-bit word over a constant
// (bench/results/2026-11-26-wgmma-issue-cost-h100.md); exp2 on the FMA pipe and a software pipeline
// of two blocks at 2 CTAs per SM (241 registers) measured slower.
//
// Per K/V block j (same numerics as attn_wgmma.cuh's FP8 path, DESIGN.md §1):
//   S = Q K_jᵀ          wgmma s8 m64n128k32 ×(D/32) onto the 1.5·2²³ float bits (the s32 → f32 trick)
//   wait; thread 0 reloads K_{j+1} into the one K buffer (the warpgroup's QKᵀ has read it)
//   P̃ = exp2(S·dq + log2 448 − m)   online softmax, row max over the quad
//   [O_j | l_j] = P̃ · [V_j | 1]      wgmma e4m3 m64n(D+8)k32, P̃ from registers, into fresh f32
//                                    (D = 256: four parts, m64n64k32 ×3 and m64n72k32)
//   wait; thread 0 reloads V_{j+1}; O = α·O + O_j, l = α·l + l_j (FP8 sums promoted every 128 keys)
//   (the P·V forms: attn_wgmma_single_pv.cuh)
// epilogue: out = O / l · v_scale (fp16 or bf16) through shared memory (stmatrix, then 16-byte
// stores), LSE optional.
// With Cfg::pv_f16 (the pv = f16 mode), as attn_wgmma.cuh's f16 form: V is the caller's tensor, read
// by TMA in boxes of 128 keys × 64 channels (32 at D = 96) and used as the MN-major B of m64nDk16
// wgmmas; P̃ goes to 16-bit A fragments; O and the row sums (m64n8k16 on a 16-bit ones tile)
// accumulate in the wgmma after a rescale by α, since the f16 sums keep f32 precision; no v_scale.
// 149–156 / 156–168 / 175–192 registers at D = 64 / 96 / 128 (3, 3 and 2 CTAs per SM).
//
// With Cfg::fused_q the CTA quantizes its Q tile itself from the caller's fp16/bf16 Q (p.q, strides
// p.q_stride_*; attn_wgmma_q.cuh), the same bits as the separate pass, and computes the LSE's
// K-smoothing correction from p.k_mean; tma_q is then not read. Its prologue reads only the
// caller's tensors until griddep_wait: launched programmatically after quantize_kv, the Q loads run
// during quantize_kv's last CTAs. On the H100 (B4, same runs) the whole call is 6.3% faster at D =
// 128 S = 1k and 3.1% at 4k, 8.7% at D = 64 S = 1k, against Q in its own pass
// (bench/results/2026-11-26-fused-q-h100.md).
//
// The shared-ring form (Cfg::warpgroups = 3, Cfg::min_ctas = 1; FP8 P·V at D = 128): one CTA per SM
// whose warpgroups take q tiles 3x, 3x + 1 and 3x + 2 of one (b, h) (x: the CTA's 192-row tile,
// causal ones longest first), each with its own Q tile, O staging tile and chain as above, and read
// K/V block j from slot j % 4 of one ring (attn_wgmma_kv_ring.cuh) instead of reloading private
// buffers: a block leaves L2 once per SM. With a causal mask a warpgroup whose rows end before the
// CTA's last visits fewer blocks; it then follows the ring through the rest without computing. Same
// bits as the single form.
//
// Launch contract: grid exactly (attn_wgmma_q_slots(seq_q, 64, causal), heads_q, batch) — at D = 256
// the epilogue derives its tile from gridDim.x, and a CTA of any other grid traps —, 128 threads (causal
// tiles longest first in groups of p.lpt_heads (b, h): attn_wgmma_tile_lpt),
// attn_wgmma_single_smem_bytes(head_dim, pv_f16) of dynamic shared memory; tensor maps and the
// quantized workspace exactly as attn_wgmma.cuh with one consumer (block_q 64, warp_q 16, block_k =
// warp_k = 128, per_thread, int8 Q/K, FP8 V or the caller's 16-bit V; tma_q box {W, 64}, tma_k box
// {W, 128} with W = attn_wgmma_qk_box_bytes(D) — the whole row at D = 64 and 128, three 32-byte boxes
// at 96, two 128-byte boxes at 256 —, tma_v box {128, D} or, 16-bit, attn_wgmma.cuh's 4-D map). AttnParams as attn_wgmma.cuh
// (varlen included). The shared-ring form: grid (attn_wgmma_q_slots(seq_q, 192, causal), heads_q, batch),
// 384 threads, attn_wgmma_shared_smem_bytes(head_dim, 3).
#pragma once

#include "attn_params.cuh"
#include "attn_softmax.cuh"
#include "attn_wgmma_kv_ring.cuh"
#include "attn_wgmma_q.cuh"
#include "attn_wgmma_single_pv.cuh"
#include "attn_wgmma_smem.cuh"
#include "attn_wgmma_tile.cuh"
#include "hopper_ops.cuh"
#include "quant_layout.cuh"

namespace sagejit::kernels {

template <int HeadDim, int Mask, bool WriteLse, bool OutBf16, int MinCtas, bool PvF16 = false, bool FusedQ = false,
          int Warpgroups = 1>
struct AttnWgmmaSingleCfg {
  static constexpr int head_dim = HeadDim;   // 64, 96, 128, or 256 with FP8 P·V
  static constexpr int mask = Mask;          // 0 none, 1 causal top-left, 2 causal bottom-right
  static constexpr bool write_lse = WriteLse;
  static constexpr bool out_bf16 = OutBf16;
  static constexpr int min_ctas = MinCtas;   // CTAs per SM the registers are budgeted for
  static constexpr bool pv_f16 = PvF16;      // 16-bit P·V on the caller's V (below) instead of FP8
  static constexpr bool fused_q = FusedQ;    // Q quantized here from the caller's (attn_wgmma_q.cuh)
  static constexpr int warpgroups = Warpgroups;  // > 1: the shared-ring form (below), min_ctas 1
};

template <class Cfg>
__global__ void __launch_bounds__(kWgmmaSingleThreads * Cfg::warpgroups, Cfg::min_ctas)
    attention_wgmma_single(AttnParams p, const __grid_constant__ hopper::TmaDescriptor tma_q,
                           const __grid_constant__ hopper::TmaDescriptor tma_k,
                           const __grid_constant__ hopper::TmaDescriptor tma_v) {
  using namespace mma_ops;
  using namespace hopper;
  constexpr int kD = Cfg::head_dim, kRows = kWgmmaRowsPerWg, kCtaK = kWgmmaCtaK;
  constexpr bool kF16 = Cfg::pv_f16;
  constexpr int kSRegs = kCtaK / 2, kORegs = kD / 2, kQKSteps = kD / 32;
  constexpr int kPVSteps = kCtaK / (kF16 ? 16 : 32);  // k32 (e4m3) or k16 (f16) steps of P·V
  static_assert(kD == 64 || kD == 96 || kD == 128 || (kD == 256 && !kF16),
                "attention_wgmma_single: head_dim 64, 96 or 128, or 256 with FP8 P·V");
  // P·V in parts of kPvPartChannels channels at D = 256 (PvFp8PartsBlock): the last carries the 8
  // row-sum columns.
  constexpr bool kPVParts = kD == 256;
  static_assert(Cfg::mask >= 0 && Cfg::mask <= 2, "mask: 0 none, 1 top-left, 2 bottom-right");
  // Q and K rows in boxes of their swizzle span (attn_wgmma_qk_box_bytes): one box, three 32-byte boxes
  // at D = 96 or two 128-byte boxes at 256, stored one after another (box b of a tile of R rows at
  // b·R·kQKBox).
  constexpr int kQKBox = attn_wgmma_qk_box_bytes(kD), kQKBoxes = kD / kQKBox;
  static_assert(kQKBox % 32 == 0, "a k32 step stays inside one box");
  constexpr Swizzle kQKSwizzle = swizzle_of_span(kQKBox);
  constexpr Swizzle kVSwizzle = swizzle_of_span(kCtaK);
  static_assert(kF16 || (kVSwizzle == Swizzle::b128 && attn_wgmma_ones_bytes(false) == 8 * kCtaK && kD % 8 == 0 &&
                         (kPVParts ? kPvPartChannels + 8 : kD + 8) <= 256),
                "the ones tile continues V's 128-byte swizzled rows: 8 more rows of 128 keys, one core-matrix "
                "group, and D + 8 (D = 256: a part's 64 + 8) is a wgmma N");
  static_assert((kRows * kD + kCtaK * kD) % 1024 == 0, "V (128-byte swizzle) starts 1024-byte aligned after Q and K");
  constexpr float kMinDequant = 1e-30f;              // dq > 0 keeps −inf·dq = −inf for masked keys
  constexpr int kQGroups = layout::q_groups(layout::Granularity::per_thread, kRows, 16);
  constexpr int kKGroups = layout::k_groups(layout::Granularity::per_thread, kCtaK, kCtaK);
  constexpr u32 kQBytes = kRows * kD, kKBytes = kCtaK * kD, kVBytes = kD * kCtaK * (kF16 ? 2 : 1);
  constexpr u32 kOnesBytes = attn_wgmma_ones_bytes(kF16);
  static_assert(attn_wgmma_single_smem_bytes(kD, kF16) == kQBytes + kKBytes + kVBytes + kOnesBytes + 1024,
                "attn_params.cuh sizes this kernel's shared memory");
  // The shared-ring form: kW warpgroups of one CTA, K/V blocks through WgmmaKvRing.
  constexpr int kW = Cfg::warpgroups;
  constexpr bool kShared = kW > 1;
  static_assert(!kShared || (!kF16 && !kPVParts && Cfg::min_ctas == 1),
                "the shared-ring form: FP8 P·V below head dim 256 (the generator ships 128), one CTA per SM");
  constexpr u32 kSlotBytes = attn_wgmma_shared_slot_bytes(kD);
  static_assert(!kShared || attn_wgmma_shared_smem_bytes(kD, kW) == kW * kQBytes + WgmmaKvRing::kSlots * kSlotBytes +
                                                                      attn_wgmma_o_stage_bytes(kD, kW) + 1024,
                "attn_params.cuh sizes the shared-ring form's shared memory");
  // f16 V: the caller's, in TMA boxes (attn_wgmma_smem.cuh; attn_wgmma.cuh's f16 form reads the same map).
  using V16 = AttnWgmmaV16<kD, kCtaK>;
  static_assert(!kF16 || kVBytes % 1024 == 0, "16-bit V boxes stay aligned");

  // The tile; an empty one (varlen: past its sequence's end) leaves before any barrier.
  const bool causal = Cfg::mask != 0;
  const int q_slots = attn_wgmma_q_slots(p.seq_q, kRows, causal);
  // The tile of block (x, y, z) of a grid of `slots` along x (x, y and z: blockIdx's, or the volatile
  // reads of the epilogue below).
  auto tile_of_block = [&](auto x, auto y, auto z, int slots) {
    return attn_wgmma_tile_lpt<kRows, kCtaK, Cfg::mask>(p, static_cast<int>(x + slots * (y + p.heads_q * z)), slots);
  };
  // Shared form: the CTA takes kW·64 query rows of one (b, h) (causal: longest first, as the single
  // form's tiles) and warpgroup wg its q tile kW·x + wg (wg broadcast from lane 0, so that ptxas keeps
  // it and what derives from it, the descriptors included, in uniform registers). `n_active`
  // warpgroups have a tile, the others leave at once and are never counted. The ring carries the
  // blocks of the CTA's last rows, `ring_blocks` (causal: a warpgroup's own n_blocks may be fewer).
  const int wg = kShared ? __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) / kWgmmaSingleThreads, 0) : 0;
  int n_active = 1, ring_blocks = 0;
  const AttnWgmmaTile w = [&] {
    if constexpr (kShared) {
      const int cta_slots = attn_wgmma_q_slots(p.seq_q, kW * kRows, causal);
      AttnWgmmaTile t = attn_wgmma_tile_lpt<kW * kRows, kCtaK, Cfg::mask>(
          p, static_cast<int>(blockIdx.x + cta_slots * (blockIdx.y + p.heads_q * blockIdx.z)), cta_slots);
      const int rows = t.seq_q - t.q0;
      n_active = rows < kW * kRows ? (rows + kRows - 1) / kRows : kW;
      ring_blocks = t.kv_blocks;
      attn_wgmma_tile_place<kRows, kCtaK, Cfg::mask>(t, t.qt * kW + wg);
      return t;
    } else {
      return tile_of_block(blockIdx.x, blockIdx.y, blockIdx.z, q_slots);
    }
  }();
  if (w.empty()) return;
  if constexpr (kPVParts) {
    if (cta_count_x() != q_slots) __trap();  // the epilogue takes gridDim.x for q_slots (launch contract)
  }

  extern __shared__ __attribute__((aligned(1024))) u8 smem[];
  // Single form: Q, K, V landed (one phase per block for K and V). Shared form: each warpgroup's Q,
  // then the ring's full and empty barriers.
  __shared__ u64 full[kShared ? kW + 2 * WgmmaKvRing::kSlots : 3];
  // Single form: [Q | K | V | ones]. Shared form: [Q × kW | slot × kSlots: K | V | ones | O staging × kW].
  const u32 sBase = (smem_u32(smem) + 1023) & ~1023u;
  const u32 sQ = sBase + (kShared ? wg * kQBytes : 0), sK = sBase + kW * kQBytes, sV = sK + kKBytes,
            sOnes = sV + kVBytes;
  // (full_k and full_v are the single form's; in the shared form full[1] and full[2] are other warpgroups' Q.)
  const u32 full_q = smem_u32(&full[kShared ? wg : 0]), full_k = kShared ? 0u : smem_u32(&full[1]),
            full_v = kShared ? 0u : smem_u32(&full[2]);
  WgmmaKvRing ring{kShared ? smem_u32(&full[kW]) : 0u, kShared ? smem_u32(&full[kW + WgmmaKvRing::kSlots]) : 0u};
  const int tid = kShared ? static_cast<int>(threadIdx.x) % kWgmmaSingleThreads : static_cast<int>(threadIdx.x);
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const long long bh_q = w.bh_q(p), bh_kv = w.bh_kv(p, p.heads_q / p.heads_kv);
  // K's first row in the workspace; FP8 V's first row there, or 16-bit V's head in the caller's tensor.
  const int k_row0 = static_cast<int>(bh_kv * p.seq_kv_pad);
  const int v_pos = kF16 ? static_cast<int>(bh_kv % p.heads_kv) : static_cast<int>(bh_kv * kD);
  const int n_blocks = w.kv_blocks;

  // fused_q: the caller's Q rows, loads issued first (their latency runs under the set-up below).
  FusedQRows<typename QElement<Cfg::out_bf16>::type, kD> q_rows;
  if constexpr (Cfg::fused_q) q_rows.load(p, w, w.q0, warp, g, t);

  // K block j into the one K buffer, box by box.
  auto load_k = [&](int j) {
    mbarrier_arrive_expect_tx(full_k, kKBytes);
#pragma unroll
    for (int b = 0; b < kQKBoxes; ++b) {
      tma_load_2d(sK + b * kCtaK * kQKBox, tma_k, full_k, b * kQKBox, k_row0 + j * kCtaK);
    }
  };
  // V block j into the one V buffer: FP8 from the workspace ([D × keys], one box), or f16 from the
  // caller's V at (key, head, batch) in V16::kBoxes boxes (varlen views have batch 1).
  auto load_v = [&](int j) {
    mbarrier_arrive_expect_tx(full_v, kVBytes);
    if constexpr (kF16) {
      const int v_batch = p.cu_seqlens_k != nullptr ? 0 : w.b;
#pragma unroll
      for (int c = 0; c < V16::kBoxes; ++c) {
        tma_load_4d(sV + c * V16::kBoxBytes, tma_v, full_v, V16::kChan * c, w.k_tok0 + j * kCtaK, v_pos, v_batch);
      }
    } else {
      tma_load_2d(sV, tma_v, full_v, j * kCtaK, v_pos);
    }
  };
  // Shared form: K and V of block j into slot(j), on the slot's one full barrier.
  auto load_kv = [&](int j) {
    const u32 slot_k = sK + WgmmaKvRing::slot(j) * kSlotBytes, bar = ring.full(j);
    mbarrier_arrive_expect_tx(bar, kKBytes + kVBytes);
#pragma unroll
    for (int b = 0; b < kQKBoxes; ++b) {
      tma_load_2d(slot_k + b * kCtaK * kQKBox, tma_k, bar, b * kQKBox, k_row0 + j * kCtaK);
    }
    tma_load_2d(slot_k + kKBytes, tma_v, bar, j * kCtaK, v_pos);
  };
  // The ones tile right after V (e4m3 1.0: B's rows kD..kD+7, whose products are the row sums P̃ · 1;
  // f16 / bf16 1.0: the B of a separate m64n8k16 row-sum wgmma).
  // (A constant trip count: from `tid` with a run-time start, the loop compiled to ~40 instructions.)
  // (Shared form: warpgroup 0 writes every slot's; the copies never touch them.)
  static_assert(kOnesBytes % (4 * kWgmmaSingleThreads) == 0, "whole words per thread");
  for (int s = 0; s < (kShared ? WgmmaKvRing::kSlots : 1) && wg == 0; ++s) {
#pragma unroll
    for (int k = 0; k < kOnesBytes / (4 * kWgmmaSingleThreads); ++k) {
      reinterpret_cast<u32*>(smem + (sOnes + s * kSlotBytes - smem_u32(smem)))[tid + kWgmmaSingleThreads * k] =
          attn_wgmma_ones_word(kF16, Cfg::out_bf16);
    }
  }
  // Dequantization: this thread's Q group (row % 8 == g of its warp's 16 rows) and K group t. With
  // fused_q the group is this thread's quad, quantized here into the Q tile; with an LSE and K
  // smoothing, also the rows' q·k̄·sm_scale.
  float q_scale = 0.0f, lse_corr0 = 0.0f, lse_corr1 = 0.0f;
  // kLean (FP8 P·V at D = 96 with 4 CTAs per SM, 128 registers a thread; at D = 256, 255): O, the P·V
  // accumulator(s) and P̃ leave the block loop no register to spare, so the values it reads once a
  // block (q_scale, the row sums) or not at all (the LSE corrections) wait in shared memory, and the
  // loop and the epilogue read the thread's index again (thread_id_x, mma_ops.cuh). Held in
  // registers, they spilled in the loop (D = 96: 48 bytes; D = 256: 16–44). Elsewhere this costs
  // (D = 64 and 128, H100: 1.4–3.6% slower), so the other forms hold them.
  constexpr bool kLean = !kF16 && ((kD == 96 && Cfg::min_ctas == 4) || kD == 256);
  __shared__ struct {
    float q_scale[kLean ? kWgmmaSingleThreads : 1];
    float2 row_sum[kLean ? kWgmmaSingleThreads : 1];
    float2 lse_corr[kLean ? kWgmmaSingleThreads : 1];
  } slots;
  const bool fused_lse_corr = Cfg::fused_q && Cfg::write_lse && p.lse != nullptr && p.k_mean != nullptr;
  // Everything above reads only the caller's tensors; everything below reads what the quantization
  // kernels wrote. Launched programmatically (runtime/attention.cpp), this CTA may have started
  // during their last CTAs: wait for them to complete here, with the Q loads in flight.
  griddep_wait();
  // The barriers, then the first copies from the thread that initialized them (the other threads
  // wait on the barriers only after the __syncthreads below; in the shared form, after its start
  // barrier, which counts the active warpgroups).
  if (tid == 0) {
    if constexpr (kShared) {
      mbarrier_init(full_q, 1);  // each warpgroup's own Q barrier; warpgroup 0 also the ring's
      if (wg == 0) ring.init(n_active);
    } else {
      mbarrier_init(full_q, 1), mbarrier_init(full_k, 1), mbarrier_init(full_v, 1);
    }
    fence_barrier_init();
    if constexpr (!Cfg::fused_q) {
      mbarrier_arrive_expect_tx(full_q, kQBytes);
#pragma unroll
      for (int b = 0; b < kQKBoxes; ++b) {
        tma_load_2d(sQ + b * kRows * kQKBox, tma_q, full_q, b * kQKBox, static_cast<int>(bh_q * p.seq_q_pad + w.q0));
      }
    }
    if constexpr (kShared) {
      for (int j = 0; wg == 0 && j < WgmmaKvRing::kSlots && j < ring_blocks; ++j) load_kv(j);
    } else {
      if (n_blocks > 0) load_k(0), load_v(0);
    }
  }
  if constexpr (Cfg::fused_q) {
    // (After the first K and V copies are issued, so their latency overlaps the Q loads'.)
    q_scale = q_rows.template quantize<kQKBox>(sQ, warp, g, t, p.q_scale_multiplier);
    if (fused_lse_corr) q_rows.lse_correction(p.k_mean + bh_kv * kD, t, p.sm_scale, lse_corr0, lse_corr1);
  } else {
    q_scale = ldg_f32(p.q_scale + (bh_q * (p.seq_q_pad / kRows) + w.qt) * kQGroups +
                      layout::q_group_of_row(layout::Granularity::per_thread, 16 * warp + g, 16));
  }
  if constexpr (kLean) {
    slots.q_scale[tid] = q_scale;
    slots.row_sum[tid] = make_float2(0.0f, 0.0f);
    slots.lse_corr[tid] = make_float2(lse_corr0, lse_corr1);
  }
  // Shared form with fused Q and an LSE: the LSE corrections wait out the block loop in the
  // warpgroup's O staging tile (unused until the epilogue). Held in registers, the causal forms spilled
  // 24–32 bytes at the 168-register cap.
  constexpr bool kParkLseCorr = kShared && Cfg::fused_q && Cfg::write_lse;
  float2* const parked_lse_corr = reinterpret_cast<float2*>(
      smem + (sK + WgmmaKvRing::kSlots * kSlotBytes + wg * kRows * attn_wgmma_o_row_bytes(kD) - smem_u32(smem)));
  if constexpr (kParkLseCorr) parked_lse_corr[tid] = make_float2(lse_corr0, lse_corr1);
  fence_proxy_async_shared();  // generic-proxy stores (ones, fused Q), read by wgmma
  if constexpr (kShared) named_barrier_sync(1, kWgmmaSingleThreads * n_active);
  else __syncthreads();
  // (kLean: the thread's group t is added in the loop.)
  // (Causal shared form: a 32-bit offset from p.k_scale, read from the parameters at each use: one
  // register fewer across the loop, without which its LSE forms spilled 8 bytes at the 168-register
  // cap. Elsewhere the pointer, which keeps the other forms' code as measured.)
  constexpr bool kKScaleOffset = kShared && Cfg::mask != 0;
  const long long k_scale_at = bh_kv * (p.seq_kv_pad / kCtaK) * kKGroups + (kLean ? 0 : t);
  const float* k_scale = p.k_scale + k_scale_at;
  const int k_scale_off = static_cast<int>(k_scale_at);
  // Blocks from first_masked on need the mask: the one holding key seq_kv (a tail) and, causal, every
  // block whose last key passes the tile's first row (+ diag).
  const int diag = Cfg::mask == 2 ? w.seq_kv - w.seq_q : 0;
  const int row_diag = w.q0 + 16 * warp + g + diag;  // this thread's first row + diag
  int first_masked = w.seq_kv % kCtaK != 0 ? w.seq_kv / kCtaK : n_blocks;
  if constexpr (Cfg::mask != 0) {
    const int x = w.q0 + diag - (kCtaK - 1);  // key0 > x: the block crosses the diagonal
    const int first_diagonal = x < 0 ? 0 : x / kCtaK + 1;
    first_masked = first_diagonal < first_masked ? first_diagonal : first_masked;
  }
  // Descriptors as a 32-bit low word (start address and LBO; a k-step adds 32 bytes = 2) over a
  // compile-time high word (SBO, swizzle): the tiles never move, and ptxas then builds the wgmma
  // operands with uniform moves instead of recomputing 64-bit descriptors in vector registers each
  // block (25 fewer instructions per block at D = 128).
  constexpr u32 kQKHi = static_cast<u32>(make_kmajor_desc(0, kQKSwizzle) >> 32);
  constexpr u32 kVHi = static_cast<u32>(make_kmajor_desc(0, kVSwizzle) >> 32);
  constexpr u32 kLbo = static_cast<u32>(make_kmajor_desc(0, kQKSwizzle));
  static_assert(kLbo == static_cast<u32>(make_kmajor_desc(0, kVSwizzle)), "Q, K and V descriptors share the LBO field");
  // (Shared addresses stay below 256 KiB on sm_90, so address >> 4 fits the 14-bit start field.)
  // (Shared form: slot s adds s · kSlotBytes to the K and V words.)
  const u32 lo_q = kLbo | (sQ >> 4), lo_k = kLbo | (sK >> 4), lo_v = kLbo | (sV >> 4);

  float o[kORegs], l_acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // f16: O and the row sums accumulate in the wgmma
#pragma unroll
  for (int i = 0; i < kORegs; ++i) o[i] = 0.0f;
  float row_max[2] = {neg_inf(), neg_inf()}, row_sum[2] = {0.0f, 0.0f};
  if constexpr (!Cfg::fused_q) mbarrier_wait_parity(full_q, 0);  // always: no CTA exits with a copy in flight

  for (int j = 0; j < n_blocks; ++j) {
    const u32 parity = j & 1;
    // Shared form: block j's slot, broadcast from lane 0 (uniform, as wg above), and its offset in
    // descriptor units.
    const int slot = kShared ? __shfl_sync(0xffffffffu, WgmmaKvRing::slot(j), 0) : 0;
    const u32 slot_lo = slot * (kSlotBytes >> 4);
    // (Issued before the waits: its latency hides.)
    const float k_scale_j = kKScaleOffset ? ldg_f32(p.k_scale + (k_scale_off + kKGroups * j))
                                    : ldg_f32(k_scale + kKGroups * j + (kLean ? thread_id_x() % 4 : 0));
    if constexpr (kShared) ring.wait(j, slot);
    else mbarrier_wait_parity(full_k, parity);
    // ---- S = Q K_jᵀ, onto the magic bits: the float with bits 0x4B400000 + S is 1.5·2²³ + S exactly
    // (|S| <= 127²·D < 2²²), which saves the s32 → f32 conversion ----
    i32 acc[kSRegs];
#pragma unroll
    for (int i = 0; i < kSRegs; ++i) acc[i] = kMagicBits;
    fence_operands(acc);
    wgmma_fence();
#pragma unroll
    for (int s = 0; s < kQKSteps; ++s) {
      wgmma_s8_ss<kCtaK>(acc, wgmma_desc(kQKHi, lo_q + (attn_wgmma_qk_step_bytes(s, kRows, kQKBox) >> 4)),
                         wgmma_desc(kQKHi, lo_k + slot_lo + (attn_wgmma_qk_step_bytes(s, kCtaK, kQKBox) >> 4)), true);
    }
    wgmma_commit();
    // Shared form: this warpgroup's turn to refill a slot comes under its QKᵀ (attn_wgmma_kv_ring.cuh).
    if constexpr (kShared) ring.refill(j, ring_blocks, n_active, wg, warp, lane, load_kv);
    wgmma_wait<0>();
    fence_operands(acc);
    // The warpgroup's QKᵀ is complete (one wgmma for all four warps): the K buffer is free.
    if constexpr (!kShared) {
      if (tid == 0 && j + 1 < n_blocks) load_k(j + 1);
    }

    // ---- mask (keys past seq_kv; causal on diagonal blocks) and online softmax, log2 domain ----
    const float q_scale_j = kLean ? slots.q_scale[thread_id_x()] : q_scale;
    const float dq = max_f(q_scale_j * k_scale_j, kMinDequant);  // a NaN scale stays NaN (common.cuh)
    float s[kSRegs];
#pragma unroll
    for (int i = 0; i < kSRegs; ++i) s[i] = __int_as_float(acc[i]);
    if (j >= first_masked) {
      const int key0 = j * kCtaK;
      if constexpr (kLean) {
        const int tid_now = thread_id_x(), lane_now = tid_now % 32, t_now = lane_now % 4;
        mask_scores<Cfg::mask>(s, w.seq_kv - key0 - 2 * t_now,
                               w.q0 + diag + 16 * (tid_now / 32) + lane_now / 4 - key0 - 2 * t_now);
      } else {
        mask_scores<Cfg::mask>(s, w.seq_kv - key0 - 2 * t, row_diag - key0 - 2 * t);
      }
    }
    float alpha[2];
    online_softmax<false>(s, dq, kMagicFloat * dq, row_max, alpha, row_sum);
    // FP8 P·V: l = α·l + l_j, where l_j (rows g and g + 8) came out of the P·V wgmma's ones columns.
    auto promote_row_sum = [&](float l0, float l1) {
      if constexpr (kLean) {
        float2& l = slots.row_sum[thread_id_x()];
        l = make_float2(l.x * alpha[0] + l0, l.y * alpha[1] + l1);
      } else {
        row_sum[0] = row_sum[0] * alpha[0] + l0;
        row_sum[1] = row_sum[1] * alpha[1] + l1;
      }
    };
    u32 pa[kPVSteps][4];  // P̃ as A fragments (FP8: V is token-permuted by the quantizer: no shuffles)
#pragma unroll
    for (int k = 0; k < kPVSteps; ++k) {
      if constexpr (kF16) pack_p_f16<Cfg::out_bf16>(s, k, pa[k]);
      else pack_p_e4m3(s, k, pa[k]);
    }
    if constexpr (!kShared) mbarrier_wait_parity(full_v, parity);  // (shared form: V landed with K)

    // ---- [O_j | l_j] = P̃ · [V_j | 1] (attn_wgmma_single_pv.cuh); V_{j+1} once the wgmmas have read
    // V_j, under the (last part's) FP8 promotion O = α·O + O_j ----
    if constexpr (kF16) {
      pv_f16_block<kD, kCtaK, Cfg::out_bf16, kWgmmaSingleThreads>(o, l_acc, pa, alpha, sV, sOnes,
                                                                  p.cu_seqlens_k != nullptr, w.seq_kv - j * kCtaK, tid);
      if (tid == 0 && j + 1 < n_blocks) load_v(j + 1);  // the V buffer is free
    } else if constexpr (kPVParts) {
      PvFp8PartsBlock<kD, kCtaK> pv;
      pv.run(pa, o, alpha, kVHi, lo_v);
      if (tid == 0 && j + 1 < n_blocks) load_v(j + 1);  // the V buffer is free
      pv.promote(o, alpha, promote_row_sum);
    } else {
      PvFp8Block<kD, kCtaK> pv;
      pv.run(pa, kVHi, lo_v + slot_lo);
      if constexpr (kShared) ring.release(j, tid == 0);  // the slot is done with, for this warpgroup
      else if (tid == 0 && j + 1 < n_blocks) load_v(j + 1);  // the V buffer is free
      pv.promote(o, alpha, promote_row_sum);
    }
  }
  if constexpr (kShared && Cfg::mask != 0) {
    // Causal: the blocks the CTA's later rows still visit (at most one: warpgroup 0's last row is 128
    // rows before the CTA's) — warp 0, which refills and releases, keeps this warpgroup's turns and
    // releases.
    // (The other warps go on to the epilogue: without a wgmma to keep them with warp 0, a wait of
    // theirs on a later block could miss its phase.)
    for (int j = n_blocks; warp == 0 && j < ring_blocks; ++j) {
      ring.wait(j, WgmmaKvRing::slot(j));  // (then the slot's empty barrier is in block j's phase)
      ring.refill(j, ring_blocks, n_active, wg, warp, lane, load_kv);
      ring.release(j, tid == 0);
    }
  }
  if constexpr (kF16) row_sum[0] = l_acc[0], row_sum[1] = l_acc[2];  // O is final as it stands

  // ================================ epilogue ================================
  // (kLean: the thread's indices read again; elsewhere the ones held, so that the code is unchanged.
  // D = 256 also derives its tile again, from volatile reads of the block index and of gridDim.x (the
  // launch's q_slots), so that nothing only the epilogue needs is live across the block loop.)
  const int e_tid = kLean ? thread_id_x() : tid, e_warp = kLean ? e_tid / 32 : warp,
            e_lane = kLean ? e_tid % 32 : lane, e_g = kLean ? e_lane / 4 : g, e_t = kLean ? e_lane % 4 : t;
  auto tile_again = [&] {
    const int count_x = cta_count_x(), x = cta_id_x(), y = cta_id_y(), z = cta_id_z();
    return tile_of_block(x, y, z, count_x);
  };
  const AttnWgmmaTile we = kPVParts ? tile_again() : w;
  const long long e_bh_q = kPVParts ? we.bh_q(p) : bh_q, e_bh_kv = kPVParts ? we.bh_kv(p, p.heads_q / p.heads_kv) : bh_kv;
  if constexpr (kLean) {
    row_sum[0] = slots.row_sum[e_tid].x, row_sum[1] = slots.row_sum[e_tid].y;
    lse_corr0 = slots.lse_corr[e_tid].x, lse_corr1 = slots.lse_corr[e_tid].y;
  }
  if constexpr (kParkLseCorr) lse_corr0 = parked_lse_corr[tid].x, lse_corr1 = parked_lse_corr[tid].y;
  // FP8 V's channel scales (f16 P·V has none): channels 8c + 2t and 8c + 2t + 1, one 8-byte load
  // each, issued first so that their round trip overlaps the row sums' reciprocals and the wait for
  // the other warps. Plain (coherent) loads: ptxas sinks ld.global.nc below the barrier.
  float2 vs[kF16 ? 1 : kD / 8];
  if constexpr (!kF16) {
    const float2* v_scale = reinterpret_cast<const float2*>(p.v_scale + e_bh_kv * kD);
#pragma unroll
    for (int c = 0; c < kD / 8; ++c) vs[c] = v_scale[4 * c + e_t];
  }
  float inv_sum[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) inv_sum[r] = row_sum[r] > 0.0f ? 1.0f / row_sum[r] : 0.0f;  // no key: 0
  const int row0 = we.q0 + 16 * e_warp + e_g;
  if constexpr (Cfg::write_lse) {
    if (p.lse != nullptr && e_t == 0) store_lse(p, we, e_bh_q, row0, row_max, row_sum, fused_lse_corr, lse_corr0, lse_corr1);
  }
  // O leaves through shared memory (AttnWgmmaStagedO), in the K and V buffers, free after the last
  // block once every warp is past its last wgmma; in the shared form, through the warpgroup's own
  // staging tile after the ring (other warpgroups may still read the slots).
  using StagedO = AttnWgmmaStagedO<kD, Cfg::out_bf16>;
  static_assert(kRows * StagedO::kRowBytes <= kKBytes + kVBytes, "the staged O tile fits the K and V buffers");
  static_assert(StagedO::kRowBytes == attn_wgmma_o_row_bytes(kD), "attn_params.cuh sizes the staging tiles");
  const u32 sO = kShared ? sK + WgmmaKvRing::kSlots * kSlotBytes + wg * kRows * StagedO::kRowBytes : sK;
  if constexpr (!kShared) __syncthreads();
  // (Shared form with parked LSE corrections: every warp of the warpgroup has read its own before any
  // O lands over them. Without this wait a warp's O overwrote another's corrections under
  // compute-sanitizer's racecheck timing, and the LSE differed.)
  if constexpr (kParkLseCorr) named_barrier_sync(2 + wg, kWgmmaSingleThreads);
  StagedO::write(sO, o, inv_sum, e_warp, e_lane, [&](int c, float& c0, float& c1) {
    c0 = 1.0f, c1 = 1.0f;  // f16 V is not scaled
    if constexpr (!kF16) c0 = vs[c].x, c1 = vs[c].y;
  });
  if constexpr (kShared) named_barrier_sync(2 + wg, kWgmmaSingleThreads);
  else __syncthreads();
  StagedO::store(sO, static_cast<u16*>(p.o) + we.q_rows_at(p, p.o_stride_b, p.o_stride_h, p.o_stride_s), p.o_stride_s,
                 we.q0, we.seq_q, e_tid);
}

}  // namespace sagejit::kernels
