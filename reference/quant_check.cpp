// quant_check.cpp — GPU quantization against the host reference.
#include "reference/quant_check.hpp"

#include <cstring>
#include <random>

#include <fmt/format.h>

#include "reference/quant_reference.hpp"
#include "runtime/device.hpp"
#include "runtime/device_buffer.hpp"
#include "runtime/driver.hpp"
#include "runtime/quantize_plan.hpp"

namespace sagejit {
namespace {


// A host tensor in the case's layout, with random values: N(0, 1) plus, for keys, a per-channel
// bias (the distribution K smoothing exists for).
struct HostInput {
  std::vector<std::uint16_t> bits;
  TensorRef view;  // data filled in once uploaded
};

HostInput make_input(const QuantCheckCase& c, int heads, int seq, float channel_bias_sigma, std::mt19937& rng) {
  const std::int64_t D = c.head_dim, pad = c.padded_strides ? 8 : 0;
  const std::int64_t row = c.layout == Layout::hnd ? D + pad : heads * (D + pad);  // stride_s
  HostInput in;
  TensorRef& t = in.view;
  t.dtype = c.dtype, t.batch = c.batch, t.heads = heads, t.seq = seq, t.dim = D;
  if (c.layout == Layout::hnd) {
    t.stride_s = D + pad, t.stride_h = seq * t.stride_s, t.stride_b = heads * t.stride_h;
  } else {
    t.stride_h = D + pad, t.stride_s = row, t.stride_b = seq * row;
  }
  t.stride_b += pad * 8;  // batches apart by more than their size, too
  in.bits.assign(std::max<std::int64_t>(1, c.batch * t.stride_b), 0x7e00);  // gaps hold NaN: must not be read
  std::normal_distribution<float> normal(0.0f, 1.0f), bias(0.0f, channel_bias_sigma);
  std::vector<float> channel_bias(D);
  for (auto& b : channel_bias) b = channel_bias_sigma > 0 ? bias(rng) : 0.0f;
  for (int b = 0; b < c.batch; ++b)
    for (int h = 0; h < heads; ++h)
      for (int s = 0; s < seq; ++s)
        for (int d = 0; d < D; ++d) {
          const float x = normal(rng) + channel_bias[d];
          in.bits[b * t.stride_b + h * t.stride_h + s * t.stride_s + d] =
              c.dtype == DType::f16 ? reference::float_to_f16(x) : reference::float_to_bf16(x);
        }
  return in;
}

reference::HostTensor host_view(const HostInput& in) {
  const TensorRef& t = in.view;
  return reference::HostTensor{in.bits.data(),
                               t.dtype == DType::f16 ? reference::DType::f16 : reference::DType::bf16,
                               static_cast<int>(t.batch), static_cast<int>(t.heads), static_cast<int>(t.seq),
                               static_cast<int>(t.dim), t.stride_b, t.stride_h, t.stride_s};
}

template <class T>
std::vector<T> download(const void* base, std::size_t count) {
  std::vector<T> host(count);
  if (count) SAGEJIT_CU(cuMemcpyDtoH, host.data(), reinterpret_cast<CUdeviceptr>(base), count * sizeof(T));
  return host;
}

// Exact comparison: bytes for integer / FP8 outputs, bit patterns for floats (a NaN from poison
// never equals a reference value).
template <class T>
QuantCheckReport::Output compare(const std::string& name, const std::vector<T>& got, const std::vector<T>& want) {
  QuantCheckReport::Output out{name, want.size(), 0, ""};
  if (got.size() != want.size()) {
    out.mismatches = want.size();
    out.first = fmt::format("size {} != {}", got.size(), want.size());
    return out;
  }
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) {
      if (out.mismatches++ == 0) {
        if constexpr (std::is_same_v<T, float>) {
          out.first = fmt::format("[{}] got {} want {}", i, got[i], want[i]);
        } else {
          out.first = fmt::format("[{}] got {} want {}", i, int(got[i]), int(want[i]));
        }
      }
    }
  }
  return out;
}

}  // namespace

