// Weight-only quantized matrix-vector products for batch-1 decoding (the "metal" of chapter 17).
//
// Decoding one token multiplies a few activation rows by every weight matrix once, so the time is the time to
// read the weights from memory. Stored as int8 (1 byte) or 4 bits (half a byte) instead of fp32 (4 bytes), the
// same matrix is read 4x or 8x faster, provided the arithmetic keeps up: each weight is widened to fp32 in
// registers and multiplied there, and the scale is applied once per output row (int8) or per group (4-bit).
// Rows are split across threads with at::parallel_for (OpenMP underneath, honouring torch.set_num_threads).
#include <torch/extension.h>
#include <ATen/Parallel.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// One output: sum_k w[k] x[k] with int8 w. With AVX-512 each step widens 16 weights (16 bytes) to 16 floats and
// fuses the multiply-add; two accumulators keep two FMAs in flight. Elsewhere the compiler vectorises the loop.
static inline float dot_i8(const int8_t* w, const float* x, int64_t K) {
  float acc = 0.f;
  int64_t k = 0;
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  for (; k + 32 <= K; k += 32) {
    __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(w + k))));
    __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(w + k + 16))));
    a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + k), a0);
    a1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + k + 16), a1);
  }
  acc = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#endif
#pragma omp simd reduction(+ : acc)
  for (int64_t j = k; j < K; ++j) acc += static_cast<float>(w[j]) * x[j];
  return acc;
}

// One output of a 4-bit row: sum over groups of d_g * sum_j q_j x_j (the minimum's term is added by the caller).
static inline float dot_q4(const uint8_t* b, const float* x, const float* d, int64_t G) {
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  const __m512i low = _mm512_set1_epi32(15);
  for (int64_t g = 0; g < G; ++g) {
    __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(b + 16 * g)));
    __m512 lo = _mm512_cvtepi32_ps(_mm512_and_si512(q, low));
    __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(q, 4));
    __m512 t = _mm512_mul_ps(lo, _mm512_loadu_ps(x + 32 * g));
    t = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + 32 * g + 16), t);
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d[g]), t, acc);
  }
  return _mm512_reduce_add_ps(acc);
#else
  float acc = 0.f;
  for (int64_t g = 0; g < G; ++g) {
    float s = 0.f;
    for (int j = 0; j < 16; ++j)
      s += static_cast<float>(b[16 * g + j] & 15) * x[32 * g + j] + static_cast<float>(b[16 * g + j] >> 4) * x[32 * g + j + 16];
    acc += d[g] * s;
  }
  return acc;
#endif
}

// y[m, n] = scale[n] * sum_k q[n, k] * x[m, k]   (int8 per output channel, symmetric)
torch::Tensor int8_gemv(torch::Tensor x, torch::Tensor q, torch::Tensor scale) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && q.dtype() == torch::kInt8 && scale.dtype() == torch::kFloat32);
  x = x.contiguous();
  const int64_t M = x.size(0), K = x.size(1), N = q.size(0);
  TORCH_CHECK(q.size(1) == K && q.is_contiguous() && scale.numel() == N);
  auto y = torch::empty({M, N}, x.options());
  const float* xp = x.data_ptr<float>();
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = scale.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const int8_t* row = qp + n * K;
      for (int64_t m = 0; m < M; ++m) {
        yp[m * N + n] = dot_i8(row, xp + m * K, K) * sp[n];
      }
    }
  });
  return y;
}

// y[m, n] = sum_k w[n, k] * x[m, k] in fp32: the same loop without the widening, to see how far the plain
// weights are from the memory limit with a kernel of our own.
torch::Tensor f32_gemv(torch::Tensor x, torch::Tensor w) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && w.dtype() == torch::kFloat32 && w.is_contiguous());
  x = x.contiguous();
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  TORCH_CHECK(w.size(1) == K);
  auto y = torch::empty({M, N}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const float* row = wp + n * K;
      for (int64_t m = 0; m < M; ++m) {
        const float* xv = xp + m * K;
        float acc = 0.f;
#pragma omp simd reduction(+ : acc)
        for (int64_t k = 0; k < K; ++k) acc += row[k] * xv[k];
        yp[m * N + n] = acc;
      }
    }
  });
  return y;
}

// 4-bit groups of 32 (ggml's Q4_1 layout): w = d * q + mn, q in 0..15; byte j of a group holds q_j in its low
// nibble and q_{j+16} in its high nibble. Per group: d * sum q_j x_j + mn * sum x_j.
torch::Tensor q4_gemv(torch::Tensor x, torch::Tensor packed, torch::Tensor d, torch::Tensor mn) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && packed.dtype() == torch::kUInt8);
  x = x.contiguous();
  const int64_t M = x.size(0), K = x.size(1), N = packed.size(0), G = K / 32;
  TORCH_CHECK(K % 32 == 0 && packed.size(1) == K / 2 && d.size(1) == G && mn.size(1) == G);
  auto y = torch::empty({M, N}, x.options());
  // the sum of x over each group, shared by every output row
  auto xsum = x.view({M, G, 32}).sum(-1).contiguous();
  const float* xp = x.data_ptr<float>();
  const float* xs = xsum.data_ptr<float>();
  const uint8_t* pp = packed.data_ptr<uint8_t>();
  const float* dp = d.data_ptr<float>();
  const float* mp = mn.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t m = 0; m < M; ++m) {
        float acc = dot_q4(pp + n * (K / 2), xp + m * K, dp + n * G, G);
        for (int64_t g = 0; g < G; ++g) acc += mp[n * G + g] * xs[m * G + g];
        yp[m * N + n] = acc;
      }
    }
  });
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("int8_gemv", &int8_gemv, "y = (x @ q.T) * scale, int8 weights per output channel");
  m.def("f32_gemv", &f32_gemv, "y = x @ w.T in fp32, one output row per iteration");
  m.def("q4_gemv", &q4_gemv, "y = x @ dequant(q4).T, 4-bit groups of 32 with scale and minimum");
}
