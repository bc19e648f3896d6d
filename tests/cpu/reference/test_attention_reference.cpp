// Hand-checkable cases for the float64 attention reference: if these hold, every GPU accuracy test
// that measures against it measures against the right thing.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "reference/attention_reference.hpp"

namespace ref = sagejit::reference;
using Vec = std::vector<double>;

namespace {

ref::AttentionResult run(const Vec& q, const Vec& k, const Vec& v, ref::AttentionShape s,
                         ref::AttentionOptions o = {}) {
  return ref::attention(std::span<const double>(q), std::span<const double>(k),
                        std::span<const double>(v), s, o);
}

}  // namespace

TEST_CASE("one query, two keys: softmax by hand") {
  // D = 1, sm_scale = 1: scores q·k = {0, ln 3} -> weights {1/4, 3/4}.
  const double ln3 = std::log(3.0);
  ref::AttentionShape s{1, 1, 1, 1, 2, 1};
  ref::AttentionOptions o;
  o.sm_scale = 1.0;
  const auto r = run({1.0}, {0.0, ln3}, {10.0, 20.0}, s, o);
  CHECK(r.out[0] == doctest::Approx(0.25 * 10.0 + 0.75 * 20.0).epsilon(1e-14));
  CHECK(r.lse[0] == doctest::Approx(std::log(1.0 + 3.0)).epsilon(1e-14));
}

TEST_CASE("default sm_scale is 1/sqrt(D)") {
  // D = 4, q = k0 = (1,1,1,1): score 4 / 2 = 2 against k1 = 0: weights e^2/(e^2+1), 1/(e^2+1).
  ref::AttentionShape s{1, 1, 1, 1, 2, 4};
  const Vec q(4, 1.0), k = {1, 1, 1, 1, 0, 0, 0, 0}, v = {1, 0, 0, 0, 0, 1, 0, 0};
  const auto r = run(q, k, v, s);
  const double w0 = std::exp(2.0) / (std::exp(2.0) + 1.0);
  CHECK(r.out[0] == doctest::Approx(w0).epsilon(1e-14));
  CHECK(r.out[1] == doctest::Approx(1.0 - w0).epsilon(1e-14));
  CHECK(r.lse[0] == doctest::Approx(std::log(std::exp(2.0) + 1.0)).epsilon(1e-14));
}

TEST_CASE("causal masks on Sq != Skv, both alignments") {
  // D = 1, q = 0: uniform weights over the visible keys, v_j = j, so O = mean of visible j and
  // LSE = log(number of visible keys).
  const int sq = 2, skv = 4;
  ref::AttentionShape s{1, 1, 1, sq, skv, 1};
  const Vec q(sq, 0.0), k(skv, 1.0), v = {0, 1, 2, 3};
  ref::AttentionOptions o;
  o.sm_scale = 1.0;

  o.mask = ref::AttentionMask::causal_top_left;  // row i sees keys 0..i
  auto r = run(q, k, v, s, o);
  CHECK(r.out[0] == doctest::Approx(0.0));
  CHECK(r.out[1] == doctest::Approx(0.5));
  CHECK(r.lse[0] == doctest::Approx(std::log(1.0)));
  CHECK(r.lse[1] == doctest::Approx(std::log(2.0)));

  o.mask = ref::AttentionMask::causal_bottom_right;  // row i sees keys 0..i+2
  r = run(q, k, v, s, o);
  CHECK(r.out[0] == doctest::Approx(1.0));  // keys 0,1,2
  CHECK(r.out[1] == doctest::Approx(1.5));  // keys 0..3
  CHECK(r.lse[0] == doctest::Approx(std::log(3.0)));
  CHECK(r.lse[1] == doctest::Approx(std::log(4.0)));

  o.mask = ref::AttentionMask::none;
  r = run(q, k, v, s, o);
  CHECK(r.out[0] == doctest::Approx(1.5));
  CHECK(r.out[1] == doctest::Approx(1.5));
}

