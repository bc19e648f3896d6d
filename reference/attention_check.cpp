// attention_check.cpp — GPU attention against the float64 reference.
#include "reference/attention_check.hpp"

#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>

#include "reference/attention_reference.hpp"
#include "reference/quant_reference.hpp"
#include "runtime/device.hpp"
#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"

namespace sagejit {
namespace {


// One tensor: its bits in the case's layout on the host, and its rounded values as doubles in
// [B, H, S, D] order for the reference.
struct Input {
  std::vector<std::uint16_t> bits;
  std::vector<double> values;
  TensorRef view;
};

Input make(const AttnCheckCase& c, int heads, int seq, char which, std::mt19937& rng) {
  const int B = c.batch, D = c.head_dim;
  Input in;
  in.view = TensorRef::contiguous(nullptr, c.dtype, c.layout, B, heads, seq, D);
  in.bits.assign(std::max<std::size_t>(1, std::size_t(B) * heads * seq * D), 0);
  in.values.assign(std::size_t(B) * heads * seq * D, 0.0);
  std::normal_distribution<float> normal(0.0f, 1.0f), outlier(0.0f, 10.0f), bias(0.0f, 5.0f);
  std::bernoulli_distribution rare(0.001);
  std::vector<float> channel_bias(D, 0.0f);
  if (c.distribution == Distribution::k_bias && which == 'k') {
    for (auto& b : channel_bias) b = bias(rng);
  }
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < heads; ++h)
      for (int s = 0; s < seq; ++s)
        for (int d = 0; d < D; ++d) {
          float x = normal(rng) + channel_bias[d];
          if (c.distribution == Distribution::outliers && rare(rng)) x += outlier(rng);
          if (c.distribution == Distribution::sharp && which == 'q') x *= 8.0f;
          const std::uint16_t bits = c.dtype == DType::f16 ? reference::float_to_f16(x) : reference::float_to_bf16(x);
          const TensorRef& t = in.view;
          in.bits[b * t.stride_b + h * t.stride_h + s * t.stride_s + d] = bits;
          in.values[((std::size_t(b) * heads + h) * seq + s) * D + d] =
              c.dtype == DType::f16 ? reference::f16_to_float(bits) : reference::bf16_to_float(bits);
        }
  return in;
}

}  // namespace

std::string_view name(Distribution d) {
  switch (d) {
    case Distribution::normal: return "normal";
    case Distribution::outliers: return "outliers";
    case Distribution::k_bias: return "k_bias";
    case Distribution::sharp: return "sharp";
  }
  return "?";
}

std::string AttnCheckCase::describe() const {
  return fmt::format("{} {} {} B={} Hq={} Hkv={} Sq={} Skv={} D={} qk={} mask={} pv={} smooth_q={} lse={}", name(distribution),
                     name(dtype), name(layout), batch, heads_q, heads_kv, seq_q, seq_kv, head_dim, name(options.qk), name(options.mask),
                     options.pv ? std::string(name(*options.pv)) : "default", int(options.smooth_q), int(lse));
}

AttnCheckReport run_attention_check(const AttnCheckCase& c) {
  ensure_current_context();
  std::mt19937 rng(c.seed);
  Input q = make(c, c.heads_q, c.seq_q, 'q', rng);
  Input k = make(c, c.heads_kv, c.seq_kv, 'k', rng);
  Input v = make(c, c.heads_kv, c.seq_kv, 'v', rng);
  const std::size_t out_elems = std::size_t(c.batch) * c.heads_q * c.seq_q * c.head_dim;
  DeviceBuffer dq(q.bits.size() * 2), dk(k.bits.size() * 2), dv(v.bits.size() * 2), dout(out_elems * 2 + 16),
      dlse(std::size_t(c.batch) * c.heads_q * c.seq_q * 4 + 16);
  SAGEJIT_CU(cuMemcpyHtoD, dq.ptr(), q.bits.data(), q.bits.size() * 2);
  SAGEJIT_CU(cuMemcpyHtoD, dk.ptr(), k.bits.data(), k.bits.size() * 2);
  SAGEJIT_CU(cuMemcpyHtoD, dv.ptr(), v.bits.data(), v.bits.size() * 2);
  q.view.data = dq.get(), k.view.data = dk.get(), v.view.data = dv.get();
  TensorRef out = TensorRef::contiguous(dout.get(), c.dtype, c.layout, c.batch, c.heads_q, c.seq_q, c.head_dim);
  SAGEJIT_CU(cuMemsetD8, dout.ptr(), 0xFF, out_elems * 2 + 16);  // NaN in fp16 and bf16
  SAGEJIT_CU(cuMemsetD8, dlse.ptr(), 0xFF, std::size_t(c.batch) * c.heads_q * c.seq_q * 4 + 16);
  float* lse = c.lse ? reinterpret_cast<float*>(dlse.ptr()) : nullptr;

  AttnCheckReport report;
  const AttnSpec spec = attention_spec(q.view, k.view, v.view, out, lse, c.options);
  report.spec = spec.canonical_name();
  report.fp8_pv = spec.quant.pv == PvType::fp8_e4m3;
  attention(q.view, k.view, v.view, out, lse, c.options, nullptr);
  SAGEJIT_CU(cuCtxSynchronize);

  std::vector<std::uint16_t> out_bits(out_elems);
  SAGEJIT_CU(cuMemcpyDtoH, out_bits.data(), dout.ptr(), out_elems * 2);
  std::vector<double> got(out_elems);
  for (int b = 0; b < c.batch; ++b)
    for (int h = 0; h < c.heads_q; ++h)
      for (int s = 0; s < c.seq_q; ++s)
        for (int d = 0; d < c.head_dim; ++d) {
          const std::uint16_t bits = out_bits[b * out.stride_b + h * out.stride_h + s * out.stride_s + d];
          const double x = c.dtype == DType::f16 ? reference::f16_to_float(bits) : reference::bf16_to_float(bits);
          report.unwritten += !std::isfinite(x);
          got[((std::size_t(b) * c.heads_q + h) * c.seq_q + s) * c.head_dim + d] = x;
        }

  reference::AttentionOptions ro;
  ro.sm_scale = c.options.sm_scale;
  ro.mask = static_cast<reference::AttentionMask>(static_cast<int>(c.options.mask));
  const reference::AttentionResult ref =
      reference::attention(q.values, k.values, v.values,
                           {c.batch, c.heads_q, c.heads_kv, c.seq_q, c.seq_kv, c.head_dim}, ro);
  const reference::ErrorMetrics m = reference::compare(got, ref.out);
  report.cosine = m.cosine, report.rel_l1 = m.rel_l1, report.rmse = m.rmse;
  if (c.lse) {
    std::vector<float> lse_got(ref.lse.size());
    SAGEJIT_CU(cuMemcpyDtoH, lse_got.data(), dlse.ptr(), lse_got.size() * 4);
    for (std::size_t i = 0; i < lse_got.size(); ++i) {
      if (std::isinf(ref.lse[i])) {  // no visible key: -inf expected
        report.unwritten += !(std::isinf(lse_got[i]) && lse_got[i] < 0);
        continue;
      }
      if (!std::isfinite(lse_got[i])) {
        ++report.unwritten;
        continue;
      }
      report.lse_max_abs_error = std::max(report.lse_max_abs_error, std::abs(lse_got[i] - ref.lse[i]));
    }
  }
  return report;
}

}  // namespace sagejit
