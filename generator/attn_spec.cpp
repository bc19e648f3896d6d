// attn_spec.cpp — names, validation, default tiles and generated units of the attention family.
#include "generator/attn_spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "runtime/error.hpp"
#include "runtime/hash.hpp"
#include "templates/attn_params.cuh"

namespace sagejit {
namespace {

constexpr std::pair<std::string_view, Mask> kMasks[] = {
    {"none", Mask::none}, {"causal", Mask::causal_top_left}, {"causal_br", Mask::causal_bottom_right}};
constexpr std::pair<std::string_view, PvType> kPvTypes[] = {{"fp8", PvType::fp8_e4m3}, {"f16", PvType::f16}};
constexpr std::pair<std::string_view, layout::Granularity> kGranularities[] = {
    {"per_thread", layout::Granularity::per_thread},
    {"per_warp", layout::Granularity::per_warp},
    {"per_block", layout::Granularity::per_block}};

template <class E, std::size_t N>
std::string_view name_in(const std::pair<std::string_view, E> (&table)[N], E e) {
  for (const auto& [n, v] : table) {
    if (v == e) return n;
  }
  return "unknown";
}

template <class E, std::size_t N>
E parse_in(const std::pair<std::string_view, E> (&table)[N], std::string_view text, std::string_view argument) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string allowed;
  for (const auto& [n, e] : table) {
    if (n == lower) return e;
    allowed += allowed.empty() ? std::string(n) : ", " + std::string(n);
  }
  throw InvalidArgument(std::string(argument), fmt::format("must be one of {} (got '{}')", allowed, text));
}

// Tile bounds of the template: the quantization kernels handle blocks of at most 128 tokens, and
// a ring deeper than 4 stages only adds shared memory (each stage already hides a full tile load).
constexpr int kMaxCta = 128;
constexpr int kMinStages = 2;
constexpr int kMaxStages = 4;

// The kernel's mask constants (templates/attn_mma.cuh, AttnMask) and what they mean.
int mask_code(Mask m) { return m == Mask::none ? 0 : m == Mask::causal_top_left ? 1 : 2; }
std::string_view mask_meaning(Mask m) {
  return m == Mask::none              ? "no mask"
         : m == Mask::causal_top_left ? "causal, top-left aligned"
                                      : "causal, bottom-right aligned";
}

std::string_view granularity_enumerator(layout::Granularity g) {
  return g == layout::Granularity::per_thread ? "sagejit::layout::Granularity::per_thread"
         : g == layout::Granularity::per_warp ? "sagejit::layout::Granularity::per_warp"
                                              : "sagejit::layout::Granularity::per_block";
}

bool is_power_of_two(int x) { return x > 0 && (x & (x - 1)) == 0; }

[[noreturn]] void throw_fused_q_form() {
  throw InvalidArgument("quant.fused_q", "needs the wgmma family with int8 Q/K, and for the warp-specialized tiles FP8 "
                                         "P·V: only those kernels quantize Q themselves");
}

}  // namespace

std::string_view name(Mask m) { return name_in(kMasks, m); }
Mask parse_mask(std::string_view text, std::string_view argument) { return parse_in(kMasks, text, argument); }
std::string_view name(PvType t) { return name_in(kPvTypes, t); }
PvType parse_pv_type(std::string_view text, std::string_view argument) { return parse_in(kPvTypes, text, argument); }
std::string_view name(layout::Granularity g) { return name_in(kGranularities, g); }
layout::Granularity parse_granularity(std::string_view text, std::string_view argument) {
  return parse_in(kGranularities, text, argument);
}

int max_shared_bytes_per_block(const Arch& arch) {
  switch (arch.number()) {
    case 80:
      return 163 * 1024;  // A100: 164 KiB per SM
    case 90:
      return 227 * 1024;  // H100: 228 KiB per SM
    default:
      return 99 * 1024;  // sm_86, sm_89, sm_120: 100 KiB per SM
  }
}

int max_threads_per_sm(const Arch& arch) { return arch.number() == 80 || arch.number() == 90 ? 2048 : 1536; }

std::string AttnTile::name() const {
  std::string s = fmt::format("t{}x{}w{}s{}", cta_q, cta_k, warps_q, stages);
  if (min_ctas_per_sm != 1) s += fmt::format("c{}", min_ctas_per_sm);
  if (persistent) s += "p";
  return s;
}

std::string_view name(AttnFamily f) { return f == AttnFamily::mma ? "mma" : "wgmma"; }

AttnTile wgmma_tile(int consumers, int stages, bool persistent, int cta_k) {
  return AttnTile{kernels::kWgmmaRowsPerWg * consumers, cta_k, 4 * consumers, stages,
                  kernels::attn_wgmma_min_ctas(consumers), persistent};
}

AttnTile wgmma_single_tile(int min_ctas) {
  return AttnTile{kernels::kWgmmaRowsPerWg, kernels::kWgmmaCtaK, 4, 1, min_ctas, false};
}

bool is_wgmma_single(const AttnTile& t) { return t.stages == 1; }

AttnTile wgmma_shared_tile(int warpgroups) {
  return AttnTile{kernels::kWgmmaRowsPerWg * warpgroups, kernels::kWgmmaCtaK, 4 * warpgroups,
                  kernels::kWgmmaSharedSlots, 1, false};
}

// (The warp-specialized kernel's CTAs hold one or two consumer warpgroups.)
bool is_wgmma_shared(const AttnTile& t) { return t.cta_q > 2 * kernels::kWgmmaRowsPerWg; }

