// test_quant_reference.cpp — hand-computed cases for the host quantization reference
// (reference/quant_reference.cpp), which the GPU tests then use as the bit-exact oracle.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>
#include <vector>

#include "reference/quant_reference.hpp"

namespace ref = sagejit::reference;
namespace layout = sagejit::layout;
using layout::Granularity;

namespace {

// A contiguous [B, H, S, D] fp16 tensor built from floats (each must be fp16-exact).
struct F16Tensor {
  int b, h, s, d;
  std::vector<std::uint16_t> bits;
  F16Tensor(int b_, int h_, int s_, int d_)
      : b(b_), h(h_), s(s_), d(d_), bits(static_cast<std::size_t>(b_) * h_ * s_ * d_, 0) {}
  void set(int bi, int hi, int si, int c, float v) {
    const std::uint16_t u = ref::float_to_f16(v);
    REQUIRE(ref::f16_to_float(u) == v);
    set_bits(bi, hi, si, c, u);
  }
  void set_bits(int bi, int hi, int si, int c, std::uint16_t u) {
    bits[((static_cast<std::size_t>(bi) * h + hi) * s + si) * d + c] = u;
  }
  ref::HostTensor view() const {
    return ref::HostTensor{bits.data(), ref::DType::f16, b, h, s, d,
                           static_cast<std::int64_t>(h) * s * d, static_cast<std::int64_t>(s) * d,
                           d};
  }
};

std::int8_t as_int8(std::uint8_t u) { return static_cast<std::int8_t>(u); }

}  // namespace

