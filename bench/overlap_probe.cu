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
#include <type_traits>

#include "hopper_ops.cuh"
#include "probe_util.cuh"

using namespace sagejit::kernels;
using namespace sagejit::kernels::hopper;
using namespace sagejit::kernels::mma_ops;

namespace {

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
    if constexpr (TK == 0 || TK == 2) {  // both operands from shared memory: int8 or e4m3
      std::conditional_t<TK == 0, i32, float> acc[64];
      for (int i = 0; i < 64; ++i) acc[i] = 0;
      for (int it = 0; it < it_t; ++it) {
        fence_operands(acc);
        wgmma_fence();
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          if constexpr (TK == 0) wgmma_s8_ss<128>(acc, desc_advance(da, 32 * k), desc_advance(db, 32 * k), true);
          else wgmma_m64n128k32_e4m3_ss(acc, desc_advance(da, 32 * k), desc_advance(db, 32 * k), true);
        }
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

// Best of 5 launches of each mode (1 tensor only, 2 other only, 3 both; after a warm-up launch), one
// CTA of 384 threads per SM.
template <int TK, int OK>
void run(const char* name, int sms, int it_t, int it_o) {
  auto k = probe<TK, OK>;
  PROBE_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
  float* sink;
  PROBE_CHECK(cudaMalloc(&sink, 4096));
  float ms[4] = {};
  for (int mode = 1; mode <= 3; ++mode) {
    ms[mode] = launch_times(5, [&] { k<<<sms, 384, 200 * 1024>>>(mode, it_t, it_o, sink); })[0];
  }
  PROBE_CHECK(cudaFree(sink));
  const double tops = double(sms) * it_t * 4 * 64 * 128 * 32 * 2 / (ms[1] * 1e-3) / 1e12;
  printf("%-10s tensor-only %.3f ms (%.0f TOPS)  other-only %.3f ms  both %.3f ms  (sum %.3f, max %.3f) overlap %.0f%%\n", name,
         ms[1], tops, ms[2], ms[3], ms[1] + ms[2], ms[1] > ms[2] ? ms[1] : ms[2],
         100.0 * (ms[1] + ms[2] - ms[3]) / (ms[1] < ms[2] ? ms[1] : ms[2]));
}

}  // namespace

int main() {
  cudaDeviceProp prop;
  PROBE_CHECK(cudaGetDeviceProperties(&prop, 0));
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