int wgmma_warpgroups(const AttnTile& t) { return t.cta_q / kernels::kWgmmaRowsPerWg; }

AttnTile wgmma_default_tile(int head_dim, PvType pv, QuantType qk) {
  // Measured on the H100 (B4, S = 4096, bench/results/2026-11-25-attention-h100-wgmma-ws.md):
  // D = 128: two consumers with a 4-deep ring 698 TOPS (2 stages 651, 3 stages 666; ping-pong +1.5%
  // at 2 stages); D = 64: one consumer at 2 CTAs/SM with 3 stages 473 (two consumers 407–434).
  // Persistent, on the H200 (bench/results/2026-11-26-attention-h200-wgmma-persistent.md): D = 128
  // +2–4% at S = 4096 and +5% at 1024 without a mask, +3% / +12% causal (tiles taken in pairs of
  // equal work); D = 64 equal at 4096, +2–6% at 1024. Ping-pong on top: +1%, within run-to-run
  // spread, so off.
  // f16 P·V (`sagejit tune`, H200, B4 S4096): D = 128 3 stages 1.721 ms, 4 stages 1.738, 2 stages 1.750
  // (causal: 0.961 / 0.967 / 0.965); D = 64 H64 one consumer: 2 stages 2.754, 4 stages 2.773, 3 stages 2.815
  // (within 2%: kept as for FP8).
  // Head dim 256, 16-bit P·V: blocks of 64 keys, 3 stages (H200, B4 H16 S4096, persistent): 1.509 ms
  // (2 stages 1.638; causal 0.836 / 0.859); two-term: 2 stages (2.231 ms). FP8 P·V (V blocks of half the
  // bytes) holds 128-key blocks, which promote half as often per key (H100, B4 H16, kernel only,
  // persistent, same call, two rounds; bench/results/2026-11-27-d256-128-key-blocks-h100.md): 2 stages of
  // 128 keys 1.195 / 1.193 ms at 4k against 1.413 / 1.410 for 3 stages of 64 (non-persistent 1.211 /
  // 1.229), causal 0.682 / 0.686 against 0.789 / 0.785, 2k 0.347 / 0.349 against 0.401 / 0.392,
  // 1k 0.122 / 0.119 against 0.127 / 0.124.
  // INT8 with FP8 P·V at D = 256 runs the single-warpgroup form since (P·V in four 64-channel parts,
  // 255 registers, 2 CTAs per SM; H100, B4 H16, kernel only, same call, two rounds, against the
  // warp-specialized 2-stage 128-key tile; bench/results/2026-11-27-d256-single-form-h100.md): S1024
  // 0.0937 / 0.0930 ms against 0.0990 / 0.0989, S2048 0.2801 / 0.2821 against 0.2997 / 0.2976, S4096
  // 1.032 / 1.011 against 1.073 / 1.072, S8192 4.187 / 4.166 against 4.278 / 4.089; causal S4096 0.591 /
  // 0.594 against 0.603 / 0.604, S8192 2.211 / 2.171 against 2.263 / 2.282, S1024 and S2048 equal.
  if (head_dim == 256) {
    if (qk == QuantType::int8x2) return wgmma_tile(2, 2, true, 64);
    return pv == PvType::f16 ? wgmma_tile(2, 3, true, 64) : wgmma_single_tile(2);
  }
  // Two-term Q/K doubles the Q tile and the K blocks: D = 128 (and 96) fit 2 stages.
  if (qk == QuantType::int8x2) return head_dim == 64 ? wgmma_tile(1, 3, true) : wgmma_tile(2, 2, true);
  // f16 P·V in the single-warpgroup form (H100, B4 S4096, same call): D = 64 H64 460–472 TOPS at 3 CTAs
  // per SM against 403 for one consumer with 3 stages (causal 428–431 / 351–356, S1024 393–398 / 313–318);
  // D = 128 (2 CTAs per SM) 574–576 against 616–617, so it keeps the warp-specialized kernel
  // (bench/results/2026-11-26-wgmma-issue-cost-h100.md). D = 96 H32 at 3 CTAs per SM, end to end
  // against one consumer with 2 stages (persistent), same call: S1024 0.182 / 0.188 ms (causal 0.141 /
  // 0.143), S4096 1.861 / 1.890 (causal 1.079 / 1.111), S16384 25.17 / 26.86 (causal 13.39 / 13.94);
  // 2 CTAs per SM lost causal (bench/results/2026-11-26-quant-fused-stats-h100.md, last section).
  if (pv == PvType::f16) return head_dim == 128 ? wgmma_tile(2, 3, true) : wgmma_single_tile(3);
  // The single-warpgroup form (H100, B4 S4096, kernel only, same call): D = 128 895 TOPS against 713
  // for two consumers with 4 stages (causal 788 / 635); D = 64 605 against 444 for one consumer
  // with a producer (causal 542 / 374); S1024 +30% / +40%
  // (bench/results/2026-11-26-wgmma-single-warpgroup-h100.md). D = 96 (H32): 689 against 591 for one
  // consumer with 2 stages (causal 639 / 512; S1024 503 / 422; S16384 746 / 610); 2 CTAs per SM the same
  // (bench/results/2026-11-26-wgmma-issue-cost-h100.md). D = 96 at 4 CTAs per SM (the kernel's lean
  // form, 128 registers) against 3, kernel only, same call, two rounds: S4096 1.079 / 1.096 against
  // 1.131 / 1.141 ms, causal 0.570 / 0.572 against 0.604 / 0.608, S1024 0.088 / 0.089 against 0.096 /
  // 0.094, S16384 16.89 / 16.91 against 17.46 / 17.75 (bench/results/2026-11-27-d96-four-ctas-h100.md).
  return wgmma_single_tile(head_dim == 128 ? 3 : 4);
}

