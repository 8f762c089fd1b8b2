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
    }
    fail("activation_forward: unknown activation");
}

CNNFAST_CLONES
void activation_backward(float* dinp, const float* dout, const float* out, int64_t rows,
                         int64_t cols, Activation a) {
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
    }
    fail("activation_backward: unknown activation");
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
                     uint64_t seed) {
    CNNFAST_CHECK(rate >= 0.0 && rate < 1.0, "dropout_forward: rate must be in [0, 1)");
    const float scale = (float)(1.0 / (1.0 - rate));
    const uint64_t key = mix64(seed);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) {
        const uint8_t keep = dropout_keep(key, i, rate);
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
