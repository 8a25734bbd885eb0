// Weight-only quantized matrix-vector products for batch-1 decoding (the "metal" of chapter 17).
//
// Decoding one token multiplies a few activation rows by every weight matrix once, so the time is the time to
// read the weights from memory. Stored as int8 (1 byte) or 4 bits (half a byte) instead of fp32 (4 bytes), the
// same matrix is read 4x or 8x faster, provided the arithmetic keeps up: each weight is widened to fp32 in
// registers and multiplied there, and the scale is applied once per output row (int8) or per group (4-bit).
// The layers' own kernels split rows across threads with at::parallel_for (OpenMP underneath, honouring
// torch.set_num_threads); the fp32 GEMV and the one-call decode step share chunks of rows through ChunkPool below.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__)
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

// ------------------------------------------------------------------------------------- sharing a loop's chunks
// at::parallel_for (OpenMP) ends every loop with a barrier that waits for all threads. On cores shared with other
// busy processes the second thread is often not running when a loop starts, so each of a token's ~120 products
// waits up to a scheduler time slice for it. Instead the calling thread and helper threads claim chunks from one
// atomic counter; the caller returns when every chunk is done, so a helper that is not running costs nothing (the
// caller takes its chunks), and on quiet cores both stream. The counter holds (job number << 32 | next chunk), so
// a helper still finishing one loop can never claim a chunk of the next.
class ChunkPool {
 public:
  static ChunkPool& get() {
    static ChunkPool* pool = new ChunkPool();  // never destroyed: its threads live as long as the process
    return *pool;
  }

  void run(int64_t n, const std::function<void(int64_t)>& fn) {
    const int helpers = std::min<int64_t>(at::get_num_threads(), n) - 1;
    if (helpers <= 0 || at::in_parallel_region()) {
      for (int64_t c = 0; c < n; ++c) fn(c);
      return;
    }
    std::lock_guard<std::mutex> one_caller(run_mutex_);
    while (static_cast<int>(threads_.size()) < helpers) {
      const int id = static_cast<int>(threads_.size());
      threads_.emplace_back([this, id] { loop(id); });
      threads_.back().detach();
    }
    active_.store(helpers);  // helpers beyond torch's current thread count sit this job out
    const uint64_t job = (counter_.load() >> 32) + 1;
    counter_.store((job << 32) | kClosed);  // a new job with no chunk claimable yet: a helper late for the last
    fn_.store(&fn);                         // job can no longer claim, and none can claim this one before fn_, n_
    n_.store(n);                            // and done_ are set
    done_.store(0);
    counter_.store(job << 32);  // open: chunk 0 is next
    if (sleeping_.load()) {
      std::lock_guard<std::mutex> lk(sleep_mutex_);
      wake_.notify_all();
    }
    work(job);
    for (int spins = 0; done_.load() < n; ++spins) pause(spins);
  }

 private:
  std::vector<std::thread> threads_;
  std::mutex run_mutex_, sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> counter_{0};
  std::atomic<int64_t> done_{0};
  std::atomic<int> sleeping_{0}, active_{0};
  std::atomic<const std::function<void(int64_t)>*> fn_{nullptr};
  std::atomic<int64_t> n_{0};
  static constexpr uint64_t kClosed = 0xffffffffu;

  static void pause(int spins) {
    if (spins < 4000) {
#if defined(__x86_64__)
      _mm_pause();
#endif
    } else {
      std::this_thread::yield();  // on a busy machine: let whoever the OS would run instead run now
    }
  }

  // claim chunks of job `job` until none is left
  void work(uint64_t job) {
    uint64_t v = counter_.load();
    for (int spins = 0; (v >> 32) == job && (v & kClosed) == kClosed; ++spins) {  // being opened: wait a moment
      pause(spins);
      v = counter_.load();
    }
    // a successful exchange from (job, i) proves job `job` was open, hence fn_ and n_ are this job's
    while ((v >> 32) == job && static_cast<int64_t>(v & kClosed) < n_.load()) {
      if (!counter_.compare_exchange_weak(v, v + 1)) continue;
      (*fn_.load())(static_cast<int64_t>(v & kClosed));
      done_.fetch_add(1);
      v = counter_.load();
    }
  }

  // a helper: spin briefly for the next job (the next product of the same token follows within microseconds),
  // then yield, then sleep until woken (between tokens, or when decoding has stopped)
  void loop(int id) {
    uint64_t seen = counter_.load() >> 32;
    for (;;) {
      uint64_t job = counter_.load() >> 32;
      for (int spins = 0; job == seen; ++spins) {
        if (spins > 20000) {
          std::unique_lock<std::mutex> lk(sleep_mutex_);
          sleeping_.fetch_add(1);
          wake_.wait(lk, [&] { return (counter_.load() >> 32) != seen; });
          sleeping_.fetch_sub(1);
        }
        pause(spins);
        job = counter_.load() >> 32;
      }
      seen = job;
      if (id < active_.load()) work(job);
    }
  }
};

