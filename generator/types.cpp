// types.cpp — names and parsers of the spec vocabulary.
#include "generator/types.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/error.hpp"

namespace sagejit {
namespace {

template <class E, std::size_t N>
E parse_enum(std::string_view text, std::string_view argument, const std::pair<std::string_view, E> (&table)[N]) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  std::vector<std::string_view> allowed;
  for (const auto& [n, e] : table) {
    if (n == lower) return e;
    allowed.push_back(n);
  }
  throw InvalidArgument(std::string(argument),
                        fmt::format("must be one of {} (got '{}')", fmt::join(allowed, ", "), text));
}

constexpr std::pair<std::string_view, DType> kDTypes[] = {{"f16", DType::f16}, {"bf16", DType::bf16}};
constexpr std::pair<std::string_view, QuantType> kQuantTypes[] = {
    {"int8", QuantType::int8}, {"int4", QuantType::int4}, {"fp8_e4m3", QuantType::fp8_e4m3},
    {"int8x2", QuantType::int8x2}};
constexpr std::pair<std::string_view, Layout> kLayouts[] = {{"hnd", Layout::hnd}, {"nhd", Layout::nhd}};

}  // namespace

std::string Arch::name() const { return fmt::format("sm_{}{}{}", major, minor, arch_specific ? "a" : ""); }

const std::vector<Arch>& supported_archs() {
  static const std::vector<Arch> archs = {{8, 0, false}, {8, 6, false}, {8, 9, false}, {9, 0, true}, {12, 0, false}};
  return archs;
}

Arch parse_arch(std::string_view text, std::string_view argument) {
  std::string s(text);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s.rfind("sm_", 0) == 0) s = s.substr(3);
  else if (s.rfind("sm", 0) == 0) s = s.substr(2);
  if (auto dot = s.find('.'); dot != std::string::npos) s.erase(dot, 1);
  bool specific = !s.empty() && s.back() == 'a';
  if (specific) s.pop_back();
  int number = -1;
  if (!s.empty() && s.size() <= 3 && std::all_of(s.begin(), s.end(), ::isdigit)) number = std::stoi(s);
  for (const Arch& a : supported_archs()) {
    // Hopper is only built as sm_90a: "sm_90" means the same target.
    if (a.number() == number && (specific == a.arch_specific || a.number() == 90)) return a;
  }
  std::vector<std::string> names;
  for (const Arch& a : supported_archs()) names.push_back(a.name());
  throw InvalidArgument(std::string(argument),
                        fmt::format("must be one of {} (got '{}')", fmt::join(names, ", "), text));
}

Arch arch_for_device(int major, int minor) {
  return parse_arch(fmt::format("sm_{}{}", major, minor), "device compute capability");
}

std::string_view name(DType t) { return t == DType::f16 ? "f16" : "bf16"; }
std::string_view name(QuantType t) {
  for (const auto& [n, e] : kQuantTypes) {
    if (e == t) return n;
  }
  return "unknown";
}
std::string_view name(Layout t) { return t == Layout::hnd ? "hnd" : "nhd"; }

DType parse_dtype(std::string_view text, std::string_view argument) { return parse_enum(text, argument, kDTypes); }
QuantType parse_quant_type(std::string_view text, std::string_view argument) {
  return parse_enum(text, argument, kQuantTypes);
}
bool is_qk_type(QuantType t) {
  return t == QuantType::int8 || t == QuantType::int4 || t == QuantType::int8x2;
}
int qk_mma_bits(QuantType t) { return t == QuantType::int4 ? 4 : 8; }
int qk_terms(QuantType t) { return t == QuantType::int8x2 ? 2 : 1; }
int qk_storage_bits(QuantType t) { return qk_mma_bits(t) * qk_terms(t); }

Layout parse_layout(std::string_view text, std::string_view argument) { return parse_enum(text, argument, kLayouts); }

const std::vector<int>& supported_head_dims() {
  static const std::vector<int> dims = {64, 96, 128, 256};
  return dims;
}

void validate_head_dim(int head_dim, std::string_view argument) {
  const auto& dims = supported_head_dims();
  if (std::find(dims.begin(), dims.end(), head_dim) == dims.end()) {
    throw InvalidArgument(std::string(argument),
                          fmt::format("must be one of {} (got {})", fmt::join(dims, ", "), head_dim));
  }
}

}  // namespace sagejit
