// pingpong_probe.cu — do independent CTAs on an SM convoy on the tensor core? The single-warpgroup
// attention kernel runs 3 CTAs per SM (attn_wgmma_single.cuh), and its profile puts the tensor pipe
// and the MUFU pipe at 48% busy each (D = 128): busy times that add up to ~97%, as if the two
// never ran at once. This loop is the kernel's per-block work without its data movement:
// 4 × s8 m64n128k32 (QKᵀ from shared memory, accumulators started at the magic number), the
// online-softmax step (max, FFMA, MUFU.EX2, e4m3 packs), 4 × e4m3 m64n128k32 with P from registers
// into a fresh accumulator, and the promotion FFMA. Three ways to run 3 such warpgroups per SM:
//   ctas:     3 CTAs of one warpgroup each (what the kernel does);
//   wgs:      one CTA of 3 warpgroups, unsynchronized (the same, in one CTA);
//   pingpong: one CTA of 3 warpgroups that take turns to issue their wgmma batches (a token passed
//             round the warpgroups with named barriers, FlashAttention-3's ping-pong), so that one
//             warpgroup's batch is not interleaved with the others' and its softmax runs while
//             theirs do.
// Output: TOPS for each (the block's 2 · 64 · 128 · D · 2 operations per warpgroup and block); then
// ablations of the block's numerics (Variant below) at D = 128 and 64.
//
// Build and run on an sm_90a machine with the CUDA toolkit (not part of the CMake build):
//   nvcc -std=c++20 -gencode arch=compute_90a,code=sm_90a -O3 -I templates -cudart static \
//        -o pingpong_probe bench/pingpong_probe.cu && ./pingpong_probe
#include <cstdio>
#include <cstdlib>

#include <cuda_runtime.h>

#include "hopper_ops.cuh"

using namespace sagejit::kernels;
using namespace sagejit::kernels::hopper;
using namespace sagejit::kernels::mma_ops;

namespace {

constexpr int kSmem = 48 * 1024 + 1024;

// m64n128k32 e4m3 × e4m3 from shared memory, f32 accumulators (QKᵀ in FP8, for the ablation).
__device__ __forceinline__ void wgmma_e4m3_ss(float (&d)[64], u64 desc_a, u64 desc_b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(int(accumulate)));
}

// What a block computes (the kernel's numerics, or an ablation of it, "ctas" only):
//   0 the kernel's: int8 QKᵀ from the magic number, softmax, e4m3 P·V into a fresh accumulator,
//     promotion;
//   1 no promotion: P·V accumulates into O in the tensor core (no fp32 promotion FFMA);
//   2 QKᵀ in e4m3 from a zero accumulator (no magic-number start), the rest as 0;
//   3 the wgmma batches and their waits only (P a constant, no softmax, no promotion).
enum Variant { kKernel = 0, kNoPromotion = 1, kFp8Qk = 2, kMmaOnly = 3 };