// R fp32 dot products at once: rows w, w + K, ..., w + (R-1) K (adjacent in memory: one contiguous stream of R K
// floats) with the same x. Each 16-float load of x is reused for R rows and R independent FMA chains keep enough
// loads in flight for the memory system to stream at full speed. Measured on a 49152x576 matrix, one thread
// (GB/s read): 1 row 4.3, 2 rows 4.9, 4 rows 5.7, 8 rows 6.6; an explicit `_mm_prefetch` 512 B ahead made 4 rows
// slower (4.8), the hardware prefetcher already follows these streams.
template <int R>
static inline void dot_rows(const float* w, const float* x, int64_t K, float* out) {
  int64_t k = 0;
#if defined(__AVX512F__)
  __m512 a[R];
  for (int i = 0; i < R; ++i) a[i] = _mm512_setzero_ps();
  for (; k + 16 <= K; k += 16) {
    const __m512 xv = _mm512_loadu_ps(x + k);
    for (int i = 0; i < R; ++i) a[i] = _mm512_fmadd_ps(_mm512_loadu_ps(w + i * K + k), xv, a[i]);
  }
  for (int i = 0; i < R; ++i) out[i] = _mm512_reduce_add_ps(a[i]);
#else
  for (int i = 0; i < R; ++i) out[i] = 0.f;
#endif
  const int64_t k0 = k;
  for (int i = 0; i < R; ++i) {
    float acc = out[i];
    const float* row = w + i * K;
#pragma omp simd reduction(+ : acc)
    for (int64_t j = k0; j < K; ++j) acc += row[j] * x[j];
    out[i] = acc;
  }
}

// y[n] = sum_k w[n, k] x[k]: blocks of eight rows, in chunks of >= 128 KB that the threads claim (ChunkPool).
static void gemv_f32(const float* w, const float* x, float* y, int64_t N, int64_t K) {
  constexpr int64_t R = 8;
  const int64_t blocks = N / R;
  const int64_t per_chunk = std::max<int64_t>(1, 4096 / K);  // chunks of >= 32K floats (128 KB)
  const int64_t chunks = (blocks + per_chunk - 1) / per_chunk;
  ChunkPool::get().run(chunks, [&](int64_t c) {
    for (int64_t b = c * per_chunk; b < std::min(blocks, (c + 1) * per_chunk); ++b)
      dot_rows<R>(w + b * R * K, x, K, y + b * R);
  });
  for (int64_t n = blocks * R; n < N; ++n) dot_rows<1>(w + n * K, x, K, y + n);
}

// y[m, n] = sum_k w[n, k] * x[m, k] in fp32 for a few rows m (decode-sized inputs of `F32Linear`).
torch::Tensor f32_gemv(torch::Tensor x, torch::Tensor w) {
  TORCH_CHECK(x.dtype() == torch::kFloat32 && w.dtype() == torch::kFloat32 && w.is_contiguous());
  x = x.contiguous();
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  TORCH_CHECK(w.size(1) == K);
  auto y = torch::empty({M, N}, x.options());
  for (int64_t m = 0; m < M; ++m) gemv_f32(w.data_ptr<float>(), x.data_ptr<float>() + m * K, y.data_ptr<float>() + m * N, N, K);
  return y;
}

// ----------------------------------------------------------------------------------------------- decode step
// One token through every layer of a Llama-style decoder (batch 1), in one call: the same arithmetic as
// `Transformer.forward` with a KV cache, but with no Python between the operations and only the matrix-vector
// products on both threads. What is left per token is the time to stream the weights.

// A weight matrix of the decode step as three tensors: fp32 (w, -, -), int8 per output channel (q, scale, -), or
// 4-bit groups of 32 (packed, d, m); the element type of the first says which.
struct Mat {
  torch::Tensor a, b, c;
  int64_t N, K;
};

static Mat as_mat(const std::vector<torch::Tensor>& t, size_t i) {
  Mat m{t[i], t[i + 1], t[i + 2], t[i].size(0), t[i].size(1)};
  TORCH_CHECK(m.a.is_contiguous() && m.a.dim() == 2, "decode step: weight ", i / 3, " is not a contiguous matrix");
  if (m.a.dtype() == torch::kUInt8) m.K *= 2;  // two 4-bit weights per byte
  return m;
}

