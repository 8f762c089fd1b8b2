// activations_cuda.cu -- activations, softmax, fused softmax + cross-entropy, dropout (GPU).
//   rows x cols views; softmax and cross-entropy act on each row (B,K), one thread per row in
//   the CPU's loop order (K is small: the class count). Elementwise ops: grid-stride loops.
// ReLU, Linear and dropout are bit-identical to the CPU; expf/logf/tanhf (CUDA libdevice, max
// 1-2 ulp) differ from glibc's by an ulp or so, hence fp32 tolerances for the rest.
// Dropout uses the CPU's counter-based SplitMix64 hash of (seed, i): identical masks.
#include "cuda_common.cuh"
#include "dropout_hash.h"

namespace cnnfast {
namespace cuda {

namespace {

__global__ void relu_fwd(float* out, const float* inp, int64_t n) {
    CNNFAST_GRID_STRIDE(i, n) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}
__global__ void sigmoid_fwd(float* out, const float* inp, int64_t n) {
    CNNFAST_GRID_STRIDE(i, n) out[i] = 1.0f / (1.0f + expf(-inp[i]));
}
__global__ void tanh_fwd(float* out, const float* inp, int64_t n) {
    CNNFAST_GRID_STRIDE(i, n) out[i] = tanhf(inp[i]);
}
__global__ void softmax_fwd(float* out, const float* inp, int64_t rows, int64_t K) {
    CNNFAST_GRID_STRIDE(r, rows) {
        const float* z = inp + r * K;
        float* y = out + r * K;
        float mx = z[0];
        for (int64_t k = 1; k < K; ++k) mx = std_max(mx, z[k]);
        float sum = 0.0f;
        for (int64_t k = 0; k < K; ++k) {
            y[k] = expf(z[k] - mx);
            sum += y[k];
        }
        const float inv = 1.0f / sum;
        for (int64_t k = 0; k < K; ++k) y[k] *= inv;
    }
}

__global__ void relu_bwd(float* dinp, const float* dout, const float* out, int64_t n) {
    CNNFAST_GRID_STRIDE(i, n) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}
__global__ void sigmoid_bwd(float* dinp, const float* dout, const float* out, int64_t n) {
    CNNFAST_GRID_STRIDE(i, n) dinp[i] = dout[i] * (out[i] * (1.0f - out[i]));
}
__global__ void tanh_bwd(float* dinp, const float* dout, const float* out, int64_t n) {
    CNNFAST_GRID_STRIDE(i, n) dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
}
__global__ void softmax_bwd(float* dinp, const float* dout, const float* out, int64_t rows,
                            int64_t K) {
    CNNFAST_GRID_STRIDE(r, rows) {
        const float* y = out + r * K;
        const float* dy = dout + r * K;
        float* dx = dinp + r * K;
        float dot = 0.0f;
        for (int64_t k = 0; k < K; ++k) dot += dy[k] * y[k];
        for (int64_t k = 0; k < K; ++k) dx[k] = (dy[k] - dot) * y[k];
    }
}

// Row-wise log-softmax pieces in TF's order: shifted = z - max; lse = log(sum(exp(shifted))).
__device__ __forceinline__ float shifted_lse(const float* z, int K, float* mx_out) {
    float mx = z[0];
    for (int k = 1; k < K; ++k) mx = std_max(mx, z[k]);
    float sum = 0.0f;
    for (int k = 0; k < K; ++k) sum += expf(z[k] - mx);
    *mx_out = mx;
    return logf(sum);
}

__global__ void labels_range_kernel(int* flag, const int32_t* labels, int B, int K) {
    CNNFAST_GRID_STRIDE(b, (int64_t)B) {
        if (labels[b] < 0 || labels[b] >= K) atomicOr(flag, 1);
    }
}

__global__ void softmax_xent_sparse_kernel(float* loss, float* dlogits, const float* logits,
                                           const int32_t* labels, int B, int K, float grad_scale) {
    CNNFAST_GRID_STRIDE(b, (int64_t)B) {
        const float* z = logits + b * K;
        float mx;
        const float lse = shifted_lse(z, K, &mx);
        const int y = labels[b];
        loss[b] = lse - (z[y] - mx);
        if (dlogits) {
            float* d = dlogits + b * K;
            const float sum = expf(lse);
            for (int k = 0; k < K; ++k)
                d[k] = grad_scale * (expf(z[k] - mx) / sum - (k == y ? 1.0f : 0.0f));
        }
    }
}

__global__ void softmax_xent_dense_kernel(float* loss, float* dlogits, const float* logits,
                                          const float* targets, int B, int K, float grad_scale) {
    CNNFAST_GRID_STRIDE(b, (int64_t)B) {
        const float* z = logits + b * K;
        const float* t = targets + b * K;
        float mx;
        const float lse = shifted_lse(z, K, &mx);
        float l = 0.0f;
        for (int k = 0; k < K; ++k) l += t[k] * (lse - (z[k] - mx));
        loss[b] = l;
        if (dlogits) {
            float* d = dlogits + b * K;
            const float sum = expf(lse);
            for (int k = 0; k < K; ++k) d[k] = grad_scale * (expf(z[k] - mx) / sum - t[k]);
        }
    }
}

__device__ __forceinline__ float clip(float x, float lo, float hi) {
    return std_min(std_max(x, lo), hi);
}

__global__ void xent_probs_sparse_kernel(float* loss, float* dprobs, const float* probs,
                                         const int32_t* labels, int B, int K, float eps,
                                         float grad_scale) {
    const float hi = 1.0f - eps;
    CNNFAST_GRID_STRIDE(b, (int64_t)B) {
        const float* p = probs + b * K;
        const int y = labels[b];
        float s = 0.0f;
        for (int k = 0; k < K; ++k) s += clip(p[k], eps, hi);
        const float qy = clip(p[y], eps, hi);
        loss[b] = logf(s) - logf(qy);
        if (dprobs) {
            float* d = dprobs + b * K;
            for (int k = 0; k < K; ++k) {
                const bool inside = p[k] >= eps && p[k] <= hi;
                const float q = clip(p[k], eps, hi);
                const float g = 1.0f / s - (k == y ? 1.0f / q : 0.0f);
                d[k] = inside ? grad_scale * g : 0.0f;
            }
        }
    }
}

__global__ void xent_probs_dense_kernel(float* loss, float* dprobs, const float* probs,
                                        const float* targets, int B, int K, float eps,
                                        float grad_scale) {
    const float hi = 1.0f - eps;
    CNNFAST_GRID_STRIDE(b, (int64_t)B) {
        const float* p = probs + b * K;
        const float* t = targets + b * K;
        float s = 0.0f;
        for (int k = 0; k < K; ++k) s += p[k];
        float l = 0.0f;
        for (int k = 0; k < K; ++k) l -= t[k] * logf(clip(p[k] / s, eps, hi));
        loss[b] = l;
        if (dprobs) {
            float* d = dprobs + b * K;
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

__global__ void dropout_fwd_kernel(float* out, uint8_t* mask, const float* inp, int64_t n,
                                   double rate, float scale, uint64_t key) {
    CNNFAST_GRID_STRIDE(i, n) {
        const uint8_t keep = dropout_keep(key, i, rate);  // the CPU's draw (dropout_hash.h)
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : 0.0f;
    }
}

__global__ void dropout_bwd_kernel(float* dinp, const float* dout, const uint8_t* mask, int64_t n,
                                   float scale) {
    CNNFAST_GRID_STRIDE(i, n) dinp[i] = mask[i] ? dout[i] * scale : 0.0f;
}

void check_labels(const int32_t* labels, int B, int K, const char* fn) {
    if (B <= 0) return;
    const int bad = check_flag([&](int* flag) {
        labels_range_kernel<<<grid_for(B), kThreads, 0, cur_stream()>>>(flag, labels, B, K);
        CNNFAST_CUDA_LAUNCHED("labels_range");
    });
    CNNFAST_CHECK(!bad, std::string(fn) + ": a label is outside [0, " + std::to_string(K) + ")");
}

}  // namespace

void activation_forward(float* out, const float* inp, int64_t rows, int64_t cols, Activation a) {
    const int64_t n = rows * cols;
    if (n <= 0 && a != Activation::Linear) return;
    cudaStream_t s = cur_stream();
    switch (a) {
        case Activation::Linear:
            if (out != inp) memcpy_d2d(out, inp, sizeof(float) * (size_t)n);
            return;
        case Activation::ReLU: relu_fwd<<<grid_for(n), kThreads, 0, s>>>(out, inp, n); break;
        case Activation::Sigmoid: sigmoid_fwd<<<grid_for(n), kThreads, 0, s>>>(out, inp, n); break;
        case Activation::Tanh: tanh_fwd<<<grid_for(n), kThreads, 0, s>>>(out, inp, n); break;
        case Activation::Softmax:
            softmax_fwd<<<grid_for(rows, 128), 128, 0, s>>>(out, inp, rows, cols);
            break;
        default: fail("activation_forward: unknown activation");
    }
    CNNFAST_CUDA_LAUNCHED("activation_forward");
}

// inp: unused by the kinds the CUDA module implements (the newer kinds fail here).
void activation_backward(float* dinp, const float* dout, const float* out, int64_t rows,
                         int64_t cols, Activation a, const float* /*inp*/) {
    const int64_t n = rows * cols;
    if (n <= 0 && a != Activation::Linear) return;
    cudaStream_t s = cur_stream();
    switch (a) {
        case Activation::Linear:
            if (dinp != dout) memcpy_d2d(dinp, dout, sizeof(float) * (size_t)n);
            return;
        case Activation::ReLU: relu_bwd<<<grid_for(n), kThreads, 0, s>>>(dinp, dout, out, n); break;
        case Activation::Sigmoid:
            sigmoid_bwd<<<grid_for(n), kThreads, 0, s>>>(dinp, dout, out, n);
            break;
        case Activation::Tanh: tanh_bwd<<<grid_for(n), kThreads, 0, s>>>(dinp, dout, out, n); break;
        case Activation::Softmax:
            softmax_bwd<<<grid_for(rows, 128), 128, 0, s>>>(dinp, dout, out, rows, cols);
            break;
        default: fail("activation_backward: unknown activation");
    }
    CNNFAST_CUDA_LAUNCHED("activation_backward");
}

void softmax_xent_sparse(float* loss, float* dlogits, const float* logits, const int32_t* labels,
                         int B, int K, float grad_scale) {
    CNNFAST_CHECK(B >= 0 && K > 0, "softmax_xent_sparse: bad sizes");
    check_labels(labels, B, K, "softmax_xent_sparse");
    if (!B) return;
    softmax_xent_sparse_kernel<<<grid_for(B, 128), 128, 0, cur_stream()>>>(
        loss, dlogits, logits, labels, B, K, grad_scale);
    CNNFAST_CUDA_LAUNCHED("softmax_xent_sparse");
}

void softmax_xent_dense(float* loss, float* dlogits, const float* logits, const float* targets,
                        int B, int K, float grad_scale) {
    CNNFAST_CHECK(B >= 0 && K > 0, "softmax_xent_dense: bad sizes");
    if (!B) return;
    softmax_xent_dense_kernel<<<grid_for(B, 128), 128, 0, cur_stream()>>>(
        loss, dlogits, logits, targets, B, K, grad_scale);
    CNNFAST_CUDA_LAUNCHED("softmax_xent_dense");
}

void xent_probs_sparse(float* loss, float* dprobs, const float* probs, const int32_t* labels, int B,
                       int K, float eps, float grad_scale) {
    CNNFAST_CHECK(B >= 0 && K > 0, "xent_probs_sparse: bad sizes");
    check_labels(labels, B, K, "xent_probs_sparse");
    if (!B) return;
    xent_probs_sparse_kernel<<<grid_for(B, 128), 128, 0, cur_stream()>>>(
        loss, dprobs, probs, labels, B, K, eps, grad_scale);
    CNNFAST_CUDA_LAUNCHED("xent_probs_sparse");
}

void xent_probs_dense(float* loss, float* dprobs, const float* probs, const float* targets, int B,
                      int K, float eps, float grad_scale) {
    CNNFAST_CHECK(B >= 0 && K > 0, "xent_probs_dense: bad sizes");
    if (!B) return;
    xent_probs_dense_kernel<<<grid_for(B, 128), 128, 0, cur_stream()>>>(
        loss, dprobs, probs, targets, B, K, eps, grad_scale);
    CNNFAST_CUDA_LAUNCHED("xent_probs_dense");
}

void dropout_forward(float* out, uint8_t* mask, const float* inp, int64_t n, double rate,
                     uint64_t seed) {
    CNNFAST_CHECK(rate >= 0.0 && rate < 1.0, "dropout_forward: rate must be in [0, 1)");
    const float scale = (float)(1.0 / (1.0 - rate));  // rounded once from double, as TF
    if (n <= 0) return;
    dropout_fwd_kernel<<<grid_for(n), kThreads, 0, cur_stream()>>>(out, mask, inp, n, rate, scale,
                                                                   mix64(seed));
    CNNFAST_CUDA_LAUNCHED("dropout_forward");
}

void dropout_backward(float* dinp, const float* dout, const uint8_t* mask, int64_t n, double rate) {
    CNNFAST_CHECK(rate >= 0.0 && rate < 1.0, "dropout_backward: rate must be in [0, 1)");
    const float scale = (float)(1.0 / (1.0 - rate));
    if (n <= 0) return;
    dropout_bwd_kernel<<<grid_for(n), kThreads, 0, cur_stream()>>>(dinp, dout, mask, n, scale);
    CNNFAST_CUDA_LAUNCHED("dropout_backward");
}

}  // namespace cuda
}  // namespace cnnfast
