// attention_reference.hpp — float64 attention on the host, the ground truth every sagejit kernel is
// measured against (DESIGN.md §3), and the three error metrics we report.
//
// attention() computes O = softmax(Q Kᵀ · sm_scale) V and the natural-log LSE of each query row,
// exactly as the kernels define them: grouped-query attention (kv head = q head / (Hq / Hkv)),
// causal masks aligned top-left (query i sees keys j <= i) or bottom-right (j <= i + Skv − Sq), and
// optional per-sequence lengths. A row that sees no key has output 0 and LSE −inf (never NaN).
// Invalid shapes throw std::invalid_argument with the offending values; nothing else fails.
//
// Layouts (all contiguous, row-major): Q [B, Hq, Sq, D], K and V [B, Hkv, Skv, D], O [B, Hq, Sq, D],
// LSE [B, Hq, Sq]. With varlen, Sq and Skv are the longest lengths, sequence b occupies rows
// [0, len_b) of its batch slot, and rows past len_b are ignored on input and written as O = 0,
// LSE = −inf on output (the test copies packed GPU tensors into this padded form).
#pragma once

#include <span>
#include <vector>

namespace sagejit::reference {

enum class AttentionMask : int { none = 0, causal_top_left = 1, causal_bottom_right = 2 };

struct AttentionShape {
  int batch = 1;
  int heads_q = 1;
  int heads_kv = 1;  // divides heads_q
  int seq_q = 1;
  int seq_kv = 1;
  int head_dim = 1;
};

struct AttentionOptions {
  double sm_scale = 0.0;  // <= 0: 1 / sqrt(head_dim)
  AttentionMask mask = AttentionMask::none;
  // Empty, or B + 1 prefix sums of the per-sequence lengths (cu_seqlens_q[B] <= B·Sq is not
  // required; each length must be <= Sq, resp. Skv).
  std::vector<int> cu_seqlens_q;
  std::vector<int> cu_seqlens_k;
};

struct AttentionResult {
  std::vector<double> out;  // [B, Hq, Sq, D]
  std::vector<double> lse;  // [B, Hq, Sq], natural log
};

AttentionResult attention(std::span<const double> q, std::span<const double> k,
                          std::span<const double> v, const AttentionShape& shape,
                          const AttentionOptions& options);
// The same on float inputs (widened to double first).
AttentionResult attention(std::span<const float> q, std::span<const float> k,
                          std::span<const float> v, const AttentionShape& shape,
                          const AttentionOptions& options);

// Error of `out` against `ref` (same length), as SageAttention and FlashAttention-3 report it:
//   cosine similarity  Σ o·r / (‖o‖ ‖r‖)   (1 when both are all zero, 0 when exactly one is)
//   relative L1        Σ|o − r| / Σ|r|     (0 when both are all zero, +inf when only r is)
//   RMSE               sqrt(Σ (o − r)² / n)
// A NaN anywhere in `out` makes every metric NaN, so it can never pass a threshold.
struct ErrorMetrics {
  double cosine = 0.0;
  double rel_l1 = 0.0;
  double rmse = 0.0;
};

ErrorMetrics compare(std::span<const double> out, std::span<const double> ref);
ErrorMetrics compare(std::span<const float> out, std::span<const double> ref);

}  // namespace sagejit::reference