// y = W x for one activation vector, whichever the storage; chunks of rows shared by the threads as in gemv_f32.
static void gemv(const Mat& m, const float* x, float* y) {
  const int64_t N = m.N, K = m.K;
  if (m.a.dtype() == torch::kFloat32) return gemv_f32(m.a.data_ptr<float>(), x, y, N, K);
  if (m.a.dtype() == torch::kInt8) {
    const int8_t* q = m.a.data_ptr<int8_t>();
    const float* s = m.b.data_ptr<float>();
    const int64_t rows = std::max<int64_t>(1, 32768 / K);  // chunks of >= 32 KB
    ChunkPool::get().run((N + rows - 1) / rows, [&](int64_t c) {
      for (int64_t n = c * rows; n < std::min(N, (c + 1) * rows); ++n) y[n] = dot_i8(q + n * K, x, K) * s[n];
    });
    return;
  }
  TORCH_CHECK(m.a.dtype() == torch::kUInt8 && K % 32 == 0, "decode step: unsupported weight type");
  const int64_t G = K / 32;
  std::vector<float> xs(G, 0.f);  // the sum of x over each group, shared by every row (the minimum's term)
  for (int64_t g = 0; g < G; ++g)
    for (int j = 0; j < 32; ++j) xs[g] += x[32 * g + j];
  const uint8_t* p = m.a.data_ptr<uint8_t>();
  const float* d = m.b.data_ptr<float>();
  const float* mn = m.c.data_ptr<float>();
  const int64_t rows = std::max<int64_t>(1, 65536 / K);  // chunks of >= 32 KB of 4-bit weights
  ChunkPool::get().run((N + rows - 1) / rows, [&](int64_t c) {
    for (int64_t n = c * rows; n < std::min(N, (c + 1) * rows); ++n) {
      float acc = dot_q4(p + n * (K / 2), x, d + n * G, G);
      for (int64_t g = 0; g < G; ++g) acc += mn[n * G + g] * xs[g];
      y[n] = acc;
    }
  });
}

// out = x / sqrt(mean(x^2) + eps) * g   (RMSNorm, as F.rms_norm)
static void rmsnorm(const float* x, const float* g, float* out, int64_t D, float eps) {
  float ss = 0.f;
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < D; ++i) ss += x[i] * x[i];
  const float r = 1.f / std::sqrt(ss / static_cast<float>(D) + eps);
  for (int64_t i = 0; i < D; ++i) out[i] = x[i] * r * g[i];
}

// RoPE in the half-split layout: x * cos + rotate_half(x) * sin, rotate_half(x1, x2) = (-x2, x1).
static void rope(float* v, const float* c, const float* s, int64_t hd) {
  const int64_t half = hd / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = v[i], b = v[i + half];
    v[i] = a * c[i] - b * s[i];
    v[i + half] = b * c[i + half] + a * s[i + half];
  }
}

