// attn_mma.cuh — the portable SageAttention2 forward kernel: mma.sync on sm_80/86/89/90/120.
//
// O = softmax(Q Kᵀ · sm_scale) V from the quantized workspace of quant_layout.cuh (DESIGN.md §1):
//   S  = Q_int · K_intᵀ          mma.sync s8 m16n8k32 (or s4 m16n8k64), s32 accumulators; with two
//                                int8 terms (qk_terms = 2) S = 256·q_q·q_k + q_q·r_k + r_q·q_k in the
//                                same accumulators (quant_layout.cuh, "Two-term int8")
//   s2 = S · q_scale · k_scale   one product per thread (per-thread scale groups); log2 domain,
//                                because q_scale holds sm_scale · log2(e)
//   P̃  = exp2(s2 − m + log2 448) online softmax; P̃ ∈ [0, 448] is e4m3's range, the row sum l is
//                                accumulated from P̃ in fp32 before any rounding
//   O += P̃_e4m3 · V_e4m3         mma.sync e4m3 m16n8k32 into a fresh accumulator per K block, added
//                                to the fp32 O (two-level accumulation: the FP8 tensor-core
//                                accumulator keeps only ~22 bits). Or, with pv_fp8 = false, fp16/bf16
//                                P · unquantized V with m16n8k16 straight into O (sm_80/86).
//   out = O / l · v_scale         staged through shared memory, written with 16-byte stores.
//
// CTA structure: warps_q warps side by side along Q; each warp owns warp_q = cta_q / warps_q query
// rows and all cta_k keys of a tile, so a row's softmax never leaves its quad of lanes. Q is loaded
// once (cp.async) and kept in registers as MMA fragments when they are few (otherwise, D = 256,
// re-read from shared memory at every k step); K/V tiles stream through a `stages`-deep
// cp.async ring. P never touches shared memory: the QKᵀ accumulators are converted in registers
// into the A operand of the P·V MMA. For e4m3 that works without shuffles only because V is stored
// token-permuted (quant_layout.cuh): lane 4g+t holds keys {2t, 2t+1, 8+2t, 9+2t} of each 16-key
// group of row g, which the A operand wants at positions {4t .. 4t+3}, where V stores exactly those
// tokens. For fp16 the m16n8k16 A layout already equals the accumulator layout (FlashAttention-2).
//
// Scale groups (quant_layout.cuh) with this kernel's warp layout: block_q = cta_q, warp_q as above,
// block_k = warp_k = cta_k (every warp sees every key of a tile).
//
// Varlen (p.cu_seqlens_q/k non-null, attn_params.cuh): each CTA reads its sequence's extents, so
// lengths, the key-bound mask, the causal diagonal and the tile count are per sequence; Q/K/V come
// from the sequence's padded workspace slot, the fp16 V (FP16 P·V), O and the LSE from the packed
// tensors at cu_seqlens offsets. Nothing else differs: the same instantiation serves both.
//
// Cfg (emitted by the generator; every member static constexpr):
//   int  head_dim     64, 96, 128, 256
//   int  cta_q        query rows per CTA (== the quant kernel's block_q, <= 128)
//   int  cta_k        keys per K/V tile (== block_k == warp_k, <= 128; FP8 P·V: multiple of 32)
//   int  warps_q      warps per CTA, side by side along Q; warp_q = cta_q / warps_q, multiple of 16
//   int  stages       cp.async ring depth for K/V, >= 2
//   int  qk_bits      8, or 4 (s4 m16n8k64, head_dim % 64 == 0; INT4 tensor cores on sm_80/86/89,
//                     emulated by ptxas on sm_90a/sm_120: correctness checks only there)
//   int  qk_terms     1, or 2 with qk_bits 8 (two-term int8: rows of 2·D bytes, three MMAs per step)
//   layout::Granularity granularity   per_thread | per_warp | per_block (quant_layout.cuh)
//   bool pv_fp8       true: e4m3 P·V (sm_89+); false: fp16/bf16 P·V on the unquantized V
//   int  mask         0 none, 1 causal top-left, 2 causal bottom-right (i sees j <= i + Skv − Sq)
//   bool out_bf16     output dtype (and V's dtype when pv_fp8 is false)
//   bool write_lse    write p.lse (when non-null)
//   bool smooth_q     add back ΔS = q̄ · γ(K)ᵀ (Q was quantized as Q − q̄ per block)
//   int  min_ctas_per_sm   optional, default 1 (__launch_bounds__' second argument)
//
// Tile defaults, zero spills and no stack frame with nvcc/NVRTC 13.0 on every listed arch (the
// autotuner may search around them):
//   D = 64:  cta_q 128, cta_k 64, warps_q 4 (warp_q 32), stages 2
//   D = 96:  cta_q 128, cta_k 64, warps_q 8 (warp_q 16), stages 2
//   D = 128: cta_q 128, cta_k 64, warps_q 8 (warp_q 16), stages 2
//   D = 256: cta_q 64,  cta_k 64, warps_q 4 (warp_q 16), stages 2 — FP16 P·V on sm_86 needs
//            cta_k 32 (119,808 B of shared memory otherwise, over the 99 KiB opt-in limit)
//   sm_90a with int8 Q/K and FP16 P·V: D = 96 and 128 cta_k 128, stages 4; D = 256 cta_q 128,
//   warps_q 8; with two-term int8 Q/K: D = 256 cta_q 128, warps_q 8 (measured there,
//   generator/attn_spec.cpp default_tile)
// Two-term int8 rows are twice as long: cta_k is halved where shared memory requires it
// (default_tile in generator/attn_spec.cpp).
// On sm_90/sm_100 `mma.sync ... e4m3` is not a tensor-core instruction: ptxas emulates it with
// F2FP.F16.E4M3.UNPACK + HMMA.16816 (checked in the SASS), so there pv_fp8 = false is faster and
// more accurate; Hopper's real FP8 path is wgmma.
//
// Failure modes: invalid Cfg combinations are static_asserts; nothing is checked at run time (the
// host validates shapes and alignment before launching). A row that sees no key (bottom-right causal
// with seq_q > seq_kv) yields output 0 and LSE −inf.
#pragma once

