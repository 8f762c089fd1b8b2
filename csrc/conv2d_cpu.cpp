// conv2d_cpu.cpp -- Conv2D forward/backward as im2col + SGEMM.
//   inp (N,H,W,C)  weight (KH,KW,C,OC) == (K,OC) with K = KH*KW*C  out (N,OH,OW,OC) == (M,OC)
//   col (M,K), M = N*OH*OW:  out = col @ weight;  dweight = col^T @ dout;  dcol = dout @ weight^T
#include <cstring>

#include "conv2d.h"
#include "gemm.h"

namespace cnnfast {

static bool is_pointwise(const Conv2DParams& p) {
    return p.KH == 1 && p.KW == 1 && p.SH == 1 && p.SW == 1 && p.PT == 0 && p.PL == 0;
}

size_t conv2d_workspace_size(const Conv2DParams& p) {
    if (is_pointwise(p)) return 0;
    return (size_t)p.N * p.OH * p.OW * p.KH * p.KW * p.C;
}

static void im2col(float* col, const float* inp, const Conv2DParams& p) {
    const size_t K = (size_t)p.KH * p.KW * p.C;
    const int rows = p.N * p.OH * p.OW;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int r = 0; r < rows; ++r) {
        int n = r / (p.OH * p.OW), oh = (r / p.OW) % p.OH, ow = r % p.OW;
        float* dst = col + (size_t)r * K;
        for (int kh = 0; kh < p.KH; ++kh) {
            int ih = oh * p.SH + kh - p.PT;
            for (int kw = 0; kw < p.KW; ++kw) {
                int iw = ow * p.SW + kw - p.PL;
                float* d = dst + ((size_t)kh * p.KW + kw) * p.C;
                if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W)
                    std::memset(d, 0, sizeof(float) * p.C);
                else
                    std::memcpy(d, inp + (((size_t)n * p.H + ih) * p.W + iw) * p.C,
                                sizeof(float) * p.C);
            }
        }
    }
}

// dinp overwritten: sum of dcol rows into their input cells. Parallel over images (no races).
static void col2im(float* dinp, const float* col, const Conv2DParams& p) {
    const size_t K = (size_t)p.KH * p.KW * p.C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int n = 0; n < p.N; ++n) {
        float* di = dinp + (size_t)n * p.H * p.W * p.C;
        std::memset(di, 0, sizeof(float) * p.H * p.W * p.C);
        for (int oh = 0; oh < p.OH; ++oh)
            for (int ow = 0; ow < p.OW; ++ow) {
                const float* src = col + (((size_t)n * p.OH + oh) * p.OW + ow) * K;
                for (int kh = 0; kh < p.KH; ++kh) {
                    int ih = oh * p.SH + kh - p.PT;
                    if (ih < 0 || ih >= p.H) continue;
                    for (int kw = 0; kw < p.KW; ++kw) {
                        int iw = ow * p.SW + kw - p.PL;
                        if (iw < 0 || iw >= p.W) continue;
                        const float* s = src + ((size_t)kh * p.KW + kw) * p.C;
                        float* d = di + ((size_t)ih * p.W + iw) * p.C;
                        for (int c = 0; c < p.C; ++c) d[c] += s[c];
                    }
                }
            }
    }
}

void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const Conv2DParams& p, float* ws) {
    const int M = p.N * p.OH * p.OW, K = p.KH * p.KW * p.C;
    const float* col = inp;
    if (!is_pointwise(p)) {
        im2col(ws, inp, p);
        col = ws;
    }
    sgemm(false, false, M, p.OC, K, 1.0f, col, K, weight, p.OC, 0.0f, out, p.OC);
    if (bias) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
        for (int r = 0; r < M; ++r)
            for (int o = 0; o < p.OC; ++o) out[(size_t)r * p.OC + o] += bias[o];
    }
}

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, const Conv2DParams& p, float* ws) {
    const int M = p.N * p.OH * p.OW, K = p.KH * p.KW * p.C;
    if (dbias) {
        for (int o = 0; o < p.OC; ++o) dbias[o] = 0.0f;
        for (int r = 0; r < M; ++r)
            for (int o = 0; o < p.OC; ++o) dbias[o] += dout[(size_t)r * p.OC + o];
    }
    const bool pw = is_pointwise(p);
    const float* col = inp;
    if (!pw) {
        im2col(ws, inp, p);
        col = ws;
    }
    sgemm(true, false, K, p.OC, M, 1.0f, col, K, dout, p.OC, 0.0f, dweight, p.OC);
    if (!dinp) return;
    if (pw) {
        sgemm(false, true, M, K, p.OC, 1.0f, dout, p.OC, weight, p.OC, 0.0f, dinp, K);
        return;
    }
    sgemm(false, true, M, K, p.OC, 1.0f, dout, p.OC, weight, p.OC, 0.0f, ws, K);
    col2im(dinp, ws, p);
}

}  // namespace cnnfast
