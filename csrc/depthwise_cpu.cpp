// depthwise_cpu.cpp -- DepthwiseConv2D forward and backward, direct loops (see depthwise.h).
// Weights of one tap (kh, kw) are (C, DM) == OC consecutive floats in output-channel order, so
// every inner loop runs over the OC (or C) contiguous channels of one pixel: per-lane
// arithmetic, no reductions across lanes, the same values in the AVX2 and baseline clones.
#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "depthwise.h"

namespace cnnfast {

static constexpr int DW_GROUPS_DEPTHWISE = 16;

// out[o] += x[c] * w[o] for o = c*DM + m.
CNNFAST_CLONES static inline void tap_accumulate(float* __restrict acc, const float* __restrict x,
                                                 const float* __restrict w, int C, int DM) {
    if (DM == 1) {
        for (int c = 0; c < C; ++c) acc[c] += x[c] * w[c];
        return;
    }
    for (int c = 0; c < C; ++c) {
        const float v = x[c];
        float* a = acc + (size_t)c * DM;
        const float* wc = w + (size_t)c * DM;
        for (int m = 0; m < DM; ++m) a[m] += v * wc[m];
    }
}

CNNFAST_CLONES static void forward_rows(float* out, const float* inp, const float* weight,
                                        const float* bias, const DepthwiseParams& p, bool relu) {
    const int OC = p.OC(), lines = p.N * p.OH;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)lines * p.OW * OC * p.KH * p.KW > 32768 && \
                                                  !in_parallel())
#endif
    for (int line = 0; line < lines; ++line) {
        const int n = line / p.OH, oh = line % p.OH;
        float* o = out + (size_t)line * p.OW * OC;
        for (int ow = 0; ow < p.OW; ++ow, o += OC) {
            for (int k = 0; k < OC; ++k) o[k] = bias ? bias[k] : 0.0f;
            for (int kh = 0; kh < p.KH; ++kh) {
                const int ih = oh * p.SH + kh * p.DH - p.PT;
                if (ih < 0 || ih >= p.H) continue;
                const float* row = inp + ((size_t)n * p.H + ih) * p.W * p.C;
                for (int kw = 0; kw < p.KW; ++kw) {
                    const int iw = ow * p.SW + kw * p.DW - p.PL;
                    if (iw < 0 || iw >= p.W) continue;
                    tap_accumulate(o, row + (size_t)iw * p.C,
                                   weight + ((size_t)kh * p.KW + kw) * OC, p.C, p.DM);
                }
            }
            if (relu)  // activation_forward's ReLU (NaN and -0 give +0)
                for (int k = 0; k < OC; ++k) o[k] = o[k] > 0.0f ? o[k] : 0.0f;
        }
    }
}

// The output index of input index i through tap offset t (= k*D - P) with stride s, or -1.
static inline int source_out(int i, int t, int s, int out_size) {
    const int u = i - t;
    if (u < 0 || u % s) return -1;
    const int o = u / s;
    return o < out_size ? o : -1;
}

CNNFAST_CLONES static void depthwise_dinp(float* dinp, const float* dout, const float* weight,
                                          const DepthwiseParams& p) {
    const int OC = p.OC(), lines = p.N * p.H;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if ((size_t)lines * p.W * OC * p.KH * p.KW > 32768 && \
                                                  !in_parallel())
#endif
    for (int line = 0; line < lines; ++line) {
        const int n = line / p.H, ih = line % p.H;
        float* d = dinp + (size_t)line * p.W * p.C;
        for (int iw = 0; iw < p.W; ++iw, d += p.C) {
            for (int c = 0; c < p.C; ++c) d[c] = 0.0f;
            for (int kh = 0; kh < p.KH; ++kh) {
                const int oh = source_out(ih, kh * p.DH - p.PT, p.SH, p.OH);
                if (oh < 0) continue;
                const float* grow = dout + ((size_t)n * p.OH + oh) * p.OW * OC;
                for (int kw = 0; kw < p.KW; ++kw) {
                    const int ow = source_out(iw, kw * p.DW - p.PL, p.SW, p.OW);
                    if (ow < 0) continue;
                    const float* __restrict g = grow + (size_t)ow * OC;
                    const float* __restrict w = weight + ((size_t)kh * p.KW + kw) * OC;
                    if (p.DM == 1) {
                        for (int c = 0; c < p.C; ++c) d[c] += g[c] * w[c];
                        continue;
                    }
                    for (int c = 0; c < p.C; ++c) {
                        float s = 0.0f;
                        for (int m = 0; m < p.DM; ++m) s += g[c * p.DM + m] * w[c * p.DM + m];
                        d[c] += s;
                    }
                }
            }
        }
    }
}

