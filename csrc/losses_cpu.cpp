// losses_cpu.cpp -- the elementwise losses of losses.h; one row per iteration, rows in parallel.
#include <algorithm>
#include <cmath>

#include "common.h"
#include "losses.h"

namespace cnnfast {

static constexpr int64_t kParallelGrain = 1 << 15;

namespace {

inline float sign_of(float x) {
    return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
}

// One row of a loss that is a mean over k of l(t_k, p_k): returns the mean and, when d is
// given, writes s * l'(t_k, p_k) with s = grad_scale / K (the mean's gradient).
template <class F>
float mean_row(float* d, const float* p, const float* t, int K, float s, F elem) {
    float sum = 0.0f;
    for (int k = 0; k < K; ++k) {
        float g;
        sum += elem(t[k], p[k], &g);
        if (d) d[k] = s * g;
    }
    return sum / (float)K;
}

float row_loss(float* d, const float* p, const float* t, int K, ElementLoss f, bool from_logits,
               float param, float eps, float grad_scale) {
    const float s = grad_scale / (float)K;
    switch (f) {
        case ElementLoss::mean_squared_error:
            return mean_row(d, p, t, K, s, [](float tk, float pk, float* g) {
                const float e = tk - pk;
                *g = -2.0f * e;
                return e * e;
            });
        case ElementLoss::mean_absolute_error:
            return mean_row(d, p, t, K, s, [](float tk, float pk, float* g) {
                const float e = tk - pk;
                *g = -sign_of(e);
                return std::fabs(e);
            });
        case ElementLoss::huber: {
            const float delta = param;
            return mean_row(d, p, t, K, s, [delta](float tk, float pk, float* g) {
                const float e = pk - tk, a = std::fabs(e);
                if (a <= delta) {
                    *g = e;
                    return 0.5f * (e * e);
                }
                *g = delta * sign_of(e);
                return delta * a - 0.5f * (delta * delta);
            });
        }
        case ElementLoss::binary_crossentropy: {
            const float ls = param, hi = 1.0f - eps;
            if (from_logits)  // max(z, 0) - z t + log(1 + exp(-|z|)); d = sigmoid(z) - t
                return mean_row(d, p, t, K, s, [ls](float tk, float z, float* g) {
                    const float tt = ls != 0.0f ? tk * (1.0f - ls) + 0.5f * ls : tk;
                    *g = 1.0f / (1.0f + std::exp(-z)) - tt;
                    return std::max(z, 0.0f) - z * tt + std::log1p(std::exp(-std::fabs(z)));
                });
            return mean_row(d, p, t, K, s, [ls, eps, hi](float tk, float pk, float* g) {
                const float tt = ls != 0.0f ? tk * (1.0f - ls) + 0.5f * ls : tk;
                const float q = std::min(std::max(pk, eps), hi);
                const bool inside = pk >= eps && pk <= hi;
                *g = inside ? -tt / q + (1.0f - tt) / (1.0f - q) : 0.0f;
                return -(tt * std::log(q) + (1.0f - tt) * std::log(1.0f - q));
            });
        }
        case ElementLoss::kl_divergence: {
            float sum = 0.0f;
            for (int k = 0; k < K; ++k) {
                const float tt = std::min(std::max(t[k], eps), 1.0f);
                const float q = std::min(std::max(p[k], eps), 1.0f);
                sum += tt * std::log(tt / q);
                if (d) d[k] = (p[k] >= eps && p[k] <= 1.0f) ? grad_scale * (-tt / q) : 0.0f;
            }
            return sum;
        }
        case ElementLoss::hinge:
            return mean_row(d, p, t, K, s, [](float tk, float pk, float* g) {
                const float m = 1.0f - tk * pk;
                *g = m >= 0.0f ? -tk : 0.0f;
                return std::max(m, 0.0f);
            });
        case ElementLoss::squared_hinge:
            return mean_row(d, p, t, K, s, [](float tk, float pk, float* g) {
                const float m = std::max(1.0f - tk * pk, 0.0f);
                *g = -2.0f * m * tk;
                return m * m;
            });
        case ElementLoss::categorical_hinge: {
            float pos = 0.0f, neg = -INFINITY;
            for (int k = 0; k < K; ++k) {
                pos += t[k] * p[k];
                neg = std::max(neg, (1.0f - t[k]) * p[k]);
            }
            const float m = neg - pos + 1.0f;
            if (d) {
                // d/dp_k = -t_k + (1 - t_k) [k attains the max] / (number of ties)
                int ties = 0;
                for (int k = 0; k < K; ++k) ties += (1.0f - t[k]) * p[k] == neg;
                const float on = m >= 0.0f ? grad_scale : 0.0f;
                for (int k = 0; k < K; ++k) {
                    const float at_max = (1.0f - t[k]) * p[k] == neg ? 1.0f / (float)ties : 0.0f;
                    d[k] = on * (-t[k] + (1.0f - t[k]) * at_max);
                }
            }
            return std::max(m, 0.0f);
        }
    }
    return 0.0f;
}

}  // namespace

void element_loss(float* loss, float* dpred, const float* pred, const float* target, int B, int K,
                  ElementLoss f, bool from_logits, float param, float eps, float grad_scale) {
    CNNFAST_CHECK(B >= 0 && K > 0, "element_loss: bad sizes");
    CNNFAST_CHECK(is_valid(f), "element_loss: unknown loss kind");
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((int64_t)B * K > kParallelGrain)
#endif
    for (int b = 0; b < B; ++b) {
        const size_t o = (size_t)b * K;
        loss[b] = row_loss(dpred ? dpred + o : nullptr, pred + o, target + o, K, f, from_logits,
                           param, eps, grad_scale);
    }
}

float weighted_loss_mean(float* dpred, const float* loss, const float* w, int B, int64_t K) {
    float sum = 0.0f;
    for (int b = 0; b < B; ++b) sum += loss[b] * w[b];
    if (dpred != nullptr) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((int64_t)B * K > (1 << 15))
#endif
        for (int b = 0; b < B; ++b)
            for (int64_t k = 0; k < K; ++k) dpred[(int64_t)b * K + k] *= w[b];
    }
    return sum / (float)B;
}

}  // namespace cnnfast
