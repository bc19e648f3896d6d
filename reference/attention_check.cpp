// attention_check.cpp — GPU attention against the float64 reference.
#include "reference/attention_check.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "reference/attention_reference.hpp"
#include "reference/device_inputs.hpp"
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

// Values of the DESIGN.md §3 distribution `dist` for tensor `which` ('q', 'k' or 'v'), rounded to
// `dtype`: each call returns the stored bits and the value they hold. A k_bias K draws its
// per-channel bias on construction; draws happen in the same order for padded and packed inputs.
class Sampler {
 public:
  Sampler(Distribution dist, DType dtype, int head_dim, char which, std::mt19937& rng)
      : dist_(dist), dtype_(dtype), which_(which), rng_(rng), channel_bias_(head_dim, 0.0f) {
    if (dist_ == Distribution::k_bias && which_ == 'k') {
      for (auto& b : channel_bias_) b = bias_(rng_);
    }
  }
  std::pair<std::uint16_t, double> operator()(int channel) {
    float x = normal_(rng_) + channel_bias_[channel];
    if (dist_ == Distribution::outliers && rare_(rng_)) x += outlier_(rng_);
    if (dist_ == Distribution::sharp && which_ == 'q') x *= 8.0f;
    const std::uint16_t bits = dtype_ == DType::f16 ? reference::float_to_f16(x) : reference::float_to_bf16(x);
    return {bits, dtype_ == DType::f16 ? reference::f16_to_float(bits) : reference::bf16_to_float(bits)};
  }

 private:
  Distribution dist_;
  DType dtype_;
  char which_;
  std::mt19937& rng_;
  std::normal_distribution<float> normal_{0.0f, 1.0f}, outlier_{0.0f, 10.0f}, bias_{0.0f, 5.0f};
  std::bernoulli_distribution rare_{0.001};
  std::vector<float> channel_bias_;
};

Input make(const AttnCheckCase& c, int heads, int seq, char which, std::mt19937& rng) {
  const int B = c.batch, D = c.head_dim;
  Input in;
  in.view = TensorRef::contiguous(nullptr, c.dtype, c.layout, B, heads, seq, D);
  in.bits.assign(std::max<std::size_t>(1, std::size_t(B) * heads * seq * D), 0);
  in.values.assign(std::size_t(B) * heads * seq * D, 0.0);
  Sampler sample(c.distribution, c.dtype, D, which, rng);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < heads; ++h)
      for (int s = 0; s < seq; ++s)
        for (int d = 0; d < D; ++d) {
          const auto [bits, value] = sample(d);
          const TensorRef& t = in.view;
          in.bits[b * t.stride_b + h * t.stride_h + s * t.stride_s + d] = bits;
          in.values[((std::size_t(b) * heads + h) * seq + s) * D + d] = value;
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
  const DeviceQKV inputs(q, k, v);
  DeviceBuffer dout(out_elems * 2 + 16), dlse(std::size_t(c.batch) * c.heads_q * c.seq_q * 4 + 16);
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

// ---------------------------------------------------------------------------------------------
// Varlen

namespace {

// One packed tensor [1, H, total, D] in the case's layout: its bits on the host (gaps between rows
// hold NaN, which must never be read), and its rounded values in the reference's padded
// [B, H, max_len, D] order (rows past a sequence's length 0, ignored by the reference).
struct PackedInput {
  std::vector<std::uint16_t> bits;
  std::vector<double> padded;
  TensorRef view;
};

TensorRef packed_view(const AttnVarlenCheckCase& c, int heads, int total) {
  TensorRef t;
  t.dtype = c.dtype, t.batch = 1, t.heads = heads, t.seq = total, t.dim = c.head_dim;
  if (c.layout == Layout::nhd) {  // [total, H, D]
    t.stride_h = c.head_dim, t.stride_s = std::int64_t(heads) * c.head_dim + c.row_pad;
    t.stride_b = std::int64_t(total) * t.stride_s;
  } else {  // [H, total, D]
    t.stride_s = c.head_dim + c.row_pad, t.stride_h = std::int64_t(total) * t.stride_s;
    t.stride_b = heads * t.stride_h;
  }
  return t;
}

PackedInput make_packed(const AttnVarlenCheckCase& c, int heads, const std::vector<int>& cu, int max_len, char which,
                        std::mt19937& rng) {
  const int B = static_cast<int>(cu.size()) - 1, D = c.head_dim;
  PackedInput in;
  in.view = packed_view(c, heads, cu[B]);
  in.bits.assign(std::max<std::int64_t>(1, in.view.stride_b), 0x7e00);
  in.padded.assign(std::size_t(B) * heads * max_len * D, 0.0);
  Sampler sample(c.distribution, c.dtype, D, which, rng);
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < cu[b + 1] - cu[b]; ++i)
      for (int h = 0; h < heads; ++h)
        for (int d = 0; d < D; ++d) {
          const auto [bits, value] = sample(d);
          in.bits[(cu[b] + i) * in.view.stride_s + h * in.view.stride_h + d] = bits;
          in.padded[((std::size_t(b) * heads + h) * max_len + i) * D + d] = value;
        }
  return in;
}

}  // namespace