// partial (KH*KW*OC weights, then OC biases) overwritten with the sums over output rows
// [l0, l1), in row order.
CNNFAST_CLONES static void depthwise_dw_rows(float* partial, const float* dout, const float* inp,
                                             const DepthwiseParams& p, int l0, int l1) {
    const int OC = p.OC();
    const size_t KO = (size_t)p.KH * p.KW * OC;
    float* db = partial + KO;
    std::memset(partial, 0, sizeof(float) * (KO + OC));
    for (int line = l0; line < l1; ++line) {
        const int n = line / p.OH, oh = line % p.OH;
        const float* g = dout + (size_t)line * p.OW * OC;
        for (int ow = 0; ow < p.OW; ++ow, g += OC) {
            for (int k = 0; k < OC; ++k) db[k] += g[k];
            for (int kh = 0; kh < p.KH; ++kh) {
                const int ih = oh * p.SH + kh * p.DH - p.PT;
                if (ih < 0 || ih >= p.H) continue;
                const float* row = inp + ((size_t)n * p.H + ih) * p.W * p.C;
                for (int kw = 0; kw < p.KW; ++kw) {
                    const int iw = ow * p.SW + kw * p.DW - p.PL;
                    if (iw < 0 || iw >= p.W) continue;
                    // dw[tap][c*DM+m] += x[c] * g[c*DM+m]: the forward's tap loop, roles swapped
                    float* __restrict dw = partial + ((size_t)kh * p.KW + kw) * OC;
                    const float* __restrict x = row + (size_t)iw * p.C;
                    if (p.DM == 1) {
                        for (int c = 0; c < p.C; ++c) dw[c] += x[c] * g[c];
                        continue;
                    }
                    for (int c = 0; c < p.C; ++c) {
                        const float v = x[c];
                        for (int m = 0; m < p.DM; ++m) dw[c * p.DM + m] += v * g[c * p.DM + m];
                    }
                }
            }
        }
    }
}

void depthwise_forward(float* out, const float* inp, const float* weight, const float* bias,
                       const DepthwiseParams& p, bool relu) {
    forward_rows(out, inp, weight, bias, p, relu);
}

static thread_local std::vector<float> t_dw_partials;

void depthwise_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const DepthwiseParams& p) {
    if (dinp) depthwise_dinp(dinp, dout, weight, p);
    const int OC = p.OC(), lines = p.N * p.OH;
    const size_t KO = (size_t)p.KH * p.KW * OC, stride = KO + OC;
    const int G = std::min(lines, DW_GROUPS_DEPTHWISE);  // fixed by the shape, not the threads
    if (t_dw_partials.size() < stride * G) t_dw_partials.resize(stride * G);
    float* partials = t_dw_partials.data();
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (G > 1 && !in_parallel())
#endif
    for (int g = 0; g < G; ++g)
        depthwise_dw_rows(partials + (size_t)g * stride, dout, inp, p,
                          (int)((int64_t)g * lines / G), (int)((int64_t)(g + 1) * lines / G));
    // Partials added in group order, elementwise (any split of elements gives the same sums).
    const int64_t total = (int64_t)stride;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (total * G > 65536 && !in_parallel())
#endif
    for (int64_t i = 0; i < total; ++i) {
        float v = partials[i];
        for (int g = 1; g < G; ++g) v += partials[(size_t)g * stride + i];
        if (i < (int64_t)KO)
            dweight[i] = v;
        else if (dbias)
            dbias[i - KO] = v;
    }
}

}  // namespace cnnfast
