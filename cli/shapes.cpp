// shapes.cpp — parsing `--shape` strings and shape files.
#include "cli/shapes.hpp"

#include <fmt/format.h>

#include <fstream>
#include <map>
#include <sstream>

#include "runtime/error.hpp"

namespace sagejit::cli {
namespace {

std::int64_t parse_int(const std::string& argument, const std::string& key, const std::string& value, std::int64_t lo) {
  try {
    std::size_t used = 0;
    const long long n = std::stoll(value, &used);
    if (used == value.size() && n >= lo) return n;
  } catch (const std::exception&) {
  }
  throw InvalidArgument(argument, fmt::format("{} must be an integer >= {} (got '{}')", key, lo, value));
}

bool parse_bool(const std::string& argument, const std::string& key, const std::string& value) {
  if (value == "1" || value == "true" || value == "on") return true;
  if (value == "0" || value == "false" || value == "off") return false;
  throw InvalidArgument(argument, fmt::format("{} must be 0 or 1 (got '{}')", key, value));
}

}  // namespace

Problem parse_shape(const std::string& text, const Arch& arch, const std::string& argument) {
  std::string normalized = text;
  for (char& c : normalized) {
    if (c == ',') c = ' ';
  }
  std::map<std::string, std::string> kv;
  std::istringstream in(normalized);
  for (std::string token; in >> token;) {
    const auto eq = token.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw InvalidArgument(argument, fmt::format("'{}' is not key=value (in '{}')", token, text));
    }
    kv[token.substr(0, eq)] = token.substr(eq + 1);
  }
  Problem p;
  p.arch = arch;
  p.batch = 4, p.heads_q = 32, p.seq_q = 4096, p.head_dim = 128;
  auto take = [&](const char* key) -> std::optional<std::string> {
    auto it = kv.find(key);
    if (it == kv.end()) return std::nullopt;
    std::string v = it->second;
    kv.erase(it);
    return v;
  };
  if (auto v = take("b")) p.batch = static_cast<int>(parse_int(argument, "b", *v, 1));
  if (auto v = take("hq")) p.heads_q = static_cast<int>(parse_int(argument, "hq", *v, 1));
  p.heads_kv = p.heads_q;
  if (auto v = take("hkv")) p.heads_kv = static_cast<int>(parse_int(argument, "hkv", *v, 1));
  if (p.heads_q % p.heads_kv != 0) {
    throw InvalidArgument(argument, fmt::format("hq must be a multiple of hkv (got hq={}, hkv={})", p.heads_q, p.heads_kv));
  }
  if (auto v = take("sq")) p.seq_q = parse_int(argument, "sq", *v, 1);
  p.seq_kv = p.seq_q;
  if (auto v = take("skv")) p.seq_kv = parse_int(argument, "skv", *v, 1);
  if (auto v = take("d")) p.head_dim = static_cast<int>(parse_int(argument, "d", *v, 1));
  validate_head_dim(p.head_dim, argument + " d");
  if (auto v = take("mask")) p.mask = parse_mask(*v, argument + " mask");
  if (auto v = take("dtype")) p.dtype = parse_dtype(*v, argument + " dtype");
  if (auto v = take("qk")) p.qk = parse_quant_type(*v, argument + " qk");
  if (auto v = take("pv"); v && *v != "default") p.pv = parse_pv_type(*v, argument + " pv");
  if (auto v = take("granularity")) p.granularity = parse_granularity(*v, argument + " granularity");
  if (auto v = take("smooth_q")) p.smooth_q = parse_bool(argument, "smooth_q", *v);
  if (auto v = take("smooth_k")) p.smooth_k = parse_bool(argument, "smooth_k", *v);
  if (auto v = take("lse")) p.lse = parse_bool(argument, "lse", *v);
  if (!kv.empty()) {
    throw InvalidArgument(argument, fmt::format("unknown key '{}' (keys: b, hq, hkv, sq, skv, d, mask, dtype, qk, pv, "
                                                "granularity, smooth_q, smooth_k, lse)",
                                                kv.begin()->first));
  }
  default_spec(p).validate();  // an option the arch lacks (fp8 on sm_80, ...) fails here, named
  return p;
}

std::vector<Problem> parse_shapes(const std::vector<std::string>& shapes, const std::string& file, const Arch& arch) {
  std::vector<Problem> out;
  for (const std::string& s : shapes) out.push_back(parse_shape(s, arch));
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) throw InvalidArgument("--shapes-file", fmt::format("cannot read '{}'", file));
    int line_no = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      const auto first = line.find_first_not_of(" \t\r");
      if (first == std::string::npos || line[first] == '#') continue;
      out.push_back(parse_shape(line, arch, fmt::format("{}:{}", file, line_no)));
    }
  }
  if (out.empty()) out.push_back(parse_shape("", arch));
  return out;
}

std::string shape_label(const Problem& p) {
  // The shape, then every option that differs from its default, as the --shape keys spell them.
  std::string options;
  if (p.dtype != DType::f16) options += fmt::format(" dtype={}", name(p.dtype));
  if (p.qk != QuantType::int8) options += fmt::format(" qk={}", name(p.qk));
  if (p.pv) options += fmt::format(" pv={}", name(*p.pv));
  if (p.granularity != layout::Granularity::per_thread) options += fmt::format(" granularity={}", name(p.granularity));
  if (p.smooth_q) options += " smooth_q=1";
  if (!p.smooth_k) options += " smooth_k=0";
  if (p.lse) options += " lse=1";
  return fmt::format("b{} hq{} hkv{} sq{} skv{} d{} {}{}", p.batch, p.heads_q, p.heads_kv, p.seq_q, p.seq_kv, p.head_dim,
                     name(p.mask), options);
}

double attention_ops(const Problem& p) {
  const double ops = 4.0 * p.batch * p.heads_q * static_cast<double>(p.seq_q) * static_cast<double>(p.seq_kv) * p.head_dim;
  return p.mask == Mask::none ? ops : ops / 2;
}

}  // namespace sagejit::cli
