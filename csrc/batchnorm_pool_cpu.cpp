// batchnorm_pool_cpu.cpp -- BatchNormalization [+ ReLU] + MaxPool2D in one pass each way (see
// batchnorm_pool.h for why the bits equal the unfused kernels').
//   inp, dinp (N,H,W,C)  out, argmax, xwin, dout, pooled (N,OH,OW,C)
#include <algorithm>
#include <cstring>
#include <vector>

#include "batchnorm.h"
#include "batchnorm_pool.h"

namespace cnnfast {

namespace {

// The calling thread's scratch (common.h's thread_scratch; called outside parallel regions):
// after the first step at the largest batch nothing is allocated here.
double* sums_scratch(size_t n) {
    return thread_scratch<struct BnPoolSums, double>(n);
}
float* coef_scratch(size_t n) {
    return thread_scratch<struct BnPoolCoefs, float>(n);
}

// (The loops live in the CNNFAST_CLONES functions below, which inline the per-window and
// per-cell templates into each ISA's clone.)

// BN's output at one cell, as batchnorm_forward (then activation_forward's ReLU) computes it.
template <bool Relu>
inline float normalised(float x, float inv, float shift) {
    const float y = x * inv + shift;
    return Relu ? (y > 0.0f ? y : 0.0f) : y;
}

// One window (rows [h0, h1), columns [w0, w1) of image img), cell by cell: maxpool2d_forward's
// scan, the first cell initialises and a later one wins only if strictly greater (ties keep
// the first).
template <bool Relu, bool Arg>
inline void window_max(float* __restrict o, int32_t* __restrict a, float* __restrict w,
                       const float* img, const float* __restrict inv, const float* __restrict shift,
                       int h0, int h1, int w0, int w1, int W, int C) {
    const int first = h0 * W + w0;
    const float* __restrict xf = img + (size_t)first * C;
    for (int c = 0; c < C; ++c) o[c] = normalised<Relu>(xf[c], inv[c], shift[c]);
    if (Arg)
        for (int c = 0; c < C; ++c) a[c] = first, w[c] = xf[c];
    for (int ih = h0; ih < h1; ++ih)
        for (int iw = w0; iw < w1; ++iw) {
            const int idx = ih * W + iw;
            const float* __restrict x = img + (size_t)idx * C;
            for (int c = 0; c < C; ++c) {
                const float y = normalised<Relu>(x[c], inv[c], shift[c]), oc = o[c];
                const bool win = y > oc;
                o[c] = win ? y : oc;
                if (Arg) {
                    const int32_t keep = -(int32_t)win;  // all ones when greater
                    a[c] = (idx & keep) | (a[c] & ~keep);
                    w[c] = select_bits(win, x[c], w[c]);
                }
            }
        }
}

// The same scan over a whole 2x2 window, cells x0 x1 (top row) x2 x3 at flat indices i0..i3:
// one pass over the channels with the running max, argmax and x in registers. (Comparing the
// first cell with itself, as the general scan does, changes nothing: y > y is false.)
template <bool Relu, bool Arg>
inline void window_2x2(float* __restrict o, int32_t* __restrict a, float* __restrict w,
                       const float* __restrict x0, const float* __restrict x1,
                       const float* __restrict x2, const float* __restrict x3, int i0, int W,
                       const float* __restrict inv, const float* __restrict shift, int C) {
    const int i1 = i0 + 1, i2 = i0 + W, i3 = i0 + W + 1;
    for (int c = 0; c < C; ++c) {
        float om = normalised<Relu>(x0[c], inv[c], shift[c]), xm = x0[c];
        int32_t am = i0;
#define CNNFAST_CELL(X, I)                                                  \
    {                                                                       \
        const float y = normalised<Relu>(X[c], inv[c], shift[c]);           \
        const bool win = y > om;                                            \
        om = win ? y : om;                                                  \
        if (Arg) {                                                          \
            const int32_t keep = -(int32_t)win; /* all ones when greater */ \
            am = (I & keep) | (am & ~keep);                                 \
            xm = select_bits(win, X[c], xm);                                \
        }                                                                   \
    }
        CNNFAST_CELL(x1, i1)
        CNNFAST_CELL(x2, i2)
        CNNFAST_CELL(x3, i3)
#undef CNNFAST_CELL
        o[c] = om;
        if (Arg) a[c] = am, w[c] = xm;
    }
}

template <bool Relu, bool Arg>
inline void pool_window(float* o, int32_t* a, float* w, const float* img, const float* inv,
                        const float* shift, int h0, int h1, int w0, int w1, int W, int C) {
    if (h1 - h0 == 2 && w1 - w0 == 2) {
        const float* x0 = img + ((size_t)h0 * W + w0) * C;
        const float* x2 = x0 + (size_t)W * C;
        window_2x2<Relu, Arg>(o, a, w, x0, x0 + C, x2, x2 + C, h0 * W + w0, W, inv, shift, C);
    } else {
        window_max<Relu, Arg>(o, a, w, img, inv, shift, h0, h1, w0, w1, W, C);
    }
}

CNNFAST_CLONES static void forward_rows(float* out, int32_t* argmax, float* xwin, const float* inp,
                                        const float* inv, const float* shift, bool relu,
                                        const Pool2DParams& p) {
    const int rows = p.N * p.OH;
    const int C = p.C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows > 4)
#endif
    for (int r = 0; r < rows; ++r) {
        const int n = r / p.OH, oh = r % p.OH;
        const float* img = inp + (size_t)n * p.H * p.W * C;
        const int h0 = oh * p.SH, h1 = std::min(h0 + p.PH, p.H);
        for (int ow = 0; ow < p.OW; ++ow) {
            const int w0 = ow * p.SW, w1 = std::min(w0 + p.PW, p.W);
            const size_t q = (((size_t)n * p.OH + oh) * p.OW + ow) * C;
            float* o = out + q;
            if (argmax && relu)
                pool_window<true, true>(o, argmax + q, xwin + q, img, inv, shift, h0, h1, w0, w1,
                                        p.W, C);
            else if (argmax)
                pool_window<false, true>(o, argmax + q, xwin + q, img, inv, shift, h0, h1, w0, w1,
                                         p.W, C);
            else if (relu)
                pool_window<true, false>(o, nullptr, nullptr, img, inv, shift, h0, h1, w0, w1, p.W,
                                         C);
            else
                pool_window<false, false>(o, nullptr, nullptr, img, inv, shift, h0, h1, w0, w1, p.W,
                                          C);
        }
    }
}

// The gradient of BN's output at a cell: the pooled gradient of the cell's window where the
// cell is the window's argmax (and the ReLU's output there, the pooled value, is > 0), else 0.
// What both backward passes read of one window, for the cell at flat spatial index idx.
struct Cell {
    const float* d;    // the window's pooled gradient
    const int32_t* a;  // its argmax
    const float* w;    // its xwin (the sums only)
    const float* m;    // its pooled values (the ReLU mask) or nullptr
    int32_t idx;       // the cell's flat spatial index ih * W + iw
};

template <bool Mask>
inline float cell_grad(const Cell& e, int c) {
    const bool keep = Mask ? (e.a[c] == e.idx) & (e.m[c] > 0.0f) : e.a[c] == e.idx;
    return masked(0.0f + e.d[c], keep);
}

// The sums' terms of the cells [iw0, iw1) of image row (n, ih), in row order. In each window
// at most one of them is nonzero per channel, the argmax's, if the argmax lies among them;
// the others add 0, so each window adds one masked term per channel: its argmax cell's if
// that cell is in [lo, hi), else 0. xhat is taken from xwin, the x of that cell.
template <bool Mask>
inline void row_sums(double* __restrict sd, double* __restrict sx, const float* dout,
                     const int32_t* argmax, const float* xwin, const float* pooled,
                     const float* __restrict mean, const float* __restrict rstd,
                     const Pool2DParams& p, int n, int ih, int iw0, int iw1) {
    const int oh = ih / p.SH;
    if (oh >= p.OH) return;  // a row no window covers: every term is 0
    const int C = p.C;
    const size_t rowq = ((size_t)n * p.OH + oh) * p.OW;
    const int ow1 = std::min(p.OW, (iw1 + p.SW - 1) / p.SW);
    for (int ow = iw0 / p.SW; ow < ow1; ++ow) {
        const int lo = std::max(iw0, ow * p.SW), hi = std::min(iw1, ow * p.SW + p.SW);
        const uint32_t first = (uint32_t)(ih * p.W + lo), width = (uint32_t)(hi - lo);
        const size_t q = (rowq + ow) * C;
        const float* __restrict d = dout + q;
        const int32_t* __restrict am = argmax + q;
        const float* __restrict w = xwin + q;
        const float* __restrict m = Mask ? pooled + q : nullptr;
        for (int c = 0; c < C; ++c) {
            const bool here = (uint32_t)am[c] - first < width;
            const float dr = masked(0.0f + d[c], Mask ? here & (m[c] > 0.0f) : here);
            const float xhat = (w[c] - mean[c]) * rstd[c];
            sd[c] += (double)dr;
            sx[c] += (double)(dr * xhat);
        }
    }
}

// part (blocks, 2C) overwritten: batchnorm_backward's per-block sums of dout and dout * xhat over
// BN's output gradient, taken over the cells in the same row blocks and row order. A cell that
// is not its window's argmax adds 0 (and 0 * xhat), which leaves the sums unchanged, so xhat is
// taken from xwin, the x of the window's argmax: the value at the cells whose terms count.
CNNFAST_CLONES static void grad_sums(double* part, const float* dout, const int32_t* argmax,
                                     const float* xwin, const float* pooled, const float* mean,
                                     const float* rstd, const Pool2DParams& p) {
    const int C = p.C;
    const int64_t HW = (int64_t)p.H * p.W, M = p.N * HW;
    const int64_t nb = batchnorm_blocks(M);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nb > 1)
#endif
    for (int64_t b = 0; b < nb; ++b) {
        double* sd = part + b * 2 * C;
        double* sx = sd + C;
        for (int c = 0; c < 2 * C; ++c) sd[c] = 0.0;
        const int64_t r1 = std::min(M, (b + 1) * kBatchNormRows);
        for (int64_t r = b * kBatchNormRows; r < r1;) {  // a piece of one image row at a time
            const int n = (int)(r / HW), pix = (int)(r % HW);
            const int ih = pix / p.W, iw0 = pix % p.W;
            const int iw1 = (int)std::min<int64_t>(p.W, iw0 + (r1 - r));
            if (pooled)
                row_sums<true>(sd, sx, dout, argmax, xwin, pooled, mean, rstd, p, n, ih, iw0, iw1);
            else
                row_sums<false>(sd, sx, dout, argmax, xwin, pooled, mean, rstd, p, n, ih, iw0, iw1);
            r += iw1 - iw0;
        }
    }
}

