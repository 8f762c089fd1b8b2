// activations_cpu.cpp -- activations, softmax, fused softmax + cross-entropy, dropout.
//   rows x cols views; softmax and cross-entropy act on each row (B,K).
#include <algorithm>
#include <cmath>
#include <string>

#include "activations.h"
#include "common.h"
#include "dropout_hash.h"

namespace cnnfast {

// Elementwise loops below this many elements stay on one thread (thread start-up costs more).
static constexpr int64_t kParallelGrain = 1 << 15;

static void softmax_row(float* y, const float* z, int64_t K) {
    float mx = z[0];
    for (int64_t k = 1; k < K; ++k) mx = std::max(mx, z[k]);
    float sum = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
        y[k] = std::exp(z[k] - mx);
        sum += y[k];
    }
    const float inv = 1.0f / sum;
    for (int64_t k = 0; k < K; ++k) y[k] *= inv;
}

// i in [0, n) on the OpenMP threads (one static block each).
template <class F>
static inline void for_each_index(int64_t n, F f) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) f(i);
}

// TF's float constants (relu_op_functor.h) and expressions, so results agree to rounding.
static constexpr float kSeluScale = 1.0507009873554804934193349852946f;
static constexpr float kSeluScaleAlpha = 1.7580993408473768599402175208123f;
static constexpr float kLeakySlope = 0.2f;  // keras.activations.leaky_relu's default
static constexpr float kSqrt2 = 1.4142135623730951f;
static constexpr float kTwoOverSqrtPi = 1.1283791670955126f;

static inline float sigmoid1(float x) {
    return 1.0f / (1.0f + std::exp(-x));
}

// TF's Softplus: x above -threshold, exp(x) below threshold, log(exp(x) + 1) between, where
// threshold = log(float epsilon) + 2.
static inline float softplus1(float x) {
    const float threshold = std::log(1.1920928955078125e-07f) + 2.0f;
    if (x > -threshold) return x;
    const float e = std::exp(x);
    return x < threshold ? e : std::log(e + 1.0f);
}

static void log_softmax_row(float* y, const float* z, int64_t K) {
    float mx = z[0];
    for (int64_t k = 1; k < K; ++k) mx = std::max(mx, z[k]);
    float sum = 0.0f;
    for (int64_t k = 0; k < K; ++k) sum += std::exp(z[k] - mx);
    const float lse = std::log(sum);
    for (int64_t k = 0; k < K; ++k) y[k] = (z[k] - mx) - lse;
}

// The kinds added after the first five: one loop each, written as TF writes the function.
static void activation_forward_more(float* out, const float* x, int64_t rows, int64_t cols,
                                    Activation a) {
    const int64_t n = rows * cols;
    switch (a) {
        case Activation::ELU:
            for_each_index(n,
                           [&](int64_t i) { out[i] = x[i] < 0.0f ? std::exp(x[i]) - 1.0f : x[i]; });
            return;
        case Activation::SELU:
            for_each_index(n, [&](int64_t i) {
                out[i] =
                    x[i] < 0.0f ? kSeluScaleAlpha * (std::exp(x[i]) - 1.0f) : kSeluScale * x[i];
            });
            return;
        case Activation::GELU:
            for_each_index(
                n, [&](int64_t i) { out[i] = (0.5f * x[i]) * (1.0f + std::erf(x[i] / kSqrt2)); });
            return;
        case Activation::SiLU:
            for_each_index(n, [&](int64_t i) { out[i] = x[i] * sigmoid1(x[i]); });
            return;
        case Activation::Softplus:
            for_each_index(n, [&](int64_t i) { out[i] = softplus1(x[i]); });
            return;
        case Activation::Softsign:
            for_each_index(n, [&](int64_t i) { out[i] = x[i] / (std::fabs(x[i]) + 1.0f); });
            return;
        case Activation::LeakyReLU:
            for_each_index(
                n, [&](int64_t i) { out[i] = select_bits(x[i] > 0.0f, x[i], x[i] * kLeakySlope); });
            return;
        case Activation::ReLU6:
            for_each_index(n, [&](int64_t i) { out[i] = std::min(std::max(x[i], 0.0f), 6.0f); });
            return;
        case Activation::HardSigmoid:
            for_each_index(
                n, [&](int64_t i) { out[i] = std::min(std::max(x[i] + 3.0f, 0.0f), 6.0f) / 6.0f; });
            return;
        case Activation::LogSoftmax:
            if (cols == 0) return;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
            for (int64_t r = 0; r < rows; ++r) log_softmax_row(out + r * cols, x + r * cols, cols);
            return;
        default: fail("activation_forward: unknown activation");
    }
}

