// common.h -- checks, padding geometry and threading shared by every cnnfast kernel.
//
// Dimension legend used in every csrc/ file:
//   N  batch            H, W   input height/width      C   input channels
//   OH, OW output h/w   KH, KW kernel/pool size        OC  output channels (filters)
//   SH, SW strides      PT, PL leading (top/left) zero padding; trailing padding is implied
// Tensors are float32, row-major, NHWC; conv kernels (KH,KW,C,OC); dense kernels (IN,OUT).
// Kernels take raw pointers, outputs first, then inputs, then sizes. They never see pybind11.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace cnnfast {

[[noreturn]] inline void fail(const std::string& msg) {
    throw std::invalid_argument(msg);
}

// Precondition check: throws std::invalid_argument (Python ValueError), never aborts.
#define CNNFAST_CHECK(cond, msg)                                                              \
    do {                                                                                      \
        if (!(cond))                                                                          \
            ::cnnfast::fail(std::string("cnnfast: ") + (msg) + " (check failed: " #cond ")"); \
    } while (0)

// On a function whose loops copy short runs (im2col rows of 3-96 floats, packing rows of 16):
// GCC otherwise turns such loops into calls to memcpy/memset, which cost more than the copy.
// Every function that should inline into one marked this way must be marked too.
#if defined(__GNUC__) && !defined(__clang__)
#define CNNFAST_NO_MEMCPY_IDIOM __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define CNNFAST_NO_MEMCPY_IDIOM
#endif

// On the memory-bound elementwise kernels (pooling, activations, dropout, optimizers, im2col):
// GCC compiles the function twice, for the x86-64 baseline (SSE2) and for AVX2, and the loader
// picks one for this CPU (an ifunc, glibc only). Their results are identical: these kernels
// have no reductions the compiler may reorder (-ffp-contract=off, no fast-math), so only the
// vector width differs. Measured: max-pool forward 2.3x faster on one thread.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && \
    !defined(CNNFAST_NO_CLONES)
#define CNNFAST_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CNNFAST_CLONES
#endif

// c ? a : b without a branch, the same value bit for bit. Under -ftrapping-math GCC will not
// if-convert a ternary whose arm holds a float multiply (or a load it cannot prove safe), and
// keeps a data-dependent branch per element, which mispredicts on signed data; a select of the
// bit patterns vectorises to a blend. Measured on a (64,26,26,32) LeakyReLU forward: 6.1 ms as
// a ternary, 0.2 ms as this.
inline float select_bits(bool c, float a, float b) {
    uint32_t ua, ub;
    std::memcpy(&ua, &a, 4);
    std::memcpy(&ub, &b, 4);
    const uint32_t m = 0u - (uint32_t)c;
    const uint32_t r = (ua & m) | (ub & ~m);
    float f;
    std::memcpy(&f, &r, 4);
    return f;
}

// v where keep, else +0.0f, as a bit mask (vectorises where a select would not). The max-pool
// backward writes exactly this value into each cell of its input gradient, and the fused
// BatchNorm + max-pool (batchnorm_pool_cpu.cpp) reads it back the same way.
inline float masked(float v, bool keep) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    bits &= -(uint32_t)keep;
    std::memcpy(&v, &bits, sizeof bits);
    return v;
}

// The calling thread's grow-only scratch of at least n values, one buffer per Tag (a type the
// caller declares, so that buffers in use at the same time are different ones): after the
// first call at the largest size nothing is allocated. The pointer stays valid until the next
// call with the same Tag and a larger n.
template <class Tag, class T>
T* thread_scratch(size_t n) {
    static thread_local std::vector<T> buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

enum class Padding : int { Valid = 0, Same = 1 };

// Output size and leading pad of one spatial axis, exactly as TF/Keras compute them:
//   valid: out = floor((in - k) / s) + 1, no padding
//   same:  out = ceil(in / s), total = max(0, (out-1)*s + k - in), before = total / 2
//          (the odd extra pixel goes at the END: bottom/right).
struct Window1D {
    int out;
    int pad_before;
};

inline Window1D window_1d(int in, int k, int s, Padding pad) {
    CNNFAST_CHECK(in > 0 && k > 0 && s > 0,
                  "window sizes must be positive: in=" + std::to_string(in) +
                      " k=" + std::to_string(k) + " s=" + std::to_string(s));
    if (pad == Padding::Valid) {
        CNNFAST_CHECK(in >= k, "window " + std::to_string(k) + " larger than input " +
                                   std::to_string(in) + " with padding='valid'");
        return {(in - k) / s + 1, 0};
    }
    // in 64 bits: in + s - 1 and (out - 1) * s + k overflow int for sizes near 2^31
    const int64_t out = ((int64_t)in + s - 1) / s;
    int64_t total = (out - 1) * s + k - in;
    if (total < 0) total = 0;
    return {(int)out, (int)(total / 2)};
}

// Threads used by the OpenMP-parallel kernels (1 in a serial build).
int num_threads();
void set_num_threads(int n);
bool has_openmp();
// True inside an OpenMP parallel region: kernels called there run on the calling thread only.
bool in_parallel();

}  // namespace cnnfast
