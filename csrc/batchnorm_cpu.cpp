// batchnorm_cpu.cpp -- BatchNormalization forward and backward over the last axis (see
// batchnorm.h for the formulas).
//   inp, out, dout, dinp (M,C); gamma, beta, mean, rstd, moving_mean, moving_var (C)
// Per-channel sums: parallel over fixed row blocks, each summed in double in row order into
// its own row of a (blocks, 2C) table, then the table is summed block by block. The blocks do
// not depend on the thread count, so neither do the results.
#include <algorithm>
#include <cmath>
#include <vector>

#include "batchnorm.h"
#include "common.h"

namespace cnnfast {

namespace {

int64_t num_blocks(int64_t M) {
    return (M + kBatchNormRows - 1) / kBatchNormRows;
}

// The calling thread's scratch (common.h's thread_scratch; the kernels are called outside
// parallel regions): after the first step at the largest batch, a training step allocates
// nothing here. Small, short-lived values use scratch<T>; what must outlive calls of the
// helpers that use it has its own: the per-block sums, and the per-channel coefficients
// (inv, shift; or k, a, b).
template <class T>
T* scratch(size_t n) {
    return thread_scratch<struct BnShort, T>(n);
}
double* sums_scratch(size_t n) {
    return thread_scratch<struct BnSums, double>(n);
}
float* coef_scratch(size_t n) {
    return thread_scratch<struct BnCoefs, float>(n);
}

// The statistics' sums run over a block's rows for kChunk channels at a time, so the
// accumulators stay in registers (a whole row's would be reloaded and stored for every row);
// each channel is still summed in row order, so the chunking does not change the result.
constexpr int kChunk = 8;

// s1[j] = sum of x[r][c0 + j] - pilot[c0 + j], s2[j] = sum of its square, over the rows
// [r0, r1), for j < w (<= W).
template <int W>
inline void moments_chunk(double* __restrict s1, double* __restrict s2, const float* x,
                          const double* __restrict pilot, int64_t r0, int64_t r1, int C, int c0,
                          int w) {
    double a1[W], a2[W], p[W];
    for (int j = 0; j < W; ++j) {
        a1[j] = a2[j] = 0.0;
        p[j] = j < w ? pilot[c0 + j] : 0.0;
    }
    if (w == W) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* __restrict xr = x + r * C + c0;
            for (int j = 0; j < W; ++j) {
                const double d = (double)xr[j] - p[j];
                a1[j] += d;
                a2[j] += d * d;
            }
        }
    } else {
        for (int64_t r = r0; r < r1; ++r) {
            const float* __restrict xr = x + r * C + c0;
            for (int j = 0; j < w; ++j) {
                const double d = (double)xr[j] - p[j];
                a1[j] += d;
                a2[j] += d * d;
            }
        }
    }
    for (int j = 0; j < w; ++j) s1[c0 + j] = a1[j], s2[c0 + j] = a2[j];
}

// part (blocks, 2C) rows [b0, b1) overwritten: per block, sum(x - pilot) in [0,C) and
// sum((x - pilot)^2) in [C,2C), in double (x - pilot is exact there). One pass over x: the mean
// and the variance follow from the two (batchnorm.h); the pilot, a value of the data (its first
// row), keeps the shifted sums free of cancellation unless the spread is tiny against
// |mean - pilot|.
CNNFAST_CLONES
void block_moments(double* part, const float* x, const double* pilot, int64_t b0, int64_t b1,
                   int64_t M, int C) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (b1 - b0 > 1)
#endif
    for (int64_t b = b0; b < b1; ++b) {
        double* s1 = part + b * 2 * C;
        const int64_t r0 = b * kBatchNormRows, r1 = std::min(M, r0 + kBatchNormRows);
        for (int c0 = 0; c0 < C; c0 += kChunk)
            moments_chunk<kChunk>(s1, s1 + C, x, pilot, r0, r1, C, c0, std::min(kChunk, C - c0));
    }
}

