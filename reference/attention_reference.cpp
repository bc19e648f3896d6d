// attention_reference.cpp — see attention_reference.hpp. Straightforward two-pass softmax in
// float64 per query row; speed is irrelevant (tests use small shapes), clarity is the point.
#include "reference/attention_reference.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

namespace sagejit::reference {
namespace {

void check(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("attention reference: " + what);
}

std::vector<int> lengths_of(const std::vector<int>& cu, int batch, int max_len, const char* name) {
  std::vector<int> len(static_cast<std::size_t>(batch), max_len);
  if (cu.empty()) return len;
  check(cu.size() == static_cast<std::size_t>(batch) + 1,
        std::string(name) + " must have batch + 1 = " + std::to_string(batch + 1) +
            " entries, has " + std::to_string(cu.size()));
  for (int b = 0; b < batch; ++b) {
    const int l = cu[b + 1] - cu[b];
    check(l >= 0 && l <= max_len, std::string(name) + ": sequence " + std::to_string(b) +
                                      " has length " + std::to_string(l) + ", outside [0, " +
                                      std::to_string(max_len) + "]");
    len[b] = l;
  }
  return len;
}

}  // namespace

AttentionResult attention(std::span<const double> q, std::span<const double> k,
                          std::span<const double> v, const AttentionShape& s,
                          const AttentionOptions& opt) {
  check(s.batch > 0 && s.heads_q > 0 && s.heads_kv > 0 && s.seq_q > 0 && s.seq_kv > 0 &&
            s.head_dim > 0,
        "every dimension must be positive");
  check(s.heads_q % s.heads_kv == 0, "heads_q (" + std::to_string(s.heads_q) +
                                         ") must be a multiple of heads_kv (" +
                                         std::to_string(s.heads_kv) + ")");
  const std::size_t D = static_cast<std::size_t>(s.head_dim);
  const std::size_t nq = static_cast<std::size_t>(s.batch) * s.heads_q * s.seq_q;
  const std::size_t nkv = static_cast<std::size_t>(s.batch) * s.heads_kv * s.seq_kv;
  check(q.size() == nq * D, "q has " + std::to_string(q.size()) + " elements, expected " +
                                std::to_string(nq * D));
  check(k.size() == nkv * D, "k has " + std::to_string(k.size()) + " elements, expected " +
                                 std::to_string(nkv * D));
  check(v.size() == nkv * D, "v has " + std::to_string(v.size()) + " elements, expected " +
                                 std::to_string(nkv * D));
  check(opt.cu_seqlens_q.empty() == opt.cu_seqlens_k.empty(),
        "cu_seqlens_q and cu_seqlens_k must both be given or both be empty");
  const std::vector<int> len_q = lengths_of(opt.cu_seqlens_q, s.batch, s.seq_q, "cu_seqlens_q");
  const std::vector<int> len_k = lengths_of(opt.cu_seqlens_k, s.batch, s.seq_kv, "cu_seqlens_k");

  const double scale = opt.sm_scale > 0.0 ? opt.sm_scale : 1.0 / std::sqrt(static_cast<double>(D));
  const double neg_inf = -std::numeric_limits<double>::infinity();
  const int group = s.heads_q / s.heads_kv;

  AttentionResult r;
  r.out.assign(nq * D, 0.0);
  r.lse.assign(nq, neg_inf);
  std::vector<double> scores(static_cast<std::size_t>(s.seq_kv));

  for (int b = 0; b < s.batch; ++b) {
    const int sq = len_q[b], skv = len_k[b];
    for (int h = 0; h < s.heads_q; ++h) {
      const int hk = h / group;
      const std::size_t kv_base = (static_cast<std::size_t>(b) * s.heads_kv + hk) * s.seq_kv;
      for (int i = 0; i < sq; ++i) {
        // Keys visible to row i: j < last.
        int last = skv;
        if (opt.mask == AttentionMask::causal_top_left) last = std::min(skv, i + 1);
        if (opt.mask == AttentionMask::causal_bottom_right) last = std::min(skv, i + 1 + skv - sq);
        const std::size_t row = (static_cast<std::size_t>(b) * s.heads_q + h) * s.seq_q + i;
        if (last <= 0) continue;  // no visible key: O = 0, LSE = −inf (already set)

        const double* qi = q.data() + row * D;
        double m = neg_inf;
        for (int j = 0; j < last; ++j) {
          const double* kj = k.data() + (kv_base + j) * D;
          double dot = 0.0;
          for (std::size_t d = 0; d < D; ++d) dot += qi[d] * kj[d];
          scores[j] = dot * scale;
          m = std::max(m, scores[j]);
        }
        double l = 0.0;
        double* oi = r.out.data() + row * D;
        for (int j = 0; j < last; ++j) {
          const double p = std::exp(scores[j] - m);
          l += p;
          const double* vj = v.data() + (kv_base + j) * D;
          for (std::size_t d = 0; d < D; ++d) oi[d] += p * vj[d];
        }
        for (std::size_t d = 0; d < D; ++d) oi[d] /= l;
        r.lse[row] = m + std::log(l);
      }
    }
  }
  return r;
}

AttentionResult attention(std::span<const float> q, std::span<const float> k,
                          std::span<const float> v, const AttentionShape& shape,
                          const AttentionOptions& options) {
  const std::vector<double> qd(q.begin(), q.end()), kd(k.begin(), k.end()), vd(v.begin(), v.end());
  return attention(std::span<const double>(qd), std::span<const double>(kd),
                   std::span<const double>(vd), shape, options);
}

ErrorMetrics compare(std::span<const double> out, std::span<const double> ref) {
  check(out.size() == ref.size(), "compare: sizes differ (" + std::to_string(out.size()) +
                                      " vs " + std::to_string(ref.size()) + ")");
  double dot = 0.0, oo = 0.0, rr = 0.0, l1 = 0.0, ref_l1 = 0.0, sq = 0.0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const double o = out[i], r = ref[i], e = o - r;
    dot += o * r;
    oo += o * o;
    rr += r * r;
    l1 += std::abs(e);
    ref_l1 += std::abs(r);
    sq += e * e;
  }
  ErrorMetrics m;
  if (oo == 0.0 && rr == 0.0) {
    m.cosine = 1.0;
  } else if (oo == 0.0 || rr == 0.0) {
    m.cosine = 0.0;
  } else {
    m.cosine = dot / (std::sqrt(oo) * std::sqrt(rr));
  }
  if (ref_l1 == 0.0) {
    m.rel_l1 = l1 == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  } else {
    m.rel_l1 = l1 / ref_l1;
  }
  m.rmse = out.empty() ? 0.0 : std::sqrt(sq / static_cast<double>(out.size()));
  if (std::isnan(dot + oo + l1 + sq)) {  // a NaN in `out` poisons every metric
    const double nan = std::numeric_limits<double>::quiet_NaN();
    m = ErrorMetrics{nan, nan, nan};
  }
  return m;
}

ErrorMetrics compare(std::span<const float> out, std::span<const double> ref) {
  const std::vector<double> od(out.begin(), out.end());
  return compare(std::span<const double>(od), ref);
}

}  // namespace sagejit::reference
