// problem.cpp — default spec, forced spec, buckets and the variant names of tuning records.
#include "autotune/problem.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <limits>

#include "runtime/error.hpp"

namespace sagejit {
namespace {

// Everything of the spec but family and tile, with the P·V type the mma family defaults to.
AttnSpec base_spec(const Problem& p) {
  AttnSpec s;
  s.arch = p.arch;
  s.head_dim = p.head_dim;
  s.quant.qk = p.qk;
  s.quant.granularity = p.granularity;
  s.quant.pv = p.pv.value_or(default_pv_type(p.arch, p.qk));
  s.quant.smooth_q = p.smooth_q;
  s.mask = p.mask;
  s.out.dtype = p.dtype;
  s.out.lse = p.lse;
  s.tile = default_tile(p.arch, p.head_dim, s.quant.pv, s.quant.qk);
  return s;
}

// Q quantized inside the attention kernel wherever the kernel does it (can_fuse_q), as attention()
// runs it by default (AttentionOptions::fused_q): the spec then names what runs.
AttnSpec with_default_fused_q(AttnSpec s) {
  s.quant.fused_q = can_fuse_q(s);
  return s;
}

// The wgmma form of the problem: FP8 P·V unless the caller chose f16 or two-term Q/K, which needs it
// (wgmma_supports says whether the rest of the spec fits).
AttnSpec wgmma_form(const Problem& p) {
  AttnSpec s = base_spec(p);
  s.family = AttnFamily::wgmma;
  s.quant.pv = p.pv.value_or(p.qk == QuantType::int8x2 ? PvType::f16 : PvType::fp8_e4m3);
  s.tile = wgmma_default_tile(p.head_dim, s.quant.pv, s.quant.qk);
  // INT8 Q/K at D = 128 up to 1k keys: the single form's tile that asks for 2 CTAs per SM, in two cases.
  // With f16 P·V: the warp-specialized kernel (Q from its pass) wins from S = 2k on, the single form
  // (2 CTAs per SM, Q quantized in the kernel) up to 1k (H100, end to end, same run: B4 H32 S1k 0.1895
  // vs 0.2043 ms, causal 0.1474 vs 0.1551; B1 H8 0.0380 vs 0.0428; S2k 0.6028 vs 0.5880, causal 0.3821
  // vs 0.3871; S4k 2.118 vs 2.015; bench/results/2026-11-26-fused-q-h100.md).
  // With FP8 P·V, without a mask or LSE (else the single form's 3 CTAs per SM, as from 1k keys on). That variant still compiles to 168 registers, so 3 CTAs fit as before (test_attn_wgmma_compiles
  // holds it there); what it gains is the schedule ptxas makes under the looser bound. H200, end to end,
  // both forced, same calls, each method warmed for half a second: B4 H32 1k +1.2…2.2% (four timings in
  // two calls), B1 H32 1k +1.6…4.5%, B4 H32 512 +3.5…8.7%, B2 H32 1k level, B8 H32 1k −0.7…+2.6%; above
  // 1k level or behind (B4 H32 1.5k −0.5%, 2k −0.3…−1.2%). Only Sq = Skv without GQA was timed, and the
  // B1 and 512-key gains sit inside spreads of 11–26%. With a causal mask or an LSE the same tile
  // takes 170 registers, hence 2 CTAs per SM: causal 1k measured 5–8% behind
  // (bench/results/2026-11-28-wave-cut-and-quantizer-bounds-h200.md §5). Same bits (GPU test).
  const bool pv_takes_two = s.quant.pv == PvType::f16 ||
                            (s.quant.pv == PvType::fp8_e4m3 && p.mask == Mask::none && !p.lse);
  if (p.head_dim == 128 && s.quant.qk == QuantType::int8 && p.seq_kv <= 1024 && pv_takes_two) {
    s.tile = wgmma_single_tile(2);
  }
  // INT8 + FP8 P·V at D = 128 with long keys: the shared-ring form (one CTA of three warpgroups per SM
  // sharing K/V copies; attn_wgmma_kv_ring.cuh), where its clock gain under the power cap outweighs
  // its exposed prologue and epilogue: launches that visit at least 2³¹ query-key pairs
  // (visible_pairs) from 4k keys on. H200, against the single form, same calls, two
  // rounds each, end to end (bench/results/2026-11-28-shared-ring-flat-h200.md). Without a mask, 2³¹
  // pairs and more won 4-11% (B4 H32 4k 791-798 against 751-762 TOPS, B1 H32 8k 848-856 against
  // 809-812, B2 H16 8k 855-856 against 809-812, B1 H16 16k +6%, B1 H8 32k +6%, B4 H32 8k +8%, 16k
  // +11%, 32k +9%); below, results were mixed (2³⁰: B2 H32 4k +3%, B1 H16 8k -3%) or losses (B1 H32
  // 4k -5…-8%, B4 H32 2k -5%, B1 H8 8k -6%, B1 H4 8k -10%). Causal, B4 H32: 8k +5…6% (about 2³² visible),
  // 16k +6…8%, 32k +8%, B1 H24 16k +6%, bottom-right B4 H32 2k × 12k +3.4% (about 2³¹·⁵ visible); level
  // at B4 H32 4k (about 2³⁰ visible), bottom-right B1 H32 2k × 32k (just under 2³¹) and +1…7% at B1 H32
  // 8k (2³⁰; left to the single form).
  // At least 2k queries: its CTAs take three q tiles of one (b, h), and a short Sq leaves warpgroups
  // idle (B4 H16 1k × 32k -1.4%, B4 H32 512 × 32k -1%, B4 H32 1k × 16k level). Not for varlen
  // batches, whose short sequences idle warpgroups as a short Sq does.
  // The last wave: at one CTA per SM, a partial last wave leaves whole SMs idle, where the single
  // form's three CTAs per SM rebalance; so the CTAs must use at least kSharedRingMinWaveUse of their
  // waves (wave_use). H200, same calls, two rounds, end to end: use 0.81-0.87 lost (B1 H2 40k -5%,
  // B1 H1 64k -2%, B1 H2 32k -1.3…-2%, B1 H8 16k -1.5%), 0.889 tied (B2 H32 2k × 16k), use 0.896-0.98
  // won (B1 H11 16k +1.9…2.9%, B1 H14 16k +4.5…5.3%, B1 H2 34944 +11.7…12.7%, B1 H10 16k +6.8…7.3%,
  // B1 H2 35712 +10.6…12.1%, B1 H13 16k +6.8…7.7%, B1 H1 48k +7%, B1 H4 24k +9.5%, B1 H12 16k +9.5%,
  // B1 H8 32k and B1 H16 16k +6%), however few the CTAs (B1 H1 48k: 256;
  // bench/results/2026-11-28-stale-max-and-wave-rule-h200.md §2, and
  // bench/results/2026-11-28-wave-cut-and-quantizer-bounds-h200.md §1 for 0.896-0.941). Parts with
  // other SM counts were not measured.
  // Causal launches whose CTAs differ in length (top-left, or bottom-right with Skv <= Sq: rows see
  // from none to all of the keys) need no such rule: their CTAs run longest first
  // (attn_wgmma_tile_lpt), so the last wave holds the shortest. At use 0.86 the shared form won there
  // too, end to end (causal B1 H4 32k and B1 H2 64k +3.5%, as at 0.97: B1 H6 32k +3.5%, B1 H3 48k
  // +4.7%; same file, §2; the single form's kernel-only timings spread 7-13% in that call). Bottom-right
  // with Skv well above Sq gives CTAs of nearly one length and keeps the rule (B1 H32 2k × 32k, use 0.89:
  // level; B1 H28 2k × 40k, 0.78: -6%; B1 H24 2k × 48k, 1.0: +8%).
  const AttnTile shared = wgmma_shared_tile();
  const std::int64_t shared_ctas = std::int64_t(p.batch) * p.heads_q * ((p.seq_q + shared.cta_q - 1) / shared.cta_q);
  const int sms = p.sm_count > 0 ? p.sm_count : kDefaultSmCount;
  const bool lengths_vary =
      p.mask == Mask::causal_top_left || (p.mask == Mask::causal_bottom_right && p.seq_kv <= p.seq_q);
  const bool waves_fit = lengths_vary || wave_use(shared_ctas, sms) >= kSharedRingMinWaveUse;
  if (p.head_dim == 128 && s.quant.qk == QuantType::int8 && s.quant.pv == PvType::fp8_e4m3 && !p.varlen &&
      p.seq_q >= kSharedRingMinSeqQ && p.seq_kv >= kSharedRingMinSeqKv && visible_pairs(p) >= kSharedRingMinPairs &&
      waves_fit) {
    s.tile = shared;
  }
  return with_default_fused_q(s);
}

}  // namespace

double wave_use(std::int64_t ctas, int sms) {
  if (ctas <= 0 || sms <= 0) return 0.0;
  const std::int64_t waves = (ctas + sms - 1) / sms;
  return static_cast<double>(ctas) / static_cast<double>(waves * sms);
}

std::int64_t visible_pairs(const Problem& p) {
  const std::int64_t sq = p.seq_q, skv = p.seq_kv, heads = std::int64_t(p.batch) * p.heads_q;
  if (p.mask == Mask::none) return heads * sq * skv;
  // Row r sees clamp(r + a, 0, Skv) keys, a = 1 + diag: rows below lo see none, rows from hi on all
  // Skv, the rows between r + a.
  const std::int64_t a = 1 + (p.mask == Mask::causal_bottom_right ? skv - sq : 0);
  const std::int64_t lo = std::clamp<std::int64_t>(1 - a, 0, sq), hi = std::clamp<std::int64_t>(skv - a, lo, sq);
  return heads * ((hi - lo) * a + (lo + hi - 1) * (hi - lo) / 2 + (sq - hi) * skv);
}

std::int64_t seq_bucket(std::int64_t seq) {
  if (seq <= 0) return 0;
  std::int64_t b = 1;
  while (b < seq) b <<= 1;
  return b;
}

std::string_view family_unfit(const Problem& p, AttnFamily family) {
  if (family != AttnFamily::wgmma) return {};
  // TMA needs non-empty tensors (an empty Q or K/V, output all zeros, stays on mma.sync).
  if (p.seq_q <= 0 || p.seq_kv <= 0) return "the wgmma kernel needs Sq > 0 and Skv > 0 (TMA)";
  return {};
}

AttnSpec default_spec(const Problem& p) {
  // On sm_90a the TMA + wgmma kernel (real FP8 tensor cores) serves every spec it supports.
  AttnSpec w = wgmma_form(p);
  if (wgmma_supports(w) && family_unfit(p, AttnFamily::wgmma).empty()) return w;
  return base_spec(p);
}

std::vector<AttnSpec> default_specs_any_device(const Problem& p) {
  // The SM count enters only through wave_use: one SM fills every wave (use 1), and more SMs than
  // any launch has CTAs leave its one wave nearly empty, so these two give both outcomes.
  Problem full = p, sparse = p;
  full.sm_count = 1;
  sparse.sm_count = std::numeric_limits<int>::max();
  std::vector<AttnSpec> specs{default_spec(full)};
  if (AttnSpec other = default_spec(sparse); other.canonical_name() != specs.front().canonical_name()) {
    specs.push_back(other);
  }
  return specs;
}

AttnSpec forced_spec(const Problem& p, std::optional<AttnFamily> family, std::optional<AttnTile> tile) {
  const AttnFamily f = family.value_or(tile ? AttnFamily::mma : default_spec(p).family);
  if (std::string_view why = family_unfit(p, f); !why.empty()) throw InvalidArgument("family", std::string(why));
  AttnSpec s = f == AttnFamily::wgmma ? wgmma_form(p) : base_spec(p);
  if (tile) s.tile = *tile;
  return with_default_fused_q(s);
}

AttnSpec with_variant(const Problem& p, AttnFamily family, const AttnTile& tile) {
  AttnSpec s = default_spec(p);
  s.family = family;
  s.tile = tile;
  return with_default_fused_q(s);
}

std::string bucket_name(const Problem& p) {
  const AttnSpec s = default_spec(p);
  return fmt::format("d{}.{}.{}{}.{}.{}.{}{}.gqa{}.sq{}.skv{}{}", s.head_dim, name(s.quant.qk),
                     name(s.quant.granularity), s.quant.smooth_q ? ".smooth_q" : "", name(s.quant.pv), name(s.mask),
                     name(s.out.dtype), s.out.lse ? ".lse" : "", p.gqa_ratio(), seq_bucket(p.seq_q),
                     seq_bucket(p.seq_kv), p.varlen ? ".varlen" : "");
}

BucketKey bucket_key(const Problem& p) {
  const AttnSpec s = default_spec(p);
  return {s.arch.number(),
          s.head_dim,
          static_cast<std::int64_t>(s.quant.qk),
          static_cast<std::int64_t>(s.quant.granularity),
          s.quant.smooth_q,
          static_cast<std::int64_t>(s.quant.pv),
          static_cast<std::int64_t>(s.mask),
          static_cast<std::int64_t>(s.out.dtype),
          s.out.lse,
          p.gqa_ratio(),
          seq_bucket(p.seq_q),
          seq_bucket(p.seq_kv),
          static_cast<std::int64_t>(s.family),
          p.varlen};
}

AttnFamily parse_family(std::string_view text, std::string_view argument) {
  if (text == "mma") return AttnFamily::mma;
  if (text == "wgmma") return AttnFamily::wgmma;
  throw InvalidArgument(std::string(argument), fmt::format("must be mma or wgmma (got '{}')", text));
}

AttnTile parse_tile_name(std::string_view text, std::string_view argument) {
  AttnTile t;
  const std::string s(text);
  int used = 0;
  const bool base = std::sscanf(s.c_str(), "t%dx%dw%ds%d%n", &t.cta_q, &t.cta_k, &t.warps_q, &t.stages, &used) == 4;
  bool ok = base && used > 0;
  if (ok && !s.empty() && s.back() == 'p') t.persistent = true;
  const std::size_t end = s.size() - (t.persistent ? 1 : 0);
  if (ok && static_cast<std::size_t>(used) < end) {
    int more = 0;
    ok = std::sscanf(s.c_str() + used, "c%d%n", &t.min_ctas_per_sm, &more) == 1 &&
         static_cast<std::size_t>(used + more) == end && t.min_ctas_per_sm != 1;
  }
  if (!ok || t.name() != s) {
    throw InvalidArgument(std::string(argument),
                          fmt::format("must read tCTA_QxCTA_KwWARPSsSTAGES[cMIN_CTAS][p], e.g. t128x64w8s2 or "
                                      "t128x128w8s4p (got '{}')", text));
  }
  return t;
}

}  // namespace sagejit
