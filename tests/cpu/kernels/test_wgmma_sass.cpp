// The sm_90a attention kernels attention() runs by default execute on the warpgroup tensor-core
// instructions and touch no local memory. This is read off their disassembly (nvdisasm, named by
// SAGEJIT_NVDISASM: scripts/test.sh finds or installs it; without it the test is skipped):
//   - QKᵀ is IGMMA (int8, also two-term), never the warp-level IMMA;
//   - P·V is QGMMA e4m3 (FP8 P·V) or HGMMA (16-bit P·V), never HMMA;
//   - no LDL / STL (spills, or arrays the compiler could not keep in registers).
// Covered: the kernels default_spec chooses on sm_90a for every head dim, FP8 and f16 P·V and the
// precise mode, at 1k and 4k keys, without a mask, causal (with LSE) and bottom-right causal (bf16).
// The control is the portable mma.sync kernel, which must read IMMA and HMMA. No GPU needed.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "autotune/problem.hpp"
#include "generator/attn_spec.hpp"
#include "runtime/jit.hpp"
#include "tests/cpu/support.hpp"

using namespace sagejit;

namespace {

const char* nvdisasm_path() {
  const char* p = std::getenv("SAGEJIT_NVDISASM");
  return p != nullptr && *p != '\0' ? p : nullptr;
}

// Opcode (the mnemonic before its first '.') → count, over the SASS of `cubin`.
std::map<std::string, int> sass_opcodes(const std::vector<char>& cubin) {
  test::TempDir dir("sass");
  const std::filesystem::path path = dir.path / "kernel.cubin";
  {
    std::ofstream out(path, std::ios::binary);
    out.write(cubin.data(), static_cast<std::streamsize>(cubin.size()));
    REQUIRE(out.good());
  }
  const std::string command = fmt::format("'{}' -c '{}' 2>&1", nvdisasm_path(), path.string());
  struct Pipe {
    FILE* f;
    ~Pipe() {
      if (f != nullptr) pclose(f);
    }
  } pipe{popen(command.c_str(), "r")};
  REQUIRE(pipe.f != nullptr);
  std::map<std::string, int> counts;
  std::string first_line;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe.f) != nullptr) {
    const std::string line = buffer;
    if (first_line.empty()) first_line = line;
    // "        /*0ab0*/                   @!P1 IGMMA.64x128x32.S8.S8 R24, gdesc[UR28], R24 ;"
    const auto open_comment = line.find("/*"), close_comment = line.find("*/");
    if (open_comment == std::string::npos || close_comment == std::string::npos) continue;
    std::size_t i = line.find_first_not_of(' ', close_comment + 2);
    if (i != std::string::npos && line[i] == '@') {  // a predicate
      i = line.find(' ', i);
      i = i == std::string::npos ? i : line.find_first_not_of(' ', i);
    }
    if (i == std::string::npos) continue;
    const std::size_t end = line.find_first_of(" .;", i);
    if (end == std::string::npos || end == i) continue;
    ++counts[line.substr(i, end - i)];
  }
  const int status = pclose(pipe.f);
  pipe.f = nullptr;
  REQUIRE_MESSAGE(status == 0, "nvdisasm failed: " << first_line);
  return counts;
}

}  // namespace

TEST_CASE("attention's default sm_90a kernels run on IGMMA / QGMMA / HGMMA with no local memory" *
          doctest::skip(nvdisasm_path() == nullptr)) {
  Jit jit(CubinStore::in_memory());
  std::vector<AttnSpec> specs;
  std::set<std::string> seen;
  for (int d : {64, 96, 128, 256}) {
    for (auto [qk, pv] : {std::pair{QuantType::int8, PvType::fp8_e4m3}, std::pair{QuantType::int8, PvType::f16},
                          std::pair{QuantType::int8x2, PvType::f16}}) {
      for (Mask mask : {Mask::none, Mask::causal_top_left, Mask::causal_bottom_right}) {
        for (std::int64_t seq : {1024, 4096}) {
          Problem p;
          p.arch = parse_arch("sm_90a");
          p.batch = 1, p.heads_q = p.heads_kv = 8, p.seq_q = p.seq_kv = seq;
          p.head_dim = d, p.qk = qk, p.pv = pv, p.mask = mask;
          p.lse = mask == Mask::causal_top_left;
          p.dtype = mask == Mask::causal_bottom_right ? DType::bf16 : DType::f16;
          const AttnSpec s = default_spec(p);  // with Q fused where the kernel can, as attention() runs it
          REQUIRE(s.family == AttnFamily::wgmma);
          if (seen.insert(s.canonical_name()).second) specs.push_back(s);
        }
      }
    }
  }
  // The control: the portable mma.sync kernel on sm_90a, whose disassembly must read IMMA and HMMA
  // (the parse tells the two kinds apart).
  Problem control;
  control.arch = parse_arch("sm_90a");
  control.batch = 1, control.heads_q = control.heads_kv = 8, control.seq_q = control.seq_kv = 4096;
  const AttnSpec mma = forced_spec(control, AttnFamily::mma, std::nullopt);
  std::vector<GeneratedUnit> units{mma.generate()};
  for (const AttnSpec& s : specs) units.push_back(s.generate());
  const std::vector<CubinResult> results = jit.cubins(units);
  REQUIRE(results.size() == units.size());
  {
    std::map<std::string, int> ops = sass_opcodes(results[0].record.cubin);
    CAPTURE(mma.canonical_name());
    CHECK(ops["IMMA"] > 0);
    CHECK(ops["HMMA"] > 0);
    CHECK(ops["IGMMA"] == 0);
  }
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const AttnSpec& s = specs[i];
    CAPTURE(s.canonical_name());
    std::map<std::string, int> ops = sass_opcodes(results[i + 1].record.cubin);
    MESSAGE(fmt::format("{}: IGMMA {} QGMMA {} HGMMA {}", s.canonical_name(), ops["IGMMA"], ops["QGMMA"],
                        ops["HGMMA"]));
    CHECK(ops["IGMMA"] > 0);
    if (s.quant.pv == PvType::fp8_e4m3) {
      CHECK(ops["QGMMA"] > 0);
    } else {
      CHECK(ops["HGMMA"] > 0);
    }
    CHECK(ops["IMMA"] == 0);
    CHECK(ops["HMMA"] == 0);
    CHECK(ops["LDL"] == 0);
    CHECK(ops["STL"] == 0);
  }
}
