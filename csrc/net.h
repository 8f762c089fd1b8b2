// net.h -- a whole training step in C++: forward, fused loss, backward and optimizer update of
// a chain of layers (the shape of every tutorial model), with every buffer allocated once.
//
// Python builds a Net from the model's layers (cnnfast/executor.py); weights, gradients and
// optimizer slots stay in the NumPy arrays the layers and the optimizer own (the Net keeps raw
// pointers to them), so Python's get_weights/set_weights and the per-layer path see the same
// numbers. One call per step: no Python round trip per layer, and the GIL is released.
#pragma once
#include <cstdint>
#include <vector>

#include "activations.h"
#include "activations_layers.h"
#include "augment.h"
#include "common.h"
#include "optim.h"

namespace cnnfast {

// Op, loss and optimizer kinds are bound as cnnfast._core.OpKind / LossKind / OptKind; Python
// builds OpSpecs and OptSpecs through typed factories (csrc/bindings.cpp), never from integers.
enum class OpKind : int {
    Conv2D = 0,
    MaxPool2D = 1,
    AvgPool2D = 2,
    Dense = 3,
    Flatten = 4,
    Dropout = 5,
    Activation = 6,
    BatchNorm = 7,
    Augment = 8,  // the Random* image layers (csrc/augment.h): identity unless training
                  // (RandomCrop: its centred crop)
    GlobalAvgPool2D = 9,
    GlobalMaxPool2D = 10,
    Rescale = 11,
    Reshape = 12,
    ZeroPad2D = 13,
    // ---- the activation layers with arguments and SpatialDropout2D (issue #11); values from
    // 20 so that other ops appended above keep theirs
    Relu = 20,              // ReLU(max_value, negative_slope, threshold) / LeakyReLU: relu
    Elu = 21,               // ELU(alpha != 1): alpha
    PRelu = 22,             // PReLU: weight = alpha (A), dweight its gradient, aidx (per sample)
    SpatialDropout2D = 23,  // rate; noise shape (B,1,1,C) (csrc/dropout_spatial.h)
    // depthwise/separable/dilated (netconv)
    DepthwiseConv2D = 100,  // csrc/depthwise.h; weight (KH,KW,C,DM), bias (C*DM)
    SeparableConv2D = 101,  // depthwise (weight, no bias) then a 1x1 conv (weight2, bias)
    Conv2DDilated = 102     // csrc/conv2d_dilated.h; weight (KH,KW,C,OC), bias (OC)
};

struct OpSpec {
    OpKind kind;
    Activation act = Activation::Linear;  // fused activation: Conv2D/Dense/Activation
    int kh = 0, kw = 0;                   // Conv2D: kernel size; pooling: pool size
    int sh = 1, sw = 1;                   // strides (Conv2D, pooling)
    int units = 0;                        // Conv2D: filters (OC); Dense: output units
    Padding pad = Padding::Valid;
    double rate = 0.0;         // dropout
    float* weight = nullptr;   // (KH,KW,C,OC) or (IN,OUT); nullptr for weightless ops
    float* bias = nullptr;     // (OC) or nullptr
    float* dweight = nullptr;  // gradient buffers, same shapes
    float* dbias = nullptr;
    int64_t weight_n = 0, bias_n = 0;  // element counts, checked against the layer geometry
    // BatchNorm over the last axis (csrc/batchnorm.h): weight = gamma, bias = beta (each
    // (C) or nullptr), the moving statistics (C) updated in place by each train step when
    // bn_training (false for a frozen layer, which then normalises with the moving ones).
    float* moving_mean = nullptr;
    float* moving_var = nullptr;
    double eps = 1e-3, momentum = 0.99;
    bool bn_training = true;
    // Augment: the layer's parameters; only below every op with weights (no backward).
    AugmentSpec aug;
    bool keepdims = false;              // global pooling: (1,1,C) instead of (C)
    float scale = 1.0f, offset = 0.0f;  // Rescale
    std::vector<int> target;            // Reshape: the per-sample output shape
    int pads[4] = {0, 0, 0, 0};         // ZeroPad2D: top, bottom, left, right
    // ---- issue #11 (csrc/activations_layers.h)
    ReluSpec relu;              // Relu
    float alpha = 1.0f;         // Elu
    std::vector<int32_t> aidx;  // PRelu: each element of a sample -> its alpha element
    // The op's activity regularizer (Keras's on the layer's output y, any op): the step's
    // penalty gains f32(sum(l1 |y| + l2 y^2)) / B (csrc/optim.h weight_penalty) and backward
    // adds its gradient, scaled by 1/B, to d(y) (docs/training_step.md#activity-regularizers).
    double act_l1 = 0.0, act_l2 = 0.0;
    // depthwise/separable/dilated (netconv): dh, dw the dilation rates, dm the depth multiplier
    // (units: DM of DepthwiseConv2D, filters of SeparableConv2D, OC of Conv2DDilated);
    // weight2/dweight2: SeparableConv2D's pointwise kernel (1,1,C*DM,filters), its gradient.
    int dh = 1, dw = 1, dm = 1;
    float* weight2 = nullptr;
    float* dweight2 = nullptr;
    int64_t weight2_n = 0;
};

// Loss on the last op: the logits path is TF's cached-logits rule (softmax output) or
// from_logits=True; the probability path clips at eps.
enum class LossKind : int { SparseLogits = 0, DenseLogits = 1, SparseProbs = 2, DenseProbs = 3 };

inline bool is_sparse(LossKind k) {
    return k == LossKind::SparseLogits || k == LossKind::SparseProbs;
}

// AdamW is Adam with weight_decay (as in Keras 3).
enum class OptKind : int {
    Adam = 0,
    SGD = 1,
    RMSprop = 2,
    Nadam = 3,
    Adamax = 4,
    Adagrad = 5,
    Adadelta = 6
};

// The random stream of the op at position i in the step with `seed` (its Dropout mask):
// distinct for every op of one step. The per-layer engine calls the same function through
// _core.layer_seed (cnnfast/executor.py), so both engines draw the same masks.
inline uint64_t layer_seed(uint64_t seed, uint64_t i) {
    return seed ^ (0x9E3779B97F4A7C15ull * (i + 1));
}

// The optimizer of a step, in Keras's order: clip the gradients (clip, clip_value), decay the
// weights (weight_decay, when has_weight_decay), then the update of `kind`.
struct OptSpec {
    OptKind kind = OptKind::Adam;
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-7, momentum = 0.0, rho = 0.9;
    bool amsgrad = false, nesterov = false, centered = false;
    ClipKind clip = ClipKind::None;
    double clip_value = 0.0;
    bool has_weight_decay = false;
    double weight_decay = 0.0;
    // Nadam: the optimizer's running u_product for this step (1 float the optimizer owns and
    // advances before each step, cnnfast/optimizers.py). nullptr for the other kinds.
    float* u_product = nullptr;
};

// One trainable array, its gradient and its optimizer slots (all n floats, the NumPy arrays
// the optimizer owns; nullptr where the optimizer has none). What each slot holds:
//   Adam:    s0 = m (first moment), s1 = v (second moment), s2 = vhat (max of v; amsgrad only)
//   SGD:     s0 = velocity (momentum != 0 only), s1 = s2 = nullptr
//   RMSprop: s0 = v (mean square), s1 = momentum buffer (momentum > 0 only),
//            s2 = mean gradient (centered only)
//   Nadam:   s0 = m, s1 = v;  Adamax: s0 = m, s1 = u (infinity norm)
//   Adagrad: s0 = accumulator;  Adadelta: s0 = accumulated grad, s1 = accumulated delta
// l1, l2: the array's Keras weight regularizer (L1/L2/L1L2, 0 for none): its penalty is added
// to the step's `penalty` and its gradient to g before the optimizer (csrc/optim.h
// weight_penalty), as Keras adds model.losses to the loss it differentiates.
struct ParamSlot {
    float* w;
    float* g;
    float* s0;
    float* s1;
    float* s2;
    int64_t n;
    double l1 = 0.0, l2 = 0.0;
};

struct StepResult {
    float loss;             // batch mean, float32 as Keras computes it
    int64_t correct;        // rows whose argmax(output) equals the label (first index on ties)
    float penalty = 0.0f;   // train_step: the weight penalties, float32, summed in param order
    float activity = 0.0f;  // the activity penalties of the forward, float32, in op order
};

class Net {
  public:
    // in_shape: the per-sample input shape (H,W,C) or (features). max_batch: buffers' size.
    // fused: the loss reads the last op's pre-activation (softmax logits) and backward starts
    // from d(logits) (TF's cached-logits rule).
    Net(std::vector<OpSpec> ops, std::vector<int> in_shape, int max_batch, LossKind loss,
        int num_classes, bool fused);

