// quant_check.hpp — runs the quantization kernels on the GPU over fresh random inputs and compares
// every output with the host reference, exactly (same rounding, so equality, not a tolerance).
//
// Used by the GPU tests and by `sagejit selftest`. Outputs are poisoned (0xFF) before the run, so an
// element the kernels fail to write shows up as a mismatch. Needs a GPU (NotAvailable otherwise).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sagejit/quantize.hpp"

namespace sagejit {

struct QuantCheckCase {
  DType dtype = DType::f16;
  Layout layout = Layout::hnd;
  bool padded_strides = false;  // rows further apart than D (a strided view of a larger tensor)
  int batch = 1, heads_q = 1, heads_kv = 1, seq_q = 1, seq_kv = 1, head_dim = 128;
  QuantizeOptions options;
  std::uint32_t seed = 1;
  std::string describe() const;
};

struct QuantCheckReport {
  struct Output {
    std::string name;
    std::size_t compared = 0;
    std::size_t mismatches = 0;
    std::string first;  // where and what, for the first mismatch
  };
  std::vector<Output> outputs;
  bool ok() const;
  std::string summary() const;
};

QuantCheckReport run_quant_check(const QuantCheckCase& c);

// The cases `sagejit selftest` and the GPU tests run: odd sizes, both layouts and dtypes, GQA,
// every granularity, smoothing on and off, INT4 where the GPU has it.
std::vector<QuantCheckCase> quant_check_cases();

}  // namespace sagejit
