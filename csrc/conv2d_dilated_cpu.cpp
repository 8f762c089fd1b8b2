// conv2d_dilated_cpu.cpp -- Conv2D with dilation > 1 as a dilated im2col + SGEMM, chunk by chunk.
//   col (M,K), M = N*OH*OW, K = KH*KW*C:  out = col @ weight;  dweight = col^T @ dout;
//   dcol = dout @ weight^T, scattered back by col2im.
// The chunks, threads and weight-gradient groups are conv2d_cpu.cpp's (csrc/conv2d_chunks.h,
// on the kernel's taps KH x KW); the im2col scratch is per thread; sgemm splits C over threads,
// never K: the results are bit-identical for any thread count.
#include <algorithm>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "conv2d_chunks.h"
#include "conv2d_dilated.h"
#include "gemm.h"

namespace cnnfast {

using conv_chunks::Chunks;
using conv_chunks::chunks_of;

// col (nimg*OH*OW, K) overwritten from images [n0, n0+nimg); padding cells are zeros.
CNNFAST_CLONES static void im2col_dilated(float* col, const float* inp,
                                          const Conv2DDilatedParams& dp, int n0, int nimg) {
    const Conv2DParams& p = dp.g;
    const int K = p.KH * p.KW * p.C, lines = nimg * p.OH;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)lines * p.OW * K > 32768 && !in_parallel())
#endif
    for (int line = 0; line < lines; ++line) {
        const int n = n0 + line / p.OH, oh = line % p.OH;
        float* dst = col + (size_t)line * p.OW * K;
        for (int ow = 0; ow < p.OW; ++ow, dst += K)
            for (int kh = 0; kh < p.KH; ++kh) {
                const int ih = oh * p.SH + kh * dp.DH - p.PT;
                for (int kw = 0; kw < p.KW; ++kw) {
                    const int iw = ow * p.SW + kw * dp.DW - p.PL;
                    float* d = dst + ((size_t)kh * p.KW + kw) * p.C;
                    if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) {
                        for (int c = 0; c < p.C; ++c) d[c] = 0.0f;
                        continue;
                    }
                    const float* s = inp + (((size_t)n * p.H + ih) * p.W + iw) * p.C;
                    for (int c = 0; c < p.C; ++c) d[c] = s[c];
                }
            }
    }
}

// dinp images [n0, n0+nimg) overwritten with the sums of the dcol rows that read each cell.
// Parallel over images; each cell sums in (oh, ow, kh, kw) order whatever the thread count.
CNNFAST_CLONES static void col2im_dilated(float* dinp, const float* col,
                                          const Conv2DDilatedParams& dp, int n0, int nimg) {
    const Conv2DParams& p = dp.g;
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
                    const int ih = oh * p.SH + kh * dp.DH - p.PT;
                    if (ih < 0 || ih >= p.H) continue;
                    for (int kw = 0; kw < p.KW; ++kw) {
                        const int iw = ow * p.SW + kw * dp.DW - p.PL;
                        if (iw < 0 || iw >= p.W) continue;
                        const float* s = src + ((size_t)kh * p.KW + kw) * p.C;
                        float* d = di + ((size_t)ih * p.W + iw) * p.C;
                        for (int c = 0; c < p.C; ++c) d[c] += s[c];
                    }
                }
            }
    }
}

void conv2d_dilated_forward(float* out, const float* inp, const float* weight, const float* bias,
                            const Conv2DDilatedParams& dp, bool relu) {
    const Conv2DParams& p = dp.g;
    const int K = p.KH * p.KW * p.C, rows_per_image = p.OH * p.OW;
    const Chunks ch = chunks_of(p);
    conv_chunks::for_each_unit(
        ch.count, conv_chunks::col_floats(p), nullptr, [&](int c, float* col) {
            const int n0 = ch.first(c), nimg = ch.images(c, p.N);
            im2col_dilated(col, inp, dp, n0, nimg);
            sgemm_bias(false, false, nimg * rows_per_image, p.OC, K, 1.0f, col, K, weight, p.OC,
                       0.0f, out + (size_t)n0 * rows_per_image * p.OC, p.OC, bias, relu);
        });
}

void conv2d_dilated_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                             const float* inp, const float* weight, const Conv2DDilatedParams& dp) {
    const Conv2DParams& p = dp.g;
    const int K = p.KH * p.KW * p.C, rows_per_image = p.OH * p.OW;
    if (dbias) column_sums(dbias, dout, p.N * rows_per_image, p.OC, p.OC, false);
    const Chunks ch = chunks_of(p);
    const int G = std::min(ch.count, conv_chunks::kWeightGroups);  // fixed by the shape
    auto run_chunk = [&](int c, float* col, float* dw, bool first) {
        const int n0 = ch.first(c), nimg = ch.images(c, p.N);
        const int rows = nimg * rows_per_image;
        const float* dout_c = dout + (size_t)n0 * rows_per_image * p.OC;
        im2col_dilated(col, inp, dp, n0, nimg);
        sgemm(true, false, K, p.OC, rows, 1.0f, col, K, dout_c, p.OC, first ? 0.0f : 1.0f, dw,
              p.OC);
        if (!dinp) return;
        sgemm(false, true, rows, K, p.OC, 1.0f, dout_c, p.OC, weight, p.OC, 0.0f, col, K);
        col2im_dilated(dinp, col, dp, n0, nimg);
    };
    conv_chunks::for_each_group(ch.count, G, dweight, (size_t)K * p.OC, conv_chunks::col_floats(p),
                                nullptr, run_chunk);
}

}  // namespace cnnfast