    // Forward with dropout off; the output (B, out_size()) stays in output(). B <= max_batch.
    void predict(const float* x, int B);
    // Forward passes over N rows of any count, max_batch rows at a time (results are per
    // sample, so chunking changes no bit); the outputs go to out (N, out_size()).
    // docs/training_step.md#chunked-forward-passes
    void predict_rows(const float* x, float* out, int64_t N);
    // Gathers rows idx[0..B) of the dataset x (N, in_size) and labels y, then a full step.
    // y is int32 (B) for sparse losses or float32 (B,K) for dense ones. The update uses
    // ParamSlots with lr and step (= optimizer iterations + 1). sw: the dataset's sample
    // weights (N) or nullptr; the loss is then Keras's weighted mean (losses.h
    // weighted_loss_mean).
    // The data-parallel split (cnnfast.distributed, docs/training_step.md): sample_offset is
    // the position of these B rows in a larger global batch (Dropout and the augmentation ops
    // draw what that batch gives these rows); update=false stops after backward, gradients in the
    // ParamSlots' g arrays, for the caller to all-reduce and then call apply_update.
    StepResult train_step(const float* x, const void* y, const int64_t* idx, int B, uint64_t seed,
                          const OptSpec& opt, const std::vector<ParamSlot>& params, float lr,
                          int64_t step, const float* sw = nullptr, int64_t sample_offset = 0,
                          bool update = true);
    // The optimizer part of a step alone (clip, weight decay, update) on the gradients in g.
    void apply_update(const OptSpec& opt, const std::vector<ParamSlot>& params, float lr,
                      int64_t step);
    // Loss and correct count of a forward pass (dropout off) on N contiguous rows of any
    // count, max_batch rows at a time; sw (N) or nullptr: the rows' sample weights. The mean
    // loss is the running float32 sum over the rows in order (of loss * w with weights) divided
    // by N: the same bits as one pass over all N rows (loss_batch_mean, weighted_loss_mean).
    StepResult evaluate(const float* x, const void* y, int64_t N, const float* sw = nullptr);

