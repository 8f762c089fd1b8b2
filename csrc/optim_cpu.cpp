// optim_cpu.cpp -- optimizer updates, gradient clipping and weight decay, elementwise, in
// Keras's float32 operation order.
// Built with -ffp-contract=off so no a*b+c is fused behind our back (TF does not fuse these).
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "optim.h"

namespace cnnfast {

static constexpr int64_t kParallelGrain = 1 << 15;

CNNFAST_CLONES
void adam_update(float* w, float* m, float* v, float* vhat, const float* g, int64_t n, float lr,
                 double beta1, double beta2, double eps, int64_t step) {
    CNNFAST_CHECK(step >= 1, "adam_update: step must be >= 1");
    const float t = (float)step;
    const float b1p = std::pow((float)beta1, t), b2p = std::pow((float)beta2, t);
    const float alpha = lr * std::sqrt(1.0f - b2p) / (1.0f - b1p);
    const float omb1 = (float)(1.0 - beta1), omb2 = (float)(1.0 - beta2), e = (float)eps;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i];
        m[i] += (gi - m[i]) * omb1;
        v[i] += (gi * gi - v[i]) * omb2;
        float vi = v[i];
        if (vhat) {
            vhat[i] = vhat[i] > vi ? vhat[i] : vi;
            vi = vhat[i];
        }
        w[i] -= (m[i] * alpha) / (std::sqrt(vi) + e);
    }
}

CNNFAST_CLONES
void sgd_update(float* w, float* velocity, const float* g, int64_t n, float lr, double momentum,
                bool nesterov) {
    if (momentum == 0.0) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
        for (int64_t i = 0; i < n; ++i) w[i] -= g[i] * lr;
        return;
    }
    CNNFAST_CHECK(velocity != nullptr, "sgd_update: momentum needs a velocity buffer");
    const float mu = (float)momentum;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) {
        velocity[i] = velocity[i] * mu - g[i] * lr;
        if (nesterov)
            w[i] += velocity[i] * mu - g[i] * lr;
        else
            w[i] += velocity[i];
    }
}

CNNFAST_CLONES
void rmsprop_update(float* w, float* v, float* mom, float* avg, const float* g, int64_t n, float lr,
                    double rho, double momentum, double eps, bool centered) {
    CNNFAST_CHECK(!(momentum > 0.0) || mom, "rmsprop_update: momentum needs a buffer");
    CNNFAST_CHECK(!centered || avg, "rmsprop_update: centered needs an average buffer");
    const float r = (float)rho, omr = (float)(1.0 - rho), e = (float)eps, mu = (float)momentum;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i];
        v[i] = r * v[i] + omr * (gi * gi);
        float denom;
        if (centered) {
            avg[i] = r * avg[i] + omr * gi;
            denom = v[i] - avg[i] * avg[i] + e;
        } else {
            denom = v[i] + e;
        }
        const float incr = (lr * gi) / std::sqrt(denom);
        if (momentum > 0.0) {
            mom[i] = mu * mom[i] + incr;
            w[i] -= mom[i];
        } else {
            w[i] -= incr;
        }
    }
}

CNNFAST_CLONES
void nadam_update(float* w, float* m, float* v, const float* g, int64_t n, float lr, double beta1,
                  double beta2, double eps, int64_t step, float u_product) {
    CNNFAST_CHECK(step >= 1, "nadam_update: step must be >= 1");
    const float b1 = (float)beta1, b2 = (float)beta2, e = (float)eps;
    const float t = (float)step, t1 = (float)(step + 1);
    const float u_t = b1 * (1.0f - 0.5f * std::pow(0.96f, t));
    const float u_t1 = b1 * (1.0f - 0.5f * std::pow(0.96f, t1));
    const float u_prod_t1 = u_product * u_t1;
    const float b2p = std::pow(b2, t);
    const float omb1 = 1.0f - b1, omb2 = 1.0f - b2;
    const float c1 = 1.0f - u_prod_t1, c0 = 1.0f - u_product, omu = 1.0f - u_t, omb2p = 1.0f - b2p;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i];
        m[i] += (gi - m[i]) * omb1;
        v[i] += (gi * gi - v[i]) * omb2;
        const float m_hat = (u_t1 * m[i]) / c1 + (omu * gi) / c0;
        const float v_hat = v[i] / omb2p;
        w[i] -= (m_hat * lr) / (std::sqrt(v_hat) + e);
    }
}

float nadam_u_product_next(float u_product, double beta1, int64_t step) {
    CNNFAST_CHECK(step >= 1, "nadam_u_product_next: step must be >= 1");
    return u_product * (float)beta1 * (1.0f - 0.5f * std::pow(0.96f, (float)step));
}

CNNFAST_CLONES
void adamax_update(float* w, float* m, float* u, const float* g, int64_t n, float lr, double beta1,
                   double beta2, double eps, int64_t step) {
    CNNFAST_CHECK(step >= 1, "adamax_update: step must be >= 1");
    const float b1p = std::pow((float)beta1, (float)step);
    const float omb1 = (float)(1.0 - beta1), b2 = (float)beta2, e = (float)eps;
    const float omb1p = 1.0f - b1p;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i];
        m[i] += (gi - m[i]) * omb1;
        const float decayed = b2 * u[i], ag = std::fabs(gi);
        u[i] = decayed > ag ? decayed : ag;
        w[i] -= (lr * m[i]) / (omb1p * (u[i] + e));
    }
}