// One warpgroup's loop: `blocks` blocks of QKᵀ, softmax, P·V and promotion. `turns`: take the token
// (named barrier 1 + wg) before each wgmma batch and pass it on (1 + (wg + 1) % n) after.
template <bool Turns, int V = kKernel, int D = 128>
__device__ __forceinline__ float block_loop(u32 s, int wg, int n_wg, int blocks) {
  const u64 dk = make_kmajor_desc(s, Swizzle::b128), dq = make_kmajor_desc(s + 16384, Swizzle::b128);
  const u64 dv = make_kmajor_desc(s + 32768, Swizzle::b128);
  float o[D / 2];
  for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
  float row_max = -1e30f;
  for (int b = 0; b < blocks; ++b) {
    float s[64];
    if constexpr (V == kFp8Qk) {
      fence_operands(s);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < D / 32; ++k) wgmma_e4m3_ss(s, desc_advance(dq, 32 * k), desc_advance(dk, 32 * k), k > 0);
      wgmma_commit();
      wgmma_wait<0>();
      fence_operands(s);
    } else {
      i32 acc[64];
#pragma unroll
      for (int i = 0; i < 64; ++i) acc[i] = 0x4B400000;
      fence_operands(acc);
      if (Turns) named_barrier_sync(1 + wg, 256);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < D / 32; ++k) wgmma_s8_ss<128>(acc, desc_advance(dq, 32 * k), desc_advance(dk, 32 * k), true);
      wgmma_commit();
      if (Turns) named_barrier_arrive(1 + (wg + 1) % n_wg, 256);
      wgmma_wait<0>();
      fence_operands(acc);
#pragma unroll
      for (int i = 0; i < 64; ++i) s[i] = __int_as_float(acc[i]);
    }
    // Online softmax on the magic-number floats: max, one FFMA and one MUFU per score, e4m3 packs.
    u32 p[16];
    float alpha = 1.f;
    if constexpr (V == kMmaOnly) {
#pragma unroll
      for (int i = 0; i < 16; ++i) p[i] = __float_as_uint(s[4 * i]) & 0x30303030u;
    } else {
    float mx[8];
#pragma unroll
    for (int l = 0; l < 8; ++l) mx[l] = fmaxf(s[l], s[l + 8]);
#pragma unroll
    for (int i = 16; i < 64; ++i) mx[i % 8] = fmaxf(mx[i % 8], s[i]);
#pragma unroll
    for (int v = 4; v > 0; v /= 2) {
#pragma unroll
      for (int l = 0; l < v; ++l) mx[l] = fmaxf(mx[l], mx[l + v]);
    }
    const float m = fmaxf(row_max, fmaf(mx[0], 1e-7f, -1.2582912f));
    alpha = fast_exp2(row_max - m);
    row_max = m;
    const float bias = 8.8f - m - 1.2582912f;
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      float e[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) e[j] = fast_exp2(fmaf(s[4 * i + j], 1e-7f, bias));
      p[i] = f32x4_to_e4m3x4(e[0], e[1], e[2], e[3]);
    }
    }
    if constexpr (V == kNoPromotion || V == kMmaOnly) {
      fence_operands(o);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const u32 a[4] = {p[4 * k], p[4 * k + 1], p[4 * k + 2], p[4 * k + 3]};
        wgmma_e4m3_rs<D>(o, a, desc_advance(dv, 32 * k), true);
      }
      wgmma_commit();
      wgmma_wait<0>();
      fence_operands(o);
      if constexpr (V == kNoPromotion) o[0] *= alpha;  // keeps alpha live, one FMUL
    } else {
      float t[D / 2];
#pragma unroll
      for (int i = 0; i < D / 2; ++i) t[i] = 0.f;
      fence_operands(t);
      if (Turns) named_barrier_sync(1 + wg, 256);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const u32 a[4] = {p[4 * k], p[4 * k + 1], p[4 * k + 2], p[4 * k + 3]};
        wgmma_e4m3_rs<D>(t, a, desc_advance(dv, 32 * k), k > 0);
      }
      wgmma_commit();
      if (Turns) named_barrier_arrive(1 + (wg + 1) % n_wg, 256);
      wgmma_wait<0>();
      fence_operands(t);
#pragma unroll
      for (int i = 0; i < D / 2; ++i) o[i] = fmaf(o[i], alpha, t[i]);
    }
  }
  float out = 0.f;
  for (int i = 0; i < D / 2; ++i) out += o[i];
  return out;
}

// CTAs per SM in "ctas" mode: the single-warpgroup kernel's, 3 at D = 128 and 4 at D = 64.
constexpr int ctas_per_sm(int d) { return d == 64 ? 4 : 3; }

template <int Mode, int V = kKernel, int D = 128>  // Mode: 0 ctas, 1 wgs, 2 pingpong
__global__ void __launch_bounds__(Mode == 0 ? 128 : 384, Mode == 0 ? ctas_per_sm(D) : 1)
    probe(int blocks, int random, float* sink) {
  extern __shared__ __attribute__((aligned(1024))) u8 smem[];
  const int tid = threadIdx.x, n_wg = blockDim.x / 128, wg = tid / 128;
  // Q and K int8, V e4m3: constants (3 and 0.5), or random bytes (V's with bits 3 and 7 clear, so
  // never NaN). The data sets how much the operands switch, and so the power the card draws and
  // the clock it holds under its cap.
  for (int i = tid; i < 49152 / 4; i += blockDim.x) {
    u32 h = (i + 1) * 2654435761u;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
    const bool is_v = i >= 32768 / 4;
    reinterpret_cast<u32*>(smem)[i] = !random ? (is_v ? 0x30303030u : 0x03030303u) : is_v ? h & 0x77777777u : h;
  }
  fence_proxy_async_shared();
  __syncthreads();
  const u32 s = (smem_u32(smem) + 1023) & ~1023u;
  float out;
  if (Mode == 2) {
    if (wg == n_wg - 1) named_barrier_arrive(1, 256);  // warpgroup 0 holds the token first
    out = block_loop<true>(s, wg, n_wg, blocks);
    if (wg == 0) named_barrier_sync(1, 256);  // the last token passed, taken so none is left pending
  } else {
    out = block_loop<false, V, D>(s, wg, n_wg, blocks);
  }
  if (out == 12345.f) sink[tid] = out;
}