bool can_fuse_q(const AttnSpec& s) {
  if (s.family != AttnFamily::wgmma || s.quant.qk != QuantType::int8) return false;
  // The warp-specialized kernel: measured faster with FP8 P·V (D 256 end to end, H100: 1k 0.2252 vs
  // 0.2322 ms, 4k 1.739 vs 1.806, 16k 22.9–23.0 vs 23.6–23.9) and slower with f16 P·V (D 128 2k
  // 0.581–0.586 vs 0.572–0.573, 4k 2.045 vs 2.002–2.013; D 256 4k 1.893–1.899 vs 1.826–1.835).
  return is_wgmma_single(s.tile) || is_wgmma_shared(s.tile) || s.quant.pv == PvType::fp8_e4m3;
}

bool wgmma_supports(const AttnSpec& s) {
  // int8 Q/K with FP8 or f16 P·V; two-term int8 (the precise mode) with f16 P·V.
  const bool quant = s.quant.qk == QuantType::int8 ? s.quant.pv == PvType::fp8_e4m3 || s.quant.pv == PvType::f16
                                                   : s.quant.qk == QuantType::int8x2 && s.quant.pv == PvType::f16;
  const bool dim = s.head_dim == 64 || s.head_dim == 96 || s.head_dim == 128 || s.head_dim == 256;
  return s.arch.number() == 90 && dim && quant && s.quant.granularity == layout::Granularity::per_thread &&
         !s.quant.smooth_q;
}

int AttnSpec::threads() const {
  if (family != AttnFamily::wgmma) return tile.threads();
  if (is_wgmma_shared(tile)) return kernels::kWgmmaSingleThreads * wgmma_warpgroups(tile);
  return is_wgmma_single(tile) ? kernels::kWgmmaSingleThreads
                               : kernels::attn_wgmma_threads(wgmma_warpgroups(tile));
}

int AttnSpec::shared_bytes() const {
  if (family == AttnFamily::wgmma) {
    if (is_wgmma_single(tile)) return kernels::attn_wgmma_single_smem_bytes(head_dim, quant.pv == PvType::f16);
    if (is_wgmma_shared(tile)) {
      return kernels::attn_wgmma_shared_smem_bytes(head_dim, wgmma_warpgroups(tile));
    }
    return kernels::attn_wgmma_smem_bytes(head_dim, wgmma_warpgroups(tile), tile.stages, quant.pv == PvType::f16,
                                          qk_terms(), tile.cta_k, quant.fused_q);
  }
  return kernels::attn_smem_bytes(head_dim, tile.cta_q, tile.cta_k, tile.stages, qk_storage_bits(quant.qk),
                                  quant.pv == PvType::fp8_e4m3, quant.smooth_q);
}

std::string AttnSpec::canonical_name() const {
  return fmt::format("attn.{}.d{}.{}.{}{}{}.{}.{}.{}{}.{}.{}", name(family), head_dim, sagejit::name(quant.qk),
                     sagejit::name(quant.granularity), quant.smooth_q ? ".smooth_q" : "",
                     quant.fused_q ? ".fused_q" : "", sagejit::name(quant.pv),
                     sagejit::name(mask), sagejit::name(out.dtype), out.lse ? ".lse" : "", arch.name(), tile.name());
}

std::uint64_t AttnSpec::hash() const { return fnv1a64(canonical_name()); }

