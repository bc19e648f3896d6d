// templates/attn_wgmma.cuh (the Hopper wgmma attention kernel) compiles with NVRTC for sm_90a with no
// register spills and no stack frame, for every variant the GPU test runs (no GPU needed).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "runtime/jit.hpp"

using namespace sagejit;

TEST_CASE("attn_wgmma: the sm_90a kernel compiles without spills or stack") {
  Jit jit(CubinStore::in_memory());
  const Arch arch = parse_arch("sm_90a");
  std::vector<GeneratedUnit> units;
  for (int d : {128, 64}) {
    for (int mask : {0, 1, 2}) {
      for (int lse : {0, 1}) {
        const std::string cfg = fmt::format("sagejit::kernels::AttnWgmmaCfg<{}, 2, {}, {}>", d, mask, lse ? "true" : "false");
        units.push_back(GeneratedUnit{fmt::format("test.attn_wgmma.d{}.m{}.l{}", d, mask, lse), arch,
                                      "#include \"attn_wgmma.cuh\"\n", "&sagejit::kernels::attention_wgmma<" + cfg + " >"});
      }
    }
  }
  const std::vector<CubinResult> results = jit.cubins(units);
  REQUIRE(results.size() == units.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    const CubinResult& r = results[i];
    CAPTURE(units[i].name_expression);
    MESSAGE(fmt::format("{}: {} registers, spill stores {} loads {}, stack {}, static smem {}", units[i].spec_name,
                        r.record.usage.registers, r.record.usage.spill_stores, r.record.usage.spill_loads,
                        r.record.usage.stack_frame, r.record.usage.shared_static));
    CHECK(r.record.usage.registers > 0);
    CHECK(r.record.usage.registers <= 255);
    CHECK(r.record.usage.spill_stores == 0);
    CHECK(r.record.usage.spill_loads == 0);
    CHECK(r.record.usage.stack_frame == 0);
  }
}
