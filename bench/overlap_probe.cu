// overlap_probe.cu — does the H100's tensor core keep its rate while the same SM sub-partitions
// issue other instructions? One CTA per SM: warpgroup 0 runs back-to-back wgmma batches (4 × m64n128k32,
// int8 from shared memory like QKᵀ, e4m3 with A from registers like P·V, or e4m3 with A from shared
// memory: P·V with P staged there, which overlaps no better), warpgroups 1 and 2 run a
// stream of one instruction kind (8 independent chains per thread). Each kind alone, then both: the
// overlap is (t_tensor + t_other − t_both) / min(t_tensor, t_other) — 100% when they hide each other,
// 0% when the SM does one at a time. What the attention kernels' loop design rests on
// (attn_wgmma_single.cuh; bench/results/2026-11-26-wgmma-issue-cost-h100.md).
//
// Build and run on an sm_90a machine with the CUDA toolkit (not part of the CMake build, which needs no
// nvcc):
//   nvcc -std=c++20 -gencode arch=compute_90a,code=sm_90a -O3 -I templates -cudart static \
//        -o overlap_probe bench/overlap_probe.cu && ./overlap_probe
#include <cstdio>
#include <cstdlib>

#include <cuda_runtime.h>

#include "hopper_ops.cuh"

using namespace sagejit::kernels;
using namespace sagejit::kernels::hopper;
using namespace sagejit::kernels::mma_ops;