void AttnSpec::validate() const {
  if (family == AttnFamily::wgmma) {
    if (!wgmma_supports(*this)) {
      throw InvalidArgument("family", fmt::format("wgmma needs sm_90a, head_dim 64, 96, 128 or 256, int8 QK with fp8 "
                                                  "or f16 P·V or int8x2 QK with f16 P·V, "
                                                  "per_thread scales and no Q smoothing (got {})",
                                                  canonical_name()));
    }
    if (quant.fused_q && !can_fuse_q(*this)) throw_fused_q_form();
    if (is_wgmma_single(tile)) return validate_wgmma_single();
    if (is_wgmma_shared(tile)) return validate_wgmma_shared();
    const int consumers = wgmma_warpgroups(tile);
    if ((tile.cta_q != 64 && tile.cta_q != 128) || (tile.cta_k != 64 && tile.cta_k != 128) ||
        tile != wgmma_tile(consumers, tile.stages, tile.persistent, tile.cta_k)) {
      throw InvalidArgument("tile", fmt::format("the wgmma kernel's tiles are 64x128w4 (one consumer warpgroup, "
                                                "min_ctas_per_sm 2) and 128x128w8 (two, min_ctas_per_sm 1), or "
                                                "the same with 64 keys per block; 64x128w4s1 is the "
                                                "single-warpgroup form and 192x128w12s4 its shared-ring form "
                                                "(got {})", tile.name()));
    }
    // Head dim 256: O holds 128 registers per thread, and the one-consumer launch budget (128
    // registers, what ptxas compiles for) cannot hold the m64n256 wgmma at all. FP8 P·V runs in
    // 64-channel parts beside O and holds 128-key blocks (2 stages); with 16-bit P·V (V blocks of twice
    // the bytes; two-term Q/K takes it too) two stages of 128 keys pass the shared memory, so S gets 64
    // keys.
    if (head_dim == 256 && tile.cta_k != 64 && quant.pv != PvType::fp8_e4m3) {
      throw InvalidArgument("tile.cta_k", fmt::format("must be 64 for wgmma at head_dim 256 with 16-bit P·V (got {})",
                                                      tile.cta_k));
    }
    if (head_dim == 256 && consumers != 2) {
      throw InvalidArgument("tile", fmt::format("wgmma at head_dim 256 needs two consumer warpgroups, 128x64w8, or "
                                                "128x128w8 with FP8 P·V (got {})", tile.name()));
    }
    if (tile.stages < 2 || tile.stages > 4) {
      throw InvalidArgument("tile.stages", fmt::format("must be 2, 3 or 4 for wgmma, or 1 for its single-warpgroup "
                                                       "form (got {})", tile.stages));
    }
    // Static shared memory: the barriers and the consumers' loop state.
    return check_wgmma_residency(kernels::attn_wgmma_static_smem_bytes(consumers));
  }
  // parse_arch maps "sm_90" to sm_90a: compare, so that a spec never names an arch it is not built for.
  if (parse_arch(arch.name(), "arch") != arch) {
    throw InvalidArgument("arch",
                          fmt::format("must be one of sm_80, sm_86, sm_89, sm_90a, sm_120 (got {})", arch.name()));
  }
  validate_head_dim(head_dim, "head_dim");
  if (quant.fused_q) throw_fused_q_form();

  // ---- quantization ----
  if (!is_qk_type(quant.qk)) {
    throw InvalidArgument("quant.qk", fmt::format("must be int8, int4 or int8x2 (got {})", sagejit::name(quant.qk)));
  }
  if (quant.qk == QuantType::int8x2 && quant.pv != PvType::f16) {
    throw InvalidArgument("quant.qk", "int8x2 (the precise mode's two-term Q Kᵀ) needs f16 P·V: with fp8 P·V the "
                                      "e4m3 rounding of P and V dominates the error and the second term buys nothing");
  }
  // int4 runs on every supported arch: on INT4 tensor cores on sm_80/86/89, emulated by ptxas on
  // sm_90a and sm_120 (Arch::int4_emulated), where it is an explicit choice for correctness checks.
  if (quant.qk == QuantType::int4) {
    if (!arch.runs_int4()) {
      throw InvalidArgument("quant.qk", fmt::format("int4 needs mma.sync s4: sm_80 or newer (got {})", arch.name()));
    }
    if (head_dim % 64 != 0) {
      throw InvalidArgument("quant.qk", fmt::format("int4 needs head_dim % 64 == 0 for its k64 MMA steps: 64, 128 "
                                                    "or 256 (got {})",
                                                    head_dim));
    }
  }
  if (quant.pv == PvType::fp8_e4m3 && !arch.has_fp8_mma()) {
    throw InvalidArgument("quant.pv",
                          fmt::format("fp8 P·V needs e4m3 MMA: sm_89 or newer (got {}; use f16)", arch.name()));
  }

  // ---- tiling ----
  const AttnTile& t = tile;
  if (t.cta_q < 16 || t.cta_q > kMaxCta || t.cta_q % 16 != 0) {
    throw InvalidArgument("tile.cta_q", fmt::format("must be a multiple of 16 in [16, {}] (got {})", kMaxCta, t.cta_q));
  }
  if (t.warps_q < 1 || t.cta_q % t.warps_q != 0 || (t.cta_q / t.warps_q) % 16 != 0) {
    std::string allowed;
    for (int w = 1; w <= t.cta_q / 16; ++w) {
      if ((t.cta_q / 16) % w == 0) allowed += allowed.empty() ? std::to_string(w) : ", " + std::to_string(w);
    }
    const std::string got = t.warps_q >= 1 && t.cta_q % t.warps_q == 0
                                ? fmt::format("{}, warp_q {}", t.warps_q, t.cta_q / t.warps_q)
                                : std::to_string(t.warps_q);
    throw InvalidArgument("tile.warps_q",
                          fmt::format("must be one of {} for cta_q {}: warp_q = cta_q / warps_q must be "
                                      "a multiple of 16 (got {})",
                                      allowed, t.cta_q, got));
  }
  const int k_multiple = quant.pv == PvType::fp8_e4m3 ? 32 : 16;
  if (t.cta_k < k_multiple || t.cta_k > kMaxCta || t.cta_k % k_multiple != 0) {
    throw InvalidArgument("tile.cta_k", fmt::format("must be a multiple of {} in [{}, {}] with {} P·V (got {})",
                                                    k_multiple, k_multiple, kMaxCta, sagejit::name(quant.pv), t.cta_k));
  }
  if (t.stages < kMinStages || t.stages > kMaxStages) {
    throw InvalidArgument("tile.stages", fmt::format("must be {} to {} (got {})", kMinStages, kMaxStages, t.stages));
  }
  // ΔS is computed by floor(threads / cta_k) threads per key, reduced with xor-shuffles.
  if (quant.smooth_q) {
    const int per_key = t.threads() >= t.cta_k ? t.threads() / t.cta_k : 1;
    if (!is_power_of_two(per_key) || per_key > 32) {
      throw InvalidArgument("quant.smooth_q",
                            fmt::format("needs threads / cta_k = {} / {} = {} threads per key to be a "
                                        "power of 2 (change tile.warps_q or tile.cta_k)",
                                        t.threads(), t.cta_k, per_key));
    }
  }
  const int limit = max_shared_bytes_per_block(arch);
  const int bytes = shared_bytes();
  if (bytes > limit) {
    throw InvalidArgument("tile",
                          fmt::format("{} needs {} bytes of shared memory (head_dim {}, {}, {} P·V{}); {} allows "
                                      "{} bytes per block: lower cta_k, cta_q or stages",
                                      t.name(), bytes, head_dim, sagejit::name(quant.qk), sagejit::name(quant.pv),
                                      quant.smooth_q ? ", smooth_q" : "", arch.name(), limit));
  }
  if (t.persistent) {
    throw InvalidArgument("tile.persistent", "only the wgmma kernel (family wgmma) has a persistent schedule");
  }
  if (t.min_ctas_per_sm < 1) {
    throw InvalidArgument("tile.min_ctas_per_sm", fmt::format("must be at least 1 (got {})", t.min_ctas_per_sm));
  }
  if (t.min_ctas_per_sm > 1) {
    const int threads = t.min_ctas_per_sm * t.threads();
    // The driver reserves 1 KiB per resident CTA; the SM holds limit + 1 KiB.
    const int smem = t.min_ctas_per_sm * (bytes + 1024);
    if (threads > max_threads_per_sm(arch) || smem > limit + 1024) {
      throw InvalidArgument(
          "tile.min_ctas_per_sm",
          fmt::format("{} CTAs cannot be resident on one {} SM: {} threads (at most {}) and {} bytes "
                      "of shared memory (at most {})",
                      t.min_ctas_per_sm, arch.name(), threads, max_threads_per_sm(arch), smem, limit + 1024));
    }
  }
}

