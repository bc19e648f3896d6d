// sagejit_c.cpp — the C ABI (include/sagejit/sagejit.h) over the C++ API.
//
// Each entry point catches everything: typed errors become their status, anything else
// SAGEJIT_INTERNAL, and the message goes to a thread-local string read by sagejit_last_error().
#include "sagejit/sagejit.h"

#include <string>

#include <fmt/format.h>

#include "runtime/error.hpp"
#include "sagejit/attention.hpp"

namespace {

thread_local std::string last_error;

template <class F>
int guarded(F&& f) {
  try {
    f();
    last_error.clear();
    return SAGEJIT_OK;
  } catch (const sagejit::Error& e) {
    last_error = e.what();
    return static_cast<int>(e.status());
  } catch (const std::exception& e) {
    last_error = fmt::format("internal error: {}", e.what());
    return SAGEJIT_INTERNAL;
  }
}

sagejit::TensorRef to_ref(const sagejit_tensor* t, const char* argument) {
  if (t == nullptr) throw sagejit::InvalidArgument(argument, "is null (a sagejit_tensor is required)");
  if (t->dtype != SAGEJIT_F16 && t->dtype != SAGEJIT_BF16) {
    throw sagejit::InvalidArgument(fmt::format("{}.dtype", argument),
                                   fmt::format("must be SAGEJIT_F16 (0) or SAGEJIT_BF16 (1) (got {})", t->dtype));
  }
  sagejit::TensorRef r;
  r.data = t->data;
  r.dtype = t->dtype == SAGEJIT_F16 ? sagejit::DType::f16 : sagejit::DType::bf16;
  r.batch = t->batch, r.heads = t->heads, r.seq = t->seq, r.dim = t->dim;
  r.stride_b = t->stride_b, r.stride_h = t->stride_h, r.stride_s = t->stride_s, r.stride_d = t->stride_d;
  return r;
}

template <class E>
E enum_in(int value, int lo, int hi, const char* argument, E (*convert)(int)) {
  if (value < lo || value > hi) {
    throw sagejit::InvalidArgument(argument, fmt::format("must be in [{}, {}] (got {})", lo, hi, value));
  }
  return convert(value);
}

sagejit::AttentionOptions to_options(const sagejit_attention_options* o) {
  sagejit_attention_options defaults;
  sagejit_attention_options_init(&defaults);
  if (o == nullptr) o = &defaults;
  sagejit::AttentionOptions r;
  r.mask = enum_in<sagejit::Mask>(o->mask, 0, 2, "options.mask", [](int v) { return static_cast<sagejit::Mask>(v); });
  r.qk = enum_in<sagejit::QuantType>(o->qk_type, 0, 2, "options.qk_type", [](int v) {
    return v == 0 ? sagejit::QuantType::int8 : v == 1 ? sagejit::QuantType::int4 : sagejit::QuantType::int8x2;
  });
  if (o->pv_type != SAGEJIT_PV_DEFAULT) {
    r.pv = enum_in<sagejit::PvType>(o->pv_type, 0, 1, "options.pv_type",
                                    [](int v) { return v == 0 ? sagejit::PvType::fp8_e4m3 : sagejit::PvType::f16; });
  }
  r.granularity = enum_in<sagejit::layout::Granularity>(o->granularity, 0, 2, "options.granularity", [](int v) {
    return static_cast<sagejit::layout::Granularity>(v);
  });
  r.smooth_q = o->smooth_q != 0;
  r.smooth_k = o->smooth_k != 0;
  r.sm_scale = o->sm_scale;
  const bool any_tile = o->cta_q || o->cta_k || o->warps_q || o->stages;
  const bool all_tile = o->cta_q && o->cta_k && o->warps_q && o->stages;
  if (any_tile && !all_tile) {
    throw sagejit::InvalidArgument("options.cta_q/cta_k/warps_q/stages",
                                   "set all four to choose a tile, or none for the default");
  }
  if (all_tile) r.tile = sagejit::AttnTile{o->cta_q, o->cta_k, o->warps_q, o->stages};
  r.reuse_quantized = o->reuse_quantized != 0;
  return r;
}

}  // namespace

extern "C" {

void sagejit_attention_options_init(sagejit_attention_options* o) {
  if (o == nullptr) return;
  *o = sagejit_attention_options{};
  o->mask = SAGEJIT_MASK_NONE;
  o->qk_type = SAGEJIT_QK_INT8;
  o->pv_type = SAGEJIT_PV_DEFAULT;
  o->granularity = SAGEJIT_PER_THREAD;
  o->smooth_q = 0;
  o->smooth_k = 1;
}

int sagejit_attention(const sagejit_tensor* q, const sagejit_tensor* k, const sagejit_tensor* v,
                      const sagejit_tensor* out, float* lse, const sagejit_attention_options* options, void* stream) {
  return guarded([&] {
    sagejit::attention(to_ref(q, "q"), to_ref(k, "k"), to_ref(v, "v"), to_ref(out, "out"), lse, to_options(options),
                       static_cast<CUstream>(stream));
  });
}

int sagejit_attention_varlen(const sagejit_tensor* q, const sagejit_tensor* k, const sagejit_tensor* v,
                             const sagejit_tensor* out, float* lse, const sagejit_varlen* varlen,
                             const sagejit_attention_options* options, void* stream) {
  return guarded([&] {
    if (varlen == nullptr) throw sagejit::InvalidArgument("varlen", "is null (a sagejit_varlen is required)");
    sagejit::VarlenBatch b;
    b.batch = varlen->batch;
    b.cu_seqlens_q = varlen->cu_seqlens_q, b.cu_seqlens_k = varlen->cu_seqlens_k;
    b.cu_seqlens_q_device = varlen->cu_seqlens_q_device, b.cu_seqlens_k_device = varlen->cu_seqlens_k_device;
    b.max_seqlen_q = varlen->max_seqlen_q, b.max_seqlen_k = varlen->max_seqlen_k;
    sagejit::attention_varlen(to_ref(q, "q"), to_ref(k, "k"), to_ref(v, "v"), to_ref(out, "out"), lse, b,
                              to_options(options), static_cast<CUstream>(stream));
  });
}

const char* sagejit_last_error(void) { return last_error.c_str(); }

const char* sagejit_version(void) { return SAGEJIT_VERSION; }

}  // extern "C"
