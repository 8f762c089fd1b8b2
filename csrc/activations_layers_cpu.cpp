// activations_layers_cpu.cpp -- ReLU(max_value, negative_slope, threshold) / LeakyReLU, ELU(alpha),
// PReLU and Softmax over any axis (csrc/activations_layers.h). Each expression is written as
// TF evaluates Keras's definition, so the float32 roundings agree.
#include <algorithm>
#include <cmath>
#include <string>

#include "activations_layers.h"
#include "common.h"

namespace cnnfast {

// Elementwise loops below this many elements stay on one thread (thread start-up costs more).
static constexpr int64_t kGrain = 1 << 15;

template <class F>
static inline void for_each_index(int64_t n, F f) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kGrain)
#endif
    for (int64_t i = 0; i < n; ++i) f(i);
}

static void check_arg(double v, const char* what) {
    CNNFAST_CHECK(
        std::isfinite(v) && v >= 0.0,
        std::string("ReLU: ") + what + " must be a finite value >= 0, got " + std::to_string(v));
}

ReluSpec make_relu_spec(double negative_slope, double threshold, bool has_max, double max_value) {
    check_arg(negative_slope, "negative_slope");
    check_arg(threshold, "threshold");
    if (has_max) check_arg(max_value, "max_value");
    ReluSpec s;
    s.negative_slope = (float)negative_slope;
    s.threshold = (float)threshold;
    s.max_value = has_max ? (float)max_value : 0.0f;
    s.leaky = negative_slope != 0.0 && !has_max && threshold == 0.0;
    s.relu6 = has_max && max_value == 6.0 && threshold == 0.0;
    s.clip = has_max && !s.relu6;
    return s;
}

ReluSpec make_leaky_spec(double negative_slope) {
    check_arg(negative_slope, "negative_slope");
    ReluSpec s;
    s.negative_slope = (float)negative_slope;
    s.leaky = true;
    return s;
}

// Base: 0 plain max(x, 0), 1 where(x > threshold, x, 0), 2 relu6; Clip: clip_by_value to
// max_value; Neg: minus negative_slope * max(threshold - x, 0). Template arguments, so each
// loop below has no branch per element.
template <int Base, bool Clip, bool Neg>
static inline float relu_value(float x, const ReluSpec& s) {
    float p;
    if (Base == 1)
        p = select_bits(x > s.threshold, x, 0.0f);  // where(x > threshold, x, 0)
    else if (Base == 2)
        p = std::min(std::max(x, 0.0f), 6.0f);
    else
        p = std::max(x, 0.0f);
    if (Clip) p = std::max(std::min(p, s.max_value), 0.0f);  // clip_by_value: min, then max
    if (Neg) p = p - s.negative_slope * std::max(s.threshold - x, 0.0f);
    return p;
}

// d(out)/d(inp) as TF's gradients of those ops give it: ReluGrad (x > 0), Relu6Grad
// (0 < x < 6), SelectV2 (x > threshold), Minimum (p <= max_value: ties pass), and the negative
// part's ReluGrad (t - x > 0) times the slope. The two parts never overlap.
template <int Base, bool Clip, bool Neg>
static inline float relu_grad(float dy, float x, const ReluSpec& s) {
    bool pos;
    if (Base == 1)
        pos = x > s.threshold;
    else if (Base == 2)
        pos = (x > 0.0f) & (x < 6.0f);
    else
        pos = x > 0.0f;
    if (Clip) pos = pos & (x <= s.max_value);
    if (!Neg) return select_bits(pos, dy, 0.0f);
    return select_bits(pos, dy, select_bits(s.threshold - x > 0.0f, dy * s.negative_slope, 0.0f));
}

