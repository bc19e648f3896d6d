// Tests of runtime/jit with an exported bundle: lookup order (cache, then bundle, then compile) and
// JIT-free deployment (SAGEJIT_JIT=0: a kernel missing from the bundle is an error naming its spec
// and the bundle, never a compile).
#include <doctest/doctest.h>

#include "cache/bundle.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"

using namespace sagejit;

namespace {

GeneratedUnit probe(int n) {
  return GeneratedUnit{"probe.bundle.n" + std::to_string(n), parse_arch("sm_89"),
                       "__global__ void fill(float* o) { o[0] = " + std::to_string(n) + "; }\n", "&fill"};
}

std::shared_ptr<const Bundle> bundle_of(const std::vector<GeneratedUnit>& units) {
  Jit builder(CubinStore::in_memory());
  auto b = std::make_shared<Bundle>();
  for (const CubinResult& r : builder.cubins(units)) b->add(r.record);
  return b;
}

}  // namespace

TEST_CASE("with JIT off, a kernel comes from the bundle without compiling; a missing one names spec and bundle") {
  const auto bundle = bundle_of({probe(1)});
  Jit jit(CubinStore::in_memory(), /*allow_compile=*/false, bundle, "/opt/app/kernels.sjb");
  const CubinResult r = jit.cubin(probe(1));
  CHECK(r.source == CubinSource::bundle);
  CHECK(r.record.cubin == bundle->kernels()[0].cubin);
  CHECK(jit.cubin(probe(1)).source == CubinSource::memory);
  CHECK_THROWS_WITH_AS(jit.cubin(probe(2)), doctest::Contains("probe.bundle.n2"), NotAvailable);
  CHECK_THROWS_WITH_AS(jit.cubin(probe(2)), doctest::Contains("/opt/app/kernels.sjb"), NotAvailable);
  const JitStats s = jit.stats();
  CHECK(s.compiled == 0);
  CHECK(s.bundle == 1);
  CHECK(s.memory == 1);
  CHECK(jit.store().list().empty());  // the bundle is read-only: nothing is copied into the cache
}

TEST_CASE("with JIT off and no bundle, the error says that no bundle is set") {
  Jit jit(CubinStore::in_memory(), false);
  CHECK_THROWS_WITH_AS(jit.cubin(probe(3)), doctest::Contains("SAGEJIT_BUNDLE"), NotAvailable);
  Jit broken(CubinStore::in_memory(), false, nullptr, "/bad/bundle");
  CHECK_THROWS_WITH_AS(broken.cubin(probe(3)), doctest::Contains("could not be read"), NotAvailable);
}

TEST_CASE("the cache is searched before the bundle, and with JIT on a bundle miss compiles") {
  const auto bundle = bundle_of({probe(4)});
  auto store = CubinStore::in_memory();
  Jit seed(CubinStore::in_memory());
  store->put(seed.cubin(probe(4)).record);
  Jit jit(std::move(store), true, bundle, "b");
  CHECK(jit.cubin(probe(4)).source == CubinSource::disk);
  CHECK(jit.cubin(probe(5)).source == CubinSource::compiled);
  CHECK(jit.stats().compiled == 1);
}