void AttnSpec::validate_wgmma_single() const {
  // (wgmma_supports() has passed: sm_90a, head dim 64, 96, 128 or 256, per-thread scales, no Q smoothing.)
  if (quant.qk != QuantType::int8 || (quant.pv != PvType::fp8_e4m3 && quant.pv != PvType::f16)) {
    throw InvalidArgument("tile.stages", fmt::format("1 (the single-warpgroup wgmma kernel) needs int8 Q/K with fp8 "
                                                     "or f16 P·V (got {} with {} P·V)",
                                                     sagejit::name(quant.qk), sagejit::name(quant.pv)));
  }
  if (head_dim == 256 && quant.pv != PvType::fp8_e4m3) {
    throw InvalidArgument("quant.pv", fmt::format("the single-warpgroup wgmma kernel at head_dim 256 needs fp8 P·V "
                                                  "(got {})", sagejit::name(quant.pv)));
  }
  if (tile.min_ctas_per_sm < 2 || tile.min_ctas_per_sm > 4 || tile != wgmma_single_tile(tile.min_ctas_per_sm)) {
    throw InvalidArgument("tile", fmt::format("the single-warpgroup wgmma kernel's tiles are 64x128w4s1 with "
                                              "min_ctas_per_sm 2, 3 or 4, not persistent (got {})", tile.name()));
  }
  // min_ctas CTAs of 128 threads leave 65536 / (128 · min_ctas) registers a thread (2: 255, 3: 168,
  // 4: 128). What the kernel asks for, the most over masks (ptxas, NVRTC 13.0): FP8 P·V 128 at D = 64,
  // 128 at 96 (at 4 CTAs the kernel's lean form, with the loop's per-thread values in shared memory;
  // 144–147 in the register form, which it runs at 2 or 3), 166 at 128, up to 255 at 256 (O alone is
  // 128 registers; P·V in parts, FP8 only); f16 P·V (O accumulates in the wgmma, P̃ in 16-bit
  // fragments) 156, 168 (the causal variants fit 3 CTAs exactly) and 192. The compile test holds every
  // allowed count spill-free.
  const bool f16 = quant.pv == PvType::f16;
  const int need = f16 ? (head_dim == 64 ? 156 : head_dim == 96 ? 168 : 192)
                       : (head_dim == 256 ? 255 : head_dim == 128 ? 166 : 128);
  const int max_ctas = need <= 128 ? 4 : need <= 168 ? 3 : 2;
  if (tile.min_ctas_per_sm > max_ctas) {
    throw InvalidArgument("tile.min_ctas_per_sm",
                          fmt::format("the single-warpgroup wgmma kernel at head_dim {} with {} P·V needs about {} "
                                      "registers a thread: at most {} CTAs per SM (got {})",
                                      head_dim, sagejit::name(quant.pv), need, max_ctas, tile.min_ctas_per_sm));
  }
  check_wgmma_residency(kernels::kWgmmaSingleStaticSmem);
}