TEST_CASE("fp16 and bf16 conversions of known bit patterns") {
  CHECK(ref::f16_to_float(0x3c00) == 1.0f);
  CHECK(ref::f16_to_float(0xc000) == -2.0f);
  CHECK(ref::f16_to_float(0x7bff) == 65504.0f);
  CHECK(ref::f16_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(ref::f16_to_float(0x0400) == std::ldexp(1.0f, -14));
  CHECK(std::isinf(ref::f16_to_float(0x7c00)));
  CHECK(std::isnan(ref::f16_to_float(0x7e00)));

  CHECK(ref::float_to_f16(1.0f) == 0x3c00);
  CHECK(ref::float_to_f16(-2.0f) == 0xc000);
  CHECK(ref::float_to_f16(65504.0f) == 0x7bff);
  CHECK(ref::float_to_f16(65519.0f) == 0x7bff);  // below the midpoint to 65536
  CHECK(ref::float_to_f16(65520.0f) == 0x7c00);  // tie, rounds to even = infinity
  CHECK(ref::float_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);      // tie -> even
  CHECK(ref::float_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie -> even (up)
  CHECK(ref::float_to_f16(std::ldexp(1.0f, -25)) == 0x0000);             // subnormal tie -> 0
  CHECK(ref::float_to_f16(3 * std::ldexp(1.0f, -26)) == 0x0001);         // 0.75 ulp -> 1
  CHECK(ref::float_to_f16(std::ldexp(1023.5f, -24)) == 0x0400);  // rounds up into the normals
  CHECK(ref::float_to_f16(-0.0f) == 0x8000);

  CHECK(ref::bf16_to_float(0x3f80) == 1.0f);
  CHECK(ref::bf16_to_float(0xc040) == -3.0f);
  CHECK(ref::float_to_bf16(1.0f) == 0x3f80);
  CHECK(ref::float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);      // tie -> even
  CHECK(ref::float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);  // tie -> even (up)
  CHECK(ref::float_to_bf16(1.0f + std::ldexp(1.0f, -7)) == 0x3f81);      // exact
  CHECK(std::isnan(ref::bf16_to_float(ref::float_to_bf16(std::nanf("")))));

  // Every finite fp16 value survives float and back.
  for (std::uint32_t u = 0; u < 0x10000; ++u) {
    const auto h = static_cast<std::uint16_t>(u);
    if ((h & 0x7c00) == 0x7c00) continue;
    CHECK_MESSAGE(ref::float_to_f16(ref::f16_to_float(h)) == h, "bits ", h);
  }
}

TEST_CASE("e4m3 conversion: known values, ties to even, saturation") {
  CHECK(ref::float_to_e4m3(448.0f) == 0x7e);
  CHECK(ref::float_to_e4m3(-448.0f) == 0xfe);
  CHECK(ref::float_to_e4m3(1.0f) == 0x38);
  CHECK(ref::float_to_e4m3(0.001953125f) == 0x01);  // 2^-9, the smallest subnormal
  CHECK(ref::float_to_e4m3(std::ldexp(1.0f, -6)) == 0x08);  // the smallest normal
  CHECK(ref::float_to_e4m3(0.0f) == 0x00);
  CHECK(ref::float_to_e4m3(-0.0f) == 0x80);
  // Ties to even: 1.0625 lies between 1.0 (0x38) and 1.125 (0x39); 1.1875 between 0x39 and 0x3a.
  CHECK(ref::float_to_e4m3(1.0625f) == 0x38);
  CHECK(ref::float_to_e4m3(1.1875f) == 0x3a);
  CHECK(ref::float_to_e4m3(1.07f) == 0x39);  // above the tie
  // Subnormal ties: 1.5 * 2^-9 -> 2 * 2^-9; 0.5 * 2^-9 -> 0.
  CHECK(ref::float_to_e4m3(1.5f * 0.001953125f) == 0x02);
  CHECK(ref::float_to_e4m3(0.5f * 0.001953125f) == 0x00);
  CHECK(ref::float_to_e4m3(0.51f * 0.001953125f) == 0x01);
  // 7.5 * 2^-9 is halfway between the largest subnormal 7 * 2^-9 and 2^-6: even = 2^-6.
  CHECK(ref::float_to_e4m3(7.5f * 0.001953125f) == 0x08);
  // Saturation (satfinite): above 448, infinities too; NaN stays NaN.
  CHECK(ref::float_to_e4m3(500.0f) == 0x7e);
  CHECK(ref::float_to_e4m3(-500.0f) == 0xfe);
  CHECK(ref::float_to_e4m3(460.0f) == 0x7e);
  CHECK(ref::float_to_e4m3(INFINITY) == 0x7e);
  CHECK((ref::float_to_e4m3(std::nanf("")) & 0x7f) == 0x7f);
  // 416 = 1.625 * 2^8 is 0x7d; 432 is the tie between 0x7d and 0x7e -> 0x7e (even mantissa).
  CHECK(ref::float_to_e4m3(416.0f) == 0x7d);
  CHECK(ref::float_to_e4m3(432.0f) == 0x7e);

  CHECK(ref::e4m3_to_float(0x7e) == 448.0f);
  CHECK(ref::e4m3_to_float(0x38) == 1.0f);
  CHECK(ref::e4m3_to_float(0x01) == 0.001953125f);
  CHECK(ref::e4m3_to_float(0xb8) == -1.0f);
  CHECK(std::isnan(ref::e4m3_to_float(0x7f)));
  // Every finite code round-trips.
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7f) == 0x7f) continue;
    CHECK_MESSAGE(ref::float_to_e4m3(ref::e4m3_to_float(static_cast<std::uint8_t>(b))) == b,
                  "code ", b);
  }
}