// One cell of dinp = k * (g - a - xhat * b) (training) or k * g, then times the ReLU derivative
// (inp > 0) when Relu: batchnorm_backward's row pass, g the cell's gradient.
template <bool Training, bool Relu>
inline float dinp_value(float g, float x, float mean, float rstd, float k, float a, float b) {
    float v;
    if (Training) {
        const float xhat = (x - mean) * rstd;
        v = k * (g - a - xhat * b);
    } else {
        v = k * g;
    }
    return Relu ? select_bits(x > 0.0f, v, 0.0f) : v;
}

// One image row (n, ih) of dinp, window by window (a window is SW cells wide: the windows tile),
// g from cell_grad; then the cells no window covers, where g = 0.
template <bool Mask, bool Training, bool Relu>
inline void row_dinp(float* __restrict o, const float* __restrict xr, const float* dout,
                     const int32_t* argmax, const float* pooled, const float* __restrict mean,
                     const float* __restrict rstd, const float* __restrict k,
                     const float* __restrict a, const float* __restrict b, const Pool2DParams& p,
                     int n, int ih) {
    const int C = p.C;
    const int oh = ih / p.SH;
    int iw = 0;
    if (oh < p.OH) {
        const size_t rowq = ((size_t)n * p.OH + oh) * p.OW;
        for (int ow = 0; ow < p.OW; ++ow) {
            const size_t q = (rowq + ow) * C;
            Cell e{dout + q, argmax + q, nullptr, pooled ? pooled + q : nullptr, 0};
            for (const int iw1 = std::min(iw + p.SW, p.W); iw < iw1; ++iw, o += C, xr += C) {
                e.idx = ih * p.W + iw;
                for (int c = 0; c < C; ++c)
                    o[c] = dinp_value<Training, Relu>(cell_grad<Mask>(e, c), xr[c], mean[c],
                                                      rstd[c], k[c], a[c], b[c]);
            }
        }
    }
    for (; iw < p.W; ++iw, o += C, xr += C)
        for (int c = 0; c < C; ++c)
            o[c] = dinp_value<Training, Relu>(0.0f, xr[c], mean[c], rstd[c], k[c], a[c], b[c]);
}