void AttnSpec::validate_wgmma_shared() const {
  // (wgmma_supports() has passed: sm_90a, head dim 64, 96, 128 or 256, per-thread scales, no Q smoothing.)
  const std::string form = fmt::format("the shared-ring wgmma tile {}", tile.name());
  if (tile != wgmma_shared_tile()) {
    throw InvalidArgument("tile", fmt::format("the shared-ring wgmma form's tile is {} ({} warpgroups, "
                                              "min_ctas_per_sm 1, not persistent; got {})",
                                              wgmma_shared_tile().name(), kWgmmaSharedWarpgroups, tile.name()));
  }
  if (quant.qk != QuantType::int8 || quant.pv != PvType::fp8_e4m3) {
    throw InvalidArgument(quant.qk != QuantType::int8 ? "quant.qk" : "quant.pv",
                          fmt::format("{} needs int8 Q/K with fp8 P·V (got {} with {} P·V)", form,
                                      sagejit::name(quant.qk), sagejit::name(quant.pv)));
  }
  if (head_dim != 128) {
    throw InvalidArgument("head_dim", fmt::format("{} runs head_dim 128 (got {})", form, head_dim));
  }
  // Three warpgroups of about 165 registers fill the register file (65536 / 384 = 170); one CTA per SM.
  check_wgmma_residency(kernels::kWgmmaSingleStaticSmem);
}

void AttnSpec::check_wgmma_residency(int static_bytes) const {
  // Each resident CTA also costs the 1 KiB the driver reserves, and the kernel's static shared
  // memory comes on top of the dynamic part.
  const int per_cta = shared_bytes() + static_bytes;
  const int per_sm = tile.min_ctas_per_sm * (per_cta + 1024);
  if (per_cta > max_shared_bytes_per_block(arch) || per_sm > max_shared_bytes_per_block(arch) + 1024) {
    throw InvalidArgument("tile", fmt::format("{} needs {} bytes of shared memory per CTA, {} for {} CTAs per SM; "
                                              "{} allows {} per SM",
                                              tile.name(), per_cta, per_sm, tile.min_ctas_per_sm, arch.name(),
                                              max_shared_bytes_per_block(arch) + 1024));
  }
}

GeneratedUnit AttnSpec::generate() const {
  validate();
  GeneratedUnit unit;
  unit.spec_name = canonical_name();
  unit.arch = arch;
  if (family == AttnFamily::wgmma && (is_wgmma_single(tile) || is_wgmma_shared(tile))) {
    unit.source = fmt::format(
        "// {} (generator {})\n"
        "#include \"attn_wgmma_single.cuh\"\n"
        "\n"
        "struct Config {{\n"
        "  static constexpr int head_dim = {};\n"
        "  static constexpr int mask = {};  // {}\n"
        "  static constexpr bool write_lse = {};\n"
        "  static constexpr bool out_bf16 = {};\n"
        "  static constexpr int min_ctas = {};\n"
        "  static constexpr bool pv_f16 = {};\n"
        "  static constexpr bool fused_q = {};\n"
        "  static constexpr int warpgroups = {};\n"
        "}};\n",
        unit.spec_name, kGeneratorVersion, head_dim, mask_code(mask), mask_meaning(mask), out.lse,
        out.dtype == DType::bf16, tile.min_ctas_per_sm, quant.pv == PvType::f16, quant.fused_q,
        is_wgmma_shared(tile) ? wgmma_warpgroups(tile) : 1);
    unit.name_expression = "&sagejit::kernels::attention_wgmma_single<Config>";
    return unit;
  }
  if (family == AttnFamily::wgmma) {
    unit.source = fmt::format(
        "// {} (generator {})\n"
        "#include \"attn_wgmma.cuh\"\n"
        "\n"
        "struct Config {{\n"
        "  static constexpr int head_dim = {};\n"
        "  static constexpr int consumers = {};\n"
        "  static constexpr int stages = {};\n"
        "  static constexpr int mask = {};  // {}\n"
        "  static constexpr bool write_lse = {};\n"
        "  static constexpr bool pingpong = false;\n"
        "  static constexpr bool persistent = {};\n"
        "  static constexpr bool out_bf16 = {};\n"
        "  static constexpr bool rowsum_mma = true;\n"
        "  static constexpr bool pv_f16 = {};\n"
        "  static constexpr int qk_terms = {};\n"
        "  static constexpr int cta_k = {};\n"
        "  static constexpr bool fused_q = {};\n"
        "}};\n",
        unit.spec_name, kGeneratorVersion, head_dim, wgmma_warpgroups(tile), tile.stages,
        mask_code(mask), mask_meaning(mask), out.lse, tile.persistent, out.dtype == DType::bf16,
        quant.pv == PvType::f16, qk_terms(), tile.cta_k, quant.fused_q);
    unit.name_expression = "&sagejit::kernels::attention_wgmma<Config>";
    return unit;
  }
  unit.source = fmt::format(
      "// {} (generator {})\n"
      "#include \"attn_mma.cuh\"\n"
      "\n"
      "struct Config {{\n"
      "  static constexpr int head_dim = {};\n"
      "  static constexpr int cta_q = {};\n"
      "  static constexpr int cta_k = {};\n"
      "  static constexpr int warps_q = {};\n"
      "  static constexpr int stages = {};\n"
      "  static constexpr int min_ctas_per_sm = {};\n"
      "  static constexpr int qk_bits = {};\n"
      "  static constexpr int qk_terms = {};\n"
      "  static constexpr sagejit::layout::Granularity granularity = {};\n"
      "  static constexpr bool pv_fp8 = {};\n"
      "  static constexpr int mask = {};  // {}\n"
      "  static constexpr bool out_bf16 = {};\n"
      "  static constexpr bool write_lse = {};\n"
      "  static constexpr bool smooth_q = {};\n"
      "}};\n",
      unit.spec_name, kGeneratorVersion, head_dim, tile.cta_q, tile.cta_k, tile.warps_q, tile.stages,
      tile.min_ctas_per_sm, qk_bits(), qk_terms(), granularity_enumerator(quant.granularity), quant.pv == PvType::fp8_e4m3,
      mask_code(mask), mask_meaning(mask), out.dtype == DType::bf16, out.lse, quant.smooth_q);
  unit.name_expression = "&sagejit::kernels::attention_mma<Config>";
  return unit;
}

