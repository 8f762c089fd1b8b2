// dropout_spatial_cpu.cpp -- SpatialDropout2D's channel mask (csrc/dropout_spatial.h).
#include "dropout_spatial.h"

#include "common.h"
#include "dropout_hash.h"

namespace cnnfast {

static constexpr int64_t kGrain = 1 << 15;

static void check_rate(double rate, const char* fn) {
    CNNFAST_CHECK(rate >= 0.0 && rate < 1.0, std::string(fn) + ": rate must be in [0, 1)");
}

CNNFAST_CLONES
void spatial_dropout_forward(float* out, uint8_t* mask, const float* inp, int64_t B, int64_t HW,
                             int64_t C, double rate, uint64_t seed, int64_t first) {
    check_rate(rate, "spatial_dropout_forward");
    const float scale = (float)(1.0 / (1.0 - rate));  // rounded once, as dropout_forward
    const uint64_t key = mix64(seed);
    for (int64_t i = 0; i < B * C; ++i) mask[i] = dropout_keep(key, first + i, rate);
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (B * HW * C > kGrain)
#endif
    for (int64_t r = 0; r < B * HW; ++r) {
        const uint8_t* m = mask + (r / HW) * C;
        const float* x = inp + r * C;
        float* y = out + r * C;
        for (int64_t c = 0; c < C; ++c) y[c] = m[c] ? x[c] * scale : 0.0f;
    }
}

CNNFAST_CLONES
void spatial_dropout_backward(float* dinp, const float* dout, const uint8_t* mask, int64_t B,
                              int64_t HW, int64_t C, double rate) {
    check_rate(rate, "spatial_dropout_backward");
    const float scale = (float)(1.0 / (1.0 - rate));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (B * HW * C > kGrain)
#endif
    for (int64_t r = 0; r < B * HW; ++r) {
        const uint8_t* m = mask + (r / HW) * C;
        const float* dy = dout + r * C;
        float* dx = dinp + r * C;
        for (int64_t c = 0; c < C; ++c) dx[c] = m[c] ? dy[c] * scale : 0.0f;
    }
}

}  // namespace cnnfast
