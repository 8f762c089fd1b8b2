// conv2d_cpu.cpp -- Conv2D forward/backward as im2col + SGEMM. Layers with few taps (K <= 24
// for the weight gradient, K <= 11 for the forward) go to conv2d_taps_cpu.cpp instead.
//   inp (N,H,W,C)  weight (KH,KW,C,OC) == (K,OC) with K = KH*KW*C  out (N,OH,OW,OC) == (M,OC)
//   col (M,K), M = N*OH*OW:  out = col @ weight;  dweight = col^T @ dout;  dcol = dout @ weight^T
//
// The batch goes in chunks of whole images, whole chunks per thread, and the weight gradient
// in fixed groups of chunks (csrc/conv2d_chunks.h, shared with conv2d_dilated_cpu.cpp): the
// results are bit-identical for any number of threads.
#include <algorithm>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "conv2d.h"
#include "conv2d_chunks.h"
#include "conv2d_taps.h"
#include "gemm.h"
#include "winograd.h"

namespace cnnfast {

using conv_chunks::Chunks;
using conv_chunks::chunks_of;

size_t conv2d_workspace_size(const Conv2DParams& p) {
    if (is_pointwise(p)) return 0;
    return conv_chunks::col_floats(p);
}

// Short copies (often 3-96 floats): restrict lets the compiler skip its run-time overlap check.
CNNFAST_NO_MEMCPY_IDIOM static inline void copy_floats(float* __restrict d,
                                                       const float* __restrict s, int n) {
    for (int i = 0; i < n; ++i) d[i] = s[i];
}

CNNFAST_NO_MEMCPY_IDIOM static inline void zero_floats(float* d, int n) {
    for (int i = 0; i < n; ++i) d[i] = 0.0f;
}

// col (nimg*OH*OW, K) overwritten from images [n0, n0+nimg) of inp.
// Walks output lines (n, oh) so there is no division per pixel, and copies each kernel row as
// one run of KW*C floats when it lies inside the image (input pixels iw..iw+KW-1 are adjacent
// in NHWC). With C=1 (the first layer) per-pixel overhead, not bandwidth, is what costs.
CNNFAST_CLONES CNNFAST_NO_MEMCPY_IDIOM static void im2col(float* col, const float* inp,
                                                          const Conv2DParams& p, int n0, int nimg) {
    const int K = p.KH * p.KW * p.C, seg = p.KW * p.C;
    const int lines = nimg * p.OH;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)lines * p.OW * K > 32768 && !in_parallel())
#endif
    for (int line = 0; line < lines; ++line) {
        const int n = n0 + line / p.OH, oh = line % p.OH;
        float* dst = col + (size_t)line * p.OW * K;
        for (int ow = 0; ow < p.OW; ++ow, dst += K) {
            const int iw0 = ow * p.SW - p.PL;
            const bool inside_w = iw0 >= 0 && iw0 + p.KW <= p.W;
            for (int kh = 0; kh < p.KH; ++kh) {
                const int ih = oh * p.SH + kh - p.PT;
                float* d = dst + (size_t)kh * seg;
                if (ih < 0 || ih >= p.H) {  // the whole kernel row is in the padding
                    zero_floats(d, seg);
                    continue;
                }
                const float* row = inp + ((size_t)n * p.H + ih) * p.W * p.C;
                if (inside_w) {
                    copy_floats(d, row + (size_t)iw0 * p.C, seg);
                    continue;
                }
                for (int kw = 0; kw < p.KW; ++kw) {
                    const int iw = iw0 + kw;
                    float* dk = d + (size_t)kw * p.C;
                    if (iw < 0 || iw >= p.W)
                        zero_floats(dk, p.C);
                    else
                        copy_floats(dk, row + (size_t)iw * p.C, p.C);
                }
            }
        }
    }
}

// dinp images [n0, n0+nimg) overwritten with the sum of the dcol rows that read each input cell.
// Parallel over images: no two threads write the same cell, and each cell sums in a fixed order.
CNNFAST_CLONES
static void col2im(float* dinp, const float* col, const Conv2DParams& p, int n0, int nimg) {
    const size_t K = (size_t)p.KH * p.KW * p.C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nimg > 1 && !in_parallel())