// Calls f.template operator()<Base, Clip, Neg>() for the spec's (non-leaky) mode.
template <class F>
static inline void relu_dispatch(const ReluSpec& s, F f) {
    const int base = s.threshold != 0.0f ? 1 : s.relu6 ? 2 : 0;
    const bool neg = s.negative_slope != 0.0f;
#define CNNFAST_RELU_CASE(B)                                                            \
    if (base == B) {                                                                    \
        if (s.clip)                                                                     \
            neg ? f.template run<B, true, true>() : f.template run<B, true, false>();   \
        else                                                                            \
            neg ? f.template run<B, false, true>() : f.template run<B, false, false>(); \
        return;                                                                         \
    }
    CNNFAST_RELU_CASE(0)
    CNNFAST_RELU_CASE(1)
    CNNFAST_RELU_CASE(2)
#undef CNNFAST_RELU_CASE
}

// The loops below run over blocks, with the spec copied into locals and one loop per mode
// (template arguments). With the spec read through a reference that `out` might alias and its
// branches inside the loop, every element took a branch: 20-40x slower. Same expressions, so
// the same bits.
static constexpr int64_t kBlock = 4096;

template <class F>
static inline void for_each_block(int64_t n, F f) {
    const int64_t blocks = (n + kBlock - 1) / kBlock;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > kGrain)
#endif
    for (int64_t b = 0; b < blocks; ++b) f(b * kBlock, std::min(n, (b + 1) * kBlock));
}

namespace {
struct ReluForward {
    float* out;
    const float* inp;
    int64_t n;
    ReluSpec s;
    template <int Base, bool Clip, bool Neg>
    void run() const {
        const ReluForward k = *this;
        for_each_block(n, [=](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i) k.out[i] = relu_value<Base, Clip, Neg>(k.inp[i], k.s);
        });
    }
};
struct ReluBackward {
    float* dinp;
    const float* dout;
    const float* inp;
    int64_t n;
    ReluSpec s;
    template <int Base, bool Clip, bool Neg>
    void run() const {
        const ReluBackward k = *this;
        for_each_block(n, [=](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i)
                k.dinp[i] = relu_grad<Base, Clip, Neg>(k.dout[i], k.inp[i], k.s);
        });
    }
};
}  // namespace

CNNFAST_CLONES
void relu_forward(float* out, const float* inp, int64_t n, const ReluSpec& spec) {
    const ReluSpec s = spec;
    if (s.leaky) {  // tf.nn.leaky_relu
        const float a = s.negative_slope;
        for_each_block(n, [=](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i)
                out[i] = select_bits(inp[i] > 0.0f, inp[i], inp[i] * a);
        });
        return;
    }
    relu_dispatch(s, ReluForward{out, inp, n, s});
}

CNNFAST_CLONES
void relu_backward(float* dinp, const float* dout, const float* inp, int64_t n,
                   const ReluSpec& spec) {
    const ReluSpec s = spec;
    if (s.leaky) {
        const float a = s.negative_slope;
        for_each_block(n, [=](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i)
                dinp[i] = select_bits(inp[i] > 0.0f, dout[i], dout[i] * a);
        });
        return;
    }
    relu_dispatch(s, ReluBackward{dinp, dout, inp, n, s});
}

// ---- ELU ----

static inline float elu1(float x) {
    return x < 0.0f ? std::exp(x) - 1.0f : x;  // TF's Elu kernel
}

CNNFAST_CLONES
void elu_forward(float* out, const float* inp, int64_t n, float alpha) {
    if (alpha == 1.0f) {
        for_each_index(n, [&](int64_t i) { out[i] = elu1(inp[i]); });
        return;
    }
    for_each_index(n, [&](int64_t i) {
        const float r = elu1(inp[i]);
        out[i] = inp[i] > 0.0f ? r : alpha * r;
    });
}

// EluGrad(g, res) = res < 0 ? (res + 1) * g : g, with g = dout where x > 0 and alpha * dout
// elsewhere (the where's and the multiply's gradients).
CNNFAST_CLONES
void elu_backward(float* dinp, const float* dout, const float* inp, int64_t n, float alpha) {
    for_each_index(n, [&](int64_t i) {
        const float x = inp[i];
        const float r = elu1(x);
        const float g = (alpha == 1.0f || x > 0.0f) ? dout[i] : alpha * dout[i];
        dinp[i] = r < 0.0f ? (r + 1.0f) * g : g;
    });
}

