// conv2d_fused_cpu.cpp -- Conv2D (+bias, +ReLU) -> MaxPool2D at inference in one pass (see
// conv2d_fused.h, docs/fused_inference.md).
//
// Few-tap layers (K = KH*KW*C <= 11, avx2/avx512): per image, a zero-padded copy of the input
// goes to the thread's scratch (as pad_input does for the few-tap conv); then per block of 8
// output channels the K weight rows stay in registers and, for every pooled output, the
// window's conv outputs are computed 4 at a time,
//   acc = fma(x(cell, tap k), w(k, block), acc) for k = 0..K-1 from 0;  v = 1 * acc + bias;
//   ReLU as a mask;  m = first cell's v, then m = max(v, m) over the cells in row-major order
// -- the few-tap conv kernel's operations (csrc/conv2d_taps_cpu.cpp conv_row_avx2 and
// conv_finish) and the max-pool kernel's (csrc/pool2d_cpu.cpp: the first cell initialises, a
// cell wins only if strictly greater, which is what max_ps(v, m) returns, NaN included). The
// conv output is never stored. Threads take whole images: the same bits for any thread count.
//
// Other layers (and the generic ISA): blocks of images through conv2d_forward into the scratch,
// then maxpool2d_forward into out -- the unfused kernels, so the same bits too.
#include "conv2d_fused.h"

#include <algorithm>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CNNFAST_FUSED_AVX2 1
#endif

#include "conv2d_taps.h"
#include "isa.h"
#include "winograd.h"

