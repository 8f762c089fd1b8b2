// optim_cuda.cu -- Adam / SGD / RMSprop updates on the GPU, in Keras's float32 operation order.
// The per-step scalars (Adam's alpha, the f32-rounded hyper-parameters) are computed on the
// host by the same code as optim_cpu.cpp; the per-element arithmetic is +, -, *, / and sqrtf,
// all correctly rounded on the GPU (nvcc defaults -prec-div=true -prec-sqrt=true, and this
// module is built with --fmad=false), so the updates are bit-identical to the CPU's.
#include <cmath>

#include "cuda_common.cuh"

namespace cnnfast {
namespace cuda {

namespace {

__global__ void adam_kernel(float* __restrict__ w, float* __restrict__ m, float* __restrict__ v,
                            float* __restrict__ vhat, const float* __restrict__ g, int64_t n,
                            float alpha, float omb1, float omb2, float e) {
    CNNFAST_GRID_STRIDE(i, n) {
        const float gi = g[i];
        const float mi = m[i] + (gi - m[i]) * omb1;
        float vi = v[i] + (gi * gi - v[i]) * omb2;
        m[i] = mi;
        v[i] = vi;
        if (vhat) {
            const float h = vhat[i] > vi ? vhat[i] : vi;
            vhat[i] = h;
            vi = h;
        }
        w[i] -= (mi * alpha) / (sqrtf(vi) + e);
    }
}

__global__ void sgd_plain_kernel(float* __restrict__ w, const float* __restrict__ g, int64_t n,
                                 float lr) {
    CNNFAST_GRID_STRIDE(i, n) w[i] -= g[i] * lr;
}

__global__ void sgd_momentum_kernel(float* __restrict__ w, float* __restrict__ vel,
                                    const float* __restrict__ g, int64_t n, float lr, float mu,
                                    bool nesterov) {
    CNNFAST_GRID_STRIDE(i, n) {
        const float vi = vel[i] * mu - g[i] * lr;
        vel[i] = vi;
        if (nesterov)
            w[i] += vi * mu - g[i] * lr;
        else
            w[i] += vi;
    }
}

__global__ void rmsprop_kernel(float* __restrict__ w, float* __restrict__ v,
                               float* __restrict__ mom, float* __restrict__ avg,
                               const float* __restrict__ g, int64_t n, float lr, float r, float omr,
                               float e, float mu, bool use_mom, bool centered) {
    CNNFAST_GRID_STRIDE(i, n) {
        const float gi = g[i];
        const float vi = r * v[i] + omr * (gi * gi);
        v[i] = vi;
        float denom;
        if (centered) {
            const float ai = r * avg[i] + omr * gi;
            avg[i] = ai;
            denom = vi - ai * ai + e;
        } else {
            denom = vi + e;
        }
        const float incr = (lr * gi) / sqrtf(denom);
        if (use_mom) {
            const float mi = mu * mom[i] + incr;
            mom[i] = mi;
            w[i] -= mi;
        } else {
            w[i] -= incr;
        }
    }
}

}  // namespace

void adam_update(float* w, float* m, float* v, float* vhat, const float* g, int64_t n, float lr,
                 double beta1, double beta2, double eps, int64_t step) {
    CNNFAST_CHECK(step >= 1, "adam_update: step must be >= 1");
    // Host-side scalars: the same expressions, compiler and libm as optim_cpu.cpp.
    const float t = (float)step;
    const float b1p = std::pow((float)beta1, t), b2p = std::pow((float)beta2, t);
    const float alpha = lr * std::sqrt(1.0f - b2p) / (1.0f - b1p);
    const float omb1 = (float)(1.0 - beta1), omb2 = (float)(1.0 - beta2), e = (float)eps;
    if (n <= 0) return;
    adam_kernel<<<grid_for(n), kThreads, 0, cur_stream()>>>(w, m, v, vhat, g, n, alpha, omb1, omb2,
                                                            e);
    CNNFAST_CUDA_LAUNCHED("adam_update");
}

void sgd_update(float* w, float* velocity, const float* g, int64_t n, float lr, double momentum,
                bool nesterov) {
    if (momentum == 0.0) {
        if (n <= 0) return;
        sgd_plain_kernel<<<grid_for(n), kThreads, 0, cur_stream()>>>(w, g, n, lr);
        CNNFAST_CUDA_LAUNCHED("sgd_update");
        return;
    }
    CNNFAST_CHECK(velocity != nullptr, "sgd_update: momentum needs a velocity buffer");
    if (n <= 0) return;
    sgd_momentum_kernel<<<grid_for(n), kThreads, 0, cur_stream()>>>(w, velocity, g, n, lr,
                                                                    (float)momentum, nesterov);
    CNNFAST_CUDA_LAUNCHED("sgd_update");
}

void rmsprop_update(float* w, float* v, float* mom, float* avg, const float* g, int64_t n, float lr,
                    double rho, double momentum, double eps, bool centered) {
    CNNFAST_CHECK(!(momentum > 0.0) || mom, "rmsprop_update: momentum needs a buffer");
    CNNFAST_CHECK(!centered || avg, "rmsprop_update: centered needs an average buffer");
    const float r = (float)rho, omr = (float)(1.0 - rho), e = (float)eps, mu = (float)momentum;
    if (n <= 0) return;
    rmsprop_kernel<<<grid_for(n), kThreads, 0, cur_stream()>>>(w, v, mom, avg, g, n, lr, r, omr, e,
                                                               mu, momentum > 0.0, centered);
    CNNFAST_CUDA_LAUNCHED("rmsprop_update");
}

}  // namespace cuda
}  // namespace cnnfast