std::string QuantCheckCase::describe() const {
  return fmt::format("{} {}{} B={} Hq={} Hkv={} Sq={} Skv={} D={} {} {} smooth_q={} smooth_k={} v={} lse={}", name(dtype),
                     name(layout), padded_strides ? "+pad" : "", batch, heads_q, heads_kv, seq_q, seq_kv, head_dim,
                     name(options.qk_type),
                     options.granularity == layout::Granularity::per_thread ? "per_thread"
                     : options.granularity == layout::Granularity::per_warp ? "per_warp"
                                                                             : "per_block",
                     int(options.smooth_q), int(options.smooth_k), int(options.quantize_v),
                     int(options.lse_correction));
}

bool QuantCheckReport::ok() const {
  for (const auto& o : outputs) {
    if (o.mismatches) return false;
  }
  return !outputs.empty();
}

std::string QuantCheckReport::summary() const {
  std::string s;
  for (const auto& o : outputs) {
    if (o.mismatches) s += fmt::format("{}: {} of {} differ, first {}; ", o.name, o.mismatches, o.compared, o.first);
  }
  return s.empty() ? "all equal" : s;
}

QuantCheckReport run_quant_check(const QuantCheckCase& c) {
  ensure_current_context();
  std::mt19937 rng(c.seed);
  HostInput q = make_input(c, c.heads_q, c.seq_q, 0.0f, rng);
  HostInput k = make_input(c, c.heads_kv, c.seq_kv, 5.0f, rng);
  HostInput v = make_input(c, c.heads_kv, c.seq_kv, 0.0f, rng);
  DeviceBuffer dq(q.bits.size() * 2), dk(k.bits.size() * 2), dv(v.bits.size() * 2);
  SAGEJIT_CU(cuMemcpyHtoD, dq.ptr(), q.bits.data(), q.bits.size() * 2);
  SAGEJIT_CU(cuMemcpyHtoD, dk.ptr(), k.bits.data(), k.bits.size() * 2);
  SAGEJIT_CU(cuMemcpyHtoD, dv.ptr(), v.bits.data(), v.bits.size() * 2);
  q.view.data = dq.get(), k.view.data = dk.get(), v.view.data = dv.get();

  const Arch arch = query_device(current_device_ordinal()).arch();
  const QuantizePlan plan = plan_quantize(q.view, k.view, v.view, c.options, arch);
  DeviceBuffer ws(plan.workspace_bytes);
  SAGEJIT_CU(cuMemsetD8, ws.ptr(), 0xFF, std::max<std::size_t>(plan.workspace_bytes, 256));
  const QuantizedQKV out = quantize(q.view, k.view, v.view, c.options, ws.get(), plan.workspace_bytes, nullptr);
  SAGEJIT_CU(cuCtxSynchronize);

  const QuantizeOptions& o = c.options;
  const int bits = o.qk_type == QuantType::int8 ? 8 : 4;
  QuantCheckReport report;
  std::vector<float> k_mean;
  if (o.smooth_k) {
    k_mean = reference::k_mean(host_view(k));
    report.outputs.push_back(compare("k_mean", download<float>(out.k_mean, k_mean.size()), k_mean));
  }
  reference::QuantizedQK rq = reference::quantize_qk(
      host_view(q), {bits, true, o.smooth_q, o.granularity, o.block_q, o.warp_q, plan.scale_multiplier});
  report.outputs.push_back(compare("q", download<std::uint8_t>(out.q, rq.values.size()), rq.values));
  report.outputs.push_back(compare("q_scale", download<float>(out.q_scale, rq.scales.size()), rq.scales));
  if (o.smooth_q) report.outputs.push_back(compare("q_mean", download<float>(out.q_mean, rq.q_mean.size()), rq.q_mean));
  if (o.lse_correction && o.smooth_k) {
    const std::vector<float> lse =
        reference::lse_correction(host_view(q), k_mean, static_cast<int>(k.view.heads), plan.sm_scale);
    report.outputs.push_back(compare("lse_correction", download<float>(out.lse_correction, lse.size()), lse));
  } else if (o.lse_correction) {
    // Without K smoothing there is nothing to correct: nothing reserved, null pointer.
    report.outputs.push_back({"lse_correction", 1, out.lse_correction != nullptr ? 1u : 0u,
                              "produced without smooth_k"});
  }
  reference::QuantizedQK rk =
      reference::quantize_qk(host_view(k), {bits, false, o.smooth_k, o.granularity, o.block_k, o.warp_k, 1.0f}, k_mean);
  report.outputs.push_back(compare("k", download<std::uint8_t>(out.k, rk.values.size()), rk.values));
  report.outputs.push_back(compare("k_scale", download<float>(out.k_scale, rk.scales.size()), rk.scales));
  if (o.quantize_v) {
    const std::vector<float> v_scale = reference::v_scale(host_view(v));
    report.outputs.push_back(compare("v_scale", download<float>(out.v_scale, v_scale.size()), v_scale));
    const std::vector<std::uint8_t> rv = reference::quantize_v(host_view(v), v_scale, plan.seq_kv_pad);
    report.outputs.push_back(compare("v", download<std::uint8_t>(out.v, rv.size()), rv));
  }
  return report;
}

