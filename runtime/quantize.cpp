// quantize.cpp — launching the quantization kernels of one call, ordered on the caller's stream.
//
// Kernels are resolved once per (context, arch, dtype, head dim, variant) and kept in a map keyed
// by a packed integer, so a warm call allocates nothing: it validates, fills three parameter
// structs and launches. The statistics kernel's ticket counters are zeroed with an async memset in
// the same stream (graph-capturable) before it runs. Independent passes run on a helper stream
// forked from and joined back into the caller's (stream_fork.hpp), so every pass is ordered after
// the caller's earlier work and before its later work, as if all ran on the caller's stream.
#include "sagejit/quantize.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "generator/quant_spec.hpp"
#include "runtime/device.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"
#include "runtime/quantize_plan.hpp"
#include "runtime/stream_fork.hpp"
#include "templates/quant_params.cuh"

namespace sagejit {
namespace {

struct QuantKernels {
  const Kernel* stats = nullptr;
  const Kernel* q = nullptr;
  const Kernel* k = nullptr;
  const Kernel* v = nullptr;
  const Kernel* kv = nullptr;  // quantize_kv, when there are statistics to compute
  const Kernel* kv_cluster = nullptr;  // its cluster form, where has_kv_cluster
  int kv_cluster_chunks = 0;            // the most chunks (CTAs) of a cluster this GPU schedules
  int kv_resident = 0;         // CTAs of quantize_kv the GPU holds at once
};

// The largest cluster of quantize_kv_cluster CTAs the GPU can hold, up to kv_cluster_max_chunks(D)
// (sizes past 8 allowed on the kernel first); 0 if none (the call then runs quantize_kv).
int cluster_chunks(const Kernel& kernel, int head_dim) {
  const int most = kernel.allow_non_portable_clusters() ? kernels::kv_cluster_max_chunks(head_dim) : 8;
  for (int chunks = most; chunks >= 2; chunks /= 2) {
    LaunchConfig c{{unsigned(chunks), 1, 1}, {unsigned(kernels::kQuantThreads), 1, 1}, 0};
    c.cluster_x = unsigned(chunks);
    if (kernel.active_clusters(c) > 0) return chunks;
  }
  return 0;
}

const QuantKernels& kernels_for(CUcontext context, const Arch& arch, DType dtype, int head_dim,
                                const QuantizeOptions& o) {
  const std::uint64_t variant = (std::uint64_t(arch.number()) << 32) | (std::uint64_t(dtype == DType::bf16) << 20) |
                                (std::uint64_t(head_dim) << 8) | (std::uint64_t(o.qk_type) << 4) |
                                (std::uint64_t(o.smooth_q) << 2) | (std::uint64_t(o.smooth_k) << 1) |
                                std::uint64_t(o.quantize_v) | (std::uint64_t(o.fused_stats) << 3);
  static std::mutex mutex;
  static std::map<std::pair<CUcontext, std::uint64_t>, QuantKernels> cache;
  {
    std::lock_guard lock(mutex);
    if (auto it = cache.find({context, variant}); it != cache.end()) return it->second;
  }
  // quant_specs_for_call's kernels, less quantize_kv and its cluster form when the caller turned the
  // fused statistics off.
  std::vector<QuantSpec> specs;
  for (const QuantSpec& s :
       quant_specs_for_call(arch, dtype, head_dim, o.qk_type, o.smooth_q, o.smooth_k, o.quantize_v)) {
    const bool fused = s.op == QuantOp::quantize_kv || s.op == QuantOp::quantize_kv_cluster;
    if (!fused || o.fused_stats) specs.push_back(s);
  }
  std::vector<GeneratedUnit> units;
  for (const QuantSpec& s : specs) units.push_back(s.generate());
  Jit& jit = default_jit();
  jit.cubins(units);  // compiles the misses in parallel before loading one by one
  QuantKernels k;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const Kernel* kernel = &jit.kernel(units[i]);
    switch (specs[i].op) {
      case QuantOp::channel_stats: k.stats = kernel; break;
      case QuantOp::quantize_q: k.q = kernel; break;
      case QuantOp::quantize_k: k.k = kernel; break;
      case QuantOp::quantize_v: k.v = kernel; break;
      case QuantOp::quantize_kv: k.kv = kernel; break;
      case QuantOp::quantize_kv_cluster: k.kv_cluster = kernel; break;
    }
  }
  if (k.kv != nullptr) k.kv_resident = k.kv->resident_ctas(kernels::kQuantThreads, 0) * current_device_info().sm_count;
  if (k.kv_cluster != nullptr) k.kv_cluster_chunks = cluster_chunks(*k.kv_cluster, head_dim);
  std::lock_guard lock(mutex);
  return cache.emplace(std::make_pair(context, variant), k).first->second;
}

// quantize_kv's schedule (quant_kv.cuh, "Order"): `lag` steps between a (b, h)'s statistics items
// and its quantization items, enough that about a GPU-full of CTAs lies between them (the
// statistics are then usually written when the quantization items come; half of that measured
// 0.299 against 0.279 ms at S = 4k, and 1.5 times 0.297), plus one step: with the second reads
// under evict_first (quant_kv.cuh) the extra step measured faster (H100, 2026-11-27: the quantizer
// -1.3...3.5% at D 64-256, 3k-8k keys; two steps more lost 6-10%;
// bench/results/2026-11-27-kv-items-d256-and-l2-policy-h100.md §6). reuse_bytes: the DRAM bytes
// moved between a chunk's two reads as runs_fused's L2 rule counts them, over the GPU-full and one
// step, the count the rule was measured with (so it now spans the lag itself, not the lag and a
// step). segments: a step's segments of items (kv_step_segments), which the grid counts too.
struct FusedSchedule {
  int segments = 2;
  int lag = 1;
  double reuse_bytes = 0;
};
FusedSchedule fused_schedule(const QuantizePlan& p, const QuantizeOptions& o, int resident) {
  const int chunks = std::max(1, kernels::stats_chunks(p.seq_kv));
  FusedSchedule s;
  s.segments = kernels::kv_step_segments(p.head_dim, o.smooth_k, o.quantize_v);
  const int step_items = s.segments * chunks;
  // No more than there are (b, h): beyond that the extra steps are empty.
  const int bh = std::max(1, p.batch * p.heads_kv);
  const int gpu_full = std::clamp((resident + step_items - 1) / step_items, 1, bh);
  s.lag = std::min(gpu_full + 1, bh);
  // Per step: the statistics items read a chunk of K (when smoothing) and V (when FP8) in 16 bits,
  // the quantization items write K (1 or 2 bytes per element, or half a byte) and V (1 byte); their
  // reads hit L2.
  const double elements = double(kernels::kStatsChunkTokens) * p.head_dim;
  const double read = 2.0 * ((o.smooth_k ? 1 : 0) + (o.quantize_v ? 1 : 0));
  const double written = qk_storage_bits(o.qk_type) / 8.0 + (o.quantize_v ? 1 : 0);
  s.reuse_bytes = (gpu_full + 1) * chunks * elements * (read + written);
  return s;
}

// quantize_kv runs when it computes the same bits as the separate passes: there are statistics and
// keys, and block_k divides its 128-token chunk (so the chunk holds whole K blocks); and where it
// measured faster on the H100 (bench/results/2026-11-26-quant-fused-stats-h100.md): at most 64
// chunks per (b, h) (the last statistics item sums the partials in chunk order, 16 or 32 loads per
// round trip: beyond that the quantization items wait on it; S = 32k lost, 2.39 against 1.93 ms,
// two-term K), and the bytes moved between a chunk's two reads within half of L2 (S = 16k lost at
// 38 MB by this count, 1.37 against 1.20 ms; S = 8k won at 25 MB, 0.588 against 0.607 ms). With a
// small L2 the count excludes it: a GPU-full of items alone moves more than half of 6 MB (RTX 3090).
bool runs_fused(const QuantizePlan& p, const QuantizeOptions& o, const QuantKernels& kernels) {
  if (!o.fused_stats || kernels.kv == nullptr || p.seq_kv == 0 || kernels::kStatsChunkTokens % o.block_k != 0 ||
      kernels::stats_chunks(p.seq_kv) > 64) {
    return false;
  }
  const FusedSchedule s = fused_schedule(p, o, kernels.kv_resident);
  return s.reuse_bytes <= 0.5 * current_device_info().l2_bytes;
}

// Where quantize_kv runs (runs_fused), quantize_kv_cluster takes its place (same bits) if it exists
// and a (b, h)'s chunks fit one cluster.
bool cluster_fits(const QuantizePlan& p, const QuantizeOptions& o, const QuantKernels& kernels) {
  return o.kv_cluster && kernels.kv_cluster != nullptr && kernels::stats_chunks(p.seq_kv) <= kernels.kv_cluster_chunks;
}
bool runs_cluster(const QuantizePlan& p, const QuantizeOptions& o, const QuantKernels& kernels) {
  return runs_fused(p, o, kernels) && cluster_fits(p, o, kernels);
}

}  // namespace

