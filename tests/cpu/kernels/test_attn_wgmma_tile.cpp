// The tile orders of the sm_90a attention kernels (templates/attn_wgmma_tile.cuh), on the host: over
// a launch's linear tile indices every (batch, head, q tile) of every sequence comes exactly once,
// slots without a tile are empty, and the single-warpgroup kernel's causal order runs each group's
// longest tiles first.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <string>
#include <random>
#include <tuple>
#include <vector>

#include "templates/attn_wgmma_tile.cuh"

using namespace sagejit::kernels;

namespace {

struct Shape {
  int batch, heads, seq_q, seq_kv, lpt_heads;
  std::vector<int> len_q, len_k;  // varlen when non-empty (seq_q / seq_kv: the longest)
};

// Visits every tile index of a launch in order and checks the order's invariants. Lpt: the single
// kernel's attn_wgmma_tile_lpt, else attn_wgmma_tile (the warp-specialized kernel's pairs).
template <int CtaQ, int Mask, bool Lpt>
void check_order(const Shape& s) {
  const std::string shape = fmt::format("B={} H={} Sq={} Skv={} lpt_heads={} mask={} cta_q={} {} varlen={}", s.batch,
                                        s.heads, s.seq_q, s.seq_kv, s.lpt_heads, Mask, CtaQ, Lpt ? "lpt" : "pairs",
                                        fmt::join(s.len_q, ","));
  INFO(shape);
  std::vector<int> cu_q{0}, cu_k{0};
  for (std::size_t b = 0; b < s.len_q.size(); ++b) {
    cu_q.push_back(cu_q.back() + s.len_q[b]);
    cu_k.push_back(cu_k.back() + s.len_k[b]);
  }
  AttnParams p{};
  p.batch = s.batch, p.heads_q = s.heads, p.heads_kv = s.heads, p.seq_q = s.seq_q, p.seq_kv = s.seq_kv;
  p.lpt_heads = s.lpt_heads;
  if (!s.len_q.empty()) p.cu_seqlens_q = cu_q.data(), p.cu_seqlens_k = cu_k.data();
  const int q_slots = attn_wgmma_q_slots(s.seq_q, CtaQ, Mask != 0);
  std::map<std::tuple<int, int, int>, int> seen;  // (b, h, qt) -> visits
  std::map<int, int> last_blocks;                  // bh -> kv_blocks of its previous tile (Lpt, causal)
  bool ok = true;
  for (int tile = 0; tile < q_slots * s.batch * s.heads; ++tile) {
    const AttnWgmmaTile w = Lpt ? attn_wgmma_tile_lpt<CtaQ, kWgmmaCtaK, Mask>(p, tile, q_slots)
                                : attn_wgmma_tile<CtaQ, kWgmmaCtaK, Mask>(p, tile, q_slots);
    const int len_q = s.len_q.empty() ? s.seq_q : s.len_q[w.b];
    ok = ok && w.b >= 0 && w.b < s.batch && w.h >= 0 && w.h < s.heads && w.seq_q == len_q;
    if (w.empty()) {
      ok = ok && w.q0 == w.seq_q;
      continue;
    }
    ok = ok && w.q0 == w.qt * CtaQ && w.qt < (len_q + CtaQ - 1) / CtaQ;
    ++seen[{w.b, w.h, w.qt}];
    if (Lpt && Mask != 0) {  // within a (b, h), later tiles never have more blocks
      const int bh = w.b * s.heads + w.h;
      if (last_blocks.count(bh)) ok = ok && w.kv_blocks <= last_blocks[bh];
      last_blocks[bh] = w.kv_blocks;
    }
  }
  CHECK(ok);
  std::size_t expected = 0;
  for (int b = 0; b < s.batch; ++b) {
    const int len_q = s.len_q.empty() ? s.seq_q : s.len_q[b];
    expected += std::size_t((len_q + CtaQ - 1) / CtaQ) * s.heads;
  }
  CHECK(seen.size() == expected);
  for (const auto& [key, visits] : seen) {
    if (visits != 1) {
      const std::string where = fmt::format("b={} h={} qt={}", std::get<0>(key), std::get<1>(key), std::get<2>(key));
      INFO(where);
      CHECK(visits == 1);
    }
  }
}

template <int Mask>
void check_all(const Shape& s) {
  check_order<kWgmmaRowsPerWg, Mask, true>(s);
  check_order<kWgmmaRowsPerWg, Mask, false>(s);
  check_order<2 * kWgmmaRowsPerWg, Mask, false>(s);
}

}  // namespace

TEST_CASE("wgmma tile orders visit every tile once; the causal single-kernel order runs longest first") {
  std::mt19937 rng(11);
  std::vector<Shape> shapes = {{4, 32, 1024, 1024, 32, {}, {}}, {4, 32, 4096, 4096, 16, {}, {}},
                               {3, 5, 450, 520, 4, {}, {}},     {1, 1, 1, 1, 0, {}, {}},
                               {2, 7, 1000, 300, 100, {}, {}},  {2, 3, 65, 64, -1, {}, {}}};
  for (int n = 0; n < 40; ++n) {  // varlen batches, empty sequences included
    Shape v{1 + static_cast<int>(rng() % 6), 1 + static_cast<int>(rng() % 7), 0, 0, static_cast<int>(rng() % 9), {}, {}};
    for (int b = 0; b < v.batch; ++b) {
      v.len_q.push_back(rng() % 5 == 0 ? 0 : static_cast<int>(rng() % 700));
      v.len_k.push_back(rng() % 5 == 0 ? 0 : static_cast<int>(rng() % 700));
      v.seq_q = std::max(v.seq_q, v.len_q.back());
      v.seq_kv = std::max(v.seq_kv, v.len_k.back());
    }
    if (v.seq_q == 0) continue;
    shapes.push_back(v);
  }
  for (const Shape& s : shapes) {
    check_all<0>(s);
    check_all<1>(s);
    check_all<2>(s);
  }
}
