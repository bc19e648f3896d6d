// mma_ops.cuh — the PTX the mma.sync attention kernels are built from: shared-memory addresses,
// cp.async, ldmatrix, the four mma.sync shapes (s8 m16n8k32, s4 m16n8k64, e4m3 m16n8k32,
// f16/bf16 m16n8k16), register-level conversions (f32 pairs to e4m3x2 / f16x2 / bf16x2), warp
// shuffles and the fast exp2/log2.
//
// NVRTC compiles these with no CUDA or standard headers on the include path, so everything here is
// inline PTX over our own fixed-width typedefs. Fragment layouts are those of the PTX ISA
// ("Matrix Fragments for mma.m16n8k*"); the kernels document which element lives where.
// An instruction not available on the target architecture fails at compile time (ptxas), never at
// run time: the attention template static_asserts the combinations it allows.
#pragma once

namespace sagejit::kernels::mma_ops {

using u8 = unsigned char;
using u16 = unsigned short;
using u32 = unsigned int;
using i32 = int;
using i64 = long long;
using u64 = unsigned long long;

// ---- addresses and copies ---------------------------------------------------------------------

// The 32-bit shared-window address of a generic pointer into shared memory (what ldmatrix and
// cp.async take).
__device__ __forceinline__ u32 smem_u32(const void* p) {
  u32 r;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
  return r;
}

// 16-byte global -> shared copy that bypasses L1. `valid == false` writes 16 zero bytes (the
// source is not read, but must still be a mapped address: callers pass a clamped one).
__device__ __forceinline__ void cp_async_16(u32 dst, const void* src, bool valid = true) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Wait until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_all;\n" ::: "memory");
}

// ---- ldmatrix -----------------------------------------------------------------------------------