TEST_CASE("bottom-right with Sq > Skv: rows that see no key give 0 and -inf, never NaN") {
  const int sq = 4, skv = 2;  // row i sees keys <= i - 2: rows 0, 1 see nothing
  ref::AttentionShape s{1, 1, 1, sq, skv, 1};
  ref::AttentionOptions o;
  o.sm_scale = 1.0;
  o.mask = ref::AttentionMask::causal_bottom_right;
  const auto r = run(Vec(sq, 0.0), Vec(skv, 0.0), {5.0, 7.0}, s, o);
  const double ninf = -std::numeric_limits<double>::infinity();
  CHECK(r.out[0] == 0.0);
  CHECK(r.out[1] == 0.0);
  CHECK(r.lse[0] == ninf);
  CHECK(r.lse[1] == ninf);
  CHECK(r.out[2] == doctest::Approx(5.0));  // key 0 only
  CHECK(r.out[3] == doctest::Approx(6.0));  // keys 0, 1
  for (double x : r.out) CHECK_FALSE(std::isnan(x));
}

TEST_CASE("GQA: q heads 0,1 read kv head 0 and q heads 2,3 read kv head 1") {
  ref::AttentionShape s{1, 4, 2, 1, 1, 1};  // one key per kv head: O = that key's v
  const auto r = run(Vec(4, 1.0), {1.0, 1.0}, {10.0, 20.0}, s);
  CHECK(r.out[0] == 10.0);
  CHECK(r.out[1] == 10.0);
  CHECK(r.out[2] == 20.0);
  CHECK(r.out[3] == 20.0);
  CHECK_THROWS_AS(run(Vec(3, 1.0), {1.0, 1.0}, {1.0, 2.0}, ref::AttentionShape{1, 3, 2, 1, 1, 1}),
                  std::invalid_argument);
}

TEST_CASE("varlen: rows past a sequence's length are ignored and written as 0 / -inf") {
  // Two sequences in slots of Sq = Skv = 2: lengths q {1, 2}, k {2, 1}.
  ref::AttentionShape s{2, 1, 1, 2, 2, 1};
  ref::AttentionOptions o;
  o.sm_scale = 1.0;
  o.cu_seqlens_q = {0, 1, 3};
  o.cu_seqlens_k = {0, 2, 3};
  const Vec q(4, 0.0), k(4, 0.0);
  const Vec v = {1.0, 3.0, 5.0, 1e9};  // batch 1's second key (1e9) is padding
  const auto r = run(q, k, v, s, o);
  CHECK(r.out[0] == doctest::Approx(2.0));  // mean of 1, 3
  CHECK(r.out[1] == 0.0);                   // padding row of batch 0
  CHECK(r.out[2] == doctest::Approx(5.0));
  CHECK(r.out[3] == doctest::Approx(5.0));
  CHECK(r.lse[1] == -std::numeric_limits<double>::infinity());
  CHECK(r.lse[2] == doctest::Approx(0.0));
}

TEST_CASE("metrics") {
  const Vec a = {1.0, -2.0, 3.0};
  auto m = ref::compare(std::span<const double>(a), std::span<const double>(a));
  CHECK(m.cosine == doctest::Approx(1.0));
  CHECK(m.rel_l1 == 0.0);
  CHECK(m.rmse == 0.0);

  const Vec b = {2.0, -2.0, 3.0};  // one error of 1: L1 1/6, RMSE sqrt(1/3)
  m = ref::compare(std::span<const double>(b), std::span<const double>(a));
  CHECK(m.rel_l1 == doctest::Approx(1.0 / 6.0));
  CHECK(m.rmse == doctest::Approx(std::sqrt(1.0 / 3.0)));
  CHECK(m.cosine == doctest::Approx(15.0 / (std::sqrt(17.0) * std::sqrt(14.0))));  // b·a = 15

  const Vec z(3, 0.0);
  m = ref::compare(std::span<const double>(z), std::span<const double>(z));
  CHECK(m.cosine == 1.0);
  CHECK(m.rel_l1 == 0.0);

  const std::vector<float> nan_out = {1.0f, std::numeric_limits<float>::quiet_NaN(), 3.0f};
  m = ref::compare(std::span<const float>(nan_out), std::span<const double>(a));
  CHECK(std::isnan(m.cosine));
  CHECK(std::isnan(m.rel_l1));
}