// logits [V] for the token whose embedding is `x0` [D] at position `pos`. `norms` holds two gains per layer
// (attention, feed-forward); `mats` three tensors (see Mat) per matrix, four matrices per layer: qkv
// [(H + 2 Hk) hd, D], proj [D, H hd], gate_up [2F, D], down [D, F]; `head` three more for the output matrix.
// kc, vc: the KV cache [L, 1, Hk, max_len, hd]; this token's keys and values are written at `pos`.
torch::Tensor decode_step(torch::Tensor x0, std::vector<torch::Tensor> norms, std::vector<torch::Tensor> mats,
                          torch::Tensor kc, torch::Tensor vc, int64_t pos, torch::Tensor cos, torch::Tensor sin,
                          torch::Tensor norm_w, std::vector<torch::Tensor> head, int64_t H, int64_t Hk, double eps_d) {
  const int64_t L = static_cast<int64_t>(norms.size()) / 2, D = x0.numel();
  TORCH_CHECK(L > 0 && static_cast<int64_t>(mats.size()) == 12 * L && head.size() == 3,
              "decode step: two norms and four matrices (three tensors each) per layer expected");
  TORCH_CHECK(x0.dtype() == torch::kFloat32 && x0.is_contiguous() && kc.dtype() == torch::kFloat32 &&
              vc.dtype() == torch::kFloat32 && cos.dtype() == torch::kFloat32 && sin.dtype() == torch::kFloat32);
  TORCH_CHECK(kc.is_contiguous() && vc.is_contiguous() && kc.dim() == 5 && kc.size(0) == L && kc.size(1) == 1,
              "decode step: the KV cache must be [n_layers, 1, n_kv_heads, max_len, head_dim]");
  const int64_t hd = kc.size(4), S = kc.size(3), F = as_mat(mats, 6).N / 2;
  TORCH_CHECK(pos >= 0 && pos < S && pos < cos.size(0), "position outside the KV cache or the RoPE table");
  TORCH_CHECK(H % Hk == 0 && kc.size(2) == Hk && cos.size(1) == hd && cos.is_contiguous() && sin.is_contiguous());
  for (auto& t : norms) TORCH_CHECK(t.dtype() == torch::kFloat32 && t.numel() == D, "decode step: fp32 norm gains");
  const Mat out_head = as_mat(head, 0);
  TORCH_CHECK(out_head.K == D, "decode step: the head's input size is not d_model");
  for (int64_t l = 0; l < L; ++l) {  // shapes once, so the loops below never read outside a matrix
    const int64_t want[4][2] = {{(H + 2 * Hk) * hd, D}, {D, H * hd}, {2 * F, D}, {D, F}};
    for (int j = 0; j < 4; ++j) {
      const Mat m = as_mat(mats, 12 * l + 3 * j);
      TORCH_CHECK(m.N == want[j][0] && m.K == want[j][1], "decode step: layer ", l, " matrix ", j, " is ", m.N,
                  "x", m.K, ", expected ", want[j][0], "x", want[j][1]);
    }
  }
  const float eps = static_cast<float>(eps_d);
  const float* c = cos.data_ptr<float>() + pos * hd;
  const float* s = sin.data_ptr<float>() + pos * hd;
  std::vector<float> x(x0.data_ptr<float>(), x0.data_ptr<float>() + D), h(D), o(D);
  std::vector<float> qkv((H + 2 * Hk) * hd), att(H * hd), gu(2 * F), act(F), p(pos + 1);
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  const int64_t group = H / Hk;
  for (int64_t l = 0; l < L; ++l) {
    rmsnorm(x.data(), norms[2 * l].data_ptr<float>(), h.data(), D, eps);
    gemv(as_mat(mats, 12 * l), h.data(), qkv.data());
    for (int64_t j = 0; j < H + Hk; ++j) rope(qkv.data() + j * hd, c, s, hd);  // queries and keys
    float* kl = kc.data_ptr<float>() + l * Hk * S * hd;
    float* vl = vc.data_ptr<float>() + l * Hk * S * hd;
    for (int64_t j = 0; j < Hk; ++j) {
      std::copy_n(qkv.data() + (H + j) * hd, hd, kl + (j * S + pos) * hd);
      std::copy_n(qkv.data() + (H + Hk + j) * hd, hd, vl + (j * S + pos) * hd);
    }
    // attention of each query head over positions 0..pos of its key/value head (grouped-query)
    for (int64_t qh = 0; qh < H; ++qh) {
      const float* q = qkv.data() + qh * hd;
      const float* kh = kl + (qh / group) * S * hd;
      const float* vh = vl + (qh / group) * S * hd;
      float mx = -INFINITY;
      for (int64_t t = 0; t <= pos; ++t) {
        float d = 0.f;
#pragma omp simd reduction(+ : d)
        for (int64_t i = 0; i < hd; ++i) d += q[i] * kh[t * hd + i];
        p[t] = d * scale;
        mx = std::max(mx, p[t]);
      }
      float sum = 0.f;
      for (int64_t t = 0; t <= pos; ++t) sum += (p[t] = std::exp(p[t] - mx));
      float* out = att.data() + qh * hd;
      std::fill_n(out, hd, 0.f);
      for (int64_t t = 0; t <= pos; ++t) {
        const float pt = p[t] / sum;
#pragma omp simd
        for (int64_t i = 0; i < hd; ++i) out[i] += pt * vh[t * hd + i];
      }
    }
    gemv(as_mat(mats, 12 * l + 3), att.data(), o.data());
    for (int64_t i = 0; i < D; ++i) x[i] += o[i];
    rmsnorm(x.data(), norms[2 * l + 1].data_ptr<float>(), h.data(), D, eps);
    gemv(as_mat(mats, 12 * l + 6), h.data(), gu.data());
    for (int64_t i = 0; i < F; ++i) act[i] = gu[i] / (1.f + std::exp(-gu[i])) * gu[F + i];  // silu(gate) * up
    gemv(as_mat(mats, 12 * l + 9), act.data(), o.data());
    for (int64_t i = 0; i < D; ++i) x[i] += o[i];
  }
  rmsnorm(x.data(), norm_w.data_ptr<float>(), h.data(), D, eps);
  auto logits = torch::empty({out_head.N}, x0.options());
  gemv(out_head, h.data(), logits.data_ptr<float>());
  return logits;
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
  m.def("f32_gemv", &f32_gemv, "y = x @ w.T in fp32, eight weight rows per pass");
  m.def("decode_step", &decode_step, "logits of one token through every layer, batch 1 (fp32/int8/4-bit weights)");
  m.def("q4_gemv", &q4_gemv, "y = x @ dequant(q4).T, 4-bit groups of 32 with scale and minimum");
}