// dx from dy, the forward output y and (backward_needs_input kinds) the input x; TF's
// gradient expressions (EluGrad, SeluGrad, LeakyReluGrad, Relu6Grad, SoftplusGrad, ...).
static void activation_backward_more(float* dx, const float* dy, const float* y, const float* x,
                                     int64_t rows, int64_t cols, Activation a) {
    const int64_t n = rows * cols;
    switch (a) {
        case Activation::ELU:
            for_each_index(n, [&](int64_t i) {
                dx[i] = select_bits(y[i] < 0.0f, (y[i] + 1.0f) * dy[i], dy[i]);
            });
            return;
        case Activation::SELU:
            for_each_index(n, [&](int64_t i) {
                dx[i] =
                    select_bits(y[i] < 0.0f, dy[i] * (y[i] + kSeluScaleAlpha), dy[i] * kSeluScale);
            });
            return;
        case Activation::GELU:
            // d/dx of (0.5 x) (1 + erf(x / sqrt2)), the product rule as autodiff applies it.
            for_each_index(n, [&](int64_t i) {
                const float u = x[i] / kSqrt2;
                const float derf = kTwoOverSqrtPi * std::exp(-u * u) / kSqrt2;
                dx[i] = dy[i] * (0.5f * (1.0f + std::erf(u)) + (0.5f * x[i]) * derf);
            });
            return;
        case Activation::SiLU:
            // tf.nn.silu's own gradient: s * (1 + x * (1 - s)), s = sigmoid(x).
            for_each_index(n, [&](int64_t i) {
                const float sg = sigmoid1(x[i]);
                dx[i] = dy[i] * (sg * (1.0f + x[i] * (1.0f - sg)));
            });
            return;
        case Activation::Softplus:
            for_each_index(n, [&](int64_t i) { dx[i] = dy[i] / (std::exp(-x[i]) + 1.0f); });
            return;
        case Activation::Softsign:
            for_each_index(n, [&](int64_t i) {
                const float d = std::fabs(x[i]) + 1.0f;
                dx[i] = dy[i] / (d * d);
            });
            return;
        case Activation::LeakyReLU:
            // out > 0 <=> inp > 0 for a positive slope.
            for_each_index(n, [&](int64_t i) {
                dx[i] = select_bits(y[i] > 0.0f, dy[i], dy[i] * kLeakySlope);
            });
            return;
        case Activation::ReLU6:
            for_each_index(n, [&](int64_t i) {
                dx[i] = select_bits((y[i] > 0.0f) & (y[i] < 6.0f), dy[i], 0.0f);
            });
            return;
        case Activation::HardSigmoid:
            // relu6(x + 3) / 6: the division's gradient dy / 6, passed where 0 < relu6 < 6,
            // i.e. where 0 < out < 1.
            for_each_index(n, [&](int64_t i) {
                dx[i] = select_bits((y[i] > 0.0f) & (y[i] < 1.0f), dy[i] / 6.0f, 0.0f);
            });
            return;
        case Activation::LogSoftmax:
            // TF: dy - sum(dy) * exp(out), per row.
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
            for (int64_t r = 0; r < rows; ++r) {
                const float* yr = y + r * cols;
                const float* dr = dy + r * cols;
                float* xr = dx + r * cols;
                float sum = 0.0f;
                for (int64_t k = 0; k < cols; ++k) sum += dr[k];
                for (int64_t k = 0; k < cols; ++k) xr[k] = dr[k] - sum * std::exp(yr[k]);
            }
            return;
        default: fail("activation_backward: unknown activation");
    }
}

CNNFAST_CLONES
void activation_forward(float* out, const float* inp, int64_t rows, int64_t cols, Activation a) {
    const int64_t n = rows * cols;
    switch (a) {
        case Activation::Linear:
            if (out != inp) std::copy(inp, inp + n, out);
            return;
        case Activation::ReLU:
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
            for (int64_t i = 0; i < n; ++i) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
            return;
        case Activation::Sigmoid:
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
            for (int64_t i = 0; i < n; ++i) out[i] = 1.0f / (1.0f + std::exp(-inp[i]));
            return;
        case Activation::Tanh:
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
            for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(inp[i]);
            return;
        case Activation::Softmax:
            if (cols == 0) return;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
            for (int64_t r = 0; r < rows; ++r) softmax_row(out + r * cols, inp + r * cols, cols);
            return;
        default: activation_forward_more(out, inp, rows, cols, a); return;
    }
}

