// Tests of generator/quant_spec: canonical names and hashes (stable and distinct), validation,
// and the generated units.
#include <doctest/doctest.h>

#include <set>

#include "generator/quant_spec.hpp"
#include "runtime/error.hpp"

using namespace sagejit;

TEST_CASE("canonical names are readable and stable") {
  QuantSpec s{parse_arch("sm_90a"), QuantOp::quantize_k, DType::bf16, 128, QuantType::int8, true};
  CHECK(s.canonical_name() == "quant.quantize_k.bf16.d128.int8.smooth.sm_90a");
  // The hash is FNV-1a of the name: pinned so that a change to it (which would orphan every cached
  // kernel) is deliberate.
  CHECK(s.hash() == 0x72f810f384f15c99ull);
  QuantSpec mean{parse_arch("sm_80"), QuantOp::channel_stats, DType::f16, 64, QuantType::int8, false};
  CHECK(mean.canonical_name() == "quant.channel_stats.f16.d64.sm_80");
  QuantSpec v{parse_arch("sm_89"), QuantOp::quantize_v, DType::f16, 256, QuantType::fp8_e4m3, false};
  CHECK(v.canonical_name() == "quant.quantize_v.f16.d256.fp8_e4m3.sm_89");
}

TEST_CASE("every shipped spec has a distinct name and hash, across all archs") {
  std::set<std::string> names;
  std::set<std::uint64_t> hashes;
  std::size_t total = 0;
  for (const Arch& arch : supported_archs()) {
    for (const QuantSpec& s : shipped_quant_specs(arch)) {
      CHECK_NOTHROW(s.validate());
      names.insert(s.canonical_name());
      hashes.insert(s.hash());
      ++total;
    }
  }
  CHECK(names.size() == total);
  CHECK(hashes.size() == total);
  // 2 dtypes x 4 head dims x (q/k x int8+int4+int8x2 x smooth: 12, channel_stats, quantize_v,
  // quantize_kv x int8+int4+int8x2 x (smooth, V, both): 9) on sm_89; no V on sm_80 (kv: smooth only).
  CHECK(shipped_quant_specs(parse_arch("sm_89")).size() == 8 * 23);
  CHECK(shipped_quant_specs(parse_arch("sm_80")).size() == 8 * 16);
  // Emulated int4 is not shipped, except sm_90a's fp16 D = 128 plain quantize_q/quantize_k pair
  // (the H100's int4 checks; CI compiles it), and nothing for sm_120.
  // sm_90a also ships quantize_kv's cluster form for its int8 and int8x2 variants (6 per dtype and
  // head dim).
  CHECK(shipped_quant_specs(parse_arch("sm_90a")).size() == 8 * 16 + 2 + 8 * 6);
  CHECK(shipped_quant_specs(parse_arch("sm_120")).size() == 8 * 16);
  std::set<std::string> hopper_int4;
  for (const QuantSpec& s : shipped_quant_specs(parse_arch("sm_90a"))) {
    if (s.output == QuantType::int4) hopper_int4.insert(s.canonical_name());
  }
  CHECK(hopper_int4 == std::set<std::string>{"quant.quantize_k.f16.d128.int4.plain.sm_90a",
                                             "quant.quantize_q.f16.d128.int4.plain.sm_90a"});
}