namespace cnnfast {

namespace {

constexpr int kTapsMax = 11;  // conv2d_taps_cpu.cpp's FWD_TAPS_MAX: the few-tap forward's limit
// The fallback's block: the conv output of a block of images in about 128 KB (L2).
constexpr size_t kBlockFloats = 32 * 1024;

size_t conv_out_floats(const ConvPoolSpec& s) {
    return (size_t)s.conv.OH * s.conv.OW * s.conv.OC;
}

Conv2DParams conv_of(const ConvPoolSpec& s, int n) {
    Conv2DParams p = s.conv;
    p.N = n;
    return p;
}

int block_images(const ConvPoolSpec& s) {
    return (int)std::max<size_t>(1, kBlockFloats / std::max<size_t>(1, conv_out_floats(s)));
}

// Rows and columns of the padded copy that the output windows read (conv2d_taps_cpu.cpp).
int padded_h(const Conv2DParams& p) {
    return (p.OH - 1) * p.SH + p.KH;
}
int padded_w(const Conv2DParams& p) {
    return (p.OW - 1) * p.SW + p.KW;
}

bool few_taps(const Conv2DParams& p) {
    return !is_pointwise(p) && p.KH * p.KW * p.C <= kTapsMax && !use_winograd(p);
}

// pad (Hp, Wp, C) overwritten: image rows/cols shifted by the leading padding, zeros elsewhere.
void pad_image(float* pad, const float* img, const Conv2DParams& p) {
    const int Hp = padded_h(p), Wp = padded_w(p);
    for (int hp = 0; hp < Hp; ++hp) {
        float* o = pad + (size_t)hp * Wp * p.C;
        const int ih = hp - p.PT;
        if (ih < 0 || ih >= p.H) {
            std::memset(o, 0, sizeof(float) * Wp * p.C);
            continue;
        }
        const float* row = img + (size_t)ih * p.W * p.C;
        for (int wp = 0; wp < Wp; ++wp) {
            const int iw = wp - p.PL;
            float* d = o + (size_t)wp * p.C;
            if (iw < 0 || iw >= p.W)
                std::memset(d, 0, sizeof(float) * p.C);
            else
                std::memcpy(d, row + (size_t)iw * p.C, sizeof(float) * p.C);
        }
    }
}

#ifdef CNNFAST_FUSED_AVX2
struct Epilogue {
    __m256 bias;
    bool has_bias, relu;
};

// conv_finish's operations: 1 * acc, + bias, ReLU as a mask.
__attribute__((target("avx2,fma"), always_inline)) inline __m256 finish(const Epilogue& e,
                                                                        __m256 acc) {
    __m256 v = _mm256_mul_ps(_mm256_set1_ps(1.0f), acc);
    if (e.has_bias) v = _mm256_add_ps(v, e.bias);
    if (e.relu) v = _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
    return v;
}

// m = the first cell's v (have = false), then max(v, m): v wins only if strictly greater.
__attribute__((target("avx2,fma"), always_inline)) inline void fold(__m256& m, bool& have,
                                                                    __m256 v) {
    if (!have) m = v, have = true;
    m = _mm256_max_ps(v, m);
}

// out (pool.OH, pool.OW, OC) of one image from its padded copy; off: the taps' offsets.
template <int T>
__attribute__((target("avx2,fma"))) void conv_maxpool_avx2(float* out, const float* pad,
                                                           const float* weight, const float* bias,
                                                           const int* off, const ConvPoolSpec& s) {
    const Conv2DParams& p = s.conv;
    const Pool2DParams& q = s.pool;
    const size_t step_h = (size_t)p.SH * padded_w(p) * p.C, step_w = (size_t)p.SW * p.C;
    for (int oc0 = 0; oc0 < p.OC; oc0 += 8) {
        const int width = std::min(8, p.OC - oc0);
        alignas(32) int lanes[8];
        for (int c = 0; c < 8; ++c) lanes[c] = c < width ? -1 : 0;
        const __m256i mask = _mm256_load_si256((const __m256i*)lanes);
        __m256 w[T];
        for (int t = 0; t < T; ++t)
            w[t] = _mm256_maskload_ps(weight + (size_t)t * p.OC + oc0, mask);
        const Epilogue ep{bias ? _mm256_maskload_ps(bias + oc0, mask) : _mm256_setzero_ps(),
                          bias != nullptr, s.relu};
        const __m256 zero = _mm256_setzero_ps();
        for (int ph = 0; ph < q.OH; ++ph) {
            const int h0r = ph * q.SH - q.PT;
            const int h0 = std::max(h0r, 0), h1 = std::min(h0r + q.PH, q.H);
            for (int pw = 0; pw < q.OW; ++pw) {
                const int w0r = pw * q.SW - q.PL;
                const int w0 = std::max(w0r, 0), w1 = std::min(w0r + q.PW, q.W);
                const float* x[4];
                int k = 0;
                bool have = false;
                __m256 m = zero;
                for (int oh = h0; oh < h1; ++oh)
                    for (int ow = w0; ow < w1; ++ow) {
                        x[k++] = pad + (size_t)oh * step_h + (size_t)ow * step_w;
                        if (k < 4) continue;
                        __m256 a0 = zero, a1 = zero, a2 = zero, a3 = zero;
#pragma GCC unroll 16
                        for (int t = 0; t < T; ++t) {
                            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(x[0] + off[t]), w[t], a0);
                            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(x[1] + off[t]), w[t], a1);
                            a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(x[2] + off[t]), w[t], a2);
                            a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(x[3] + off[t]), w[t], a3);
                        }
                        fold(m, have, finish(ep, a0));
                        fold(m, have, finish(ep, a1));
                        fold(m, have, finish(ep, a2));
                        fold(m, have, finish(ep, a3));
                        k = 0;
                    }
                for (int i = 0; i < k; ++i) {
                    __m256 a0 = zero;
#pragma GCC unroll 16
                    for (int t = 0; t < T; ++t)
                        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(x[i] + off[t]), w[t], a0);
                    fold(m, have, finish(ep, a0));
                }
                float* o = out + ((size_t)ph * q.OW + pw) * p.OC + oc0;
                if (width == 8)
                    _mm256_storeu_ps(o, m);
                else
                    _mm256_maskstore_ps(o, mask, m);
            }
        }
    }
}

using ConvPoolFn = void (*)(float*, const float*, const float*, const float*, const int*,
                            const ConvPoolSpec&);
const ConvPoolFn kConvPoolAvx2[kTapsMax + 1] = {nullptr,
                                                conv_maxpool_avx2<1>,
                                                conv_maxpool_avx2<2>,
                                                conv_maxpool_avx2<3>,
                                                conv_maxpool_avx2<4>,
                                                conv_maxpool_avx2<5>,
                                                conv_maxpool_avx2<6>,
                                                conv_maxpool_avx2<7>,
                                                conv_maxpool_avx2<8>,
                                                conv_maxpool_avx2<9>,
                                                conv_maxpool_avx2<10>,
                                                conv_maxpool_avx2<11>};

