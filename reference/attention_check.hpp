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

}  // namespace sagejit
