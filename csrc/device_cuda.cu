// device_cuda.cu -- device runtime for the CUDA kernels: devices, memory, the stream, checks.
// No CUDA call happens at load time: importing cnnfast._cuda works without a GPU or a driver.
#include <mutex>

#include "cuda_common.cuh"

namespace cnnfast {
namespace cuda {

static cudaStream_t g_stream = nullptr;  // legacy default stream until set_stream()

int device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no driver / no device" error
        return 0;
    }
    return n;
}

std::string device_name(int device) {
    cudaDeviceProp prop;
    CNNFAST_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    return std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
           std::to_string(prop.minor) + ")";
}

void set_device(int device) {
    CNNFAST_CUDA_CHECK(cudaSetDevice(device));
}

int get_device() {
    int d = 0;
    CNNFAST_CUDA_CHECK(cudaGetDevice(&d));
    return d;
}

int runtime_version() {
    int v = 0;
    CNNFAST_CUDA_CHECK(cudaRuntimeGetVersion(&v));
    return v;
}

int driver_version() noexcept {
    int v = 0;
    if (cudaDriverGetVersion(&v) != cudaSuccess) return 0;
    return v;
}

void* device_malloc(size_t nbytes) {
    if (nbytes == 0) return nullptr;
    void* p = nullptr;
    CNNFAST_CUDA_CHECK(cudaMalloc(&p, nbytes));
    return p;
}

void device_free(void* p) noexcept {
    if (p) cudaFree(p);
}

void memcpy_h2d(void* dst, const void* src, size_t nbytes) {
    if (!nbytes) return;
    CNNFAST_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, g_stream));
    // The host buffer belongs to NumPy and may be freed when we return.
    CNNFAST_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

void memcpy_d2h(void* dst, const void* src, size_t nbytes) {
    if (!nbytes) return;
    CNNFAST_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, g_stream));
    CNNFAST_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

void memcpy_d2d(void* dst, const void* src, size_t nbytes) {
    if (!nbytes || dst == src) return;
    CNNFAST_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, g_stream));
}

void memset_zero(void* dst, size_t nbytes) {
    if (!nbytes) return;
    CNNFAST_CUDA_CHECK(cudaMemsetAsync(dst, 0, nbytes, g_stream));
}

void* stream() noexcept {
    return g_stream;
}
void set_stream(void* s) noexcept {
    g_stream = static_cast<cudaStream_t>(s);
}

void synchronize() {
    CNNFAST_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

int* error_flag() {
    // Allocated on first use, never freed (freeing at exit races the driver's own teardown).
    static std::mutex mu;
    static int* flag = nullptr;
    std::lock_guard<std::mutex> lock(mu);
    if (!flag) CNNFAST_CUDA_CHECK(cudaMalloc(&flag, sizeof(int)));
    return flag;
}

}  // namespace cuda
}  // namespace cnnfast
