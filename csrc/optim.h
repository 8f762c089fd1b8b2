// optim.h -- fused optimizer updates with Keras's exact formulas and float32 operation order.
// All arrays have n elements and are updated in place.
//
// Hyper-parameters arrive as Python floats (double). Keras rounds each Python scalar to
// float32 where it meets a float32 tensor, and computes `1 - beta` in double BEFORE rounding
// (float(1 - 0.9) = 0.1f, whereas 1.0f - 0.9f = 0.100000024f). The kernels do the same.
#pragma once
#include <cstdint>

namespace cnnfast {

// Keras Adam. step = iterations + 1 (1 on the first update). lr is the float32 variable value.
//   alpha = lr * sqrt(1 - beta2^step) / (1 - beta1^step)        (float32, powf)
//   m += (g - m) * f32(1 - beta1);  v += (g*g - v) * f32(1 - beta2)
//   amsgrad: vhat = max(vhat, v) and vhat replaces v below      (vhat nullptr otherwise)
//   w -= (m * alpha) / (sqrt(v) + f32(eps))
void adam_update(float* w, float* m, float* v, float* vhat, const float* g, int64_t n, float lr,
                 double beta1, double beta2, double eps, int64_t step);

// Keras SGD.  momentum == 0: w -= g * lr   (velocity may be nullptr)
//   else v = v * f32(mu) - g * lr;  nesterov ? w += v * f32(mu) - g * lr : w += v
void sgd_update(float* w, float* velocity, const float* g, int64_t n, float lr, double momentum,
                bool nesterov);

// Keras RMSprop.
//   v = f32(rho) * v + f32(1 - rho) * g*g
//   centered: a = f32(rho) * a + f32(1 - rho) * g;  denom = v - a*a + f32(eps)
//   else      denom = v + f32(eps)
//   incr = (lr * g) / sqrt(denom)
//   momentum > 0: mom = f32(momentum) * mom + incr;  w -= mom     else w -= incr
// mom is nullptr unless momentum > 0; avg is nullptr unless centered.
void rmsprop_update(float* w, float* v, float* mom, float* avg, const float* g, int64_t n, float lr,
                    double rho, double momentum, double eps, bool centered);

}  // namespace cnnfast