CNNFAST_CLONES
void adagrad_update(float* w, float* acc, const float* g, int64_t n, float lr, double eps) {
    const float e = (float)eps;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i];
        acc[i] += gi * gi;
        w[i] -= (lr * gi) / std::sqrt(acc[i] + e);
    }
}

CNNFAST_CLONES
void adadelta_update(float* w, float* acc_grad, float* acc_delta, const float* g, int64_t n,
                     float lr, double rho, double eps) {
    const float r = (float)rho, omr = (float)(1.0 - rho), e = (float)eps;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i];
        acc_grad[i] = r * acc_grad[i] + omr * (gi * gi);
        const float delta = -((std::sqrt(acc_delta[i] + e) * gi) / std::sqrt(acc_grad[i] + e));
        acc_delta[i] = r * acc_delta[i] + omr * (delta * delta);
        w[i] += lr * delta;
    }
}

CNNFAST_CLONES
void weight_decay_update(float* w, int64_t n, float lr, double weight_decay) {
    const float wd = (float)weight_decay;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) w[i] -= (w[i] * wd) * lr;
}

// sum(f32(g*g)) in double: blocks of kSumBlock summed in parallel, combined in block order, so
// the result does not depend on the thread count.
static constexpr int64_t kSumBlock = 1 << 12;

// The blocks' partial sums: grow-only scratch of the calling thread (sum_squares and block_sum
// run one at a time on it), so a step with clipping or regularizers allocates nothing here
// after its first call at the largest size. Every block's entry is written before it is read.
static double* block_partials(int64_t nb) {
    static thread_local std::vector<double> buf;
    if (buf.size() < (size_t)nb) buf.resize((size_t)nb);
    return buf.data();
}

static float sum_squares(const float* g, int64_t n) {
    const int64_t nb = (n + kSumBlock - 1) / kSumBlock;
    double* part = block_partials(nb);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t b = 0; b < nb; ++b) {
        const int64_t lo = b * kSumBlock, hi = std::min(n, lo + kSumBlock);
        double s = 0.0;
        for (int64_t i = lo; i < hi; ++i) {
            const float sq = g[i] * g[i];
            s += (double)sq;
        }
        part[b] = s;
    }
    double s = 0.0;
    for (int64_t b = 0; b < nb; ++b) s += part[b];
    return (float)s;
}

static void scale_by(float* g, int64_t n, float mul, float div) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) g[i] = (g[i] * mul) / div;
}

static void multiply_by(float* g, int64_t n, float scale) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] * scale;
}

void clip_gradients(float* const* g, const int64_t* n, int count, ClipKind kind, double clip) {
    const float c = (float)clip;
    switch (kind) {
        case ClipKind::None: return;
        case ClipKind::Value:
            for (int k = 0; k < count; ++k) {
                float* gk = g[k];
                const int64_t nk = n[k];
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nk > kParallelGrain)
#endif
                for (int64_t i = 0; i < nk; ++i) gk[i] = std::min(std::max(gk[i], -c), c);
            }
            return;
        case ClipKind::Norm:
            for (int k = 0; k < count; ++k) {
                const float s = sum_squares(g[k], n[k]);
                const float norm = s > 0.0f ? std::sqrt(s) : s;
                scale_by(g[k], n[k], c, std::max(norm, c));
            }
            return;
        case ClipKind::GlobalNorm: {
            float total = 0.0f;
            for (int k = 0; k < count; ++k) total += sum_squares(g[k], n[k]);
            const float norm = std::sqrt(total);
            const float scale = c * std::min(1.0f / norm, (float)(1.0 / clip)) + (norm - norm);
            for (int k = 0; k < count; ++k) multiply_by(g[k], n[k], scale);
            return;
        }
    }
    fail("clip_gradients: unknown clip kind");
}

float f32_pow(float x, float y) {
    return std::pow(x, y);
}
float f32_cos(float x) {
    return std::cos(x);
}
float f32_log(float x) {
    return std::log(x);
}

// sum|x| or sum(x*x) in double, in fixed blocks combined in block order (see sum_squares).
static float block_sum(const float* x, int64_t n, bool squares) {
    const int64_t nb = (n + kSumBlock - 1) / kSumBlock;
    double* part = block_partials(nb);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
    for (int64_t b = 0; b < nb; ++b) {
        const int64_t lo = b * kSumBlock, hi = std::min(n, lo + kSumBlock);
        double s = 0.0;
        for (int64_t i = lo; i < hi; ++i)
            s += squares ? (double)(x[i] * x[i]) : std::fabs((double)x[i]);
        part[b] = s;
    }
    double s = 0.0;
    for (int64_t b = 0; b < nb; ++b) s += part[b];
    return (float)s;
}

float weight_penalty(float* dx, const float* x, int64_t n, double l1, double l2, float scale) {
    const float f1 = (float)l1, f2 = (float)l2;
    float penalty = 0.0f;
    if (f1 != 0.0f) penalty += f1 * block_sum(x, n, false);
    if (f2 != 0.0f) penalty += f2 * block_sum(x, n, true);
    if (dx != nullptr && (f1 != 0.0f || f2 != 0.0f)) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
#endif
        for (int64_t i = 0; i < n; ++i) {
            const float v = x[i];
            const float sgn = (float)((v > 0.0f) - (v < 0.0f));
            dx[i] += (sgn * f1 + (2.0f * v) * f2) * scale;
        }
    }
    return penalty;
}

}  // namespace cnnfast
