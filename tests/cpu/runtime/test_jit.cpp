// Tests of runtime/jit: memory, disk and compile paths; keys per arch; JIT-off behaviour;
// parallel compiles.
#include <doctest/doctest.h>

#include <filesystem>
#include <random>

#include "generator/quant_spec.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"

using namespace sagejit;

namespace {

std::filesystem::path temp_db() {
  std::random_device rd;
  auto dir = std::filesystem::temp_directory_path() / ("sagejit-jit-test-" + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  return dir / "cache.sqlite3";
}

GeneratedUnit probe_unit(const Arch& arch, int n) {
  return GeneratedUnit{"probe.fill.n" + std::to_string(n), arch,
                       "#include \"quant_layout.cuh\"\n__global__ void fill(float* o) { o[0] = " + std::to_string(n) +
                           " * sagejit::layout::kInt8Max; }\n",
                       "&fill"};
}

}  // namespace

TEST_CASE("a miss compiles and stores; the same process hits memory; a new process hits disk") {
  const auto db = temp_db();
  const GeneratedUnit unit = probe_unit(parse_arch("sm_89"), 1);
  {
    Jit jit(CubinStore::open(db));
    CubinResult first = jit.cubin(unit);
    CHECK(first.source == CubinSource::compiled);
    CHECK(first.record.compile_ms > 0);
    CubinResult second = jit.cubin(unit);
    CHECK(second.source == CubinSource::memory);
    CHECK(second.record.cubin == first.record.cubin);
  }
  Jit fresh(CubinStore::open(db));
  CubinResult third = fresh.cubin(unit);
  CHECK(third.source == CubinSource::disk);
  CHECK(third.record.key.spec == unit.spec_name);
  std::filesystem::remove_all(db.parent_path());
}

TEST_CASE("the key changes with the arch and the spec, and carries template hash and NVRTC version") {
  CubinKey a = Jit::key_for(probe_unit(parse_arch("sm_89"), 1));
  CubinKey b = Jit::key_for(probe_unit(parse_arch("sm_90a"), 1));
  CubinKey c = Jit::key_for(probe_unit(parse_arch("sm_89"), 2));
  CHECK(a.digest() != b.digest());
  CHECK(a.digest() != c.digest());
  CHECK(a.options != b.options);
  CHECK(a.template_hash.size() == 16);
  CHECK(a.nvrtc_version.find('.') != std::string::npos);
}

TEST_CASE("with compilation off, a kernel in no cache is an error naming its spec, and nothing is written") {
  const auto db = temp_db();
  Jit jit(CubinStore::open(db), /*allow_compile=*/false);
  const GeneratedUnit unit = probe_unit(parse_arch("sm_80"), 7);
  CHECK_THROWS_WITH_AS(jit.cubin(unit), doctest::Contains("probe.fill.n7"), NotAvailable);
  CHECK(jit.store().list().empty());
  std::filesystem::remove_all(db.parent_path());
}

TEST_CASE("several units compile in parallel, results in input order, first error rethrown") {
  Jit jit(CubinStore::in_memory());
  std::vector<GeneratedUnit> units;
  for (int i = 0; i < 4; ++i) units.push_back(probe_unit(parse_arch("sm_86"), 10 + i));
  std::vector<CubinResult> results = jit.cubins(units);
  REQUIRE(results.size() == units.size());
  for (std::size_t i = 0; i < units.size(); ++i) CHECK(results[i].record.key.spec == units[i].spec_name);
  units.push_back(GeneratedUnit{"probe.broken", parse_arch("sm_86"), "__global__ void k() { nope(); }", "&k"});
  CHECK_THROWS_AS(jit.cubins(units), CompileError);
}
