// gemm_cpu.cpp -- SGEMM: reference triple loop and the dispatched implementation.
// (First version: cache-blocked scalar code; ISA-specific micro-kernels come behind gemm_isa().)
#include <algorithm>
#include <cstring>
#include <string>

#include "common.h"
#include "gemm.h"

namespace cnnfast {

static inline float at(const float* X, bool trans, int ld, int r, int c) {
    return trans ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

void sgemm_reference(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                     const float* B, int ldb, float beta, float* C, int ldc) {
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            double acc = 0.0;
            for (int k = 0; k < K; ++k) acc += (double)at(A, ta, lda, i, k) * at(B, tb, ldb, k, j);
            float prev = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
            C[(size_t)i * ldc + j] = alpha * (float)acc + prev;
        }
}

void sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
    CNNFAST_CHECK(M >= 0 && N >= 0 && K >= 0, "sgemm: negative size");
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int i = 0; i < M; ++i) {
        float* c = C + (size_t)i * ldc;
        for (int j = 0; j < N; ++j) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        for (int k = 0; k < K; ++k) {
            float a = alpha * at(A, ta, lda, i, k);
            if (!tb) {
                const float* b = B + (size_t)k * ldb;
                for (int j = 0; j < N; ++j) c[j] += a * b[j];
            } else {
                for (int j = 0; j < N; ++j) c[j] += a * B[(size_t)j * ldb + k];
            }
        }
    }
}

const char* gemm_isa() { return "generic"; }
const char* gemm_supported_isas() { return "generic"; }
void set_gemm_isa(const char* name) {
    std::string s(name);
    CNNFAST_CHECK(s == "generic" || s == "auto", "set_gemm_isa: unsupported ISA '" + s + "'");
}

}  // namespace cnnfast
