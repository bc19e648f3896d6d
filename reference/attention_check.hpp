// attention_check.hpp — runs sagejit attention on the GPU over fresh random inputs and measures
// its error against the float64 host reference on the same (fp16/bf16-rounded) inputs.
//
// Outputs and LSE are poisoned (NaN) before the run; an unwritten element shows up as a NaN count.
// Used by the GPU tests. The distributions are shared/DESIGN.md §3's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sagejit/attention.hpp"

namespace sagejit {

enum class Distribution { normal, outliers, k_bias, sharp };
std::string_view name(Distribution d);

struct AttnCheckCase {
  DType dtype = DType::f16;
  Layout layout = Layout::hnd;
  int batch = 1, heads_q = 2, heads_kv = 2, seq_q = 128, seq_kv = 128, head_dim = 128;
  Distribution distribution = Distribution::normal;
  bool lse = true;
  AttentionOptions options;
  std::uint32_t seed = 1;
  std::string describe() const;
};

struct AttnCheckReport {
  double cosine = 0, rel_l1 = 0, rmse = 0;
  double lse_max_abs_error = 0;  // over rows with at least one visible key
  std::size_t unwritten = 0;     // NaN or non-finite outputs, LSE of rows with keys included
  bool fp8_pv = false;
  std::string spec;
};

AttnCheckReport run_attention_check(const AttnCheckCase& c);

// Varlen: packed inputs of these per-sequence lengths (lengths_q and lengths_kv of equal size, the
// number of sequences), in `layout` over the packed tensor ([total, H, D] for NHD, [H, total, D] for
// HND), rows `row_pad` elements further apart than dense. attention_varlen runs on them with
// max_seqlen = the longest length + max_slack; outputs, the packed LSE [Hq, total_q] and 64 floats
// after it are poisoned first. The reference is the float64 varlen attention on the same values.
struct AttnVarlenCheckCase {
  DType dtype = DType::f16;
  Layout layout = Layout::nhd;
  int row_pad = 0;  // a multiple of 8
  int heads_q = 2, heads_kv = 2, head_dim = 128;
  std::vector<int> lengths_q = {1, 17}, lengths_kv = {1, 17};
  int max_slack = 0;
  Distribution distribution = Distribution::normal;
  bool lse = true;
  AttentionOptions options;
  std::uint32_t seed = 1;
  std::string describe() const;
};

struct AttnVarlenCheckReport {
  AttnCheckReport all;                     // over every valid row of every sequence
  std::vector<AttnCheckReport> sequences;  // per sequence; one with no query rows has all zeros
  std::vector<std::size_t> rows;           // query rows x heads of each sequence (its sample size)
  // Poison left where it must be overwritten (outputs, LSE; counted in all.unwritten), or
  // overwritten where it must stay: row padding of out and the 64 floats after the LSE.
  std::size_t clobbered = 0;
  bool fp8_pv = false;
  std::string spec;
};

AttnVarlenCheckReport run_attention_varlen_check(const AttnVarlenCheckCase& c);

}  // namespace sagejit