TEST_CASE("int8: a one-row block with known values") {
  // D = 64, seq_len = 1, block 16: row 0 holds 127, -3.5, 2.5, 0.4 (fp16 0.39990234375), 1.5,
  // the rest 0. max|x| = 127 -> scale = 1, 1 / scale = 1 -> values rint(x), ties to even.
  F16Tensor q(1, 1, 1, 64);
  q.set(0, 0, 0, 0, 127.0f);
  q.set(0, 0, 0, 1, -3.5f);
  q.set(0, 0, 0, 2, 2.5f);
  q.set(0, 0, 0, 3, 0.39990234375f);
  q.set(0, 0, 0, 4, 1.5f);
  ref::QuantQKOptions o;
  o.granularity = Granularity::per_block;
  o.block_tokens = 16;
  o.warp_tokens = 16;
  o.scale_multiplier = 0.5f;
  const auto r = ref::quantize_qk(q.view(), o);
  REQUIRE(r.seq_len_pad == 16);
  REQUIRE(r.groups == 1);
  REQUIRE(r.values.size() == 16u * 64u);
  CHECK(r.scales[0] == 0.5f);  // scale 1, times the multiplier
  CHECK(as_int8(r.values[0]) == 127);
  CHECK(as_int8(r.values[1]) == -4);  // -3.5 -> -4 (even)
  CHECK(as_int8(r.values[2]) == 2);   // 2.5 -> 2 (even)
  CHECK(as_int8(r.values[3]) == 0);
  CHECK(as_int8(r.values[4]) == 2);  // 1.5 -> 2 (even)
  for (std::size_t i = 5; i < r.values.size(); ++i) CHECK(r.values[i] == 0);  // padding rows

  // max|x| = 2 -> scale = 2 / 127 (float), 1/scale = 63.5 after float rounding of both steps.
  F16Tensor k(1, 1, 1, 64);
  k.set(0, 0, 0, 0, -2.0f);
  k.set(0, 0, 0, 1, 1.0f);
  o.is_query = false;
  o.scale_multiplier = 1.0f;
  const auto rk = ref::quantize_qk(k.view(), o);
  const float scale = 2.0f / 127.0f;
  CHECK(rk.scales[0] == scale);
  CHECK(as_int8(rk.values[0]) == -127);
  CHECK(as_int8(rk.values[1]) == static_cast<int>(std::nearbyint(1.0f * (1.0f / scale))));
  CHECK(as_int8(rk.values[1]) == 64);  // 63.50000x rounds up

  // An all-zero block gets the floor scale and zero values.
  F16Tensor z(1, 1, 5, 64);
  const auto rz = ref::quantize_qk(z.view(), o);
  CHECK(rz.scales[0] == layout::kMinScale);
  for (auto v : rz.values) CHECK(v == 0);
}

TEST_CASE("int4 packing: two values per byte, even channel in the low nibble") {
  F16Tensor q(1, 1, 1, 64);
  q.set(0, 0, 0, 0, 1.0f);
  q.set(0, 0, 0, 1, -2.0f);
  q.set(0, 0, 0, 2, 7.0f);
  q.set(0, 0, 0, 3, -7.0f);
  q.set(0, 0, 0, 5, 3.0f);
  ref::QuantQKOptions o;
  o.bits = 4;
  o.granularity = Granularity::per_block;
  o.block_tokens = 16;
  o.warp_tokens = 16;
  const auto r = ref::quantize_qk(q.view(), o);  // max 7 -> scale 1
  REQUIRE(r.values.size() == 16u * 32u);
  CHECK(r.scales[0] == 1.0f);
  CHECK(r.values[0] == 0xe1);  // ch0 = 1 (low), ch1 = -2 = 0xe (high)
  CHECK(r.values[1] == 0x97);  // ch2 = 7 (low), ch3 = -7 = 0x9 (high)
  CHECK(r.values[2] == 0x30);  // ch4 = 0 (low), ch5 = 3 (high)
  CHECK(r.values[3] == 0x00);
}

TEST_CASE("int8x2: the second term is the rounding residual at 1/256 of the step") {
  // max|x| = 127 -> scale 1, so q = rint(x) and r = rint((x − q) · 256), clamped to ±127.
  F16Tensor q(1, 1, 1, 64);
  q.set(0, 0, 0, 0, 127.0f);
  q.set(0, 0, 0, 1, -3.5f);           // q = −4 (even), residual +0.5 -> 128 -> clamped 127
  q.set(0, 0, 0, 2, 2.25f);           // q = 2, residual 0.25 -> 64
  q.set(0, 0, 0, 3, 0.39990234375f);  // q = 0, residual 0.3999 · 256 = 102.375 -> 102
  q.set(0, 0, 0, 4, -1.375f);         // q = −1, residual −0.375 -> −96
  ref::QuantQKOptions o;
  o.granularity = Granularity::per_block;
  o.block_tokens = 16;
  o.warp_tokens = 16;
  const auto one = ref::quantize_qk(q.view(), o);
  o.terms = 2;
  const auto two = ref::quantize_qk(q.view(), o);
  REQUIRE(two.values.size() == 16u * 128u);  // rows of 2·D bytes
  CHECK(two.scales == one.scales);
  const int expect_q[] = {127, -4, 2, 0, -1}, expect_r[] = {0, 127, 64, 102, -96};
  for (int c = 0; c < 5; ++c) {
    CAPTURE(c);
    CHECK(as_int8(two.values[c]) == expect_q[c]);
    CHECK(as_int8(two.values[64 + c]) == expect_r[c]);
  }
  // The first term is the one-term value, row by row; padding rows stay zero.
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 64; ++c) {
      CHECK(two.values[r * 128 + c] == one.values[r * 64 + c]);
      if (r > 0 || c >= 5) CHECK(two.values[r * 128 + 64 + c] == 0);
    }
  }
  o.bits = 4;
  CHECK_THROWS_AS(ref::quantize_qk(q.view(), o), std::invalid_argument);
}

