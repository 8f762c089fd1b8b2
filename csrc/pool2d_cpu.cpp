// pool2d_cpu.cpp -- MaxPooling2D / AveragePooling2D forward and backward, NHWC.
//   inp (N,H,W,C)  out (N,OH,OW,C)  argmax (N,OH,OW,C) = flat spatial index ih*W+iw
// Padded cells are skipped: they never win a max and are not counted in an average (TF rule).
#include <algorithm>
#include <cstring>
#include <vector>

#include "pool2d.h"

namespace cnnfast {

// Window of output (oh,ow) clipped to the input: rows [h0,h1), cols [w0,w1).
struct Span {
    int h0, h1, w0, w1;
};
static inline Span window(const Pool2DParams& p, int oh, int ow) {
    int h0 = oh * p.SH - p.PT, w0 = ow * p.SW - p.PL;
    return {std::max(h0, 0), std::min(h0 + p.PH, p.H), std::max(w0, 0), std::min(w0 + p.PW, p.W)};
}

CNNFAST_CLONES
void maxpool2d_forward(float* out, int32_t* argmax, const float* inp, const Pool2DParams& p) {
    const int rows = p.N * p.OH;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows > 4)
#endif
    for (int r = 0; r < rows; ++r) {
        const int n = r / p.OH, oh = r % p.OH;
        const float* img = inp + (size_t)n * p.H * p.W * p.C;
        for (int ow = 0; ow < p.OW; ++ow) {
            const Span s = window(p, oh, ow);
            float* o = out + (((size_t)n * p.OH + oh) * p.OW + ow) * p.C;
            int32_t* a = argmax ? argmax + (((size_t)n * p.OH + oh) * p.OW + ow) * p.C : nullptr;
            // First cell in row-major scan initialises; later cells win only if strictly greater.
            const int first = s.h0 * p.W + s.w0;
            std::memcpy(o, img + (size_t)first * p.C, sizeof(float) * p.C);
            if (a) std::fill(a, a + p.C, first);
            for (int ih = s.h0; ih < s.h1; ++ih)
                for (int iw = s.w0; iw < s.w1; ++iw) {
                    const int idx = ih * p.W + iw;
                    const float* x = img + (size_t)idx * p.C;
                    if (a) {
                        // Selects, not a branch, on non-aliasing rows: the loop vectorises. A
                        // cell wins only if strictly greater: ties keep the first in scan order.
                        float* __restrict ov = o;
                        int32_t* __restrict av = a;
                        const float* __restrict xv = x;
                        const int C = p.C;  // hoisted: an int32 store could alias p.C
                        for (int c = 0; c < C; ++c) {
                            const float xc = xv[c], oc = ov[c];
                            const int32_t keep = -(int32_t)(xc > oc);  // all ones when greater
                            ov[c] = xc > oc ? xc : oc;
                            av[c] = (idx & keep) | (av[c] & ~keep);
                        }
                    } else {
                        for (int c = 0; c < p.C; ++c) o[c] = x[c] > o[c] ? x[c] : o[c];
                    }
                }
        }
    }
}