AttnTile default_tile(const Arch& arch, int head_dim, PvType pv, QuantType qk) {
  validate_head_dim(head_dim, "head_dim");
  AttnTile t;
  switch (head_dim) {
    case 64:
      t = {128, 64, 4, 2};
      break;
    case 96:
      t = {128, 64, 8, 2};
      break;
    case 128:
      t = {128, 64, 8, 2};
      break;
    default:
      t = {64, 64, 4, 2};
      break;  // 256
  }
  // sm_90a, int8 QK with f16 P·V (the mma kernel's f16 path on Hopper, and what D = 96 and 256 run
  // there by default), measured with `sagejit tune` on the H200 (B4, 2026-11-26; bench/results/
  // 2026-11-26-precise-mode-h200.md): D = 128 with 128-key tiles in a 4-deep ring 5.0–9.3% faster than
  // 128x64w8s2 at S = 1k–16k, causal or not; D = 96 the same tile, 3.5% (4k) and 9.2% (16k causal);
  // D = 256 with 128 query rows over 8 warps 1.39–1.50x faster than 64x64w4s2 at 4k and 16k. Two-term
  // int8 (4k): D = 256 the same tile, 1.42x (1.34x causal); D = 128 keeps 128x64w8s2 (within 0.6% of
  // its best); D = 96 too (128x64w4s2 was 1.12x faster but spills in 56 of its 72 variants).
  if (arch.number() == 90 && pv == PvType::f16) {
    if (qk == QuantType::int8 && (head_dim == 96 || head_dim == 128)) t = {128, 128, 8, 4};
    if ((qk == QuantType::int8 || qk == QuantType::int8x2) && head_dim == 256) t = {128, 64, 8, 2};
  }
  const bool fp8 = pv == PvType::fp8_e4m3;
  const int min_k = fp8 ? 32 : 16;
  // Counted with Q smoothing on (its q̄ and ΔS buffers), so the tile fits every spec of this shape.
  const int qk_bits = qk_storage_bits(qk);
  auto bytes = [&] { return kernels::attn_smem_bytes(head_dim, t.cta_q, t.cta_k, t.stages, qk_bits, fp8, true); };
  while (bytes() > max_shared_bytes_per_block(arch) && t.cta_k > min_k) t.cta_k /= 2;
  // Emulated int4 (two IMMA.S8 and nibble unpacking per s4 MMA) costs registers. On sm_120, D = 256
  // with f16 P·V keeps cta_k 64 (int4's smaller K tile fits 99 KiB) and then spills in 22 of 36
  // variants (NVRTC 13.0); cta_k 32, the tile int8 gets there, spills in none. sm_90a's int4 tiles
  // are the int8 ones: 0 spills in all 216 f16-P·V variants (at most 255 registers, D = 64).
  if (qk_bits == 4 && arch.int4_emulated() && arch.number() != 90 && head_dim == 256 && !fp8) t.cta_k = 32;
  return t;
}

PvType default_pv_type(const Arch& arch, QuantType qk) {
  return qk == QuantType::int8x2 ? PvType::f16 : default_pv_type(arch);
}

PvType default_pv_type(const Arch& arch) {
  return arch.has_fp8_mma() && arch.number() != 90 ? PvType::fp8_e4m3 : PvType::f16;
}

