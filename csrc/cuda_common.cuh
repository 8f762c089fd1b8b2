// cuda_common.cuh -- error checking and launch helpers shared by the *_cuda.cu files.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda_kernels.h"

namespace cnnfast {
namespace cuda {

[[noreturn]] inline void cuda_fail(cudaError_t e, const char* what, const char* file, int line) {
    throw std::runtime_error(std::string("cnnfast CUDA error: ") + what +
                             " failed: " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e) +
                             " (" + file + ":" + std::to_string(line) + ")");
}

// Every CUDA runtime call goes through this: a failure throws, never aborts.
#define CNNFAST_CUDA_CHECK(call)                                                              \
    do {                                                                                      \
        cudaError_t err_ = (call);                                                            \
        if (err_ != cudaSuccess) ::cnnfast::cuda::cuda_fail(err_, #call, __FILE__, __LINE__); \
    } while (0)

// After every kernel launch: catches bad launch configurations at once (execution errors
// surface at the next synchronising call).
#define CNNFAST_CUDA_LAUNCHED(name) CNNFAST_CUDA_CHECK(cudaPeekAtLastError())

inline cudaStream_t cur_stream() {
    return static_cast<cudaStream_t>(stream());
}

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements (capped; the loop covers the rest).
inline unsigned grid_for(int64_t n, int threads = kThreads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535 * 8) b = 65535 * 8;
    return static_cast<unsigned>(b);
}

#define CNNFAST_GRID_STRIDE(i, n)                                             \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (int64_t)blockDim.x * gridDim.x)

// std::max / std::min with their exact NaN behaviour ((a < b) ? b : a), unlike fmaxf/fminf,
// so NaN inputs propagate exactly as on the CPU.
__device__ __forceinline__ float std_max(float a, float b) {
    return (a < b) ? b : a;
}
__device__ __forceinline__ float std_min(float a, float b) {
    return (b < a) ? b : a;
}

// A device int that range-check kernels set (atomicOr) when an input is invalid. check_flag()
// zeroes it, runs `launch` and reads it back (synchronises): the host then throws, as the CPU
// kernel would, before any output is written. One flag per process (device_cuda.cu).
int* error_flag();
template <typename F>
int check_flag(F launch) {
    int* flag = error_flag();
    CNNFAST_CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), cur_stream()));
    launch(flag);
    int host = 0;
    CNNFAST_CUDA_CHECK(
        cudaMemcpyAsync(&host, flag, sizeof(int), cudaMemcpyDeviceToHost, cur_stream()));
    CNNFAST_CUDA_CHECK(cudaStreamSynchronize(cur_stream()));
    return host;
}

}  // namespace cuda
}  // namespace cnnfast