// Windows that tile the input (stride == pool, no leading padding) never overlap, so every input
// cell gets at most one contribution and is written once, with no zero-fill pass and no
// read-modify-write: the common 2x2/2 case. Other geometries scatter-add into a zeroed image.
// In both, a cell receives 0 + sum(dout) in window order, and the ReLU mask is applied to each
// contribution, which equals masking the sum (the mask is per cell).
CNNFAST_CLONES
void maxpool2d_backward(float* dinp, const float* dout, const int32_t* argmax,
                        const Pool2DParams& p, const float* relu_out) {
    const size_t img = (size_t)p.H * p.W * p.C, oimg = (size_t)p.OH * p.OW * p.C;
    const bool tiled = p.SH == p.PH && p.SW == p.PW && p.PT == 0 && p.PL == 0;
    const bool uncovered = (size_t)p.OH * p.SH < (size_t)p.H || (size_t)p.OW * p.SW < (size_t)p.W;
    const int C = p.C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (p.N > 1 && (size_t)p.N * img > 16384)
#endif
    for (int n = 0; n < p.N; ++n) {
        float* di = dinp + (size_t)n * img;
        const float* mk = relu_out ? relu_out + (size_t)n * oimg : nullptr;
        if (!tiled || uncovered) std::memset(di, 0, sizeof(float) * img);
        for (int oh = 0; oh < p.OH; ++oh)
            for (int ow = 0; ow < p.OW; ++ow) {
                const size_t o = (((size_t)oh * p.OW) + ow) * C;
                const float* __restrict d = dout + (size_t)n * oimg + o;
                const int32_t* __restrict a = argmax + (size_t)n * oimg + o;
                // The ReLU's output at the argmax cell is the pooled value itself: this pixel's
                // mask, read from the pooled output (a quarter of the input's size for 2x2).
                const float* __restrict m = mk ? mk + o : nullptr;
                const Span s = window(p, oh, ow);
                for (int ih = s.h0; ih < s.h1; ++ih)
                    for (int iw = s.w0; iw < s.w1; ++iw) {
                        const int32_t idx = ih * p.W + iw;
                        float* __restrict x = di + (size_t)idx * C;
                        // Branch-free: bit masks over values computed unconditionally, so
                        // the loops vectorise (GCC will not if-convert an int-conditioned float
                        // select, nor a conditional FP add under -ftrapping-math).
                        if (tiled) {
                            if (m)
                                for (int c = 0; c < C; ++c)
                                    x[c] = masked(0.0f + d[c], (a[c] == idx) & (m[c] > 0.0f));
                            else
                                for (int c = 0; c < C; ++c) x[c] = masked(0.0f + d[c], a[c] == idx);
                        } else {
                            if (m)
                                for (int c = 0; c < C; ++c)
                                    x[c] = x[c] + masked(d[c], (a[c] == idx) & (m[c] > 0.0f));
                            else
                                for (int c = 0; c < C; ++c) x[c] = x[c] + masked(d[c], a[c] == idx);
                        }
                    }
            }
    }
}

CNNFAST_CLONES
void avgpool2d_forward(float* out, const float* inp, const Pool2DParams& p) {
    const int rows = p.N * p.OH;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows > 4)
#endif
    for (int r = 0; r < rows; ++r) {
        const int n = r / p.OH, oh = r % p.OH;
        const float* img = inp + (size_t)n * p.H * p.W * p.C;
        for (int ow = 0; ow < p.OW; ++ow) {
            const Span s = window(p, oh, ow);
            float* o = out + (((size_t)n * p.OH + oh) * p.OW + ow) * p.C;
            std::fill(o, o + p.C, 0.0f);
            for (int ih = s.h0; ih < s.h1; ++ih)
                for (int iw = s.w0; iw < s.w1; ++iw) {
                    const float* x = img + ((size_t)ih * p.W + iw) * p.C;
                    for (int c = 0; c < p.C; ++c) o[c] += x[c];
                }
            const float count = (float)((s.h1 - s.h0) * (s.w1 - s.w0));
            for (int c = 0; c < p.C; ++c) o[c] /= count;
        }
    }
}

CNNFAST_CLONES
void avgpool2d_backward(float* dinp, const float* dout, const Pool2DParams& p) {
    const size_t img = (size_t)p.H * p.W * p.C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (p.N > 1)
#endif
    for (int n = 0; n < p.N; ++n) {
        float* di = dinp + (size_t)n * img;
        std::memset(di, 0, sizeof(float) * img);
        for (int oh = 0; oh < p.OH; ++oh)
            for (int ow = 0; ow < p.OW; ++ow) {
                const Span s = window(p, oh, ow);
                const float count = (float)((s.h1 - s.h0) * (s.w1 - s.w0));
                const float* d = dout + (((size_t)n * p.OH + oh) * p.OW + ow) * p.C;
                for (int ih = s.h0; ih < s.h1; ++ih)
                    for (int iw = s.w0; iw < s.w1; ++iw) {
                        float* x = di + ((size_t)ih * p.W + iw) * p.C;
                        for (int c = 0; c < p.C; ++c) x[c] += d[c] / count;
                    }
            }
    }
}

// ---- Global pooling: one image per iteration, channels innermost (contiguous, vectorised) ----

CNNFAST_CLONES
void global_avgpool2d_forward(float* out, const float* inp, int N, int HW, int C) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N > 1 && (size_t)N * HW * C > 16384)
#endif
    for (int n = 0; n < N; ++n) {
        const float* __restrict x = inp + (size_t)n * HW * C;
        float* __restrict o = out + (size_t)n * C;
        std::fill(o, o + C, 0.0f);
        for (int k = 0; k < HW; ++k)
            for (int c = 0; c < C; ++c) o[c] += x[(size_t)k * C + c];
        const float count = (float)HW;
        for (int c = 0; c < C; ++c) o[c] /= count;
    }
}