#endif
    for (int i = 0; i < nimg; ++i) {
        float* di = dinp + (size_t)(n0 + i) * p.H * p.W * p.C;
        std::memset(di, 0, sizeof(float) * p.H * p.W * p.C);
        for (int oh = 0; oh < p.OH; ++oh)
            for (int ow = 0; ow < p.OW; ++ow) {
                const float* src = col + (((size_t)i * p.OH + oh) * p.OW + ow) * K;
                for (int kh = 0; kh < p.KH; ++kh) {
                    const int ih = oh * p.SH + kh - p.PT;
                    if (ih < 0 || ih >= p.H) continue;
                    for (int kw = 0; kw < p.KW; ++kw) {
                        const int iw = ow * p.SW + kw - p.PL;
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
                    const Conv2DParams& p, float* ws, bool relu) {
    const int K = p.KH * p.KW * p.C, rows_per_image = p.OH * p.OW;
    if (use_winograd(p)) {  // 3x3 stride 1 (csrc/winograd_cpu.cpp, docs/winograd.md)
        winograd_forward(out, inp, weight, bias, p, relu);
        return;
    }
    if (conv2d_forward_small_k(out, inp, weight, bias, p, relu)) return;
    if (is_pointwise(p)) {  // inp (N*H*W, C) already is col: no copy at all
        sgemm_bias(false, false, p.N * rows_per_image, p.OC, K, 1.0f, inp, K, weight, p.OC, 0.0f,
                   out, p.OC, bias, relu);
        return;
    }
    const Chunks ch = chunks_of(p);
    // The bias (and ReLU) are applied in the GEMM epilogue while the output tile is in registers.
    auto run = [&](int c, float* col) {
        const int n0 = ch.first(c), nimg = ch.images(c, p.N);
        im2col(col, inp, p, n0, nimg);
        sgemm_bias(false, false, nimg * rows_per_image, p.OC, K, 1.0f, col, K, weight, p.OC, 0.0f,
                   out + (size_t)n0 * rows_per_image * p.OC, p.OC, bias, relu);
    };
    conv_chunks::for_each_unit(ch.count, conv2d_workspace_size(p), ws, run);
}

// dinp overwritten with the input gradient, chunk by chunk: dcol = dout(chunk) @ weight^T into
// the chunk's buffer, scattered into the chunk's own images by col2im (no im2col of inp).
static void direct_input_grad(float* dinp, const float* dout, const float* weight,
                              const Conv2DParams& p, float* ws) {
    const int K = p.KH * p.KW * p.C, rows_per_image = p.OH * p.OW;
    const Chunks ch = chunks_of(p);
    auto run_chunk = [&](int c, float* col, float*, bool) {
        const int n0 = ch.first(c), nimg = ch.images(c, p.N);
        const float* dout_c = dout + (size_t)n0 * rows_per_image * p.OC;
        sgemm(false, true, nimg * rows_per_image, K, p.OC, 1.0f, dout_c, p.OC, weight, p.OC, 0.0f,
              col, K);
        col2im(dinp, col, p, n0, nimg);
    };
    conv_chunks::for_each_group(ch.count, ch.count, nullptr, (size_t)K * p.OC,
                                conv2d_workspace_size(p), ws, run_chunk);
}

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const Conv2DParams& p, float* ws) {
    const int M = p.N * p.OH * p.OW, K = p.KH * p.KW * p.C, rows_per_image = p.OH * p.OW;
    // 3x3 stride 1 (csrc/winograd_cpu.cpp, docs/winograd.md#when-auto-picks-winograd): the
    // weight gradient and the input gradient each by Winograd or direct.
    const bool wino_dx = dinp && use_winograd_backward(p);
    if (use_winograd_weight(p, dinp != nullptr)) {
        winograd_backward_weight(dweight, dbias, dout, inp, p);
        if (!dinp) return;
        if (wino_dx) {
            winograd_backward_input(dinp, dout, weight, p);
            return;
        }
        // Auto: the direct input gradient (dcol = dout @ weight^T, col2im), which needs no
        // im2col of inp: the chunk loop below with the weight gradient already done.
        direct_input_grad(dinp, dout, weight, p, ws);
        return;
    }
    if (wino_dx) {  // weight gradient direct, input gradient Winograd
        conv2d_backward(nullptr, dweight, dbias, dout, inp, weight, p, ws);
        winograd_backward_input(dinp, dout, weight, p);
        return;
    }
    // Few taps: the weight gradient without im2col (the same whether or not dinp is wanted).
    const bool small_k = use_small_k_dw(p);
    if (small_k) {
        conv2d_dw_small_k(dweight, dbias, dout, inp, p);
        if (!dinp) return;
    } else if (dbias) {
        column_sums(dbias, dout, M, p.OC, p.OC, false);
    }
    if (is_pointwise(p)) {
        sgemm(true, false, K, p.OC, M, 1.0f, inp, K, dout, p.OC, 0.0f, dweight, p.OC);
        if (dinp) sgemm(false, true, M, K, p.OC, 1.0f, dout, p.OC, weight, p.OC, 0.0f, dinp, K);
        return;
    }
    // Per chunk: col = im2col(chunk); the group's partial += col^T @ dout(chunk); then col is
    // reused for dcol = dout(chunk) @ weight^T, scattered into the chunk's own images by col2im.
    // With the weight gradient already done (small_k) a group is one chunk and only dcol runs.
    const Chunks ch = chunks_of(p);
    const int G = small_k ? ch.count : std::min(ch.count, conv_chunks::kWeightGroups);
    auto run_chunk = [&](int c, float* col, float* dw, bool first) {
        const int n0 = ch.first(c), nimg = ch.images(c, p.N);
        const int rows = nimg * rows_per_image;
        const float* dout_c = dout + (size_t)n0 * rows_per_image * p.OC;
        if (dw) {
            im2col(col, inp, p, n0, nimg);
            sgemm(true, false, K, p.OC, rows, 1.0f, col, K, dout_c, p.OC, first ? 0.0f : 1.0f, dw,
                  p.OC);
        }
        if (!dinp) return;
        sgemm(false, true, rows, K, p.OC, 1.0f, dout_c, p.OC, weight, p.OC, 0.0f, col, K);
        col2im(dinp, col, p, n0, nimg);
    };
    conv_chunks::for_each_group(ch.count, G, small_k ? nullptr : dweight, (size_t)K * p.OC,
                                conv2d_workspace_size(p), ws, run_chunk);
}

}  // namespace cnnfast