bool runs_fused_stats(const QuantizePlan& p, const QuantizeOptions& o) {
  return runs_fused(p, o, kernels_for(ensure_current_context(), current_device_info().arch(), p.dtype, p.head_dim, o));
}

bool runs_kv_cluster(const QuantizePlan& p, const QuantizeOptions& o) {
  return runs_cluster(p, o, kernels_for(ensure_current_context(), current_device_info().arch(), p.dtype, p.head_dim, o));
}

std::size_t quantize_workspace_bytes(const TensorRef& q, const TensorRef& k, const TensorRef& v,
                                     const QuantizeOptions& options) {
  return plan_quantize(q, k, v, options, current_device_info().arch()).workspace_bytes;
}

namespace {

QuantizedQKV checked_quantize(const QuantizePlan& p, const TensorRef& q, const TensorRef& k, const TensorRef& v,
                              const QuantizeOptions& o, void* workspace, std::size_t workspace_bytes, CUstream stream) {
  if (workspace == nullptr && p.workspace_bytes > 0) throw InvalidArgument("workspace", "is null");
  if (reinterpret_cast<std::uintptr_t>(workspace) % 256 != 0) {
    throw InvalidArgument("workspace", fmt::format("must be 256-byte aligned (got {})", workspace));
  }
  if (workspace_bytes < p.workspace_bytes) {
    throw InvalidArgument("workspace_bytes", fmt::format("must be at least {} for these shapes (got {})",
                                                         p.workspace_bytes, workspace_bytes));
  }
  enqueue_quantize(p, q, k, v, o, workspace, stream);
  return quantized_views(p, workspace);
}

}  // namespace

