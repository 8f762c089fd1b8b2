// winograd_cpu.cpp -- Winograd F(2x2, 3x3) convolution, NHWC (docs/winograd.md).
//
// Each 2x2 block of outputs ("tile") is computed from the 4x4 input patch under it:
//   Y = A^T [ (G g G^T) .* (B^T d B) ] A          (per input channel, summed over channels)
// 16 multiplies per tile and channel pair instead of 36. With channels, the elementwise product
// summed over input channels is 16 independent GEMMs, one per position xi of the 4x4 grid:
//   M[xi] (tiles, K) = V[xi] (tiles, C) @ U[xi] (C, K),
// V = B^T d B of every tile (the input transform), U = G g G^T of every (c, k) (the kernel
// transform), and the output transform A^T M A gives each tile's 2x2 outputs. The weight
// gradient is the same pair read backwards: S[xi] (C, K) = sum over tiles of V[xi]^T @ Wd[xi],
// Wd = A dY A^T, and dW = G^T S G (docs/winograd.md#the-weight-gradient).
//
// Tiling. Tiles are numbered image by image, row by row; they are processed in blocks of T
// tiles, with T chosen so the block's V and M (16*T*(C+K) floats) stay in L2 between the
// transform that writes them and the GEMM that reads them. Each thread runs whole blocks on
// its own scratch; a block's outputs are written by that block only.
//
// Determinism. The blocks depend only on the layer's shape, each output is computed by one
// block in a fixed order of operations (the GEMMs are sgemm's, deterministic), so results are
// bit-identical for any thread count. They differ from the direct convolution's by rounding:
// docs/winograd.md#error and bench/RESULTS.md list the measured error per layer.
#include "winograd.h"

#include <algorithm>
#include <atomic>
#include <new>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "conv2d_taps.h"  // thread_scratch
#include "gemm.h"

namespace cnnfast {

static std::atomic<int> g_algorithm{(int)ConvAlgorithm::Auto};

void set_conv_algorithm(ConvAlgorithm a) {
    g_algorithm.store((int)a);
}
ConvAlgorithm conv_algorithm() {
    return (ConvAlgorithm)g_algorithm.load();
}

bool winograd_applicable(const Conv2DParams& p) {
    return p.KH == 3 && p.KW == 3 && p.SH == 1 && p.SW == 1;
}

// docs/winograd.md#when-auto-picks-winograd: the GEMMs' reduction is over C (not 9*C as in
// the direct method's), so few input channels leave them too short to pay for the transforms;
// few output channels likewise.
static bool winograd_auto(const Conv2DParams& p) {
    return p.C >= 16 && p.OC >= 16;
}

bool use_winograd(const Conv2DParams& p) {
    if (!winograd_applicable(p)) return false;
    switch (conv_algorithm()) {
        case ConvAlgorithm::Winograd: return true;
        case ConvAlgorithm::Direct: return false;
        case ConvAlgorithm::Auto: break;
    }
    return winograd_auto(p);
}

bool use_winograd_backward(const Conv2DParams& p) {
    if (!winograd_applicable(p)) return false;
    switch (conv_algorithm()) {
        case ConvAlgorithm::Winograd: return true;
        case ConvAlgorithm::Direct: return false;
        case ConvAlgorithm::Auto: break;
    }
    return false;  // auto: direct (docs/winograd.md#when-auto-picks-winograd)
}

bool use_winograd_weight(const Conv2DParams& p, bool with_input_grad) {
    if (!winograd_applicable(p)) return false;
    switch (conv_algorithm()) {
        case ConvAlgorithm::Winograd: return true;
        case ConvAlgorithm::Direct: return false;
        case ConvAlgorithm::Auto: break;
    }
    // Auto: the layers winograd_auto picks, with or without the input gradient (which auto
    // computes direct, without im2col; docs/winograd.md#when-auto-picks-winograd), so a layer's
    // weight gradient is the same bits whether or not its input gradient is wanted.
    (void)with_input_grad;
    return winograd_auto(p);
}

static thread_local std::vector<float> t_kernel;  // U of the current call (calling thread)
static thread_local std::vector<float> t_block;   // a block's V and M (each thread)
static thread_local std::vector<float> t_zeros;   // zeros: the padding's patch rows
static thread_local std::vector<float> t_sums;    // the weight gradient's S partials (caller)

// U (16, C, K) = G g G^T for every (c, k) of g (3,3,C,K); with flip, of the kernel
// g'[i][j][k][c] = g[2-i][2-j][c][k] (the input gradient's), so U is (16, K, C) then.
// U[xi = 4*i + j][c][k].
CNNFAST_CLONES static void transform_kernel(float* U, const float* g, int C, int K, bool flip) {
    const int Cu = flip ? K : C, Ku = flip ? C : K;  // U's (rows, cols) per xi
    const size_t plane = (size_t)Cu * Ku;
    for (int c = 0; c < Cu; ++c)
        for (int k = 0; k < Ku; ++k) {
            float w[3][3];
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j)
                    w[i][j] = flip ? g[(((size_t)(2 - i) * 3 + (2 - j)) * C + k) * K + c]
                                   : g[(((size_t)i * 3 + j) * C + c) * K + k];
            float t[4][3];  // G w
            for (int j = 0; j < 3; ++j) {
                t[0][j] = w[0][j];
                t[1][j] = 0.5f * (w[0][j] + w[1][j] + w[2][j]);
                t[2][j] = 0.5f * (w[0][j] - w[1][j] + w[2][j]);
                t[3][j] = w[2][j];
            }
            float* u = U + (size_t)c * Ku + k;
            for (int i = 0; i < 4; ++i) {  // (G w) G^T
                u[(4 * i + 0) * plane] = t[i][0];
                u[(4 * i + 1) * plane] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                u[(4 * i + 2) * plane] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                u[(4 * i + 3) * plane] = t[i][2];
            }
        }
}