std::vector<AttnSpec> representative_attn_specs(const Arch& arch) {
  std::vector<AttnSpec> specs;
  auto add = [&](AttnSpec s) {
    s.arch = arch;
    s.tile = default_tile(arch, s.head_dim, s.quant.pv, s.quant.qk);
    specs.push_back(s);
  };
  // The P·V types the arch runs on tensor cores: both on sm_89/sm_120, f16 elsewhere (sm_90a's FP8
  // mma.sync is emulated, so it is not worth CI time).
  std::vector<PvType> pvs = {default_pv_type(arch)};
  if (pvs.front() == PvType::fp8_e4m3) pvs.push_back(PvType::f16);
  for (PvType pv : pvs) {
    AttnSpec base;
    base.quant.pv = pv;
    for (int d : supported_head_dims()) {
      base.head_dim = d;
      add(base);
    }
    base.head_dim = 128;
    AttnSpec s = base;
    s.mask = Mask::causal_top_left;
    add(s);
    s = base;
    s.mask = Mask::causal_bottom_right;
    s.out.lse = true;
    add(s);
    s = base;
    s.out.dtype = DType::bf16;  // also the bf16 P·V MMA with f16 P·V
    add(s);
    s = base;
    s.quant.smooth_q = true;
    add(s);
    // D = 96: the non-power-of-two row length (odd smem chunks, non-exact copy loops) with a mask.
    s = base;
    s.head_dim = 96;
    s.mask = Mask::causal_top_left;
    s.out.lse = true;
    add(s);
    // D = 256 is the register-heaviest shape: every option that adds live registers at once.
    s = base;
    s.head_dim = 256;
    s.quant.smooth_q = true;
    s.mask = Mask::causal_bottom_right;
    s.out = {DType::bf16, true};
    add(s);
  }
  AttnSpec s;
  s.quant.pv = default_pv_type(arch);
  s.quant.granularity = layout::Granularity::per_warp;
  add(s);
  s.quant.granularity = layout::Granularity::per_block;
  add(s);
  if (arch.has_int4_mma()) {
    AttnSpec q4;
    q4.quant.qk = QuantType::int4;
    q4.quant.pv = default_pv_type(arch);
    for (int d : {64, 128}) {
      q4.head_dim = d;
      add(q4);
    }
    q4.quant.smooth_q = true;  // the nibble path of ΔS
    q4.mask = Mask::causal_top_left;
    add(q4);
  } else if (arch.number() == 90) {
    // Emulated int4 is not in sm_90a's full matrix, but the H100 is where its GPU checks run: CI
    // proves that one int4 kernel (f16 P·V, the arch's default) compiles there without spills.
    AttnSpec q4;
    q4.quant.qk = QuantType::int4;
    q4.quant.pv = default_pv_type(arch);
    add(q4);
  }
  // Two-term int8 Q Kᵀ (the precise mode, f16 P·V): the head dims with the fewest and the most
  // registers, the latter with every option that adds live registers (as above).
  {
    AttnSpec x2;
    x2.quant.qk = QuantType::int8x2;
    x2.quant.pv = PvType::f16;
    x2.head_dim = 64;
    add(x2);
    x2.head_dim = 128;
    add(x2);
    x2.head_dim = 256;
    x2.quant.smooth_q = true;
    x2.mask = Mask::causal_bottom_right;
    x2.out = {DType::bf16, true};
    add(x2);
  }
  // The sm_90a TMA + wgmma kernel: every head dim, with and without causal masking and LSE, FP8
  // and f16 P·V (the latter also with bf16 output, whose P and V are bf16); the single-warpgroup
  // tiles quantize Q themselves, as attention() runs them, and once more with Q quantized apart.
  if (arch.number() == 90) {
    for (PvType pv : {PvType::fp8_e4m3, PvType::f16}) {
      for (int d : {64, 96, 128, 256}) {
        for (Mask m : {Mask::none, Mask::causal_top_left}) {
          AttnSpec w;
          w.family = AttnFamily::wgmma;
          w.arch = arch;
          w.head_dim = d;
          w.quant.pv = pv;
          w.mask = m;
          w.out.lse = m != Mask::none;
          w.out.dtype = pv == PvType::f16 && m != Mask::none ? DType::bf16 : DType::f16;
          w.tile = wgmma_default_tile(d, pv);
          w.quant.fused_q = can_fuse_q(w);  // as attention() runs it
          specs.push_back(w);
        }
      }
    }
    // The single-warpgroup form with Q from the separate pass (AttentionOptions::fused_q = false).
    AttnSpec w;
    w.family = AttnFamily::wgmma;
    w.arch = arch;
    w.quant.pv = PvType::fp8_e4m3;
    w.tile = wgmma_default_tile(128, w.quant.pv);
    w.mask = Mask::causal_top_left;
    w.out.lse = true;
    specs.push_back(w);
    // Its shared-ring form (the default at D = 128 on long launches; autotune/problem.cpp): as
    // attention() runs it without a mask and causal, and with Q apart, an LSE and bf16 output.
    AttnSpec shared = w;
    shared.tile = wgmma_shared_tile();
    shared.out.lse = false;
    shared.quant.fused_q = true;
    for (Mask m : {Mask::none, Mask::causal_top_left}) {
      shared.mask = m;
      specs.push_back(shared);
    }
    shared.quant.fused_q = false;
    shared.out = {DType::bf16, true};
    for (Mask m : {Mask::none, Mask::causal_bottom_right}) {
      shared.mask = m;
      specs.push_back(shared);
    }
  }
  return specs;
}

std::vector<AttnSpec> full_attn_specs(const Arch& arch) {
  std::vector<AttnSpec> specs;
  std::vector<PvType> pvs = {PvType::f16};
  if (arch.has_fp8_mma()) pvs.insert(pvs.begin(), PvType::fp8_e4m3);
  for (int d : supported_head_dims()) {
    for (QuantType qk : {QuantType::int8, QuantType::int4, QuantType::int8x2}) {
      // Emulated int4 (sm_90a, sm_120) is valid but left out: it exists for correctness checks, not
      // to be shipped, and would grow `compile --all` by three head dims' worth of kernels.
      if (qk == QuantType::int4 && (!arch.has_int4_mma() || d % 64 != 0)) continue;
      for (layout::Granularity g :
           {layout::Granularity::per_thread, layout::Granularity::per_warp, layout::Granularity::per_block}) {
        for (bool smooth_q : {false, true}) {
          for (PvType pv : pvs) {
            if (qk == QuantType::int8x2 && pv != PvType::f16) continue;  // validate(): the precise mode
            for (Mask mask : {Mask::none, Mask::causal_top_left, Mask::causal_bottom_right}) {
              for (DType dtype : {DType::f16, DType::bf16}) {
                for (bool lse : {false, true}) {
                  AttnSpec s;
                  s.arch = arch;
                  s.head_dim = d;
                  s.quant = {qk, g, pv, smooth_q};
                  s.mask = mask;
                  s.out = {dtype, lse};
                  s.tile = default_tile(arch, d, pv, qk);
                  specs.push_back(s);
                }
              }
            }
          }
        }
      }
    }
  }
  return specs;
}

}  // namespace sagejit