CNNFAST_CLONES static void dinp_rows(float* dinp, const float* dout, const int32_t* argmax,
                                     const float* pooled, const float* inp, const float* mean,
                                     const float* rstd, const float* k, const float* a,
                                     const float* b, const Pool2DParams& p, bool training,
                                     bool relu) {
    const int rows = p.N * p.H;
    const size_t row = (size_t)p.W * p.C;
    const int kind = (pooled ? 4 : 0) | (training ? 2 : 0) | (relu ? 1 : 0);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((int64_t)rows * (int64_t)row > (1 << 15))
#endif
    for (int r = 0; r < rows; ++r) {
        const int n = r / p.H, ih = r % p.H;
        float* o = dinp + r * row;
        const float* xr = inp + r * row;
#define CNNFAST_ROW(M, T, R) \
    row_dinp<M, T, R>(o, xr, dout, argmax, pooled, mean, rstd, k, a, b, p, n, ih)
        switch (kind) {
            case 0: CNNFAST_ROW(false, false, false); break;
            case 1: CNNFAST_ROW(false, false, true); break;
            case 2: CNNFAST_ROW(false, true, false); break;
            case 3: CNNFAST_ROW(false, true, true); break;
            case 4: CNNFAST_ROW(true, false, false); break;
            case 5: CNNFAST_ROW(true, false, true); break;
            case 6: CNNFAST_ROW(true, true, false); break;
            default: CNNFAST_ROW(true, true, true); break;
        }
#undef CNNFAST_ROW
    }
}

}  // namespace