namespace {

// m64n128k32 e4m3 with both operands from shared memory (P·V with P staged in shared memory).
__device__ __forceinline__ void wgmma_m64n128k32_e4m3_ss(float (&d)[64], u64 desc_a, u64 desc_b) {
  asm volatile(
      "{\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(desc_a), "l"(desc_b));
}

// TK: 0 int8 wgmma, shared-memory operands; 1 e4m3 wgmma, A from registers; 2 e4m3 wgmma,
// shared-memory operands.
// OK: 0 MUFU.EX2, 1 FFMA (full rate), 2 FFMA (one chain: a quarter of the rate), 3 FMNMX, 4 IMAD,
//     5 F2FP (e4m3x2 pack) + PRMT, 6 LOP3.

template <int TK, int OK>
__global__ void __launch_bounds__(384, 1) probe(int mode, int it_t, int it_o, float* sink) {
  extern __shared__ __attribute__((aligned(1024))) u8 smem[];
  const int tid = threadIdx.x, wg = tid / 128;
  for (int i = tid; i < 65536 / 4; i += 384) reinterpret_cast<u32*>(smem)[i] = 0x38383838u;
  fence_proxy_async_shared();
  __syncthreads();
  const u32 s = (smem_u32(smem) + 1023) & ~1023u;
  float out = 0.f;
  if (wg == 0) {
    if (!(mode & 1)) return;
    const u64 da = make_kmajor_desc(s, Swizzle::b128), db = make_kmajor_desc(s + 16384, Swizzle::b128);
    if constexpr (TK == 0) {
      i32 acc[64];
      for (int i = 0; i < 64; ++i) acc[i] = 0;
      for (int it = 0; it < it_t; ++it) {
        fence_operands(acc);
        wgmma_fence();
#pragma unroll
        for (int k = 0; k < 4; ++k) wgmma_s8_ss<128>(acc, desc_advance(da, 32 * k), desc_advance(db, 32 * k), true);
        wgmma_commit();
        wgmma_wait<0>();
        fence_operands(acc);
      }
      for (int i = 0; i < 64; ++i) out += acc[i];
    } else if constexpr (TK == 2) {
      float acc[64];
      for (int i = 0; i < 64; ++i) acc[i] = 0;
      for (int it = 0; it < it_t; ++it) {
        fence_operands(acc);
        wgmma_fence();
#pragma unroll
        for (int k = 0; k < 4; ++k) wgmma_m64n128k32_e4m3_ss(acc, desc_advance(da, 32 * k), desc_advance(db, 32 * k));
        wgmma_commit();
        wgmma_wait<0>();
        fence_operands(acc);
      }
      for (int i = 0; i < 64; ++i) out += acc[i];
    } else {
      float acc[64];
      u32 a[4] = {0x38383838u, 0x38383838u, 0x38383838u, 0x38383838u};
      for (int i = 0; i < 64; ++i) acc[i] = 0;
      for (int it = 0; it < it_t; ++it) {
        fence_operands(acc);
        fence_operands(a);
        wgmma_fence();
#pragma unroll
        for (int k = 0; k < 4; ++k) wgmma_e4m3_rs<128>(acc, a, desc_advance(db, 32 * k), true);
        wgmma_commit();
        wgmma_wait<0>();
        fence_operands(acc);
      }
      for (int i = 0; i < 64; ++i) out += acc[i];
    }
  } else {
    if (!(mode & 2)) return;
    float x[8];
    u32 u[8];
    for (int i = 0; i < 8; ++i) x[i] = 0.001f * (tid + i), u[i] = tid + i;
    for (int it = 0; it < it_o; ++it) {
#pragma unroll
      for (int r = 0; r < 8; ++r) {
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          if constexpr (OK == 0) asm volatile("ex2.approx.ftz.f32 %0, %1;" : "=f"(x[i]) : "f"(-x[i]));
          else if constexpr (OK == 1) asm volatile("fma.rn.f32 %0, %0, 0.999, 0.0001;" : "+f"(x[i]));
          else if constexpr (OK == 2) asm volatile("fma.rn.f32 %0, %0, 0.999, 0.0001;" : "+f"(x[0]));
          else if constexpr (OK == 3) asm volatile("max.f32 %0, %0, %1;" : "+f"(x[i]) : "f"(x[(i + 1) % 8]));
          else if constexpr (OK == 4) asm volatile("mad.lo.u32 %0, %0, 3, 7;" : "+r"(u[i]));
          else if constexpr (OK == 5) {
            asm volatile("{.reg .b16 lo;\ncvt.rn.satfinite.e4m3x2.f32 lo, %1, %2;\nmov.b32 %0, {lo, lo};}" : "=f"(x[i]) : "f"(x[i]), "f"(x[(i + 3) % 8]));
          } else if constexpr (OK == 6) asm volatile("lop3.b32 %0, %0, %1, %2, 0x96;" : "+r"(u[i]) : "r"(u[(i + 1) % 8]), "r"(u[(i + 2) % 8]));
        }
      }
    }
    for (int i = 0; i < 8; ++i) out += x[i] + u[i];
  }
  if (out == 12345.f) sink[tid] = out;
}

#define CHECK(call)                                                                  \
  do {                                                                               \
    const cudaError_t e = (call);                                                    \
    if (e != cudaSuccess) {                                                          \
      std::fprintf(stderr, "%s: %s (%s:%d)\n", #call, cudaGetErrorString(e), __FILE__, __LINE__); \
      std::exit(1);                                                                  \
    }                                                                                \
  } while (0)

// Best of 5 launches of each mode (1 tensor only, 2 other only, 3 both), one CTA of 384 threads per SM.
template <int TK, int OK>
void run(const char* name, int sms, int it_t, int it_o) {
  auto k = probe<TK, OK>;
  CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
  float* sink;
  CHECK(cudaMalloc(&sink, 4096));
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  float ms[4] = {};
  for (int mode = 1; mode <= 3; ++mode) {
    float best = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
      CHECK(cudaEventRecord(a));
      k<<<sms, 384, 200 * 1024>>>(mode, it_t, it_o, sink);
      CHECK(cudaGetLastError());
      CHECK(cudaEventRecord(b));
      CHECK(cudaEventSynchronize(b));
      float t;
      CHECK(cudaEventElapsedTime(&t, a, b));
      best = t < best ? t : best;
    }
    ms[mode] = best;
  }
  CHECK(cudaFree(sink));
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  const double tops = double(sms) * it_t * 4 * 64 * 128 * 32 * 2 / (ms[1] * 1e-3) / 1e12;
  printf("%-10s tensor-only %.3f ms (%.0f TOPS)  other-only %.3f ms  both %.3f ms  (sum %.3f, max %.3f) overlap %.0f%%\n", name,
         ms[1], tops, ms[2], ms[3], ms[1] + ms[2], ms[1] > ms[2] ? ms[1] : ms[2],
         100.0 * (ms[1] + ms[2] - ms[3]) / (ms[1] < ms[2] ? ms[1] : ms[2]));
}

}  // namespace

int main() {
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("%s, %d SMs\n", prop.name, prop.multiProcessorCount);
  const int sms = prop.multiProcessorCount;
  run<0, 0>("s8ss+mufu", sms, 20000, 20000);
  run<1, 0>("e4rs+mufu", sms, 20000, 20000);
  run<0, 1>("s8ss+ffma", sms, 20000, 80000);
  run<0, 2>("s8ss+ffma1", sms, 20000, 20000);
  run<0, 3>("s8ss+fmnmx", sms, 20000, 40000);
  run<0, 4>("s8ss+imad", sms, 20000, 40000);
  run<0, 5>("s8ss+f2fp", sms, 20000, 20000);
  run<0, 6>("s8ss+lop3", sms, 20000, 40000);
  run<1, 1>("e4rs+ffma", sms, 20000, 80000);
  run<1, 3>("e4rs+fmnmx", sms, 20000, 40000);
  run<2, 0>("e4ss+mufu", sms, 20000, 20000);
  run<2, 1>("e4ss+ffma", sms, 20000, 80000);
  run<2, 3>("e4ss+fmnmx", sms, 20000, 40000);
  run<2, 5>("e4ss+f2fp", sms, 20000, 20000);
  run<1, 5>("e4rs+f2fp", sms, 20000, 20000);
  return 0;
}