std::string AttnVarlenCheckCase::describe() const {
  return fmt::format("varlen {} {} {}{} Hq={} Hkv={} D={} Sq={} Skv={} slack={} qk={} mask={} pv={} smooth_q={} lse={}",
                     name(distribution), name(dtype), name(layout), row_pad ? "+pad" : "", heads_q, heads_kv, head_dim,
                     fmt::join(lengths_q, ","), fmt::join(lengths_kv, ","), max_slack, name(options.qk),
                     name(options.mask), options.pv ? std::string(name(*options.pv)) : "default", int(options.smooth_q),
                     int(lse));
}

AttnVarlenCheckReport run_attention_varlen_check(const AttnVarlenCheckCase& c) {
  if (c.lengths_q.size() != c.lengths_kv.size()) {
    throw std::invalid_argument("AttnVarlenCheckCase: lengths_q and lengths_kv must have one entry per sequence each");
  }
  ensure_current_context();
  const int B = static_cast<int>(c.lengths_q.size()), Hq = c.heads_q, Hkv = c.heads_kv, D = c.head_dim;
  const std::vector<int> cu_q = offsets_of(c.lengths_q), cu_k = offsets_of(c.lengths_kv);
  const int total_q = cu_q[B];
  const int max_q = (B ? *std::max_element(c.lengths_q.begin(), c.lengths_q.end()) : 0) + c.max_slack;
  const int max_k = (B ? *std::max_element(c.lengths_kv.begin(), c.lengths_kv.end()) : 0) + c.max_slack;

  std::mt19937 rng(c.seed);
  PackedInput q = make_packed(c, Hq, cu_q, max_q, 'q', rng);
  PackedInput k = make_packed(c, Hkv, cu_k, max_k, 'k', rng);
  PackedInput v = make_packed(c, Hkv, cu_k, max_k, 'v', rng);
  const DeviceQKV inputs(q, k, v);
  const DeviceOffsets offsets(cu_q, cu_k, max_q, max_k);
  const VarlenBatch& varlen = offsets.batch;

  TensorRef out = packed_view(c, Hq, total_q);
  const std::size_t out_elems = std::max<std::int64_t>(1, out.stride_b);
  constexpr std::size_t kLseTail = 64;  // floats after the LSE that must stay poisoned
  const std::size_t lse_elems = std::size_t(Hq) * total_q;
  DeviceBuffer dout(out_elems * 2), dlse((lse_elems + kLseTail) * 4);
  out.data = dout.get();
  dout.poison(), dlse.poison();  // 0xFF: NaN in fp16, bf16 and fp32
  float* lse = c.lse ? reinterpret_cast<float*>(dlse.ptr()) : nullptr;

  AttnVarlenCheckReport report;
  const AttnSpec spec = attention_varlen_spec(q.view, k.view, v.view, out, lse, varlen, c.options);
  report.spec = spec.canonical_name();
  report.fp8_pv = spec.quant.pv == PvType::fp8_e4m3;
  attention_varlen(q.view, k.view, v.view, out, lse, varlen, c.options, nullptr);
  SAGEJIT_CU(cuCtxSynchronize);

  // The output in the reference's padded order; row padding of the packed tensor must stay poison.
  const std::vector<std::uint16_t> out_bits = dout.download<std::uint16_t>(out_elems);
  std::vector<double> got(std::size_t(B) * Hq * std::max(max_q, 0) * D, 0.0);
  std::vector<bool> is_value(out_elems, false);
  std::vector<std::size_t> unwritten(B, 0);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < Hq; ++h)
      for (int i = 0; i < c.lengths_q[b]; ++i)
        for (int d = 0; d < D; ++d) {
          const std::size_t at = (cu_q[b] + i) * out.stride_s + h * out.stride_h + d;
          is_value[at] = true;
          const double x =
              c.dtype == DType::f16 ? reference::f16_to_float(out_bits[at]) : reference::bf16_to_float(out_bits[at]);
          unwritten[b] += !std::isfinite(x);
          got[((std::size_t(b) * Hq + h) * max_q + i) * D + d] = x;
        }
  for (std::size_t i = 0; i < out_elems; ++i) report.clobbered += !is_value[i] && out_bits[i] != 0xFFFF;

  reference::AttentionResult ref;
  if (max_q > 0 && max_k > 0) {
    reference::AttentionOptions ro;
    ro.sm_scale = c.options.sm_scale;
    ro.mask = static_cast<reference::AttentionMask>(static_cast<int>(c.options.mask));
    ro.cu_seqlens_q = cu_q, ro.cu_seqlens_k = cu_k;
    ref = reference::attention(q.padded, k.padded, v.padded, {B, Hq, Hkv, max_q, max_k, D}, ro);
  } else {  // no keys anywhere (or no queries): O = 0, LSE = -inf
    ref.out.assign(got.size(), 0.0);
    ref.lse.assign(std::size_t(B) * Hq * std::max(max_q, 0), -std::numeric_limits<double>::infinity());
  }

  std::vector<float> lse_got;
  if (c.lse) {
    lse_got = dlse.download<float>(lse_elems + kLseTail);
    for (std::size_t i = lse_elems; i < lse_got.size(); ++i) {
      report.clobbered += std::bit_cast<std::uint32_t>(lse_got[i]) != 0xFFFFFFFFu;
    }
  }
  // Metrics over a set of sequences (one, or all) from the rows they own.
  auto measure = [&](int b_begin, int b_end) {
    AttnCheckReport r;
    r.fp8_pv = report.fp8_pv, r.spec = report.spec;
    std::vector<double> o, want;
    for (int b = b_begin; b < b_end; ++b) {
      r.unwritten += unwritten[b];
      for (int h = 0; h < Hq; ++h) {
        const std::size_t row0 = (std::size_t(b) * Hq + h) * max_q;
        const std::size_t n = std::size_t(c.lengths_q[b]) * D;
        o.insert(o.end(), got.begin() + row0 * D, got.begin() + row0 * D + n);
        want.insert(want.end(), ref.out.begin() + row0 * D, ref.out.begin() + row0 * D + n);
        if (!c.lse) continue;
        for (int i = 0; i < c.lengths_q[b]; ++i) {
          const float x = lse_got[std::size_t(h) * total_q + cu_q[b] + i];
          const double w = ref.lse[row0 + i];
          if (std::isinf(w)) {  // no visible key: -inf expected
            r.unwritten += !(std::isinf(x) && x < 0);
          } else if (!std::isfinite(x)) {
            ++r.unwritten;
          } else {
            r.lse_max_abs_error = std::max(r.lse_max_abs_error, std::abs(x - w));
          }
        }
      }
    }
    const reference::ErrorMetrics m = reference::compare(o, want);
    r.cosine = m.cosine, r.rel_l1 = m.rel_l1, r.rmse = m.rmse;
    return r;
  };
  report.all = measure(0, B);
  for (int b = 0; b < B; ++b) {
    report.sequences.push_back(measure(b, b + 1));
    report.rows.push_back(std::size_t(c.lengths_q[b]) * Hq);
  }
  return report;
}

}  // namespace sagejit
