// quant_check.cpp — GPU quantization against the host reference.
#include "reference/quant_check.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <random>
#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "reference/device_inputs.hpp"
#include "generator/quant_spec.hpp"
#include "reference/quant_reference.hpp"
#include "templates/quant_params.cuh"
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

HostInput make_input(const QuantCheckCase& c, int batch, int heads, int seq, float channel_bias_sigma,
                     std::mt19937& rng) {
  const std::int64_t D = c.head_dim, pad = c.padded_strides ? 8 : 0;
  const std::int64_t row = c.layout == Layout::hnd ? D + pad : heads * (D + pad);  // stride_s
  HostInput in;
  TensorRef& t = in.view;
  t.dtype = c.dtype, t.batch = batch, t.heads = heads, t.seq = seq, t.dim = D;
  if (c.layout == Layout::hnd) {
    t.stride_s = D + pad, t.stride_h = seq * t.stride_s, t.stride_b = heads * t.stride_h;
  } else {
    t.stride_h = D + pad, t.stride_s = row, t.stride_b = seq * row;
  }
  t.stride_b += pad * 8;  // batches apart by more than their size, too
  // Gaps hold NaN (f16 0x7e00, bf16 0x7fc0): they must not be read.
  in.bits.assign(std::max<std::int64_t>(1, batch * t.stride_b), c.dtype == DType::f16 ? 0x7e00 : 0x7fc0);
  std::normal_distribution<float> normal(0.0f, 1.0f), bias(0.0f, channel_bias_sigma);
  std::vector<float> channel_bias(D);
  for (auto& b : channel_bias) b = channel_bias_sigma > 0 ? bias(rng) : 0.0f;
  // With special_values, about one element in 1500 of the rows (never the gaps) is one of these bit
  // patterns instead: quiet and signalling NaN of either sign, ±inf, −0, the smallest and largest
  // subnormals, the largest finite values.
  static constexpr std::uint16_t kF16[] = {0x7e00, 0xfe00, 0x7d01, 0xfd01, 0x7c00, 0xfc00,
                                           0x8000, 0x0001, 0x83ff, 0x7bff, 0xfbff};
  static constexpr std::uint16_t kBf16[] = {0x7fc0, 0xffc0, 0x7f81, 0xff81, 0x7f80, 0xff80,
                                            0x8000, 0x0001, 0x807f, 0x7f7f, 0xff7f};
  static_assert(std::size(kF16) == std::size(kBf16));
  const std::uint16_t* specials = c.dtype == DType::f16 ? kF16 : kBf16;
  std::uniform_int_distribution<int> which(0, static_cast<int>(std::size(kF16)) - 1), one_in(0, 1499);
  for (int b = 0; b < batch; ++b)
    for (int h = 0; h < heads; ++h)
      for (int s = 0; s < seq; ++s)
        for (int d = 0; d < D; ++d) {
          const float x = normal(rng) + channel_bias[d];
          std::uint16_t bits = c.dtype == DType::f16 ? reference::float_to_f16(x) : reference::float_to_bf16(x);
          if (c.special_values && one_in(rng) == 0) bits = specials[which(rng)];
          in.bits[b * t.stride_b + h * t.stride_h + s * t.stride_s + d] = bits;
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

// Exact comparison: bytes for integer outputs, bit patterns for floats, except that any NaN matches
// any NaN (a NaN's sign and payload come from how it arose: the host's arithmetic and the GPU's
// canonical NaN differ there and nowhere else). The workspace's poison (all ones, a NaN as a float
// and as e4m3) never matches: an element the GPU did not write is a mismatch. With `e4m3`, the
// bytes are FP8 e4m3, whose NaN is 0x7f or 0xff; the GPU writes 0x7f.
template <class T>
bool same_value(T got, T want, bool e4m3) {
  if constexpr (std::is_same_v<T, float>) {
    if (std::memcmp(&got, &want, sizeof(T)) == 0) return true;
    std::uint32_t bits;
    std::memcpy(&bits, &got, sizeof bits);
    return std::isnan(got) && std::isnan(want) && bits != 0xffffffffu;
  } else if (e4m3) {
    // The GPU's NaN is 0x7f; 0xff, the reference's −NaN, is also the poison.
    if (got == 0xff) return false;
    return got == want || (got == 0x7f && (want & 0x7f) == 0x7f);
  } else {
    return got == want;
  }
}

template <class T>
QuantCheckReport::Output compare(const std::string& name, const std::vector<T>& got, const std::vector<T>& want,
                                 bool e4m3 = false) {
  QuantCheckReport::Output out{name, want.size(), 0, ""};
  if (got.size() != want.size()) {
    out.mismatches = want.size();
    out.first = fmt::format("size {} != {}", got.size(), want.size());
    return out;
  }
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (!same_value(got[i], want[i], e4m3)) {
      if (out.mismatches++ == 0) {
        if constexpr (std::is_same_v<T, float>) {
          std::uint32_t g, w;
          std::memcpy(&g, &got[i], 4), std::memcpy(&w, &want[i], 4);
          out.first = fmt::format("[{}] got {} ({:#010x}) want {} ({:#010x})", i, got[i], g, want[i], w);
        } else {
          out.first = fmt::format("[{}] got {} want {}", i, int(got[i]), int(want[i]));
        }
      }
    }
  }
  return out;
}

// Gathers the elements quant_layout.cuh defines for varlen, from the GPU's padded outputs and from
// the per-sequence reference, into two vectors in the same order, so that `compare` sees exactly
// the defined regions (a poisoned element there is a mismatch; the rest is never read).
template <class T>
struct Gathered {
  std::vector<T> got, want;
  // `count` elements at got_full[got_at...] and want_full[want_at...].
  void add(const std::vector<T>& got_full, std::size_t got_at, const std::vector<T>& want_full, std::size_t want_at,
           std::size_t count) {
    got.insert(got.end(), got_full.begin() + got_at, got_full.begin() + got_at + count);
    want.insert(want.end(), want_full.begin() + want_at, want_full.begin() + want_at + count);
  }
};

QuantCheckReport run_quant_varlen_check(const QuantCheckCase& c) {
  if (c.lengths_q.size() != c.lengths_kv.size()) {
    throw std::invalid_argument("QuantCheckCase: lengths_q and lengths_kv must have one entry per sequence each");
  }
  ensure_current_context();
  const int B = static_cast<int>(c.lengths_q.size());
  const std::vector<int> cu_q = offsets_of(c.lengths_q), cu_k = offsets_of(c.lengths_kv);
  const int max_q = *std::max_element(c.lengths_q.begin(), c.lengths_q.end()) + c.max_slack;
  const int max_k = *std::max_element(c.lengths_kv.begin(), c.lengths_kv.end()) + c.max_slack;
  std::mt19937 rng(c.seed);
  HostInput q = make_input(c, 1, c.heads_q, cu_q[B], 0.0f, rng);
  HostInput k = make_input(c, 1, c.heads_kv, cu_k[B], 5.0f, rng);
  HostInput v = make_input(c, 1, c.heads_kv, cu_k[B], 0.0f, rng);
  const DeviceQKV inputs(q, k, v);
  const DeviceOffsets offsets(cu_q, cu_k, max_q, max_k);
  const VarlenBatch& varlen = offsets.batch;

  const Arch arch = query_device(current_device_ordinal()).arch();
  const QuantizeOptions& o = c.options;
  const QuantizePlan plan = plan_quantize(q.view, k.view, v.view, o, arch, &varlen);
  DeviceBuffer ws(plan.workspace_bytes);
  SAGEJIT_CU(cuMemsetD8, ws.ptr(), 0xFF, std::max<std::size_t>(plan.workspace_bytes, 256));
  const QuantizedQKV out = quantize_varlen(q.view, k.view, v.view, varlen, o, ws.get(), plan.workspace_bytes, nullptr);
  SAGEJIT_CU(cuCtxSynchronize);

  const int bits = qk_mma_bits(o.qk_type), terms = qk_terms(o.qk_type);
  const int D = c.head_dim, Hq = c.heads_q, Hkv = c.heads_kv;
  const std::size_t q_row = std::size_t(D) * bits * terms / 8, k_row = q_row;
  const std::size_t bh_q = std::size_t(B) * Hq, bh_kv = std::size_t(B) * Hkv;
  const bool lse = o.lse_correction && o.smooth_k && plan.seq_kv > 0;
  const auto got_q = download<std::uint8_t>(out.q, bh_q * plan.seq_q_pad * q_row);
  const auto got_q_scale = download<float>(out.q_scale, bh_q * plan.q_blocks * plan.q_groups);
  const auto got_q_mean = o.smooth_q ? download<float>(out.q_mean, bh_q * plan.q_blocks * D) : std::vector<float>{};
  const auto got_lse = lse ? download<float>(out.lse_correction, bh_q * plan.seq_q) : std::vector<float>{};
  const auto got_k = download<std::uint8_t>(out.k, bh_kv * plan.seq_kv_pad * k_row);
  const auto got_k_scale = download<float>(out.k_scale, bh_kv * plan.k_blocks * plan.k_groups);
  const auto got_k_mean = o.smooth_k ? download<float>(out.k_mean, bh_kv * D) : std::vector<float>{};
  const auto got_v = o.quantize_v ? download<std::uint8_t>(out.v, bh_kv * D * plan.seq_kv_pad)
                                  : std::vector<std::uint8_t>{};
  const auto got_v_scale = o.quantize_v ? download<float>(out.v_scale, bh_kv * D) : std::vector<float>{};

  Gathered<std::uint8_t> gq, gk, gv;
  Gathered<float> gq_scale, gq_mean, glse, gk_scale, gk_mean, gv_scale;
  const reference::HostTensor hq = host_view(q), hk = host_view(k), hv = host_view(v);
  for (int b = 0; b < B; ++b) {
    const int len_q = c.lengths_q[b], len_k = c.lengths_kv[b];
    const reference::HostTensor sq = reference::sequence_of(hq, cu_q[b], len_q);
    const reference::HostTensor sk = reference::sequence_of(hk, cu_k[b], len_k);
    const reference::HostTensor sv = reference::sequence_of(hv, cu_k[b], len_k);
    // Statistics: every slot, empty sequences included (k_mean 0, v_scale kMinScale).
    std::vector<float> k_mean;
    if (o.smooth_k) {
      k_mean = reference::k_mean(sk);
      gk_mean.add(got_k_mean, std::size_t(b) * Hkv * D, k_mean, 0, std::size_t(Hkv) * D);
    }
    if (len_q > 0) {
      const reference::QuantizedQK rq = reference::quantize_qk(
          sq, {bits, true, o.smooth_q, o.granularity, o.block_q, o.warp_q, plan.scale_multiplier, terms});
      const int blocks = rq.seq_len_pad / o.block_q;
      for (int h = 0; h < Hq; ++h) {
        const std::size_t bh = std::size_t(b) * Hq + h;
        gq.add(got_q, bh * plan.seq_q_pad * q_row, rq.values, std::size_t(h) * rq.seq_len_pad * q_row,
               std::size_t(rq.seq_len_pad) * q_row);
        gq_scale.add(got_q_scale, bh * plan.q_blocks * plan.q_groups, rq.scales, std::size_t(h) * blocks * rq.groups,
                     std::size_t(blocks) * rq.groups);
        if (o.smooth_q) {
          gq_mean.add(got_q_mean, bh * plan.q_blocks * D, rq.q_mean, std::size_t(h) * blocks * D,
                      std::size_t(blocks) * D);
        }
      }
      if (lse) {
        const std::vector<float> want = reference::lse_correction(sq, k_mean, Hkv, plan.sm_scale);
        for (int h = 0; h < Hq; ++h) {
          glse.add(got_lse, (std::size_t(b) * Hq + h) * plan.seq_q, want, std::size_t(h) * len_q, len_q);
        }
      }
    }
    if (len_k > 0) {
      const reference::QuantizedQK rk =
          reference::quantize_qk(sk, {bits, false, o.smooth_k, o.granularity, o.block_k, o.warp_k, 1.0f, terms},
                                 k_mean);
      const int blocks = rk.seq_len_pad / o.block_k;
      for (int h = 0; h < Hkv; ++h) {
        const std::size_t bh = std::size_t(b) * Hkv + h;
        gk.add(got_k, bh * plan.seq_kv_pad * k_row, rk.values, std::size_t(h) * rk.seq_len_pad * k_row,
               std::size_t(rk.seq_len_pad) * k_row);
        gk_scale.add(got_k_scale, bh * plan.k_blocks * plan.k_groups, rk.scales, std::size_t(h) * blocks * rk.groups,
                     std::size_t(blocks) * rk.groups);
      }
    }
    if (o.quantize_v) {
      const std::vector<float> v_scale = reference::v_scale(sv);
      gv_scale.add(got_v_scale, std::size_t(b) * Hkv * D, v_scale, 0, std::size_t(Hkv) * D);
      if (len_k > 0) {
        // What the attention kernel's K/V tiles of this sequence cover: round_up(len_k, block_k).
        const int pad = layout::round_up(len_k, o.block_k);
        const std::vector<std::uint8_t> rv = reference::quantize_v(sv, v_scale, pad);
        for (int h = 0; h < Hkv; ++h)
          for (int ch = 0; ch < D; ++ch) {
            const std::size_t row = (std::size_t(b) * Hkv + h) * D + ch;
            gv.add(got_v, row * plan.seq_kv_pad, rv, (std::size_t(h) * D + ch) * pad, pad);
          }
      }
    }
  }

  QuantCheckReport report;
  if (o.smooth_k) report.outputs.push_back(compare("k_mean", gk_mean.got, gk_mean.want));
  report.outputs.push_back(compare("q", gq.got, gq.want));
  report.outputs.push_back(compare("q_scale", gq_scale.got, gq_scale.want));
  if (o.smooth_q) report.outputs.push_back(compare("q_mean", gq_mean.got, gq_mean.want));
  if (lse) {
    report.outputs.push_back(compare("lse_correction", glse.got, glse.want));
  } else if (o.lse_correction) {
    // Without K smoothing, or without any key (max_seqlen_k 0): nothing reserved, null pointer.
    report.outputs.push_back({"lse_correction", 1, out.lse_correction != nullptr ? 1u : 0u,
                              "produced without smooth_k or without keys"});
  }
  report.outputs.push_back(compare("k", gk.got, gk.want));
  report.outputs.push_back(compare("k_scale", gk_scale.got, gk_scale.want));
  if (o.quantize_v) {
    report.outputs.push_back(compare("v_scale", gv_scale.got, gv_scale.want));
    report.outputs.push_back(compare("v", gv.got, gv.want, /*e4m3=*/true));
  }
  return report;
}

}  // namespace

