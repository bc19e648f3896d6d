// attn_wgmma.cuh — the Hopper (sm_90a) SageAttention2 forward kernel: TMA, mbarriers, wgmma and
// warp specialization (a producer warpgroup and one or two consumer warpgroups scheduled ping-pong).
//
// Same algorithm and numerics as attn_mma.cuh's FP8 path (DESIGN.md §1), on Hopper's warpgroup MMAs:
//   S  = Q_int8 · K_int8ᵀ        wgmma s8 m64n{cta_k}k32, A (Q tile) and B (K tile) from swizzled
//                                shared memory written by TMA, s32 accumulators
//   s2 = S · q_scale · k_scale   one product per thread and block: with quantize(block_q = cta_q,
//                                warp_q 16, block_k = warp_k = cta_k, per_thread) the m64nN accumulator
//                                layout gives each thread one Q group (row % 8 == g of its 16-row warp
//                                slice) and one K group ((key % 8) / 2 == t) per block
//                                (docs/hopper_kernel_plan.md §4)
//   P̃  = exp2(s2 − m + log2 448) online softmax (row max over the quad of 4 lanes, shfl xor 1, 2)
//   l  = α·l + P̃_e4m3 · 1        the row sums on the tensor cores: wgmma e4m3 m64n8k32 with the same
//                                A fragments as P·V and B = a tile of e4m3 ones (3% more MMA work
//                                instead of 64 FADDs per thread and block; it sums exactly the e4m3
//                                weights P·V multiplies)
//   O  = α·O + P̃_e4m3 · V_e4m3   wgmma e4m3 m64nDk32 with A = P̃ packed from the S accumulators in
//                                registers (pack_p_e4m3; V token-permuted by the quantizer) and B = the
//                                channel-major V tile ([D × cta_k keys], K-major) from shared memory, into
//                                a FRESH fp32 accumulator per block (≤ 128 keys) that is then added into
//                                O (two-level accumulation; the FP8 tensor-core sum keeps ~14 bits);
//                                at D = 256 in parts of 64 channels (kSplitPv)
//   (16-bit P·V and two-term Q/K: see below)
//   out = O / l · v_scale        fp16 or bf16 through shared memory (a staging tile where it fits
//                                beside the ring, else in parts: D = 256 FP8 with fused Q through the
//                                consumer's Q tile, elsewhere through a parts buffer where that fits;
//                                4-byte stores from registers otherwise); rows >= seq_q not written
//   lse = (m + log2 l − log2 448)·ln 2 + lse_correction      (natural log, optional)
//
// Roles (FlashAttention-3 §3.1; docs/hopper_kernel_plan.md §1–3). A tile is cta_q = 64·consumers
// query rows of one (batch, q head); a CTA runs one tile, or with Cfg::persistent loops over tiles
// (tile += gridDim.x) while its K/V ring and Q barriers run on across tiles, so the producer loads
// the next tile's Q and first K/V blocks under the current tile's last blocks and epilogue:
//   warpgroup 0      producer: gives registers back (setmaxnreg.dec), and one thread issues every
//                    TMA: Q once (one 64-row box per consumer), then K and V of block j into ring
//                    slot j % stages, each after the consumers released the slot ("empty" barriers)
//   warpgroups 1..C  consumers (setmaxnreg.inc): 64 query rows each. Iteration j issues QKᵀ(j) and
//                    P·V(j − 1) together, releases K slot j once QKᵀ(j) is waited on, runs the
//                    softmax of block j while P·V(j − 1) still runs, then releases V slot j − 1.
//   ping-pong        with two consumers, named barriers hand the tensor cores back and forth: a
//                    consumer waits for its turn before issuing its wgmmas and passes the turn on
//                    right after, so one consumer's softmax runs under the other's MMAs.
// K and V have separate "full" barriers (QKᵀ(j) starts before V_j lands) and separate "empty"
// barriers (K slot j frees one iteration before V slot j). Each consumer warp arrives on an empty
// barrier after its own wgmma_wait: 4·consumers arrivals complete a phase.
//
// Kernel parameters / launch contract:
//   attention_wgmma<Cfg>(AttnParams p, const __grid_constant__ TmaDescriptor tma_q,
//                        const __grid_constant__ TmaDescriptor tma_k,
//                        const __grid_constant__ TmaDescriptor tma_v)
//   grid  (ceil(seq_q / cta_q), heads_q, batch), or persistent: (attn_wgmma_persistent_ctas(tiles,
//   SMs, consumers), 1, 1); block attn_wgmma_threads(consumers) threads; dynamic shared memory
//   attn_wgmma_smem_bytes(head_dim, consumers, stages, pv_f16, qk_terms, cta_k, fused_q) = T·consumers·64·D
//   + stages·(T + (pv_f16 ? 2 : 1))·cta_k·D + the ones tile (1024; 2048 f16) + 8·D (two v_scale
//   buffers; none with pv_f16) + 1024 (aligns the swizzled tiles by hand) + the O staging where it
//   fits (attn_wgmma_stages_o: consumers·64·(2·D + 16)) or else its parts' buffer where that fits
//   (attn_wgmma_o_part_channels: consumers·64·2·channels), plus attn_wgmma_static_smem_bytes
//   static (the launch must raise the dynamic limit whenever dynamic + static > 48 KiB).
//   AttnParams fields read: q_scale, k_scale, v_scale (16-byte aligned: each tile's row is one bulk
//   copy into shared memory), o, lse, lse_correction, o_stride_b/h/s, batch,
//   heads_q, heads_kv, seq_q, seq_kv, seq_q_pad, seq_kv_pad. p.q / p.k / p.v are NOT read (the tensor
//   maps address them), and with varlen cu_seqlens_q / cu_seqlens_k (attn_params.cuh: the workspace
//   keeps its padded per-batch layout, the output and LSE are packed). Not supported (host must not
//   ask): Q smoothing, int4 Q/K, other quantization geometries. With pv_f16: p.v_scale is not read.
//   With Cfg::fused_q (one-term Q): each consumer quantizes its 64 rows of the caller's Q (p.q with
//   q_stride_*, p.q_scale_multiplier; attn_wgmma_q.cuh) at every tile start, with an LSE also their
//   K-smoothing correction from p.k_mean (kept in loop_state for the epilogue), and tma_q, p.q_scale
//   and p.lse_correction are not read. Launched programmatically after quantize_kv, the producer waits
//   (griddepcontrol.wait) before its first copy and each consumer before its first k_scale read.
//   Tensor maps (cuTensorMapEncodeTiled, 2-D, uint8, zero OOB fill, interleave none), over the
//   quantized workspace of quant_layout.cuh quantized with block_q = cta_q, warp_q 16, block_k = warp_k
//   = cta_k, per_thread, int8 Q/K, FP8 V:
//     tma_q: dims {T·D, B·Hq·seq_q_pad},  row stride T·D bytes,      box {W, 64}
//     tma_k: dims {T·D, B·Hkv·seq_kv_pad}, row stride T·D bytes,     box {W, cta_k}
//   (T = qk_terms, W = attn_wgmma_qk_box_bytes(D): 64 for D = 64, 32 for 96, 128 for 128 and 256)
//     tma_v: dims {seq_kv_pad, B·Hkv·D}, row stride seq_kv_pad bytes, box {cta_k, D} (pv_f16: see below)
//   swizzle: Q and K W bytes (128B, 64B, 32B); V cta_k bytes (128B, or 64B for 64-key blocks).
//
// Cfg (every member static constexpr; AttnWgmmaCfg below is the ready-made one):
//   int  head_dim   64, 96, 128 or 256 (two consumers, no ping-pong; cta_k 64 with 16-bit P·V;
//                   FP8 P·V there runs in parts of 64 channels, kSplitPv, and takes cta_k 128)
//   int  consumers  consumer warpgroups, 1 or 2 (cta_q = 64·consumers; one consumer runs 2 CTAs/SM)
//   int  stages     K/V ring depth, >= 2
//   int  mask       0 none, 1 causal top-left (i sees j <= i), 2 causal bottom-right
//   bool write_lse  write p.lse (when non-null)
//   bool pingpong   alternate the two consumers' wgmma issue (named barriers)
//   bool persistent loop over tiles (1-D grid of attn_wgmma_persistent_ctas CTAs)
//   bool out_bf16   bf16 output instead of fp16
//   bool rowsum_mma row sums on the tensor cores (P̃ · 1) rather than FADDs in the softmax (the
//                   runtime always sets it: on the H200, B4 S4096, tensor cores 693 / 433 TOPS at
//                   D = 128 / 64 against 691 / 420 with FADDs, causal D = 64 equal; the FADD form
//                   stays, tested, for that comparison)
//   bool pv_f16     16-bit P·V (below) instead of FP8: f16, or bf16 with out_bf16 (V has the output's dtype)
//   int  qk_terms   1, or 2: the precise mode's two-term int8 Q/K (below; needs pv_f16, no ping-pong)
//   int  cta_k      keys per K/V block, 128 or 64 (head dim 256 with 16-bit P·V: two stages of 128-key
//                   blocks pass the shared memory)
//
// The f16 P·V form (Cfg::pv_f16; the pv = f16 mode on sm_90a): V is the caller's f16 tensor itself,
// not quantized, loaded by TMA through a 4-D map over its own strides (tma_v: dims {D, seq, heads,
// batch} of the V view, box {64, cta_k, 1, 1}, 128B swizzle, D / 64 boxes per block; at D = 96 boxes of
// 32 channels with 64B swizzle: attn_wgmma_v16_box_channels) and used as wgmma's
// MN-major B operand (wgmma f16 m64nDk16, transpose-b), so no pass transposes or permutes it. P̃ goes
// to f16 A fragments (pack_p_f16: the accumulator layout is the k16 A layout). The f16 tensor core
// accumulates at full f32 precision, so P·V accumulates straight into O (no temporary, no promotion:
// O and the row sums are rescaled by α after each block's P·V) and there is no v_scale. Varlen: the
// map's row coordinate is the sequence's first key + the block's, so the rows of a sequence's last
// block past its end hold the next sequence's keys; P̃ = 0 there, but 0·Inf is NaN, so the consumers
// zero those rows in shared memory before that block's P·V (a sequence never sees another's values).
// Rows past the tensor are zero-filled by TMA.
//
// Two-term Q/K (Cfg::qk_terms = 2, the precise mode; attn_mma.cuh has the same numerics): each row of
// the quantized Q and K is 2·D bytes, the int8 value q and its residual r (1/kFine of the step, same
// scale). The tensor maps span rows of 2·D bytes with boxes of W, so a Q tile and a K block hold two
// terms (coarse, residual), one after the other in shared memory. S = kFine·(q_q·q_k) + q_q·r_k +
// r_q·q_k exactly in s32 (|S| < 2³¹ up to D = 256): the coarse product is issued and waited on alone,
// multiplied by kFine in registers, and the two fine products accumulate onto it (issued with
// P·V(j − 1), so the softmax still overlaps P·V). |S| passes 2²², so S → f32 is an I2F, not the
// magic-number trick; the dequantization factor is q_scale·k_scale / kFine.
#pragma once

