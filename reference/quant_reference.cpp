// quant_reference.cpp — host reference of the quantization kernels; see quant_reference.hpp.
//
// Every float operation here is a single IEEE float32 operation (this file must not be built with
// -ffast-math or with FMA contraction: CMake builds it as ISO C++20, where GCC does not contract),
// in the order of the kernel it mirrors. Comments name the kernel step each block reproduces.
#include "reference/quant_reference.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace sagejit::reference {

namespace {

// max(a, b) with NaN if either is NaN: the kernels' max.NaN (common.cuh, max_f), through which a NaN
// input makes its channel's or group's scale NaN.
float max_nan(float a, float b) {
  return std::isnan(a) || std::isnan(b) ? std::numeric_limits<float>::quiet_NaN() : std::max(a, b);
}

using layout::Granularity;

std::uint32_t bits_of(float f) { return std::bit_cast<std::uint32_t>(f); }
float float_of(std::uint32_t u) { return std::bit_cast<float>(u); }

void require(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("sagejit::reference: ") + what);
}

// The statistics are defined for a tensor of no tokens (an empty varlen sequence); the
// quantization of values is not (there is nothing to quantize).
void check_tensor(const HostTensor& x, bool allow_no_tokens = false) {
  require(x.data != nullptr, "tensor data is null");
  require(x.batch > 0 && x.heads > 0 && (x.seq_len > 0 || (allow_no_tokens && x.seq_len == 0)), "empty tensor");
  require(x.head_dim % 32 == 0 && x.head_dim <= 256, "head_dim must be a multiple of 32, <= 256");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Scalar conversions.

float f16_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    // Subnormal (or zero): mant * 2^-24, exact in float.
    const float mag = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -mag : mag;
  }
  if (exp == 31) return float_of(sign | 0x7f800000u | (mant << 13));
  return float_of(sign | ((exp + 112u) << 23) | (mant << 13));
}

std::uint16_t float_to_f16(float f) {
  const std::uint32_t x = bits_of(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN (quiet)
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520 -> inf
  if (a < 0x38800000u) {
    // Below the smallest normal half (2^-14): the result is a multiple of 2^-24. Scaling by 2^24 is
    // exact, nearbyint rounds half to even; 1024 becomes the smallest normal, as it should.
    const float scaled = float_of(a) * 0x1p24f;
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(scaled)));
  }
  // Normal: round the 23-bit mantissa to 10 bits, half to even (a carry rolls into the exponent).
  const std::uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | ((rounded >> 13) - (112u << 10)));
}

float bf16_to_float(std::uint16_t h) { return float_of(static_cast<std::uint32_t>(h) << 16); }

std::uint16_t float_to_bf16(float f) {
  const std::uint32_t x = bits_of(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);
  return static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

std::uint8_t float_to_e4m3(float f) {
  const std::uint32_t x = bits_of(f);
  const auto sign = static_cast<std::uint8_t>((x >> 24) & 0x80u);
  const std::uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint8_t>(sign | 0x7fu);  // NaN
  const float mag = float_of(a);
  if (mag >= 448.0f) return static_cast<std::uint8_t>(sign | 0x7eu);    // satfinite (inf too)
  if (mag < 0x1p-6f) {
    // Subnormal e4m3: a multiple of 2^-9. 8 (= 2^-6) is the smallest normal's code, as it should.
    return static_cast<std::uint8_t>(sign | static_cast<std::uint8_t>(std::nearbyint(mag * 0x1p9f)));
  }
  // Normal: keep 3 mantissa bits, half to even; rebias 127 -> 7. Below 448 the result is <= 0x7e.
  const std::uint32_t rounded = a + 0x7ffffu + ((a >> 20) & 1u);
  return static_cast<std::uint8_t>(sign | ((rounded >> 20) - ((127u - 7u) << 3)));
}

float e4m3_to_float(std::uint8_t b) {
  const float sign = (b & 0x80u) ? -1.0f : 1.0f;
  const int exp = (b >> 3) & 0xf;
  const int mant = b & 0x7;
  if (exp == 15 && mant == 7) return std::nanf("");
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -9);
  return sign * std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, exp - 7);
}

