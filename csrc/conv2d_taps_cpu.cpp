// conv2d_taps_cpu.cpp -- Conv2D kernels for layers with few taps (K = KH*KW*C), without im2col:
// the weight gradient for K <= 24 and the forward for K <= 11 (an image model's first layer,
// 3x3x1 = 9 taps). Both read a zero-padded copy of the input; conv2d_cpu.cpp calls them
// (conv2d_taps.h) and falls back on im2col + GEMM for everything else.
//   inp (N,H,W,C)  weight (KH,KW,C,OC) == (K,OC)  out, dout (N,OH,OW,OC)  padded (N,Hp,Wp,C)
#include <algorithm>
#include <new>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "conv2d_taps.h"
#include "isa.h"

namespace cnnfast {

// ---- Weight gradient of a layer with few taps, without im2col ---------------------------------
// K = KH*KW*C <= SMALLK_MAX (the first layer of an image model: 3x3x1 = 9; 3x3x3 = 27 is too
// many); the input gradient, when wanted, still goes through the GEMM path. For so few taps,
// im2col + GEMM spends its time on per-pixel copies and packing, not arithmetic (a 9-deep
// GEMM). Instead, for each block of 8 output channels, one pass over the output pixels keeps
// T tap accumulators of 8 lanes in registers:
//   acc[t] += x(pixel, tap t) * dout(pixel, block)      (and, fused, dbias += dout)
// reading the taps from a zero-padded copy of the input, so there are no bounds checks. Each
// (tap, channel) is summed over the pixels in order by one thread (threads split the channel
// blocks and tap groups): bit-identical for any thread count. Multiply and add are separate
// (no FMA) so the vector and scalar versions round alike; the fused dbias adds exactly what
// column_sums adds, in the same order.
static constexpr int SMALLK_MAX = 24;
static constexpr int SMALLK_TAPS = 11;  // taps per register group (+1 for dbias, +2 working)

bool use_small_k_dw(const Conv2DParams& p) {
    return !is_pointwise(p) && p.KH * p.KW * p.C <= SMALLK_MAX;
}

struct Padded {
    int Hp, Wp;  // rows/cols of the padded copy that output windows read
};

static Padded padded_dims(const Conv2DParams& p) {
    return {(p.OH - 1) * p.SH + p.KH, (p.OW - 1) * p.SW + p.KW};
}

// out (N, Hp, Wp, C): input rows/cols shifted by the leading padding, zeros elsewhere.
CNNFAST_CLONES CNNFAST_NO_MEMCPY_IDIOM static void pad_input(float* out, const float* inp,
                                                             const Conv2DParams& p, Padded d) {
    const size_t row = (size_t)d.Wp * p.C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (p.N > 1 && (size_t)p.N * d.Hp * row > 65536 && \
                                                  !in_parallel())
#endif
    for (int n = 0; n < p.N; ++n)
        for (int hp = 0; hp < d.Hp; ++hp) {
            float* o = out + ((size_t)n * d.Hp + hp) * row;
            const int ih = hp - p.PT;
            for (int wp = 0; wp < d.Wp; ++wp) {
                const int iw = wp - p.PL;
                float* oc = o + (size_t)wp * p.C;
                if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) {
                    for (int c = 0; c < p.C; ++c) oc[c] = 0.0f;
                } else {
                    const float* x = inp + (((size_t)n * p.H + ih) * p.W + iw) * p.C;
                    for (int c = 0; c < p.C; ++c) oc[c] = x[c];
                }
            }
        }
}

static thread_local std::vector<float> t_pad;  // the padded input of the few-tap kernels

// The few-tap kernels' view of the input: a zero-padded copy (in t_pad) and, for each tap
// k = (kh*KW + kw)*C + c (the weight layout (KH,KW,C,OC)), its offset from a pixel's window
// corner in that copy.
struct PaddedTaps {
    Padded d;
    const float* pad;
    int off[SMALLK_MAX];
};

static PaddedTaps padded_taps(const float* inp, const Conv2DParams& p) {
    PaddedTaps t;
    t.d = padded_dims(p);
    float* pad = thread_scratch(t_pad, (size_t)p.N * t.d.Hp * t.d.Wp * p.C);
    if (!pad) throw std::bad_alloc();
    pad_input(pad, inp, p, t.d);
    t.pad = pad;
    for (int kh = 0; kh < p.KH; ++kh)
        for (int kw = 0; kw < p.KW; ++kw)
            for (int c = 0; c < p.C; ++c)
                t.off[(kh * p.KW + kw) * p.C + c] = (kh * t.d.Wp + kw) * p.C + c;
    return t;
}