TEST_CASE("per-thread Q groups: block_q = 32, warp_q = 16") {
  // Rows with equal row % 8 within one warp's 16 rows share a scale; warp 1 starts at row 16.
  CHECK(layout::q_group_of_row(Granularity::per_thread, 0, 16) ==
        layout::q_group_of_row(Granularity::per_thread, 8, 16));
  CHECK(layout::q_group_of_row(Granularity::per_thread, 0, 16) !=
        layout::q_group_of_row(Granularity::per_thread, 1, 16));
  CHECK(layout::q_group_of_row(Granularity::per_thread, 16, 16) == 8);
  CHECK(layout::q_groups(Granularity::per_thread, 32, 16) == 16);

  F16Tensor q(1, 1, 32, 64);
  q.set(0, 0, 0, 0, 1.0f);    // group 0
  q.set(0, 0, 8, 3, -2.0f);   // group 0 too: its max is 2
  q.set(0, 0, 1, 0, 4.0f);    // group 1
  q.set(0, 0, 16, 5, 8.0f);   // group 8 (warp 1, row 0)
  q.set(0, 0, 24, 6, 0.5f);   // group 8 too: quantized with max 8
  ref::QuantQKOptions o;
  o.granularity = Granularity::per_thread;
  o.block_tokens = 32;
  o.warp_tokens = 16;
  const auto r = ref::quantize_qk(q.view(), o);
  REQUIRE(r.groups == 16);
  CHECK(r.scales[0] == 2.0f / 127.0f);
  CHECK(r.scales[1] == 4.0f / 127.0f);
  CHECK(r.scales[8] == 8.0f / 127.0f);
  for (int g : {2, 3, 4, 5, 6, 7, 9, 15}) CHECK(r.scales[g] == layout::kMinScale);
  CHECK(as_int8(r.values[8 * 64 + 3]) == -127);
  CHECK(as_int8(r.values[0 * 64 + 0]) == 64);  // 1 / (2/127) = 63.5 -> 64
  CHECK(as_int8(r.values[1 * 64 + 0]) == 127);
  CHECK(as_int8(r.values[16 * 64 + 5]) == 127);
  CHECK(as_int8(r.values[24 * 64 + 6]) == 8);  // 0.5 * 127 / 8 = 7.94
}

TEST_CASE("per-thread K groups: keys with equal (key % 8) / 2 in one warp share a scale") {
  CHECK(layout::k_group_of_key(Granularity::per_thread, 0, 32) ==
        layout::k_group_of_key(Granularity::per_thread, 1, 32));
  CHECK(layout::k_group_of_key(Granularity::per_thread, 0, 32) ==
        layout::k_group_of_key(Granularity::per_thread, 9, 32));
  CHECK(layout::k_group_of_key(Granularity::per_thread, 0, 32) !=
        layout::k_group_of_key(Granularity::per_thread, 2, 32));
  CHECK(layout::k_group_of_key(Granularity::per_thread, 32, 32) == 4);
}

