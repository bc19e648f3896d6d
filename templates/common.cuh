// common.cuh — device helpers shared by every sagejit kernel template.
//
// NVRTC compiles our templates with no CUDA or standard header on its include path (it sees only the
// embedded .cuh files), so everything a kernel needs beyond the compiler's built-ins
// (threadIdx, __syncthreads, __shfl_xor_sync, atomics, __threadfence) is defined here.
//
// Why inline PTX for arithmetic: the quantization kernels must match the host reference
// (reference/quant_reference.cpp) bit for bit. A plain `a * b + c` may be contracted into an FMA,
// and `a / b` becomes an approximate division under --use_fast_math (which also flushes
// subnormals). PTX instructions with an explicit rounding modifier (add.rn, mul.rn, div.rn, no .ftz)
// are never contracted or approximated by ptxas, so the result does not depend on compile flags.
// The cost is nil: these kernels are memory bound.
#pragma once

#include "quant_layout.cuh"

namespace sagejit::kernels {

typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef long long int64_t;

// Element tags: a 16-bit storage type whose meaning (fp16 or bf16) is carried by the type, so a
// kernel template picks the conversion at compile time.
struct f16 {
  unsigned short bits;
};
struct bf16 {
  unsigned short bits;
};

// Sixteen bytes: the unit of every global load and store (8 fp16/bf16 values, 16 int8 or e4m3).
struct alignas(16) u32x4 {
  uint32_t x, y, z, w;
};
struct alignas(8) u32x2 {
  uint32_t x, y;
};

#ifdef __CUDACC__

// ---- exact float arithmetic, immune to FMA contraction and fast-math flags ----
__device__ __forceinline__ float add_rn(float a, float b) {
  float d;
  asm("add.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
  return d;
}
__device__ __forceinline__ float sub_rn(float a, float b) {
  float d;
  asm("sub.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
  return d;
}
__device__ __forceinline__ float mul_rn(float a, float b) {
  float d;
  asm("mul.rn.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
  return d;
}
// a / b correctly rounded to float, exactly what IEEE float division (and the host's `a / b`)
// gives, for every float a and every non-zero b — without div.rn.f32. ptxas implements
// div.rn.f32 as a fast path plus a called slow-path subroutine, and that call gives the kernels a
// stack frame whenever it sits where many registers are live. Here the quotient is computed in
// double, where no float operand or quotient is subnormal or overflows: a reciprocal estimate,
// three Newton steps and a Markstein correction give the double quotient within 1 ulp (2^-52), and
// exactly when it is representable. Rounding that to float is then correct: a float quotient a/b
// is never within 2^-49 (relative) of a float rounding midpoint without being exactly on it
// (Figueroa: double rounding through p' >= 2p + 2 bits is innocuous for division). Only a handful
// of these run per CTA (one per scale group or channel), so the slow double rate of consumer GPUs
// does not matter. An infinite a or b would turn the Newton steps' residuals into inf − inf, and
// the correction would turn −0 / b into +0: for those, and a zero a, the quotient is a times the
// estimate of 1/b (±inf, a signed zero, or NaN for inf / inf, as IEEE has it). A channel holding an
// infinity meets them (its sum, max, scale and 1 / scale).
__device__ __forceinline__ float div_rn(float a, float b) {
  float q;
  asm("{\n\t"
      ".reg .f64 a, b, r0, r, e, q;\n\t"
      ".reg .pred pa, pb;\n\t"
      "cvt.f64.f32 a, %1;\n\t"
      "cvt.f64.f32 b, %2;\n\t"
      "rcp.approx.ftz.f64 r0, b;\n\t"
      "testp.infinite.f64 pa, a;\n\t"
      "testp.infinite.f64 pb, b;\n\t"
      "or.pred pa, pa, pb;\n\t"
      "setp.eq.or.f64 pa, a, 0d0000000000000000, pa;\n\t"
      "mov.f64 r, r0;\n\t"
      "neg.f64 b, b;\n\t"
      "fma.rn.f64 e, b, r, 0d3FF0000000000000;\n\t"
      "fma.rn.f64 r, e, r, r;\n\t"
      "fma.rn.f64 e, b, r, 0d3FF0000000000000;\n\t"
      "fma.rn.f64 r, e, r, r;\n\t"
      "fma.rn.f64 e, b, r, 0d3FF0000000000000;\n\t"
      "fma.rn.f64 r, e, r, r;\n\t"
      "mul.rn.f64 q, a, r;\n\t"
      "fma.rn.f64 e, b, q, a;\n\t"
      "fma.rn.f64 q, e, r, q;\n\t"
      "@pa mul.rn.f64 q, a, r0;\n\t"
      "cvt.rn.f32.f64 %0, q;\n\t"
      "}"
      : "=f"(q)
      : "f"(a), "f"(b));
  return q;
}
// a / B correctly rounded to float for a constant odd B (127 and 7, the int8 and int4 maxima), the
// same bits as div_rn(a, B) in three instructions instead of its Newton steps: the double product
// a · RN(1 / B) is within 2^-52 (relative) of a / B, and a / B is never a float rounding midpoint
// (B · m, for m a midpoint, has more significant bits than a float holds when B is odd) nor closer
// to one than 2^-33 (relative; 2^-150 / B absolute among the subnormals), so rounding the product to
// float rounds a / B. Zeros, infinities and NaN pass through the product as through the division.
// Checked for all 2^32 inputs on the host (same IEEE operations); test_quant_reference.cpp sweeps
// the exponents where it could go wrong.
template <int B>
__device__ __forceinline__ float div_rn_odd(float a) {
  static_assert(B > 1 && B % 2 == 1 && B < 256, "B: an odd constant below 256 (the bounds above)");
  return static_cast<float>(static_cast<double>(a) * (1.0 / B));
}
__device__ __forceinline__ float abs_f(float a) {
  float d;
  asm("abs.f32 %0, %1;" : "=f"(d) : "f"(a));
  return d;
}
// The maxima of the quantizers propagate NaN (max.NaN): a NaN input makes its channel's or group's
// scale NaN, so the outputs that depend on it are NaN, as in float attention, rather than the NaN
// being dropped by the int8 conversion (which turns it into 0).
__device__ __forceinline__ float max_f(float a, float b) {
  float d;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
  return d;
}
__device__ __forceinline__ uint32_t float_bits(float a) {
  uint32_t d;
  asm("mov.b32 %0, %1;" : "=r"(d) : "f"(a));
  return d;
}
__device__ __forceinline__ float bits_float(uint32_t a) {
  float d;
  asm("mov.b32 %0, %1;" : "=f"(d) : "r"(a));
  return d;
}

// ---- fp16 / bf16 <-> float ----
// Widening is exact; narrowing rounds to nearest even (cvt.rn.*).
__device__ __forceinline__ float to_float(f16 h) {
  float d;
  asm("{ .reg .b16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(d) : "h"(h.bits));
  return d;
}
__device__ __forceinline__ float to_float(bf16 h) {
  return bits_float(static_cast<uint32_t>(h.bits) << 16);
}
template <typename T>
__device__ __forceinline__ T from_float(float f);
template <>
__device__ __forceinline__ f16 from_float<f16>(float f) {
  unsigned short b;
  asm("{ .reg .b16 t; cvt.rn.f16.f32 t, %1; mov.b16 %0, t; }" : "=h"(b) : "f"(f));
  return f16{b};
}
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float f) {
  unsigned short b;
  asm("{ .reg .b16 t; cvt.rn.bf16.f32 t, %1; mov.b16 %0, t; }" : "=h"(b) : "f"(f));
  return bf16{b};
}

// The low (lo = true) or high 16-bit half of a 32-bit word holding two packed elements, as float.
// Element 2i of a 16-byte chunk is the low half of word i (little-endian).
template <typename In>
__device__ __forceinline__ float unpack_lo(uint32_t w) {
  return to_float(In{static_cast<unsigned short>(w & 0xffffu)});
}
template <typename In>
__device__ __forceinline__ float unpack_hi(uint32_t w) {
  return to_float(In{static_cast<unsigned short>(w >> 16)});
}
// The 8 elements of a 16-byte chunk as floats, in channel order.
template <typename In>
__device__ __forceinline__ void unpack8(const u32x4& c, float (&f)[8]) {
  f[0] = unpack_lo<In>(c.x);
  f[1] = unpack_hi<In>(c.x);
  f[2] = unpack_lo<In>(c.y);
  f[3] = unpack_hi<In>(c.y);
  f[4] = unpack_lo<In>(c.z);
  f[5] = unpack_hi<In>(c.z);
  f[6] = unpack_lo<In>(c.w);
  f[7] = unpack_hi<In>(c.w);
}

// Elementwise max(a, |b|) of two words of two packed elements each. max.NaN.f16x2 / .bf16x2 give
// NaN where either element is NaN, as max_f does, and widening to float is exact and monotonic, so
// each element, widened, is max_f(a, abs_f(b)) taken on the floats (a NaN's bits aside).
// max2: the same without the absolute value.
template <typename In>
__device__ __forceinline__ uint32_t max2(uint32_t a, uint32_t b);
template <>
__device__ __forceinline__ uint32_t max2<f16>(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("max.NaN.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}
template <>
__device__ __forceinline__ uint32_t max2<bf16>(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("max.NaN.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}
template <typename In>
__device__ __forceinline__ uint32_t abs2(uint32_t a);
template <>
__device__ __forceinline__ uint32_t abs2<f16>(uint32_t a) {
  uint32_t d;
  asm("abs.f16x2 %0, %1;" : "=r"(d) : "r"(a));
  return d;
}
template <>
__device__ __forceinline__ uint32_t abs2<bf16>(uint32_t a) {
  uint32_t d;
  asm("abs.bf16x2 %0, %1;" : "=r"(d) : "r"(a));
  return d;
}
template <typename In>
__device__ __forceinline__ uint32_t max_abs2(uint32_t a, uint32_t b) {
  return max2<In>(a, abs2<In>(b));
}
// acc[w] = max_abs2(acc[w], word w of c): the running |x| maxima of a 16-byte chunk's 8 elements,
// in four packed accumulators.
template <typename In>
__device__ __forceinline__ void max_abs8(uint32_t (&acc)[4], const u32x4& c) {
  acc[0] = max_abs2<In>(acc[0], c.x);
  acc[1] = max_abs2<In>(acc[1], c.y);
  acc[2] = max_abs2<In>(acc[2], c.z);
  acc[3] = max_abs2<In>(acc[3], c.w);
}

// ---- float -> quantized integers / e4m3 ----
// Round to nearest even, then clamp to [-limit, limit]. NaN converts to 0 (cvt.rni.s32.f32), as in
// the host reference. The clamp is symmetric on purpose: int8 never produces -128, int4 never -8.
__device__ __forceinline__ int round_clamp(float x, int limit) {
  int i;
  asm("cvt.rni.s32.f32 %0, %1;" : "=r"(i) : "f"(x));
  i = i > limit ? limit : i;
  return i < -limit ? -limit : i;
}
__device__ __forceinline__ int8_t to_int8(float x) {
  return static_cast<int8_t>(round_clamp(x, static_cast<int>(layout::kInt8Max)));
}
// Four values of a scale group already divided by its scale, as to_int8 converts each (round to
// nearest even, NaN to 0, clamped to [-127, 127]), x0 in the low byte, in fewer instructions:
// ptxas fuses cvt.rni and cvt.pack.sat into F2IP, which saturates to [-128, 127].
// The scale must be at least the group's max |x| / 127, with the divisions and the product
// correctly rounded: then |x| <= 127·(1 + 2⁻²²) < 127.5, so -128 never occurs and to_int8's lower
// clamp is not needed (NaN, and ±inf·0, convert to 0 either way). quantize_rows and the fused-Q
// prologue compute their scales so.
__device__ __forceinline__ uint32_t pack_int8x4_scaled(float x0, float x1, float x2, float x3) {
  int i[4];
  const float x[4] = {x0, x1, x2, x3};
#pragma unroll
  for (int n = 0; n < 4; ++n) asm("cvt.rni.s32.f32 %0, %1;" : "=r"(i[n]) : "f"(x[n]));
  uint32_t hi, w;
  // cvt.pack.sat.s8.s32.b32 d, a, b, c: d = {b, a} in bytes 0 and 1, c's low 16 bits above.
  asm("cvt.pack.sat.s8.s32.b32 %0, %1, %2, %3;" : "=r"(hi) : "r"(i[3]), "r"(i[2]), "r"(0u));
  asm("cvt.pack.sat.s8.s32.b32 %0, %1, %2, %3;" : "=r"(w) : "r"(i[1]), "r"(i[0]), "r"(hi));
  return w;
}
// int4 in [-7, 7], returned as its low nibble (two's complement).
__device__ __forceinline__ uint32_t to_int4_nibble(float x) {
  return static_cast<uint32_t>(round_clamp(x, static_cast<int>(layout::kInt4Max))) & 0xfu;
}

// e4m3 (the "fn" variant: no infinities, 0x7f is NaN), round to nearest even, finite results
// saturate to +-448. Returns two bytes: `hi` in bits 15..8, `lo` in bits 7..0 (the PTX operand
// order puts the first source in the upper half). The instruction exists from sm_89 on and V is
// quantized to FP8 only there, so older targets simply do not get this function: a kernel that
// calls it fails to compile for them instead of producing wrong bytes.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
__device__ __forceinline__ uint32_t to_e4m3x2(float hi, float lo) {
  unsigned short d;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(d) : "f"(hi), "f"(lo));
  return d;
}
#endif

// ---- memory ----
// 16-byte read-only global load (the inputs are read once; .nc lets it use the texture path).
__device__ __forceinline__ u32x4 load16_nc(const void* p) {
  u32x4 v;
  asm("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}
// L2 eviction policies (createpolicy) for loads that take one (load16_nc_hint): evict_first for
// bytes read for the last time, so that they go before bytes still to be read again.
__device__ __forceinline__ unsigned long long l2_policy_evict_normal() {
  unsigned long long p;
  asm("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;" : "=l"(p));
  return p;
}
__device__ __forceinline__ unsigned long long l2_policy_evict_first() {
  unsigned long long p;
  asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(p));
  return p;
}
__device__ __forceinline__ u32x4 load16_nc_hint(const void* p, unsigned long long policy) {
  u32x4 v;
  asm("ld.global.nc.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p), "l"(policy));
  return v;
}
// The loads of a tile of rows in the quantization kernels' thread mapping (quant_qk.cuh): the
// thread's row slot `slot` covers rows slot + k·RowSlots (k < Passes) and its quad lane the 16-byte
// chunks quad_lane + 4j (j < Chunks) of each row (8 elements each); rows >= n_valid read as zeros.
// All loads are issued before any is used.
// One 64-bit address per row, the chunks at constant offsets from it (immediates of the loads: the
// index arithmetic per load was a fifth of quantize_kv's instructions).
// `load` is a 16-byte load (load16_nc, or load16_nc_hint with an L2 policy: the overloads below).
template <int Passes, int Chunks, int RowSlots, typename In, class Load>
__device__ __forceinline__ void load_tile_rows_by(const In* in, long long stride_s, int n_valid, int slot,
                                                  int quad_lane, u32x4 (&data)[Passes][Chunks], Load&& load) {
  const In* row = in + slot * stride_s + 8 * quad_lane;
  const long long pass_step = RowSlots * stride_s;
#pragma unroll
  for (int k = 0; k < Passes; ++k, row += pass_step) {
    const bool valid = slot + k * RowSlots < n_valid;
#pragma unroll
    for (int j = 0; j < Chunks; ++j) data[k][j] = valid ? load(row + 32 * j) : u32x4{0u, 0u, 0u, 0u};
  }
}
template <int Passes, int Chunks, int RowSlots, typename In>
__device__ __forceinline__ void load_tile_rows(const In* in, long long stride_s, int n_valid, int slot,
                                               int quad_lane, u32x4 (&data)[Passes][Chunks]) {
  load_tile_rows_by<Passes, Chunks, RowSlots>(in, stride_s, n_valid, slot, quad_lane, data,
                                              [](const In* p) { return load16_nc(p); });
}
// With an L2 eviction policy (l2_policy_*) on every load.
template <int Passes, int Chunks, int RowSlots, typename In>
__device__ __forceinline__ void load_tile_rows(const In* in, long long stride_s, int n_valid, int slot,
                                               int quad_lane, u32x4 (&data)[Passes][Chunks],
                                               unsigned long long policy) {
  load_tile_rows_by<Passes, Chunks, RowSlots>(in, stride_s, n_valid, slot, quad_lane, data,
                                              [policy](const In* p) { return load16_nc_hint(p, policy); });
}
__device__ __forceinline__ void store16(void* p, const u32x4& v) {
  asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z),
               "r"(v.w)
               : "memory");
}
__device__ __forceinline__ void store8(void* p, uint32_t a, uint32_t b) {
  asm volatile("st.global.v2.u32 [%0], {%1, %2};" ::"l"(p), "r"(a), "r"(b) : "memory");
}
__device__ __forceinline__ void store4(void* p, uint32_t a) {
  asm volatile("st.global.u32 [%0], %1;" ::"l"(p), "r"(a) : "memory");
}
// A load that bypasses L1 (cached in L2 only): for data written by other CTAs of the same launch,
// which a stale L1 line must not hide.
__device__ __forceinline__ float load_cg(const float* p) {
  float v;
  asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p) : "memory");
  return v;
}

// ---- programmatic dependent launch (runtime/module.hpp, LaunchConfig::programmatic) ----
// griddep_launch_dependents: this CTA no longer holds back the next kernel in the stream (once every
// CTA has said so or exited, that kernel's CTAs may start). griddep_wait: wait until the kernels
// this one depends on have completed and their writes are visible. Both are no-ops without a
// programmatic launch, and before sm_90 (no such instruction; launches there are never programmatic).
__device__ __forceinline__ void griddep_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void griddep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// ---- warp reductions ----
// Butterfly over the lanes whose ids differ in the bits of `Mask` (e.g. Mask = 3: the 4 lanes of a
// quad; Mask = 28: lanes with equal lane % 4). Levels run from the lowest bit up, so for a sum the
// result is the balanced pairwise tree over the participating lanes in lane order — the order the
// host reference reproduces. Every participating lane ends with the same value (a + b == b + a
// exactly in IEEE arithmetic).
template <int Mask>
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int bit = 1; bit < 32; bit <<= 1) {
    if (Mask & bit) v = add_rn(v, __shfl_xor_sync(0xffffffffu, v, bit));
  }
  return v;
}
template <int Mask>
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int bit = 1; bit < 32; bit <<= 1) {
    if (Mask & bit) v = max_f(v, __shfl_xor_sync(0xffffffffu, v, bit));
  }
  return v;
}

// warp_sum<28> of 8 values at once, each lane ending with one of the 8 sums instead of all 8: the
// lanes of equal lane % 4 halve their values at each level (xor 4, 8, 16), each keeping the half
// its bit selects and adding the partner's copy of it. Every sum is the same tree of the same
// operands as warp_sum<28>'s, so the same bits, in 7 shuffles rather than 24. Returns the sum of
// v[reduce_scatter8_index(lane)].
__device__ __forceinline__ int reduce_scatter8_index(int lane) {
  return 4 * ((lane >> 2) & 1) + 2 * ((lane >> 3) & 1) + ((lane >> 4) & 1);
}
__device__ __forceinline__ float warp_sum_scatter8(const float (&v)[8], int lane) {
  const bool b2 = (lane >> 2) & 1, b3 = (lane >> 3) & 1, b4 = (lane >> 4) & 1;
  float h4[4], h2[2];
#pragma unroll
  for (int m = 0; m < 4; ++m) {
    const float sent = __shfl_xor_sync(0xffffffffu, b2 ? v[m] : v[m + 4], 4);
    h4[m] = add_rn(b2 ? v[m + 4] : v[m], sent);
  }
#pragma unroll
  for (int m = 0; m < 2; ++m) {
    const float sent = __shfl_xor_sync(0xffffffffu, b3 ? h4[m] : h4[m + 2], 8);
    h2[m] = add_rn(b3 ? h4[m + 2] : h4[m], sent);
  }
  const float sent = __shfl_xor_sync(0xffffffffu, b4 ? h2[0] : h2[1], 16);
  return add_rn(b4 ? h2[1] : h2[0], sent);
}
// The same for maxima of 4 words of two packed 16-bit elements each (max2): the lane ends with the
// word v[reduce_scatter8_index(lane) / 2] reduced over the 8 lanes (both lanes of a pair at xor 16
// hold it; the index's low bit picks the element).
template <typename In>
__device__ __forceinline__ uint32_t warp_max2_scatter4(const uint32_t (&v)[4], int lane) {
  const bool b2 = (lane >> 2) & 1, b3 = (lane >> 3) & 1;
  uint32_t h2[2];
#pragma unroll
  for (int m = 0; m < 2; ++m) {
    const uint32_t sent = __shfl_xor_sync(0xffffffffu, b2 ? v[m] : v[m + 2], 4);
    h2[m] = max2<In>(b2 ? v[m + 2] : v[m], sent);
  }
  const uint32_t sent = __shfl_xor_sync(0xffffffffu, b3 ? h2[0] : h2[1], 8);
  const uint32_t h = max2<In>(b3 ? h2[1] : h2[0], sent);
  return max2<In>(h, __shfl_xor_sync(0xffffffffu, h, 16));
}

#endif  // __CUDACC__

}  // namespace sagejit::kernels
