// conv2d_dilated_cpu.cpp -- Conv2D with dilation > 1 as a dilated im2col + SGEMM, chunk by chunk.
//   col (M,K), M = N*OH*OW, K = KH*KW*C:  out = col @ weight;  dweight = col^T @ dout;
//   dcol = dout @ weight^T, scattered back by col2im.
// The batch goes in chunks of whole images whose col rows are ~512 KB (the size depends only on
// the layer's shape). As in conv2d_cpu.cpp: with two or more chunks each thread runs whole
// chunks (im2col into its own buffer, then a serial GEMM) in one parallel region; with one
// chunk, im2col/col2im and the GEMM are parallel inside it. The weight gradient is summed in at
// most DIL_GROUPS fixed groups of consecutive chunks (each in chunk order, into its own
// partial), then the partials in group order; sgemm splits C over threads, never K: the
// results are bit-identical for any thread count.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "conv2d_dilated.h"
#include "conv2d_taps.h"
#include "gemm.h"

namespace cnnfast {

static constexpr size_t DIL_CHUNK_FLOATS = 128 * 1024;
static constexpr int DIL_GROUPS = 8;

static int dilated_images_per_chunk(const Conv2DParams& g) {
    const size_t per_image = (size_t)g.OH * g.OW * g.KH * g.KW * g.C;
    size_t n = DIL_CHUNK_FLOATS / std::max<size_t>(per_image, 1);
    return (int)std::min<size_t>(std::max<size_t>(n, 1), (size_t)g.N);
}

static thread_local std::vector<float> t_dil_col;      // a chunk's im2col, per thread
static thread_local std::vector<float> t_dil_partial;  // weight-gradient partials of groups 1..

static size_t dilated_col_floats(const Conv2DParams& g) {
    return (size_t)dilated_images_per_chunk(g) * g.OH * g.OW * g.KH * g.KW * g.C;
}

// run(u, col) for u in [0, count): with one unit or one thread in order on this thread (the
// kernels inside parallel), otherwise whole units per thread in one parallel region, each on
// its own col buffer. A unit computes the same values either way.
template <typename Run>
static void for_each_dilated_unit(int count, const Conv2DParams& g, const Run& run) {
    const size_t col_n = dilated_col_floats(g);
    const int nt = in_parallel() || count < 2 ? 1 : std::min(num_threads(), count);
    if (nt == 1) {
        float* col = thread_scratch(t_dil_col, col_n);
        if (!col) throw std::bad_alloc();
        for (int u = 0; u < count; ++u) run(u, col);
        return;
    }
    std::atomic<bool> failed{false};
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
#endif
    for (int u = 0; u < count; ++u) {
        float* col = thread_scratch(t_dil_col, col_n);
        if (col)
            run(u, col);
        else
            failed.store(true, std::memory_order_relaxed);
    }
    if (failed.load()) throw std::bad_alloc();
}

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
    const int chunk = dilated_images_per_chunk(p), count = (p.N + chunk - 1) / chunk;
    for_each_dilated_unit(count, p, [&](int c, float* col) {
        const int n0 = c * chunk, nimg = std::min(chunk, p.N - n0);
        im2col_dilated(col, inp, dp, n0, nimg);
        sgemm_bias(false, false, nimg * rows_per_image, p.OC, K, 1.0f, col, K, weight, p.OC, 0.0f,
                   out + (size_t)n0 * rows_per_image * p.OC, p.OC, bias, relu);
    });
}

void conv2d_dilated_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                             const float* inp, const float* weight, const Conv2DDilatedParams& dp) {
    const Conv2DParams& p = dp.g;
    const int K = p.KH * p.KW * p.C, rows_per_image = p.OH * p.OW;
    if (dbias) column_sums(dbias, dout, p.N * rows_per_image, p.OC, p.OC, false);
    const int chunk = dilated_images_per_chunk(p), count = (p.N + chunk - 1) / chunk;
    const int G = std::min(count, DIL_GROUPS);  // fixed by the shape, not the threads
    const size_t KO = (size_t)K * p.OC;
    float* partial = nullptr;  // partials of groups 1..G-1; group 0 sums into dweight
    if (G > 1) {
        partial = thread_scratch(t_dil_partial, (G - 1) * KO);
        if (!partial) throw std::bad_alloc();
    }
    for_each_dilated_unit(G, p, [&](int g, float* col) {
        float* dw = g == 0 ? dweight : partial + (g - 1) * KO;
        const int c0 = g * count / G, c1 = (g + 1) * count / G;
        for (int c = c0; c < c1; ++c) {
            const int n0 = c * chunk, nimg = std::min(chunk, p.N - n0);
            const int rows = nimg * rows_per_image;
            const float* dout_c = dout + (size_t)n0 * rows_per_image * p.OC;
            im2col_dilated(col, inp, dp, n0, nimg);
            sgemm(true, false, K, p.OC, rows, 1.0f, col, K, dout_c, p.OC, c == c0 ? 0.0f : 1.0f, dw,
                  p.OC);
            if (!dinp) continue;
            sgemm(false, true, rows, K, p.OC, 1.0f, dout_c, p.OC, weight, p.OC, 0.0f, col, K);
            col2im_dilated(dinp, col, dp, n0, nimg);
        }
    });
    if (G > 1) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (KO * G > 65536 && !in_parallel())
#endif
        for (int64_t i = 0; i < (int64_t)KO; ++i) {
            float v = dweight[i];
            for (int g = 1; g < G; ++g) v += partial[(g - 1) * KO + i];
            dweight[i] = v;
        }
    }
}

}  // namespace cnnfast
