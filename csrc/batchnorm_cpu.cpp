// batchnorm_cpu.cpp -- BatchNormalization forward and backward over the last axis (see
// batchnorm.h for the formulas).
//   inp, out, dout, dinp (M,C); gamma, beta, mean, rstd, moving_mean, moving_var (C)
// Per-channel sums: parallel over fixed row blocks, each summed in double in row order into
// its own row of a (blocks, C) table, then the table is summed block by block. The blocks do
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

// Grow-only scratch of the calling thread (the kernels are called outside parallel regions):
// after the first step at the largest batch, a training step allocates nothing here.
template <class T>
T* scratch(size_t n) {
    static thread_local std::vector<T> buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

// part (blocks, C) overwritten: part[b][c] = sum over the rows r of block b of x[r][c] -
// shift[c] (shift nullptr = 0), squared when `square`.
CNNFAST_CLONES
void block_sums(double* part, const float* x, const float* shift, bool square, int64_t M, int C) {
    const int64_t nb = num_blocks(M);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nb > 1)
#endif
    for (int64_t b = 0; b < nb; ++b) {
        double* __restrict acc = part + b * C;
        for (int c = 0; c < C; ++c) acc[c] = 0.0;
        const int64_t r1 = std::min(M, (b + 1) * kBatchNormRows);
        for (int64_t r = b * kBatchNormRows; r < r1; ++r) {
            const float* __restrict xr = x + r * C;
            if (!shift) {
                for (int c = 0; c < C; ++c) acc[c] += (double)xr[c];
            } else {
                for (int c = 0; c < C; ++c) {
                    const double d = (double)(xr[c] - shift[c]);
                    acc[c] += square ? d * d : d;
                }
            }
        }
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

void batchnorm_forward(float* out, float* mean, float* rstd, float* moving_mean, float* moving_var,
                       const float* inp, const float* gamma, const float* beta, int64_t M, int C,
                       double eps, double momentum, bool training) {
    CNNFAST_CHECK(M > 0 && C > 0, "batchnorm_forward: sizes must be positive");
    const float eps32 = (float)eps;
    float* var = scratch<float>(3 * (size_t)C);
    float* inv = var + C;
    float* shift = inv + C;
    if (training) {
        const int64_t nb = num_blocks(M);
        double* part = scratch<double>((size_t)(nb + 1) * C);
        double* total = part + nb * C;
        block_sums(part, inp, nullptr, false, M, C);
        sum_blocks(total, part, nb, C);
        for (int c = 0; c < C; ++c) mean[c] = (float)(total[c] / (double)M);
        block_sums(part, inp, mean, true, M, C);
        sum_blocks(total, part, nb, C);
        for (int c = 0; c < C; ++c) var[c] = (float)(total[c] / (double)M);
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
    affine_rows(out, inp, inv, shift, M, C);
}

CNNFAST_CLONES
void batchnorm_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                        const float* inp, const float* mean, const float* rstd, const float* gamma,
                        int64_t M, int C, bool training) {
    CNNFAST_CHECK(M > 0 && C > 0, "batchnorm_backward: sizes must be positive");
    const int64_t nb = num_blocks(M);
    const bool need_sums = dgamma || dbeta || (dinp && training);
    float* sd = scratch<float>(5 * (size_t)C);  // then sx, k, a, b
    float* sx = sd + C;
    std::fill(sd, sd + 2 * C, 0.0f);  // read below only in training, where need_sums holds
    if (need_sums) {
        double* part = scratch<double>((size_t)(nb + 1) * 2 * C);
        double* total = part + nb * 2 * C;
        block_grad_sums(part, dout, inp, mean, rstd, M, C);
        sum_blocks(total, part, nb, 2 * C);
        for (int c = 0; c < C; ++c) {
            sd[c] = (float)total[c];
            sx[c] = (float)total[C + c];
            if (dbeta) dbeta[c] = sd[c];
            if (dgamma) dgamma[c] = sx[c];
        }
    }
    if (!dinp) return;
    // dinp = k * (dout - a - xhat * b) (training) or k * dout (inference), per channel.
    float* k = sx + C;
    float* a = k + C;
    float* b = a + C;
    const float invM = (float)(1.0 / (double)M);
    for (int c = 0; c < C; ++c) {
        k[c] = gamma ? gamma[c] * rstd[c] : rstd[c];
        a[c] = sd[c] * invM;
        b[c] = sx[c] * invM;
    }
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
    }
}

}  // namespace cnnfast
