// The sm_90a attention kernels attention() runs by default execute on the warpgroup tensor-core
// instructions and touch no local memory. This is read off their disassembly (nvdisasm, named by
// SAGEJIT_NVDISASM: scripts/test.sh installs it from PyPI; without it the test is skipped, and says so):
//   - QKᵀ is IGMMA (int8, also two-term), never the warp-level IMMA;
//   - P·V is QGMMA e4m3 (FP8 P·V) or HGMMA (16-bit P·V), never HMMA;
//   - no LDL / STL (spills, or arrays the compiler could not keep in registers).
// Covered: every head dim and P·V type, no mask and causal, with and without LSE, as default_spec
// and attention()'s fused-Q rule choose them on sm_90a; and, as a control, the portable mma.sync
// kernel, which must read IMMA and HMMA. No GPU needed.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <unistd.h>

#include "autotune/problem.hpp"
#include "generator/attn_spec.hpp"
#include "runtime/jit.hpp"

using namespace sagejit;

namespace {

const char* nvdisasm_path() {
  const char* p = std::getenv("SAGEJIT_NVDISASM");
  return p != nullptr && *p != '\0' ? p : nullptr;
}

// Opcode (the mnemonic before its first '.') → count, over the SASS of `cubin`.
std::map<std::string, int> sass_opcodes(const std::vector<char>& cubin) {
  char path[] = "/tmp/sagejit-sass-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(cubin.data(), static_cast<std::streamsize>(cubin.size()));
    REQUIRE(out.good());
  }
  const std::string command = fmt::format("'{}' -c '{}' 2>&1", nvdisasm_path(), path);
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::map<std::string, int> counts;
  std::string text;
  char line[4096];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    text = line;
    // "        /*0ab0*/                   @!P1 IGMMA.64x128x32.S8.S8 R24, gdesc[UR28], R24 ;"
    const auto close_comment = text.find("*/");
    if (text.find("/*") == std::string::npos || close_comment == std::string::npos) continue;
    std::size_t i = text.find_first_not_of(' ', close_comment + 2);
    if (i == std::string::npos) continue;
    if (text[i] == '@') i = text.find(' ', i) + 1;  // a predicate
    const std::size_t end = text.find_first_of(" .;", i);
    if (end == std::string::npos || end == i) continue;
    ++counts[text.substr(i, end - i)];
  }
  const int status = pclose(pipe);
  std::remove(path);
  CHECK_MESSAGE(status == 0, "nvdisasm failed: " << text);
  return counts;
}

}  // namespace

TEST_CASE("attention's default sm_90a kernels run on IGMMA / QGMMA / HGMMA with no local memory" *
          doctest::skip(nvdisasm_path() == nullptr)) {
  Jit jit(CubinStore::in_memory());
  std::vector<AttnSpec> specs;
  for (int d : {64, 96, 128, 256}) {
    for (auto [qk, pv] : {std::pair{QuantType::int8, PvType::fp8_e4m3}, std::pair{QuantType::int8, PvType::f16},
                          std::pair{QuantType::int8x2, PvType::f16}}) {
      for (Mask mask : {Mask::none, Mask::causal_top_left}) {
        Problem p;
        p.arch = parse_arch("sm_90a");
        p.batch = 1, p.heads_q = p.heads_kv = 8, p.seq_q = p.seq_kv = 4096;
        p.head_dim = d, p.qk = qk, p.pv = pv, p.mask = mask, p.lse = mask != Mask::none;
        AttnSpec s = default_spec(p);
        s.quant.fused_q = can_fuse_q(s);  // as attention() does
        REQUIRE(s.family == AttnFamily::wgmma);
        specs.push_back(s);
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
