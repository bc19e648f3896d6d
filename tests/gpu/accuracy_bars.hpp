// accuracy_bars.hpp — the accuracy bars of the attention GPU tests (padded and varlen alike), per
// Q/K type, P·V mode, distribution and scale granularity.
#pragma once

#include "generator/attn_spec.hpp"
#include "reference/attention_check.hpp"

namespace sagejit::test {

// Accuracy bars, per P·V mode and distribution, set from the H100 run of 2026-11-25
// (bench/results/2026-11-25-attention-h100.md) with about 20% margin. FP8 P·V on normal, k_bias and
// sharp inputs meets issue 3's bar (cosine >= 0.999, relative L1 <= 0.04); on outliers it measures
// 0.045, as SageAttention does (0.036-0.046). FP16 P·V measures 0.010-0.012 on normal inputs, twice
// issue 3's 0.005: the INT8 QKᵀ error dominates there. LSE error is the score quantization error of
// each row's largest scores, so it scales with the scores (x8 for sharp attention).
struct Bars {
  double min_cosine, max_rel_l1, max_lse_error;
};

inline Bars int8_bars(Distribution d, bool fp8) {
  const bool heavy = d == Distribution::outliers || d == Distribution::sharp;
  if (fp8) return {0.999, heavy ? 0.054 : 0.04, heavy ? 0.85 : 0.03};
  return {0.9994, heavy ? 0.036 : 0.015, heavy ? 0.85 : 0.03};
}

// INT4 Q/K: a 4-bit step is 127/7 ≈ 18x an 8-bit one, and the score error dominates f16 P·V's error.
// A float64 model of the normal cases (int4 groups of 2 Q rows and 8 keys, as per_thread has at
// D = 128) predicted cosine 0.979-0.987, relative L1 0.17-0.20 and LSE error 0.08-0.32; measured on the
// H200 (emulated INT4, 2026-11-26): cosine 0.9806-0.9887, relative L1 0.159-0.198, LSE 0.07-0.42 (0.55
// at S = 4096 causal). Outliers and sharp attention are far worse: the 4-bit step of a group holding
// one outlier (or ×8 queries) swamps the other scores — outliers cosine 0.899, relative L1 0.533, LSE
// 2.7; sharp 0.860, 0.425, 5.3 (bench/attn_accuracy.py at S = 4096: 0.89-0.93 / 0.46-0.51 and
// 0.84-0.85 / 0.44-0.47). Bars about 25% outside those (1 − cosine and relative L1), LSE x1.3-1.5.
inline Bars int4_bars(Distribution d) {
  if (d == Distribution::outliers) return {0.87, 0.65, 4.0};
  if (d == Distribution::sharp) return {0.80, 0.6, 7.0};
  return {0.975, 0.25, 0.7};
}

// Two-term int8 Q/K with f16 P·V, the precise mode: issue 3's relative L1 bar of 0.005 on every
// distribution. Measured on the H200 (2026-11-26): 0.0002-0.0004 with fp16 output (0.0021 bf16), as
// close to float64 as fp16 SDPA (0.00018-0.00028). The LSE error is the largest score error of a
// row: up to 2e-4 on normal inputs, 0.0062 (test) and 0.014 (S = 4096) where a group holds an
// outlier (its step, and so the residual's, is ~30x coarser), 0.0027 sharp.
inline Bars int8x2_bars(Distribution d) {
  const bool heavy = d == Distribution::outliers || d == Distribution::sharp;
  return {0.99999, 0.005, heavy ? 0.03 : 0.001};
}

// The bars of one problem. One scale per 128-row block on outlier rows: measured cos 0.9970 / rel
// L1 0.0715 (H100, varlen and padded alike); the per-thread INT8 bars do not apply there.
inline Bars bars_for(Distribution d, bool fp8, QuantType qk, layout::Granularity g) {
  if (qk == QuantType::int4) return int4_bars(d);
  if (qk == QuantType::int8x2) return int8x2_bars(d);
  const bool heavy = d == Distribution::outliers || d == Distribution::sharp;
  if (heavy && g == layout::Granularity::per_block) return {0.996, 0.09, 0.85};
  return int8_bars(d, fp8);
}

}  // namespace sagejit::test
