// problem.hpp — an attention problem as the kernel choice sees it: what the spec depends on, plus
// the shapes, bucketed so that one tuning record serves nearby shapes.
//
// Owns three things the runtime and the tuner must agree on, so they live in one place:
//   - the heuristic default spec of a problem (default_spec): the sm_90a wgmma kernel where it
//     supports the problem, else the mma.sync kernel with default_tile();
//   - the problem bucket (bucket_name, bucket_key): head dim, Q/K type, scale granularity, Q
//     smoothing, P·V type, mask, dtype, LSE, GQA ratio, Sq/Skv rounded up to powers of two, varlen;
//   - the spec a caller forces through AttentionOptions::family / ::tile (forced_spec).
// How it fails: problem_of() throws InvalidArgument naming the tensor field (head dim, GQA ratio);
// everything else is pure and cannot fail.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "generator/attn_spec.hpp"

namespace sagejit {

struct Problem {
  Arch arch{9, 0, true};
  int batch = 1;
  int heads_q = 1;
  int heads_kv = 1;
  std::int64_t seq_q = 0;
  std::int64_t seq_kv = 0;
  int head_dim = 128;
  DType dtype = DType::f16;
  Mask mask = Mask::none;
  QuantType qk = QuantType::int8;
  std::optional<PvType> pv;  // unset: the default of the family that runs (fp8 for wgmma)
  layout::Granularity granularity = layout::Granularity::per_thread;
  bool smooth_q = false;
  bool smooth_k = true;
  bool lse = false;
  // A packed variable-length batch (attention_varlen): seq_q and seq_kv are then the longest
  // sequences, and the wgmma kernel is not used.
  bool varlen = false;
  // The device's SMs, for the default's wave rule (0: unknown, taken as kDefaultSmCount).
  int sm_count = 0;

  int gqa_ratio() const { return heads_kv > 0 ? heads_q / heads_kv : 0; }
};

// The query-key pairs p's mask leaves visible, over all batches and query heads: B·H·Sq·Skv without a
// mask; with a causal one, row r sees min(r + 1 + diag, Skv) keys (none below 0; diag = Skv − Sq
// bottom-right, 0 top-left).
std::int64_t visible_pairs(const Problem& p);

// Sq or Skv rounded up to a power of two (0 stays 0): 1000 → 1024, 1024 → 1024, 1025 → 2048.
std::int64_t seq_bucket(std::int64_t seq);

// Why `family` cannot run problem `p` whatever its tile (empty when it can): the wgmma kernel needs
// non-empty Q and K/V and a padded batch. A view of a literal: the hot path allocates nothing.
std::string_view family_unfit(const Problem& p, AttnFamily family);

// The share of its waves a launch of `ctas` CTAs keeps busy on `sms` SMs at one CTA per SM:
// ctas / (sms · ⌈ctas / sms⌉), in (0, 1]; 0 when ctas or sms is not positive. 264 CTAs on 132 SMs
// give 1, 688 give 5.21 / 6 = 0.87 (their last wave is 21% full).
double wave_use(std::int64_t ctas, int sms);

// The spec attention() runs when nothing is tuned and the caller fixed neither family nor tile.
// On sm_90a with INT8 Q/K, FP8 P·V and head dim 128, that is the shared-ring form
// (wgmma_shared_tile()) from kSharedRingMinSeqQ queries and kSharedRingMinSeqKv keys on, where the
// launch has at least kSharedRingMinPairs visible query-key pairs (visible_pairs), its one-per-SM
// CTAs use at least kSharedRingMinWaveUse of their waves (wave_use on p.sm_count SMs; not asked of
// causal launches whose CTAs differ in length, top-left or bottom-right with Skv <= Sq, which run
// longest first), and the batch is not varlen; the single-warpgroup form otherwise. Up to 1k keys at
// D = 128 that form takes the tile that asks for 2 CTAs per SM (wgmma_single_tile(2)) with f16 P·V,
// and with FP8 P·V where there is no mask and no LSE (where it still fits 3); 3 elsewhere.
constexpr std::int64_t kSharedRingMinSeqQ = 2048, kSharedRingMinSeqKv = 4096;
constexpr std::int64_t kSharedRingMinPairs = std::int64_t{1} << 31;
constexpr double kSharedRingMinWaveUse = 0.89;
constexpr int kDefaultSmCount = 132;  // the H100 SXM's and H200's; the default was measured on the H200
AttnSpec default_spec(const Problem& p);

// The specs default_spec(p) gives on a device of any SM count: what an offline export must hold for
// p, as p.sm_count is then unknown. Two (both D 128 forms) for every shape under the wave rule that
// the shared-ring form may serve, since that rule can go either way; one otherwise.
std::vector<AttnSpec> default_specs_any_device(const Problem& p);

// The spec for a caller-fixed family and/or tile: a tile alone means the mma family (as before
// the family option existed); a family alone takes that family's default tile. Throws
// InvalidArgument("family") when family_unfit says so.
AttnSpec forced_spec(const Problem& p, std::optional<AttnFamily> family, std::optional<AttnTile> tile);

// default_spec(p) with `family` and `tile` in place of the heuristic's: what a tuning record or a
// candidate of the search turns into. The quantization (P·V type included) stays the default's, so a
// tuned variant never changes the numerics the caller asked for.
AttnSpec with_variant(const Problem& p, AttnFamily family, const AttnTile& tile);

// "d128.int8.per_thread.fp8.causal.f16.gqa4.sq4096.skv4096" (".smooth_q" after the granularity,
// ".lse" after the dtype and ".varlen" at the end when on): the key of tuning records. The P·V type is the default spec's.
std::string bucket_name(const Problem& p);

// The same bucket as plain integers, for the runtime's in-process memo (no string, no allocation).
using BucketKey = std::array<std::int64_t, 14>;
BucketKey bucket_key(const Problem& p);

// Parses a family name ("mma", "wgmma") and a tile name ("t128x64w8s2", "t64x128w4s3c2"), as written
// in tuning records and bundles. Throw InvalidArgument naming `argument`.
AttnFamily parse_family(std::string_view text, std::string_view argument = "family");
AttnTile parse_tile_name(std::string_view text, std::string_view argument = "tile");

}  // namespace sagejit