// The AVX-512 version: NB blocks of 16 channels per pass, so each broadcast tap feeds NB FMAs
// (the AVX2 version broadcasts every tap once per 8 channels). The same operations per lane
// (FMA rounds once whatever the width; ReLU keeps v > 0 and writes +0 elsewhere, as the AVX2
// mask does), so the same bits.
#define CNNFAST_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
CNNFAST_AVX512 __attribute__((always_inline)) inline __m512 finish512(__m512 acc, __m512 b,
                                                                      bool has_bias, bool relu) {
    __m512 v = _mm512_mul_ps(_mm512_set1_ps(1.0f), acc);
    if (has_bias) v = _mm512_add_ps(v, b);
    if (relu) v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), v);
    return v;
}

template <int T, int NB>
CNNFAST_AVX512 void conv_maxpool_avx512(float* out, const float* pad, const float* weight,
                                        const float* bias, const int* off, const ConvPoolSpec& s) {
    const Conv2DParams& p = s.conv;
    const Pool2DParams& q = s.pool;
    const size_t step_h = (size_t)p.SH * padded_w(p) * p.C, step_w = (size_t)p.SW * p.C;
    const bool has_bias = bias != nullptr, relu = s.relu;
    for (int oc0 = 0; oc0 < p.OC; oc0 += 16 * NB) {
        __mmask16 mask[NB];
        __m512 w[NB][T], vb[NB];
        for (int j = 0; j < NB; ++j) {
            const int width = std::max(0, std::min(16, p.OC - oc0 - 16 * j));
            mask[j] = (__mmask16)((1u << width) - 1u);
            for (int t = 0; t < T; ++t)
                w[j][t] = _mm512_maskz_loadu_ps(mask[j], weight + (size_t)t * p.OC + oc0 + 16 * j);
            vb[j] = has_bias ? _mm512_maskz_loadu_ps(mask[j], bias + oc0 + 16 * j)
                             : _mm512_setzero_ps();
        }
        for (int ph = 0; ph < q.OH; ++ph) {
            const int h0r = ph * q.SH - q.PT;
            const int h0 = std::max(h0r, 0), h1 = std::min(h0r + q.PH, q.H);
            for (int pw = 0; pw < q.OW; ++pw) {
                const int w0r = pw * q.SW - q.PL;
                const int w0 = std::max(w0r, 0), w1 = std::min(w0r + q.PW, q.W);
                __m512 m[NB];
                for (int j = 0; j < NB; ++j) m[j] = _mm512_setzero_ps();  // a window has a cell
                bool have = false;
                for (int oh = h0; oh < h1; ++oh)
                    for (int ow = w0; ow < w1; ++ow) {
                        const float* x = pad + (size_t)oh * step_h + (size_t)ow * step_w;
                        __m512 a[NB];
                        for (int j = 0; j < NB; ++j) a[j] = _mm512_setzero_ps();
#pragma GCC unroll 16
                        for (int t = 0; t < T; ++t) {
                            const __m512 xb = _mm512_set1_ps(x[off[t]]);
                            for (int j = 0; j < NB; ++j) a[j] = _mm512_fmadd_ps(xb, w[j][t], a[j]);
                        }
                        for (int j = 0; j < NB; ++j) {
                            const __m512 v = finish512(a[j], vb[j], has_bias, relu);
                            if (!have) m[j] = v;
                            m[j] = _mm512_mask_max_ps(m[j], (__mmask16)0xFFFF, v, m[j]);
                        }
                        have = true;
                    }
                float* o = out + ((size_t)ph * q.OW + pw) * p.OC + oc0;
                for (int j = 0; j < NB; ++j)
                    if (mask[j]) _mm512_mask_storeu_ps(o + 16 * j, mask[j], m[j]);
            }
        }
    }
}

