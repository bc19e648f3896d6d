// quant_spec.cpp — names, validation and generated units of the quantization family.
#include "generator/quant_spec.hpp"

#include <fmt/format.h>

#include "runtime/error.hpp"
#include "runtime/hash.hpp"

namespace sagejit {
namespace {

constexpr std::pair<std::string_view, QuantOp> kOps[] = {
    {"quantize_q", QuantOp::quantize_q}, {"quantize_k", QuantOp::quantize_k},
    {"channel_stats", QuantOp::channel_stats}, {"quantize_v", QuantOp::quantize_v},
    {"quantize_kv", QuantOp::quantize_kv}, {"quantize_kv_cluster", QuantOp::quantize_kv_cluster}};

bool is_stats(QuantOp op) { return op == QuantOp::channel_stats; }
bool is_kv(QuantOp op) { return op == QuantOp::quantize_kv || op == QuantOp::quantize_kv_cluster; }
bool is_qk(QuantOp op) { return op == QuantOp::quantize_q || op == QuantOp::quantize_k || is_kv(op); }

std::string_view input_type(DType t) {
  return t == DType::f16 ? "sagejit::kernels::f16" : "sagejit::kernels::bf16";
}

}  // namespace

std::string_view name(QuantOp op) {
  for (const auto& [n, o] : kOps) {
    if (o == op) return n;
  }
  return "unknown";
}

QuantOp parse_quant_op(std::string_view text, std::string_view argument) {
  std::string allowed;
  for (const auto& [n, o] : kOps) {
    if (n == text) return o;
    allowed += allowed.empty() ? std::string(n) : ", " + std::string(n);
  }
  throw InvalidArgument(std::string(argument), fmt::format("must be one of {} (got '{}')", allowed, text));
}

std::string QuantSpec::canonical_name() const {
  if (is_stats(op)) return fmt::format("quant.{}.{}.d{}.{}", name(op), name(input), head_dim, arch.name());
  if (op == QuantOp::quantize_v) {
    return fmt::format("quant.{}.{}.d{}.{}.{}", name(op), name(input), head_dim, name(output), arch.name());
  }
  return fmt::format("quant.{}.{}.d{}.{}.{}{}.{}", name(op), name(input), head_dim, name(output),
                     smooth ? "smooth" : "plain", with_v ? ".v_fp8_e4m3" : "", arch.name());
}

std::uint64_t QuantSpec::hash() const { return fnv1a64(canonical_name()); }

void QuantSpec::validate() const {
  parse_arch(arch.name(), "arch");  // rejects archs outside the supported set
  validate_head_dim(head_dim, "head_dim");
  if (is_qk(op)) {
    if (!is_qk_type(output)) {
      throw InvalidArgument("output",
                            fmt::format("{} must be int8, int4 or int8x2 (got {})", name(op), name(output)));
    }
    // int4 runs everywhere sagejit builds: natively on sm_80/86/89, emulated on sm_90a and sm_120
    // (Arch::int4_emulated), where it is for correctness checks only.
    if (output == QuantType::int4 && !arch.runs_int4()) {
      throw InvalidArgument("output", fmt::format("int4 needs mma.sync s4: sm_80 or newer (got {})", arch.name()));
    }
  }
  if (op == QuantOp::quantize_v) {
    if (output != QuantType::fp8_e4m3) {
      throw InvalidArgument("output", fmt::format("quantize_v must be fp8_e4m3 (got {})", name(output)));
    }
    if (!arch.has_fp8_mma()) {
      throw InvalidArgument("arch", fmt::format("quantize_v needs FP8 (sm_89 or newer; got {})", arch.name()));
    }
  }
  if (!is_qk(op) && smooth) {
    throw InvalidArgument("smooth",
                          fmt::format("applies to quantize_q, quantize_k, quantize_kv and quantize_kv_cluster only (got op {})", name(op)));
  }
  if (with_v && !is_kv(op)) {
    throw InvalidArgument("with_v",
                          fmt::format("applies to quantize_kv and quantize_kv_cluster only (got op {})", name(op)));
  }
  if (op == QuantOp::quantize_kv_cluster && !has_kv_cluster(arch)) {
    throw InvalidArgument("arch", fmt::format("quantize_kv_cluster needs sm_90a (got {})", arch.name()));
  }
  if (is_kv(op)) {
    if (!smooth && !with_v) {
      throw InvalidArgument("smooth/with_v", fmt::format("{} needs K smoothing or V (else it has no statistics to "
                                                         "compute: use quantize_k)", name(op)));
    }
    if (with_v && !arch.has_fp8_mma()) {
      throw InvalidArgument("with_v", fmt::format("FP8 V needs sm_89 or newer (got {})", arch.name()));
    }
  }
}

GeneratedUnit QuantSpec::generate() const {
  validate();
  GeneratedUnit unit;
  unit.spec_name = canonical_name();
  unit.arch = arch;
  switch (op) {
    case QuantOp::quantize_q:
    case QuantOp::quantize_k:
      unit.source = "#include \"quant_qk.cuh\"\n";
      unit.name_expression = fmt::format("&sagejit::kernels::quantize_qk<{}, {}, {}, {}, {}, {}>", input_type(input),
                                         head_dim, qk_mma_bits(output), qk_terms(output),
                                         op == QuantOp::quantize_q ? "true" : "false", smooth ? "true" : "false");
      break;
    case QuantOp::channel_stats:
      unit.source = "#include \"quant_stats.cuh\"\n";
      unit.name_expression = fmt::format("&sagejit::kernels::quant_stats<{}, {}>", input_type(input), head_dim);
      break;
    case QuantOp::quantize_v:
      unit.source = "#include \"quant_v.cuh\"\n";
      unit.name_expression = fmt::format("&sagejit::kernels::quantize_v<{}, {}>", input_type(input), head_dim);
      break;
    case QuantOp::quantize_kv:
      unit.source = "#include \"quant_kv.cuh\"\n";
      unit.name_expression = fmt::format("&sagejit::kernels::quantize_kv<{}, {}, {}, {}, {}, {}>", input_type(input),
                                         head_dim, qk_mma_bits(output), qk_terms(output), smooth ? "true" : "false",
                                         with_v ? "true" : "false");
      break;
    case QuantOp::quantize_kv_cluster:
      unit.source = "#include \"quant_kv_cluster.cuh\"\n";
      unit.name_expression = fmt::format("&sagejit::kernels::quantize_kv_cluster<{}, {}, {}, {}, {}, {}>",
                                         input_type(input), head_dim, qk_mma_bits(output), qk_terms(output),
                                         smooth ? "true" : "false", with_v ? "true" : "false");
      break;
  }
  unit.source = fmt::format("// {} (generator {})\n{}", unit.spec_name, kGeneratorVersion, unit.source);
  return unit;
}

bool has_kv_cluster(const Arch& arch) { return arch.number() == 90 && arch.arch_specific; }

std::vector<QuantSpec> quant_specs_for_call(const Arch& arch, DType input, int head_dim, QuantType qk_type,
                                            bool smooth_q, bool smooth_k, bool quantize_v) {
  std::vector<QuantSpec> specs = {{arch, QuantOp::channel_stats, input, head_dim, QuantType::int8, false},
                                  {arch, QuantOp::quantize_q, input, head_dim, qk_type, smooth_q},
                                  {arch, QuantOp::quantize_k, input, head_dim, qk_type, smooth_k}};
  if (quantize_v) specs.push_back({arch, QuantOp::quantize_v, input, head_dim, QuantType::fp8_e4m3, false});
  if (smooth_k || quantize_v) {
    QuantSpec kv{arch, QuantOp::quantize_kv, input, head_dim, qk_type, smooth_k};
    kv.with_v = quantize_v;
    specs.push_back(kv);
    if (has_kv_cluster(arch)) {
      kv.op = QuantOp::quantize_kv_cluster;
      specs.push_back(kv);
    }
  }
  return specs;
}

std::vector<QuantSpec> shipped_quant_specs(const Arch& arch) {
  std::vector<QuantSpec> specs;
  for (DType input : {DType::f16, DType::bf16}) {
    for (int head_dim : supported_head_dims()) {
      QuantSpec base{arch, QuantOp::quantize_q, input, head_dim, QuantType::int8, false};
      for (QuantOp op : {QuantOp::quantize_q, QuantOp::quantize_k}) {
        for (QuantType out : {QuantType::int8, QuantType::int4, QuantType::int8x2}) {
          for (bool smooth : {false, true}) {
            // Emulated int4 is not shipped, except sm_90a's fp16 D = 128 plain pair, so that CI
            // compiles int4 for the H100 its GPU checks run on (attention: representative_attn_specs).
            const bool h100_int4 = arch.number() == 90 && input == DType::f16 && head_dim == 128 && !smooth;
            if (out == QuantType::int4 && !arch.has_int4_mma() && !h100_int4) continue;
            QuantSpec s = base;
            s.op = op;
            s.output = out;
            s.smooth = smooth;
            specs.push_back(s);
          }
        }
      }
      // quantize_kv for the K types above, with K smoothing and/or FP8 V (not neither).
      for (QuantType out : {QuantType::int8, QuantType::int4, QuantType::int8x2}) {
        if (out == QuantType::int4 && !arch.has_int4_mma()) continue;
        for (bool smooth : {false, true}) {
          for (bool with_v : {false, true}) {
            if ((!smooth && !with_v) || (with_v && !arch.has_fp8_mma())) continue;
            QuantSpec s = base;
            s.op = QuantOp::quantize_kv;
            s.output = out;
            s.smooth = smooth;
            s.with_v = with_v;
            specs.push_back(s);
            if (has_kv_cluster(arch)) {
              s.op = QuantOp::quantize_kv_cluster;
              specs.push_back(s);
            }
          }
        }
      }
      QuantSpec stats = base;
      stats.op = QuantOp::channel_stats;
      specs.push_back(stats);
      // V is quantized only where P·V runs in FP8; sm_80/86 read it as fp16/bf16.
      if (arch.has_fp8_mma()) {
        QuantSpec v = base;
        v.op = QuantOp::quantize_v;
        v.output = QuantType::fp8_e4m3;
        specs.push_back(v);
      }
    }
  }
  return specs;
}

}  // namespace sagejit
