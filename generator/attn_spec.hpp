// attn_spec.hpp — the attention kernel family: one AttnSpec is one instantiation of
// templates/attn_mma.cuh (the portable mma.sync SageAttention2 forward kernel).
//
// The spec is grouped the way the kernel is: what Q, K and V are quantized to (AttnQuant), which
// keys a query sees (Mask), what is written (AttnOutput), and the CTA tiling (AttnTile, a separate
// struct so the autotuner can vary it on its own). validate() checks every rule the template's
// static_asserts enforce, plus the target arch's shared-memory limit, and throws InvalidArgument
// naming the field ("quant.qk", "tile.cta_k", ...) with the allowed values or the numbers involved,
// so a bad spec fails here, with a reason, and never as an NVRTC static_assert log.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "generator/types.hpp"
#include "generator/unit.hpp"
#include "templates/quant_layout.cuh"

namespace sagejit {

// Which keys query row i sees (Sq queries, Skv keys). Names: "none", "causal" (top-left aligned:
// j <= i, as torch's is_causal), "causal_br" (bottom-right aligned: j <= i + Skv − Sq, the
// convention of FlashAttention-2 ≥ 2.1 for decoding with a KV cache).
enum class Mask { none, causal_top_left, causal_bottom_right };
std::string_view name(Mask m);
Mask parse_mask(std::string_view text, std::string_view argument = "mask");

// The P·V product. "fp8": P̃ and V in e4m3 with two-level fp32 accumulation (SageAttention2's fast
// path; sm_89 and newer). "f16": P in the output dtype (fp16 or bf16) times the unquantized V, fp32
// accumulation — the only one on sm_80/86, and with int8x2 Q/K the precise mode. On sm_90a ptxas emulates e4m3
// mma.sync (F2FP unpack + HMMA), so "f16" is the default there and "fp8" an explicit choice.
enum class PvType { fp8_e4m3, f16 };
std::string_view name(PvType t);
PvType parse_pv_type(std::string_view text, std::string_view argument = "pv");

// Scale-group granularity of Q and K (templates/quant_layout.cuh): "per_thread", "per_warp",
// "per_block".
std::string_view name(layout::Granularity g);
layout::Granularity parse_granularity(std::string_view text, std::string_view argument = "granularity");

// Largest dynamic shared memory one CTA may opt in to on `arch` (bytes): sm_80 163 KiB, sm_86/89/120
// 99 KiB, sm_90a 227 KiB (cudaDevAttrMaxSharedMemoryPerBlockOptin). The SM holds 1 KiB more, which
// the driver reserves per resident CTA.
int max_shared_bytes_per_block(const Arch& arch);
// Resident threads per SM: 2048 on sm_80 and sm_90a, 1536 on sm_86, sm_89 and sm_120.
int max_threads_per_sm(const Arch& arch);

// CTA tiling. The quantization kernels use the same geometry: block_q = cta_q, warp_q =
// cta_q / warps_q, block_k = warp_k = cta_k.
// The member defaults are head_dim 128's default tile.
struct AttnTile {
  int cta_q = 128;          // query rows per CTA, <= 128
  int cta_k = 64;           // keys per K/V tile, <= 128; multiple of 16 (of 32 with FP8 P·V)
  int warps_q = 8;          // warps side by side along Q; warp_q = cta_q / warps_q, a multiple of 16
  int stages = 2;           // cp.async ring depth for K and V, 2..4
  int min_ctas_per_sm = 1;  // __launch_bounds__' second argument: caps registers at 64K / (threads · this)
  bool persistent = false;  // wgmma only: one CTA per resident slot, each looping over tiles

  int threads() const { return warps_q * 32; }
  int warp_q() const { return warps_q > 0 ? cta_q / warps_q : 0; }
  // "t128x64w8s2": cta_q x cta_k, warps, stages; "c2" is appended when min_ctas_per_sm != 1 and
  // "p" when persistent.
  std::string name() const;
  bool operator==(const AttnTile&) const = default;
};

struct AttnQuant {
  // int8 everywhere; int4 (head_dim % 64 == 0) native on sm_80/86/89, emulated (correctness only) on
  // sm_90a/sm_120; int8x2 (two int8 terms, three MMAs per product: the precise mode) with f16 P·V.
  QuantType qk = QuantType::int8;
  layout::Granularity granularity = layout::Granularity::per_thread;
  PvType pv = PvType::f16;  // fp8_e4m3 on sm_89 and newer
  bool smooth_q = false;    // Q quantized as Q − q̄ per block; ΔS = q̄·γ(K)ᵀ added back
  // Q quantized by the attention kernel itself from the caller's Q (the same bits as the separate
  // pass; templates/attn_wgmma_q.cuh): where can_fuse_q() says so.
  bool fused_q = false;
};

struct AttnOutput {
  DType dtype = DType::f16;  // also V's dtype with PvType::f16
  bool lse = false;          // write the log-sum-exp (natural log) per query row
};

// Which kernel template: the portable mma.sync kernel (attn_mma.cuh, every arch) or the sm_90a
// TMA + wgmma kernel (attn_wgmma.cuh: D 64/128, INT8 QK with FP8 or f16 P·V, two-term INT8 QK with f16
// P·V; D 96 and 256 too (256 in 128-key blocks with FP8 P·V, 64 with 16-bit); per-thread scales, f16/bf16 output,
// no Q smoothing; tiles of 64 query rows per consumer warpgroup, optionally persistent).
enum class AttnFamily { mma, wgmma };
std::string_view name(AttnFamily f);

struct AttnSpec {
  AttnFamily family = AttnFamily::mma;
  Arch arch{9, 0, true};
  int head_dim = 128;
  AttnQuant quant;
  Mask mask = Mask::none;
  AttnOutput out;
  AttnTile tile;