#include "attn_params.cuh"
#include "mma_ops.cuh"
#include "quant_layout.cuh"

namespace sagejit::kernels {

// log2(448): P̃ = exp2(s2 − m + kLog2Fp8Max) puts the row maximum exactly at e4m3's largest finite
// value, so the static P scale 1/448 costs nothing (it cancels in O / l) and the full e4m3 range is
// used.
constexpr float kLog2Fp8Max = 8.807354922057604f;
constexpr float kLn2 = 0.6931471805599453f;

template <int V>
struct AttnIntC {
  static constexpr int value = V;
};

enum AttnMask : int { kMaskNone = 0, kMaskCausalTopLeft = 1, kMaskCausalBottomRight = 2 };

// Everything derived from a Cfg, in one place.
template <class Cfg>
struct AttnTile {
  static constexpr int kD = Cfg::head_dim;
  static constexpr int kCtaQ = Cfg::cta_q;
  static constexpr int kCtaK = Cfg::cta_k;
  static constexpr int kWarps = Cfg::warps_q;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kWarpQ = kCtaQ / kWarps;
  static constexpr int kMTiles = kWarpQ / 16;   // m16 row tiles per warp
  static constexpr int kSTiles = kCtaK / 8;     // n8 key tiles of S per warp
  static constexpr int kOTiles = kD / 8;        // n8 channel tiles of O per warp
  static constexpr int kTerms = Cfg::qk_terms;
  static constexpr int kTermBytes = kD * Cfg::qk_bits / 8;  // one term of a Q/K row
  static constexpr int kRowBytes = kTermBytes * kTerms;     // one Q/K row in the workspace
  static constexpr int kQKSteps = kTermBytes / 32;          // k32 s8 and k64 s4 both eat 32 bytes
  // S counts steps of 1/kFine of the quantization step: two terms count the residual's fine steps.
  static constexpr int kFine = kTerms == 2 ? static_cast<int>(layout::kResidualScale) : 1;
  static constexpr bool kFp8 = Cfg::pv_fp8;
  static constexpr bool kBf16 = Cfg::out_bf16;
  static constexpr layout::Granularity kGran = Cfg::granularity;
  static constexpr int kQGroups = layout::q_groups(kGran, kCtaQ, kWarpQ);
  static constexpr int kKGroups = layout::k_groups(kGran, kCtaK, kCtaK);
  // FP16 P·V has no static P scale: P ∈ [0, 1] keeps the LSE formula offset-free.
  static constexpr float kPOffset = kFp8 ? kLog2Fp8Max : 0.0f;
  static constexpr AttnSmemLayout kSmem =
      attn_smem_layout(kD, kCtaQ, kCtaK, Cfg::stages, Cfg::qk_bits * kTerms, kFp8, Cfg::smooth_q);
};

// Optional Cfg member `min_ctas_per_sm` (default 1): the second __launch_bounds__ argument, which
// caps registers at 64K / (threads · value) so that many CTAs fit on an SM.
template <class C, class = void>
struct AttnMinCtas {
  static constexpr int value = 1;
};
template <class C>
struct AttnMinCtas<C, decltype(void(C::min_ctas_per_sm))> {
  static constexpr int value = C::min_ctas_per_sm;
};

template <class Cfg>
__global__ void __launch_bounds__(Cfg::warps_q * 32, AttnMinCtas<Cfg>::value)
    attention_mma(AttnParams p) {
  using namespace mma_ops;
  using T = AttnTile<Cfg>;
  constexpr int kD = T::kD, kCtaQ = T::kCtaQ, kCtaK = T::kCtaK, kThreads = T::kThreads;
  constexpr int kWarpQ = T::kWarpQ, kMT = T::kMTiles, kST = T::kSTiles, kOT = T::kOTiles;
  constexpr int kRowBytes = T::kRowBytes, kQKSteps = T::kQKSteps, kStages = Cfg::stages;
  constexpr int kTerms = T::kTerms, kTermBytes = T::kTermBytes, kFine = T::kFine;
  constexpr bool kFp8 = T::kFp8, kBf16 = T::kBf16;
  constexpr AttnSmemLayout L = T::kSmem;

  static_assert(kD == 64 || kD == 96 || kD == 128 || kD == 256, "head_dim: 64, 96, 128 or 256");
  static_assert(Cfg::qk_bits == 8 || Cfg::qk_bits == 4, "qk_bits: 8 or 4");
  static_assert(kTermBytes % 32 == 0, "int4 Q/K needs head_dim % 64 == 0 (k64 MMA steps)");
  static_assert(kTerms == 1 || (kTerms == 2 && Cfg::qk_bits == 8), "qk_terms: 1, or 2 with int8");
  static_assert(kCtaQ % Cfg::warps_q == 0 && kWarpQ % 16 == 0, "warp_q must be a multiple of 16");
  static_assert(kCtaQ <= 128 && kCtaK <= 128, "the quantization kernels handle blocks <= 128");
  static_assert(!kFp8 || kCtaK % 32 == 0, "FP8 P·V: cta_k must be a multiple of 32");
  static_assert(kFp8 || (kCtaK % 16 == 0 && kOT % 2 == 0), "FP16 P·V: cta_k % 16 == 0");
  static_assert(kCtaK % 16 == 0, "cta_k must be a multiple of 16");
  static_assert(Cfg::stages >= 2, "stages >= 2");
  static_assert(Cfg::mask >= 0 && Cfg::mask <= 2, "mask: 0 none, 1 top-left, 2 bottom-right");
  static_assert(L.total_bytes <= 227 * 1024, "shared memory exceeds the largest opt-in limit");
#if defined(__CUDA_ARCH__)
#if __CUDA_ARCH__ < 890
  static_assert(!Cfg::pv_fp8, "FP8 P·V needs sm_89 or newer (e4m3 mma)");
#endif
#endif
  // No arch gate on qk_bits == 4: sm_90a and sm_120 have no INT4 tensor cores, but ptxas emulates
  // mma.sync s4 there (two IMMA.16832.S8 per m16n8k64 plus nibble unpacking), so int4 Q/K compiles
  // and runs, no faster than int8, for correctness checks (Arch::int4_emulated).

  extern __shared__ __attribute__((aligned(128))) u8 smem[];
  const u32 s_base = smem_u32(smem);
  const u32 sQ = s_base + L.q_offset;
  const u32 sK = s_base + L.k_offset;
  const u32 sV = s_base + L.v_offset;

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;  // accumulator row group / column pair of this lane
  const int b = blockIdx.z, h = blockIdx.y;
  const int hk = h / (p.heads_q / p.heads_kv);
  // Causal CTAs differ in work: launch the heaviest (last) Q tiles first.
  const int qt = Cfg::mask != kMaskNone ? static_cast<int>(gridDim.x - 1 - blockIdx.x)
                                        : static_cast<int>(blockIdx.x);

  // ---- sequence extents (varlen: packed user tensors, padded workspace slots) ----
  int seq_q = p.seq_q, seq_kv = p.seq_kv;
  i64 q_tok0 = 0, k_tok0 = 0;
  if (p.cu_seqlens_q != nullptr) {
    q_tok0 = p.cu_seqlens_q[b];
    k_tok0 = p.cu_seqlens_k[b];
    seq_q = p.cu_seqlens_q[b + 1] - static_cast<int>(q_tok0);
    seq_kv = p.cu_seqlens_k[b + 1] - static_cast<int>(k_tok0);
  }
  const int q0 = qt * kCtaQ;
  if (q0 >= seq_q) return;  // whole CTA, before any barrier

  // Query row i sees keys <= i + diag (causal); no key >= seq_kv ever.
  const int diag = Cfg::mask == kMaskCausalBottomRight ? seq_kv - seq_q : 0;
  int n_tiles = (seq_kv + kCtaK - 1) / kCtaK;
  if constexpr (Cfg::mask != kMaskNone) {
    const int last_row = (q0 + kCtaQ < seq_q ? q0 + kCtaQ : seq_q) - 1;
    const int last_key = last_row + diag;
    const int causal_tiles = last_key < 0 ? 0 : last_key / kCtaK + 1;
    n_tiles = causal_tiles < n_tiles ? causal_tiles : n_tiles;
  }

  // ---- global addresses ----
  const int q_blocks = p.seq_q_pad / kCtaQ, k_blocks = p.seq_kv_pad / kCtaK;
  const i64 bh_q = static_cast<i64>(b) * p.heads_q + h;
  const i64 bh_kv = static_cast<i64>(b) * p.heads_kv + hk;
  const u8* gQ = static_cast<const u8*>(p.q) + (bh_q * p.seq_q_pad + q0) * kRowBytes;
  const u8* gK = static_cast<const u8*>(p.k) + bh_kv * p.seq_kv_pad * kRowBytes;
  const u8* gV;
  if constexpr (kFp8) {
    gV = static_cast<const u8*>(p.v) + bh_kv * kD * p.seq_kv_pad;
  } else {
    const i64 off = (p.cu_seqlens_k != nullptr ? k_tok0 * p.v_stride_s : b * p.v_stride_b) +
                    hk * p.v_stride_h;
    gV = static_cast<const u8*>(p.v) + off * 2;
  }
  const int row0 = warp * kWarpQ;  // first row of this warp within the CTA tile
  // Per fine step of S (kFine a power of two: exact).
  const float q_scale =
      ldg_f32(p.q_scale + (bh_q * q_blocks + qt) * T::kQGroups +
              layout::q_group_of_row(T::kGran, row0 + g, kWarpQ)) /
      kFine;
  const float* k_scale_ptr =
      p.k_scale + bh_kv * k_blocks * T::kKGroups + layout::k_group_of_key(T::kGran, 2 * t, kCtaK);

  // ---- cp.async loaders: 16-byte chunks, rows padded to an odd number of chunks. Thread tid
  // copies chunk tid % kChunks of rows tid / kChunks + n · (kThreads / kChunks), so its addresses
  // are one base plus compile-time steps (few live registers across the main loop). ----
  auto copy_rows = [&](auto chunks_tag, auto rows_tag, u32 dst, int dst_stride, const u8* src,
                       i64 src_stride, int valid_rows) {
    constexpr int kChunks = decltype(chunks_tag)::value, kRows = decltype(rows_tag)::value;
    constexpr bool kExact =
        kChunks <= kThreads && kThreads % kChunks == 0 && kRows % (kThreads / kChunks) == 0;
    // Hide the (run-time) source stride from loop-invariant code motion: otherwise the compiler
    // precomputes one 64-bit address per pass outside the K/V loop and holds them all in
    // registers (16 of them for D = 256); recomputing costs one IMAD per pass per tile.
    asm volatile("" : "+l"(src_stride));
    if constexpr (kExact) {
      constexpr int kStep = kThreads / kChunks;
      const int r0 = tid / kChunks, c = tid % kChunks;
      const u8* s = src + r0 * src_stride + c * 16;
      const u32 d = dst + r0 * dst_stride + c * 16;
#pragma unroll
      for (int n = 0; n < kRows / kStep; ++n) {
        const int r = r0 + n * kStep;
        const bool ok = r < valid_rows;
        cp_async_16(d + n * kStep * dst_stride, ok ? s + n * kStep * src_stride : src, ok);
      }
    } else {
#pragma unroll
      for (int n = 0; n < (kRows * kChunks + kThreads - 1) / kThreads; ++n) {
        const int i = tid + n * kThreads;
        if (i < kRows * kChunks) {
          const int r = i / kChunks, c = i % kChunks;
          const bool ok = r < valid_rows;
          cp_async_16(dst + r * dst_stride + c * 16, ok ? src + r * src_stride + c * 16 : src, ok);
        }
      }
    }
  };
  auto load_q = [&]() {
    copy_rows(AttnIntC<kRowBytes / 16>{}, AttnIntC<kCtaQ>{}, sQ, L.q_stride, gQ, kRowBytes, kCtaQ);
  };
  auto load_k = [&](int tile, int stage) {
    copy_rows(AttnIntC<kRowBytes / 16>{}, AttnIntC<kCtaK>{}, sK + stage * L.k_stage_bytes,
              L.k_stride, gK + static_cast<i64>(tile) * kCtaK * kRowBytes, kRowBytes, kCtaK);
  };
  auto load_v = [&](int tile, int stage) {
    const u32 dst = sV + stage * L.v_stage_bytes;
    if constexpr (kFp8) {  // Vᵀ rows: one per channel, cta_k token-permuted bytes of this tile
      copy_rows(AttnIntC<kCtaK / 16>{}, AttnIntC<kD>{}, dst, L.v_stride,
                gV + static_cast<i64>(tile) * kCtaK, p.seq_kv_pad, kD);
    } else {  // V rows: one per key, 2·D bytes; keys past seq_kv are zero-filled (P = 0 there,
              // and 0 · NaN from whatever memory lies beyond would poison the row)
      copy_rows(AttnIntC<kD * 2 / 16>{}, AttnIntC<kCtaK>{}, dst, L.v_stride,
                gV + static_cast<i64>(tile) * kCtaK * p.v_stride_s * 2, p.v_stride_s * 2,
                seq_kv - tile * kCtaK);
    }
  };

  // ---- Q smoothing: q̄ of this block into shared memory ----
  float* s_qmean = reinterpret_cast<float*>(smem + L.qmean_offset);
  float* s_dscore = reinterpret_cast<float*>(smem + L.dscore_offset);
  if constexpr (Cfg::smooth_q) {
    const float* qm = p.q_mean + (bh_q * q_blocks + qt) * kD;
    for (int i = tid; i < kD; i += kThreads) s_qmean[i] = ldg_f32(qm + i);
  }

  // ---- prologue: Q, then stages − 1 tiles of K and V (one commit group each, always committed so
  // the group arithmetic below is uniform) ----
  load_q();
  cp_async_commit();
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < n_tiles) load_k(s, s);
    cp_async_commit();
    if (s < n_tiles) load_v(s, s);
    cp_async_commit();
  }
  cp_async_wait<2 * (kStages - 1)>();  // Q has landed
  __syncthreads();

  // Q fragments (A operand, row-major 16x32 bytes per step): matrix i of the x4 = rows 8(i%2)..,
  // bytes 16(i/2)..; lane l addresses row l%8 of matrix l/8. Kept in registers when they are few
  // (<= 16 per thread); otherwise (D = 256, or warp_q = 32 with D = 128) re-read from shared memory
  // at every k step, which costs one ldmatrix per (m tile, k step) but frees the registers the
  // larger O accumulator needs.
  constexpr bool kQInRegs = kMT * kQKSteps * 4 <= 16;
  const u32 q_lane_addr =
      sQ + (row0 + (lane % 8) + 8 * ((lane / 8) % 2)) * L.q_stride + 16 * (lane / 16);
  u32 q_frag[kQInRegs ? kMT : 1][kQInRegs ? kQKSteps : 1][4];
  if constexpr (kQInRegs) {
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
      for (int ks = 0; ks < kQKSteps; ++ks)
        ldmatrix_x4(q_frag[mi][ks], q_lane_addr + mi * 16 * L.q_stride + ks * 32);
  }

  float o[kMT][kOT][4];
  float row_max[kMT][2], row_sum[kMT][2];
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi) {
#pragma unroll
    for (int dj = 0; dj < kOT; ++dj) {
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mi][dj][e] = 0.0f;
    }
    row_max[mi][0] = row_max[mi][1] = neg_inf();
    row_sum[mi][0] = row_sum[mi][1] = 0.0f;
  }

  // ================================ main loop over K/V tiles ================================
  for (int j = 0; j < n_tiles; ++j) {
    const int stage = j % kStages;
    cp_async_wait<2 * kStages - 3>();  // K_j has landed (V_j and later tiles may be in flight)
    __syncthreads();                   // ... for every thread; and stage j−1 is free again
    {
      const int jn = j + kStages - 1;
      if (jn < n_tiles) load_k(jn, jn % kStages);
      cp_async_commit();
      if (jn < n_tiles) load_v(jn, jn % kStages);
      cp_async_commit();
    }
    const float dequant = q_scale * ldg_f32(k_scale_ptr + j * T::kKGroups);
    const u32 sKj = sK + stage * L.k_stage_bytes;

    if constexpr (Cfg::smooth_q) {
      // ΔS_c = q̄ · γ(k_c) · sm_scale · log2 e for the cta_k keys of this tile, from the int8/int4
      // K tile already in shared memory: cta_k · D MACs per CTA per tile, no O(Sq·Skv) buffer.
      constexpr int kTPK = kThreads >= kCtaK ? kThreads / kCtaK : 1;  // threads per key
      static_assert(kTPK <= 32 && (kTPK & (kTPK - 1)) == 0, "threads per key: power of 2");
      constexpr int kChan = kD / kTPK;
      const float k_factor = p.sm_scale * layout::kLog2e;
      for (int key = tid / kTPK; key < kCtaK; key += kThreads / kTPK) {
        const int c0 = (tid % kTPK) * kChan;
        const u8* row = smem + L.k_offset + stage * L.k_stage_bytes + key * L.k_stride;
        float acc = 0.0f;
#pragma unroll 8
        for (int c = c0; c < c0 + kChan; ++c) {
          int v;
          if constexpr (kTerms == 2) {  // in fine steps: kFine·q + r
            v = static_cast<signed char>(row[c]) * kFine + static_cast<signed char>(row[kD + c]);
          } else if constexpr (Cfg::qk_bits == 8) {
            v = static_cast<signed char>(row[c]);
          } else {
            const int byte = row[c / 2];
            v = ((c % 2 == 0 ? byte : byte >> 4) << 28) >> 28;  // sign-extend the nibble
          }
          acc += s_qmean[c] * static_cast<float>(v);
        }
#pragma unroll
        for (int m = 1; m < kTPK; m <<= 1) acc += shfl_xor(acc, m);
        if (tid % kTPK == 0) {
          const float ks = ldg_f32(p.k_scale + (bh_kv * k_blocks + j) * T::kKGroups +
                                   layout::k_group_of_key(T::kGran, key, kCtaK));
          s_dscore[key] = acc * ks * (k_factor / kFine);
        }
      }
    }

    // ---- S = Q Kᵀ (int) ----
    // K fragments (B operand, col-major): x4 matrix i = keys 8(2np + i/2).., bytes 16(i%2)..
    // When Q is re-read from shared memory (D = 256) the k loop stays rolled: fully unrolled, ptxas
    // hoists the K and Q ldmatrix of many k steps ahead of their MMAs (up to ~60 fragment registers
    // on top of the 128-register O), and D = 256 FP8 P·V on sm_89 spilled (255 registers, 8-byte
    // stack). Rolled, a step holds 20 fragment registers and the QK phase is no longer the peak
    // (nvdisasm -plr, NVRTC 13.0: D = 256 FP8 peaks at 224-231 live registers, at the start of P·V,
    // against 236-243 before). Unrolling by 2 or 4 still spilled. With Q in registers the loop
    // must unroll: q_frag[mi][ks] is indexed by ks. `#pragma unroll 1` alone is not enough: ptxas
    // ignores PTX's "nounroll" and unrolls a short constant-trip loop itself (it did for the plain
    // D = 256 FP8 sm_89 kernel, 64 IMMA in the SASS), so the rolled loop's trip count is made
    // opaque to it through a launch argument that is always positive (the grid's z extent; costs
    // one uniform compare).
    constexpr int kQKUnroll = kQInRegs ? kQKSteps : 1;
    const int qk_steps = kQInRegs || p.batch > 0 ? kQKSteps : 0;
    i32 acc[kMT][kST][4];
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
      for (int nj = 0; nj < kST; ++nj)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[mi][nj][e] = 0;
    // One k step. Residuals off: acc += q_q · q_kᵀ. On (two-term int8, the second pass):
    // acc += q_q · r_kᵀ + r_q · q_kᵀ, the residuals read from the second half of each row.
    auto qk_step = [&](int ks, auto residual_tag) {
      constexpr bool kResidual = decltype(residual_tag)::value != 0;
      u32 q_step[kMT][4];
      u32 r_step[kResidual ? kMT : 1][4];
#pragma unroll
      for (int mi = 0; mi < kMT; ++mi) {
        if constexpr (kQInRegs) {
#pragma unroll
          for (int x = 0; x < 4; ++x) q_step[mi][x] = q_frag[mi][ks][x];
        } else {
          ldmatrix_x4(q_step[mi], q_lane_addr + mi * 16 * L.q_stride + ks * 32);
        }
        if constexpr (kResidual) {
          ldmatrix_x4(r_step[mi], q_lane_addr + mi * 16 * L.q_stride + kTermBytes + ks * 32);
        }
      }
#pragma unroll
      for (int np = 0; np < kST / 2; ++np) {
        u32 kb[4];
        const int key = np * 16 + (lane % 8) + 8 * (lane / 16);
        const u32 k_addr = sKj + key * L.k_stride + ks * 32 + 16 * ((lane / 8) % 2);
        ldmatrix_x4(kb, k_addr);
        if constexpr (kResidual) {
          u32 rb[4];
          ldmatrix_x4(rb, k_addr + kTermBytes);
#pragma unroll
          for (int mi = 0; mi < kMT; ++mi) {
            mma_s8_16832(acc[mi][2 * np], q_step[mi], rb[0], rb[1]);
            mma_s8_16832(acc[mi][2 * np + 1], q_step[mi], rb[2], rb[3]);
            mma_s8_16832(acc[mi][2 * np], r_step[mi], kb[0], kb[1]);
            mma_s8_16832(acc[mi][2 * np + 1], r_step[mi], kb[2], kb[3]);
          }
        } else {
#pragma unroll
          for (int mi = 0; mi < kMT; ++mi) {
            if constexpr (Cfg::qk_bits == 8) {
              mma_s8_16832(acc[mi][2 * np], q_step[mi], kb[0], kb[1]);
              mma_s8_16832(acc[mi][2 * np + 1], q_step[mi], kb[2], kb[3]);
            } else {
              mma_s4_16864(acc[mi][2 * np], q_step[mi], kb[0], kb[1]);
              mma_s4_16864(acc[mi][2 * np + 1], q_step[mi], kb[2], kb[3]);
            }
          }
        }
      }
    };
#pragma unroll kQKUnroll
    for (int ks = 0; ks < qk_steps; ++ks) qk_step(ks, AttnIntC<0>{});
    if constexpr (kTerms == 2) {
      // Coarse products into fine steps, exactly: |S| <= 256·127²·D + 2·127²·D < 2³¹ for D <= 256.
#pragma unroll
      for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
        for (int nj = 0; nj < kST; ++nj)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[mi][nj][e] *= kFine;
#pragma unroll kQKUnroll
      for (int ks = 0; ks < qk_steps; ++ks) qk_step(ks, AttnIntC<1>{});
    }

    // ---- dequantize into the log2 domain; element e of tile (mi, nj): row 16mi + g + 8(e/2),
    // key 8nj + 2t + e%2 ----
    float s[kMT][kST][4];
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
      for (int nj = 0; nj < kST; ++nj)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mi][nj][e] = s32_to_f32(acc[mi][nj][e]) * dequant;

    if constexpr (Cfg::smooth_q) {
      __syncthreads();  // s_dscore of this tile is complete
#pragma unroll
      for (int nj = 0; nj < kST; ++nj) {
        const float d0 = s_dscore[nj * 8 + 2 * t], d1 = s_dscore[nj * 8 + 2 * t + 1];
#pragma unroll
        for (int mi = 0; mi < kMT; ++mi) {
          s[mi][nj][0] += d0;
          s[mi][nj][1] += d1;
          s[mi][nj][2] += d0;
          s[mi][nj][3] += d1;
        }
      }
    }

    // ---- mask: keys past seq_kv (the padding of the last tile) and, on diagonal tiles, causal ----
    const int key0 = j * kCtaK;
    const bool tail = key0 + kCtaK > seq_kv;
    const bool diagonal = Cfg::mask != kMaskNone && key0 + kCtaK - 1 > q0 + diag;
    if (tail || diagonal) {
#pragma unroll
      for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
        for (int nj = 0; nj < kST; ++nj)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = key0 + nj * 8 + 2 * t + (e % 2);
            const int row = q0 + row0 + mi * 16 + g + 8 * (e / 2);
            bool masked = key >= seq_kv;
            if constexpr (Cfg::mask != kMaskNone) masked = masked || key > row + diag;
            if (masked) s[mi][nj][e] = neg_inf();
          }
    }

    // ---- online softmax (log2 domain), per row r ∈ {g, g+8} of each m tile ----
    float alpha[kMT][2];
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = neg_inf();
#pragma unroll
        for (int nj = 0; nj < kST; ++nj)
          mx = fmaxf(mx, fmaxf(s[mi][nj][2 * r], s[mi][nj][2 * r + 1]));
        mx = quad_max(mx);
        const float m_new = fmaxf(row_max[mi][r], mx);
        // A row with no visible key yet keeps m = −inf; use 0 so exp2 sees −inf − 0, never NaN.
        const float m_use = m_new == neg_inf() ? 0.0f : m_new;
        alpha[mi][r] = fast_exp2(row_max[mi][r] - m_use);
        row_max[mi][r] = m_new;
        const float bias = m_use - T::kPOffset;
        float sum = 0.0f;