TEST_CASE("K smoothing removes a per-channel bias exactly") {
  // K = base + bias[c], where base alternates +-v over token pairs, so the mean is exactly bias
  // and K - mean is exactly base: smoothed K quantizes like the unbiased base.
  const int S = 300, D = 64;  // two stats chunks, the second partial; two K blocks of 128 + pad
  F16Tensor k(1, 2, S, D), base(1, 2, S, D);
  for (int h = 0; h < 2; ++h) {
    for (int s = 0; s < S; ++s) {
      for (int c = 0; c < D; ++c) {
        const float v = (s % 2 ? -1.0f : 1.0f) * (0.25f * static_cast<float>(1 + (s / 2 + c) % 8));
        const float bias = static_cast<float>((c * 7 + h * 3) % 41) - 20.0f;
        base.set(0, h, s, c, v);
        k.set(0, h, s, c, v + bias);
      }
    }
  }
  const auto mean = ref::k_mean(k.view());
  for (int h = 0; h < 2; ++h) {
    for (int c = 0; c < D; ++c) {
      CHECK(mean[h * D + c] == static_cast<float>((c * 7 + h * 3) % 41) - 20.0f);
    }
  }
  ref::QuantQKOptions o;
  o.is_query = false;
  o.granularity = Granularity::per_thread;
  o.block_tokens = 128;
  o.warp_tokens = 32;
  o.smooth = true;
  const auto smoothed = ref::quantize_qk(k.view(), o, mean);
  o.smooth = false;
  const auto plain = ref::quantize_qk(base.view(), o);
  CHECK(smoothed.values == plain.values);
  CHECK(smoothed.scales == plain.scales);
  CHECK(smoothed.seq_len_pad == 384);
}

TEST_CASE("Q smoothing: block mean written, subtracted, zero padding") {
  // Block of 16 rows, 3 valid: channel c holds 1, 2, 6 (+ c) -> mean 3 + c.
  F16Tensor q(1, 1, 3, 64);
  for (int c = 0; c < 64; ++c) {
    q.set(0, 0, 0, c, 1.0f + c);
    q.set(0, 0, 1, c, 2.0f + c);
    q.set(0, 0, 2, c, 6.0f + c);
  }
  ref::QuantQKOptions o;
  o.smooth = true;
  o.granularity = Granularity::per_block;
  o.block_tokens = 16;
  o.warp_tokens = 16;
  const auto r = ref::quantize_qk(q.view(), o);
  REQUIRE(r.q_mean.size() == 64u);
  for (int c = 0; c < 64; ++c) CHECK(r.q_mean[c] == 3.0f + c);
  // Smoothed rows are -2, -1, 3 in every channel: max 3 -> values -85, -42, 127.
  CHECK(r.scales[0] == 3.0f / 127.0f);
  CHECK(as_int8(r.values[0]) == -85);  // -2 * 42.333 = -84.67
  CHECK(as_int8(r.values[64]) == -42);
  CHECK(as_int8(r.values[128]) == 127);
  for (std::size_t i = 3 * 64; i < r.values.size(); ++i) CHECK(r.values[i] == 0);
}