struct Geometry {
    int N, H, W, C;  // input (N,H,W,C)
    int OH, OW, K;   // output (N,OH,OW,K)
    int PT, PL;      // the input row/col under output (0,0)'s window top-left is -PT / -PL
    int TH, TW;      // tiles per image (ceil(OH/2), ceil(OW/2))
    int T;           // tiles per block
};

// Where a block's transformed values lie: value (xi, tile t, channel c) of an array with
// `width` channels at xi * plane + t * tile + c; the GEMMs read plane xi at offset xi * plane
// with leading dimension `tile`. Interleaved (t, xi, c): plane = width, tile = 16 * width, so
// a transform writes (or reads) each tile's 16 * width values as one contiguous run instead of
// 16 streams a plane apart: the weight gradient measured 1.10-1.14x the direct one's speed so,
// 0.84-0.90x planar (bench/RESULTS.md#winograd-weight-gradient).
struct Layout {
    size_t plane, tile;
};
static Layout layout(int width) {
    return {(size_t)width, (size_t)16 * width};
}

// V (nt tiles x 16 x C, layout L) = B^T d B of tiles [t0, t0+nt).
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
CNNFAST_CLONES static void input_transform(float* V, const float* inp, const float* zeros,
                                           const Geometry& g, int64_t t0, int nt, const Layout& L) {
    const int C = g.C;
    const size_t plane = L.plane;
    for (int t = 0; t < nt; ++t) {
        const int64_t tile = t0 + t;
        const int n = (int)(tile / ((int64_t)g.TH * g.TW));
        const int r = (int)(tile % ((int64_t)g.TH * g.TW));
        const int ih0 = 2 * (r / g.TW) - g.PT, iw0 = 2 * (r % g.TW) - g.PL;
        const float* px[4][4];
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) {
                const int ih = ih0 + i, iw = iw0 + j;
                px[i][j] = (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
                               ? inp + (((size_t)n * g.H + ih) * g.W + iw) * C
                               : zeros;
            }
        float* v = V + (size_t)t * L.tile;
        // The patch rows, V's rows and the zero row never overlap: ivdep lets the compiler
        // vectorise over c without run-time alias checks between the 16 + 16 pointers.
#pragma GCC ivdep
        for (int c = 0; c < C; ++c) {
            float b[4][4];  // B^T d
            for (int j = 0; j < 4; ++j) {
                const float d0 = px[0][j][c], d1 = px[1][j][c], d2 = px[2][j][c], d3 = px[3][j][c];
                b[0][j] = d0 - d2;
                b[1][j] = d1 + d2;
                b[2][j] = d2 - d1;
                b[3][j] = d1 - d3;
            }
            for (int i = 0; i < 4; ++i) {  // (B^T d) B
                v[(4 * i + 0) * plane + c] = b[i][0] - b[i][2];
                v[(4 * i + 1) * plane + c] = b[i][1] + b[i][2];
                v[(4 * i + 2) * plane + c] = b[i][2] - b[i][1];
                v[(4 * i + 3) * plane + c] = b[i][1] - b[i][3];
            }
        }
    }
}

