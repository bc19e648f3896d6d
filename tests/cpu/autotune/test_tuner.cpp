// Tests of autotune/tuner that need no GPU: timing options that no timing loop can run with are
// refused before anything is allocated or launched (CI has no GPU, so a launch would fail otherwise).
#include <doctest/doctest.h>

#include <limits>

#include "autotune/problem.hpp"
#include "autotune/tuner.hpp"
#include "runtime/error.hpp"

using namespace sagejit;

TEST_CASE("timing: a warm-up time that is not finite is refused before anything runs") {
  Problem p;
  p.arch = parse_arch("sm_90a");
  p.batch = 1, p.heads_q = p.heads_kv = 2, p.seq_q = p.seq_kv = 256, p.head_dim = 128;
  const AttnSpec spec = default_spec(p);
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    CAPTURE(bad);
    TimingOptions o;
    o.warmup_ms = bad;
    CHECK_THROWS_WITH_AS(time_variant(p, spec, o), doctest::Contains("argument `warmup_ms`"), InvalidArgument);
  }
}
