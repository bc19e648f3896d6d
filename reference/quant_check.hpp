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
  // Varlen when non-empty (both the same size, the number of sequences; batch, seq_q and seq_kv are
  // then ignored): packed inputs of these lengths, quantized by quantize_varlen, compared per
  // sequence with the reference over the regions quant_layout.cuh defines. `max_slack` is added to
  // the longest lengths for max_seqlen_q / _k (a caller may pass more than the true maxima).
  std::vector<int> lengths_q, lengths_kv;
  int max_slack = 0;
  // About one input element in 1500 replaced by NaN, ±inf, −0, a subnormal or the largest finite
  // value (quant_check.cpp); outputs are then compared with any NaN matching any NaN.
  bool special_values = false;
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
// Varlen cases: mixed lengths (1, 17, 1000, 0, 4097, ...), empty sequences, all-empty key sides,
// GQA, both layouts and dtypes, every granularity, smoothing, LSE correction, a non-divisor block_k.
std::vector<QuantCheckCase> quant_varlen_check_cases();

}  // namespace sagejit