#pragma unroll
        for (int nj = 0; nj < kST; ++nj) {
#pragma unroll
          for (int e = 2 * r; e < 2 * r + 2; ++e) {
            s[mi][nj][e] = fast_exp2(s[mi][nj][e] - bias);
            sum += s[mi][nj][e];
          }
        }
        // Thread-partial sum of unquantized P̃; the quad reduction waits for the epilogue.
        row_sum[mi][r] = row_sum[mi][r] * alpha[mi][r] + sum;
      }
    }

    // ---- P̃ → A fragments of the P·V MMA, in registers, before the barrier below so the fp32
    // scores are dead by the time the V fragments are loaded ----
    constexpr int kPSteps = kFp8 ? kCtaK / 32 : kCtaK / 16;
    u32 pa[kMT][kPSteps][4];
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
      for (int kk = 0; kk < kPSteps; ++kk) {
        if constexpr (kFp8) {
          // e4m3, k step kk = 32 keys = 16-key groups 2kk, 2kk+1: a0 = row g of S tiles 4kk,
          // 4kk+1 (keys 2t, 2t+1, 8+2t, 9+2t = V positions 4t..4t+3); a1 = row g+8; a2/a3 = the
          // same for S tiles 4kk+2, 4kk+3.
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const float(&s0)[4] = s[mi][4 * kk + 2 * half];
            const float(&s1)[4] = s[mi][4 * kk + 2 * half + 1];
            pa[mi][kk][2 * half + 0] = f32x4_to_e4m3x4(s0[0], s0[1], s1[0], s1[1]);
            pa[mi][kk][2 * half + 1] = f32x4_to_e4m3x4(s0[2], s0[3], s1[2], s1[3]);
          }
        } else {
          // f16/bf16 m16n8k16: the A layout equals the accumulator layout; k step kk = S tiles
          // 2kk (a0 row g, a1 row g+8) and 2kk+1 (a2, a3).
          pa[mi][kk][0] = f32x2_to_half2<kBf16>(s[mi][2 * kk][0], s[mi][2 * kk][1]);
          pa[mi][kk][1] = f32x2_to_half2<kBf16>(s[mi][2 * kk][2], s[mi][2 * kk][3]);
          pa[mi][kk][2] = f32x2_to_half2<kBf16>(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
          pa[mi][kk][3] = f32x2_to_half2<kBf16>(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
        }
      }

    cp_async_wait<2 * (kStages - 1)>();  // V_j has landed
    __syncthreads();
    const u32 sVj = sV + stage * L.v_stage_bytes;

    if constexpr (kFp8) {
      // ---- O = α·O + P̃V, one 8-channel tile at a time so the fresh FP8 accumulator is only
      // kMT × 4 registers. V fragments (B operand): x4 matrix i = channels 8dj.., key bytes
      // 16i.. of a 64-key slice; b0/b1 of k step 2kp are matrices 0/1, of 2kp+1 matrices 2/3 ----
#pragma unroll
      for (int dj = 0; dj < kOT; ++dj) {
        float pv[kMT][4];
#pragma unroll
        for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
          for (int e = 0; e < 4; ++e) pv[mi][e] = 0.0f;
#pragma unroll
        for (int kp = 0; kp < kCtaK / 64; ++kp) {
          u32 vb[4];
          ldmatrix_x4(vb, sVj + (dj * 8 + lane % 8) * L.v_stride + kp * 64 + 16 * (lane / 8));
#pragma unroll
          for (int mi = 0; mi < kMT; ++mi) {
            mma_e4m3_16832(pv[mi], pa[mi][2 * kp], vb[0], vb[1]);
            mma_e4m3_16832(pv[mi], pa[mi][2 * kp + 1], vb[2], vb[3]);
          }
        }
        if constexpr (kCtaK % 64 != 0) {  // an odd last k step of 32 keys: matrices 0/1 only
          u32 vb[2];
          ldmatrix_x2(vb, sVj + (dj * 8 + lane % 8) * L.v_stride + (kCtaK - 32) +
                              16 * ((lane / 8) % 2));
#pragma unroll
          for (int mi = 0; mi < kMT; ++mi) mma_e4m3_16832(pv[mi], pa[mi][kPSteps - 1], vb[0], vb[1]);
        }
#pragma unroll
        for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            o[mi][dj][e] = o[mi][dj][e] * alpha[mi][e / 2] + pv[mi][e];
      }
    } else {
      // ---- O = α·O + P̃V straight into the fp32 accumulator ----
#pragma unroll
      for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
        for (int dj = 0; dj < kOT; ++dj)
#pragma unroll
          for (int e = 0; e < 4; ++e) o[mi][dj][e] *= alpha[mi][e / 2];
      // V fragments (B operand from row-major V via ldmatrix.trans): x4 matrix i = keys
      // 16kk + 8(i%2).., channels 8(2dp + i/2)..
#pragma unroll
      for (int dp = 0; dp < kOT / 2; ++dp) {
#pragma unroll
        for (int kk = 0; kk < kCtaK / 16; ++kk) {
          u32 vb[4];
          const int key = kk * 16 + (lane % 8) + 8 * ((lane / 8) % 2);
          ldmatrix_x4_trans(vb, sVj + key * L.v_stride + (dp * 16 + 8 * (lane / 16)) * 2);
#pragma unroll
          for (int mi = 0; mi < kMT; ++mi) {
            mma_16816<kBf16>(o[mi][2 * dp], pa[mi][kk], vb[0], vb[1]);
            mma_16816<kBf16>(o[mi][2 * dp + 1], pa[mi][kk], vb[2], vb[3]);
          }
        }
      }
    }
  }

  // ================================ epilogue ================================
  cp_async_wait_all();  // only empty groups can be left, but the staging below reuses the ring
  __syncthreads();      // every warp is done reading K/V

  // Batch/head offsets again, from fresh reads of blockIdx: keeping the prologue's 64-bit
  // products alive across the main loop costs registers exactly where O needs them.
  const int eb = cta_id_z(), eh = cta_id_y();
  const i64 e_bh_q = static_cast<i64>(eb) * p.heads_q + eh;
  const i64 e_bh_kv = static_cast<i64>(eb) * p.heads_kv + eh / (p.heads_q / p.heads_kv);

  float inv_sum[kMT][2];