#define CHECK(call)                                                                                  \
  do {                                                                                               \
    const cudaError_t e = (call);                                                                    \
    if (e != cudaSuccess) {                                                                          \
      std::fprintf(stderr, "%s: %s (%s:%d)\n", #call, cudaGetErrorString(e), __FILE__, __LINE__); \
      std::exit(1);                                                                                  \
    }                                                                                                \
  } while (0)

// Median of 7 launches; 3 warpgroups per SM in each mode.
template <int Mode, int V = kKernel, int D = 128>
double run(const char* name, int sms, int blocks, int random = 0) {
  auto k = probe<Mode, V, D>;
  CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem));
  float* sink;
  CHECK(cudaMalloc(&sink, 4096));
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  float ms[7];
  const int per_sm = Mode == 0 ? ctas_per_sm(D) : 3;
  const int grid = Mode == 0 ? per_sm * sms : sms, threads = Mode == 0 ? 128 : 384;
  k<<<grid, threads, kSmem>>>(blocks, random, sink);  // warm-up
  CHECK(cudaGetLastError());
  for (int rep = 0; rep < 7; ++rep) {
    CHECK(cudaEventRecord(a));
    k<<<grid, threads, kSmem>>>(blocks, random, sink);
    CHECK(cudaGetLastError());
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    CHECK(cudaEventElapsedTime(&ms[rep], a, b));
  }
  for (int i = 0; i < 7; ++i)
    for (int j = i + 1; j < 7; ++j)
      if (ms[j] < ms[i]) {
        const float x = ms[i];
        ms[i] = ms[j];
        ms[j] = x;
      }
  CHECK(cudaFree(sink));
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  const double tops = double(per_sm) * sms * blocks * (2.0 * 64 * 128 * D * 2) / (ms[3] * 1e-3) / 1e12;
  std::printf("%-9s %s %8.3f ms  %6.0f TOPS\n", name, random ? "random  " : "constant", ms[3], tops);
  return tops;
}

}  // namespace

int main() {
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs; D = 128, 3 warpgroups per SM, 4000 blocks each\n", prop.name, prop.multiProcessorCount);
  const int sms = prop.multiProcessorCount;
  for (int round = 0; round < 2; ++round) {
    run<0>("ctas", sms, 4000);
    run<1>("wgs", sms, 4000);
    run<2>("pingpong", sms, 4000);
  }
  std::printf("ablations of the block's numerics (3 CTAs per SM):\n");
  for (int round = 0; round < 2; ++round) {
    run<0, kKernel>("kernel", sms, 4000);
    run<0, kNoPromotion>("no-promo", sms, 4000);
    run<0, kFp8Qk>("fp8-qk", sms, 4000);
    run<0, kMmaOnly>("mma-only", sms, 4000);
  }
  std::printf("random operands (the card's clock under its power cap):\n");
  for (int round = 0; round < 2; ++round) {
    run<0, kKernel>("kernel", sms, 4000, 1);
    run<0, kMmaOnly>("mma-only", sms, 4000, 1);
    run<0, kKernel, 64>("kernel64", sms, 4000, 1);
  }
  std::printf("the same at D = 64 (4 CTAs per SM):\n");
  for (int round = 0; round < 2; ++round) {
    run<0, kKernel, 64>("kernel", sms, 4000);
    run<0, kNoPromotion, 64>("no-promo", sms, 4000);
    run<0, kFp8Qk, 64>("fp8-qk", sms, 4000);
    run<0, kMmaOnly, 64>("mma-only", sms, 4000);
  }
  return 0;
}