std::vector<QuantCheckCase> quant_check_cases() {
  const Arch arch = query_device(current_device_ordinal()).arch();
  std::vector<QuantCheckCase> cases;
  std::uint32_t seed = 1000;
  auto add = [&](QuantCheckCase c) {
    c.seed = seed++;
    if (!arch.has_fp8_mma()) c.options.quantize_v = false;
    cases.push_back(c);
  };
  for (int head_dim : {64, 96, 128, 256}) {
    for (DType dtype : {DType::f16, DType::bf16}) {
      for (Layout layout : {Layout::hnd, Layout::nhd}) {
        QuantCheckCase c;
        c.dtype = dtype, c.layout = layout, c.head_dim = head_dim;
        c.batch = 2, c.heads_q = 4, c.heads_kv = 2, c.seq_q = 1000, c.seq_kv = 4097;
        c.padded_strides = layout == Layout::nhd;
        c.options.lse_correction = layout == Layout::nhd;
        add(c);
      }
    }
  }
  QuantCheckCase tiny;  // one token everywhere
  tiny.options.lse_correction = true;
  add(tiny);
  QuantCheckCase odd;
  odd.seq_q = 17, odd.seq_kv = 33, odd.heads_q = 8, odd.heads_kv = 1, odd.head_dim = 64;
  for (auto g : {layout::Granularity::per_thread, layout::Granularity::per_warp, layout::Granularity::per_block}) {
    for (bool smooth : {false, true}) {
      QuantCheckCase c = odd;
      c.options.granularity = g;
      c.options.smooth_q = smooth, c.options.smooth_k = smooth;
      c.options.block_q = 64, c.options.warp_q = 16, c.options.block_k = 128, c.options.warp_k = 32;
      c.options.lse_correction = true;  // GQA 8:1; without smoothing: must not be produced
      add(c);
    }
  }
  QuantCheckCase long_seq;
  long_seq.seq_q = 300, long_seq.seq_kv = 33000, long_seq.head_dim = 128, long_seq.options.smooth_q = true;
  long_seq.options.lse_correction = true;
  add(long_seq);
  for (int head_dim : {64, 96, 128, 256}) {  // GQA 4:1, a partial last Q block, LSE correction
    QuantCheckCase c;
    c.dtype = DType::bf16, c.layout = Layout::nhd, c.head_dim = head_dim;
    c.batch = 2, c.heads_q = 8, c.heads_kv = 2, c.seq_q = 333, c.seq_kv = 700;
    c.options.lse_correction = true;
    add(c);
  }
  // int4 on every arch that runs it: on INT4 tensor cores, or emulated by ptxas (sm_90a, sm_120).
  if (arch.runs_int4()) {
    for (int head_dim : {64, 128}) {
      QuantCheckCase c = odd;
      c.head_dim = head_dim;
      c.options.qk_type = QuantType::int4;
      c.options.smooth_q = true;
      c.options.lse_correction = true;
      add(c);
    }
  }
  return cases;
}

}  // namespace sagejit