TEST_CASE("LSE correction: q · k_mean of the kv head, times sm_scale, in the quad order") {
  // B = 1, Hq = 4, Hkv = 2 (q heads 0, 1 read kv head 0; 2, 3 read kv head 1), 2 rows, D = 64.
  const int D = 64;
  F16Tensor q(1, 4, 2, D);
  std::vector<float> k_mean(2 * D);
  for (int c = 0; c < D; ++c) {
    k_mean[c] = static_cast<float>(c);         // kv head 0: m[c] = c
    k_mean[D + c] = c == 0 ? 16777216.0f : 1;  // kv head 1: 2^24 on channel 0, 1 elsewhere
    q.set(0, 0, 0, c, static_cast<float>(c % 4) - 1.5f);  // head 0 row 0: -1.5 -0.5 0.5 1.5 ...
    q.set(0, 1, 1, c, 1.0f);                              // head 1 row 1: ones
    q.set(0, 2, 0, c, 1.0f);                              // head 2 row 0: ones
  }
  const auto r = ref::lse_correction(q.view(), k_mean, 2, 0.125f);
  REQUIRE(r.size() == 4u * 2u);
  // Each 4 channels 4m..4m+3 give -1.5·4m - 0.5(4m+1) + 0.5(4m+2) + 1.5(4m+3) = 5: 16 · 5 = 80.
  CHECK(r[0 * 2 + 0] == 10.0f);
  CHECK(r[0 * 2 + 1] == 0.0f);
  CHECK(r[1 * 2 + 0] == 0.0f);
  CHECK(r[1 * 2 + 1] == 252.0f);  // (0 + 1 + ... + 63) / 8
  // Head 2 shows the order. Lane 0 owns channels 0..7 and 32..39: 2^24 first, then 15 ones, each
  // lost to rounding (2^24 + 1 ties to even, back to 2^24). Lanes 1, 2, 3 sum 16 each, exactly.
  // ((2^24 + 16) + (16 + 16)) = 2^24 + 48; a sequential sum over all channels would give 2^24.
  CHECK(r[2 * 2 + 0] == (16777216.0f + 48.0f) * 0.125f);
  CHECK(r[2 * 2 + 1] == 0.0f);
  CHECK(r[3 * 2 + 0] == 0.0f);
  float sequential = 0.0f;
  for (int c = 0; c < D; ++c) sequential += k_mean[D + c];
  CHECK(sequential == 16777216.0f);

  CHECK_THROWS_AS(ref::lse_correction(q.view(), k_mean, 3, 0.125f), std::invalid_argument);
  CHECK_THROWS_AS(ref::lse_correction(q.view(), std::span<const float>(k_mean).first(D), 2, 0.125f),
                  std::invalid_argument);
}

TEST_CASE("slot tree sum follows the documented order") {
  // With values that are exact, any order agrees; with values that are not, the tree differs from
  // a sequential sum. 1 + 2^-24 * many: a sequential sum loses each tiny term, the tree keeps them.
  const float tiny = std::ldexp(1.0f, -24);
  auto value = [&](int r) { return r == 0 ? 1.0f : tiny; };
  float sequential = 0.0f;
  for (int r = 0; r < 128; ++r) sequential += value(r);
  const float tree = ref::slot_tree_sum(128, 128, value);
  CHECK(sequential == 1.0f);
  // leaf 0 = 1 + tiny = 1 (tie to even); the other 63 leaves are 2 tiny each: 126 tiny in all,
  // which the tree adds together before meeting leaf 0's 1.0.
  CHECK(tree > 1.0f);
}

TEST_CASE("V: transpose, token permutation, zero padding, round trip") {
  for (int k = 0; k < 16; ++k) {
    CHECK(layout::v_token_at(layout::v_position_of(k)) == k);
    CHECK(layout::v_position_of(layout::v_token_at(k)) == k);
  }
  // Lane t's B fragment: positions 4t..4t+3 hold tokens 2t, 2t+1, 8+2t, 9+2t.
  CHECK(layout::v_token_at(4) == 2);
  CHECK(layout::v_token_at(6) == 10);

  // Tokens hold small integers (exact in e4m3): V[t][c] = (t % 16 + 1) * (c % 2 ? -1 : 1).
  const int S = 40, D = 64, S_pad = 48;
  F16Tensor v(1, 1, S, D);
  for (int t = 0; t < S; ++t) {
    for (int c = 0; c < D; ++c) v.set(0, 0, t, c, static_cast<float>(t % 16 + 1) * (c % 2 ? -1 : 1));
  }
  const auto scale = ref::v_scale(v.view());
  for (int c = 0; c < D; ++c) CHECK(scale[c] == 16.0f / 448.0f);
  const std::vector<float> unit(D, 1.0f);
  const auto out = ref::quantize_v(v.view(), unit, S_pad);
  REQUIRE(out.size() == static_cast<std::size_t>(D) * S_pad);
  for (int c = 0; c < D; ++c) {
    for (int p = 0; p < S_pad; ++p) {
      const int tok = p / 16 * 16 + layout::v_token_at(p % 16);
      const float expect = tok < S ? static_cast<float>(tok % 16 + 1) * (c % 2 ? -1 : 1) : 0.0f;
      CHECK(ref::e4m3_to_float(out[static_cast<std::size_t>(c) * S_pad + p]) == expect);
    }
  }
  // With the real scale, the largest magnitude maps to 448.
  const auto q = ref::quantize_v(v.view(), scale, S_pad);
  CHECK(q[layout::v_position_of(15)] == 0x7e);
}

