// gemm.h -- single-precision GEMM with runtime ISA dispatch (AVX-512 / AVX2+FMA / generic): it
// runs the micro-kernels of isa.h's active_isa().
#pragma once
#include <cstdint>

namespace cnnfast {

// C (M,N) = alpha * op(A) @ op(B) + beta * C, all row-major.
// op(A) is (M,K): A is (M,K) with leading dim lda, or (K,M) when trans_a.
// op(B) is (K,N): B is (K,N) with leading dim ldb, or (N,K) when trans_b.
// beta == 0 overwrites C without reading it (NaN in C does not propagate).
// OpenMP-parallel over blocks of C; no split-K across threads, so results are
// bit-identical for any thread count.
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc);

// sgemm plus a bias row and an optional ReLU: C = act(alpha * op(A) @ op(B) + beta * C + bias),
// with bias (N) added to every row of C (nullptr = none) and act(v) = v > 0 ? v : 0 when relu
// (else identity). Both happen in the GEMM's epilogue while the tile is in registers, so they
// cost no extra pass over C; the values are exactly those of the unfused sequence
// (sgemm, then activation_forward ReLU). Same determinism as sgemm.
void sgemm_bias(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                int lda, const float* B, int ldb, float beta, float* C, int ldc, const float* bias,
                bool relu = false);

// out (cols) = sum over rows of X (rows,cols) with leading dim ldx; accumulate adds to out
// instead of overwriting it. Every column is summed in row order, so the result is
// bit-identical for any thread count (used for dbias).
void column_sums(float* out, const float* X, int rows, int cols, int ldx, bool accumulate);

// Plain triple loop with the same contract: the oracle for sgemm's tests.
void sgemm_reference(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                     int lda, const float* B, int ldb, float beta, float* C, int ldc);

}  // namespace cnnfast