struct TapJob {
    const float* pad;   // (N, Hp, Wp, C)
    const float* dout;  // (N, OH, OW, OC)
    const int* off;     // offsets of this group's taps from a pixel's window corner
    int T;              // taps in this group
    int oc0, width;     // channel block [oc0, oc0 + width), width <= 8
    bool bias;          // also sum dout (dbias)
};

// Scalar version (generic ISA): same operations and order as the AVX2 one. Both add images
// [n0, n1) to the running sums acc (T x 8) and accb (8).
static void taps_generic(const Conv2DParams& p, Padded d, const TapJob& j, int n0, int n1,
                         float* acc, float* accb) {
    for (int n = n0; n < n1; ++n)
        for (int oh = 0; oh < p.OH; ++oh) {
            const float* dv = j.dout + (((size_t)n * p.OH + oh) * p.OW) * p.OC + j.oc0;
            const float* px = j.pad + (((size_t)n * d.Hp + (size_t)oh * p.SH) * d.Wp) * p.C;
            for (int ow = 0; ow < p.OW; ++ow, dv += p.OC) {
                const float* base = px + (size_t)ow * p.SW * p.C;
                for (int t = 0; t < j.T; ++t) {
                    const float x = base[j.off[t]];
                    for (int c = 0; c < j.width; ++c) acc[t * 8 + c] = acc[t * 8 + c] + x * dv[c];
                }
                if (j.bias)
                    for (int c = 0; c < j.width; ++c) accb[c] = accb[c] + dv[c];
            }
        }
}

#if defined(__x86_64__) || defined(__i386__)
#define CNNFAST_SMALLK_AVX2 1
// T accumulators stay in registers (T is a template parameter so the tap loop unrolls).
template <int T>
__attribute__((target("avx2"))) static void taps_avx2(const Conv2DParams& p, Padded d,
                                                      const TapJob& j, int n0, int n1, float* acc,
                                                      float* accb) {
    __m256 a[T > 0 ? T : 1];
    for (int t = 0; t < T; ++t) a[t] = _mm256_loadu_ps(acc + t * 8);
    __m256 ab = _mm256_loadu_ps(accb);
    alignas(32) int lanes[8];
    for (int c = 0; c < 8; ++c) lanes[c] = c < j.width ? -1 : 0;
    const __m256i mask = _mm256_load_si256((const __m256i*)lanes);
    int off[T > 0 ? T : 1];
    for (int t = 0; t < T; ++t) off[t] = j.off[t];
    const size_t step = (size_t)p.SW * p.C;
    const bool full = j.width == 8;
    for (int n = n0; n < n1; ++n)
        for (int oh = 0; oh < p.OH; ++oh) {
            const float* dv = j.dout + (((size_t)n * p.OH + oh) * p.OW) * p.OC + j.oc0;
            const float* base = j.pad + (((size_t)n * d.Hp + (size_t)oh * p.SH) * d.Wp) * p.C;
            for (int ow = 0; ow < p.OW; ++ow, dv += p.OC, base += step) {
                // A plain load for a full block: masked loads stall on a cache miss here.
                const __m256 g = full ? _mm256_loadu_ps(dv) : _mm256_maskload_ps(dv, mask);
#pragma GCC unroll 16
                for (int t = 0; t < T; ++t)
                    a[t] =
                        _mm256_add_ps(a[t], _mm256_mul_ps(_mm256_broadcast_ss(base + off[t]), g));
                if (j.bias) ab = _mm256_add_ps(ab, g);
            }
        }
    for (int t = 0; t < T; ++t) _mm256_storeu_ps(acc + t * 8, a[t]);
    _mm256_storeu_ps(accb, ab);
}

using TapsFn = void (*)(const Conv2DParams&, Padded, const TapJob&, int, int, float*, float*);
static const TapsFn kTapsAvx2[SMALLK_TAPS + 1] = {
    nullptr,      taps_avx2<1>, taps_avx2<2>, taps_avx2<3>, taps_avx2<4>,  taps_avx2<5>,
    taps_avx2<6>, taps_avx2<7>, taps_avx2<8>, taps_avx2<9>, taps_avx2<10>, taps_avx2<11>};
#endif

static thread_local std::vector<float> t_taps;  // the small-K running sums, (T+1) x 8 per unit