void batchnorm_maxpool_apply(float* out, int32_t* argmax, float* xwin, const float* inp,
                             const float* inv, const float* shift, bool relu,
                             const Pool2DParams& p) {
    CNNFAST_CHECK(pool_windows_tile(p), "batchnorm_maxpool_apply: the windows must tile");
    CNNFAST_CHECK(!argmax == !xwin, "batchnorm_maxpool_apply: argmax and xwin go together");
    forward_rows(out, argmax, xwin, inp, inv, shift, relu, p);
}

void batchnorm_maxpool_forward(float* out, int32_t* argmax, float* xwin, float* mean, float* rstd,
                               float* moving_mean, float* moving_var, const float* inp,
                               const float* gamma, const float* beta, double eps, double momentum,
                               bool training, bool relu, const Pool2DParams& p,
                               const double* part) {
    const int C = p.C;
    const int64_t M = (int64_t)p.N * p.H * p.W;
    if (training && !part) {
        double* sums = sums_scratch((size_t)batchnorm_blocks(M) * 2 * C);
        batchnorm_block_moments(sums, inp, 0, batchnorm_blocks(M), M, C);
        part = sums;
    }
    float* inv = coef_scratch(2 * (size_t)C);
    float* shift = inv + C;
    batchnorm_statistics(mean, rstd, inv, shift, moving_mean, moving_var, part, inp, gamma, beta, M,
                         C, eps, momentum, training);
    batchnorm_maxpool_apply(out, argmax, xwin, inp, inv, shift, relu, p);
}

void batchnorm_maxpool_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                                const int32_t* argmax, const float* xwin, const float* pooled,
                                const float* inp, const float* mean, const float* rstd,
                                const float* gamma, const Pool2DParams& p, bool training,
                                bool relu_mask) {
    CNNFAST_CHECK(pool_windows_tile(p), "batchnorm_maxpool_backward: the windows must tile");
    const int C = p.C;
    const int64_t M = (int64_t)p.N * p.H * p.W;
    const bool need_sums = dgamma || dbeta || (dinp && training);
    double* part = nullptr;
    if (need_sums) {
        part = sums_scratch((size_t)batchnorm_blocks(M) * 2 * C);
        grad_sums(part, dout, argmax, xwin, pooled, mean, rstd, p);
    }
    float* k = coef_scratch(3 * (size_t)C);
    float* a = k + C;
    float* b = a + C;
    batchnorm_grad_coefficients(k, a, b, dgamma, dbeta, part, rstd, gamma, M, C);
    if (!dinp) return;
    dinp_rows(dinp, dout, argmax, pooled, inp, mean, rstd, k, a, b, p, training, relu_mask);
}

}  // namespace cnnfast