// part (blocks, 2C) overwritten: per block, sum(dout) in [0,C) and sum(dout * xhat) in [C,2C),
// xhat = (x - mean) * rstd in float32.
CNNFAST_CLONES
void block_grad_sums(double* part, const float* dout, const float* x, const float* mean,
                     const float* rstd, int64_t M, int C) {
    const int64_t nb = num_blocks(M);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nb > 1)
#endif
    for (int64_t b = 0; b < nb; ++b) {
        double* __restrict sd = part + b * 2 * C;
        double* __restrict sx = sd + C;
        for (int c = 0; c < 2 * C; ++c) sd[c] = 0.0;
        const int64_t r1 = std::min(M, (b + 1) * kBatchNormRows);
        for (int64_t r = b * kBatchNormRows; r < r1; ++r) {
            const float* __restrict dr = dout + r * C;
            const float* __restrict xr = x + r * C;
            for (int c = 0; c < C; ++c) {
                const float xhat = (xr[c] - mean[c]) * rstd[c];
                sd[c] += (double)dr[c];
                sx[c] += (double)(dr[c] * xhat);
            }
        }
    }
}

// total (width) overwritten: the column sums of part (blocks, width), in block order.
void sum_blocks(double* total, const double* part, int64_t nb, int width) {
    for (int c = 0; c < width; ++c) total[c] = 0.0;
    for (int64_t b = 0; b < nb; ++b)
        for (int c = 0; c < width; ++c) total[c] += part[b * width + c];
}

// out = x * inv + shift per channel.
CNNFAST_CLONES
void affine_rows(float* out, const float* x, const float* inv, const float* shift, int64_t M,
                 int C) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (M * C > (1 << 15))
#endif
    for (int64_t r = 0; r < M; ++r) {
        const float* __restrict xr = x + r * C;
        float* __restrict o = out + r * C;
        for (int c = 0; c < C; ++c) o[c] = xr[c] * inv[c] + shift[c];
    }
}

}  // namespace

int64_t batchnorm_blocks(int64_t M) {
    return num_blocks(M);
}

void batchnorm_block_moments(double* part, const float* x, int64_t b0, int64_t b1, int64_t M,
                             int C) {
    double* pilot = scratch<double>((size_t)C);
    for (int c = 0; c < C; ++c) pilot[c] = (double)x[c];
    block_moments(part, x, pilot, b0, b1, M, C);
}

void batchnorm_statistics(float* mean, float* rstd, float* inv, float* shift, float* moving_mean,
                          float* moving_var, const double* part, const float* x, const float* gamma,
                          const float* beta, int64_t M, int C, double eps, double momentum,
                          bool training) {
    const float eps32 = (float)eps;
    float* var = scratch<float>((size_t)C);
    if (training) {
        const int64_t nb = num_blocks(M);
        double* total = scratch<double>(2 * (size_t)C);
        sum_blocks(total, part, nb, 2 * C);
        for (int c = 0; c < C; ++c) {
            const double d = total[c] / (double)M;  // mean - pilot
            mean[c] = (float)((double)x[c] + d);
            var[c] = (float)std::max(total[C + c] / (double)M - d * d, 0.0);
        }
        const float keep = (float)momentum, take = (float)(1.0 - momentum);
        for (int c = 0; c < C; ++c) {
            const float mm = moving_mean[c] * keep, bm = mean[c] * take;
            const float mv = moving_var[c] * keep, bv = var[c] * take;
            moving_mean[c] = mm + bm;
            moving_var[c] = mv + bv;
        }
    } else {
        for (int c = 0; c < C; ++c) {
            mean[c] = moving_mean[c];
            var[c] = moving_var[c];
        }
    }
    for (int c = 0; c < C; ++c) {
        rstd[c] = 1.0f / std::sqrt(var[c] + eps32);
        inv[c] = gamma ? rstd[c] * gamma[c] : rstd[c];
        const float m = mean[c] * inv[c];
        shift[c] = beta ? beta[c] - m : -m;
    }
}

