// gemm_cpu.cpp -- SGEMM: a packed, register-blocked GEMM (GotoBLAS/BLIS style) with runtime ISA
// dispatch, and the plain triple loop it is tested against.
//
// Blocking scheme. C (M,N) += op(A) (M,K) @ op(B) (K,N) is cut three times:
//   for jc in N step NC:              B panel  (kc,NC)  packed per thread (<= 1 MB)
//     for pc in K step kc <= KC:      one rank-kc update; the first one applies beta (or bias)
//       pack B(pc:pc+kc, jc:jc+NC) into NR-wide micro-panels, zero padded
//       for ic in M step MC:          A block  (MC,kc)  packed per thread, stays in L2 (<= 192 KB)
//         pack A(ic:ic+MC, pc:pc+kc) into MR-tall micro-panels, zero padded
//         for jr in NC step NR:       B micro-panel (kc,NR) stays in L1 while ...
//           for ir in MC step MR:     ... the micro-kernel computes one MR x NR tile of C in
//             micro-kernel            registers: kc rank-1 updates, FMA of a broadcast A value
//                                     with an NR-wide row of B.
// Packing makes every operand contiguous and aligned whatever its layout (all four transpose
// cases are handled by the packing routines alone) and lets partial tiles run the full kernel.
//
// Threads: C is cut into one slab per thread (rows or columns) and each thread runs the loops
// above on its slab with its own packing buffers.
// Determinism: the value of each C element depends only on the K blocking (kc_block(K)) and the
// micro-kernel's summation order, never on MC/NC or on which thread computed the tile. Threads
// split C (never K), so the result is bit-identical for any thread count. Different ISAs may
// round differently.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "common.h"
#include "gemm.h"
#include "isa.h"