int round_clamp(float y, int limit) {
  if (std::isnan(y)) return 0;
  const float r = std::nearbyint(y);  // default rounding mode: to nearest, ties to even
  if (r > static_cast<float>(limit)) return limit;
  if (r < static_cast<float>(-limit)) return -limit;
  return static_cast<int>(r);
}

float HostTensor::at(int b, int h, int s, int c) const {
  const std::uint16_t bits = data[b * stride_b + h * stride_h + s * stride_s + c];
  return dtype == DType::f16 ? f16_to_float(bits) : bf16_to_float(bits);
}

HostTensor sequence_of(const HostTensor& packed, int begin, int len) {
  require(packed.batch == 1, "a packed varlen tensor has batch 1");
  require(begin >= 0 && len >= 0 && begin + len <= packed.seq_len, "the sequence lies outside the packed tensor");
  HostTensor t = packed;
  t.data = packed.data + static_cast<std::int64_t>(begin) * packed.stride_s;
  t.seq_len = len;
  return t;
}

// ---------------------------------------------------------------------------------------------
// quant_stats.cuh

std::vector<float> k_mean(const HostTensor& k) {
  check_tensor(k, true);
  const int d = k.head_dim;
  const int chunks = kernels::stats_chunks(k.seq_len);
  std::vector<float> out(static_cast<std::size_t>(k.batch) * k.heads * d);
  for (int b = 0; b < k.batch; ++b) {
    for (int h = 0; h < k.heads; ++h) {
      for (int c = 0; c < d; ++c) {
        // The last CTA: partials summed sequentially in chunk order, then divided.
        float total = 0.0f;
        for (int chunk = 0; chunk < chunks; ++chunk) {
          const int tok0 = chunk * kernels::kStatsChunkTokens;
          const int n_valid = std::min(kernels::kStatsChunkTokens, k.seq_len - tok0);
          total = total + slot_tree_sum(kernels::kStatsChunkTokens, n_valid,
                                        [&](int r) { return k.at(b, h, tok0 + r, c); });
        }
        // No tokens: 0 rather than 0 / 0 (quant_stats' single CTA writes 0).
        out[(static_cast<std::size_t>(b) * k.heads + h) * d + c] =
            k.seq_len > 0 ? total / static_cast<float>(k.seq_len) : 0.0f;
      }
    }
  }
  return out;
}