#pragma unroll
  for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float l = quad_sum(row_sum[mi][r]);
      row_sum[mi][r] = l;
      inv_sum[mi][r] = l > 0.0f ? 1.0f / l : 0.0f;  // no visible key: output 0, never NaN
    }

  // LSE (natural log) = (m + log2 l − offset) · ln 2 + q·k̄·sm_scale. lse_correction is [B, Hq,
  // seq_q]; the LSE too, except with varlen, where it is packed [Hq, total_q] (attn_params.cuh).
  if constexpr (Cfg::write_lse) {
    if (p.lse != nullptr && t == 0) {
      const i64 corr_row0 = e_bh_q * p.seq_q;
      const i64 lse_row0 = p.cu_seqlens_q != nullptr
                               ? eh * static_cast<i64>(p.cu_seqlens_q[p.batch]) + p.cu_seqlens_q[eb]
                               : corr_row0;
#pragma unroll
      for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int row = q0 + row0 + mi * 16 + g + 8 * r;
          if (row < seq_q) {
            float lse = neg_inf();
            if (row_sum[mi][r] > 0.0f) {
              lse = (row_max[mi][r] + fast_log2(row_sum[mi][r]) - T::kPOffset) * kLn2;
              if (p.lse_correction != nullptr) lse += p.lse_correction[corr_row0 + row];
            }
            p.lse[lse_row0 + row] = lse;
          }
        }
    }
  }

  // Normalize, apply v_scale, convert, stage this warp's rows in shared memory.
  constexpr int kOStride = attn_padded_row_bytes(kD * 2);
  const u32 sO = s_base + row0 * kOStride;
  const float* vs = kFp8 ? p.v_scale + e_bh_kv * kD : nullptr;