TEST_CASE("validation names the offending field and the allowed values") {
  // int4 has no tensor cores on sm_90a and sm_120 but is emulated: accepted, for correctness checks.
  QuantSpec s{parse_arch("sm_90a"), QuantOp::quantize_q, DType::f16, 128, QuantType::int4, false};
  CHECK(s.arch.int4_emulated());
  CHECK_NOTHROW(s.validate());
  QuantSpec blackwell{parse_arch("sm_120"), QuantOp::quantize_k, DType::bf16, 96, QuantType::int4, true};
  CHECK(blackwell.arch.int4_emulated());
  CHECK_NOTHROW(blackwell.validate());
  s.output = QuantType::fp8_e4m3;
  CHECK_THROWS_WITH_AS(s.validate(), "argument `output`: quantize_q must be int8, int4 or int8x2 (got fp8_e4m3)",
                       InvalidArgument);
  QuantSpec v{parse_arch("sm_86"), QuantOp::quantize_v, DType::f16, 128, QuantType::fp8_e4m3, false};
  CHECK_THROWS_WITH_AS(v.validate(), "argument `arch`: quantize_v needs FP8 (sm_89 or newer; got sm_86)",
                       InvalidArgument);
  QuantSpec d{parse_arch("sm_89"), QuantOp::quantize_q, DType::f16, 80, QuantType::int8, false};
  CHECK_THROWS_AS(d.validate(), InvalidArgument);
  QuantSpec m{parse_arch("sm_89"), QuantOp::channel_stats, DType::f16, 128, QuantType::int8, true};
  CHECK_THROWS_WITH_AS(m.validate(),
                       "argument `smooth`: applies to quantize_q, quantize_k, quantize_kv and quantize_kv_cluster only "
                       "(got op channel_stats)",
                       InvalidArgument);
  CHECK_THROWS_WITH_AS(parse_quant_op("quantize_x", "--op"),
                       "argument `--op`: must be one of quantize_q, quantize_k, channel_stats, quantize_v, quantize_kv, "
                       "quantize_kv_cluster (got 'quantize_x')",
                       InvalidArgument);
  // quantize_kv: something to compute first, and V only where FP8 runs.
  QuantSpec kv{parse_arch("sm_86"), QuantOp::quantize_kv, DType::f16, 128, QuantType::int8, false};
  CHECK_THROWS_WITH_AS(kv.validate(), doctest::Contains("argument `smooth/with_v`"), InvalidArgument);
  kv.with_v = true;
  CHECK_THROWS_WITH_AS(kv.validate(), "argument `with_v`: FP8 V needs sm_89 or newer (got sm_86)", InvalidArgument);
  kv.arch = parse_arch("sm_89");
  CHECK_NOTHROW(kv.validate());
  CHECK(kv.canonical_name() == "quant.quantize_kv.f16.d128.int8.plain.v_fp8_e4m3.sm_89");
  QuantSpec k_with_v{parse_arch("sm_89"), QuantOp::quantize_k, DType::f16, 128, QuantType::int8, true};
  k_with_v.with_v = true;
  CHECK_THROWS_WITH_AS(k_with_v.validate(),
                       "argument `with_v`: applies to quantize_kv and quantize_kv_cluster only (got op quantize_k)",
                       InvalidArgument);
  // quantize_kv_cluster: thread-block clusters, sm_90a only; otherwise quantize_kv's rules.
  QuantSpec cluster = kv;
  cluster.op = QuantOp::quantize_kv_cluster;
  CHECK_THROWS_WITH_AS(cluster.validate(), "argument `arch`: quantize_kv_cluster needs sm_90a (got sm_89)",
                       InvalidArgument);
  cluster.arch = parse_arch("sm_90a");
  CHECK_NOTHROW(cluster.validate());
  CHECK(cluster.canonical_name() == "quant.quantize_kv_cluster.f16.d128.int8.plain.v_fp8_e4m3.sm_90a");
  CHECK(cluster.generate().name_expression ==
        "&sagejit::kernels::quantize_kv_cluster<sagejit::kernels::f16, 128, 8, 1, false, true>");
  cluster.with_v = false;
  CHECK_THROWS_WITH_AS(cluster.validate(), doctest::Contains("argument `smooth/with_v`"), InvalidArgument);
}

TEST_CASE("the generated unit only includes a template and names one instantiation") {
  QuantSpec s{parse_arch("sm_89"), QuantOp::quantize_q, DType::bf16, 96, QuantType::int4, true};
  GeneratedUnit u = s.generate();
  CHECK(u.spec_name == s.canonical_name());
  CHECK(u.source.find("#include \"quant_qk.cuh\"") != std::string::npos);
  CHECK(u.source.find("__global__") == std::string::npos);
  CHECK(u.name_expression == "&sagejit::kernels::quantize_qk<sagejit::kernels::bf16, 96, 4, 1, true, true>");
}
