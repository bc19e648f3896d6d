// Tests of runtime/varlen and the varlen planning in runtime/quantize_plan: every rule of a packed
// variable-length batch names its argument, the workspace is sized for the longest sequences, and
// the C ABI refuses a bad batch before it touches a GPU (so this runs on a machine without one).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/quantize_plan.hpp"
#include "sagejit/sagejit.h"
#include "sagejit/varlen.hpp"

using namespace sagejit;

namespace {

// Fake, aligned device addresses: validation never dereferences them.
const void* kPtr = reinterpret_cast<const void*>(std::uintptr_t{1} << 20);
const auto* kDevQ = reinterpret_cast<const std::int32_t*>(std::uintptr_t{1} << 21);
const auto* kDevK = reinterpret_cast<const std::int32_t*>(std::uintptr_t{1} << 22);
const Arch kHopper = parse_arch("sm_90a");

// A packed [total, H, D] (NHD) view with batch 1.
TensorRef packed(std::int64_t heads, std::int64_t total, std::int64_t dim = 128) {
  return TensorRef::contiguous(kPtr, DType::f16, Layout::nhd, 1, heads, total, dim);
}

struct Case {
  std::vector<std::int32_t> cu_q = {0, 1, 18, 1018, 1018, 5115};  // lengths 1, 17, 1000, 0, 4097
  std::vector<std::int32_t> cu_k = {0, 1000, 1017, 5114, 5119, 5120};  // lengths 1000, 17, 4097, 5, 1
  VarlenBatch batch() const {
    VarlenBatch b;
    b.batch = static_cast<std::int64_t>(cu_q.size()) - 1;
    b.cu_seqlens_q = cu_q.data(), b.cu_seqlens_k = cu_k.data();
    b.cu_seqlens_q_device = kDevQ, b.cu_seqlens_k_device = kDevK;
    b.max_seqlen_q = 4097, b.max_seqlen_k = 4097;
    return b;
  }
  TensorRef q() const { return packed(8, cu_q.back()); }
  TensorRef kv() const { return packed(2, cu_k.back()); }
};

std::string error_of(const VarlenBatch& b, const TensorRef& q, const TensorRef& k, const TensorRef& v) {
  try {
    validate_varlen(b, q, k, v);
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "no error";
}

std::string error_of(const Case& c, const VarlenBatch& b) { return error_of(b, c.q(), c.kv(), c.kv()); }

}  // namespace

TEST_CASE("a well-formed varlen batch passes, zero-length sequences and larger maxima included") {
  Case c;
  CHECK(error_of(c, c.batch()) == "no error");
  VarlenBatch b = c.batch();
  b.max_seqlen_q = 5000;  // more than needed is allowed, as in flash-attn
  CHECK(error_of(c, b) == "no error");
  // No sequences at all: only the host offsets {0} are needed, the device copy is never read.
  const std::vector<std::int32_t> zero = {0};
  VarlenBatch empty;
  empty.cu_seqlens_q = zero.data(), empty.cu_seqlens_k = zero.data();
  CHECK(error_of(empty, packed(8, 0), packed(2, 0), packed(2, 0)) == "no error");
}

TEST_CASE("offsets that break a rule are refused, naming the argument and the values") {
  Case c;
  VarlenBatch b = c.batch();
  std::vector<std::int32_t> bad = c.cu_q;
  b.cu_seqlens_q = bad.data();
  bad[0] = 3;
  CHECK(error_of(c, b) == "argument `cu_seqlens_q`: must start at 0 (got cu_seqlens_q[0] = 3)");
  bad = c.cu_q;
  bad[3] = 10;
  CHECK(error_of(c, b) ==
        "argument `cu_seqlens_q`: must be non-decreasing (got cu_seqlens_q[2] = 18 > cu_seqlens_q[3] = 10)");
  bad = c.cu_q;
  bad[5] = 5114;
  CHECK(error_of(c, b) == "argument `cu_seqlens_q`: must end at q's token count 5115 (cu_seqlens_q[5] = 5114)");
  b = c.batch();
  std::vector<std::int32_t> bad_k = c.cu_k;
  b.cu_seqlens_k = bad_k.data();
  bad_k[5] = 5121;
  CHECK(error_of(c, b) == "argument `cu_seqlens_k`: must end at k's token count 5120 (cu_seqlens_k[5] = 5121)");

  b = c.batch();
  b.max_seqlen_q = 1000;
  CHECK(error_of(c, b) ==
        "argument `max_seqlen_q`: must be at least every sequence's length (sequence 4 has 4097 tokens, max_seqlen_q "
        "is 1000)");
  b.max_seqlen_q = -1;
  CHECK(error_of(c, b) == "argument `max_seqlen_q`: must be in [0, 2^30) (got -1)");
  b = c.batch();
  b.max_seqlen_k = std::int64_t{1} << 30;
  CHECK(error_of(c, b) == "argument `max_seqlen_k`: must be in [0, 2^30) (got 1073741824)");
}

TEST_CASE("both copies of the offsets are required; the device copy must be aligned") {
  Case c;
  VarlenBatch b = c.batch();
  b.cu_seqlens_k = nullptr;
  CHECK(error_of(c, b).rfind("argument `cu_seqlens_k`: is null (the host copy", 0) == 0);
  b = c.batch();
  b.cu_seqlens_q_device = nullptr;
  CHECK(error_of(c, b) == "argument `cu_seqlens_q_device`: is null (the kernels read the device copy)");
  b = c.batch();
  b.cu_seqlens_k_device = reinterpret_cast<const std::int32_t*>(reinterpret_cast<std::uintptr_t>(kDevK) + 2);
  CHECK(error_of(c, b).rfind("argument `cu_seqlens_k_device`: must be 4-byte aligned", 0) == 0);
}

TEST_CASE("packed tensors are one batch; the batch count has CUDA's grid limit") {
  Case c;
  TensorRef q = c.q();
  q.batch = 2;
  CHECK(error_of(c.batch(), q, c.kv(), c.kv()).rfind("argument `q`: a packed varlen tensor holds every sequence", 0) ==
        0);
  TensorRef v = c.kv();
  v.batch = 5;
  CHECK(error_of(c.batch(), c.q(), c.kv(), v).find("argument `v`") == 0);
  // The tensors' own rules come first (validate_tensor).
  q = c.q();
  q.stride_s = 12;
  CHECK(error_of(c.batch(), q, c.kv(), c.kv()).find("argument `q`: the sequence stride") == 0);
  VarlenBatch b = c.batch();
  b.batch = 65536;
  CHECK(error_of(c, b) == "argument `varlen.batch`: must be in [0, 65535], one grid z slice per sequence (got 65536)");
  b.batch = -1;
  CHECK(error_of(c, b).find("argument `varlen.batch`") == 0);
}

TEST_CASE("varlen planning sizes the padded slots for the longest sequences") {
  Case c;
  QuantizeOptions o;
  o.smooth_q = true;
  o.lse_correction = true;
  const VarlenBatch b = c.batch();
  const QuantizePlan p = plan_quantize(c.q(), c.kv(), c.kv(), o, kHopper, &b);
  CHECK(p.varlen());
  CHECK(p.cu_seqlens_q == kDevQ);
  CHECK(p.cu_seqlens_k == kDevK);
  CHECK(p.batch == 5);
  CHECK(p.heads_q == 8);
  CHECK(p.heads_kv == 2);
  CHECK(p.seq_q == 4097);
  CHECK(p.seq_kv == 4097);
  CHECK(p.seq_q_pad == 4224);   // round_up(4097, 128)
  CHECK(p.seq_kv_pad == 4160);  // round_up(4097, 64)
  // Equal to a padded batch of 5 sequences of the longest length, buffer for buffer.
  const QuantizePlan padded = plan_quantize(TensorRef::contiguous(kPtr, DType::f16, Layout::hnd, 5, 8, 4097, 128),
                                            TensorRef::contiguous(kPtr, DType::f16, Layout::hnd, 5, 2, 4097, 128),
                                            TensorRef::contiguous(kPtr, DType::f16, Layout::hnd, 5, 2, 4097, 128), o,
                                            kHopper);
  CHECK_FALSE(padded.varlen());
  CHECK(p.workspace_bytes == padded.workspace_bytes);
  CHECK(p.lse_correction == padded.lse_correction);
  CHECK(p.v == padded.v);
  CHECK(p.partial_sum == padded.partial_sum);
  // max_seqlen, not the total token count, sizes the workspace.
  VarlenBatch shorter = b;
  std::vector<std::int32_t> cu = {0, 100, 200, 300, 400, 500};
  shorter.cu_seqlens_q = cu.data(), shorter.cu_seqlens_k = cu.data();
  shorter.max_seqlen_q = shorter.max_seqlen_k = 100;
  const QuantizePlan small = plan_quantize(packed(8, 500), packed(2, 500), packed(2, 500), o, kHopper, &shorter);
  CHECK(small.seq_q_pad == 128);
  CHECK(small.seq_kv_pad == 128);
  CHECK(small.workspace_bytes < p.workspace_bytes / 20);
  // The offsets are checked first, naming them.
  shorter.max_seqlen_q = 99;
  CHECK_THROWS_WITH_AS(plan_quantize(packed(8, 500), packed(2, 500), packed(2, 500), o, kHopper, &shorter),
                       doctest::Contains("argument `max_seqlen_q`"), InvalidArgument);
}

TEST_CASE("sagejit_attention_varlen refuses bad offsets before touching a GPU") {
  const std::vector<std::int32_t> cu_q = {0, 5, 3}, cu_k = {0, 4, 8};
  auto tensor = [](std::int64_t heads, std::int64_t total) {
    sagejit_tensor t{};
    t.data = const_cast<void*>(kPtr);
    t.dtype = SAGEJIT_F16;
    t.batch = 1, t.heads = heads, t.seq = total, t.dim = 64;
    t.stride_b = total * heads * 64, t.stride_h = 64, t.stride_s = heads * 64, t.stride_d = 1;
    return t;
  };
  const sagejit_tensor q = tensor(4, 3), k = tensor(2, 8), out = tensor(4, 3);
  sagejit_varlen v{};
  v.batch = 2;
  v.cu_seqlens_q = cu_q.data(), v.cu_seqlens_k = cu_k.data();
  v.cu_seqlens_q_device = kDevQ, v.cu_seqlens_k_device = kDevK;
  v.max_seqlen_q = 5, v.max_seqlen_k = 4;
  sagejit_attention_options o;
  sagejit_attention_options_init(&o);
  CHECK(sagejit_attention_varlen(&q, &k, &k, &out, nullptr, &v, &o, nullptr) == SAGEJIT_INVALID_ARGUMENT);
  CHECK(std::string(sagejit_last_error()) ==
        "argument `cu_seqlens_q`: must be non-decreasing (got cu_seqlens_q[1] = 5 > cu_seqlens_q[2] = 3)");
  CHECK(sagejit_attention_varlen(&q, &k, &k, &out, nullptr, nullptr, &o, nullptr) == SAGEJIT_INVALID_ARGUMENT);
  CHECK(std::string(sagejit_last_error()).find("argument `varlen`") == 0);
}
