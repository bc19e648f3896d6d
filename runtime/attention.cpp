// attention.cpp — the attention call: validate, resolve kernels, quantize, attend.
//
// Kernels are resolved once per (context, spec) and kept behind a key of plain integers, so a warm
// call formats no strings and allocates nothing. Quantization and attention kernels of a new spec
// are compiled together, in parallel, before the first launch.
#include "sagejit/attention.hpp"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <cmath>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "autotune/policy.hpp"
#include "generator/quant_spec.hpp"
#include "runtime/device.hpp"
#include "runtime/driver.hpp"
#include "runtime/error.hpp"
#include "runtime/jit.hpp"
#include "runtime/quantize_plan.hpp"
#include "runtime/tensor_map.hpp"
#include "runtime/workspace.hpp"
#include "sagejit/quantize.hpp"
#include "templates/attn_params.cuh"

namespace sagejit {
namespace {

using SpecKey = std::array<int, 16>;

SpecKey key_of(const AttnSpec& s) {
  return {static_cast<int>(s.family) * 1000 + s.arch.number(),      s.head_dim,          static_cast<int>(s.quant.qk),  static_cast<int>(s.quant.granularity),
          static_cast<int>(s.quant.pv), s.quant.smooth_q, static_cast<int>(s.mask), static_cast<int>(s.out.dtype),
          s.out.lse,            s.tile.cta_q,        s.tile.cta_k,                  s.tile.warps_q,
          s.tile.stages,        s.tile.min_ctas_per_sm, s.tile.persistent, s.quant.fused_q};
}

struct Extent {
  std::uintptr_t begin, end;
};

Extent extent_of(const TensorRef& t) {
  const auto begin = reinterpret_cast<std::uintptr_t>(t.data);
  if (t.batch * t.heads * t.seq * t.dim == 0) return {begin, begin};
  const std::int64_t last = (t.batch - 1) * t.stride_b + (t.heads - 1) * t.stride_h + (t.seq - 1) * t.stride_s + t.dim;
  return {begin, begin + static_cast<std::uintptr_t>(last) * 2};
}

// Throws InvalidArgument naming `argument` when the bytes `x` overlap any of `others` (a tensor and
// its name, spoken of as `prefix` + name).
void check_disjoint(const Extent& x, const char* argument, const char* prefix,
                    std::initializer_list<std::pair<const TensorRef*, const char*>> others) {
  for (auto [t, what] : others) {
    const Extent e = extent_of(*t);
    if (x.begin < e.end && e.begin < x.end) {
      throw InvalidArgument(argument, fmt::format("must not overlap {}{} ({} spans {:#x}..{:#x}, {} spans {:#x}..{:#x})",
                                                  prefix, what, argument, x.begin, x.end, what, e.begin, e.end));
    }
  }
}

void check_output(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out, float* lse) {
  validate_tensor(out, "out");
  if (out.dtype != q.dtype) {
    throw InvalidArgument("out", fmt::format("must have q's dtype {} (got {})", name(q.dtype), name(out.dtype)));
  }
  if (out.batch != q.batch || out.heads != q.heads || out.seq != q.seq || out.dim != q.dim) {
    throw InvalidArgument("out", fmt::format("must have q's shape [{}, {}, {}, {}] (got [{}, {}, {}, {}])", q.batch,
                                             q.heads, q.seq, q.dim, out.batch, out.heads, out.seq, out.dim));
  }
  check_disjoint(extent_of(out), "out", "the input ", {{&q, "q"}, {&k, "k"}, {&v, "v"}});
  if (lse != nullptr && reinterpret_cast<std::uintptr_t>(lse) % 4 != 0) {
    throw InvalidArgument("lse", "must be 4-byte aligned (float [B, Hq, Sq])");
  }
  // The kernel writes the LSE while other CTAs still read q (the sm_90a kernel quantizes Q itself),
  // k and v: no overlap with them, nor with out. (Varlen views have batch 1 and seq = total_q.)
  if (lse != nullptr && q.batch * q.heads * q.seq > 0) {
    const auto begin = reinterpret_cast<std::uintptr_t>(lse);
    check_disjoint({begin, begin + static_cast<std::uintptr_t>(q.batch * q.heads * q.seq) * 4}, "lse", "",
                   {{&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"}});
  }
}

// The AttentionOptions field (or tensor) behind an attention spec's field, for the errors the spec's
// validation names by its own fields; the field itself where the names agree (tile, family).
std::string option_of_field(const std::string& field) {
  if (field == "quant.qk") return "qk";
  if (field == "quant.pv") return "pv";
  if (field == "quant.granularity") return "granularity";
  if (field == "quant.smooth_q") return "smooth_q";
  if (field == "quant.fused_q") return "fused_q";
  if (field == "head_dim") return "q.dim";
  return field;
}

struct Resolved {
  AttnSpec spec;
  QuantizeOptions quant;
  QuantizePlan plan;
};

Resolved resolve(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out, float* lse,
                 const VarlenBatch* varlen, const AttentionOptions& o, const DeviceInfo& device) {
  Resolved r;
  AttnSpec& s = r.spec;
  try {
    // The variant: the caller's family/tile, a tuned record, or the heuristic default (the wgmma
    // kernel on sm_90a where it supports the problem, else mma.sync): autotune/policy.
    s = choose_kernel(problem_of(q, k, lse != nullptr, varlen, o, device.arch(), device.sm_count), o.family, o.tile)
            .spec;
    // Q quantized by the kernel itself wherever the kernel can (generator/attn_spec.hpp, can_fuse_q).
    s.quant.fused_q = o.fused_q && can_fuse_q(s);
    s.validate();
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(option_of_field(e.argument()), e.rule());
  }

  QuantizeOptions& qo = r.quant;
  qo.qk_type = o.qk;
  qo.granularity = o.granularity;
  // (The shared-ring form's warpgroups each read a 64-row Q tile of their own: its scale blocks are
  // a warpgroup's rows, not the CTA's.)
  qo.block_q = s.family == AttnFamily::wgmma && is_wgmma_shared(s.tile) ? kernels::kWgmmaRowsPerWg : s.tile.cta_q;
  qo.warp_q = s.tile.warp_q();
  // Every warp of the attention kernel sees all keys of a tile: one K "warp" per block.
  qo.block_k = s.tile.cta_k;
  qo.warp_k = s.tile.cta_k;
  qo.smooth_q = o.smooth_q;
  qo.quantize_q = !s.quant.fused_q;
  qo.smooth_k = o.smooth_k;
  qo.quantize_v = s.quant.pv == PvType::fp8_e4m3;
  qo.lse_correction = lse != nullptr && o.smooth_k;
  qo.sm_scale = o.sm_scale;
  r.plan = plan_quantize(q, k, v, qo, device.arch(), varlen);
  check_output(q, k, v, out, lse);
  return r;
}

const Kernel& attention_kernel(const Resolved& r, DType dtype) {
  static std::mutex mutex;
  static std::map<std::pair<CUcontext, SpecKey>, const Kernel*> kernels;
  const CUcontext ctx = ensure_current_context();
  const auto key = std::make_pair(ctx, key_of(r.spec));
  {
    std::lock_guard lock(mutex);
    if (auto it = kernels.find(key); it != kernels.end()) return *it->second;
  }
  // First use of this spec: compile it and its quantization kernels together, in parallel.
  std::vector<GeneratedUnit> units = {r.spec.generate()};
  for (const QuantSpec& s : quant_specs_for_call(r.spec.arch, dtype, r.spec.head_dim, r.quant.qk_type,
                                                 r.quant.smooth_q, r.quant.smooth_k, r.quant.quantize_v)) {
    units.push_back(s.generate());
  }
  Jit& jit = default_jit();
  jit.cubins(units);
  const Kernel* kernel = &jit.kernel(units[0]);
  std::lock_guard lock(mutex);
  return *kernels.emplace(key, kernel).first->second;
}

std::uint64_t call_identity(const Resolved& r, const TensorRef& q, const TensorRef& k, const TensorRef& v,
                            const VarlenBatch* varlen) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::uint64_t x) { h = (h ^ x) * 1099511628211ull; };
  for (int x : key_of(r.spec)) mix(static_cast<std::uint64_t>(x));
  for (const TensorRef* t : {&q, &k, &v}) {
    mix(reinterpret_cast<std::uintptr_t>(t->data));
    for (std::int64_t x : {t->batch, t->heads, t->seq, t->stride_b, t->stride_h, t->stride_s}) mix(static_cast<std::uint64_t>(x));
  }
  mix(r.quant.smooth_k);
  mix(r.quant.lse_correction);
  if (varlen != nullptr) {  // the device offsets (their values are the caller's to keep unchanged)
    mix(reinterpret_cast<std::uintptr_t>(varlen->cu_seqlens_q_device));
    mix(reinterpret_cast<std::uintptr_t>(varlen->cu_seqlens_k_device));
    for (std::int64_t x : {varlen->batch, varlen->max_seqlen_q, varlen->max_seqlen_k}) mix(static_cast<std::uint64_t>(x));
  }
  return h | 1;  // never 0, the "nothing quantized yet" value
}

// attention() and attention_varlen(): `varlen` null for padded batches.
void run_attention(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out, float* lse,
                   const VarlenBatch* varlen, const AttentionOptions& options, CUstream stream) {
  const Resolved r = resolve(q, k, v, out, lse, varlen, options, current_device_info());
  const QuantizePlan& p = r.plan;
  if (p.batch == 0 || p.seq_q == 0) return;  // nothing to compute

  const Kernel& kernel = attention_kernel(r, q.dtype);
  StreamWorkspace& ws = stream_workspace(stream, p.workspace_bytes);
  const std::uint64_t identity = call_identity(r, q, k, v, varlen);
  void* const workspace = reinterpret_cast<void*>(ws.ptr);
  if (options.reuse_quantized) {
    if (ws.last_call != identity) {
      throw InvalidArgument("reuse_quantized", "needs a previous call on this stream with the same inputs, shapes "
                                               "and options");
    }
  }
  bool after_quantize_kv = false;  // the kernel just enqueued lets this one launch programmatically
  if (!options.reuse_quantized) {
    after_quantize_kv = enqueue_quantize(p, q, k, v, r.quant, workspace, stream, /*release_successor=*/true);
    ws.last_call = identity;
  }
  // The plan is deterministic, so a reused workspace holds its outputs at the same offsets.
  const QuantizedQKV qkv = quantized_views(p, workspace);

  kernels::AttnParams a{};
  if (r.spec.quant.fused_q) {  // the kernel quantizes the caller's Q (templates/attn_wgmma_q.cuh)
    a.q = q.data;
    a.q_stride_b = q.stride_b, a.q_stride_h = q.stride_h, a.q_stride_s = q.stride_s;
    a.q_scale_multiplier = p.scale_multiplier;
  } else {
    a.q = qkv.q, a.q_scale = qkv.q_scale, a.q_mean = qkv.q_mean;
  }
  a.k = qkv.k, a.k_scale = qkv.k_scale, a.k_mean = qkv.k_mean;
  if (r.quant.quantize_v) {
    a.v = qkv.v, a.v_scale = qkv.v_scale;
  } else {
    a.v = v.data;
    a.v_stride_b = v.stride_b, a.v_stride_h = v.stride_h, a.v_stride_s = v.stride_s;
  }
  a.o = const_cast<void*>(out.data);
  a.o_stride_b = out.stride_b, a.o_stride_h = out.stride_h, a.o_stride_s = out.stride_s;
  a.lse = lse;
  a.lse_correction = qkv.lse_correction;
  a.cu_seqlens_q = p.cu_seqlens_q, a.cu_seqlens_k = p.cu_seqlens_k;  // null without varlen
  a.batch = p.batch, a.heads_q = p.heads_q, a.heads_kv = p.heads_kv;
  a.seq_q = p.seq_q, a.seq_kv = p.seq_kv, a.seq_q_pad = p.seq_q_pad, a.seq_kv_pad = p.seq_kv_pad;
  a.sm_scale = p.sm_scale;
  // The causal single-warpgroup kernel's longest-first order (attn_wgmma_tile_lpt) goes through the
  // (b, h) in groups: a power of two up to 32 (H100, B4 H32 D128 causal, kernel TOPS: groups of 16
  // and 32 gained 2-5% at 1k-4k keys over (b, h)-major pairs, while 12, 20, 24 and 40 lost 1-7%,
  // for a reason not found), and no more than have their quantized K and V within a third of L2
  // (groups of 32 lost 3-5% at 8k keys, 64 MB; bench/results/2026-11-27-causal-order-h100.md).
  const double kv_bytes_per_q_head = double(p.seq_kv_pad) * p.head_dim *
                                     (r.spec.qk_terms() + (r.quant.quantize_v ? 1 : 2)) * p.heads_kv / p.heads_q;
  const double group_limit = std::min(32.0, current_device_info().l2_bytes / 3.0 / std::max(1.0, kv_bytes_per_q_head));
  a.lpt_heads = 1;
  while (2.0 * a.lpt_heads <= group_limit) a.lpt_heads *= 2;
  const AttnTile& t = r.spec.tile;
  if (r.spec.family == AttnFamily::wgmma) {
    // TMA descriptors over the quantized workspace, and with f16 P·V over the caller's V (encoded on
    // the host: no allocation, no sync).
    WgmmaTensorMaps maps = wgmma_tensor_maps(qkv, std::uint64_t(p.batch) * p.heads_q,
                                             std::uint64_t(p.batch) * p.heads_kv, p.head_dim, r.spec.qk_terms(),
                                             t.cta_k, r.quant.quantize_v ? nullptr : &v);
    void* args[] = {&a, &maps.q, &maps.k, &maps.v};
    const bool causal = r.spec.mask != Mask::none;
    const int q_slots = kernels::attn_wgmma_q_slots(static_cast<int>(p.seq_q), t.cta_q, causal);
    LaunchConfig launch{{static_cast<unsigned>(q_slots), static_cast<unsigned>(p.heads_q),
                         static_cast<unsigned>(p.batch)},
                        {static_cast<unsigned>(r.spec.threads()), 1, 1},
                        static_cast<unsigned>(r.spec.shared_bytes())};
    // The wgmma kernels wait for the quantization (griddep_wait) before their first K/V copy; with
    // fused Q the Q loads run during quantize_kv's last CTAs (after_quantize_kv implies fused Q).
    launch.programmatic = after_quantize_kv;
    if (t.persistent) {
      const int slots = q_slots * p.heads_q * p.batch;
      launch.grid = {static_cast<unsigned>(kernels::attn_wgmma_persistent_ctas(
                         slots, current_device_info().sm_count, wgmma_warpgroups(t), causal)),
                     1, 1};
    }
    kernel.launch(launch, stream, args);
    return;
  }
  void* args[] = {&a};
  kernel.launch({{static_cast<unsigned>((p.seq_q + t.cta_q - 1) / t.cta_q), static_cast<unsigned>(p.heads_q),
                  static_cast<unsigned>(p.batch)},
                 {static_cast<unsigned>(t.threads()), 1, 1},
                 static_cast<unsigned>(r.spec.shared_bytes())},
                stream, args);
}

}  // namespace

AttnSpec attention_spec(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out, float* lse,
                        const AttentionOptions& options) {
  return resolve(q, k, v, out, lse, nullptr, options, current_device_info()).spec;
}

void attention(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out, float* lse,
               const AttentionOptions& options, CUstream stream) {
  run_attention(q, k, v, out, lse, nullptr, options, stream);
}

// The varlen entry points check the offsets (host-only) before the device is asked for its arch, so
// a bad batch is refused, naming its argument, even where no GPU is reachable.
AttnSpec attention_varlen_spec(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out,
                               float* lse, const VarlenBatch& varlen, const AttentionOptions& options) {
  validate_varlen(varlen, q, k, v);
  return resolve(q, k, v, out, lse, &varlen, options, current_device_info()).spec;
}

void attention_varlen(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out, float* lse,
                      const VarlenBatch& varlen, const AttentionOptions& options, CUstream stream) {
  validate_varlen(varlen, q, k, v);
  run_attention(q, k, v, out, lse, &varlen, options, stream);
}

}  // namespace sagejit