QuantizedQKV quantize(const TensorRef& q, const TensorRef& k, const TensorRef& v, const QuantizeOptions& o,
                      void* workspace, std::size_t workspace_bytes, CUstream stream) {
  const QuantizePlan p = plan_quantize(q, k, v, o, current_device_info().arch());
  return checked_quantize(p, q, k, v, o, workspace, workspace_bytes, stream);
}

std::size_t quantize_varlen_workspace_bytes(const TensorRef& q, const TensorRef& k, const TensorRef& v,
                                            const VarlenBatch& varlen, const QuantizeOptions& options) {
  validate_varlen(varlen, q, k, v);  // host-only rules before the device is asked for its arch
  return plan_quantize(q, k, v, options, current_device_info().arch(), &varlen).workspace_bytes;
}

QuantizedQKV quantize_varlen(const TensorRef& q, const TensorRef& k, const TensorRef& v, const VarlenBatch& varlen,
                             const QuantizeOptions& o, void* workspace, std::size_t workspace_bytes,
                             CUstream stream) {
  validate_varlen(varlen, q, k, v);
  const QuantizePlan p = plan_quantize(q, k, v, o, current_device_info().arch(), &varlen);
  return checked_quantize(p, q, k, v, o, workspace, workspace_bytes, stream);
}