    // Wall time of each op's forward and backward, and of the step's other phases, summed
    // over the train steps since profiling was switched on (set_profiling(true) also resets).
    // Off by default: then each op costs one untaken branch.
    struct Profile {
        std::vector<double> fwd_ms, bwd_ms;  // per op
        double gather_ms = 0, loss_ms = 0, update_ms = 0;
        int64_t steps = 0;
    };
    void set_profiling(bool on);
    const Profile& profile() const { return prof_; }

    const float* output() const { return a_.back(); }
    int64_t in_size() const { return sizes_.front(); }
    int64_t out_size() const { return sizes_.back(); }
    int max_batch() const { return max_batch_; }
    // Each op's activity penalty of the last forward (0 for an op without a regularizer).
    std::vector<float> activities() const;
    // The Conv2D ops whose inference runs fused with the MaxPool2D after them (conv2d_fused.h).
    std::vector<int> fused_ops() const {
        std::vector<int> r;
        for (size_t i = 0; i < layers_.size(); ++i)
            if (layers_[i].fused_span) r.push_back((int)i);
        return r;
    }

    // The BatchNorm ops that run fused with the MaxPool2D above them (batchnorm_pool.h).
    std::vector<int> fused_batchnorm_ops() const {
        std::vector<int> r;
        for (size_t i = 0; i < layers_.size(); ++i)
            if (layers_[i].bn_pool_span) r.push_back((int)i);
        return r;
    }