// One tile's 2x2 outputs (those inside the image: H2 / W2 say whether its second row / column
// is) for every output channel k, from the 16 planes of M at m (plane apart).
// BIAS / RELU: add bias[k] / apply max(., 0) (compile-time, so the loop has no branches).
template <bool H2, bool W2, bool BIAS, bool RELU>
static inline __attribute__((always_inline)) void tile_outputs(
    float* __restrict o00, float* __restrict o01, float* __restrict o10, float* __restrict o11,
    const float* __restrict m, size_t plane, const float* __restrict bias, int K) {
#pragma GCC ivdep
    for (int k = 0; k < K; ++k) {
        float a[2][4];  // A^T m
        for (int j = 0; j < 4; ++j) {
            const float m0 = m[(0 + j) * plane + k], m1 = m[(4 + j) * plane + k],
                        m2 = m[(8 + j) * plane + k], m3 = m[(12 + j) * plane + k];
            a[0][j] = m0 + m1 + m2;
            a[1][j] = m1 - m2 - m3;
        }
        float y[2][2];  // (A^T m) A, + bias, ReLU
        for (int i = 0; i < 2; ++i) {
            y[i][0] = a[i][0] + a[i][1] + a[i][2];
            y[i][1] = a[i][1] - a[i][2] - a[i][3];
        }
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j) {
                if (BIAS) y[i][j] += bias[k];
                if (RELU) y[i][j] = y[i][j] > 0.0f ? y[i][j] : 0.0f;
            }
        o00[k] = y[0][0];
        if (W2) o01[k] = y[0][1];
        if (H2) o10[k] = y[1][0];
        if (H2 && W2) o11[k] = y[1][1];
    }
}

// The 2x2 outputs of tiles [t0, t0+nt) from M (nt x 16 x K, layout L): A^T M A (+ bias,
// ReLU), the outputs past OH/OW (odd sizes) dropped. A^T = [1 1 1 0; 0 1 -1 -1].
CNNFAST_CLONES static void output_transform(float* out, const float* M, const float* bias,
                                            bool relu, const Geometry& g, int64_t t0, int nt,
                                            const Layout& L) {
    const int K = g.K;
    const size_t plane = L.plane;
    for (int t = 0; t < nt; ++t) {
        const int64_t tile = t0 + t;
        const int n = (int)(tile / ((int64_t)g.TH * g.TW));
        const int r = (int)(tile % ((int64_t)g.TH * g.TW));
        const int oh0 = 2 * (r / g.TW), ow0 = 2 * (r % g.TW);
        const bool h2 = oh0 + 1 < g.OH, w2 = ow0 + 1 < g.OW;
        // The second column / row of a tile past an odd edge is not written (tile_outputs
        // is told so); its pointer stays on o00 so no pointer is formed past the array.
        float* o00 = out + (((size_t)n * g.OH + oh0) * g.OW + ow0) * K;
        float* o01 = w2 ? o00 + K : o00;
        float* o10 = h2 ? o00 + (size_t)g.OW * K : o00;
        float* o11 = h2 && w2 ? o10 + K : o00;
        const float* m = M + (size_t)t * L.tile;
        const int code = (h2 ? 8 : 0) | (w2 ? 4 : 0) | (bias ? 2 : 0) | (relu ? 1 : 0);
        switch (code) {
#define CNNFAST_TILE(c, H2, W2, B, R) \
    case c: tile_outputs<H2, W2, B, R>(o00, o01, o10, o11, m, plane, bias, K); break;
            CNNFAST_TILE(0, false, false, false, false)
            CNNFAST_TILE(1, false, false, false, true)
            CNNFAST_TILE(2, false, false, true, false)
            CNNFAST_TILE(3, false, false, true, true)
            CNNFAST_TILE(4, false, true, false, false)
            CNNFAST_TILE(5, false, true, false, true)
            CNNFAST_TILE(6, false, true, true, false)
            CNNFAST_TILE(7, false, true, true, true)
            CNNFAST_TILE(8, true, false, false, false)
            CNNFAST_TILE(9, true, false, false, true)
            CNNFAST_TILE(10, true, false, true, false)
            CNNFAST_TILE(11, true, false, true, true)
            CNNFAST_TILE(12, true, true, false, false)
            CNNFAST_TILE(13, true, true, false, true)
            CNNFAST_TILE(14, true, true, true, false)
            CNNFAST_TILE(15, true, true, true, true)
#undef CNNFAST_TILE
        }
    }
}