  int qk_bits() const { return qk_mma_bits(quant.qk); }  // of one MMA operand element
  int qk_terms() const { return sagejit::qk_terms(quant.qk); }
  // Threads per CTA to launch: tile.threads() for mma; for wgmma the consumer warps plus the producer
  // warpgroup, or 128 in the single-warpgroup form.
  int threads() const;
  // Dynamic shared memory of one CTA (kernels::attn_smem_bytes; launch with exactly this).
  int shared_bytes() const;

  // "attn.mma.d128.int8.per_thread.fp8.causal.f16.lse.sm_89.t128x64w4s2":
  // attn.{family}.d{head_dim}.{qk}.{granularity}[.smooth_q][.fused_q].{pv}.{mask}.{out dtype}[.lse].{arch}.{tile};
  // the bracketed tokens appear only when the option is on.
  std::string canonical_name() const;
  std::uint64_t hash() const;  // fnv1a64 of canonical_name()
  // Throws InvalidArgument naming the field ("arch", "head_dim", "quant.qk", "quant.pv",
  // "quant.smooth_q", "quant.fused_q", "tile.cta_q", "tile.cta_k", "tile.warps_q", "tile.stages",
  // "tile.min_ctas_per_sm", "tile.persistent", "tile" for shared memory) and the allowed values.
  void validate() const;
  // Validates first. The unit includes attn_mma.cuh and defines `struct Config` (the spec as
  // static constexpr members); the name expression is "&sagejit::kernels::attention_mma<Config>".
  GeneratedUnit generate() const;