bool enqueue_quantize(const QuantizePlan& p, const TensorRef& q, const TensorRef& k, const TensorRef& v,
                      const QuantizeOptions& o, void* workspace, CUstream stream, bool release_successor) {
  if (p.batch == 0) return false;  // nothing to read or write
  const QuantizedQKV out = quantized_views(p, workspace);
  const auto at = [&](std::size_t offset) { return reinterpret_cast<float*>(static_cast<char*>(workspace) + offset); };
  const QuantKernels& kernels =
      kernels_for(ensure_current_context(), current_device_info().arch(), p.dtype, p.head_dim, o);
  const unsigned B = p.batch;

  unsigned* const counters = reinterpret_cast<unsigned*>(at(p.counters));
  auto stats_params = [&] {
    kernels::QuantStatsParams s{};
    s.k = o.smooth_k ? k.data : nullptr;
    s.k_stride_b = k.stride_b, s.k_stride_h = k.stride_h, s.k_stride_s = k.stride_s;
    s.v = o.quantize_v ? v.data : nullptr;
    s.v_stride_b = v.stride_b, s.v_stride_h = v.stride_h, s.v_stride_s = v.stride_s;
    s.k_mean = out.k_mean;
    s.v_scale = out.v_scale;
    s.partial_sum = p.partial_sum == QuantizePlan::kAbsent ? nullptr : at(p.partial_sum);
    s.partial_max = p.partial_max == QuantizePlan::kAbsent ? nullptr : at(p.partial_max);
    s.counters = counters;
    s.cu_seqlens = p.cu_seqlens_k;
    s.batch = p.batch, s.heads = p.heads_kv, s.seq_len = p.seq_kv;
    return s;
  };
  auto qk_params = [&](bool is_q, const TensorRef& t) {
    kernels::QuantQKParams a{};
    a.in = t.data;
    a.cu_seqlens = is_q ? p.cu_seqlens_q : p.cu_seqlens_k;
    a.stride_b = t.stride_b, a.stride_h = t.stride_h, a.stride_s = t.stride_s;
    a.out = is_q ? out.q : out.k;
    a.scale = is_q ? out.q_scale : out.k_scale;
    a.q_mean = is_q ? out.q_mean : nullptr;
    // Q reads k_mean only for the LSE correction (then it runs after the statistics, see below).
    a.k_mean = (!is_q || out.lse_correction != nullptr) ? out.k_mean : nullptr;
    a.lse_correction = is_q ? out.lse_correction : nullptr;
    a.batch = p.batch, a.heads = static_cast<int>(t.heads);
    a.seq_len = is_q ? p.seq_q : p.seq_kv, a.seq_len_pad = is_q ? p.seq_q_pad : p.seq_kv_pad;
    a.heads_kv = p.heads_kv;
    a.block_tokens = is_q ? o.block_q : o.block_k, a.warp_tokens = is_q ? o.warp_q : o.warp_k;
    a.granularity = o.granularity;
    a.scale_multiplier = is_q ? p.scale_multiplier : 1.0f;
    a.sm_scale = p.sm_scale;
    return a;
  };
  auto v_params = [&] {
    kernels::QuantVParams a{};
    a.in = v.data;
    a.stride_b = v.stride_b, a.stride_h = v.stride_h, a.stride_s = v.stride_s;
    a.v_scale = out.v_scale;
    a.out = out.v;
    a.cu_seqlens = p.cu_seqlens_k;
    a.batch = p.batch, a.heads = p.heads_kv, a.seq_len = p.seq_kv, a.seq_len_pad = p.seq_kv_pad;
    a.block_tokens = o.block_k;
    return a;
  };
  const Dim3 block{kernels::kQuantThreads, 1, 1};
  // The counters (and quantize_kv's ticket and statistics words: `bytes` of the region) are cleared
  // in the stream before each launch, so a graph replay starts from zero as well.
  auto clear_counters = [&](CUstream st, std::size_t bytes) {
    SAGEJIT_CU(cuMemsetD8Async, reinterpret_cast<CUdeviceptr>(counters), 0, bytes, st);
  };
  // The statistics kernel runs even without keys (Skv = 0, or every varlen key sequence empty): its
  // one CTA then writes k_mean 0 and v_scale kMinScale, which the FP8 attention epilogue multiplies.
  auto launch_stats = [&](CUstream st) {
    kernels::QuantStatsParams s = stats_params();
    clear_counters(st, std::size_t(B) * p.heads_kv * sizeof(unsigned));  // its tickets only
    void* args[] = {&s};
    kernels.stats->launch({{unsigned(std::max(1, kernels::stats_chunks(p.seq_kv))), unsigned(p.heads_kv), B}, block, 0},
                          st, args);
  };
  auto launch_qk = [&](bool is_q, CUstream st) {
    const TensorRef& t = is_q ? q : k;
    kernels::QuantQKParams a = qk_params(is_q, t);
    void* args[] = {&a};
    (is_q ? kernels.q : kernels.k)
        ->launch({{unsigned((is_q ? p.seq_q_pad : p.seq_kv_pad) / a.block_tokens), unsigned(t.heads), B}, block, 0},
                 st, args);
  };
  auto launch_v = [&](CUstream st) {
    kernels::QuantVParams a = v_params();
    void* args[] = {&a};
    kernels.v->launch({{unsigned(kernels::v_tiles(p.seq_kv_pad)), unsigned(p.heads_kv), B}, block, 0}, st, args);
  };
  // K, V and their statistics in one kernel (only where runs_fused): quantize_kv_cluster, one
  // cluster per (b, h) and tensor with no counters, or quantize_kv's work items.
  auto launch_kv = [&](CUstream st, bool release) {
    kernels::QuantKVParams a{};
    a.k = qk_params(false, k);
    a.v = v_params();
    a.stats = stats_params();
    a.release_dependents = release ? 1 : 0;
    void* args[] = {&a};
    if (cluster_fits(p, o, kernels)) {  // (launch_kv runs only where runs_fused)
      const unsigned chunks = unsigned(kernels::stats_chunks(p.seq_kv));
      LaunchConfig c{{chunks * (o.quantize_v ? 2u : 1u), unsigned(p.heads_kv), B}, block, 0};
      c.cluster_x = chunks;
      kernels.kv_cluster->launch(c, st, args);
      return;
    }
    a.next_item = counters + std::size_t(B) * p.heads_kv;
    a.stats_words = reinterpret_cast<unsigned long long*>(reinterpret_cast<char*>(counters) +
                                                          kernels::stats_words_offset(p.batch, p.heads_kv));
    const FusedSchedule schedule = fused_schedule(p, o, kernels.kv_resident);
    a.lag = schedule.lag;
    clear_counters(st, p.counters_bytes);
    kernels.kv->launch(
        {{unsigned(kernels::kv_items(p.batch, p.heads_kv, p.seq_kv, a.lag, schedule.segments)), 1, 1}, block, 0},
        st, args);
  };

  // Two streams: the caller's runs the statistics and then K; a helper stream (StreamFork) runs Q
  // beside the statistics (after them when Q writes the LSE correction, which reads k_mean) and V
  // after them, beside K. Each pass alone leaves the memory system idle in its ramp and tail
  // (ncu, H200, B4 H32 D128 S1024: 15-25 us per pass at 38-57% of DRAM bandwidth). The statistics
  // are enqueued before Q: Q's grid fills every CTA slot of the GPU, so enqueued first it ran to
  // its end before the statistics started (bench/attn_timeline.py); the other way round, Q's CTAs
  // take the slots the statistics leave free (quant_bench, H200: 0.085 -> 0.076 ms at S = 1k,
  // 0.263 -> 0.248 ms at 4k).
  const bool has_q = p.seq_q > 0 && o.quantize_q, has_kv = p.seq_kv > 0;
  const bool q_after_stats = p.stats && out.lse_correction != nullptr;
  const bool fused = runs_fused(p, o, kernels);
  StreamFork& helper = StreamFork::of(stream);
  if (fused && !has_q) {
    // K, V and their statistics in one kernel on the caller's stream, nothing beside it (Q is
    // quantized by the attention kernel): no helper stream, so the attention kernel may follow
    // quantize_kv programmatically.
    launch_kv(stream, release_successor);
    return release_successor;
  }
  helper.fork(stream);
  if (fused) {
    // One kernel for K, V and their statistics on the caller's stream; Q on the helper, beside it
    // (after it when Q reads k_mean for the LSE correction). Beside it in name only: Q's CTAs find no
    // free slot until quantize_kv's queue drains. As Q items inside quantize_kv it measured slower
    // (0.318 against 0.277 ms at S = 4k).
    launch_kv(stream, false);
    if (has_q && q_after_stats) helper.fork(stream);
    if (has_q) launch_qk(true, helper.helper());
  } else {
    if (p.stats) launch_stats(stream);
    if (has_q && !q_after_stats) launch_qk(true, helper.helper());
    if (p.stats) helper.fork(stream);
    if (has_q && q_after_stats) launch_qk(true, helper.helper());
    if (has_kv && o.quantize_v) launch_v(helper.helper());
    if (has_kv) launch_qk(false, stream);
  }
  helper.join(stream);
  return false;
}

}  // namespace sagejit