std::string QuantCheckCase::describe() const {
  const std::string shape =
      lengths_q.empty() ? fmt::format("B={} Hq={} Hkv={} Sq={} Skv={}", batch, heads_q, heads_kv, seq_q, seq_kv)
                        : fmt::format("varlen Hq={} Hkv={} Sq={} Skv={} slack={}", heads_q, heads_kv,
                                      fmt::join(lengths_q, ","), fmt::join(lengths_kv, ","), max_slack);
  return fmt::format("{} {}{} {} D={} {} {} block_k={} smooth_q={} smooth_k={} v={} lse={} fused_stats={} kv_cluster={}{}",
                     name(dtype),
                     name(layout), padded_strides ? "+pad" : "", shape, head_dim,
                     name(options.qk_type),
                     options.granularity == layout::Granularity::per_thread ? "per_thread"
                     : options.granularity == layout::Granularity::per_warp ? "per_warp"
                                                                             : "per_block",
                     options.block_k, int(options.smooth_q), int(options.smooth_k), int(options.quantize_v),
                     int(options.lse_correction), int(options.fused_stats), int(options.kv_cluster),
                     special_values ? " special_values" : "");
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
  if (!c.lengths_q.empty() || !c.lengths_kv.empty()) return run_quant_varlen_check(c);
  ensure_current_context();
  std::mt19937 rng(c.seed);
  HostInput q = make_input(c, c.batch, c.heads_q, c.seq_q, 0.0f, rng);
  HostInput k = make_input(c, c.batch, c.heads_kv, c.seq_kv, 5.0f, rng);
  HostInput v = make_input(c, c.batch, c.heads_kv, c.seq_kv, 0.0f, rng);
  const DeviceQKV inputs(q, k, v);

  const Arch arch = query_device(current_device_ordinal()).arch();
  const QuantizePlan plan = plan_quantize(q.view, k.view, v.view, c.options, arch);
  DeviceBuffer ws(plan.workspace_bytes);
  SAGEJIT_CU(cuMemsetD8, ws.ptr(), 0xFF, std::max<std::size_t>(plan.workspace_bytes, 256));
  const QuantizedQKV out = quantize(q.view, k.view, v.view, c.options, ws.get(), plan.workspace_bytes, nullptr);
  SAGEJIT_CU(cuCtxSynchronize);

  const QuantizeOptions& o = c.options;
  const int bits = qk_mma_bits(o.qk_type), terms = qk_terms(o.qk_type);
  QuantCheckReport report;
  std::vector<float> k_mean;
  if (o.smooth_k) {
    k_mean = reference::k_mean(host_view(k));
    report.outputs.push_back(compare("k_mean", download<float>(out.k_mean, k_mean.size()), k_mean));
  }
  reference::QuantizedQK rq = reference::quantize_qk(
      host_view(q), {bits, true, o.smooth_q, o.granularity, o.block_q, o.warp_q, plan.scale_multiplier, terms});
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
      reference::quantize_qk(host_view(k), {bits, false, o.smooth_k, o.granularity, o.block_k, o.warp_k, 1.0f, terms},
                             k_mean);
  report.outputs.push_back(compare("k", download<std::uint8_t>(out.k, rk.values.size()), rk.values));
  report.outputs.push_back(compare("k_scale", download<float>(out.k_scale, rk.scales.size()), rk.scales));
  if (o.quantize_v) {
    const std::vector<float> v_scale = reference::v_scale(host_view(v));
    report.outputs.push_back(compare("v_scale", download<float>(out.v_scale, v_scale.size()), v_scale));
    const std::vector<std::uint8_t> rv = reference::quantize_v(host_view(v), v_scale, plan.seq_kv_pad);
    report.outputs.push_back(compare("v", download<std::uint8_t>(out.v, rv.size()), rv, /*e4m3=*/true));
  }
  return report;
}

