// gemm_cuda.cu -- fp32 SGEMM (tiled, shared memory, 4x4 register blocking), row-major, with the
// contract of cnnfast::sgemm (gemm.h). No TF32, no tensor cores: parity with the CPU comes
// first. Also the bias-add and column-sum helpers Dense and Conv2D share.
//   C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C;  beta == 0 never reads C.
// Tiles: BM x BN = 64 x 64 per block of 16 x 16 threads, BK = 16 deep; thread (ty,tx) owns
// rows ty + 16*i and columns tx + 16*j (i,j < 4): a warp reads one A value per row (broadcast)
// and 32 consecutive B values (no bank conflicts). Accumulation is k-ascending with fmaf.
#include "cuda_common.cuh"

namespace cnnfast {
namespace cuda {

namespace {

constexpr int BM = 64, BN = 64, BK = 16, TD = 16;  // TD x TD threads, 4 x 4 each

template <bool TA, bool TB>
__global__ void __launch_bounds__(TD* TD)
    sgemm_tiled(int M, int N, int K, float alpha, const float* __restrict__ A, int lda,
                const float* __restrict__ B, int ldb, float beta, float* __restrict__ C, int ldc) {
    __shared__ float As[BK][BM + 1];
    __shared__ float Bs[BK][BN + 1];
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * TD + tx;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += BK) {
        // Each thread loads 4 of the 64x16 A elements and 4 of the 16x64 B elements, with the
        // fastest-varying thread index along the contiguous axis of the source (coalesced).
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int e = tid + r * TD * TD;
            int i, k;
            if (TA) {
                k = e / BM;
                i = e % BM;
            } else {
                i = e / BK;
                k = e % BK;
            }
            const int gm = m0 + i, gk = k0 + k;
            float a = 0.0f;
            if (gm < M && gk < K) a = TA ? A[(size_t)gk * lda + gm] : A[(size_t)gm * lda + gk];
            As[k][i] = a;
            int n;
            if (TB) {
                n = e / BK;
                k = e % BK;
            } else {
                k = e / BN;
                n = e % BN;
            }
            const int gn = n0 + n;
            const int gk2 = k0 + k;
            float b = 0.0f;
            if (gn < N && gk2 < K) b = TB ? B[(size_t)gn * ldb + gk2] : B[(size_t)gk2 * ldb + gn];
            Bs[k][n] = b;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < BK; ++k) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = As[k][ty + TD * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = Bs[k][tx + TD * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int gm = m0 + ty + TD * i;
        if (gm >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int gn = n0 + tx + TD * j;
            if (gn >= N) continue;
            float* c = C + (size_t)gm * ldc + gn;
            const float prev = beta == 0.0f ? 0.0f : beta * *c;
            *c = alpha * acc[i][j] + prev;
        }
    }
}

__global__ void add_bias_rows_kernel(float* __restrict__ out, const float* __restrict__ bias,
                                     int64_t total, int N) {
    CNNFAST_GRID_STRIDE(i, total) out[i] += bias[i % N];
}

// dbias[o] = sum over rows of dout[r, o]. Block (32 columns) x (32 row lanes): each lane sums
// rows lane, lane+32, ... in order; the 32 partials are then added in lane order. Fixed order,
// so the result is the same on every run (not the CPU's row order: fp32 tolerance).
__global__ void sum_rows_kernel(float* __restrict__ dbias, const float* __restrict__ dout, int M,
                                int N) {
    __shared__ float part[32][33];
    const int col = blockIdx.x * 32 + threadIdx.x, lane = threadIdx.y;
    float s = 0.0f;
    if (col < N)
        for (int r = lane; r < M; r += 32) s += dout[(size_t)r * N + col];
    part[lane][threadIdx.x] = s;
    __syncthreads();
    if (lane == 0 && col < N) {
        float t = 0.0f;
        for (int l = 0; l < 32; ++l) t += part[l][threadIdx.x];
        dbias[col] = t;
    }
}

}  // namespace

void sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
    CNNFAST_CHECK(M >= 0 && N >= 0 && K >= 0, "sgemm: negative size");
    if (M == 0 || N == 0) return;
    dim3 block(TD, TD), grid((N + BN - 1) / BN, (M + BM - 1) / BM);
    CNNFAST_CHECK(grid.y <= 65535, "sgemm: M too large for one launch");
    cudaStream_t s = cur_stream();
    if (!ta && !tb)
        sgemm_tiled<false, false>
            <<<grid, block, 0, s>>>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else if (ta && !tb)
        sgemm_tiled<true, false>
            <<<grid, block, 0, s>>>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else if (!ta && tb)
        sgemm_tiled<false, true>
            <<<grid, block, 0, s>>>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        sgemm_tiled<true, true>
            <<<grid, block, 0, s>>>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    CNNFAST_CUDA_LAUNCHED("sgemm_tiled");
}

void add_bias_rows(float* out, const float* bias, int M, int N) {
    const int64_t total = (int64_t)M * N;
    if (!total) return;
    add_bias_rows_kernel<<<grid_for(total), kThreads, 0, cur_stream()>>>(out, bias, total, N);
    CNNFAST_CUDA_LAUNCHED("add_bias_rows");
}

void sum_rows(float* dbias, const float* dout, int M, int N) {
    if (N <= 0) return;
    sum_rows_kernel<<<(N + 31) / 32, dim3(32, 32), 0, cur_stream()>>>(dbias, dout, M, N);
    CNNFAST_CUDA_LAUNCHED("sum_rows");
}

}  // namespace cuda
}  // namespace cnnfast
