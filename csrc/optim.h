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

// Keras Nadam. step = iterations + 1; u_product is the optimizer's running product AFTER this
// step's nadam_u_product_next (one value shared by every variable of the step). Unlike Adam,
// Keras casts beta_1/beta_2 to float32 first, so 1 - beta is computed in float32 here.
//   b1 = f32(beta1), b2 = f32(beta2), t = f32(step)
//   u_t = b1 * (1 - 0.5 * powf(0.96f, t));  u_t1 = b1 * (1 - 0.5 * powf(0.96f, t + 1))
//   u_prod_t1 = u_product * u_t1;  b2p = powf(b2, t)
//   m += (g - m) * (1 - b1);  v += (g*g - v) * (1 - b2)
//   m_hat = (u_t1 * m) / (1 - u_prod_t1) + ((1 - u_t) * g) / (1 - u_product)
//   v_hat = v / (1 - b2p)
//   w -= (m_hat * lr) / (sqrt(v_hat) + f32(eps))
void nadam_update(float* w, float* m, float* v, const float* g, int64_t n, float lr, double beta1,
                  double beta2, double eps, int64_t step, float u_product);

// Nadam's running product for step `step`, from its value after step - 1 (1 before step 1):
//   u * f32(beta1) * (1 - 0.5 * powf(0.96f, f32(step)))        (left to right, float32)
float nadam_u_product_next(float u_product, double beta1, int64_t step);

// Keras Adamax. step = iterations + 1.
//   b1p = powf(f32(beta1), f32(step))
//   m += (g - m) * f32(1 - beta1);  u = max(f32(beta2) * u, |g|)
//   w -= (lr * m) / ((1 - b1p) * (u + f32(eps)))
void adamax_update(float* w, float* m, float* u, const float* g, int64_t n, float lr, double beta1,
                   double beta2, double eps, int64_t step);

// Keras Adagrad (acc starts at f32(initial_accumulator_value), set by the caller).
//   acc += g*g;  w -= (lr * g) / sqrt(acc + f32(eps))
void adagrad_update(float* w, float* acc, const float* g, int64_t n, float lr, double eps);

// Keras Adadelta.
//   ag = f32(rho) * ag + f32(1 - rho) * (g*g)
//   delta = -((sqrt(ad + f32(eps)) * g) / sqrt(ag + f32(eps)))
//   ad = f32(rho) * ad + f32(1 - rho) * (delta*delta)
//   w += lr * delta
void adadelta_update(float* w, float* acc_grad, float* acc_delta, const float* g, int64_t n,
                     float lr, double rho, double eps);

// Keras's decoupled weight decay, applied to each variable after clipping and before the
// update (base_optimizer.py _apply_weight_decay):  w -= (w * f32(wd)) * lr
void weight_decay_update(float* w, int64_t n, float lr, double weight_decay);

// Keras's L1/L2 penalty (keras/src/regularizers L1, L2, L1L2) of x (n): returns
//   (0 + f32(l1) * sum|x|) + f32(l2) * sum(x*x)    (a term only where its factor is nonzero)
// with each sum accumulated in double over fixed blocks combined in index order, then rounded
// to float32 (independent of the thread count). When dx is not nullptr its gradient times
// scale is accumulated into it (the weights' gradients, or d(output) of an activity penalty):
//   dx += (sign(x) * f32(l1) + (2 * x) * f32(l2)) * scale       (sign(0) = 0, as TF)
float weight_penalty(float* dx, const float* x, int64_t n, double l1, double l2, float scale);

// Gradient clipping, Keras's optimizer arguments (before weight decay and the update). In
// place on `count` gradients g[i] of n[i] floats. Sums of squares are accumulated in double,
// in blocks of a fixed size combined in index order, then rounded to float32: independent of
// the thread count (TF's Eigen reduction order differs; within a few ulps of it).
//   Value:      g = min(max(g, -f32(c)), f32(c))
//   Norm:       per gradient: s = sum(g*g); norm = s > 0 ? sqrt(s) : s
//               g = (g * f32(c)) / max(norm, f32(c))
//   GlobalNorm: s_i = sum(g_i*g_i) (float32 each), S = s_0 + s_1 + ... (float32, in order),
//               norm = sqrt(S); scale = f32(c) * min(1 / norm, f32(1 / c)) + (norm - norm)
//               g *= scale                          (non-finite norm: scale is NaN, as Keras)
enum class ClipKind : int { None = 0, Value = 1, Norm = 2, GlobalNorm = 3 };
void clip_gradients(float* const* g, const int64_t* n, int count, ClipKind kind, double clip);

// The C library's float32 functions, as TF's CPU kernels evaluate a 0-d tensor (the
// learning-rate schedules, cnnfast/schedules.py).
float f32_pow(float x, float y);
float f32_cos(float x);
float f32_log(float x);

}  // namespace cnnfast