std::vector<float> v_scale(const HostTensor& v) {
  check_tensor(v, true);
  const int d = v.head_dim;
  std::vector<float> out(static_cast<std::size_t>(v.batch) * v.heads * d);
  for (int b = 0; b < v.batch; ++b) {
    for (int h = 0; h < v.heads; ++h) {
      for (int c = 0; c < d; ++c) {
        float amax = 0.0f;  // a max is exact: any order gives the kernel's result
        for (int s = 0; s < v.seq_len; ++s) amax = max_nan(amax, std::fabs(v.at(b, h, s, c)));
        out[(static_cast<std::size_t>(b) * v.heads + h) * d + c] =
            max_nan(amax / layout::kFp8Max, layout::kMinScale);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// quant_qk.cuh

QuantizedQK quantize_qk(const HostTensor& x, const QuantQKOptions& o,
                        std::span<const float> k_mean) {
  check_tensor(x);
  require(o.bits == 8 || o.bits == 4, "bits must be 8 or 4");
  require(o.terms == 1 || (o.terms == 2 && o.bits == 8), "terms must be 1, or 2 with bits 8");
  require(o.block_tokens > 0 && o.block_tokens % 16 == 0 &&
              o.block_tokens <= kernels::kMaxBlockTokens,
          "block_tokens must be a multiple of 16, <= 128");
  require(o.warp_tokens > 0 && o.block_tokens % o.warp_tokens == 0,
          "warp_tokens must divide block_tokens");
  require(o.warp_tokens % (o.is_query ? 16 : 8) == 0,
          "warp_q must be a multiple of 16, warp_k of 8");
  const bool k_smooth = o.smooth && !o.is_query;
  const bool q_smooth = o.smooth && o.is_query;
  const int d = x.head_dim;
  if (k_smooth) {
    require(k_mean.size() == static_cast<std::size_t>(x.batch) * x.heads * d,
            "k_mean must be [B, H, D]");
  }

  QuantizedQK q;
  q.seq_len_pad = layout::round_up(x.seq_len, o.block_tokens);
  q.groups = o.is_query ? layout::q_groups(o.granularity, o.block_tokens, o.warp_tokens)
                        : layout::k_groups(o.granularity, o.block_tokens, o.warp_tokens);
  const int n_blocks = q.seq_len_pad / o.block_tokens;
  const int row_bytes = d * o.bits * o.terms / 8;
  const int limit = static_cast<int>(o.bits == 8 ? layout::kInt8Max : layout::kInt4Max);
  const float qmax = o.bits == 8 ? layout::kInt8Max : layout::kInt4Max;
  const std::size_t bh_count = static_cast<std::size_t>(x.batch) * x.heads;
  q.values.assign(bh_count * q.seq_len_pad * row_bytes, 0);
  q.scales.assign(bh_count * n_blocks * q.groups, 0.0f);
  if (q_smooth) q.q_mean.assign(bh_count * n_blocks * d, 0.0f);

  std::vector<float> mean(d, 0.0f);
  std::vector<float> y(static_cast<std::size_t>(o.block_tokens) * d);
  std::vector<float> group_max(q.groups);
  for (int b = 0; b < x.batch; ++b) {
    for (int h = 0; h < x.heads; ++h) {
      const std::size_t bh = static_cast<std::size_t>(b) * x.heads + h;
      for (int blk = 0; blk < n_blocks; ++blk) {
        const int row0 = blk * o.block_tokens;
        const int n_valid = std::min(o.block_tokens, x.seq_len - row0);

        // Step 2: the mean to subtract.
        for (int c = 0; c < d; ++c) {
          if (q_smooth) {
            const float sum = slot_tree_sum(kernels::kMaxBlockTokens, n_valid,
                                            [&](int r) { return x.at(b, h, row0 + r, c); });
            mean[c] = sum / static_cast<float>(n_valid);
            q.q_mean[(bh * n_blocks + blk) * d + c] = mean[c];
          } else if (k_smooth) {
            mean[c] = k_mean[bh * d + c];
          }
        }
        // Step 3: smoothed values and group maxima over the valid rows.
        std::fill(group_max.begin(), group_max.end(), 0.0f);
        for (int r = 0; r < n_valid; ++r) {
          const int g = o.is_query ? layout::q_group_of_row(o.granularity, r, o.warp_tokens)
                                   : layout::k_group_of_key(o.granularity, r, o.warp_tokens);
          for (int c = 0; c < d; ++c) {
            const float v = x.at(b, h, row0 + r, c);
            const float s = o.smooth ? v - mean[c] : v;
            y[static_cast<std::size_t>(r) * d + c] = s;
            group_max[g] = max_nan(group_max[g], std::fabs(s));
          }
        }
        // Step 4: scales and their reciprocals.
        std::vector<float> inv(q.groups);
        for (int g = 0; g < q.groups; ++g) {
          const float scale = max_nan(group_max[g] / qmax, layout::kMinScale);
          inv[g] = 1.0f / scale;
          q.scales[(bh * n_blocks + blk) * q.groups + g] = scale * o.scale_multiplier;
        }
        // Step 5: values; rows past n_valid stay zero.
        for (int r = 0; r < n_valid; ++r) {
          const int g = o.is_query ? layout::q_group_of_row(o.granularity, r, o.warp_tokens)
                                   : layout::k_group_of_key(o.granularity, r, o.warp_tokens);
          std::uint8_t* row = q.values.data() + (bh * q.seq_len_pad + row0 + r) * row_bytes;
          for (int c = 0; c < d; ++c) {
            const float f = y[static_cast<std::size_t>(r) * d + c] * inv[g];
            const int v = round_clamp(f, limit);
            if (o.bits == 8) {
              row[c] = static_cast<std::uint8_t>(v);
              if (o.terms == 2) {  // the residual in steps of 1/256 (exact: |f − v| <= 0.5 + ulp)
                const float rest = (f - static_cast<float>(v)) * layout::kResidualScale;
                row[d + c] = static_cast<std::uint8_t>(round_clamp(rest, limit));
              }
            } else {
              // Even channel in the low nibble.
              row[c / 2] |= static_cast<std::uint8_t>((v & 0xf) << (4 * (c % 2)));
            }
          }
        }
      }
    }
  }
  return q;
}

std::vector<float> lse_correction(const HostTensor& q, std::span<const float> k_mean, int heads_kv,
                                  float sm_scale) {
  check_tensor(q);
  require(heads_kv > 0 && q.heads % heads_kv == 0, "heads_kv must divide the query heads");
  const int d = q.head_dim;
  require(k_mean.size() == static_cast<std::size_t>(q.batch) * heads_kv * d,
          "k_mean must be [B, heads_kv, D]");
  const int group = q.heads / heads_kv;
  constexpr int kQuad = 4;  // the lanes that read one row (quant_params.cuh)
  std::vector<float> out(static_cast<std::size_t>(q.batch) * q.heads * q.seq_len);
  for (int b = 0; b < q.batch; ++b) {
    for (int h = 0; h < q.heads; ++h) {
      const float* m = k_mean.data() + (static_cast<std::size_t>(b) * heads_kv + h / group) * d;
      for (int s = 0; s < q.seq_len; ++s) {
        // Step 2b: lane t's partial over its chunks t, t + 4, ..., 8 channels each, sequentially.
        float part[kQuad];
        for (int t = 0; t < kQuad; ++t) {
          float acc = 0.0f;
          for (int chunk = t; chunk < d / 8; chunk += kQuad) {
            for (int i = 0; i < 8; ++i) {
              const int c = 8 * chunk + i;
              const float prod = q.at(b, h, s, c) * m[c];
              acc = acc + prod;
            }
          }
          part[t] = acc;
        }
        // The quad's butterfly: xor 1, then xor 2.
        const float sum = (part[0] + part[1]) + (part[2] + part[3]);
        out[(static_cast<std::size_t>(b) * q.heads + h) * q.seq_len + s] = sum * sm_scale;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// quant_v.cuh

std::vector<std::uint8_t> quantize_v(const HostTensor& v, std::span<const float> v_scale,
                                     int seq_len_pad) {
  check_tensor(v);
  require(seq_len_pad >= v.seq_len && seq_len_pad % 16 == 0,
          "seq_len_pad must be >= seq_len and a multiple of 16");
  const int d = v.head_dim;
  require(v_scale.size() == static_cast<std::size_t>(v.batch) * v.heads * d,
          "v_scale must be [B, H, D]");
  std::vector<std::uint8_t> out(static_cast<std::size_t>(v.batch) * v.heads * d * seq_len_pad, 0);
  for (int b = 0; b < v.batch; ++b) {
    for (int h = 0; h < v.heads; ++h) {
      const std::size_t bh = static_cast<std::size_t>(b) * v.heads + h;
      for (int c = 0; c < d; ++c) {
        // quant_v.cuh's v_inv_of: a NaN scale quantizes its channel to 0 (the NaN reaches the output
        // through the scale), so the padding stays 0.
        const float scale = v_scale[bh * d + c];
        const float inv = std::isnan(scale) ? 0.0f : 1.0f / scale;
        std::uint8_t* row = out.data() + (bh * d + c) * seq_len_pad;
        for (int pos = 0; pos < seq_len_pad; ++pos) {
          const int tok = pos / 16 * 16 + layout::v_token_at(pos % 16);
          row[pos] = tok < v.seq_len ? float_to_e4m3(v.at(b, h, tok, c) * inv) : 0;
        }
      }
    }
  }
  return out;
}

}  // namespace sagejit::reference
