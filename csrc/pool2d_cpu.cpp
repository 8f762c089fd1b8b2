// pool2d_cpu.cpp -- MaxPooling2D / AveragePooling2D forward and backward, NHWC.
//   inp (N,H,W,C)  out (N,OH,OW,C)  argmax (N,OH,OW,C) = flat spatial index ih*W+iw
// Padded cells are skipped: they never win a max and are not counted in an average (TF rule).
#include <algorithm>
#include <cstring>

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

void maxpool2d_backward(float* dinp, const float* dout, const int32_t* argmax,
                        const Pool2DParams& p) {
    const size_t img = (size_t)p.H * p.W * p.C, oimg = (size_t)p.OH * p.OW * p.C;
    const int HW = p.H * p.W;
    // Validate indices first: a bad argmax from Python must raise, not write out of bounds.
    for (size_t i = 0, n = (size_t)p.N * oimg; i < n; ++i)
        CNNFAST_CHECK(argmax[i] >= 0 && argmax[i] < HW, "maxpool2d_backward: argmax out of range");
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (p.N > 1)
#endif
    for (int n = 0; n < p.N; ++n) {
        float* di = dinp + (size_t)n * img;
        std::memset(di, 0, sizeof(float) * img);
        const float* d = dout + (size_t)n * oimg;
        const int32_t* a = argmax + (size_t)n * oimg;
        for (size_t o = 0; o < (size_t)p.OH * p.OW; ++o)
            for (int c = 0; c < p.C; ++c)
                di[(size_t)a[o * p.C + c] * p.C + c] += d[o * p.C + c];
    }
}

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

}  // namespace cnnfast