TEST_CASE("varlen: a sequence view is a batch of one, and empty sequences have defined statistics") {
  // A packed [1, 2, 5, 32] tensor: three sequences of 2, 0 and 3 tokens.
  F16Tensor packed(1, 2, 5, 32);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 5; ++s)
      for (int c = 0; c < 32; ++c) packed.set(0, h, s, c, static_cast<float>(s + 1) * (h == 0 ? 1.0f : -2.0f));
  const ref::HostTensor all = packed.view();
  const ref::HostTensor third = ref::sequence_of(all, 2, 3);
  CHECK(third.batch == 1);
  CHECK(third.seq_len == 3);
  CHECK(third.at(0, 0, 0, 0) == 3.0f);  // token 2 of the packed tensor
  CHECK(third.at(0, 1, 2, 31) == -10.0f);
  // The mean of the third sequence only: (3 + 4 + 5) / 3 = 4 (head 0), -8 (head 1).
  const std::vector<float> mean = ref::k_mean(third);
  REQUIRE(mean.size() == 2 * 32);
  CHECK(mean[0] == 4.0f);
  CHECK(mean[32 + 5] == -8.0f);
  // V scale of the first sequence: max |v| over its 2 tokens / 448.
  const std::vector<float> scale = ref::v_scale(ref::sequence_of(all, 0, 2));
  CHECK(scale[0] == 2.0f / 448.0f);
  CHECK(scale[32] == 4.0f / 448.0f);
  // The empty sequence: K mean 0 and V scale kMinScale (what quant_stats writes), no exception.
  const ref::HostTensor empty = ref::sequence_of(all, 2, 0);
  for (float x : ref::k_mean(empty)) CHECK(x == 0.0f);
  for (float x : ref::v_scale(empty)) CHECK(x == layout::kMinScale);
  // Quantizing no tokens is not defined (there is nothing to write): refused.
  CHECK_THROWS_AS(ref::quantize_qk(empty, {}), std::invalid_argument);
  // Views must stay inside the packed tensor, which has batch 1.
  CHECK_THROWS_AS(ref::sequence_of(all, 3, 3), std::invalid_argument);
  CHECK_THROWS_AS(ref::sequence_of(F16Tensor(2, 1, 4, 32).view(), 0, 1), std::invalid_argument);
}