// Two blocks (32 channels) per pass while the weights fit the 32 registers (T <= 9), else one.
const ConvPoolFn kConvPoolAvx512[kTapsMax + 1] = {nullptr,
                                                  conv_maxpool_avx512<1, 2>,
                                                  conv_maxpool_avx512<2, 2>,
                                                  conv_maxpool_avx512<3, 2>,
                                                  conv_maxpool_avx512<4, 2>,
                                                  conv_maxpool_avx512<5, 2>,
                                                  conv_maxpool_avx512<6, 2>,
                                                  conv_maxpool_avx512<7, 2>,
                                                  conv_maxpool_avx512<8, 2>,
                                                  conv_maxpool_avx512<9, 2>,
                                                  conv_maxpool_avx512<10, 1>,
                                                  conv_maxpool_avx512<11, 1>};
#undef CNNFAST_AVX512
#endif

// The one-pass path applies: a few-tap layer on an ISA with the AVX2 kernel.
bool one_pass(const Conv2DParams& p) {
#ifdef CNNFAST_FUSED_AVX2
    return few_taps(p) && active_isa() != Isa::generic;
#else
    (void)p;
    return false;
#endif
}

}  // namespace

bool conv_pool_fusable(const Conv2DParams& conv) {
    return one_pass(conv);
}

size_t conv_pool_scratch_floats(const ConvPoolSpec& s) {
    const int G = block_images(s);
    const size_t fallback = (size_t)G * conv_out_floats(s) + conv2d_workspace_size(conv_of(s, G));
    const size_t padded = (size_t)padded_h(s.conv) * padded_w(s.conv) * s.conv.C;
    return std::max(fallback, padded);
}

void conv_pool_forward(float* out, const float* inp, int N, const ConvPoolSpec& s, float* scratch,
                       int slots) {
    CNNFAST_CHECK(N > 0 && slots > 0, "conv_pool_forward: N and slots must be positive");
    CNNFAST_CHECK(s.pool.H == s.conv.OH && s.pool.W == s.conv.OW && s.pool.C == s.conv.OC,
                  "conv_pool_forward: the pooling's input is not the conv's output");
    const size_t in_n = (size_t)s.conv.H * s.conv.W * s.conv.C;
    const size_t out_n = (size_t)s.pool.OH * s.pool.OW * s.pool.C;
    if (!one_pass(s.conv)) {  // block by block through the unfused kernels (parallel inside)
        const int G = block_images(s);
        float* block = scratch;
        float* ws = scratch + (size_t)G * conv_out_floats(s);
        for (int n0 = 0; n0 < N; n0 += G) {
            const int g = std::min(G, N - n0);
            conv2d_forward(block, inp + (size_t)n0 * in_n, s.weight, s.bias, conv_of(s, g), ws,
                           s.relu);
            Pool2DParams q = s.pool;
            q.N = g;
            maxpool2d_forward(out + (size_t)n0 * out_n, nullptr, block, q);
        }
        return;
    }
#ifdef CNNFAST_FUSED_AVX2
    const Conv2DParams& p = s.conv;
    const int Wp = padded_w(p), K = p.KH * p.KW * p.C;
    int off[kTapsMax];
    for (int kh = 0, t = 0; kh < p.KH; ++kh)
        for (int kw = 0; kw < p.KW; ++kw)
            for (int c = 0; c < p.C; ++c) off[t++] = (kh * Wp + kw) * p.C + c;
    const ConvPoolFn fn = active_isa() == Isa::avx512 ? kConvPoolAvx512[K] : kConvPoolAvx2[K];
    const size_t per = conv_pool_scratch_floats(s);
    const int nt = in_parallel() ? 1 : std::min({num_threads(), N, slots});
#ifndef _OPENMP
    (void)nt, (void)per;
#endif
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int n = 0; n < N; ++n) {
#ifdef _OPENMP
        float* pad = scratch + (size_t)(nt > 1 ? omp_get_thread_num() : 0) * per;
#else
        float* pad = scratch;
#endif
        pad_image(pad, inp + (size_t)n * in_n, p);
        fn(out + (size_t)n * out_n, pad, s.weight, s.bias, off, s);
    }
#endif
}

}  // namespace cnnfast
