// quantize_plan.hpp — validation and workspace layout of a quantization call, with no GPU work.
//
// Split from the launches (quantize.cpp) so the rules and the byte layout are testable on a CPU.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <cstdint>

#include "sagejit/quantize.hpp"

namespace sagejit {

struct QuantizePlan {
  DType dtype = DType::f16;
  int batch = 0, heads_q = 0, heads_kv = 0, seq_q = 0, seq_kv = 0, head_dim = 0;
  int seq_q_pad = 0, seq_kv_pad = 0, q_blocks = 0, k_blocks = 0, q_groups = 0, k_groups = 0;
  float sm_scale = 0;          // the softmax scale in effect (options.sm_scale or 1/sqrt(D))
  float scale_multiplier = 0;  // sm_scale · log2(e), folded into the Q scales
  bool stats = false;          // the statistics kernel runs (K mean and/or V scale)
  // Byte offsets of each buffer in the workspace; kAbsent where not produced.
  static constexpr std::size_t kAbsent = ~std::size_t{0};
  std::size_t q = kAbsent, q_scale = kAbsent, q_mean = kAbsent, k = kAbsent, k_scale = kAbsent,
              k_mean = kAbsent, v = kAbsent, v_scale = kAbsent, partial_sum = kAbsent, partial_max = kAbsent,
              counters = kAbsent, lse_correction = kAbsent;
  std::size_t counters_bytes = 0;
  std::size_t workspace_bytes = 0;
  // Varlen: the device offsets the kernels read (null without varlen). batch is then the number of
  // sequences and seq_q / seq_kv the longest lengths (max_seqlen_q / _k), which size every buffer.
  const std::int32_t* cu_seqlens_q = nullptr;
  const std::int32_t* cu_seqlens_k = nullptr;
  bool varlen() const { return cu_seqlens_q != nullptr; }
};

// Throws InvalidArgument naming the argument and the rule. `arch` decides INT4 and FP8 support.
// With `varlen`, q, k and v are packed views checked by validate_varlen first.
QuantizePlan plan_quantize(const TensorRef& q, const TensorRef& k, const TensorRef& v, const QuantizeOptions& o,
                           const Arch& arch, const VarlenBatch* varlen = nullptr);

// The device pointers of each output inside `workspace` (pointer arithmetic only).
QuantizedQKV quantized_views(const QuantizePlan& p, void* workspace);

// Launches the quantization kernels of an already validated plan on `stream` (implemented in
// quantize.cpp). `workspace` holds at least p.workspace_bytes, 256-byte aligned. `quantize()` and
// `attention()` both go through here, so a call is planned and validated once.
// With `release_successor` (the attention call), returns true when the last work it enqueued on
// `stream` is a kernel that lets its successor be launched programmatically
// (LaunchConfig::programmatic): quantize_kv with nothing on the helper stream to join. That successor
// may start during quantize_kv's last CTAs and must griddep_wait before it reads the workspace; the
// caller's tensors were complete before quantize_kv started. Without it (quantize()), the next
// kernel on the stream is released only when quantize_kv ends, and it returns false.
bool enqueue_quantize(const QuantizePlan& p, const TensorRef& q, const TensorRef& k, const TensorRef& v,
                      const QuantizeOptions& o, void* workspace, CUstream stream, bool release_successor = false);

// Whether enqueue_quantize runs K, V and their statistics as one kernel (quant_kv.cuh) for this plan
// on the current device, rather than a statistics pass and separate K and V passes (implemented in
// quantize.cpp; compiles the quantization kernels on first use).
bool runs_fused_stats(const QuantizePlan& p, const QuantizeOptions& o);

// Whether that one kernel is quantize_kv_cluster (quant_kv_cluster.cuh: sm_90a, at most
// kv_cluster_max_chunks(D) chunks of 128 keys) rather than quantize_kv.
bool runs_kv_cluster(const QuantizePlan& p, const QuantizeOptions& o);

}  // namespace sagejit