void conv2d_dw_small_k(float* dweight, float* dbias, const float* dout, const float* inp,
                       const Conv2DParams& p) {
    const PaddedTaps taps = padded_taps(inp, p);
    const Padded d = taps.d;
    const float* pad = taps.pad;
    const int* off = taps.off;
    const int K = p.KH * p.KW * p.C;
    const int blocks = (p.OC + 7) / 8, groups = (K + SMALLK_TAPS - 1) / SMALLK_TAPS;
    const int units = blocks * groups;  // (channel block, tap group); consecutive: neighbours
    // The AVX2 version on AVX2 and AVX-512 machines (no AVX-512 version: 8-lane blocks suit the
    // OC = 8..64 of a first layer), the scalar one on generic. Both round alike.
    bool avx2 = false;
#ifdef CNNFAST_SMALLK_AVX2
    avx2 = active_isa() != Isa::generic;
#endif
    // Images per tile: about 256 KB of dout, so every unit of a thread reads the tile from
    // cache after the first (dout itself is often far larger than the L2).
    const size_t per_image = (size_t)p.OH * p.OW * p.OC;
    const int tile = (int)std::max<size_t>(1, (64 * 1024) / std::max<size_t>(per_image, 1));
    float* sums = thread_scratch(t_taps, (size_t)units * (SMALLK_TAPS + 1) * 8);
    if (!sums) throw std::bad_alloc();
    std::fill(sums, sums + (size_t)units * (SMALLK_TAPS + 1) * 8, 0.0f);
    auto job_of = [&](int u) {
        const int b = u % blocks, g = u / blocks, t0 = g * SMALLK_TAPS;
        return TapJob{pad,
                      dout,
                      off + t0,
                      std::min(SMALLK_TAPS, K - t0),
                      b * 8,
                      std::min(8, p.OC - b * 8),
                      dbias != nullptr && g == 0};
    };
    const int nt = in_parallel() ? 1 : std::min(num_threads(), units);
    (void)nt;  // unused in a serial build
    // Each thread owns a contiguous range of units and walks the images tile by tile,
    // running all its units on a tile before the next one. A unit's sums still go through
    // the images in order: the result does not depend on the thread count.
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int tid = 0, nth = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        const int u0 = units * tid / nth, u1 = units * (tid + 1) / nth;
        for (int n0 = 0; n0 < p.N; n0 += tile) {
            const int n1 = std::min(p.N, n0 + tile);
            for (int u = u0; u < u1; ++u) {
                const TapJob job = job_of(u);
                float* acc = sums + (size_t)u * (SMALLK_TAPS + 1) * 8;
                float* accb = acc + SMALLK_TAPS * 8;
#ifdef CNNFAST_SMALLK_AVX2
                if (avx2)
                    kTapsAvx2[job.T](p, d, job, n0, n1, acc, accb);
                else
#endif
                    taps_generic(p, d, job, n0, n1, acc, accb);
            }
        }
    }
    for (int u = 0; u < units; ++u) {
        const TapJob job = job_of(u);
        const int t0 = (u / blocks) * SMALLK_TAPS;
        const float* acc = sums + (size_t)u * (SMALLK_TAPS + 1) * 8;
        for (int t = 0; t < job.T; ++t)
            for (int c = 0; c < job.width; ++c)
                dweight[(size_t)(t0 + t) * p.OC + job.oc0 + c] = acc[t * 8 + c];
        if (job.bias)
            for (int c = 0; c < job.width; ++c) dbias[job.oc0 + c] = acc[SMALLK_TAPS * 8 + c];
    }
    (void)avx2;
}

// ---- Forward of a layer with few taps (K <= 11), without im2col (AVX2) --------------------------
// The first layer (3x3x1: 9 taps) spends im2col + GEMM time on per-pixel copies and on a
// 9-deep GEMM's output traffic. Here each block of 8 output channels keeps its K weight rows
// in registers and computes 4 pixels at a time from the zero-padded input (pad_input):
//   acc = fma(x(pixel, tap k), w(k, block), acc) for k = 0..K-1, from 0; then + bias, ReLU
// -- the same operations in the same order as the AVX2 and AVX-512 GEMM paths (one K block of
// K <= 11, FMA accumulation from zero, alpha = 1, then bias, then ReLU), so the output is
// bit-identical to theirs. Parallel over output rows; each row's pixels stay in cache across
// the channel blocks.
//
// ISAs: this AVX2+FMA version runs on avx2 AND avx512 (there is no AVX-512 version; measured
// on Zen 5, 128x28x28x1 -> 32 3x3 'same', 2 threads: 0.53 ms against 1.02 ms for im2col + the
// AVX-512 GEMM, and 0.41 against 1.2 ms for 2x2x2 -> 16). On generic the caller takes the
// GEMM path, whose generic kernel rounds differently (tests: within the fp32 tolerance).
static constexpr int FWD_TAPS_MAX = 11;

#ifdef CNNFAST_SMALLK_AVX2
struct ConvEpilogue {
    __m256 bias;
    __m256i mask;
    bool has_bias, relu, full;
};