  private:
    struct Layer {
        OpSpec spec;
        std::vector<int> in_shape, out_shape;  // per sample
        int64_t in_n = 0, out_n = 0;           // per-sample sizes
        std::vector<float> z;                  // pre-activation (fused activation ops)
        std::vector<float> out;                // output storage (none for Flatten)
        std::vector<int32_t> argmax;           // maxpool
        std::vector<uint8_t> mask;             // dropout; SpatialDropout2D: (B,C)
        std::vector<float> mean, rstd;         // batchnorm: the statistics of the last forward
        std::vector<float> partial;            // PRelu: prelu_backward's scratch (B,A)
        float activity = 0.0f;                 // the op's activity penalty, last forward
        bool bn_batch_stats = false;           // batchnorm: the last forward used the batch's
        bool active = false;                   // dropout applied in this step
        bool relu_epilogue = false;  // Conv2D/Dense whose ReLU runs in the GEMM epilogue (no z)
        bool relu_out = false;       // the output is a ReLU's (fused or Activation('relu'))

        // depthwise/separable/dilated (netconv): SeparableConv2D's depthwise stage, its gradient
        std::vector<float> mid, dmid;
        // Conv2D at inference: it and the next fused_span ops (its MaxPool2D) run as one
        // conv_pool_forward (csrc/conv2d_fused.h); 0: unfused.
        int fused_span = 0;
        // BatchNorm whose output only the MaxPool2D bn_pool_span ops above reads (directly, or
        // through an Activation('relu') when the span is 2): the two run as one
        // batchnorm_maxpool_forward/backward (csrc/batchnorm_pool.h), and BN's output (and the
        // ReLU's) is never formed. xwin: BN's input at each window's argmax. On the pool,
        // bn_below is the same span, looking down. 0: unfused.
        int bn_pool_span = 0, bn_below = 0;
        std::vector<float> xwin;
    };

    void forward(const float* x, int B, bool training, uint64_t seed, int64_t sample_offset = 0);
    float loss_and_grad(const void* y, int B, bool with_grad, const float* sw);
    // The per-sample losses of the last forward pass into loss_buf_ (no gradient).
    void sample_losses(const void* y, int B);
    void backward(int B);
    int64_t count_correct(const void* y, int B) const;

    std::vector<Layer> layers_;
    std::vector<int64_t> sizes_;          // per-sample size of each activation (L+1)
    std::vector<float*> a_;               // a_[i]: input of layer i; a_[L]: output
    std::vector<float*> zp_;              // pre-activation of layer i (fused ops)
    std::vector<float> grad_a_, grad_b_;  // ping-pong gradient buffers (largest activation)
    std::vector<float> xbuf_;             // gathered batch
    std::vector<int32_t> ybuf_i_;
    std::vector<float> ybuf_f_;
    std::vector<float> loss_buf_, dloss_;
    std::vector<float> swbuf_;  // gathered sample weights
    std::vector<float> workspace_;
    float activity_ = 0.0f;             // the activity penalties of the last forward (StepResult)
    bool has_activity_ = false;         // some op has an activity regularizer
    bool profiling_ = false;            // record in train_step
    bool timing_ = false;               // recording now (inside a profiled train_step)
    std::vector<float> fused_scratch_;  // conv_pool_forward's per-thread blocks (fused_slots_)
    size_t fused_per_thread_ = 0;
    int fused_slots_ = 0;
    Profile prof_;
    int max_batch_;
    LossKind loss_;
    int K_;
    bool fused_;
};

}  // namespace cnnfast
