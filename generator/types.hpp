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
  // INT4 tensor cores (mma.sync s4 runs as IMMA.16864.S4): sm_80, sm_86 and sm_89 only.
  bool has_int4_mma() const { return number() >= 80 && number() < 90; }
  // sm_90a and sm_120 have no INT4 tensor cores, but ptxas still accepts mma.sync s4 and emulates
  // it: each m16n8k64 becomes two IMMA.16832.S8 plus nibble unpacking (nvdisasm, CUDA 13.0; 47 TOPS
  // measured on H100). INT4 Q/K is allowed there for correctness checks only: never a default,
  // never in the shipped matrices, and the run time warns once when a call picks it.
  bool int4_emulated() const { return number() >= 90; }
  // int4 Q/K kernels compile and run here, natively or emulated.
  bool runs_int4() const { return has_int4_mma() || int4_emulated(); }
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
// Q/K: int8, int4, or int8x2 — two int8 terms per element, the value and its rounding residual at
// 1/256 of the step (templates/quant_layout.cuh, "Two-term int8"; the precise mode's Q Kᵀ). V: fp8_e4m3.
enum class QuantType { int8, int4, fp8_e4m3, int8x2 };
enum class Layout { hnd, nhd };  // [batch, heads, seq, dim] or [batch, seq, heads, dim]

std::string_view name(DType t);
std::string_view name(QuantType t);
std::string_view name(Layout t);
DType parse_dtype(std::string_view text, std::string_view argument = "dtype");
QuantType parse_quant_type(std::string_view text, std::string_view argument = "quant_type");
// Q/K types: bits of one MMA operand element (8 for int8 and int8x2, 4 for int4), operand terms per
// element (2 for int8x2, else 1), and bits one channel takes in the quantized workspace (their product).
// Whether t is a Q/K type (int8, int4 or int8x2).
bool is_qk_type(QuantType t);
int qk_mma_bits(QuantType t);
int qk_terms(QuantType t);
int qk_storage_bits(QuantType t);
Layout parse_layout(std::string_view text, std::string_view argument = "layout");

// Head dims the kernels are written for.
const std::vector<int>& supported_head_dims();
void validate_head_dim(int head_dim, std::string_view argument = "head_dim");

}  // namespace sagejit