// The GEMM epilogue's operations: alpha (1) * acc, + bias, ReLU; masked store of a partial block.
__attribute__((target("avx2,fma"), always_inline)) static inline void conv_finish(
    const ConvEpilogue& e, __m256 acc, float* o) {
    __m256 v = _mm256_mul_ps(_mm256_set1_ps(1.0f), acc);
    if (e.has_bias) v = _mm256_add_ps(v, e.bias);
    if (e.relu) v = _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
    if (e.full)
        _mm256_storeu_ps(o, v);
    else
        _mm256_maskstore_ps(o, e.mask, v);
}

template <int T>
__attribute__((target("avx2,fma"))) static void conv_row_avx2(float* out, const float* base_row,
                                                              const float* weight,
                                                              const float* bias, const int* off,
                                                              const Conv2DParams& p, bool relu) {
    const size_t step = (size_t)p.SW * p.C;
    for (int oc0 = 0; oc0 < p.OC; oc0 += 8) {
        const int width = std::min(8, p.OC - oc0);
        alignas(32) int lanes[8];
        for (int c = 0; c < 8; ++c) lanes[c] = c < width ? -1 : 0;
        const __m256i mask = _mm256_load_si256((const __m256i*)lanes);
        __m256 w[T];
        for (int t = 0; t < T; ++t)
            w[t] = _mm256_maskload_ps(weight + (size_t)t * p.OC + oc0, mask);
        const __m256 vb = bias ? _mm256_maskload_ps(bias + oc0, mask) : _mm256_setzero_ps();
        const __m256 zero = _mm256_setzero_ps();
        const ConvEpilogue ep{vb, mask, bias != nullptr, relu, width == 8};
        int ow = 0;
        for (; ow + 4 <= p.OW; ow += 4) {
            const float* x0 = base_row + (size_t)ow * step;
            const float* x1 = x0 + step;
            const float* x2 = x1 + step;
            const float* x3 = x2 + step;
            __m256 a0 = zero, a1 = zero, a2 = zero, a3 = zero;
#pragma GCC unroll 16
            for (int t = 0; t < T; ++t) {
                a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(x0 + off[t]), w[t], a0);
                a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(x1 + off[t]), w[t], a1);
                a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(x2 + off[t]), w[t], a2);
                a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(x3 + off[t]), w[t], a3);
            }
            float* o = out + (size_t)ow * p.OC + oc0;
            conv_finish(ep, a0, o);
            conv_finish(ep, a1, o + p.OC);
            conv_finish(ep, a2, o + 2 * (size_t)p.OC);
            conv_finish(ep, a3, o + 3 * (size_t)p.OC);
        }
        for (; ow < p.OW; ++ow) {
            const float* x0 = base_row + (size_t)ow * step;
            __m256 a0 = zero;
#pragma GCC unroll 16
            for (int t = 0; t < T; ++t)
                a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(x0 + off[t]), w[t], a0);
            conv_finish(ep, a0, out + (size_t)ow * p.OC + oc0);
        }
    }
}

using ConvRowFn = void (*)(float*, const float*, const float*, const float*, const int*,
                           const Conv2DParams&, bool);
static const ConvRowFn kConvRowAvx2[FWD_TAPS_MAX + 1] = {
    nullptr,          conv_row_avx2<1>, conv_row_avx2<2>,  conv_row_avx2<3>,
    conv_row_avx2<4>, conv_row_avx2<5>, conv_row_avx2<6>,  conv_row_avx2<7>,
    conv_row_avx2<8>, conv_row_avx2<9>, conv_row_avx2<10>, conv_row_avx2<11>};
#endif

// On avx2 and avx512 (see above); false on generic.
bool conv2d_forward_small_k(float* out, const float* inp, const float* weight, const float* bias,
                            const Conv2DParams& p, bool relu) {
#ifdef CNNFAST_SMALLK_AVX2
    const int K = p.KH * p.KW * p.C;
    if (is_pointwise(p) || K > FWD_TAPS_MAX || active_isa() == Isa::generic) return false;
    const PaddedTaps taps = padded_taps(inp, p);
    const Padded d = taps.d;
    const float* pad = taps.pad;
    const int* off = taps.off;
    const ConvRowFn row_fn = kConvRowAvx2[K];
    const int rows = p.N * p.OH;
#ifdef _OPENMP
#pragma omp parallel for schedule( \
        static) if (rows > 1 && (size_t)rows * p.OW * p.OC * K > 65536 && !in_parallel())
#endif
    for (int r = 0; r < rows; ++r) {
        const int n = r / p.OH, oh = r % p.OH;
        const float* base = pad + (((size_t)n * d.Hp + (size_t)oh * p.SH) * d.Wp) * p.C;
        row_fn(out + (size_t)r * p.OW * p.OC, base, weight, bias, off, p, relu);
    }
    return true;
#else
    (void)out, (void)inp, (void)weight, (void)bias, (void)p, (void)relu;
    return false;
#endif
}

}  // namespace cnnfast
