// Tests of generator/types: arch, dtype and layout parsing and their error messages.
#include <doctest/doctest.h>

#include "generator/types.hpp"
#include "runtime/error.hpp"

using namespace sagejit;

TEST_CASE("parse_arch accepts the usual spellings and maps Hopper to sm_90a") {
  CHECK(parse_arch("sm_80").name() == "sm_80");
  CHECK(parse_arch("sm86").name() == "sm_86");
  CHECK(parse_arch("8.9").name() == "sm_89");
  CHECK(parse_arch("sm_90").name() == "sm_90a");
  CHECK(parse_arch("90a").arch_specific);
  CHECK(parse_arch("SM_120").name() == "sm_120");
  CHECK(arch_for_device(9, 0).name() == "sm_90a");
}

TEST_CASE("parse_arch rejects unsupported archs, naming the argument and the allowed values") {
  try {
    parse_arch("sm_75", "--arch");
    FAIL("expected InvalidArgument");
  } catch (const InvalidArgument& e) {
    CHECK(e.argument() == "--arch");
    CHECK(std::string(e.what()).find("sm_80, sm_86, sm_89, sm_90a, sm_120") != std::string::npos);
    CHECK(std::string(e.what()).find("sm_75") != std::string::npos);
  }
  CHECK_THROWS_AS(parse_arch("banana"), InvalidArgument);
  CHECK_THROWS_AS(parse_arch(""), InvalidArgument);
}

TEST_CASE("dtype, quant type and layout parse and print round trip") {
  for (DType t : {DType::f16, DType::bf16}) CHECK(parse_dtype(name(t)) == t);
  for (QuantType t : {QuantType::int8, QuantType::int4, QuantType::fp8_e4m3}) CHECK(parse_quant_type(name(t)) == t);
  for (Layout t : {Layout::hnd, Layout::nhd}) CHECK(parse_layout(name(t)) == t);
  CHECK_THROWS_WITH_AS(parse_dtype("f32", "q.dtype"), "argument `q.dtype`: must be one of f16, bf16 (got 'f32')",
                       InvalidArgument);
}

TEST_CASE("arch capabilities: INT4 only before Hopper, FP8 from sm_89") {
  CHECK(parse_arch("sm_80").has_int4_mma());
  CHECK(parse_arch("sm_89").has_int4_mma());
  CHECK_FALSE(parse_arch("sm_90a").has_int4_mma());
  CHECK_FALSE(parse_arch("sm_120").has_int4_mma());
  CHECK_FALSE(parse_arch("sm_86").has_fp8_mma());
  CHECK(parse_arch("sm_89").has_fp8_mma());
}

TEST_CASE("head dims are validated") {
  for (int d : {64, 96, 128, 256}) CHECK_NOTHROW(validate_head_dim(d));
  CHECK_THROWS_WITH_AS(validate_head_dim(80), "argument `head_dim`: must be one of 64, 96, 128, 256 (got 80)",
                       InvalidArgument);
}