 private:
  void validate_wgmma_single() const;  // validate() of the single-warpgroup wgmma tiles
  void validate_wgmma_shared() const;  // validate() of their shared-ring form
  // Throws "tile" when min_ctas_per_sm CTAs of this spec (dynamic + static_bytes of shared memory
  // each) cannot be resident on one SM of the arch.
  void check_wgmma_residency(int static_bytes) const;
};

// The default tile for a problem on `arch` (the autotuner searches around it). The per-head-dim
// tiles are the ones templates/attn_mma.cuh was tuned for (zero spills and no stack frame with NVRTC
// 13.0; tests/cpu/kernels/test_shipped_attn.cpp checks that on every arch):
//   head_dim  64: cta_q 128, cta_k 64, warps_q 4 (warp_q 32), stages 2
//   head_dim  96: cta_q 128, cta_k 64, warps_q 8 (warp_q 16), stages 2
//   head_dim 128: cta_q 128, cta_k 64, warps_q 8 (warp_q 16), stages 2
//   head_dim 256: cta_q  64, cta_k 64, warps_q 4 (warp_q 16), stages 2
// except sm_90a with int8 Q/K and f16 P·V: head_dim 96 and 128 cta_k 128, stages 4 (3–9% faster
// there), head_dim 256 cta_q 128, warps_q 8 (1.4–1.5x); with int8x2, head_dim 256 cta_q 128,
// warps_q 8 (1.34–1.42x).
// If that tile's shared memory (counted with Q smoothing on, so the tile holds for every spec)
// exceeds the arch's limit, cta_k is halved until it fits: head_dim 256 with int8 Q/K and f16 P·V
// on the 99 KiB archs gets cta_k 32 (68,608 B instead of 119,808 B). The result validates for every
// supported head dim, P·V type and Q/K type that the arch allows. Two-term int8 rows are twice as
// long, so on the 99 KiB archs (sm_86/89/120) int8x2 with f16 P·V gets cta_k 32 at head_dim 128 and 16
// at 256, and cta_k 32 at 256 on sm_80 (compiled without spills in CI; their speed is unmeasured).
// The tiles of the wgmma family: `consumers` (1 or 2) consumer warpgroups of 64 query rows, K/V
// blocks of `cta_k` keys (128, or 64: what head dim 256 needs with 16-bit P·V), `stages` K+V slots. cta_q = 64·consumers, warps_q = 4·consumers (the consumer
// warps; the kernel adds a producer warpgroup, see AttnSpec::threads()), min_ctas_per_sm 2 for one
// consumer and 1 for two (the setmaxnreg budgets of attn_wgmma.cuh depend on it).
// `persistent` launches one CTA per resident slot (SMs × min_ctas_per_sm), each looping over tiles
// so that the next tile's Q and K/V loads run under the current tile's last block and epilogue.
AttnTile wgmma_tile(int consumers = 2, int stages = 2, bool persistent = false, int cta_k = 128);
// The single-warpgroup form (attn_wgmma_single.cuh): one warpgroup of 64 query rows and no producer,
// one K and one V buffer (stages 1: what marks the form), 128-key blocks, `min_ctas` CTAs per SM (2
// to 4; with FP8 P·V 3 at head dim 128, 4 at 96 and 64 and 2 at 256 fit its registers, with f16 P·V
// 2 at 128 and 3 at 96 and 64), one tile per CTA. INT8 Q/K with FP8 or f16 P·V at head dims 64, 96
// and 128, with FP8 P·V at 256.
AttnTile wgmma_single_tile(int min_ctas);
bool is_wgmma_single(const AttnTile& t);
// The single form's shared-ring form (attn_wgmma_single.cuh with warpgroups > 1,
// attn_wgmma_kv_ring.cuh): one CTA per SM of `warpgroups` warpgroups, 64 query rows each (cta_q
// 64 · warpgroups, 4 · warpgroups warps), that read 128-key K/V blocks from one ring of
// kernels::kWgmmaSharedSlots slots (stages), so a block is copied once per SM. INT8 Q/K with FP8 P·V
// at head dim 128 (kWgmmaSharedWarpgroups: "t192x128w12s4"), any mask. Launched like the single form
// with cta_q for the grid: (attn_wgmma_q_slots(seq_q, cta_q, causal), heads_q, batch).
inline constexpr int kWgmmaSharedWarpgroups = 3;  // three of ~165 registers fill the register file
AttnTile wgmma_shared_tile(int warpgroups = kWgmmaSharedWarpgroups);
bool is_wgmma_shared(const AttnTile& t);
// A wgmma tile's warpgroups of 64 query rows: the shared-ring form's, the warp-specialized kernel's
// consumers (1 for the single form).
int wgmma_warpgroups(const AttnTile& t);
// The heuristic default when no tuning record says otherwise (measured on the H100, see
// bench/results): INT8 Q/K with FP8 P·V at head dims 64, 96, 128 and 256 the single-warpgroup form
// (4, 4, 3 and 2 CTAs per SM), and with f16 P·V at head dims 64 and 96 (3 CTAs per SM); otherwise
// head_dim 128 two consumers, 3 stages with f16 P·V (its V blocks are twice the size), 2 with
// two-term int8 Q/K; head_dim 64 one consumer, 3 stages; head_dim 96 with two-term Q/K two consumers,
// 2 stages; head_dim 256 two consumers and 64-key blocks, 3 stages with f16 P·V, 2 with two-term
// Q/K; all of these
// persistent. (With f16 P·V at head dim 128 and at most 1k keys the runtime's policy takes the
// single form instead, 2 CTAs per SM: autotune/problem.cpp.)
AttnTile wgmma_default_tile(int head_dim, PvType pv = PvType::fp8_e4m3, QuantType qk = QuantType::int8);
// True when `s`, with family set to wgmma and a wgmma tile, would validate: what the runtime asks
// before choosing the sm_90a kernel.
bool wgmma_supports(const AttnSpec& s);
// Whether the kernel of `s` quantizes Q itself (quant.fused_q): the wgmma family with one-term int8
// Q/K, in the single-warpgroup form always, in the warp-specialized form with FP8 P·V (with f16 P·V
// it measured slower than Q's own pass); with an LSE the kernel computes its K-smoothing correction
// too.
bool can_fuse_q(const AttnSpec& s);

AttnTile default_tile(const Arch& arch, int head_dim, PvType pv, QuantType qk);

// The P·V type used when the caller does not choose: fp8 on sm_89 and sm_120, f16 on sm_80/86 (no
// FP8 MMA) and on sm_90a (FP8 mma.sync is emulated there).
PvType default_pv_type(const Arch& arch);
// With the Q/K type known: int8x2 (the precise mode's Q Kᵀ) takes f16 P·V on every arch (it is not
// valid with fp8); the others take default_pv_type(arch).
PvType default_pv_type(const Arch& arch, QuantType qk);

// A matrix that exercises every code path of the template and compiles in CI time (a few dozen
// kernels per arch): every head dim with the default tile, for each P·V type the arch runs natively;
// both causal alignments; bf16 output; LSE on and off; Q smoothing (also with int4 Q/K); int4 for
// head dims 64 and 128 where the arch has INT4 MMA; per-warp and per-block scales once; int8x2
// (f16 P·V) at head dims 64, 128 and 256.
std::vector<AttnSpec> representative_attn_specs(const Arch& arch);

// The full cross product of supported options on `arch`, with default tiles (`sagejit compile
// --all`): head dim × Q/K type × granularity × Q smoothing × P·V type (fp8 included on sm_90a, where
// it is an explicit choice; int8x2 with f16 only) × mask × output dtype × LSE.
std::vector<AttnSpec> full_attn_specs(const Arch& arch);

}  // namespace sagejit