// ---- PReLU ----

CNNFAST_CLONES
void prelu_forward(float* out, const float* inp, const float* alpha, const int32_t* aidx, int64_t B,
                   int64_t S) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (B * S > kGrain)
#endif
    for (int64_t b = 0; b < B; ++b) {
        const float* x = inp + b * S;
        float* y = out + b * S;
        for (int64_t i = 0; i < S; ++i) y[i] = x[i] > 0.0f ? x[i] : alpha[aidx[i]] * x[i];
    }
}

// relu(x) + (-alpha) * relu(-x): dx = x > 0 ? dy : x < 0 ? dy * alpha : 0;
// d(-alpha) = sum(dy * relu(-x)) over the broadcast axes, so dalpha = -that sum.
CNNFAST_CLONES
void prelu_backward(float* dinp, float* dalpha, float* partial, const float* dout, const float* inp,
                    const float* alpha, const int32_t* aidx, int64_t B, int64_t S, int64_t A) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (B * S > kGrain)
#endif
    for (int64_t b = 0; b < B; ++b) {
        const float* x = inp + b * S;
        const float* dy = dout + b * S;
        float* pa = partial + b * A;
        std::fill(pa, pa + A, 0.0f);
        for (int64_t i = 0; i < S; ++i) pa[aidx[i]] += dy[i] * std::max(-x[i], 0.0f);
        if (dinp) {
            float* dx = dinp + b * S;
            for (int64_t i = 0; i < S; ++i)
                dx[i] = x[i] > 0.0f ? dy[i] : (x[i] < 0.0f ? dy[i] * alpha[aidx[i]] : 0.0f);
        }
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (B * A > kGrain)
#endif
    for (int64_t j = 0; j < A; ++j) {
        float sum = 0.0f;
        for (int64_t b = 0; b < B; ++b) sum += partial[b * A + j];
        dalpha[j] = -sum;
    }
}

// ---- Softmax over any axis ----
// Each (o, i) column is reduced over k in order (one sequential sum per column), whatever the
// thread count; for I == 1 this is the last-axis softmax of activations_cpu.cpp.

CNNFAST_CLONES
void softmax_axis_forward(float* out, const float* inp, int64_t O, int64_t K, int64_t I) {
    if (K == 0 || I == 0) return;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (O * K * I > kGrain)
#endif
    for (int64_t o = 0; o < O; ++o) {
        const float* x = inp + o * K * I;
        float* y = out + o * K * I;
        for (int64_t i = 0; i < I; ++i) {
            float mx = x[i];
            for (int64_t k = 1; k < K; ++k) mx = std::max(mx, x[k * I + i]);
            float sum = 0.0f;
            for (int64_t k = 0; k < K; ++k) {
                const float e = std::exp(x[k * I + i] - mx);
                y[k * I + i] = e;
                sum += e;
            }
            const float inv = 1.0f / sum;
            for (int64_t k = 0; k < K; ++k) y[k * I + i] *= inv;
        }
    }
}

CNNFAST_CLONES
void softmax_axis_backward(float* dinp, const float* dout, const float* out, int64_t O, int64_t K,
                           int64_t I) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (O * K * I > kGrain)
#endif
    for (int64_t o = 0; o < O; ++o) {
        const float* y = out + o * K * I;
        const float* dy = dout + o * K * I;
        float* dx = dinp + o * K * I;
        for (int64_t i = 0; i < I; ++i) {
            float dot = 0.0f;
            for (int64_t k = 0; k < K; ++k) dot += dy[k * I + i] * y[k * I + i];
            for (int64_t k = 0; k < K; ++k) dx[k * I + i] = (dy[k * I + i] - dot) * y[k * I + i];
        }
    }
}

}  // namespace cnnfast