// Tiles per block: V and M of a block in about 512 KB (L2), a multiple of 8 in [8, 512].
static int tiles_per_block(int C, int K) {
    int t = (512 * 1024 / 4) / (16 * (C + K));
    return std::max(8, std::min(512, t / 8 * 8));
}

// This thread's block scratch (block_n floats) and a row of at least `zeros_n` zeros; false
// when an allocation failed (may run in a parallel region: no exception here).
static bool block_scratch(float** V, const float** zeros, size_t block_n, int zeros_n) {
    *V = thread_scratch(t_block, block_n);
    const size_t had = t_zeros.size();
    float* z = thread_scratch(t_zeros, (size_t)zeros_n);
    if (z && had < t_zeros.size()) std::fill(t_zeros.begin(), t_zeros.end(), 0.0f);
    *zeros = z;
    return *V && z;
}

// out (N,OH,OW,K) = conv of inp (N,H,W,C) with the transformed kernel U (16,C,K).
static void winograd_run(float* out, const float* inp, const float* U, const Geometry& g,
                         const float* bias, bool relu) {
    const int64_t tiles = (int64_t)g.N * g.TH * g.TW;
    const int64_t blocks = (tiles + g.T - 1) / g.T;
    const size_t block_n = (size_t)16 * g.T * (g.C + g.K);
    auto run = [&](int64_t b, float* V, const float* zeros) {
        const int64_t t0 = b * g.T;
        const int nt = (int)std::min<int64_t>(g.T, tiles - t0);
        float* M = V + (size_t)16 * nt * g.C;
        const Layout LV = layout(g.C), LM = layout(g.K);
        input_transform(V, inp, zeros, g, t0, nt, LV);
        for (int xi = 0; xi < 16; ++xi)
            sgemm(false, false, nt, g.K, g.C, 1.0f, V + xi * LV.plane, (int)LV.tile,
                  U + (size_t)xi * g.C * g.K, g.K, 0.0f, M + xi * LM.plane, (int)LM.tile);
        output_transform(out, M, bias, relu, g, t0, nt, LM);
    };
    auto scratch = [&](float** V, const float** zeros) {
        return block_scratch(V, zeros, block_n, g.C);
    };
    const int nt = in_parallel() || blocks < 2 ? 1 : (int)std::min<int64_t>(num_threads(), blocks);
    if (nt == 1) {
        float* V;
        const float* zeros;
        if (!scratch(&V, &zeros)) throw std::bad_alloc();
        for (int64_t b = 0; b < blocks; ++b) run(b, V, zeros);
        return;
    }
    std::atomic<bool> failed{false};
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
#endif
    for (int64_t b = 0; b < blocks; ++b) {
        float* V;
        const float* zeros;
        if (scratch(&V, &zeros))
            run(b, V, zeros);
        else
            failed.store(true, std::memory_order_relaxed);
    }
    if (failed.load()) throw std::bad_alloc();
}

