// quantize_kv's work order (templates/quant_params.cuh kv_item, quant_kv.cuh "Order"), on the host:
// over a launch's kv_items tickets every (b, h, segment, chunk) comes exactly once, the rest are the
// empty half steps, and every statistics item of a (b, h) has a lower ticket than every quantization
// item of it (what keeps the kernel free of deadlock for any lag and any GPU share).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <map>
#include <tuple>

#include "templates/quant_params.cuh"

using namespace sagejit::kernels;

namespace {

void check_order(int head_dim, bool smooth, bool with_v, int bh_count, int chunks, int lag) {
  INFO(fmt::format("D={} smooth={} v={} (b, h)={} chunks={} lag={}", head_dim, smooth, with_v, bh_count, chunks, lag));
  const int segments = kv_step_segments(head_dim, smooth, with_v);
  const int stats_segments = kv_stats_segments(head_dim, smooth, with_v);
  const long long items = kv_items(1, bh_count, chunks * kStatsChunkTokens, lag, segments);
  std::map<std::tuple<int, int, int>, int> seen;  // (bh, segment, chunk) -> ticket
  std::map<int, int> last_stats, first_quant;      // per (b, h)
  long long empty = 0;
  for (int ticket = 0; ticket < items; ++ticket) {
    const KvItem item = kv_item(ticket, chunks, segments, stats_segments, lag);
    REQUIRE(item.segment >= 0);
    REQUIRE(item.segment < segments);
    REQUIRE(item.chunk >= 0);
    REQUIRE(item.chunk < chunks);
    if (item.bh < 0 || item.bh >= bh_count) {
      ++empty;
      continue;
    }
    REQUIRE(seen.emplace(std::make_tuple(item.bh, item.segment, item.chunk), ticket).second);
    if (item.segment < stats_segments) {
      last_stats[item.bh] = ticket;  // tickets rise
    } else if (first_quant.count(item.bh) == 0) {
      first_quant[item.bh] = ticket;
    }
  }
  CHECK(seen.size() == static_cast<std::size_t>(bh_count) * segments * chunks);
  CHECK(empty == static_cast<long long>(lag) * segments * chunks);
  for (int bh = 0; bh < bh_count; ++bh) {
    INFO("(b, h) " << bh);
    REQUIRE(last_stats.count(bh) == 1);
    REQUIRE(first_quant.count(bh) == 1);
    CHECK(last_stats[bh] < first_quant[bh]);
  }
}

}  // namespace

TEST_CASE("quantize_kv's items cover every (b, h), segment and chunk once, statistics first") {
  for (int head_dim : {64, 128, 256}) {
    for (bool smooth : {false, true}) {
      for (bool with_v : {false, true}) {
        if (!smooth && !with_v) continue;  // nothing to compute first: the kernel does not run
        for (int bh_count : {1, 3, 10}) {
          for (int chunks : {1, 5, 32}) {
            for (int lag : {1, 2, bh_count}) check_order(head_dim, smooth, with_v, bh_count, chunks, lag);
          }
        }
      }
    }
  }
}

TEST_CASE("quantize_kv holds one tensor per item at D = 256 with V only") {
  CHECK(kv_split_tensors(256, true));
  CHECK_FALSE(kv_split_tensors(256, false));
  CHECK_FALSE(kv_split_tensors(128, true));
  // K's and V's statistics, then K's and V's quantization; without smoothing no K statistics.
  CHECK(kv_step_segments(256, true, true) == 4);
  CHECK(kv_stats_segments(256, true, true) == 2);
  CHECK(kv_step_segments(256, false, true) == 3);
  CHECK(kv_stats_segments(256, false, true) == 1);
  // Elsewhere one statistics segment and one quantization segment.
  CHECK(kv_step_segments(128, true, true) == 2);
  CHECK(kv_step_segments(256, true, false) == 2);
}