void batchnorm_forward(float* out, float* mean, float* rstd, float* moving_mean, float* moving_var,
                       const float* inp, const float* gamma, const float* beta, int64_t M, int C,
                       double eps, double momentum, bool training) {
    CNNFAST_CHECK(M > 0 && C > 0, "batchnorm_forward: sizes must be positive");
    float* inv = coef_scratch(2 * (size_t)C);
    float* shift = inv + C;
    double* part = nullptr;
    if (training) {
        part = sums_scratch((size_t)num_blocks(M) * 2 * C);
        batchnorm_block_moments(part, inp, 0, num_blocks(M), M, C);
    }
    batchnorm_statistics(mean, rstd, inv, shift, moving_mean, moving_var, part, inp, gamma, beta, M,
                         C, eps, momentum, training);
    affine_rows(out, inp, inv, shift, M, C);
}

void batchnorm_grad_coefficients(float* k, float* a, float* b, float* dgamma, float* dbeta,
                                 const double* part, const float* rstd, const float* gamma,
                                 int64_t M, int C) {
    float* sd = scratch<float>(2 * (size_t)C);
    float* sx = sd + C;
    std::fill(sd, sd + 2 * C, 0.0f);  // the sums are zero without a part table
    if (part) {
        double* total = scratch<double>(2 * (size_t)C);
        sum_blocks(total, part, num_blocks(M), 2 * C);
        for (int c = 0; c < C; ++c) {
            sd[c] = (float)total[c];
            sx[c] = (float)total[C + c];
            if (dbeta) dbeta[c] = sd[c];
            if (dgamma) dgamma[c] = sx[c];
        }
    }
    const float invM = (float)(1.0 / (double)M);
    for (int c = 0; c < C; ++c) {
        k[c] = gamma ? gamma[c] * rstd[c] : rstd[c];
        a[c] = sd[c] * invM;
        b[c] = sx[c] * invM;
    }
}

CNNFAST_CLONES
void batchnorm_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                        const float* inp, const float* mean, const float* rstd, const float* gamma,
                        int64_t M, int C, bool training, bool relu_mask) {
    CNNFAST_CHECK(M > 0 && C > 0, "batchnorm_backward: sizes must be positive");
    const int64_t nb = num_blocks(M);
    const bool need_sums = dgamma || dbeta || (dinp && training);
    double* part = nullptr;
    if (need_sums) {
        part = sums_scratch((size_t)nb * 2 * C);
        block_grad_sums(part, dout, inp, mean, rstd, M, C);
    }
    // dinp = k * (dout - a - xhat * b) (training) or k * dout (inference), per channel.
    float* k = coef_scratch(3 * (size_t)C);
    float* a = k + C;
    float* b = a + C;
    batchnorm_grad_coefficients(k, a, b, dgamma, dbeta, part, rstd, gamma, M, C);
    if (!dinp) return;
    const float* __restrict kp = k;
    const float* __restrict ap = a;
    const float* __restrict bp = b;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (M * C > (1 << 15))
#endif
    for (int64_t r = 0; r < M; ++r) {
        const float* __restrict dr = dout + r * C;
        const float* __restrict xr = inp + r * C;
        float* __restrict o = dinp + r * C;
        if (training) {
            for (int c = 0; c < C; ++c) {
                const float xhat = (xr[c] - mean[c]) * rstd[c];
                o[c] = kp[c] * (dr[c] - ap[c] - xhat * bp[c]);
            }
        } else {
            for (int c = 0; c < C; ++c) o[c] = kp[c] * dr[c];
        }
        if (relu_mask)
            for (int c = 0; c < C; ++c) o[c] = xr[c] > 0.0f ? o[c] : 0.0f;
    }
}

}  // namespace cnnfast