// Wd (nt x 16 x K, layout L) = A dY A^T of the output-gradient tiles [t0, t0+nt) (the
// gradient of Y = A^T M A with respect to M); outputs past OH/OW (odd sizes) read as zeros.
// A = [1 0; 1 1; 1 -1; 0 -1].
CNNFAST_CLONES static void dout_transform(float* Wd, const float* dout, const float* zeros,
                                          const Geometry& g, int64_t t0, int nt, const Layout& L) {
    const int K = g.K;
    const size_t plane = L.plane;
    for (int t = 0; t < nt; ++t) {
        const int64_t tile = t0 + t;
        const int n = (int)(tile / ((int64_t)g.TH * g.TW));
        const int r = (int)(tile % ((int64_t)g.TH * g.TW));
        const int oh0 = 2 * (r / g.TW), ow0 = 2 * (r % g.TW);
        const bool h2 = oh0 + 1 < g.OH, w2 = ow0 + 1 < g.OW;
        const float* y00 = dout + (((size_t)n * g.OH + oh0) * g.OW + ow0) * K;
        const float* y01 = w2 ? y00 + K : zeros;
        const float* y10 = h2 ? y00 + (size_t)g.OW * K : zeros;
        const float* y11 = h2 && w2 ? y00 + ((size_t)g.OW + 1) * K : zeros;
        float* w = Wd + (size_t)t * L.tile;
#pragma GCC ivdep
        for (int k = 0; k < K; ++k) {
            const float a = y00[k], b = y01[k], c = y10[k], d = y11[k];
            const float u[4] = {a, a + c, a - c, -c}, v[4] = {b, b + d, b - d, -d};  // A dY
            for (int i = 0; i < 4; ++i) {                                            // (A dY) A^T
                w[(4 * i + 0) * plane + k] = u[i];
                w[(4 * i + 1) * plane + k] = u[i] + v[i];
                w[(4 * i + 2) * plane + k] = u[i] - v[i];
                w[(4 * i + 3) * plane + k] = -v[i];
            }
        }
    }
}

// dW (3,3,C,K) = G^T S G for every (c, k) of S (16, C, K): the gradient of U = G g G^T.
// G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1].
CNNFAST_CLONES static void kernel_gradient(float* dW, const float* S, int C, int K) {
    const size_t plane = (size_t)C * K;
#pragma GCC ivdep
    for (size_t ck = 0; ck < plane; ++ck) {
        float s[4][4];
        for (int xi = 0; xi < 16; ++xi) s[xi / 4][xi % 4] = S[xi * plane + ck];
        float t[3][4];  // G^T s
        for (int j = 0; j < 4; ++j) {
            t[0][j] = s[0][j] + 0.5f * (s[1][j] + s[2][j]);
            t[1][j] = 0.5f * (s[1][j] - s[2][j]);
            t[2][j] = 0.5f * (s[1][j] + s[2][j]) + s[3][j];
        }
        for (int i = 0; i < 3; ++i) {  // (G^T s) G
            dW[(3 * i + 0) * plane + ck] = t[i][0] + 0.5f * (t[i][1] + t[i][2]);
            dW[(3 * i + 1) * plane + ck] = 0.5f * (t[i][1] - t[i][2]);
            dW[(3 * i + 2) * plane + ck] = 0.5f * (t[i][1] + t[i][2]) + t[i][3];
        }
    }
}

static Geometry geometry(int N, int H, int W, int C, int OH, int OW, int K, int PT, int PL) {
    return {N, H, W, C, OH, OW, K, PT, PL, (OH + 1) / 2, (OW + 1) / 2, tiles_per_block(C, K)};
}

void winograd_forward(float* out, const float* inp, const float* weight, const float* bias,
                      const Conv2DParams& p, bool relu) {
    CNNFAST_CHECK(winograd_applicable(p), "winograd_forward: needs a 3x3 kernel, stride 1");
    float* U = thread_scratch(t_kernel, (size_t)16 * p.C * p.OC);
    if (!U) throw std::bad_alloc();
    transform_kernel(U, weight, p.C, p.OC, false);
    winograd_run(out, inp, U, geometry(p.N, p.H, p.W, p.C, p.OH, p.OW, p.OC, p.PT, p.PL), bias,
                 relu);
}

void winograd_backward_input(float* dinp, const float* dout, const float* weight,
                             const Conv2DParams& p) {
    CNNFAST_CHECK(winograd_applicable(p), "winograd_backward_input: needs 3x3, stride 1");
    float* U = thread_scratch(t_kernel, (size_t)16 * p.C * p.OC);
    if (!U) throw std::bad_alloc();
    transform_kernel(U, weight, p.C, p.OC, true);
    // dinp[ih] = sum over kh of dout[ih + kh - (2 - PT)] * w[2 - kh]: the forward routine on
    // dout with the flipped kernel and leading padding 2 - PT (dout is zero outside OH x OW).
    winograd_run(dinp, dout, U, geometry(p.N, p.OH, p.OW, p.OC, p.H, p.W, p.C, 2 - p.PT, 2 - p.PL),
                 nullptr, false);
}

// Groups of consecutive blocks whose S partials the weight gradient sums separately: fixed by
// the shape (not the threads), so the sums are bit-identical for any thread count, and up to
// this many threads share the work.
static constexpr int WD_GROUPS = 8;

