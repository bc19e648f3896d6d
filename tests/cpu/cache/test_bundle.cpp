// test_bundle.cpp — exported bundles: the export → import → export round trip is byte-identical in
// both forms, damage is detected naming the bundle and the kernel, and winners import first-writer-wins.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <random>

#include "cache/bundle.hpp"
#include "runtime/error.hpp"
#include "tests/cpu/support.hpp"

namespace fs = std::filesystem;
using namespace sagejit;

namespace {

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("bundle-test") {}
};

CubinRecord kernel(int i, const std::string& arch = "sm_90a") {
  CubinRecord r;
  r.key = {fmt::format("attn.mma.d128.variant{}", i), "0123456789abcdef", "1", "13.0", "-arch=" + arch, arch};
  r.lowered_name = fmt::format("_Z4attnILi{}EEvv", i);
  r.cubin.resize(1000 + 37 * i);
  for (std::size_t j = 0; j < r.cubin.size(); ++j) r.cubin[j] = static_cast<char>((j * 131 + i) % 256);  // NULs too
  r.usage = {100 + i, 0, 0, 0, 512, 360};
  r.compile_ms = 812.25 + i;
  return r;
}

TuningWinner winner(const std::string& device, const std::string& bucket, const std::string& tile) {
  TuningWinner w;
  w.env = {device, "sm_90a", 132, "13.0", "13.0", "0123456789abcdef"};
  w.bucket = bucket;
  w.family = "mma";
  w.tile = tile;
  w.spec = "attn.mma." + tile;
  w.median_ms = 1.25;
  w.default_ms = 1.5;
  w.run_id = "run-1";
  return w;
}

Bundle sample() {
  Bundle b;
  for (int i : {3, 1, 2}) b.add(kernel(i));
  b.add(kernel(4, "sm_89"));
  b.add(winner("NVIDIA H100 80GB HBM3", "d128.b2", "t64x64w4s3"));
  b.add(winner("NVIDIA H100 80GB HBM3", "d128.b1", "t128x64w8s2"));
  TuningWinner no_default = winner("NVIDIA H100 PCIe", "d128.b1", "t64x64w4s2");
  no_default.default_ms.reset();
  b.add(no_default);
  return b;
}

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Export from the stores, as `sagejit export` does: each kernel by its key, every winner.
Bundle export_from(CubinStore& cubins, TuningStore& tuning, const Bundle& like) {
  Bundle b;
  for (const CubinRecord& k : like.kernels()) {
    auto got = cubins.get(k.key);
    REQUIRE(got);
    b.add(*got);
  }
  for (const TuningWinner& w : tuning.winners()) b.add(w);
  return b;
}

}  // namespace

TEST_CASE("bundle: export → import → export is byte-identical, as a single file and as a directory") {
  for (BundleFormat format : {BundleFormat::file, BundleFormat::directory}) {
    TempDir dir;
    const fs::path first = dir.path / (format == BundleFormat::file ? "a.sjb" : "a");
    const fs::path second = dir.path / (format == BundleFormat::file ? "b.sjb" : "b");
    const Bundle original = sample();
    original.write(first, format);

    const Bundle read = Bundle::read(first);
    REQUIRE(read.kernels().size() == 4);
    REQUIRE(read.winners().size() == 3);
    auto cubins = CubinStore::open(dir.path / "cache.sqlite3");
    auto tuning = TuningStore::open(dir.path / "cache.sqlite3");
    const ImportSummary s = import_bundle(read, *cubins, *tuning);
    CHECK(s.kernels == 4);
    CHECK(s.winners_added == 3);
    CHECK(s.winners_kept == 0);
    export_from(*cubins, *tuning, read).write(second, format);

    if (format == BundleFormat::file) {
      CHECK(bytes_of(first) == bytes_of(second));
    } else {
      CHECK(bytes_of(first / "manifest.json") == bytes_of(second / "manifest.json"));
      int files = 0;
      for (const auto& e : fs::directory_iterator(first / "kernels")) {
        CHECK(bytes_of(e.path()) == bytes_of(second / "kernels" / e.path().filename()));
        ++files;
      }
      CHECK(files == 4);
    }
    // The cubins themselves survived every step.
    for (const CubinRecord& k : original.kernels()) {
      const CubinRecord* r = read.find(k.key.spec, k.key.arch, k.key.template_hash, k.key.generator_version);
      REQUIRE(r);
      CHECK(r->cubin == k.cubin);
      CHECK(r->lowered_name == k.lowered_name);
      CHECK(r->usage.registers == k.usage.registers);
    }
  }
}

TEST_CASE("bundle lookups: kernels by spec, arch, templates and generator; winners by GPU, templates and bucket") {
  const Bundle b = sample();
  CHECK(b.find("attn.mma.d128.variant1", "sm_90a", "0123456789abcdef", "1"));
  CHECK_FALSE(b.find("attn.mma.d128.variant1", "sm_89", "0123456789abcdef", "1"));
  CHECK_FALSE(b.find("attn.mma.d128.variant1", "sm_90a", "ffffffffffffffff", "1"));
  CHECK_FALSE(b.find("attn.mma.d128.variant1", "sm_90a", "0123456789abcdef", "2"));
  TuningEnv h100 = {"NVIDIA H100 80GB HBM3", "sm_90a", 132, "12.9", "none", "0123456789abcdef"};
  // Driver and NVRTC are not compared: the bundle pins the cubins its winners were measured with.
  CHECK(b.winner(h100, "d128.b1")->tile == "t128x64w8s2");
  h100.sm_count = 114;
  CHECK_FALSE(b.winner(h100, "d128.b1"));
}

TEST_CASE("bundle: damage is an error naming the bundle and what is wrong") {
  TempDir dir;
  const fs::path file = dir.path / "a.sjb";
  sample().write(file, BundleFormat::file);
  std::string bytes = bytes_of(file);
  bytes[bytes.size() - 10] ^= 0x5a;  // inside the last cubin
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  CHECK_THROWS_WITH_AS(Bundle::read(file), doctest::Contains("fails its checksum"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Bundle::read(file), doctest::Contains(file.string().c_str()), InvalidArgument);

  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
  CHECK_THROWS_WITH_AS(Bundle::read(file), doctest::Contains("truncated"), InvalidArgument);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << "hello";
  CHECK_THROWS_WITH_AS(Bundle::read(file), doctest::Contains("not a sagejit bundle"), InvalidArgument);
  CHECK_THROWS_WITH_AS(Bundle::read(dir.path / "missing.sjb"), doctest::Contains("does not exist"), InvalidArgument);

  const fs::path d = dir.path / "d";
  sample().write(d, BundleFormat::directory);
  fs::remove(*fs::directory_iterator(d / "kernels"));
  CHECK_THROWS_WITH_AS(Bundle::read(d), doctest::Contains("argument `bundle`"), InvalidArgument);
}

TEST_CASE("import keeps a winner already stored for the same GPU and bucket") {
  TempDir dir;
  auto cubins = CubinStore::open(dir.path / "c.sqlite3");
  auto tuning = TuningStore::open(dir.path / "c.sqlite3");
  tuning->put_winner(winner("NVIDIA H100 80GB HBM3", "d128.b1", "t64x32w2s2"));
  const ImportSummary s = import_bundle(sample(), *cubins, *tuning);
  CHECK(s.winners_kept == 1);
  CHECK(s.winners_added == 2);
  TuningEnv e = winner("NVIDIA H100 80GB HBM3", "", "").env;
  CHECK(tuning->winner(e, "d128.b1")->tile == "t64x32w2s2");
}
