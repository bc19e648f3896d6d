// wgmma_same_bits.hpp — GPU tests that two forced tiles of the INT8 + FP8 wgmma kernels give the same
// bits: one attention call per tile on the same fresh inputs (outputs poisoned first, D = 128, K
// smoothed), output and LSE compared bit for bit.
#pragma once

#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/device_buffer.hpp"
#include "sagejit/attention.hpp"
#include "tests/gpu/support.hpp"

namespace sagejit::test {

struct WgmmaCase {
  int heads_q = 4, heads_kv = 2, batch = 2, seq_q = 1000, seq_kv = 1000;
  DType dtype = DType::f16;
  Layout layout = Layout::hnd;
  bool lse = true, fused_q = true;
  Mask mask = Mask::none;
  std::vector<int> varlen_q, varlen_kv;  // non-empty: attention_varlen over these lengths
  std::string describe() const {
    return fmt::format("Hq={} Hkv={} B={} Sq={} Skv={} {} {} {} lse={} fused_q={}{}", heads_q, heads_kv, batch, seq_q,
                       seq_kv, name(mask), name(dtype), name(layout), int(lse), int(fused_q),
                       varlen_q.empty() ? "" : fmt::format(" varlen({})", varlen_q.size()));
  }
};

// One call on fresh inputs (the same seeds for every tile), outputs poisoned first, with `tile` forced.
inline AttnOutputs run_forced(const WgmmaCase& c, const AttnTile& tile) {
  constexpr int D = 128;
  const bool varlen = !c.varlen_q.empty();
  int total_q = c.seq_q, total_kv = c.seq_kv, batch = c.batch;
  std::vector<int> cu_q{0}, cu_k{0};
  for (std::size_t b = 0; b < c.varlen_q.size(); ++b) {
    cu_q.push_back(cu_q.back() + c.varlen_q[b]);
    cu_k.push_back(cu_k.back() + c.varlen_kv[b]);
  }
  if (varlen) total_q = cu_q.back(), total_kv = cu_k.back(), batch = 1;
  const std::size_t nq = std::size_t(batch) * c.heads_q * total_q * D, nkv = std::size_t(batch) * c.heads_kv * total_kv * D;
  DeviceBuffer q(nq * 2), k(nkv * 2), v(nkv * 2), o(nq * 2), lse(std::size_t(batch) * c.heads_q * total_q * 4);
  q.upload(random_half_bits(nq, D, c.dtype, 0.0f, 21));
  k.upload(random_half_bits(nkv, D, c.dtype, 2.0f, 22));
  v.upload(random_half_bits(nkv, D, c.dtype, 0.5f, 23));
  o.poison(), lse.poison();
  auto view = [&](const DeviceBuffer& b, int heads, int seq) {
    return TensorRef::contiguous(b.get(), c.dtype, c.layout, batch, heads, seq, D);
  };
  AttentionOptions opt;
  opt.pv = PvType::fp8_e4m3, opt.smooth_k = true, opt.fused_q = c.fused_q, opt.mask = c.mask;
  opt.family = AttnFamily::wgmma, opt.tile = tile;
  float* lse_ptr = c.lse ? static_cast<float*>(lse.get()) : nullptr;
  const TensorRef tq = view(q, c.heads_q, total_q), tk = view(k, c.heads_kv, total_kv),
                  tv = view(v, c.heads_kv, total_kv), to = view(o, c.heads_q, total_q);
  AttnOutputs r;
  r.spec = run_attention_sync(tq, tk, tv, to, lse_ptr, opt, varlen ? cu_q : std::vector<int>{}, cu_k, c.seq_q,
                              c.seq_kv);
  r.out = o.download<std::uint16_t>(nq);
  if (c.lse) r.lse = lse.download<float>(std::size_t(batch) * c.heads_q * total_q);
  return r;
}

// Tile a against tile b on each case: both ran as forced, with the case's fused_q, and gave the same
// bits, output and LSE, with no non-finite f16 output.
inline void check_same_bits(const std::vector<WgmmaCase>& cases, const AttnTile& a, const AttnTile& b) {
  for (const WgmmaCase& wc : cases) {
    CAPTURE(wc.describe());
    const AttnOutputs ra = run_forced(wc, a), rb = run_forced(wc, b);
    MESSAGE(fmt::format("{}: {} vs {}", wc.describe(), ra.spec.canonical_name(), rb.spec.canonical_name()));
    CHECK(ra.spec.tile == a);
    CHECK(rb.spec.tile == b);
    CHECK(ra.spec.quant.fused_q == wc.fused_q);
    CHECK(rb.spec.quant.fused_q == wc.fused_q);
    std::size_t differ = 0, nonfinite = 0;
    for (std::size_t i = 0; i < ra.out.size(); ++i) {
      differ += ra.out[i] != rb.out[i];
      nonfinite += (ra.out[i] & 0x7c00) == 0x7c00 && wc.dtype == DType::f16;
    }
    CHECK(differ == 0);
    CHECK(nonfinite == 0);
    std::size_t lse_differ = 0;
    for (std::size_t i = 0; i < ra.lse.size(); ++i) lse_differ += std::memcmp(&ra.lse[i], &rb.lse[i], 4) != 0;
    CHECK(lse_differ == 0);
  }
}

}  // namespace sagejit::test
