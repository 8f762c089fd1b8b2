// dropout_hash.h -- the counter-based stream behind dropout masks, shared by the CPU and CUDA
// kernels so both draw bit-identical masks for the same seed (one definition, not two twins).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define CNNFAST_HD __host__ __device__ __forceinline__
#else
#define CNNFAST_HD inline
#endif

namespace cnnfast {

// SplitMix64 finaliser: element i's draw depends only on (seed, i), never on threads.
CNNFAST_HD uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// Keep element i when its uniform draw in [0, 1) (24 random bits, exact in float) is >= rate.
// key = mix64(seed).
CNNFAST_HD bool dropout_keep(uint64_t key, int64_t i, double rate) {
    const double u = (double)(mix64(key ^ (uint64_t)i) >> 40) * (1.0 / 16777216.0);
    return u >= rate;
}

}  // namespace cnnfast

#undef CNNFAST_HD