// S[i] = S[i] + S[SN + i] + S[2 SN + i] + ... (G partials), each element summed in group order
// (bit-identical however the elements are split over threads); vectorised over i.
CNNFAST_CLONES static void add_partial_range(float* __restrict S, const float* __restrict P,
                                             size_t n) {
    for (size_t i = 0; i < n; ++i) S[i] += P[i];
}

static void add_partials(float* S, size_t SN, int G) {
    constexpr size_t SPAN = 4096;  // elements per task: one cache-sized run of each partial
    const int64_t spans = (int64_t)((SN + SPAN - 1) / SPAN);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (SN * G > 65536 && !in_parallel())
#endif
    for (int64_t s = 0; s < spans; ++s) {
        const size_t i0 = (size_t)s * SPAN, n = std::min(SPAN, SN - i0);
        for (int q = 1; q < G; ++q) add_partial_range(S + i0, S + (size_t)q * SN + i0, n);
    }
}

void winograd_backward_weight(float* dweight, float* dbias, const float* dout, const float* inp,
                              const Conv2DParams& p) {
    CNNFAST_CHECK(winograd_applicable(p), "winograd_backward_weight: needs 3x3, stride 1");
    const Geometry g = geometry(p.N, p.H, p.W, p.C, p.OH, p.OW, p.OC, p.PT, p.PL);
    const int64_t tiles = (int64_t)g.N * g.TH * g.TW;
    const int64_t blocks = (tiles + g.T - 1) / g.T;
    const int G = (int)std::min<int64_t>(blocks, WD_GROUPS);
    const size_t SN = (size_t)16 * g.C * g.K;  // one partial S (16, C, K)
    float* S = thread_scratch(t_sums, SN * G);
    if (!S) throw std::bad_alloc();
    if (dbias) column_sums(dbias, dout, (int)((int64_t)p.N * p.OH * p.OW), p.OC, p.OC, false);
    const size_t block_n = (size_t)16 * g.T * (g.C + g.K);
    // Group q sums blocks [q*blocks/G, (q+1)*blocks/G) in order into S + q*SN:
    // S[xi] (C, K) += V[xi]^T (C, nt) @ Wd[xi] (nt, K), the group's first block overwriting.
    auto run_group = [&](int q, float* V, const float* zeros) {
        float* Sq = S + (size_t)q * SN;
        const int64_t b0 = q * blocks / G, b1 = (q + 1) * blocks / G;
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t t0 = b * g.T;
            const int nt = (int)std::min<int64_t>(g.T, tiles - t0);
            float* Wd = V + (size_t)16 * nt * g.C;
            const Layout LV = layout(g.C), LW = layout(g.K);
            input_transform(V, inp, zeros, g, t0, nt, LV);
            dout_transform(Wd, dout, zeros, g, t0, nt, LW);
            for (int xi = 0; xi < 16; ++xi)
                sgemm(true, false, g.C, g.K, nt, 1.0f, V + xi * LV.plane, (int)LV.tile,
                      Wd + xi * LW.plane, (int)LW.tile, b == b0 ? 0.0f : 1.0f,
                      Sq + (size_t)xi * g.C * g.K, g.K);
        }
    };
    const int zeros_n = std::max(g.C, g.K);
    const int nthr = in_parallel() || G < 2 ? 1 : std::min(num_threads(), G);
    if (nthr == 1) {
        float* V;
        const float* zeros;
        if (!block_scratch(&V, &zeros, block_n, zeros_n)) throw std::bad_alloc();
        for (int q = 0; q < G; ++q) run_group(q, V, zeros);
    } else {
        std::atomic<bool> failed{false};
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthr)
#endif
        for (int q = 0; q < G; ++q) {
            float* V;
            const float* zeros;
            if (block_scratch(&V, &zeros, block_n, zeros_n))
                run_group(q, V, zeros);
            else
                failed.store(true, std::memory_order_relaxed);
        }
        if (failed.load()) throw std::bad_alloc();
    }
    // S = partial 0 + partial 1 + ... in group order (elementwise: any split over threads
    // gives the same sums), then dW = G^T S G.
    if (G > 1) add_partials(S, SN, G);
    kernel_gradient(dweight, S, g.C, g.K);
}

}  // namespace cnnfast