#pragma unroll
  for (int dj = 0; dj < kOT; ++dj) {
    float c0 = 1.0f, c1 = 1.0f;
    if constexpr (kFp8) {
      c0 = ldg_f32(vs + dj * 8 + 2 * t);
      c1 = ldg_f32(vs + dj * 8 + 2 * t + 1);
    }
#pragma unroll
    for (int mi = 0; mi < kMT; ++mi)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float x0 = o[mi][dj][2 * r] * (inv_sum[mi][r] * c0);
        const float x1 = o[mi][dj][2 * r + 1] * (inv_sum[mi][r] * c1);
        const int row = mi * 16 + g + 8 * r;
        st_shared_u32(sO + row * kOStride + (dj * 8 + 2 * t) * 2, f32x2_to_half2<kBf16>(x0, x1));
      }
  }
  asm volatile("bar.warp.sync -1;\n" ::: "memory");

  // 16-byte coalesced stores of the warp's rows; rows >= seq_q (the padding) are not written.
  constexpr int kChunks = kD * 2 / 16;
  const i64 o_row0 = p.cu_seqlens_q != nullptr ? p.cu_seqlens_q[eb] * p.o_stride_s
                                                : eb * p.o_stride_b;
  u8* gO = static_cast<u8*>(p.o) + (o_row0 + eh * p.o_stride_h) * 2;
#pragma unroll
  for (int i = lane; i < kWarpQ * kChunks; i += 32) {
    const int r = i / kChunks, c = i % kChunks;
    const int row = q0 + row0 + r;
    if (row < seq_q) {
      u32 v[4];
      ld_shared_v4(v, sO + r * kOStride + c * 16);
      st_global_v4(gO + row * p.o_stride_s * 2 + c * 16, v);
    }
  }
}

}  // namespace sagejit::kernels