CNNFAST_CLONES
void activation_backward(float* dinp, const float* dout, const float* out, int64_t rows,
                         int64_t cols, Activation a, const float* inp) {
    const int64_t n = rows * cols;
    switch (a) {
        case Activation::Linear:
            if (dinp != dout) std::copy(dout, dout + n, dinp);
            return;
        case Activation::ReLU:
            // In place (dinp == dout, the executor's case) gets its own loop: with two pointers
            // that may overlap, the compiler's run-time overlap check sends an exact alias to
            // the scalar fallback.
            if (dinp == dout) {
                float* __restrict d = dinp;
                const float* __restrict y = out;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
                for (int64_t i = 0; i < n; ++i) d[i] = y[i] > 0.0f ? d[i] : 0.0f;
                return;
            }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
            for (int64_t i = 0; i < n; ++i) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
            return;
        case Activation::Sigmoid:
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
            for (int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * (out[i] * (1.0f - out[i]));
            return;
        case Activation::Tanh:
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
            for (int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
            return;
        case Activation::Softmax:
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
            for (int64_t r = 0; r < rows; ++r) {
                const float* y = out + r * cols;
                const float* dy = dout + r * cols;
                float* dx = dinp + r * cols;
                float dot = 0.0f;
                for (int64_t k = 0; k < cols; ++k) dot += dy[k] * y[k];
                for (int64_t k = 0; k < cols; ++k) dx[k] = (dy[k] - dot) * y[k];
            }
            return;
        default:
            CNNFAST_CHECK(inp || !backward_needs_input(a),
                          "activation_backward: this activation's gradient needs its input");
            activation_backward_more(dinp, dout, out, inp, rows, cols, a);
            return;
    }
}

// ---- Rescaling (the build's -ffp-contract=off keeps the multiply and the add apart) ----

CNNFAST_CLONES
void rescale_forward(float* out, const float* inp, int64_t n, float scale, float offset) {
    for_each_index(n, [&](int64_t i) { out[i] = inp[i] * scale + offset; });
}

CNNFAST_CLONES
void rescale_backward(float* dinp, const float* dout, int64_t n, float scale) {
    for_each_index(n, [&](int64_t i) { dinp[i] = dout[i] * scale; });
}

// ---- cross-entropy ----

static void check_labels(const int32_t* labels, int B, int K, const char* fn) {
    for (int b = 0; b < B; ++b)
        CNNFAST_CHECK(labels[b] >= 0 && labels[b] < K,
                      std::string(fn) + ": label " + std::to_string(labels[b]) + " at row " +
                          std::to_string(b) + " is outside [0, " + std::to_string(K) + ")");
}

// Row-wise log-softmax pieces, TF's order: shifted = z - max; lse = log(sum(exp(shifted))).
static inline float shifted_lse(const float* z, int K, float* mx_out) {
    float mx = z[0];
    for (int k = 1; k < K; ++k) mx = std::max(mx, z[k]);
    float sum = 0.0f;
    for (int k = 0; k < K; ++k) sum += std::exp(z[k] - mx);
    *mx_out = mx;
    return std::log(sum);
}

void softmax_xent_sparse(float* loss, float* dlogits, const float* logits, const int32_t* labels,
                         int B, int K, float grad_scale) {
    CNNFAST_CHECK(B >= 0 && K > 0, "softmax_xent_sparse: bad sizes");
    check_labels(labels, B, K, "softmax_xent_sparse");
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((int64_t)B * K > kParallelGrain)
#endif
    for (int b = 0; b < B; ++b) {
        const float* z = logits + (size_t)b * K;
        float mx;
        const float lse = shifted_lse(z, K, &mx);
        loss[b] = lse - (z[labels[b]] - mx);
        if (dlogits) {
            float* d = dlogits + (size_t)b * K;
            const float sum = std::exp(lse);
            for (int k = 0; k < K; ++k)
                d[k] = grad_scale * (std::exp(z[k] - mx) / sum - (k == labels[b] ? 1.0f : 0.0f));
        }
    }
}

void softmax_xent_dense(float* loss, float* dlogits, const float* logits, const float* targets,
                        int B, int K, float grad_scale) {
    CNNFAST_CHECK(B >= 0 && K > 0, "softmax_xent_dense: bad sizes");
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((int64_t)B * K > kParallelGrain)
#endif
    for (int b = 0; b < B; ++b) {
        const float* z = logits + (size_t)b * K;
        const float* t = targets + (size_t)b * K;
        float mx;
        const float lse = shifted_lse(z, K, &mx);
        float l = 0.0f;
        for (int k = 0; k < K; ++k) l += t[k] * (lse - (z[k] - mx));
        loss[b] = l;
        if (dlogits) {
            float* d = dlogits + (size_t)b * K;
            const float sum = std::exp(lse);
            for (int k = 0; k < K; ++k) d[k] = grad_scale * (std::exp(z[k] - mx) / sum - t[k]);
        }
    }
}

void xent_probs_sparse(float* loss, float* dprobs, const float* probs, const int32_t* labels, int B,
                       int K, float eps, float grad_scale) {
    CNNFAST_CHECK(B >= 0 && K > 0, "xent_probs_sparse: bad sizes");
    check_labels(labels, B, K, "xent_probs_sparse");
    const float hi = 1.0f - eps;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((int64_t)B * K > kParallelGrain)
#endif
    for (int b = 0; b < B; ++b) {
        const float* p = probs + (size_t)b * K;
        const int y = labels[b];
        float s = 0.0f;
        for (int k = 0; k < K; ++k) s += std::min(std::max(p[k], eps), hi);
        const float qy = std::min(std::max(p[y], eps), hi);
        loss[b] = std::log(s) - std::log(qy);
        if (dprobs) {
            // d/dp_k of log(sum q) - log(q_y), zero where the clip is active (TF's clip grad).
            float* d = dprobs + (size_t)b * K;
            for (int k = 0; k < K; ++k) {
                const bool inside = p[k] >= eps && p[k] <= hi;
                const float q = std::min(std::max(p[k], eps), hi);
                const float g = 1.0f / s - (k == y ? 1.0f / q : 0.0f);
                d[k] = inside ? grad_scale * g : 0.0f;
            }
        }
    }
}

void xent_probs_dense(float* loss, float* dprobs, const float* probs, const float* targets, int B,
                      int K, float eps, float grad_scale) {
    CNNFAST_CHECK(B >= 0 && K > 0, "xent_probs_dense: bad sizes");
    const float hi = 1.0f - eps;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((int64_t)B * K > kParallelGrain)
#endif
    for (int b = 0; b < B; ++b) {
        const float* p = probs + (size_t)b * K;
        const float* t = targets + (size_t)b * K;
        float s = 0.0f;
        for (int k = 0; k < K; ++k) s += p[k];
        float l = 0.0f;
        for (int k = 0; k < K; ++k) l -= t[k] * std::log(std::min(std::max(p[k] / s, eps), hi));
        loss[b] = l;
        if (dprobs) {
            // r = p / s; q = clip(r); L = -sum t log q.  dL/dp_i = (g_i - sum_j g_j r_j) / s
            // with g_j = -t_j / q_j where the clip is inactive, else 0.
            float* d = dprobs + (size_t)b * K;
            float gr = 0.0f;
            for (int k = 0; k < K; ++k) {
                const float r = p[k] / s;
                const float g = (r >= eps && r <= hi) ? -t[k] / r : 0.0f;
                d[k] = g;
                gr += g * r;
            }
            for (int k = 0; k < K; ++k) d[k] = grad_scale * (d[k] - gr) / s;
        }
    }
}

// ---- dropout ----

CNNFAST_CLONES
void dropout_forward(float* out, uint8_t* mask, const float* inp, int64_t n, double rate,
                     uint64_t seed, int64_t first) {
    CNNFAST_CHECK(rate >= 0.0 && rate < 1.0, "dropout_forward: rate must be in [0, 1)");
    const float scale = (float)(1.0 / (1.0 - rate));
    const uint64_t key = mix64(seed);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) {
        const uint8_t keep = dropout_keep(key, first + i, rate);
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : 0.0f;
    }
}

CNNFAST_CLONES
void dropout_backward(float* dinp, const float* dout, const uint8_t* mask, int64_t n, double rate) {
    CNNFAST_CHECK(rate >= 0.0 && rate < 1.0, "dropout_backward: rate must be in [0, 1)");
    const float scale = (float)(1.0 / (1.0 - rate));
    if (dinp == dout) {  // in place: see activation_backward's ReLU
        float* __restrict d = dinp;
        const uint8_t* __restrict m = mask;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
        for (int64_t i = 0; i < n; ++i) d[i] = m[i] ? d[i] * scale : 0.0f;
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) dinp[i] = mask[i] ? dout[i] * scale : 0.0f;
}

}  // namespace cnnfast
