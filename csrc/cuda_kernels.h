// cuda_kernels.h -- the CUDA siblings of the CPU kernels, plus the device runtime they run on.
//
// Every kernel here has the SAME signature and semantics as its CPU twin (conv2d.h, pool2d.h,
// dense.h, gemm.h, activations.h, optim.h) but lives in namespace cnnfast::cuda and takes
// DEVICE pointers. Shape structs and scalars are host values. Work is enqueued on stream()
// and returns without waiting, except where a contract needs a host decision first (label and
// argmax range checks read a device flag back, exactly like the CPU's throwing checks).
//
// Errors: bad sizes throw std::invalid_argument (Python ValueError) as on the CPU; a failing
// CUDA call throws std::runtime_error with the CUDA error string (Python RuntimeError).
// Nothing aborts. Nothing here touches the GPU until it is called (safe to import anywhere).
//
// Numerics (see tests/test_cuda.py): fp32 everywhere, no TF32, compiled with --fmad=false so
// elementwise arithmetic rounds like the CPU build (-ffp-contract=off). Bit-identical to the
// CPU: ReLU, pooling (forward and backward), dropout masks and outputs, optimizer updates,
// bias adds. Within fp32 tolerance: the GEMM (fmaf, different summation order), reductions
// (dbias), and exp/log/tanh (CUDA's libdevice is within 1-2 ulp, glibc's differs).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "activations.h"
#include "common.h"
#include "conv2d.h"
#include "pool2d.h"

namespace cnnfast {
namespace cuda {

// ---- runtime: devices, memory, stream (device_cuda.cu) ----
int device_count() noexcept;  // 0 when there is no driver or no device; never throws
std::string device_name(int device);
void set_device(int device);
int get_device();
int runtime_version();               // cudaRuntimeGetVersion, e.g. 13000
int driver_version() noexcept;       // 0 when no driver
void* device_malloc(size_t nbytes);  // nbytes == 0 gives nullptr
void device_free(void* p) noexcept;  // errors ignored (may run at interpreter exit)
void memcpy_h2d(void* dst, const void* src, size_t nbytes);  // returns when src may be reused
void memcpy_d2h(void* dst, const void* src, size_t nbytes);  // returns when dst is filled
void memcpy_d2d(void* dst, const void* src, size_t nbytes);  // async on stream()
void memset_zero(void* dst, size_t nbytes);                  // async on stream()
// The stream every kernel and async copy is enqueued on; a cudaStream_t as an opaque pointer.
// Default nullptr (the legacy default stream). An executor sets its own once.
void* stream() noexcept;
void set_stream(void* s) noexcept;
void synchronize();  // waits for stream(); surfaces asynchronous kernel errors

// ---- GEMM (gemm_cuda.cu) ----  same contract as cnnfast::sgemm (gemm.h)
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc);
// out (M,N) += bias (N) per row: the CPU's separate bias pass, same single rounding.
void add_bias_rows(float* out, const float* bias, int M, int N);
// dbias (N) overwritten with the column sums of dout (M,N); fixed order (deterministic).
void sum_rows(float* dbias, const float* dout, int M, int N);

// ---- Conv2D (conv2d_cuda.cu) ----
// Floats of device scratch memory the GPU conv needs (may differ from the CPU's size).
size_t conv2d_workspace_size(const Conv2DParams& p);
void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const Conv2DParams& p, float* workspace);
void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const Conv2DParams& p, float* workspace);

// ---- pooling (pool2d_cuda.cu) ----
void maxpool2d_forward(float* out, int32_t* argmax, const float* inp, const Pool2DParams& p);
// argmax must come from maxpool2d_forward with the same geometry (each index inside its own
// window); out-of-range indices throw like the CPU's check.
void maxpool2d_backward(float* dinp, const float* dout, const int32_t* argmax,
                        const Pool2DParams& p);
void avgpool2d_forward(float* out, const float* inp, const Pool2DParams& p);
void avgpool2d_backward(float* dinp, const float* dout, const Pool2DParams& p);

// ---- Dense (dense_cuda.cu) ----
void dense_forward(float* out, const float* inp, const float* weight, const float* bias, int B,
                   int IN, int OUT);
void dense_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                    const float* weight, int B, int IN, int OUT);

// ---- activations, cross-entropy, dropout (activations_cuda.cu) ----
void activation_forward(float* out, const float* inp, int64_t rows, int64_t cols, Activation a);
void activation_backward(float* dinp, const float* dout, const float* out, int64_t rows,
                         int64_t cols, Activation a, const float* inp = nullptr);
void softmax_xent_sparse(float* loss, float* dlogits, const float* logits, const int32_t* labels,
                         int B, int K, float grad_scale);
void softmax_xent_dense(float* loss, float* dlogits, const float* logits, const float* targets,
                        int B, int K, float grad_scale);
void xent_probs_sparse(float* loss, float* dprobs, const float* probs, const int32_t* labels, int B,
                       int K, float eps, float grad_scale);
void xent_probs_dense(float* loss, float* dprobs, const float* probs, const float* targets, int B,
                      int K, float eps, float grad_scale);
void dropout_forward(float* out, uint8_t* mask, const float* inp, int64_t n, double rate,
                     uint64_t seed);
void dropout_backward(float* dinp, const float* dout, const uint8_t* mask, int64_t n, double rate);

// ---- optimizers (optim_cuda.cu) ----
void adam_update(float* w, float* m, float* v, float* vhat, const float* g, int64_t n, float lr,
                 double beta1, double beta2, double eps, int64_t step);
void sgd_update(float* w, float* velocity, const float* g, int64_t n, float lr, double momentum,
                bool nesterov);
void rmsprop_update(float* w, float* v, float* mom, float* avg, const float* g, int64_t n, float lr,
                    double rho, double momentum, double eps, bool centered);

}  // namespace cuda
}  // namespace cnnfast