#if defined(__x86_64__) || defined(__i386__)
#define CNNFAST_X86 1
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnnfast {

// ---------------------------------------------------------------------------------------------
// Reference: the oracle for the tests. float64 accumulation, same contract as sgemm.

static inline float at(const float* X, bool trans, int ld, int r, int c) {
    return trans ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

void sgemm_reference(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                     const float* B, int ldb, float beta, float* C, int ldc) {
    CNNFAST_CHECK(M >= 0 && N >= 0 && K >= 0, "sgemm_reference: negative size");
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            double acc = 0.0;
            for (int k = 0; k < K; ++k) acc += (double)at(A, ta, lda, i, k) * at(B, tb, ldb, k, j);
            float prev = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
            C[(size_t)i * ldc + j] = alpha * (float)acc + prev;
        }
}

// ---------------------------------------------------------------------------------------------
// Block sizes. The K blocking is the only one that changes results (it decides when partial
// sums are rounded into C), so it is the same for every ISA and thread count.

static constexpr int KC = 256;   // at most: B micro-panel KC*NR*4 = 32 KB stays in a 48 KB L1
static constexpr int MC = 192;   // A block MC*KC*4 = 192 KB: comfortably inside a 2 MB L2
static constexpr int NC = 1024;  // B panel KC*NC*4 = 1 MB: in L2 next to the A block

// Depth of the rank-kc updates for a given K: K is cut into equal blocks of at most KC, so a
// K of 288 (a 3x3x32 conv) is two blocks of 144 instead of 256 + a 32-deep tail whose C update
// costs as much as its arithmetic. Depends on K only: same blocks for every thread count.
// (KC = 320 measured 10-25% slower on square problems: the two micro-panels overflow L1.)
static int kc_block(int K) {
    const int nblocks = (K + KC - 1) / KC;
    return std::min(KC, (K + nblocks - 1) / nblocks + 3) / 4 * 4;
}

// Below this many flops (2*M*N*K) one thread is faster than waking the team (~10-30 us).
static constexpr double PARALLEL_MIN_FLOPS = 4.0e6;

// The epilogue writes one tile: C = alpha*acc + (first K block ? beta*C + bias : C).
// Multiplies and adds are separate (no FMA) so the vector and scalar epilogues round alike.
struct Epilogue {
    float alpha;
    float beta;         // beta of this K block: the caller's beta first, then 1
    const float* bias;  // bias + column of the tile's first element, or nullptr
    bool relu;          // last K block of a fused ReLU: v = v > 0 ? v : 0 (NaN -> 0, -0 -> +0)
};

// Scalar epilogue from an MR x NR tile in a local buffer: partial tiles and the generic kernel.
static inline void store_tile_scalar(float* c, int ldc, const float* acc, int nr, int m, int n,
                                     const Epilogue& e) {
    for (int r = 0; r < m; ++r) {
        float* cr = c + (size_t)r * ldc;
        const float* ar = acc + (size_t)r * nr;
        for (int j = 0; j < n; ++j) {
            float v = e.alpha * ar[j];
            if (e.bias) v = v + e.bias[j];
            if (e.beta != 0.0f) v = v + e.beta * cr[j];
            if (e.relu) v = v > 0.0f ? v : 0.0f;
            cr[j] = v;
        }
    }
}

// Micro-kernel: c (m x n, m <= MR, n <= NR) from kc steps of packed a (kc, MR) and b (kc, NR).
using MicroKernel = void (*)(int kc, const float* a, const float* b, float* c, int ldc, int m,
                             int n, const Epilogue& e);

// ---- generic: plain loops the compiler may auto-vectorise (baseline SSE2 on x86-64) ---------

// 4 x 8: with SSE2's 16 registers a bigger tile would spill.
static constexpr int GEN_MR = 4, GEN_NR = 8;

static void kernel_generic(int kc, const float* a, const float* b, float* c, int ldc, int m, int n,
                           const Epilogue& e) {
    float acc[GEN_MR * GEN_NR] = {};
    for (int k = 0; k < kc; ++k, a += GEN_MR, b += GEN_NR)
        for (int r = 0; r < GEN_MR; ++r) {
            const float ar = a[r];
            for (int j = 0; j < GEN_NR; ++j) acc[r * GEN_NR + j] += ar * b[j];
        }
    store_tile_scalar(c, ldc, acc, GEN_NR, m, n, e);
}

#ifdef CNNFAST_X86
// ---- AVX2 + FMA: 6 x 16 tile = 12 ymm accumulators + 2 for B + 1 broadcast -------------------

static constexpr int AVX2_MR = 6, AVX2_NR = 16;

// Where the micro-kernel reads A from. kPacked: a packed micro-panel, value (r,k) at
// a[k*MR + r]. kRows: MR rows of a row-major op(A) read where they lie, (r,k) at a[r*lda + k]
// (a non-transposed A). kCols: MR columns of a transposed A read where they lie, (r,k) at
// a[k*lda + r]. The direct forms need no packing: each broadcast reads one float and the A
// micro-panel stays in L1 while the tile runs across the B panel. Rows (columns) past m repeat
// row m-1 (valid memory); their results are never stored. All three sum in the same order:
// bit-identical results.
enum class AForm { kPacked, kRows, kCols };

template <AForm F>
__attribute__((target("avx2,fma"), always_inline)) static inline void avx2_tile(
    int kc, const float* a, int lda, const float* b, float* c, int ldc, int m, int n,
    const Epilogue& e) {
    const float* ar[AVX2_MR];
    for (int r = 0; r < AVX2_MR; ++r) {
        const int rr = F == AForm::kPacked ? r : std::min(r, m - 1);
        ar[r] = a + (F == AForm::kRows ? (size_t)rr * lda : (size_t)rr);
    }
    const size_t ks = F == AForm::kPacked ? AVX2_MR : F == AForm::kRows ? 1 : (size_t)lda;
    __m256 acc[AVX2_MR][2];
    for (int r = 0; r < AVX2_MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    size_t off = 0;
    for (int k = 0; k < kc; ++k, b += AVX2_NR, off += ks) {
        const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
        for (int r = 0; r < AVX2_MR; ++r) {
            const __m256 av = _mm256_broadcast_ss(ar[r] + off);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    // Spill the accumulators to a tile with constant indices only: indexing acc[r] with a run-time
    // r below would make the compiler keep acc in memory and store it on every k step.
    alignas(32) float tile[AVX2_MR * AVX2_NR];
#pragma GCC unroll 6
    for (int r = 0; r < AVX2_MR; ++r) {
        _mm256_store_ps(tile + r * AVX2_NR, acc[r][0]);
        _mm256_store_ps(tile + r * AVX2_NR + 8, acc[r][1]);
    }
    if (m == AVX2_MR && n == AVX2_NR) {
        const __m256 va = _mm256_set1_ps(e.alpha), vb = _mm256_set1_ps(e.beta);
        for (int r = 0; r < AVX2_MR; ++r) {
            float* cr = c + (size_t)r * ldc;
            for (int h = 0; h < 2; ++h) {
                __m256 v = _mm256_mul_ps(va, _mm256_load_ps(tile + r * AVX2_NR + 8 * h));
                if (e.bias) v = _mm256_add_ps(v, _mm256_loadu_ps(e.bias + 8 * h));
                if (e.beta != 0.0f)
                    v = _mm256_add_ps(v, _mm256_mul_ps(vb, _mm256_loadu_ps(cr + 8 * h)));
                if (e.relu)  // keep v where v > 0 (ordered: NaN and -0 give +0, as the scalar)
                    v = _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
                _mm256_storeu_ps(cr + 8 * h, v);
            }
        }
        return;
    }
    store_tile_scalar(c, ldc, tile, AVX2_NR, m, n, e);
}

__attribute__((target("avx2,fma"))) static void kernel_avx2(int kc, const float* a, const float* b,
                                                            float* c, int ldc, int m, int n,
                                                            const Epilogue& e) {
    avx2_tile<AForm::kPacked>(kc, a, 0, b, c, ldc, m, n, e);
}

__attribute__((target("avx2,fma"))) static void kernel_avx2_direct(bool ta, int kc, const float* a,
                                                                   int lda, const float* b,
                                                                   float* c, int ldc, int m, int n,
                                                                   const Epilogue& e) {
    if (ta)
        avx2_tile<AForm::kCols>(kc, a, lda, b, c, ldc, m, n, e);
    else
        avx2_tile<AForm::kRows>(kc, a, lda, b, c, ldc, m, n, e);
}

// A transposed B panel (B is (N,K): op(B) columns are rows in memory) for NR = 16: 8x8 blocks
// are transposed in registers (8 loads, 24 shuffles, 8 stores) instead of 64 strided scalar
// stores. Columns j >= n are zero; the k tail (kc % 8) is scalar. Same values as the scalar
// packing (a pure copy).
__attribute__((target("avx2,fma"))) static void pack_b_trans_avx2(float* dst, const float* B,
                                                                  int ldb, int k0, int j0, int kc,
                                                                  int n) {
    const int k8 = kc / 8 * 8;
    for (int jb = 0; jb < AVX2_NR; jb += 8) {
        const float* src[8];
        for (int r = 0; r < 8; ++r)
            src[r] = jb + r < n ? B + (size_t)(j0 + jb + r) * ldb + k0 : nullptr;
        for (int k = 0; k < k8; k += 8) {
            __m256 r0, r1, r2, r3, r4, r5, r6, r7;
            const __m256 z = _mm256_setzero_ps();
            r0 = src[0] ? _mm256_loadu_ps(src[0] + k) : z;
            r1 = src[1] ? _mm256_loadu_ps(src[1] + k) : z;
            r2 = src[2] ? _mm256_loadu_ps(src[2] + k) : z;
            r3 = src[3] ? _mm256_loadu_ps(src[3] + k) : z;
            r4 = src[4] ? _mm256_loadu_ps(src[4] + k) : z;
            r5 = src[5] ? _mm256_loadu_ps(src[5] + k) : z;
            r6 = src[6] ? _mm256_loadu_ps(src[6] + k) : z;
            r7 = src[7] ? _mm256_loadu_ps(src[7] + k) : z;
            const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float* d = dst + (size_t)k * AVX2_NR + jb;
            _mm256_store_ps(d + 0 * AVX2_NR, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_store_ps(d + 1 * AVX2_NR, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_store_ps(d + 2 * AVX2_NR, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_store_ps(d + 3 * AVX2_NR, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_store_ps(d + 4 * AVX2_NR, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_store_ps(d + 5 * AVX2_NR, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_store_ps(d + 6 * AVX2_NR, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_store_ps(d + 7 * AVX2_NR, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (int k = k8; k < kc; ++k)
            for (int r = 0; r < 8; ++r)
                dst[(size_t)k * AVX2_NR + jb + r] = src[r] ? src[r][k] : 0.0f;
    }
}

// ---- AVX-512: 12 x 32 tile = 24 zmm accumulators + 2 for B + broadcasts ----------------------
// The epilogue uses masked loads/stores, so partial tiles never leave the vector path.

static constexpr int AVX512_MR = 12, AVX512_NR = 32;

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) static void kernel_avx512(
    int kc, const float* a, const float* b, float* c, int ldc, int m, int n, const Epilogue& e) {
    __m512 acc[AVX512_MR][2];
    for (int r = 0; r < AVX512_MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; ++k, a += AVX512_MR, b += AVX512_NR) {
        const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
        for (int r = 0; r < AVX512_MR; ++r) {
            const __m512 ar = _mm512_set1_ps(a[r]);
            acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
        }
    }
    // Spill to a tile with constant indices (see kernel_avx2), then finish row by row.
    alignas(64) float tile[AVX512_MR * AVX512_NR];
#pragma GCC unroll 12
    for (int r = 0; r < AVX512_MR; ++r) {
        _mm512_store_ps(tile + r * AVX512_NR, acc[r][0]);
        _mm512_store_ps(tile + r * AVX512_NR + 16, acc[r][1]);
    }
    const __mmask16 m0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    const __mmask16 m1 =
        n >= 32 ? (__mmask16)0xFFFF : (n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : (__mmask16)0);
    const __mmask16 mask[2] = {m0, m1};
    const __m512 va = _mm512_set1_ps(e.alpha), vb = _mm512_set1_ps(e.beta);
    __m512 vbias[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    if (e.bias)
        for (int h = 0; h < 2; ++h) vbias[h] = _mm512_maskz_loadu_ps(mask[h], e.bias + 16 * h);
    for (int r = 0; r < m; ++r) {
        float* cr = c + (size_t)r * ldc;
        for (int h = 0; h < 2; ++h) {
            __m512 v = _mm512_mul_ps(va, _mm512_load_ps(tile + r * AVX512_NR + 16 * h));
            if (e.bias) v = _mm512_add_ps(v, vbias[h]);
            if (e.beta != 0.0f)
                v = _mm512_add_ps(v,
                                  _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mask[h], cr + 16 * h)));
            if (e.relu)  // keep v where v > 0 (ordered: NaN and -0 give +0, as the scalar)
                v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), v);
            _mm512_mask_storeu_ps(cr + 16 * h, mask[h], v);
        }
    }
}
#endif  // CNNFAST_X86

// ---------------------------------------------------------------------------------------------
// Dispatch table: one row for every ISA isa.cpp can choose (isa.h's active_isa()).

// The same tile reading A where it lies (row stride lda), no packing: a points at op(A)(i, k0),
// i.e. A + i*lda + k0, or A + k0*lda + i when ta.
using DirectKernel = void (*)(bool ta, int kc, const float* a, int lda, const float* b, float* c,
                              int ldc, int m, int n, const Epilogue& e);

// Packs one NR-wide panel of a transposed B (see pack_b_panel); nullptr: the scalar packing.
using PackBTrans = void (*)(float* dst, const float* B, int ldb, int k0, int j0, int kc, int n);

struct IsaImpl {
    Isa isa;
    int mr, nr;
    MicroKernel kernel;
    DirectKernel direct_kernel;  // nullptr: A is always packed
    PackBTrans pack_b_trans;     // nullptr: scalar transposing copy
};

static const IsaImpl kIsas[] = {
#ifdef CNNFAST_X86
    {Isa::avx512, AVX512_MR, AVX512_NR, kernel_avx512, nullptr, nullptr},
    {Isa::avx2, AVX2_MR, AVX2_NR, kernel_avx2, kernel_avx2_direct, pack_b_trans_avx2},
#endif
    {Isa::generic, GEN_MR, GEN_NR, kernel_generic, nullptr, nullptr},
};

static const IsaImpl& active_impl() {
    const Isa isa = active_isa();
    for (const IsaImpl& impl : kIsas)
        if (impl.isa == isa) return impl;
    return kIsas[sizeof(kIsas) / sizeof(kIsas[0]) - 1];  // not reached: isa.cpp has the same list
}

// ---------------------------------------------------------------------------------------------
// Packing. A block (mc,kc) -> ceil(mc/MR) micro-panels, each kc steps of MR values (rows i..i+MR
// at one k). B panel (kc,nc) -> ceil(nc/NR) micro-panels, each kc steps of NR values. Rows or
// columns past the edge are zero, so the micro-kernel always runs its full tile.

// op(A)(i,k) for i in [i0,i0+mc), k in [k0,k0+kc).
CNNFAST_NO_MEMCPY_IDIOM
static void pack_a(float* dst, const float* A, int lda, bool ta, int i0, int k0, int mc, int kc,
                   int MR) {
    for (int ip = 0; ip < mc; ip += MR, dst += (size_t)MR * kc) {
        const int m = std::min(MR, mc - ip);
        if (ta) {  // A is (K,M): the MR values of one k are contiguous
            for (int k = 0; k < kc; ++k) {
                const float* src = A + (size_t)(k0 + k) * lda + i0 + ip;
                float* d = dst + (size_t)k * MR;
                for (int r = 0; r < m; ++r) d[r] = src[r];
                for (int r = m; r < MR; ++r) d[r] = 0.0f;
            }
        } else {  // A is (M,K): read each row contiguously, write with stride MR
            for (int r = 0; r < m; ++r) {
                const float* src = A + (size_t)(i0 + ip + r) * lda + k0;
                for (int k = 0; k < kc; ++k) dst[(size_t)k * MR + r] = src[k];
            }
            for (int r = m; r < MR; ++r)
                for (int k = 0; k < kc; ++k) dst[(size_t)k * MR + r] = 0.0f;
        }
    }
}

// One NR-wide micro-panel of op(B)(k,j) for k in [k0,k0+kc), j in [j0,j0+n), n <= NR.
CNNFAST_NO_MEMCPY_IDIOM
static void pack_b_panel(float* dst, const float* B, int ldb, bool tb, int k0, int j0, int kc,
                         int n, int NR) {
    if (!tb) {  // B is (K,N): one k is a contiguous row segment
        for (int k = 0; k < kc; ++k) {
            const float* src = B + (size_t)(k0 + k) * ldb + j0;
            float* d = dst + (size_t)k * NR;
            for (int j = 0; j < n; ++j) d[j] = src[j];  // 16-32 floats: inline, no memcpy call
            for (int j = n; j < NR; ++j) d[j] = 0.0f;
        }
    } else {  // B is (N,K): read each column of op(B) contiguously, write with stride NR
        for (int j = 0; j < n; ++j) {
            const float* src = B + (size_t)(j0 + j) * ldb + k0;
            for (int k = 0; k < kc; ++k) dst[(size_t)k * NR + j] = src[k];
        }
        for (int j = n; j < NR; ++j)
            for (int k = 0; k < kc; ++k) dst[(size_t)k * NR + j] = 0.0f;
    }
}

// ---------------------------------------------------------------------------------------------
// Packing memory: one 64-byte aligned buffer per calling thread, grown when a bigger problem
// comes and otherwise reused, so steady-state calls allocate nothing. It is sized before the
// parallel region (an allocation failure throws outside it) and holds, for each thread, a B
// panel followed by an A block.

namespace {
struct AlignedBuffer {
    float* ptr = nullptr;
    size_t cap = 0;  // floats
    ~AlignedBuffer() { std::free(ptr); }
    float* reserve(size_t n) {
        if (n > cap) {
            std::free(ptr);
            ptr = nullptr;
            cap = 0;
            size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
            ptr = static_cast<float*>(std::aligned_alloc(64, bytes));
            if (!ptr) throw std::bad_alloc();
            cap = n;
        }
        return ptr;
    }
};
thread_local AlignedBuffer t_pack;
}  // namespace

static inline int round_up(int x, int m) {
    return (x + m - 1) / m * m;
}

// The Goto loops, serial, on the sub-matrix C[i0:i1, j0:j1]: every thread runs this on its own
// part of C with its own packing buffers, so threads never wait for each other.
CNNFAST_NO_MEMCPY_IDIOM
static void gemm_part(const IsaImpl& isa, bool ta, bool tb, int K, float alpha, const float* A,
                      int lda, const float* B, int ldb, float beta, float* C, int ldc,
                      const float* bias, bool relu, int i0, int i1, int j0, int j1, float* bpack,
                      float* apack) {
    const int MR = isa.mr, NR = isa.nr;
    const MicroKernel kernel = isa.kernel;
    // A is read where it lies, unless its rows are a multiple of 1 KB apart: then the MR rows
    // (or, transposed, the kc rows of a micro-panel) fall in the same few L1 sets and evict
    // each other -- square 1024 GEMMs ran at 59 instead of 72 GFLOP/s. Packing avoids that.
    const bool direct_a = isa.direct_kernel != nullptr && lda % 256 != 0;
    const int kcb = kc_block(K);
    for (int jc = j0; jc < j1; jc += NC) {
        const int nc = std::min(NC, j1 - jc);
        for (int pc = 0; pc < K; pc += kcb) {
            const int kc = std::min(kcb, K - pc);
            const bool first = pc == 0;      // only the first rank-kc update applies beta and bias
            const bool last = pc + kc >= K;  // ... and only the last one the ReLU
            for (int jp = 0; jp * NR < nc; ++jp) {
                float* dst = bpack + (size_t)jp * kc * NR;
                const int j = jc + jp * NR, n = std::min(NR, nc - jp * NR);
                if (tb && isa.pack_b_trans)
                    isa.pack_b_trans(dst, B, ldb, pc, j, kc, n);
                else
                    pack_b_panel(dst, B, ldb, tb, pc, j, kc, n, NR);
            }
            for (int ic = i0; ic < i1; ic += MC) {
                const int mc = std::min(MC, i1 - ic);
                if (!direct_a) pack_a(apack, A, lda, ta, ic, pc, mc, kc, MR);
                for (int jr = 0; jr < nc; jr += NR) {
                    const int j = jc + jr, n = std::min(NR, nc - jr);
                    const Epilogue e{alpha, first ? beta : 1.0f, first && bias ? bias + j : nullptr,
                                     relu && last};
                    const float* bp = bpack + (size_t)(jr / NR) * kc * NR;
                    for (int ir = 0; ir < mc; ir += MR) {
                        float* c = C + (size_t)(ic + ir) * ldc + j;
                        const int m = std::min(MR, mc - ir);
                        if (direct_a)
                            isa.direct_kernel(ta, kc,
                                              ta ? A + (size_t)pc * lda + ic + ir
                                                 : A + (size_t)(ic + ir) * lda + pc,
                                              lda, bp, c, ldc, m, n, e);
                        else
                            kernel(kc, apack + (size_t)ir * kc, bp, c, ldc, m, n, e);
                    }
                }
            }
        }
    }
}

// C = alpha * op(A) @ op(B) + beta * C (+ bias on every row when bias != nullptr).
// Threads split C into equal slabs along its longer side (rows when M >= N, else columns),
// aligned to the micro-tile. Each thread packs the B panels (or A blocks) of its slab itself:
// a little duplicated packing, but no barriers, and each core's packed data stays in its own L2.
static void sgemm_packed(const IsaImpl& isa, bool ta, bool tb, int M, int N, int K, float alpha,
                         const float* A, int lda, const float* B, int ldb, float beta, float* C,
                         int ldc, const float* bias, bool relu) {
    const int MR = isa.mr, NR = isa.nr;
    const double flops = 2.0 * M * N * K;
    // Inside a parallel region (a conv running whole image chunks per thread) stay serial.
    int nt = flops < PARALLEL_MIN_FLOPS || in_parallel() ? 1 : num_threads();
    const bool split_rows = M >= N;
    const int unit = split_rows ? MR : NR;
    const int extent = split_rows ? M : N;
    const int slab = round_up((extent + nt - 1) / nt, unit);
    nt = (extent + slab - 1) / slab;  // drop threads that would get nothing

    const int width = split_rows ? N : std::min(N, slab);
    const int height = split_rows ? std::min(M, slab) : M;
    const size_t b_size = (size_t)kc_block(K) * round_up(std::min(width, NC), NR);
    const size_t a_size = (size_t)kc_block(K) * round_up(std::min(height, MC), MR);
    const size_t per_thread = round_up((int)(b_size + a_size), 16);  // 64-byte aligned parts
    float* work = t_pack.reserve(per_thread * nt);

#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static, 1) if (nt > 1)
#endif
    for (int t = 0; t < nt; ++t) {
        const int lo = t * slab, hi = std::min(extent, lo + slab);
        float* bpack = work + per_thread * t;
        float* apack = bpack + b_size;
        if (split_rows)
            gemm_part(isa, ta, tb, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, relu, lo, hi, 0, N,
                      bpack, apack);
        else
            gemm_part(isa, ta, tb, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, relu, 0, M, lo, hi,
                      bpack, apack);
    }
}

// K == 0 or alpha == 0: op(A) @ op(B) contributes nothing and A, B are not read (BLAS rule).
static void scale_c(int M, int N, float beta, float* C, int ldc, const float* bias, bool relu) {
    for (int i = 0; i < M; ++i) {
        float* c = C + (size_t)i * ldc;
        for (int j = 0; j < N; ++j) {
            float v = beta == 0.0f ? 0.0f : beta * c[j];
            if (bias) v = v + bias[j];
            c[j] = relu ? (v > 0.0f ? v : 0.0f) : v;
        }
    }
}

void sgemm_bias(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc, const float* bias,
                bool relu) {
    CNNFAST_CHECK(M >= 0 && N >= 0 && K >= 0, "sgemm: negative size M=" + std::to_string(M) +
                                                  " N=" + std::to_string(N) +
                                                  " K=" + std::to_string(K));
    CNNFAST_CHECK(ldc >= N, "sgemm: ldc smaller than N");
    CNNFAST_CHECK(lda >= (ta ? M : K), "sgemm: lda too small");
    CNNFAST_CHECK(ldb >= (tb ? K : N), "sgemm: ldb too small");
    const IsaImpl& isa = active_impl();
    if (M == 0 || N == 0) return;
    if (K == 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc, bias, relu);
        return;
    }
    sgemm_packed(isa, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, relu);
}

void sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
    sgemm_bias(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr, false);
}

// ---------------------------------------------------------------------------------------------

CNNFAST_CLONES
void column_sums(float* out, const float* X, int rows, int cols, int ldx, bool accumulate) {
    // Columns are split in fixed 16-wide groups and each column is summed in row order, so the
    // result does not depend on the thread count. Rows go in the inner-most loop's outer level
    // so the 16 additions of a row vectorise.
    constexpr int G = 16;
    const int ngroups = (cols + G - 1) / G;
#ifdef _OPENMP
    const bool par = (double)rows * cols > 1.0e5 && !in_parallel();
#pragma omp parallel for schedule(static) if (par)
#endif
    for (int g = 0; g < ngroups; ++g) {
        const int j0 = g * G, n = std::min(G, cols - j0);
        float acc[G] = {};
        if (accumulate)
            for (int j = 0; j < n; ++j) acc[j] = out[j0 + j];
        for (int r = 0; r < rows; ++r) {
            const float* x = X + (size_t)r * ldx + j0;
            if (n == G)
                for (int j = 0; j < G; ++j) acc[j] += x[j];
            else
                for (int j = 0; j < n; ++j) acc[j] += x[j];
        }
        for (int j = 0; j < n; ++j) out[j0 + j] = acc[j];
    }
}

}  // namespace cnnfast
