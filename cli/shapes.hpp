// shapes.hpp — problem shapes from the command line (`--shape`) or a file (`--shapes-file`), shared
// by `sagejit tune`, `bench` and `export`.
//
// A shape is `key=value` tokens separated by spaces or commas, e.g.
//   "b=4 hq=32 hkv=8 sq=4096 skv=4096 d=128 mask=causal"
// keys: b (batch, 4), hq (query heads, 32), hkv (K/V heads, hq), sq (4096), skv (sq), d (head dim,
// 128), mask (none), dtype (f16), qk (int8), pv (default: the kernel's), granularity (per_thread),
// smooth_q (0), smooth_k (1), lse (0). The defaults are DESIGN.md §3's benchmark shape. A file has
// one shape per line; blank lines and lines starting with '#' are skipped.
// How it fails: InvalidArgument naming the flag (or file:line) and the key, with the allowed values.
#pragma once

#include <string>
#include <vector>

#include "autotune/problem.hpp"

namespace sagejit::cli {

Problem parse_shape(const std::string& text, const Arch& arch, const std::string& argument = "--shape");
std::vector<Problem> parse_shapes(const std::vector<std::string>& shapes, const std::string& file, const Arch& arch);
// "b4 hq32 hkv8 sq4096 skv4096 d128 causal": a short label for tables.
std::string shape_label(const Problem& p);
// 4·B·Hq·Sq·Skv·D, halved for causal masks: the operation count of DESIGN.md §3's TOPS.
double attention_ops(const Problem& p);

}  // namespace sagejit::cli