TEST_CASE("non-finite inputs: infinities and NaNs reach the statistics and scales of their channel or group") {
  // The kernels' maxima propagate NaN (max.NaN) and their divisions are IEEE for infinities
  // (templates/common.cuh); the reference is the oracle of both. fp16 bits: +inf 0x7c00, -inf 0xfc00,
  // NaN 0x7e00. D = 64, 20 tokens of 1.0; channel 0: one +inf, 1: +inf and -inf, 2: a NaN,
  // 3: one -inf.
  const int S = 20, D = 64, S_pad = 32;
  F16Tensor x(1, 1, S, D);
  for (int t = 0; t < S; ++t) {
    for (int c = 0; c < D; ++c) x.set(0, 0, t, c, 1.0f);
  }
  x.set_bits(0, 0, 3, 0, 0x7c00);
  x.set_bits(0, 0, 3, 1, 0x7c00);
  x.set_bits(0, 0, 9, 1, 0xfc00);
  x.set_bits(0, 0, 5, 2, 0x7e00);
  x.set_bits(0, 0, 7, 3, 0xfc00);

  const auto mean = ref::k_mean(x.view());
  CHECK((std::isinf(mean[0]) && mean[0] > 0));
  CHECK(std::isnan(mean[1]));  // inf + -inf
  CHECK(std::isnan(mean[2]));
  CHECK((std::isinf(mean[3]) && mean[3] < 0));
  CHECK(mean[4] == 1.0f);

  // V: an infinity makes the channel's scale inf (1 / scale = 0: the channel quantizes to 0, the
  // infinity itself to NaN); a NaN makes it NaN, and the channel is quantized with 0 (the NaN itself
  // stays NaN, the rest and the padding 0; the NaN reaches the output through the scale).
  const auto scale = ref::v_scale(x.view());
  CHECK(std::isinf(scale[0]));
  CHECK(std::isinf(scale[1]));
  CHECK(std::isnan(scale[2]));
  CHECK(scale[4] == 1.0f / 448.0f);
  const auto v = ref::quantize_v(x.view(), scale, S_pad);
  for (int p = 0; p < S_pad; ++p) {
    const int tok = p / 16 * 16 + layout::v_token_at(p % 16);
    const std::uint8_t c0 = v[p], c2 = v[std::size_t{2} * S_pad + p];  // channels 0 and 2
    CHECK((c0 & 0x7f) == (tok == 3 ? 0x7f : 0));  // inf · 0: NaN
    CHECK((c2 & 0x7f) == (tok == 5 ? 0x7f : 0));  // NaN · 0: NaN
  }

  // Q/K, per-block groups: one group per block of 16 rows. Block 0 (rows 0-15) holds the +inf,
  // -inf and the NaN; block 1 (rows 16-19) only 1.0. With the NaN the scale is NaN and the values 0
  // (NaN converts to 0); without it (NaN replaced by 1.0) the scale is inf and the values 0.
  ref::QuantQKOptions o;
  o.granularity = Granularity::per_block;
  o.block_tokens = 16;
  o.warp_tokens = 16;
  const auto with_nan = ref::quantize_qk(x.view(), o);
  REQUIRE(with_nan.scales.size() == 2u);
  CHECK(std::isnan(with_nan.scales[0]));
  CHECK(with_nan.scales[1] == 1.0f / 127.0f);
  for (std::size_t i = 0; i < static_cast<std::size_t>(16) * D; ++i) CHECK(with_nan.values[i] == 0);
  x.set(0, 0, 5, 2, 1.0f);
  const auto with_inf = ref::quantize_qk(x.view(), o);
  CHECK((std::isinf(with_inf.scales[0]) && with_inf.scales[0] > 0));
  for (std::size_t i = 0; i < static_cast<std::size_t>(16) * D; ++i) CHECK(with_inf.values[i] == 0);
  CHECK(as_int8(with_inf.values[static_cast<std::size_t>(16) * D]) == 127);  // block 1: 1.0 / (1 / 127)
}

// The identity common.cuh's div_rn_odd relies on: for B = 127 and 7 (the int8 and int4 maxima the
// quantizers divide group maxima by), a double product with the rounded reciprocal of B, rounded to
// float, is the float quotient a / B. Every significand of both signs at the exponents where the
// quotient is subnormal or crosses into the normals, around 1, and at the top of the range, where
// overflow cannot happen but the reciprocal's error is largest in absolute terms (all 2^32 inputs
// were checked once for both divisors, 2026-11-27; this keeps a cheaper sweep in CI).
TEST_CASE("division by 127 and 7: the rounded reciprocal's double product rounds to the float quotient") {
  for (const int b : {127, 7}) {
    const double r = 1.0 / b;
    const float fb = static_cast<float>(b);
    std::uint64_t mismatches = 0, checked = 0;
    for (const std::uint32_t exponent : {0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 126u, 127u, 128u, 253u, 254u}) {
      for (std::uint32_t sign = 0; sign < 2; ++sign) {
        for (std::uint32_t m = 0; m < (1u << 23); ++m) {
          const float a = std::bit_cast<float>(sign << 31 | exponent << 23 | m);
          const volatile float q = a / fb;
          const volatile float p = static_cast<float>(static_cast<double>(a) * r);
          mismatches +=
              std::bit_cast<std::uint32_t>(static_cast<float>(q)) != std::bit_cast<std::uint32_t>(static_cast<float>(p));
          ++checked;
        }
      }
    }
    INFO("B = " << b << ", " << checked << " inputs");
    CHECK(mismatches == 0);
  }
  // Infinities and NaN pass through as through the division.
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(static_cast<float>(static_cast<double>(inf) * (1.0 / 127)) == inf);
  CHECK(std::isnan(static_cast<float>(static_cast<double>(std::nanf("")) * (1.0 / 127))));
}