CNNFAST_CLONES
void global_avgpool2d_backward(float* dinp, const float* dout, int N, int HW, int C) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N > 1 && (size_t)N * HW * C > 16384)
#endif
    for (int n = 0; n < N; ++n) {
        const float* __restrict d = dout + (size_t)n * C;
        float* __restrict di = dinp + (size_t)n * HW * C;
        const float count = (float)HW;
        for (int c = 0; c < C; ++c) di[c] = d[c] / count;
        for (int k = 1; k < HW; ++k) std::memcpy(di + (size_t)k * C, di, sizeof(float) * C);
    }
}

CNNFAST_CLONES
void global_maxpool2d_forward(float* out, const float* inp, int N, int HW, int C) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N > 1 && (size_t)N * HW * C > 16384)
#endif
    for (int n = 0; n < N; ++n) {
        const float* __restrict x = inp + (size_t)n * HW * C;
        float* __restrict o = out + (size_t)n * C;
        std::memcpy(o, x, sizeof(float) * C);
        for (int k = 1; k < HW; ++k)
            for (int c = 0; c < C; ++c) {
                const float v = x[(size_t)k * C + c];
                o[c] = v > o[c] ? v : o[c];
            }
    }
}

CNNFAST_CLONES
void global_maxpool2d_backward(float* dinp, const float* dout, const float* inp, const float* out,
                               int N, int HW, int C) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N > 1 && (size_t)N * HW * C > 16384)
#endif
    for (int n = 0; n < N; ++n) {
        const float* __restrict x = inp + (size_t)n * HW * C;
        const float* __restrict o = out + (size_t)n * C;
        const float* __restrict d = dout + (size_t)n * C;
        float* __restrict di = dinp + (size_t)n * HW * C;
        // First pass: the ties of each channel (counted in float, exact up to 2^24 cells), in
        // the calling thread's grow-only buffer (no allocation per call once it has grown).
        float* __restrict g = thread_scratch<struct GlobalMaxTies, float>((size_t)C);
        std::fill(g, g + C, 0.0f);
        for (int k = 0; k < HW; ++k)
            for (int c = 0; c < C; ++c) g[c] += (float)(x[(size_t)k * C + c] == o[c]);
        // TF: indicators / num_selected * grad, in that order.
        for (int c = 0; c < C; ++c) g[c] = (1.0f / g[c]) * d[c];
        for (int k = 0; k < HW; ++k)
            for (int c = 0; c < C; ++c)
                di[(size_t)k * C + c] = masked(g[c], x[(size_t)k * C + c] == o[c]);
    }
}

// ---- ZeroPadding2D: row copies; one image per iteration ----

void zeropad2d_forward(float* out, const float* inp, int N, int H, int W, int C, int PT, int PB,
                       int PL, int PR) {
    const int OH = PT + H + PB, OW = PL + W + PR;
    const size_t orow = (size_t)OW * C, irow = (size_t)W * C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N > 1 && (size_t)N * OH * orow > 16384)
#endif
    for (int n = 0; n < N; ++n) {
        float* o = out + (size_t)n * OH * orow;
        const float* x = inp + (size_t)n * H * irow;
        std::memset(o, 0, sizeof(float) * (size_t)PT * orow);
        for (int h = 0; h < H; ++h) {
            float* r = o + (size_t)(PT + h) * orow;
            std::memset(r, 0, sizeof(float) * (size_t)PL * C);
            std::memcpy(r + (size_t)PL * C, x + (size_t)h * irow, sizeof(float) * irow);
            std::memset(r + (size_t)(PL + W) * C, 0, sizeof(float) * (size_t)PR * C);
        }
        std::memset(o + (size_t)(PT + H) * orow, 0, sizeof(float) * (size_t)PB * orow);
    }
}

void zeropad2d_backward(float* dinp, const float* dout, int N, int H, int W, int C, int PT, int PB,
                        int PL, int PR) {
    const int OH = PT + H + PB, OW = PL + W + PR;
    const size_t orow = (size_t)OW * C, irow = (size_t)W * C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (N > 1 && (size_t)N * H * irow > 16384)
#endif
    for (int n = 0; n < N; ++n)
        for (int h = 0; h < H; ++h)
            std::memcpy(dinp + ((size_t)n * H + h) * irow,
                        dout + ((size_t)n * OH + PT + h) * orow + (size_t)PL * C,
                        sizeof(float) * irow);
}

}  // namespace cnnfast