namespace {

// Appends case c with the next seed (without FP8 tensor cores, no V) and, where it computes K's mean
// or V's scale, the same case through quantize_kv's work items where the default is its cluster form
// (sm_90a, up to kv_cluster_max_chunks(D) chunks of keys) and through the separate statistics pass:
// the same bits are expected from every path.
void add_quant_case(const Arch& arch, std::uint32_t& seed, QuantCheckCase c, std::vector<QuantCheckCase>& cases) {
  c.seed = seed++;
  if (!arch.has_fp8_mma()) c.options.quantize_v = false;
  cases.push_back(c);
  if (c.options.smooth_k || c.options.quantize_v) {
    const int keys = c.lengths_kv.empty() ? c.seq_kv
                                          : *std::max_element(c.lengths_kv.begin(), c.lengths_kv.end()) + c.max_slack;
    if (has_kv_cluster(arch) && kernels::stats_chunks(keys) <= kernels::kv_cluster_max_chunks(c.head_dim)) {
      c.options.kv_cluster = false;
      cases.push_back(c);
    }
    c.options.fused_stats = false;
    cases.push_back(c);
  }
}

}  // namespace

std::vector<QuantCheckCase> quant_check_cases() {
  const Arch arch = query_device(current_device_ordinal()).arch();
  std::vector<QuantCheckCase> cases;
  std::uint32_t seed = 1000;
  auto add = [&](QuantCheckCase c) { add_quant_case(arch, seed, c, cases); };
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
  // Many more quantize_kv work items than the GPU holds at once (64 chunks per (b, h), a GPU-full
  // of items between a (b, h)'s statistics and its quantization: quant_kv.cuh, "Order").
  QuantCheckCase many_chunks;
  many_chunks.batch = 2, many_chunks.heads_q = 4, many_chunks.heads_kv = 4;
  many_chunks.seq_q = 64, many_chunks.seq_kv = 8192, many_chunks.head_dim = 64;
  add(many_chunks);
  // quantize_kv's K blocks inside a 128-token chunk: block_k 16 and 32 (8 and 4 blocks per chunk),
  // every granularity, a partial last chunk.
  for (auto g : {layout::Granularity::per_thread, layout::Granularity::per_warp, layout::Granularity::per_block}) {
    for (int block_k : {16, 32}) {
      QuantCheckCase c;
      c.batch = 2, c.heads_q = 2, c.heads_kv = 2, c.seq_q = 100, c.seq_kv = 700, c.head_dim = 64;
      c.options.granularity = g;
      c.options.block_k = block_k, c.options.warp_k = 16;
      add(c);
    }
  }
  // quantize_kv at D = 256, one tensor per item (kv_split_tensors): without smoothing (V's statistics
  // segment alone) with two-term K, over more (b, h) than the lag (so steps of different (b, h)
  // interleave), and 32 chunks over more items than the GPU holds at once (at 64 the L2 rule of
  // runs_fused picks the separate passes).
  QuantCheckCase wide_plain;
  wide_plain.batch = 2, wide_plain.heads_q = 8, wide_plain.heads_kv = 8, wide_plain.seq_q = 70;
  wide_plain.seq_kv = 3000, wide_plain.head_dim = 256;
  wide_plain.options.smooth_k = false, wide_plain.options.qk_type = QuantType::int8x2;
  add(wide_plain);
  QuantCheckCase wide_many = many_chunks;
  wide_many.seq_kv = 4096, wide_many.head_dim = 256;
  add(wide_many);
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
  // 8 chunks of keys, a partial one and exactly 1024; 12 (a cluster size that is neither a power of
  // two nor portable); 16 (2k keys, a partial chunk and exact), quantize_kv_cluster's largest, at
  // D = 256 too, whose pushed partials share the V tile's bytes.
  for (int seq_kv : {1000, 1024, 1500, 2000, 2048, 1900, 2047}) {
    QuantCheckCase c;
    c.head_dim = seq_kv == 1000 || seq_kv == 1900 || seq_kv == 2047 ? 256
                 : seq_kv == 1024                                    ? 96
                 : seq_kv <= 2000                                    ? 128
                                                                     : 64;
    c.batch = 3, c.heads_q = 4, c.heads_kv = 4, c.seq_q = 65, c.seq_kv = seq_kv;
    c.options.lse_correction = seq_kv == 1000;
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
  // NaN, ±inf, subnormals and the largest finite values among the inputs (special_values), through
  // every kernel of each path: with and without smoothing (where a NaN or inf in a channel makes
  // its mean, hence all of its smoothed K, non-finite), the LSE correction, both dtypes and layouts.
  for (int n = 0; n < 4; ++n) {
    QuantCheckCase c;
    c.special_values = true;
    c.dtype = n % 2 == 0 ? DType::f16 : DType::bf16;
    c.layout = n < 2 ? Layout::hnd : Layout::nhd;
    c.batch = 2, c.heads_q = 4, c.heads_kv = 2, c.seq_q = 300, c.seq_kv = 700, c.head_dim = n == 3 ? 64 : 128;
    c.options.smooth_q = c.options.smooth_k = n != 1;
    c.options.lse_correction = n != 1;
    add(c);
  }
  // Two-term int8 (the residual half of each row): the odd tiling at every head dim, smoothing on
  // for one of them.
  for (int head_dim : {64, 96, 128, 256}) {
    QuantCheckCase c = odd;
    c.head_dim = head_dim;
    c.options.qk_type = QuantType::int8x2;
    c.options.smooth_q = head_dim == 96;
    c.options.lse_correction = true;
    add(c);
  }
  return cases;
}

std::vector<QuantCheckCase> quant_varlen_check_cases() {
  const Arch arch = query_device(current_device_ordinal()).arch();
  std::vector<QuantCheckCase> cases;
  std::uint32_t seed = 5000;
  auto add = [&](QuantCheckCase c) { add_quant_case(arch, seed, c, cases); };
  // Mixed lengths: single tokens, partial blocks, several K-mean chunks (4097 = 16 chunks + 1), an
  // empty query sequence and an empty key sequence, GQA 2:1, the LSE correction.
  const std::vector<int> mixed_q = {1, 17, 1000, 0, 4097}, mixed_kv = {4097, 0, 33, 1, 1000};
  int i = 0;
  for (int head_dim : {64, 96, 128, 256}) {
    QuantCheckCase c;
    c.head_dim = head_dim;
    c.dtype = i % 2 ? DType::bf16 : DType::f16;
    c.layout = i % 2 ? Layout::hnd : Layout::nhd;  // NHD is the usual packed [total, H, D]
    c.padded_strides = i == 2;
    c.heads_q = 4, c.heads_kv = 2;
    c.lengths_q = mixed_q, c.lengths_kv = mixed_kv;
    c.options.lse_correction = true;
    c.options.smooth_q = i == 1;
    add(c);
    ++i;
  }
  // Every granularity, smoothing on and off, GQA 8:1, the tile geometry of the "odd" plain cases.
  for (auto g : {layout::Granularity::per_thread, layout::Granularity::per_warp, layout::Granularity::per_block}) {
    for (bool smooth : {false, true}) {
      QuantCheckCase c;
      c.head_dim = 64, c.heads_q = 8, c.heads_kv = 1;
      c.lengths_q = {17, 64, 0, 65}, c.lengths_kv = {33, 0, 128, 129};
      c.options.granularity = g;
      c.options.smooth_q = smooth, c.options.smooth_k = smooth;
      c.options.block_q = 64, c.options.warp_q = 16, c.options.block_k = 128, c.options.warp_k = 32;
      c.options.lse_correction = true;
      add(c);
    }
  }
  // Short key sequences (quantize_kv_cluster on sm_90a: up to kv_cluster_max_chunks(D) chunks) with
  // an empty one, at D = 128 and 256; and a 16-CTA cluster whose sequences fill 16, 2 and 1 of its
  // CTAs (the last pushes only to itself), at D = 128 and at 256 (where the pushed partials share
  // the V tile's bytes).
  for (int head_dim : {128, 256}) {
    QuantCheckCase c;
    c.head_dim = head_dim, c.heads_q = 2, c.heads_kv = 2;
    c.lengths_q = {5, 300, 64}, c.lengths_kv = {1024, 0, 129};
    c.options.lse_correction = true;
    add(c);
  }
  // quantize_kv at D = 256 without smoothing (V's statistics segment first) with an empty key
  // sequence, whose defaults that segment's first item writes.
  QuantCheckCase wide_plain;
  wide_plain.head_dim = 256, wide_plain.heads_q = 2, wide_plain.heads_kv = 2;
  wide_plain.lengths_q = {40, 3, 129}, wide_plain.lengths_kv = {3000, 0, 300};
  wide_plain.options.smooth_k = false;
  add(wide_plain);
  for (int head_dim : {128, 256}) {
    QuantCheckCase wide_cluster;
    wide_cluster.head_dim = head_dim, wide_cluster.heads_q = 2, wide_cluster.heads_kv = 2;
    wide_cluster.lengths_q = {70, 1, 300, 9}, wide_cluster.lengths_kv = {2000, 0, 129, 100};
    add(wide_cluster);
  }
  // block_k = 96 does not divide quantize_v's 128-token tile: a 100-token sequence's keys are read
  // up to round_up(100, 96) = 192, past the first V tile, which must therefore be written too.
  QuantCheckCase odd_block;
  odd_block.head_dim = 128, odd_block.lengths_q = {100, 7, 300}, odd_block.lengths_kv = {100, 300, 1};
  odd_block.options.block_k = 96, odd_block.options.warp_k = 96;
  odd_block.options.lse_correction = true;
  add(odd_block);
  // max_seqlen larger than every sequence (allowed): the slots grow, the kernels skip the tail.
  QuantCheckCase slack = odd_block;
  slack.options = {};
  slack.max_slack = 200;
  add(slack);
  // No keys at all (max_seqlen_k = 0): k_mean 0 and v_scale kMinScale in every slot, no correction.
  QuantCheckCase no_keys;
  no_keys.lengths_q = {5, 0, 130}, no_keys.lengths_kv = {0, 0, 0};
  no_keys.options.lse_correction = true;
  add(no_keys);
  // Nothing at all: every length 0.
  QuantCheckCase nothing;
  nothing.lengths_q = {0, 0}, nothing.lengths_kv = {0, 0};
  add(nothing);
  if (arch.runs_int4()) {
    QuantCheckCase c;
    c.head_dim = 128, c.heads_q = 4, c.heads_kv = 4;
    c.lengths_q = {1, 17, 300}, c.lengths_kv = {250, 1, 33};
    c.options.qk_type = QuantType::int4;
    c.options.smooth_q = true;
    c.options.lse_correction = true;
    add(c);
  }
  QuantCheckCase x2;
  x2.head_dim = 128, x2.heads_q = 4, x2.heads_kv = 2;
  x2.lengths_q = {1, 17, 300}, x2.lengths_kv = {250, 1, 33};
  x2.options.qk_type = QuantType::int8x2;
  x2.options.smooth_q = true;
  add(x2);
  return cases;
}

}  // namespace sagejit
