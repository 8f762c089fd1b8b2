// optim_cpu.cpp -- Adam / SGD / RMSprop updates, elementwise, in Keras's float32 operation order.
// Built with -ffp-contract=off so no a*b+c is fused behind our back (TF does not fuse these).
#include <cmath>

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

}  // namespace cnnfast