#include "attn_params.cuh"
#include "attn_softmax.cuh"
#include "attn_wgmma_q.cuh"
#include "attn_wgmma_smem.cuh"
#include "attn_wgmma_tile.cuh"
#include "hopper_ops.cuh"
#include "quant_layout.cuh"

namespace sagejit::kernels {

template <int HeadDim, int Consumers, int Stages, int Mask, bool WriteLse, bool PingPong = false,
          bool Persistent = false, bool OutBf16 = false, bool RowSumMma = true, bool PvF16 = false, int QkTerms = 1,
          int CtaK = 128, bool FusedQ = false>
struct AttnWgmmaCfg {
  static constexpr int head_dim = HeadDim;
  static constexpr int consumers = Consumers;
  static constexpr int stages = Stages;
  static constexpr int mask = Mask;
  static constexpr bool write_lse = WriteLse;
  static constexpr bool pingpong = PingPong;
  static constexpr bool persistent = Persistent;
  static constexpr bool out_bf16 = OutBf16;
  static constexpr bool rowsum_mma = RowSumMma;
  static constexpr bool pv_f16 = PvF16;
  static constexpr int qk_terms = QkTerms;
  static constexpr int cta_k = CtaK;
  static constexpr bool fused_q = FusedQ;  // each consumer quantizes its Q rows itself (attn_wgmma_q.cuh)
};

// kWgmmaCtaK, attn_wgmma_threads, attn_wgmma_min_ctas and attn_wgmma_smem_bytes live in
// attn_params.cuh: the host planner needs them too, and this header only compiles for sm_90a.

// Register budgets of the roles. The launch gives every thread `launch` = 65536 / (threads ·
// min_ctas) registers rounded down to 8 (ptxas compiles the kernel for exactly that under
// __launch_bounds__; tests/cpu/kernels/test_attn_wgmma_compiles.cpp pins it). setmaxnreg only moves
// registers within the CTA's own allocation, and .inc blocks until the pool has them: a consumer
// budget the producer's .dec does not pay for hangs the kernel. So 128·(producer + consumers·
// consumer) <= 128·launch·(consumers + 1): two consumers at 168 → 24 + 2·240 = 504 = 3·168; one
// consumer (2 CTAs/SM) at 128 → 24 + 232 = 256.
template <int Consumers>
struct AttnWgmmaRegs {
  static constexpr int threads = attn_wgmma_threads(Consumers);
  static constexpr int min_ctas = attn_wgmma_min_ctas(Consumers);
  static constexpr int launch = (65536 / (threads * min_ctas)) / 8 * 8;
  static constexpr int producer = 24;
  static constexpr int pool = launch * (Consumers + 1) - producer;
  static constexpr int consumer = pool / Consumers / 8 * 8 > 240 ? 240 : pool / Consumers / 8 * 8;
  static_assert(producer <= launch && consumer >= launch, "setmaxnreg budgets");
  static_assert(producer + Consumers * consumer <= launch * (Consumers + 1), "setmaxnreg over the CTA's registers");
};

template <class Cfg>
__global__ void __launch_bounds__(attn_wgmma_threads(Cfg::consumers), attn_wgmma_min_ctas(Cfg::consumers))
    attention_wgmma(AttnParams p, const __grid_constant__ hopper::TmaDescriptor tma_q,
                    const __grid_constant__ hopper::TmaDescriptor tma_k,
                    const __grid_constant__ hopper::TmaDescriptor tma_v) {
  using namespace mma_ops;
  using namespace hopper;
  constexpr int kD = Cfg::head_dim, kStages = Cfg::stages, kConsumers = Cfg::consumers;
  constexpr int kRowsPerWg = 64;             // query rows per consumer warpgroup (wgmma M)
  constexpr int kCtaQ = kRowsPerWg * kConsumers, kCtaK = Cfg::cta_k;
  constexpr bool kPvF16 = Cfg::pv_f16;
  constexpr int kQKSteps = kD / 32;          // k32 steps of QKᵀ
  constexpr int kPVSteps = kCtaK / (kPvF16 ? 16 : 32);  // k32 (e4m3) or k16 (f16) steps of P·V
  constexpr int kSRegs = kCtaK / 2;          // S accumulators per thread (m64n{cta_k})
  constexpr int kORegs = kD / 2;             // O accumulators per thread (m64nD)
  // Q and K in boxes of their swizzle span (attn_wgmma_qk_box_bytes): one box, or three 32B boxes at D = 96.
  constexpr int kQKBox = attn_wgmma_qk_box_bytes(kD), kQKBoxes = kD / kQKBox;
  constexpr Swizzle kQKSwizzle = swizzle_of_span(kQKBox);
  constexpr int kTerms = Cfg::qk_terms;
  constexpr int kFine = kTerms == 2 ? static_cast<int>(layout::kResidualScale) : 1;  // S in fine steps
  constexpr u32 kQTermBytes = kRowsPerWg * kD, kKTermBytes = kCtaK * kD;  // one term of a Q tile / K block
  constexpr u32 kQBytes = kTerms * kQTermBytes, kKBytes = kTerms * kKTermBytes;
  constexpr u32 kVBytes = kD * kCtaK * (kPvF16 ? 2 : 1);
  using V16 = AttnWgmmaV16<kD, kCtaK>;  // f16 V: the caller's, in TMA boxes (attn_wgmma_smem.cuh)
  // Every swizzled tile and box starts on its swizzle repeat (1024 bytes for 128B, 512 for 64B): the
  // regions below are laid out back to back from a 1024-byte-aligned base.
  static_assert(kQTermBytes % 1024 == 0 && kKTermBytes % 1024 == 0 && kVBytes % 1024 == 0,
                "Q, K and V regions keep 1024-byte alignment");
  // FP8 V: [D × cta_k] channel-major, rows of cta_k bytes, swizzled by their length.
  constexpr Swizzle kVSwizzle = swizzle_of_span(kCtaK);
  constexpr int kQGroups = layout::q_groups(layout::Granularity::per_thread, kCtaQ, 16);
  constexpr int kKGroups = layout::k_groups(layout::Granularity::per_thread, kCtaK, kCtaK);  // 4
  constexpr u32 kConsumerWarps = 4 * kConsumers;     // arrivals that free a ring slot
  constexpr u32 kTurnBarrier = 1;                    // named barriers 1, 2: the ping-pong turns
  constexpr u32 kTailBarrier = 3;                    // named barrier 3: f16 V tail rows zeroed (varlen)
  constexpr u32 kQBarrier = 4;                       // named barriers 4, 5: a consumer's fused Q tile
  constexpr u32 kOBarrier = 6;                       // named barriers 6, 7: a consumer's staged O tile
  // O leaves through shared memory where it fits (attn_params.cuh), as in attn_wgmma_single.cuh.
  constexpr bool kStageO = attn_wgmma_stages_o(kD, kConsumers, kStages, kPvF16, kTerms, kCtaK);
  // Where it does not and the consumer quantizes Q itself (nothing copies the next tile's Q into its
  // Q tile), O leaves through that Q tile in parts (AttnWgmmaStagedOParts: head dim 256, FP8 P·V).
  constexpr bool kStageOInQ =
      attn_wgmma_stages_o_in_q(kD, kConsumers, kStages, kPvF16, kTerms, kCtaK, Cfg::fused_q);
  // Elsewhere, in parts through a buffer of their own where that fits (head dim 256 with 16-bit P·V,
  // two-term Q/K, or FP8 P·V and Q from its own pass; attn_wgmma_o_part_channels), else with 4-byte
  // stores from the registers.
  constexpr int kOPartChannels =
      attn_wgmma_o_part_channels(kD, kConsumers, kStages, kPvF16, kTerms, kCtaK, Cfg::fused_q);
  constexpr bool kStageOParts = kOPartChannels > 0;
  static_assert(!(kStageOParts && (kStageO || kStageOInQ)), "one way for O");
  using QRows = FusedQRows<typename QElement<Cfg::out_bf16>::type, kD>;
  static_assert(!Cfg::fused_q || kTerms == 1, "fused Q: one-term int8 Q");
  using Regs = AttnWgmmaRegs<kConsumers>;
  constexpr bool kPingPong = kConsumers == 2 && Cfg::pingpong;
  static_assert(kD == 64 || kD == 96 || kD == 128 || kD == 256, "attention_wgmma: head_dim 64, 96, 128 or 256");
  static_assert(kCtaK == 64 || kCtaK == 128, "attention_wgmma: cta_k 64 or 128");
  static_assert(kD != 256 || ((kCtaK == 64 || (kCtaK == 128 && !kPvF16)) && kConsumers == 2 && !Cfg::pingpong),
                "head_dim 256: two consumers (168-register launch), no ping-pong, cta_k 64 (or 128 with FP8 P·V)");
  // FP8 P·V at D = 256: O (128 registers) and a whole-width P·V temporary do not fit together, so P·V
  // runs in N = 64 parts, two in flight, and the block's steps run in order. With 128-key blocks the
  // live peak is O + S (128 + 64) in the softmax and O + two parts + P̃ (128 + 64 + 16) in P·V, within
  // the consumers' 240 registers; and O is promoted once per 128 keys.
  constexpr bool kSplitPv = !kPvF16 && kD == 256;
  constexpr int kPvParts = 4;  // kSplitPv: P·V parts of 64 channels (32-register temporaries)
  static_assert(!kSplitPv || Cfg::rowsum_mma, "FP8 P·V at head_dim 256 takes its row sums from the tensor cores");
  static_assert(kConsumers == 1 || kConsumers == 2, "attention_wgmma: 1 or 2 consumer warpgroups");
  static_assert(kStages >= 2, "stages >= 2");
  static_assert(!kPvF16 || Cfg::rowsum_mma, "the f16 P·V form takes its row sums from the tensor cores");
  static_assert(kTerms == 1 || (kTerms == 2 && kPvF16 && !Cfg::pingpong), "qk_terms: 1, or 2 with f16 P·V");
  static_assert(Cfg::mask >= 0 && Cfg::mask <= 2, "mask: 0 none, 1 top-left, 2 bottom-right");
  static_assert(attn_wgmma_smem_bytes(kD, kConsumers, kStages, kPvF16, kTerms, kCtaK, Cfg::fused_q) +
                    attn_wgmma_static_smem_bytes(kConsumers) <=
                    227 * 1024,
                "shared memory over 227 KB");

  extern __shared__ __attribute__((aligned(1024))) u8 smem[];
  __shared__ u64 full_q[kConsumers], empty_q[kConsumers];
  __shared__ u64 full_k[kStages], full_v[kStages], empty_k[kStages], empty_v[kStages];
  // Of the v_scale buffers (below): "full" completes with a buffer's bulk copy, "empty" once every
  // consumer thread's epilogue has read it.
  __shared__ u64 full_vs[2], empty_vs[2];
  // Problem geometry, written once and read from here by the consumers in every tile (see
  // loop_state below): kTiles tiles in the grid, kQTiles q tiles per (batch, head) (varlen: of the
  // longest sequence), kQBlocks / kKBlocks blocks of the quantized (padded) Q and K, kGroup query
  // heads per K/V head.
  enum { kTiles, kQTiles, kQBlocks, kKBlocks, kGroup, kGeomSize };
  __shared__ int geom[kGeomSize];
  // 1.5·2²³ as float bits, four times: the starting value of the QKᵀ accumulators (issue_qk).
  __shared__ __attribute__((aligned(16))) i32 magic_bits[4];

  // Swizzled tiles start on 1024-byte boundaries (the 128B swizzle repeat): align by hand.
  const u32 sQ = (smem_u32(smem) + 1023) & ~1023u;
  const u32 sK = sQ + kConsumers * kQBytes;
  const u32 sV = sK + kStages * kKBytes;
  const u32 sOnes = sV + kStages * kVBytes;  // attn_wgmma_ones_bytes of 1.0: B of the row-sum wgmma
  // The tile's v_scale row (kD floats): buffer n % 2 for the n-th non-empty tile (FP8 P·V only).
  constexpr u32 kVsBytes = 4 * kD;
  const u32 sVs = sOnes + attn_wgmma_ones_bytes(kPvF16);
  // Consumer c's O tile at c·64·attn_wgmma_o_row_bytes(D) (kStageO), or its O parts at c·64·2·kOPartChannels.
  const u32 sO = sVs + attn_wgmma_vscale_bytes(kD, kPvF16);

  const int tid = threadIdx.x;
  const int wg = tid / 128;
  // Tiles of this CTA: one (from the 3-D grid), or every gridDim.x-th (persistent, 1-D grid).
  // A persistent causal CTA takes slots in pairs: 2c, 2c + 1, 2(c + grid), 2(c + grid) + 1, ...
  constexpr bool kPairs = Cfg::persistent && Cfg::mask != 0;
  const int q_tiles = attn_wgmma_q_slots(p.seq_q, kCtaQ, Cfg::mask != 0);  // slots per (b, h)
  const int n_work = q_tiles * p.heads_q * p.batch;
  const int first_tile = Cfg::persistent ? static_cast<int>(blockIdx.x) * (kPairs ? 2 : 1)
                                         : static_cast<int>(blockIdx.x + q_tiles * (blockIdx.y + p.heads_q * blockIdx.z));
  auto next_tile = [&](int tile) {
    if constexpr (kPairs) return tile % 2 == 0 ? tile + 1 : tile - 1 + 2 * static_cast<int>(gridDim.x);
    return tile + (Cfg::persistent ? static_cast<int>(gridDim.x) : geom[kTiles]);  // (geom: see the consumers)
  };
  if (first_tile >= n_work) return;  // whole CTA, before any barrier

  if (tid == 0) {
#pragma unroll
    for (int c = 0; c < kConsumers; ++c) {
      mbarrier_init(smem_u32(&full_q[c]), 1);
      mbarrier_init(smem_u32(&empty_q[c]), 4);  // the consumer's 4 warps
    }
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(smem_u32(&full_k[s]), 1);
      mbarrier_init(smem_u32(&full_v[s]), 1);
      mbarrier_init(smem_u32(&empty_k[s]), kConsumerWarps);
      mbarrier_init(smem_u32(&empty_v[s]), kConsumerWarps);
    }
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      mbarrier_init(smem_u32(&full_vs[b]), 1);
      mbarrier_init(smem_u32(&empty_vs[b]), 128 * kConsumers);
    }
    fence_barrier_init();
    geom[kTiles] = n_work, geom[kQTiles] = q_tiles;
    geom[kQBlocks] = p.seq_q_pad / kCtaQ, geom[kKBlocks] = p.seq_kv_pad / kCtaK;
    geom[kGroup] = p.heads_q / p.heads_kv;
  }
  // The ones tile: every element 1.0 (e4m3 0x38, f16 0x3C00, bf16 0x3F80): its layout cannot matter.
  for (int i = tid; i < attn_wgmma_ones_bytes(kPvF16) / 4; i += attn_wgmma_threads(kConsumers)) {
    reinterpret_cast<u32*>(smem + (sOnes - smem_u32(smem)))[i] = attn_wgmma_ones_word(kPvF16, Cfg::out_bf16);
  }
  if (tid < 4) magic_bits[tid] = kMagicBits;
  fence_proxy_async_shared();  // generic-proxy stores, read by wgmma (async proxy)
  __syncthreads();  // the last CTA-wide barrier: from here on the roles only meet on mbarriers

  // ================================ producer warpgroup ================================
  // K/V block number kb (counted over all of this CTA's tiles) goes to ring slot kb % stages; the
  // slot's previous occupant, block kb − stages, released it in phase (kb / stages − 1) & 1.
  if (wg == 0) {
    setmaxnreg_dec<Regs::producer>();
    if (tid == 0) {
      prefetch_tma_descriptor(tma_q);
      prefetch_tma_descriptor(tma_k);
      prefetch_tma_descriptor(tma_v);
      // Launched programmatically after quantize_kv (fused Q: runtime/attention.cpp), the first copy
      // waits for it here; the consumers read the workspace only after the copies this thread issues.
      griddep_wait();
      int kb = 0;
      int n = 0;  // non-empty tiles so far: the phase of the Q barriers
      for (int tile = first_tile; tile < n_work; tile = next_tile(tile)) {
        const AttnWgmmaTile w = attn_wgmma_tile<kCtaQ, kCtaK, Cfg::mask>(p, tile, q_tiles);
        if (w.empty()) continue;
        const long long bh_q = w.bh_q(p), bh_kv = w.bh_kv(p, p.heads_q / p.heads_kv);
        // TMA row coordinates (2-D maps over the whole workspace tensors).
        const int q_row = static_cast<int>(bh_q * p.seq_q_pad + w.q0);
        const int k_row0 = static_cast<int>(bh_kv * p.seq_kv_pad);
        const int v_row = static_cast<int>(bh_kv * kD);
#pragma unroll
        for (int c = 0; c < (Cfg::fused_q ? 0 : kConsumers); ++c) {
          if (n > 0) mbarrier_wait_parity(smem_u32(&empty_q[c]), (n - 1) & 1);  // previous tile's QKᵀ done
          mbarrier_arrive_expect_tx(smem_u32(&full_q[c]), kQBytes);
#pragma unroll
          for (int term = 0; term < kTerms; ++term) {
#pragma unroll
            for (int box = 0; box < kQKBoxes; ++box) {
              tma_load_2d(sQ + c * kQBytes + term * kQTermBytes + box * kRowsPerWg * kQKBox, tma_q,
                          smem_u32(&full_q[c]), term * kD + box * kQKBox, q_row + kRowsPerWg * c);
            }
          }
        }
        // Buffer n % 2 was last read by the epilogue of tile n − 2 (use n / 2 − 1 of the buffer);
        // the fence orders those generic-proxy reads before the copy's async-proxy writes.
        if constexpr (!kPvF16) {
          if (n >= 2) mbarrier_wait_parity(smem_u32(&empty_vs[n & 1]), ((n >> 1) - 1) & 1);
          fence_proxy_async_shared();
          mbarrier_arrive_expect_tx(smem_u32(&full_vs[n & 1]), kVsBytes);
          bulk_load(sVs + (n & 1) * kVsBytes, p.v_scale + bh_kv * kD, kVsBytes, smem_u32(&full_vs[n & 1]));
        }
        for (int j = 0; j < w.kv_blocks; ++j, ++kb) {
          const int s = kb % kStages;
          const u32 free_parity = ((kb / kStages) - 1) & 1;
          if (kb >= kStages) mbarrier_wait_parity(smem_u32(&empty_k[s]), free_parity);
          mbarrier_arrive_expect_tx(smem_u32(&full_k[s]), kKBytes);
#pragma unroll
          for (int term = 0; term < kTerms; ++term) {
#pragma unroll
            for (int box = 0; box < kQKBoxes; ++box) {
              tma_load_2d(sK + s * kKBytes + term * kKTermBytes + box * kCtaK * kQKBox, tma_k, smem_u32(&full_k[s]),
                          term * kD + box * kQKBox, k_row0 + j * kCtaK);
            }
          }
          if (kb >= kStages) mbarrier_wait_parity(smem_u32(&empty_v[s]), free_parity);
          mbarrier_arrive_expect_tx(smem_u32(&full_v[s]), kVBytes);
          if constexpr (kPvF16) {  // the caller's V at (key, head, batch); varlen views have batch 1
            const int v_head = static_cast<int>(bh_kv % p.heads_kv), v_batch = p.cu_seqlens_k != nullptr ? 0 : w.b;
#pragma unroll
            for (int c = 0; c < V16::kBoxes; ++c) {
              tma_load_4d(sV + s * kVBytes + c * V16::kBoxBytes, tma_v, smem_u32(&full_v[s]), V16::kChan * c,
                          w.k_tok0 + j * kCtaK, v_head, v_batch);
            }
          } else {
            tma_load_2d(sV + s * kVBytes, tma_v, smem_u32(&full_v[s]), j * kCtaK, v_row);
          }
        }
        ++n;
      }
    }
    return;  // every load it issued is waited on by the consumers, which keep the CTA alive
  }

  // ================================ consumer warpgroups ================================
  setmaxnreg_inc<Regs::consumer>();
  // The tile loop's state lives in shared memory (one slot per thread, conflict-free) while the main
  // loop runs: at 240 registers the main loop has none to spare (three live registers more spill
  // 48 bytes at D = 128), and the mbarrier waits' memory clobbers keep the compiler from caching the
  // values in registers. Slots (loop_state[slot][thread], or my_state[slot · kStateStride]):
  enum {
    kSlotTile,       // the tile this thread works on
    kSlotDone,       // non-empty tiles done: the phase of the Q barriers
    kSlotRing,       // ring position of the tile's first K/V block (the producer's kb)
    kSlotRowDiag,    // the thread's first row + diag: the causal mask's reference
    kSlotKScale,     // offset of the thread's k_scale group from p.k_scale, minus kb0·kKGroups
    kSlotMaskFrom,   // the first ring block that needs masking
    kSlotSeqKv,      // the tile's seq_kv: the tail mask's reference
    kSlotQScale,     // the thread's q_scale (float bits)
    kSlotLseCorr0,   // fused Q with an LSE: the K-smoothing correction of the thread's two rows
    kSlotLseCorr1,   //   (float bits; attn_wgmma_q.cuh, lse_correction)
    kSlots
  };
  static_assert(kSlots == kWgmmaStateSlots, "attn_params.cuh counts the loop state's slots");
  __shared__ int loop_state[kSlots][128 * kConsumers];
  constexpr int kStateStride = 128 * kConsumers;
  loop_state[kSlotTile][tid - 128] = first_tile, loop_state[kSlotDone][tid - 128] = 0;
  loop_state[kSlotRing][tid - 128] = 0;
  // Fused Q: the tile's Q rows. With kStageOInQ, the next tile's are loaded in this tile's epilogue
  // (once the first part of O has left its registers) so that their latency runs under its stores;
  // q_next_tile: the tile they belong to, or −1.
  QRows q_next;
  int q_next_tile = -1;
  for (;;) {
    // Everything derived from the thread index is recomputed per tile from a volatile read, so
    // that the compiler cannot hoist it out of the tile loop and keep (or spill) it across the
    // main loop.
    const int vtid = thread_id_x();
    int* const my_state = &loop_state[0][vtid - 128];
    if (my_state[kSlotTile * kStateStride] >= geom[kTiles]) break;
    // The consumer index, from a fresh thread-index read (0 at compile time with one consumer).
    // Broadcast from lane 0, so that ptxas knows it is warp-uniform and builds the wgmma descriptors
    // that depend on it in uniform registers (the CUTLASS idiom for warp-uniform indices).
    auto consumer_index = [] {
      return kConsumers == 1 ? 0 : __shfl_sync(0xffffffffu, static_cast<int>(thread_id_x()) / 128 - 1, 0);
    };
    const int cw = kConsumers == 1 ? 0 : vtid / 128 - 1;
    const int ctid = vtid % 128;                 // thread within the warpgroup
    const int warp = ctid / 32, lane = ctid % 32;
    const int g = lane / 4, t = lane % 4;

    // One arrival per consumer warp once its wgmmas that read a slot have completed.
    auto release = [&](u32 bar) {
      __syncwarp();
      if (lane == 0) mbarrier_arrive(bar);
    };
    // The consumer's Q "empty" barrier, from a fresh thread-index read (see desc_q in issue_qk).
    auto empty_q_addr = [&] { return smem_u32(&empty_q[0]) + 8 * consumer_index(); };
    // The Q tile is free again (fused Q: nobody waits, the consumer rewrites its own tile).
    auto release_q = [&] {
      if constexpr (!Cfg::fused_q) release(empty_q_addr());
    };
    // Ping-pong: consumer c issues its wgmmas after named barrier kTurnBarrier + c completes and then
    // arrives on the other's. Both consumers take kv_blocks + 1 turns per tile; consumer 1 pre-arrives
    // on consumer 0's barrier (0 goes first) and skips the arrival after its last turn, so every
    // barrier phase that is started also completes.
    auto turn_begin = [&] {
      if constexpr (kPingPong) named_barrier_sync(kTurnBarrier + cw, 256);
    };
    auto turn_end = [&](bool last) {
      if constexpr (kPingPong) {
        if (!(last && cw == 1)) named_barrier_arrive(kTurnBarrier + (1 - cw), 256);
      }
    };

    // Issue S_j = Q K_jᵀ (s32, both operands from shared memory) from ring slot `slot` as one commit
    // group, accumulated onto kMagicBits (see softmax_block): the float with bits kMagicBits + S is
    // exactly 1.5·2²³ + S, which saves the s32 → f32 conversion. Writing the accumulators first also
    // ends the life of their previous contents (wgmma's accumulator operands are read-write).
    // At D = 128 the 64 starting values come from 16 broadcast loads of magic_bits rather than 64
    // moves: they sit right before the wgmma issue, and there the loads measured +3.4% (H200, B4
    // H32 S4096, persistent; causal +1…4%); at D = 64 they cost 4%, so it keeps the moves.
    // This consumer's Q term / K term of ring slot `slot`, from a fresh thread-index read: a
    // descriptor kept live through the main loop would cost two of its registers.
    auto desc_q_term = [&](int term) {
      return make_kmajor_desc(sQ + consumer_index() * kQBytes + term * kQTermBytes, kQKSwizzle);
    };
    auto desc_k_term = [&](int slot, int term) {
      return make_kmajor_desc(sK + slot * kKBytes + term * kKTermBytes, kQKSwizzle);
    };
    auto qk_step = [&](u64 desc, int rows, int ks) {
      return desc_advance(desc, attn_wgmma_qk_step_bytes(ks, rows, kQKBox));
    };
    auto qk_product = [&](i32 (&acc)[kSRegs], u64 desc_q, u64 desc_k) {
#pragma unroll
      for (int ks = 0; ks < kQKSteps; ++ks) {
        wgmma_s8_ss<kCtaK>(acc, qk_step(desc_q, kRowsPerWg, ks), qk_step(desc_k, kCtaK, ks), true);
      }
    };
    auto issue_qk = [&](int slot, i32 (&acc)[kSRegs]) {
      if constexpr (kTerms == 2) {  // the fine products, onto the scaled coarse one (qk_coarse)
        wgmma_fence();
        qk_product(acc, desc_q_term(0), desc_k_term(slot, 1));
        qk_product(acc, desc_q_term(1), desc_k_term(slot, 0));
        wgmma_commit();
        return;
      }
      if constexpr (kD >= 128) {
        const u32 bits = smem_u32(magic_bits);
#pragma unroll
        for (int i = 0; i < kSRegs; i += 4) ld_shared_v4_volatile(bits, acc[i], acc[i + 1], acc[i + 2], acc[i + 3]);
      } else {
#pragma unroll
        for (int i = 0; i < kSRegs; ++i) acc[i] = kMagicBits;
      }
      fence_operands(acc);
      wgmma_fence();
      qk_product(acc, desc_q_term(0), desc_k_term(slot, 0));
      wgmma_commit();
    };
    // Two terms: the coarse product q_q·q_k from zero, waited on (nothing else is in flight when it is
    // issued) and counted in fine steps, ready for issue_qk's fine products.
    auto qk_coarse = [&](int slot, i32 (&acc)[kSRegs]) {
      if constexpr (kTerms == 2) {
#pragma unroll
        for (int i = 0; i < kSRegs; ++i) acc[i] = 0;
        fence_operands(acc);
        wgmma_fence();
        qk_product(acc, desc_q_term(0), desc_k_term(slot, 0));
        wgmma_commit();
        wgmma_wait<0>();
        fence_operands(acc);
#pragma unroll
        for (int i = 0; i < kSRegs; ++i) acc[i] *= kFine;
        fence_operands(acc);
      }
    };
    // FP8: lsum = P̃_j · 1, the ones tile as B (its k-steps at the V tile's).
    auto issue_row_sums_e4m3 = [&](float (&lsum)[4], u32 (&pa)[kPVSteps][4]) {
      const u64 desc_ones = make_kmajor_desc(sOnes, Swizzle::b128);
#pragma unroll
      for (int k = 0; k < kPVSteps; ++k) wgmma_e4m3_rs<8>(lsum, pa[k], desc_advance(desc_ones, 32 * k), k > 0);
    };
    // Issue pv = P̃_j V_j and lsum = P̃_j · 1 (fresh fp32 accumulators) from ring slot `slot` as one
    // commit group. The row sums come from the tensor cores (m64n8: 3% more MMA work) instead of
    // 64 FADDs per thread and block, and they sum the e4m3 P̃ that P·V multiplies, so the
    // normalization divides by exactly the weights the output was built from.
    // f16: pv and lsum are O and the running row sums themselves (accumulated onto, see pv_f16 above),
    // V MN-major in V16::kBoxes boxes, k16 steps of 16 key rows (16·V16::kRowBytes bytes); the ones tile is
    // read at the same place by every step.
    auto issue_pv = [&](int slot, float (&pv)[kORegs], float (&lsum)[4], u32 (&pa)[kPVSteps][4]) {
      if constexpr (kPvF16) {
        const u64 desc_v = make_mn_major_desc(sV + slot * kVBytes, V16::kSwizzle, V16::kBoxBytes);
        const u64 desc_ones = make_mn_major_desc(sOnes, Swizzle::b128, 1024);
#pragma unroll
        for (int k = 0; k < kPVSteps; ++k) {
          wgmma_f16_rs_bmn<kD, Cfg::out_bf16>(pv, pa[k], desc_advance(desc_v, 16 * V16::kRowBytes * k), true);
        }
#pragma unroll
        for (int k = 0; k < kPVSteps; ++k) wgmma_f16_rs_bmn<8, Cfg::out_bf16>(lsum, pa[k], desc_ones, true);
      } else {
        const u64 desc_v = make_kmajor_desc(sV + slot * kVBytes, kVSwizzle);
#pragma unroll
        for (int k = 0; k < kPVSteps; ++k) wgmma_e4m3_rs<kD>(pv, pa[k], desc_advance(desc_v, 32 * k), k > 0);
        if constexpr (Cfg::rowsum_mma) issue_row_sums_e4m3(lsum, pa);
      }
      wgmma_commit();
    };
    // ---- P̃ → A fragments (no shuffles; FP8: V is token-permuted) ----
    auto pack_p = [&](const float (&s)[kSRegs], u32 (&pa)[kPVSteps][4]) {
#pragma unroll
      for (int k = 0; k < kPVSteps; ++k) {
        if constexpr (kPvF16) pack_p_f16<Cfg::out_bf16>(s, k, pa[k]);
        else pack_p_e4m3(s, k, pa[k]);
      }
    };

    const int tile = my_state[kSlotTile * kStateStride], n = my_state[kSlotDone * kStateStride];
    const int kb0 = my_state[kSlotRing * kStateStride];
    const AttnWgmmaTile w = attn_wgmma_tile<kCtaQ, kCtaK, Cfg::mask>(p, tile, geom[kQTiles]);
    if (w.empty()) {  // varlen: past its sequence's end (the producer skips it too)
      my_state[kSlotTile * kStateStride] = next_tile(tile);
      continue;
    }
    const int seq_kv = w.seq_kv;
    my_state[kSlotSeqKv * kStateStride] = seq_kv;
    const int kb_end = kb0 + w.kv_blocks;      // this tile's K/V blocks are ring blocks [kb0, kb_end)
    const long long bh_q = w.bh_q(p), bh_kv = w.bh_kv(p, geom[kGroup]);
    // q_scale goes to loop_state only after the tile's first QKᵀ is issued: storing it here would
    // wait out the global load at every tile start (~2% at S = 4096 with the persistent schedule).
    // Fused Q: this consumer's rows of the caller's Q (unless the previous tile's epilogue loaded
    // them), quantized into its Q tile; the barrier before the stores keeps them behind every warp's
    // last QKᵀ of the previous tile and, with kStageOInQ, its last shared read of the O parts staged
    // there; the one after them (with the proxy fence) makes the tile whole before the first QKᵀ.
    float q_scale;
    if constexpr (Cfg::fused_q) {
      QRows& q_rows = q_next;
      if (!kStageOInQ || q_next_tile != tile) q_rows.load(p, w, w.q0 + kRowsPerWg * cw, warp, g, t);
      // The main loop reads k_scale ahead of the K copy it belongs to: launched programmatically, it
      // must not start before quantize_kv is complete (a no-op after the first tile).
      griddep_wait();
      named_barrier_sync(kQBarrier + cw, 128);
      q_scale = q_rows.template quantize<kQKBox>(sQ + cw * kQBytes, warp, g, t, p.q_scale_multiplier);
      fence_proxy_async_shared();
      named_barrier_sync(kQBarrier + cw, 128);
      if constexpr (Cfg::write_lse) {  // the LSE's K-smoothing correction, kept for the epilogue
        if (p.lse != nullptr && p.k_mean != nullptr) {
          float corr0, corr1;
          q_rows.lse_correction(p.k_mean + bh_kv * kD, t, p.sm_scale, corr0, corr1);
          my_state[kSlotLseCorr0 * kStateStride] = __float_as_int(corr0);
          my_state[kSlotLseCorr1 * kStateStride] = __float_as_int(corr1);
        }
      }
    } else {
      q_scale = ldg_f32(p.q_scale + (bh_q * geom[kQBlocks] + w.qt) * kQGroups +
                        layout::q_group_of_row(layout::Granularity::per_thread, kRowsPerWg * cw + 16 * warp + g, 16));
    }
    // Group t of ring block kb's K block (kb − kb0), as a 32-bit offset from p.k_scale (a kernel
    // parameter, so the 64-bit base costs no register through the main loop).
    my_state[kSlotKScale * kStateStride] = static_cast<int>(bh_kv * geom[kKBlocks] * kKGroups) + t - kb0 * kKGroups;
    // Ring blocks from kb_mask on need masking: the block holding key seq_kv (a tail) and, causal,
    // every block whose last key passes this consumer's first row (+ diag). The first such block and
    // the mask's references (row + diag, seq_kv, the tile's first ring block) go to loop_state: the
    // main loop keeps no register for any of it.
    const int diag = Cfg::mask == 2 ? seq_kv - w.seq_q : 0;
    int first_masked = seq_kv % kCtaK != 0 ? seq_kv / kCtaK : w.kv_blocks;
    if constexpr (Cfg::mask != 0) {
      const int x = w.q0 + kRowsPerWg * cw + diag - (kCtaK - 1);  // key0 > x: the block crosses the diagonal
      const int first_diagonal = x < 0 ? 0 : x / kCtaK + 1;
      first_masked = first_diagonal < first_masked ? first_diagonal : first_masked;
    }
    my_state[kSlotMaskFrom * kStateStride] = kb0 + first_masked;
    my_state[kSlotRowDiag * kStateStride] = w.q0 + kRowsPerWg * cw + 16 * warp + g + diag;  // row + diag, r = 0
    if constexpr (kPingPong) {
      if (cw == 1 && kb_end > kb0) named_barrier_arrive(kTurnBarrier + 0, 256);
    }

    float o[kORegs];
#pragma unroll
    for (int i = 0; i < kORegs; ++i) o[i] = 0.0f;
    float row_max[2] = {neg_inf(), neg_inf()}, row_sum[2] = {0.0f, 0.0f};
    float l_acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // f16: the row sums' wgmma accumulators (l_acc[2r]: row r)

    if constexpr (!Cfg::fused_q) {
      mbarrier_wait_parity(smem_u32(&full_q[cw]), n & 1);  // always: no CTA exits with a Q copy in flight
      if (kb_end == kb0) release(empty_q_addr());
    }

    // Dequantize, mask and online-softmax S (completed accumulators of ring block kb) into P̃
    // (fp32, in s); alpha = exp2(m_old − m_new) per row. Updates row_max; the row sums come with
    // P·V (issue_pv).
    // The exp2 (MUFU, 16/clk/SM) bounds this loop, so nothing else may use that pipe: the s32 → f32
    // conversion (I2F, also 16/clk) is replaced by the magic-number trick — |S| <= 127²·D < 2²², so
    // the float with bits 0x4B400000 + S is exactly 1.5·2²³ + S, and issue_qk accumulates onto those
    // bits — and the dequantization folds into the exp2's argument: P̃ = exp2(raw·dq + (log2 448 − m
    // − 1.5·2²³·dq)), one FFMA per element. The row max is taken on raw values (dq > 0 is the same
    // for all of a thread's elements) and dequantized once per thread. The cancellation against
    // 1.5·2²³·dq costs ~2⁻²⁴·1.3e7·dq in the exponent, under 1e-3 for any scale the quantizer writes
    // (far below e4m3's 2⁻⁴).
    // The e4m3 packing is separate (pack_p): it must not run while a P·V wgmma is in flight, or
    // ptxas serializes every wgmma (C7513: non-wgmma defs of wgmma input registers in the stage).
    constexpr float kMinDequant = 1e-30f;      // dq > 0 keeps −inf·dq = −inf for masked keys
    // The dequantization factors q_scale and k_scale of ring block kb (load_block_scalars): both loads are
    // issued before the block's wgmmas, so their latency (global k_scale, q_scale from loop_state)
    // hides under the wait for them instead of stalling the softmax (reading q_scale inside the
    // softmax cost ~4% at D = 128).
    // Likewise whether block kb needs the mask (a predicate, read from loop_state with them).
    // The product is taken in the softmax: multiplying here would stall the wgmma issue on the
    // global load (ncu on D = 64: the FMUL was the second-hottest stall).
    struct BlockScalars {
      float q_scale, k_scale;
      bool masked;
    };
    auto load_block_scalars = [&](int kb) {
      const int vt = thread_id_x() - 128;
      return BlockScalars{__int_as_float(loop_state[kSlotQScale][vt]),
                          ldg_f32(p.k_scale + (loop_state[kSlotKScale][vt] + kb * kKGroups)),
                          kb >= loop_state[kSlotMaskFrom][vt]};
    };
    auto softmax_block = [&](int kb, BlockScalars bs, i32 (&acc)[kSRegs], float (&s)[kSRegs], float (&alpha)[2]) {
      const float dq = max_f(bs.q_scale * bs.k_scale, kMinDequant) * (1.0f / kFine);  // NaN stays NaN
#pragma unroll
      for (int i = 0; i < kSRegs; ++i) {  // 1.5·2²³ + S, exactly; two terms: S (I2F)
        s[i] = kTerms == 2 ? static_cast<float>(acc[i]) : __int_as_float(acc[i]);
      }

      // ---- mask: keys past seq_kv and, on diagonal blocks, causal ----
      if (bs.masked) {
        const int* state = &loop_state[0][thread_id_x() - 128];
        const int key0 = (kb - state[kSlotRing * kStateStride]) * kCtaK;
        mask_scores<Cfg::mask>(s, state[kSlotSeqKv * kStateStride] - key0 - 2 * t,    // key >= seq_kv
                               state[kSlotRowDiag * kStateStride] - key0 - 2 * t);  // key > row + diag
      }
      // ---- online softmax (log2 domain) ----
      online_softmax<!Cfg::rowsum_mma>(s, dq, kTerms == 2 ? 0.0f : kMagicFloat * dq, row_max, alpha, row_sum);
    };

    // ========================== main loop over K/V blocks (pipelined) ==========================
    // Iteration kb issues QKᵀ(kb) and then P·V(kb − 1) (in one turn, with ping-pong), waits for
    // QKᵀ(kb) only and runs its softmax while P·V(kb − 1) — and the other consumer's wgmmas — run.
    // o holds the blocks before kb − 1 (scaled to their max); pa / alpha_prev hold P̃ of kb − 1 and
    // exp2(m_{kb−2} − m_{kb−1}). Ring block kb sits in slot kb % stages. The Q slot is released once
    // the tile's last QKᵀ completed, so the producer loads the next tile's Q under this tile's last
    // softmax, P·V and epilogue.
    u32 pa[kPVSteps][4];
    float alpha_prev[2] = {0.0f, 0.0f};
    // Around a P·V (before its issue, after its wait): the registers it reads (pa) and writes (pv,
    // lsum) stay in place.
    auto fence_pv_operands = [&](float (&pv)[kORegs], float (&lsum)[4]) {
#pragma unroll
      for (int k = 0; k < kPVSteps; ++k) fence_operands(pa[k]);
      fence_operands(pv);
      if constexpr (Cfg::rowsum_mma) fence_operands(lsum);
    };
    // FP8 promotion of a fresh P·V accumulator (promote_o, attn_softmax.cuh), and with lsum the row
    // sums l = α·l + lsum.
    auto promote_row_sums = [&](const float (&lsum)[4], const float (&alpha)[2]) {
      row_sum[0] = row_sum[0] * alpha[0] + lsum[0];  // lsum[2r]: row r (columns 2t, 2t + 1 alike)
      row_sum[1] = row_sum[1] * alpha[1] + lsum[2];
    };
    // After P·V(kb − 1) completed: O = α_{kb−1}·O + pv, l = α_{kb−1}·l + lsum (FP8).
    auto promote = [&](const float (&pv)[kORegs], const float (&lsum)[4]) {
      promote_o(o, 0, pv, kORegs, alpha_prev);
      if constexpr (Cfg::rowsum_mma) promote_row_sums(lsum, alpha_prev);
    };
    if constexpr (kSplitPv) {
      // D = 256, FP8: per block QKᵀ, softmax, then P·V in four parts of 64 channels, each into a
      // 32-register temporary promoted into its part of O (O = α·O + P̃V, l = α·l + P̃·1) while the next
      // part runs (H100, B4 H16, 128-key blocks, kernel only against two halves issued in turn: 4k
      // 1.154 / 1.149 ms against 1.204 / 1.191, causal 0.664 / 0.667 against 0.690 / 0.696, 1k 0.118 /
      // 0.116 against 0.122 / 0.119). QKᵀ and softmax do not overlap P·V inside the warpgroup: the
      // other consumer's wgmmas run under this one's softmax.
      my_state[kSlotQScale * kStateStride] = __float_as_int(q_scale);
      // The ring positions broadcast from lane 0 (warp-uniform, as consumer_index): the slot's
      // descriptors are then built in uniform registers.
      const int ukb0 = __shfl_sync(0xffffffffu, kb0, 0), ukb_end = __shfl_sync(0xffffffffu, kb_end, 0);
      for (int kb = ukb0; kb < ukb_end; ++kb) {
        const int stage = kb % kStages;
        const u32 parity = (kb / kStages) & 1;
        const BlockScalars bs = load_block_scalars(kb);
        mbarrier_wait_parity(smem_u32(&full_k[stage]), parity);
        i32 acc[kSRegs];
        issue_qk(stage, acc);
        wgmma_wait<0>();
        fence_operands(acc);
        release(smem_u32(&empty_k[stage]));
        if (kb == ukb_end - 1) release_q();
        float s[kSRegs];
        float alpha[2];
        softmax_block(kb, bs, acc, s, alpha);
        pack_p(s, pa);
        mbarrier_wait_parity(smem_u32(&full_v[stage]), parity);
        // P·V in kPvParts parts of kD / kPvParts channels through two temporaries: part h + 1 runs on
        // the tensor cores while part h is promoted (O = α·O + P̃V; the row sums ride with part 0).
        constexpr int kPart = kORegs / kPvParts;
        float pv[2][kPart], lsum[4];
        const u64 desc_v0 = make_kmajor_desc(sV + stage * kVBytes, kVSwizzle);
        auto issue_part = [&](int h, float(&acc)[kPart]) {
#pragma unroll
          for (int k = 0; k < kPVSteps; ++k) fence_operands(pa[k]);
          fence_operands(acc);
          if (h == 0) fence_operands(lsum);
          wgmma_fence();
          // From the slot's descriptor by 64-bit adds (ptxas then advances it in uniform registers
          // instead of rebuilding each part's from its address).
          const u64 desc_v = desc_advance(desc_v0, h * (kD / kPvParts) * kCtaK);
#pragma unroll
          for (int k = 0; k < kPVSteps; ++k) {
            wgmma_e4m3_rs<kD / kPvParts>(acc, pa[k], desc_advance(desc_v, 32 * k), k > 0);
          }
          if (h == 0) issue_row_sums_e4m3(lsum, pa);
          wgmma_commit();
        };
        auto promote_part = [&](int h, float(&acc)[kPart]) {
          fence_operands(acc);
          if (h == 0) fence_operands(lsum);
          promote_o(o, h * kPart, acc, kPart, alpha);
          if (h == 0) promote_row_sums(lsum, alpha);
        };
        issue_part(0, pv[0]);
#pragma unroll
        for (int h = 0; h < kPvParts; ++h) {
          if (h + 1 < kPvParts) {
            issue_part(h + 1, pv[(h + 1) % 2]);
            wgmma_wait<1>();
          } else {
            wgmma_wait<0>();
          }
          promote_part(h, pv[h % 2]);
        }
        release(smem_u32(&empty_v[stage]));
      }
    }
    if (!kSplitPv && kb_end > kb0) {
      const int stage = kb0 % kStages;
      const BlockScalars bs{q_scale, ldg_f32(p.k_scale + (my_state[kSlotKScale * kStateStride] + kb0 * kKGroups)),
                            kb0 >= my_state[kSlotMaskFrom * kStateStride]};
      mbarrier_wait_parity(smem_u32(&full_k[stage]), (kb0 / kStages) & 1);
      i32 acc[kSRegs];
      qk_coarse(stage, acc);
      turn_begin();
      issue_qk(stage, acc);
      turn_end(false);
      my_state[kSlotQScale * kStateStride] = __float_as_int(q_scale);
      wgmma_wait<0>();
      fence_operands(acc);
      release(smem_u32(&empty_k[stage]));
      if (kb_end == kb0 + 1) release_q();
      float s[kSRegs];
      softmax_block(kb0, bs, acc, s, alpha_prev);
      pack_p(s, pa);
    }
    for (int kb = kb0 + 1; !kSplitPv && kb < kb_end; ++kb) {
      const int stage = kb % kStages, pstage = (kb - 1) % kStages;
      const u32 parity = (kb / kStages) & 1, pparity = ((kb - 1) / kStages) & 1;

      const BlockScalars bs = load_block_scalars(kb);
      mbarrier_wait_parity(smem_u32(&full_k[stage]), parity);
      mbarrier_wait_parity(smem_u32(&full_v[pstage]), pparity);
      i32 acc[kSRegs];
      float pv_fresh[kORegs], lsum_fresh[4];  // FP8: this block's P·V and row sums before promotion
      float(&pv)[kORegs] = kPvF16 ? o : pv_fresh;
      float(&lsum)[4] = kPvF16 ? l_acc : lsum_fresh;
      fence_pv_operands(pv, lsum);
      qk_coarse(stage, acc);
      turn_begin();
      issue_qk(stage, acc);      // group 1
      issue_pv(pstage, pv, lsum, pa);  // group 2
      turn_end(false);
      wgmma_wait<1>();           // S done; P·V(kb − 1) may still run under this softmax
      fence_operands(acc);
      release(smem_u32(&empty_k[stage]));
      if (kb == kb_end - 1) release_q();

      float s[kSRegs];
      float alpha_next[2];
      softmax_block(kb, bs, acc, s, alpha_next);

      wgmma_wait<0>();  // P·V(kb − 1) done
      fence_pv_operands(pv, lsum);
      fence_operands(s);
      release(smem_u32(&empty_v[pstage]));
      // f16: P·V(kb − 1) accumulated into O and l_acc; both to block kb's max, ready for P̃_kb.
      if constexpr (kPvF16) rescale_unless_one(o, l_acc, alpha_next);
      else promote(pv, lsum);
      pack_p(s, pa);  // only now: P·V(kb − 1) no longer reads pa
      alpha_prev[0] = alpha_next[0];
      alpha_prev[1] = alpha_next[1];
    }
    if (!kSplitPv && kb_end > kb0) {  // drain: P·V of the last block
      const int kl = kb_end - 1;
      mbarrier_wait_parity(smem_u32(&full_v[kl % kStages]), (kl / kStages) & 1);
      if constexpr (kPvF16) {
        // Varlen: every consumer thread zeroes a share of the V rows past the sequence
        // (AttnWgmmaV16::zero_tail_rows) before any P·V reads the tile. Both consumers run the same
        // blocks, so both arrive here for the same tile.
        const int* state = &loop_state[0][thread_id_x() - 128];
        const int seq = state[kSlotSeqKv * kStateStride], key0 = (kl - state[kSlotRing * kStateStride]) * kCtaK;
        if (p.cu_seqlens_k != nullptr && seq - key0 < kCtaK) {
          V16::zero_tail_rows(sV + (kl % kStages) * kVBytes, seq - key0, thread_id_x() - 128, 128 * kConsumers);
          named_barrier_sync(kTailBarrier, 128 * kConsumers);
        }
      }
      float pv_fresh[kORegs], lsum_fresh[4];
      float(&pv)[kORegs] = kPvF16 ? o : pv_fresh;
      float(&lsum)[4] = kPvF16 ? l_acc : lsum_fresh;
      fence_pv_operands(pv, lsum);
      turn_begin();
      wgmma_fence();
      issue_pv(kl % kStages, pv, lsum, pa);
      turn_end(true);
      wgmma_wait<0>();
      fence_operands(pv);
      if constexpr (Cfg::rowsum_mma) fence_operands(lsum);
      release(smem_u32(&empty_v[kl % kStages]));
      if constexpr (kPvF16) row_sum[0] = l_acc[0], row_sum[1] = l_acc[2];  // O is final as it stands
      else promote(pv, lsum);
    }
    // ================================ epilogue ================================
    // The tile's coordinates again (cheap integer arithmetic) rather than kept live through the
    // main loop.
    const int e_vtid = thread_id_x();
    int* const e_state = &loop_state[0][e_vtid - 128];
    const int e_tile = e_state[kSlotTile * kStateStride];
    const int e_n = e_state[kSlotDone * kStateStride];  // this tile's v_scale buffer: e_n % 2
    e_state[kSlotTile * kStateStride] = next_tile(e_tile);
    e_state[kSlotDone * kStateStride] = e_n + 1;
    e_state[kSlotRing * kStateStride] = kb_end;
    const AttnWgmmaTile e = attn_wgmma_tile<kCtaQ, kCtaK, Cfg::mask>(p, e_tile, geom[kQTiles]);
    const long long e_bh_q = e.bh_q(p);
    // This thread's first row: 64·consumer + 16·warp + lane / 4 = 16·((tid − 128) / 32) + lane / 4.
    const int e_row0 = e.q0 + 16 * ((e_vtid - 128) / 32) + (e_vtid % 32) / 4;
    const int e_t = e_vtid % 4, e_lane = e_vtid % 32;
    const int e_cw = (e_vtid - 128) / 128, e_warp = ((e_vtid - 128) / 32) % 4;  // consumer, its warp
    // kStageOInQ: the next tile's Q rows, in flight under this tile's stores (issued once the first
    // part of O has left its registers, which they take). Issued on every path (past the CTA's last
    // tile, or for a tile past a sequence's end, as rows past the sequence: zeros, no memory access),
    // so that ptxas sees q_next rewritten before each tile's use and keeps no register for it through
    // the main loop. (Where they issue is ptxas's choice: the spill check and the SASS test, no
    // LDL/STL, hold them between the two parts.)
    auto load_next_q = [&] {
      const int nt = next_tile(e_tile);
      const bool more = nt < geom[kTiles];
      AttnWgmmaTile wn = more ? attn_wgmma_tile<kCtaQ, kCtaK, Cfg::mask>(p, nt, geom[kQTiles]) : e;
      if (!more) wn.seq_q = wn.q0;  // nothing to load
      q_next.load(p, wn, wn.q0 + kRowsPerWg * e_cw, e_warp, e_lane / 4, e_t);
      q_next_tile = more && !wn.empty() ? nt : -1;
    };

    float inv_sum[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      // rowsum_mma: whole-row sums already (P̃ · 1 over all keys of each block)
      const float l = Cfg::rowsum_mma ? row_sum[r] : quad_sum(row_sum[r]);
      row_sum[r] = l;  // the LSE below takes the whole-row sum
      inv_sum[r] = l > 0.0f ? 1.0f / l : 0.0f;  // no visible key: output 0, never NaN
    }

    if constexpr (Cfg::write_lse) {
      if (p.lse != nullptr && e_t == 0) {
        // Fused Q: the correction from the tile start (Q's own pass writes p.lse_correction instead).
        const bool own_corr = Cfg::fused_q && p.k_mean != nullptr;
        store_lse(p, e, e_bh_q, e_row0, row_max, row_sum, own_corr,
                  own_corr ? __int_as_float(e_state[kSlotLseCorr0 * kStateStride]) : 0.0f,
                  own_corr ? __int_as_float(e_state[kSlotLseCorr1 * kStateStride]) : 0.0f);
      }
    }

    if constexpr (!kPvF16) mbarrier_wait_parity(smem_u32(&full_vs[e_n & 1]), (e_n >> 1) & 1);
    const u32 vs = sVs + (e_n & 1) * kVsBytes;
    // The factors of channels 8c + 2t and 8c + 2t + 1: v_scale, or 1 (f16 V is not scaled).
    auto v_factors = [&](int c, float& c0, float& c1) {
      c0 = 1.0f, c1 = 1.0f;
      if constexpr (!kPvF16) ld_shared_v2_f32(vs + 4 * (8 * c + 2 * e_t), c0, c1);
    };
    u16* gO = static_cast<u16*>(p.o) + e.q_rows_at(p, p.o_stride_b, p.o_stride_h, p.o_stride_s);
    if constexpr (kStageO) {
      // Through this consumer's staging tile (AttnWgmmaStagedO); the first barrier: its threads are
      // done reading out the previous tile's.
      using StagedO = AttnWgmmaStagedO<kD, Cfg::out_bf16>;
      const u32 s_o = sO + e_cw * kWgmmaRowsPerWg * StagedO::kRowBytes;
      named_barrier_sync(kOBarrier + e_cw, 128);
      StagedO::write(s_o, o, inv_sum, e_warp, e_lane, v_factors);
      named_barrier_sync(kOBarrier + e_cw, 128);
      StagedO::store(s_o, gO, p.o_stride_s, e.q0 + kWgmmaRowsPerWg * e_cw, e.seq_q, e_vtid % 128);
    } else if constexpr (kStageOInQ || kStageOParts) {
      // In parts, through the consumer's Q tile (kStageOInQ) or its parts buffer. Each part's first
      // barrier: this consumer's warps are past their last QKᵀ, which read the Q tile, and done
      // reading out the previous part (or the previous tile's last).
      using Parts = AttnWgmmaStagedOParts<kD, Cfg::out_bf16, kStageOInQ ? 128 : kOPartChannels>;
      static_assert(!kStageOInQ || Parts::kTileBytes == kQBytes, "an O part fills the consumer's Q tile");
      const u32 s_o = kStageOInQ ? sQ + e_cw * kQBytes : sO + e_cw * Parts::kTileBytes;
#pragma unroll
      for (int part = 0; part < Parts::kParts; ++part) {
        named_barrier_sync(kOBarrier + e_cw, 128);
        Parts::write(s_o, part, o, inv_sum, e_warp, e_lane, v_factors);
        named_barrier_sync(kOBarrier + e_cw, 128);
        if constexpr (kStageOInQ) {
          if (part == 0) load_next_q();
        }
        Parts::store(s_o, part, gO, p.o_stride_s, e.q0 + kWgmmaRowsPerWg * e_cw, e.seq_q, e_vtid % 128);
      }
      // (kStageOInQ: the next tile's Q stores wait at the consumer's Q barrier, after every thread's
      // last shared read of the parts.)
    } else {
#pragma unroll
      for (int c = 0; c < kORegs / 4; ++c) {  // 8-channel slice c: channels 8c + 2t, 8c + 2t + 1
        float c0, c1;
        v_factors(c, c0, c1);
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int row = e_row0 + 8 * r;
          if (row < e.seq_q) {
            const u32 v = f32x2_to_half2<Cfg::out_bf16>(o[4 * c + 2 * r] * (inv_sum[r] * c0),
                                                        o[4 * c + 2 * r + 1] * (inv_sum[r] * c1));
            *reinterpret_cast<u32*>(gO + row * p.o_stride_s + 8 * c + 2 * e_t) = v;
          }
        }
      }
    }
    if constexpr (!kPvF16) mbarrier_arrive(smem_u32(&empty_vs[e_n & 1]));  // done with the v_scale buffer
  }
}

}  // namespace sagejit::kernels
