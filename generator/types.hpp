// types.hpp — the small vocabulary of kernel specs: target arch, dtypes, quantized types, layouts.
//
// Each enum has a canonical lowercase name (used in spec names, CLI flags and cache rows) and a
// parser whose error names the argument and lists every allowed value.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sagejit {

// A target GPU architecture. `arch_specific` is the "a" suffix (sm_90a): instructions such as
// wgmma and setmaxnreg exist only there, and a cubin built for it runs only on that exact arch.
struct Arch {
  int major = 0;
  int minor = 0;
  bool arch_specific = false;

  int number() const { return major * 10 + minor; }   // 90 for sm_90a
  std::string name() const;                          // "sm_90a"
  bool has_fp8_mma() const { return number() >= 89; }
  // Hopper has no INT4 tensor cores (emulated, 47 TOPS measured); Blackwell consumer parts drop it too.
  bool has_int4_mma() const { return number() >= 80 && number() < 90; }
  bool operator==(const Arch&) const = default;
};

// The archs sagejit ships kernels for, in order: sm_80, sm_86, sm_89, sm_90a, sm_120.
const std::vector<Arch>& supported_archs();
// Accepts "sm_90a", "sm90a", "90a" and "9.0" (a Hopper given without "a" maps to sm_90a, the only
// Hopper target sagejit builds). `argument` names the flag or field for the error message.
Arch parse_arch(std::string_view text, std::string_view argument = "arch");
// The arch sagejit compiles for on a device of compute capability major.minor.
Arch arch_for_device(int major, int minor);

enum class DType { f16, bf16 };
enum class QuantType { int8, int4, fp8_e4m3 };
enum class Layout { hnd, nhd };  // [batch, heads, seq, dim] or [batch, seq, heads, dim]

std::string_view name(DType t);
std::string_view name(QuantType t);
std::string_view name(Layout t);
DType parse_dtype(std::string_view text, std::string_view argument = "dtype");
QuantType parse_quant_type(std::string_view text, std::string_view argument = "quant_type");
Layout parse_layout(std::string_view text, std::string_view argument = "layout");

// Head dims the kernels are written for.
const std::vector<int>& supported_head_dims();
void validate_head_dim(int head_dim, std::string_view argument = "head_dim");

}  // namespace sagejit