// Four 8x8 b16 matrices; lane l gives the row address (16 bytes) of row l%8 of matrix l/8, and
// receives, of matrix i, the 32-bit word at row l/4, word l%4 in r[i].
__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x2(u32 (&r)[2], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr));
}
// Transposed: of matrix i, lane l receives elements (row 2(l%4), col l/4) and (row 2(l%4)+1,
// col l/4) in r[i] (low half first).
__device__ __forceinline__ void ldmatrix_x4_trans(u32 (&r)[4], u32 addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// ---- mma.sync -----------------------------------------------------------------------------------

// d += a(16x32 s8, row) * b(32x8 s8, col); s32 accumulate (wraps never: |sum| <= 32·127·127·D/32).
__device__ __forceinline__ void mma_s8_16832(i32 (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// d += a(16x64 s4, row) * b(64x8 s4, col). Native on sm_80/86/89; emulated (slow) on sm_90.
__device__ __forceinline__ void mma_s4_16864(i32 (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k64.row.col.s32.s4.s4.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// d += a(16x32 e4m3, row) * b(32x8 e4m3, col); f32 accumulate, but the tensor core keeps only
// ~22 significant bits across the k=32 sum and the accumulator: callers start a fresh d per block.
// sm_89+.
__device__ __forceinline__ void mma_e4m3_16832(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// d += a(16x16, row) * b(16x8, col) in f16 or bf16, f32 accumulate.
template <bool kBf16>
__device__ __forceinline__ void mma_16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  if constexpr (kBf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// ---- conversions --------------------------------------------------------------------------------

// Two f32 -> two e4m3 in the low 16 bits: `lo` in byte 0, `hi` in byte 1. Round to nearest,
// saturate to ±448 (NaN stays NaN). sm_89+.
__device__ __forceinline__ u32 f32x2_to_e4m3x2(float lo, float hi) {
  u16 r;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(r) : "f"(hi), "f"(lo));
  return static_cast<u32>(r);
}
// Four f32 -> four e4m3 packed in a 32-bit word, x0 in the lowest byte.
__device__ __forceinline__ u32 f32x4_to_e4m3x4(float x0, float x1, float x2, float x3) {
  return f32x2_to_e4m3x2(x0, x1) | (f32x2_to_e4m3x2(x2, x3) << 16);
}

// Two f32 -> f16x2 / bf16x2, `lo` in the low half. Round to nearest even.
template <bool kBf16>
__device__ __forceinline__ u32 f32x2_to_half2(float lo, float hi) {
  u32 r;
  if constexpr (kBf16) {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  } else {
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  }
  return r;
}

__device__ __forceinline__ float s32_to_f32(i32 x) { return static_cast<float>(x); }

// ---- math ---------------------------------------------------------------------------------------

// 2^x, approximate (2 ulp), flush-to-zero; exp2(-inf) = +0.
__device__ __forceinline__ float fast_exp2(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
  return r;
}
// log2(x), approximate; log2(0) = -inf.
__device__ __forceinline__ float fast_log2(float x) {
  float r;
  asm("lg2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// ---- special registers ----

// threadIdx / blockIdx through volatile reads: a value derived from them in an epilogue is
// recomputed there instead of being held in a register (or spilled) across the main loop.
__device__ __forceinline__ int thread_id_x() {
  int r;
  asm volatile("mov.u32 %0, %%tid.x;\n" : "=r"(r));
  return r;
}
__device__ __forceinline__ int cta_id_x() {
  int r;
  asm volatile("mov.u32 %0, %%ctaid.x;\n" : "=r"(r));
  return r;
}
__device__ __forceinline__ int cta_count_x() {  // gridDim.x
  int r;
  asm volatile("mov.u32 %0, %%nctaid.x;\n" : "=r"(r));
  return r;
}
__device__ __forceinline__ int cta_id_y() {
  int r;
  asm volatile("mov.u32 %0, %%ctaid.y;\n" : "=r"(r));
  return r;
}
__device__ __forceinline__ int cta_id_z() {
  int r;
  asm volatile("mov.u32 %0, %%ctaid.z;\n" : "=r"(r));
  return r;
}

// ---- warp ---------------------------------------------------------------------------------------

__device__ __forceinline__ float shfl_xor(float x, int lane_mask) {
  float r;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;\n"
               : "=f"(r)
               : "f"(x), "r"(lane_mask));
  return r;
}
// Reductions over the 4 lanes of a quad (lanes 4g..4g+3 hold one accumulator row).
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, shfl_xor(x, 1));
  return fmaxf(x, shfl_xor(x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += shfl_xor(x, 1);
  return x + shfl_xor(x, 2);
}

// ---- plain memory -------------------------------------------------------------------------------

__device__ __forceinline__ float ldg_f32(const float* p) {
  float r;
  asm volatile("ld.global.nc.f32 %0, [%1];\n" : "=f"(r) : "l"(p));
  return r;
}
__device__ __forceinline__ void st_shared_u32(u32 addr, u32 v) {
  asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(v) : "memory");
}
__device__ __forceinline__ void st_shared_v2_u32(u32 addr, u32 a, u32 b) {
  asm volatile("st.shared.v2.u32 [%0], {%1, %2};\n" ::"r"(addr), "r"(a), "r"(b) : "memory");
}
__device__ __forceinline__ void st_shared_zero_v4(u32 addr) {
  asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(addr), "r"(0u) : "memory");
}
__device__ __forceinline__ void ld_shared_v2_f32(u32 addr, float& a, float& b) {
  asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n" : "=f"(a), "=f"(b) : "r"(addr) : "memory");
}
__device__ __forceinline__ void ld_shared_v4(u32 (&r)[4], u32 addr) {
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}
// Four consecutive 32-bit words of shared memory at `addr` (16-byte aligned) into r0..r3. Volatile:
// repeated loads of one address stay separate loads (ptxas would otherwise load once and copy the
// registers with moves, which is what these loads replace).
__device__ __forceinline__ void ld_shared_v4_volatile(u32 addr, int& r0, int& r1, int& r2, int& r3) {
  asm volatile("ld.volatile.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
__device__ __forceinline__ void st_global_v4(void* p, const u32 (&r)[4]) {
  asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"l"(p), "r"(r[0]), "r"(r[1]),
               "r"(r[2]), "r"(r[3])
               : "memory");
}

}  // namespace sagejit::kernels::mma_ops
