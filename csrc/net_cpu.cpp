// net_cpu.cpp -- the whole training step of a chain of layers (see net.h).
//   activations: a_[i] is the input of layer i (B, sizes_[i]); a_[L] is the model output.
//   Flatten, Reshape and inactive Dropout alias their input; every other op writes its own buffer.
//   Gradients flow through two ping-pong buffers sized for the largest activation; elementwise
//   backward ops (activations, dropout) work in place.
#include "net.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>

#include "activations.h"
#include "batchnorm.h"
#include "batchnorm_pool.h"
#include "conv2d.h"
#include "conv2d_dilated.h"
#include "conv2d_fused.h"
#include "dense.h"
#include "depthwise.h"
#include "dropout_spatial.h"
#include "losses.h"
#include "optim.h"
#include "pool2d.h"
#include "winograd.h"

namespace cnnfast {

namespace {

int64_t prod(const std::vector<int>& s) {
    return std::accumulate(s.begin(), s.end(), (int64_t)1, std::multiplies<int64_t>());
}

Conv2DParams conv_params(const OpSpec& o, const std::vector<int>& in, int B) {
    return make_conv2d_params(B, in[0], in[1], in[2], o.kh, o.kw, o.units, o.sh, o.sw, o.pad);
}

Pool2DParams pool_params(const OpSpec& o, const std::vector<int>& in, int B) {
    return make_pool2d_params(B, in[0], in[1], in[2], o.kh, o.kw, o.sh, o.sw, o.pad);
}

// depthwise/separable/dilated (netconv): the geometry of each op's kernels
DepthwiseParams depthwise_params(const OpSpec& o, const std::vector<int>& in, int B) {
    return make_depthwise_params(B, in[0], in[1], in[2], o.kh, o.kw, o.dm, o.sh, o.sw, o.dh, o.dw,
                                 o.pad);
}

// SeparableConv2D's pointwise stage: a 1x1 Conv2D over the depthwise stage's (OH,OW,C*DM).
Conv2DParams pointwise_params(const OpSpec& o, const DepthwiseParams& d) {
    return make_conv2d_params(d.N, d.OH, d.OW, d.OC(), 1, 1, o.units, 1, 1, Padding::Valid);
}

Conv2DDilatedParams dilated_params(const OpSpec& o, const std::vector<int>& in, int B) {
    return make_conv2d_dilated_params(B, in[0], in[1], in[2], o.kh, o.kw, o.units, o.sh, o.sw, o.dh,
                                      o.dw, o.pad);
}

bool is_netconv_kind(OpKind k) {
    return k == OpKind::DepthwiseConv2D || k == OpKind::SeparableConv2D ||
           k == OpKind::Conv2DDilated;
}

// Ops with weights, a bias and a fused activation (the activation's pre-activation z).
bool has_fused_act(OpKind k) {
    return k == OpKind::Conv2D || k == OpKind::Dense || is_netconv_kind(k);
}

bool has_weights(const OpSpec& o) {
    return o.kind == OpKind::Conv2D || o.kind == OpKind::Dense || o.kind == OpKind::PRelu ||
           is_netconv_kind(o.kind) || (o.kind == OpKind::BatchNorm && (o.weight || o.bias));
}

bool has_activity(const OpSpec& o) {
    return o.act_l1 != 0.0 || o.act_l2 != 0.0;
}

// The (rows, cols) view a fused activation runs on: the last axis is the row, as Keras
// normalises softmax / log_softmax (the elementwise kinds do not care).
int64_t act_cols(const std::vector<int>& out_shape) {
    return out_shape.back();
}

// Dense's rows per sample: it maps the last axis, every other axis is rows.
int64_t dense_rows_per_sample(const std::vector<int>& in) {
    return prod(in) / in.back();
}

// BatchNorm's view of its (per-sample) input: rows per sample and channels (the last axis).
int64_t bn_rows_per_sample(const std::vector<int>& in) {
    return prod(in) / in.back();
}

// Inference: 1 when the Conv2D at i and the MaxPool2D after it run as one conv_pool_forward
// (a linear or ReLU conv with few taps, csrc/conv2d_fused.h), else 0, and 0 for all with
// CNNFAST_FUSED_INFERENCE=0 (docs/fused_inference.md).
template <class Layer>
int fused_span_at(const std::vector<Layer>& layers, size_t i) {
    const OpSpec& o = layers[i].spec;
    if (o.kind != OpKind::Conv2D || i + 1 >= layers.size() ||
        layers[i + 1].spec.kind != OpKind::MaxPool2D ||
        (o.act != Activation::Linear && o.act != Activation::ReLU) || has_activity(o) ||
        has_activity(layers[i + 1].spec))
        return 0;  // an activity penalty reads the output the fused pass never forms
    const char* env = std::getenv("CNNFAST_FUSED_INFERENCE");
    if (env && std::string(env) == "0") return 0;
    return conv_pool_fusable(conv_params(o, layers[i].in_shape, 1)) ? 1 : 0;
}

// The span from the BatchNorm at i to the MaxPool2D that alone reads its output, directly (1) or
// through an Activation('relu') (2), when the pool's windows tile its input; else 0, and 0 for
// all with CNNFAST_FUSED_BATCHNORM=0
// (docs/training_step.md#batchnormalization-fused-with-the-max-pool). Not with an activity
// penalty on any of them: it reads an output the fused pass never forms.
template <class Layer>
int bn_pool_span_at(const std::vector<Layer>& layers, size_t i) {
    if (layers[i].spec.kind != OpKind::BatchNorm || has_activity(layers[i].spec)) return 0;
    size_t j = i + 1;
    if (j < layers.size() && layers[j].spec.kind == OpKind::Activation &&
        layers[j].spec.act == Activation::ReLU && !has_activity(layers[j].spec))
        ++j;
    if (j >= layers.size() || layers[j].spec.kind != OpKind::MaxPool2D ||
        has_activity(layers[j].spec) || layers[i].in_shape.size() != 3 ||
        !pool_windows_tile(pool_params(layers[j].spec, layers[j].in_shape, 1)))
        return 0;
    const char* env = std::getenv("CNNFAST_FUSED_BATCHNORM");
    if (env && std::string(env) == "0") return 0;
    return (int)(j - i);
}

// Training: the Conv2D at i and the MaxPool2D after it run chunk by chunk of images of about
// kTrainChunkFloats conv outputs, so the pool reads each chunk while it is still in L2 (the same
// values as two whole-batch passes: both are computed image by image).
constexpr size_t kTrainChunkFloats = 128 * 1024;

// Training: whether the Conv2D at i and the MaxPool2D after it run chunk by chunk (Net::forward;
// not with an activity penalty, which reads the whole output, nor when one chunk is the batch).
template <class Layer>
bool train_chunk_pool_at(const std::vector<Layer>& layers, size_t i, int B, size_t chunk) {
    return layers[i].spec.kind == OpKind::Conv2D && i + 1 < layers.size() &&
           layers[i + 1].spec.kind == OpKind::MaxPool2D && !has_activity(layers[i].spec) &&
           !has_activity(layers[i + 1].spec) && (size_t)B * layers[i].out_n > chunk &&
           // Winograd batches its tiles over the whole batch: measured slower in chunks
           !use_winograd(conv_params(layers[i].spec, layers[i].in_shape, B));
}

// The conv_pool_forward of layers i (Conv2D) and i + 1 (MaxPool2D) (Net::Layer is private).
template <class Layer>
ConvPoolSpec conv_pool_spec(const std::vector<Layer>& layers, size_t i) {
    const OpSpec& o = layers[i].spec;
    ConvPoolSpec s;
    s.conv = conv_params(o, layers[i].in_shape, 1);
    s.weight = o.weight;
    s.bias = o.bias;
    s.relu = o.act == Activation::ReLU;
    s.pool = pool_params(layers[i + 1].spec, layers[i + 1].in_shape, 1);
    return s;
}

double now_ms() {
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

Net::Net(std::vector<OpSpec> ops, std::vector<int> in_shape, int max_batch, LossKind loss,
         int num_classes, bool fused)
    : max_batch_(max_batch), loss_(loss), K_(num_classes), fused_(fused) {
    CNNFAST_CHECK(!ops.empty(), "Net: no layers");
    CNNFAST_CHECK(max_batch > 0, "Net: max_batch must be positive");
    CNNFAST_CHECK(!in_shape.empty() &&
                      std::all_of(in_shape.begin(), in_shape.end(), [](int d) { return d > 0; }) &&
                      prod(in_shape) <= INT32_MAX,
                  "Net: in_shape must be positive sizes of at most 2^31-1 values per sample");
    std::vector<int> shape = in_shape;
    sizes_.push_back(prod(shape));
    size_t ws = 0;
    for (const OpSpec& o : ops) {
        Layer l;
        l.spec = o;
        l.in_shape = shape;
        switch (o.kind) {
            case OpKind::Conv2D: {
                CNNFAST_CHECK(shape.size() == 3, "Net: Conv2D needs a (H,W,C) input");
                CNNFAST_CHECK(o.weight, "Net: Conv2D without weights");
                Conv2DParams p = conv_params(o, shape, max_batch);
                CNNFAST_CHECK(o.weight_n == (int64_t)o.kh * o.kw * shape[2] * o.units &&
                                  (!o.bias || o.bias_n == o.units),
                              "Net: Conv2D weights do not match the layer geometry");
                ws = std::max({ws, conv2d_workspace_size(p),
                               conv2d_workspace_size(conv_params(o, shape, 1))});
                shape = {p.OH, p.OW, p.OC};
                break;
            }
            case OpKind::MaxPool2D:
            case OpKind::AvgPool2D: {
                CNNFAST_CHECK(shape.size() == 3, "Net: pooling needs a (H,W,C) input");
                Pool2DParams p = pool_params(o, shape, max_batch);
                shape = {p.OH, p.OW, p.C};
                break;
            }
            case OpKind::Dense:
                // rank > 1: the same GEMM over B * prod(shape[:-1]) rows of the last axis
                CNNFAST_CHECK(o.weight, "Net: Dense without weights");
                CNNFAST_CHECK(o.weight_n == (int64_t)shape.back() * o.units &&
                                  (!o.bias || o.bias_n == o.units),
                              "Net: Dense weights do not match the layer geometry");
                CNNFAST_CHECK((int64_t)max_batch * dense_rows_per_sample(shape) <= INT32_MAX,
                              "Net: Dense has more than 2^31-1 rows per batch");
                shape.back() = o.units;
                break;
            case OpKind::Flatten: shape = {(int)prod(shape)}; break;  // <= 2^31-1: checked
            case OpKind::Dropout:
                CNNFAST_CHECK(o.rate >= 0.0 && o.rate < 1.0, "Net: dropout rate must be in [0,1)");
                break;
            case OpKind::Activation: break;
            case OpKind::BatchNorm: {
                const int C = shape.back();
                CNNFAST_CHECK(o.moving_mean && o.moving_var, "Net: BatchNorm without moving stats");
                CNNFAST_CHECK(
                    o.units == C && (!o.weight || o.weight_n == C) && (!o.bias || o.bias_n == C),
                    "Net: BatchNorm weights do not match the channel count");
                l.mean.resize(C);
                l.rstd.resize(C);
                break;
            }
            case OpKind::Augment:
                CNNFAST_CHECK(shape.size() == 3, "Net: an augmentation needs a (H,W,C) input");
                CNNFAST_CHECK(std::none_of(layers_.begin(), layers_.end(),
                                           [](const Layer& p) { return has_weights(p.spec); }),
                              "Net: an augmentation must come before every layer with weights "
                              "(it has no backward)");
                ws = std::max(ws, augment_work_size(o.aug, max_batch, shape[1], shape[2]));
                if (o.aug.kind == AugmentKind::Crop) {  // RandomCrop: (crop_h, crop_w, C)
                    CNNFAST_CHECK(o.aug.crop_h > 0 && o.aug.crop_w > 0, "Net: bad crop size");
                    shape = {o.aug.crop_h, o.aug.crop_w, shape[2]};
                }
                break;
            case OpKind::GlobalAvgPool2D:
            case OpKind::GlobalMaxPool2D:
                CNNFAST_CHECK(shape.size() == 3, "Net: global pooling needs a (H,W,C) input");
                shape = o.keepdims ? std::vector<int>{1, 1, shape[2]} : std::vector<int>{shape[2]};
                break;
            case OpKind::Rescale: break;
            case OpKind::Reshape:
                CNNFAST_CHECK(prod(o.target) == prod(shape), "Net: Reshape changes the size");
                shape = o.target;
                break;
            case OpKind::ZeroPad2D:
                CNNFAST_CHECK(shape.size() == 3, "Net: ZeroPadding2D needs a (H,W,C) input");
                CNNFAST_CHECK((int64_t)shape[0] + o.pads[0] + o.pads[1] <= INT32_MAX &&
                                  (int64_t)shape[1] + o.pads[2] + o.pads[3] <= INT32_MAX,
                              "Net: ZeroPadding2D output too large");
                shape = {shape[0] + o.pads[0] + o.pads[1], shape[1] + o.pads[2] + o.pads[3],
                         shape[2]};
                break;
            // ---- issue #11: the activation layers with arguments, SpatialDropout2D
            case OpKind::Relu:
            case OpKind::Elu: break;
            case OpKind::PRelu: {
                CNNFAST_CHECK(o.weight && o.dweight && o.weight_n > 0, "Net: PReLU without alpha");
                CNNFAST_CHECK((int64_t)o.aidx.size() == prod(shape),
                              "Net: PReLU's alpha index does not match its input");
                CNNFAST_CHECK(std::all_of(o.aidx.begin(), o.aidx.end(),
                                          [&](int32_t a) { return a >= 0 && a < o.weight_n; }),
                              "Net: PReLU's alpha index is out of range");
                l.partial.resize((size_t)max_batch * o.weight_n);
                break;
            }
            case OpKind::SpatialDropout2D:
                CNNFAST_CHECK(shape.size() == 3, "Net: SpatialDropout2D needs a (H,W,C) input");
                CNNFAST_CHECK(o.rate >= 0.0 && o.rate < 1.0, "Net: dropout rate must be in [0,1)");
                break;
            // depthwise/separable/dilated (netconv)
            case OpKind::DepthwiseConv2D:
            case OpKind::SeparableConv2D: {
                const bool sep = o.kind == OpKind::SeparableConv2D;
                const char* what = sep ? "SeparableConv2D" : "DepthwiseConv2D";
                CNNFAST_CHECK(shape.size() == 3,
                              std::string("Net: ") + what + " needs a (H,W,C) input");
                CNNFAST_CHECK(o.weight && (!sep || o.weight2),
                              std::string("Net: ") + what + " without weights");
                const DepthwiseParams d = depthwise_params(o, shape, max_batch);
                const int OC = sep ? o.units : d.OC();
                CNNFAST_CHECK(
                    o.weight_n == (int64_t)o.kh * o.kw * shape[2] * o.dm &&
                        (!sep || o.weight2_n == (int64_t)d.OC() * o.units) &&
                        (!o.bias || o.bias_n == OC),
                    std::string("Net: ") + what + " weights do not match the layer geometry");
                if (sep) {
                    const Conv2DParams pw = pointwise_params(o, d);
                    ws = std::max({ws, conv2d_workspace_size(pw),
                                   conv2d_workspace_size(
                                       pointwise_params(o, depthwise_params(o, shape, 1)))});
                    l.mid.resize((size_t)max_batch * d.OH * d.OW * d.OC());
                    l.dmid.resize(l.mid.size());
                }
                shape = {d.OH, d.OW, OC};
                break;
            }
            case OpKind::Conv2DDilated: {
                CNNFAST_CHECK(shape.size() == 3, "Net: Conv2D needs a (H,W,C) input");
                CNNFAST_CHECK(o.weight, "Net: Conv2D without weights");
                const Conv2DDilatedParams p = dilated_params(o, shape, max_batch);
                CNNFAST_CHECK(o.weight_n == (int64_t)o.kh * o.kw * shape[2] * o.units &&
                                  (!o.bias || o.bias_n == o.units),
                              "Net: Conv2D weights do not match the layer geometry");
                shape = {p.g.OH, p.g.OW, p.g.OC};
                break;
            }
        }
        CNNFAST_CHECK(o.act_l1 >= 0.0 && o.act_l2 >= 0.0,
                      "Net: activity regularizer factors must be >= 0");
        CNNFAST_CHECK(!(has_activity(o) && fused && layers_.size() + 1 == ops.size()),
                      "Net: an activity regularizer on the output whose logits the loss reads");
        has_activity_ = has_activity_ || has_activity(o);
        l.out_shape = shape;
        l.in_n = sizes_.back();
        l.out_n = prod(shape);
        // every op's per-sample size is an int in the kernels (Flatten, Dense's K)
        CNNFAST_CHECK(l.out_n > 0 && l.out_n <= INT32_MAX,
                      "Net: op " + std::to_string(layers_.size()) + " has " +
                          std::to_string(l.out_n) + " values per sample (at most 2^31-1)");
        sizes_.push_back(l.out_n);
        const size_t out_sz = (size_t)max_batch * l.out_n;
        const bool fused_act = has_fused_act(o.kind) && o.act != Activation::Linear;
        const bool relu = o.act == Activation::ReLU;
        // A ReLU inside the stack runs in the GEMM epilogue, and its backward reads only the
        // output, so the pre-activation is never stored. The last op keeps z: the loss may
        // read it (cached logits).
        l.relu_epilogue = fused_act && relu && layers_.size() + 1 < ops.size();
        l.relu_out = relu && (fused_act || o.kind == OpKind::Activation);
        if (fused_act && !l.relu_epilogue) l.z.resize(out_sz);
        if (o.kind == OpKind::MaxPool2D) l.argmax.resize(out_sz);
        if (o.kind == OpKind::Dropout) l.mask.resize(out_sz);
        if (o.kind == OpKind::SpatialDropout2D) l.mask.resize((size_t)max_batch * shape[2]);
        if (o.kind != OpKind::Flatten && o.kind != OpKind::Reshape) l.out.resize(out_sz);
        layers_.push_back(std::move(l));
    }
    CNNFAST_CHECK(sizes_.back() == K_, "Net: the output has " + std::to_string(sizes_.back()) +
                                           " units but the loss expects " + std::to_string(K_));
    const int64_t biggest = *std::max_element(sizes_.begin(), sizes_.end());
    grad_a_.resize((size_t)max_batch * biggest);
    grad_b_.resize((size_t)max_batch * biggest);
    xbuf_.resize((size_t)max_batch * sizes_.front());
    ybuf_i_.resize(max_batch);
    ybuf_f_.resize((size_t)max_batch * K_);
    loss_buf_.resize(max_batch);
    swbuf_.resize(max_batch);
    dloss_.resize((size_t)max_batch * K_);
    workspace_.resize(std::max<size_t>(ws, 1));
    a_.assign(layers_.size() + 1, nullptr);
    zp_.assign(layers_.size(), nullptr);
    for (size_t i = 0; i < layers_.size(); ++i) {
        Layer& l = layers_[i];
        l.bn_pool_span = bn_pool_span_at(layers_, i);
        if (!l.bn_pool_span) continue;
        Layer& pool = layers_[i + l.bn_pool_span];
        pool.bn_below = l.bn_pool_span;
        l.xwin.resize((size_t)max_batch * pool.out_n);
        for (size_t k = i; k < i + l.bn_pool_span; ++k)
            std::vector<float>().swap(layers_[k].out);  // never formed
    }
    for (size_t i = 0; i < layers_.size(); ++i) {
        layers_[i].fused_span = fused_span_at(layers_, i);
        if (layers_[i].fused_span)
            fused_per_thread_ =
                std::max(fused_per_thread_, conv_pool_scratch_floats(conv_pool_spec(layers_, i)));
    }
    if (fused_per_thread_) {
        fused_slots_ = num_threads();
        fused_scratch_.resize(fused_per_thread_ * fused_slots_);
    }
    set_profiling(false);
}

void Net::forward(const float* x, int B, bool training, uint64_t seed, int64_t sample_offset) {
    CNNFAST_CHECK(B > 0 && B <= max_batch_, "Net: batch of " + std::to_string(B) +
                                                " rows exceeds the buffers' " +
                                                std::to_string(max_batch_));
    a_[0] = const_cast<float*>(x);
    activity_ = 0.0f;
    for (size_t i = 0; i < layers_.size(); ++i) {
        Layer& l = layers_[i];
        const OpSpec& o = l.spec;
        float* in = a_[i];
        float* out = l.out.empty() ? in : l.out.data();
        const Activation act = o.act;
        if (!training && l.fused_span) {  // conv + max-pool in one pass (conv2d_fused.h)
            const size_t j = i + l.fused_span;
            if (num_threads() > fused_slots_) {  // threads added since the Net was built
                fused_slots_ = num_threads();
                fused_scratch_.resize(fused_per_thread_ * fused_slots_);
            }
            float* pooled = layers_[j].out.data();
            conv_pool_forward(pooled, in, B, conv_pool_spec(layers_, i), fused_scratch_.data(),
                              fused_slots_);
            for (size_t k = i; k < j; ++k) a_[k + 1] = zp_[k] = nullptr;  // never formed
            a_[j + 1] = pooled;
            zp_[j] = nullptr;
            i = j;
            continue;
        }
        const int64_t cols = act_cols(l.out_shape);
        const double t0 = timing_ ? now_ms() : 0.0;
        if (l.bn_pool_span) {  // BatchNorm [+ ReLU] + max-pool in one pass (batchnorm_pool.h)
            const size_t j = i + l.bn_pool_span;
            Layer& pl = layers_[j];
            l.bn_batch_stats = training && o.bn_training;
            batchnorm_maxpool_forward(pl.out.data(), training ? pl.argmax.data() : nullptr,
                                      training ? l.xwin.data() : nullptr, l.mean.data(),
                                      l.rstd.data(), o.moving_mean, o.moving_var, in, o.weight,
                                      o.bias, o.eps, o.momentum, l.bn_batch_stats,
                                      l.bn_pool_span == 2, pool_params(pl.spec, pl.in_shape, B));
            for (size_t k = i; k < j; ++k) a_[k + 1] = zp_[k] = nullptr;  // never formed
            a_[j + 1] = pl.out.data();
            zp_[j] = nullptr;
            if (timing_) prof_.fwd_ms[i] += now_ms() - t0;  // the pool's time counts here
            i = j;
            continue;
        }
        // Training: conv + max-pool chunk by chunk of images (train_chunk_pool_at).
        if (training && train_chunk_pool_at(layers_, i, B, kTrainChunkFloats)) {
            const size_t j = i + 1;
            Layer& pl = layers_[j];
            float* z = l.z.empty() ? out : l.z.data();
            const int per = std::max<int>(1, (int)(kTrainChunkFloats / l.out_n));
            for (int n0 = 0; n0 < B; n0 += per) {
                const int nb = std::min(per, B - n0);
                conv2d_forward(z + (size_t)n0 * l.out_n, in + (size_t)n0 * l.in_n, o.weight, o.bias,
                               conv_params(o, l.in_shape, nb), workspace_.data(), l.relu_epilogue);
                if (!l.z.empty())
                    activation_forward(out + (size_t)n0 * l.out_n, z + (size_t)n0 * l.out_n,
                                       nb * (l.out_n / cols), cols, act);
                maxpool2d_forward(
                    pl.out.data() + (size_t)n0 * pl.out_n, pl.argmax.data() + (size_t)n0 * pl.out_n,
                    out + (size_t)n0 * l.out_n, pool_params(pl.spec, pl.in_shape, nb));
            }
            zp_[i] = l.relu_epilogue ? nullptr : z;
            a_[i + 1] = out;
            a_[j + 1] = pl.out.data();
            if (timing_) prof_.fwd_ms[i] += now_ms() - t0;  // the pool's time counts here
            i = j;
            continue;
        }
        switch (o.kind) {
            case OpKind::Conv2D: {
                float* z = l.z.empty() ? out : l.z.data();
                conv2d_forward(z, in, o.weight, o.bias, conv_params(o, l.in_shape, B),
                               workspace_.data(), l.relu_epilogue);
                if (!l.z.empty()) activation_forward(out, z, B * (l.out_n / cols), cols, act);
                zp_[i] = l.relu_epilogue ? nullptr : z;
                break;
            }
            case OpKind::Dense: {
                float* z = l.z.empty() ? out : l.z.data();
                const int rows = B * (int)dense_rows_per_sample(l.in_shape);  // checked in Net()
                dense_forward(z, in, o.weight, o.bias, rows, l.in_shape.back(), o.units,
                              l.relu_epilogue);
                if (!l.z.empty()) activation_forward(out, z, B * (l.out_n / cols), cols, act);
                zp_[i] = l.relu_epilogue ? nullptr : z;
                break;
            }
            case OpKind::MaxPool2D:
                maxpool2d_forward(out, training ? l.argmax.data() : nullptr, in,
                                  pool_params(o, l.in_shape, B));
                break;
            case OpKind::AvgPool2D:
                avgpool2d_forward(out, in, pool_params(o, l.in_shape, B));
                break;
            case OpKind::Flatten: break;
            case OpKind::Dropout:
                l.active = training && o.rate > 0.0;
                if (l.active)
                    dropout_forward(out, l.mask.data(), in, (int64_t)B * l.out_n, o.rate,
                                    layer_seed(seed, i), sample_offset * l.out_n);
                else
                    out = in;
                break;
            case OpKind::Activation:
                activation_forward(out, in, B * (l.out_n / cols), cols, act);
                zp_[i] = in;
                break;
            case OpKind::BatchNorm:
                // Batch statistics (and the moving-stat update) in a train step, unless frozen.
                l.bn_batch_stats = training && o.bn_training;
                batchnorm_forward(out, l.mean.data(), l.rstd.data(), o.moving_mean, o.moving_var,
                                  in, o.weight, o.bias, B * bn_rows_per_sample(l.in_shape),
                                  l.in_shape.back(), o.eps, o.momentum, l.bn_batch_stats);
                break;
            case OpKind::Augment:
                if (training)
                    augment_forward(out, in, workspace_.data(), o.aug, B, l.in_shape[0],
                                    l.in_shape[1], l.in_shape[2], layer_seed(seed, i),
                                    sample_offset);
                else if (o.aug.kind == AugmentKind::Crop)  // Keras's centred crop
                    augment_inference(out, in, o.aug, B, l.in_shape[0], l.in_shape[1],
                                      l.in_shape[2]);
                else
                    out = in;
                break;
            case OpKind::GlobalAvgPool2D:
                global_avgpool2d_forward(out, in, B, l.in_shape[0] * l.in_shape[1], l.in_shape[2]);
                break;
            case OpKind::GlobalMaxPool2D:
                global_maxpool2d_forward(out, in, B, l.in_shape[0] * l.in_shape[1], l.in_shape[2]);
                break;
            case OpKind::Rescale:
                rescale_forward(out, in, (int64_t)B * l.out_n, o.scale, o.offset);
                break;
            case OpKind::Reshape: break;
            case OpKind::ZeroPad2D:
                zeropad2d_forward(out, in, B, l.in_shape[0], l.in_shape[1], l.in_shape[2],
                                  o.pads[0], o.pads[1], o.pads[2], o.pads[3]);
                break;
            // depthwise/separable/dilated (netconv): as Conv2D, the bias (and a ReLU inside the
            // stack) in the kernel, another activation over z afterwards.
            case OpKind::DepthwiseConv2D:
            case OpKind::SeparableConv2D:
            case OpKind::Conv2DDilated: {
                float* z = l.z.empty() ? out : l.z.data();
                if (o.kind == OpKind::DepthwiseConv2D) {
                    depthwise_forward(z, in, o.weight, o.bias, depthwise_params(o, l.in_shape, B),
                                      l.relu_epilogue);
                } else if (o.kind == OpKind::SeparableConv2D) {
                    const DepthwiseParams d = depthwise_params(o, l.in_shape, B);
                    depthwise_forward(l.mid.data(), in, o.weight, nullptr, d);
                    conv2d_forward(z, l.mid.data(), o.weight2, o.bias, pointwise_params(o, d),
                                   workspace_.data(), l.relu_epilogue);
                } else {
                    conv2d_dilated_forward(z, in, o.weight, o.bias,
                                           dilated_params(o, l.in_shape, B), l.relu_epilogue);
                }
                if (!l.z.empty()) activation_forward(out, z, B * (l.out_n / cols), cols, act);
                zp_[i] = l.relu_epilogue ? nullptr : z;
                break;
            }
            // ---- issue #11
            case OpKind::Relu: relu_forward(out, in, (int64_t)B * l.out_n, o.relu); break;
            case OpKind::Elu: elu_forward(out, in, (int64_t)B * l.out_n, o.alpha); break;
            case OpKind::PRelu: prelu_forward(out, in, o.weight, o.aidx.data(), B, l.out_n); break;
            case OpKind::SpatialDropout2D:
                l.active = training && o.rate > 0.0;
                if (l.active)
                    spatial_dropout_forward(
                        out, l.mask.data(), in, B, (int64_t)l.in_shape[0] * l.in_shape[1],
                        l.in_shape[2], o.rate, layer_seed(seed, i), sample_offset * l.in_shape[2]);
                else
                    out = in;
                break;
        }
        // Keras's activity penalty of this output: regularizer(y) / B (cnnfast/layers/base.py)
        if (has_activity(o)) {
            l.activity =
                weight_penalty(nullptr, out, (int64_t)B * l.out_n, o.act_l1, o.act_l2, 1.0f) /
                (float)B;
            activity_ += l.activity;
        }
        a_[i + 1] = out;
        if (timing_) prof_.fwd_ms[i] += now_ms() - t0;
    }
}

float Net::loss_and_grad(const void* y, int B, bool with_grad, const float* sw) {
    const float* in = fused_ ? zp_.back() : a_.back();
    CNNFAST_CHECK(in, "Net: the loss has no input");
    float* d = with_grad ? dloss_.data() : nullptr;
    const float scale = 1.0f / (float)B;
    float* loss = loss_buf_.data();
    switch (loss_) {
        case LossKind::SparseLogits:
            softmax_xent_sparse(loss, d, in, (const int32_t*)y, B, K_, scale);
            break;
        case LossKind::DenseLogits:
            softmax_xent_dense(loss, d, in, (const float*)y, B, K_, scale);
            break;
        case LossKind::SparseProbs:
            xent_probs_sparse(loss, d, in, (const int32_t*)y, B, K_, kXentEps, scale);
            break;
        case LossKind::DenseProbs:
            xent_probs_dense(loss, d, in, (const float*)y, B, K_, kXentEps, scale);
            break;
    }
    return sw ? weighted_loss_mean(d, loss, sw, B, K_) : loss_batch_mean(loss, B);
}

void Net::sample_losses(const void* y, int B) {
    loss_and_grad(y, B, false, nullptr);
}

void Net::backward(int B) {
    // The lowest layer that has weights: nothing below it needs a gradient.
    int lowest = -1;
    for (size_t i = 0; i < layers_.size(); ++i)
        if (has_weights(layers_[i].spec)) {
            lowest = (int)i;
            break;
        }
    float* dy = dloss_.data();
    bool relu_done = false;  // a max-pool above already applied this layer's ReLU derivative
    for (int i = (int)layers_.size() - 1; i >= std::max(lowest, 0); --i) {
        Layer& l = layers_[i];
        const OpSpec& o = l.spec;
        const Activation act = o.act;
        // dy is d(logits), or the ReLU derivative was applied by the max-pool above.
        const bool skip_act = (fused_ && i == (int)layers_.size() - 1) || relu_done;
        relu_done = false;
        const bool has_act = o.act != Activation::Linear;
        const int64_t rows = B * (l.out_n / act_cols(l.out_shape)), cols = act_cols(l.out_shape);
        // the activity penalty's gradient joins d(output) first, as in the LayerEngine
        if (has_activity(o))
            weight_penalty(dy, a_[i + 1], (int64_t)B * l.out_n, o.act_l1, o.act_l2,
                           1.0f / (float)B);
        float* other = dy == grad_a_.data() ? grad_b_.data() : grad_a_.data();
        float* dx = i == lowest ? nullptr : other;
        const double t0 = timing_ ? now_ms() : 0.0;
        if (l.bn_below) {  // the max-pool of a fused BatchNorm [+ ReLU] + max-pool
            const int bi = i - l.bn_below;
            Layer& bl = layers_[bi];
            float* bdx = bi == lowest ? nullptr : other;
            // above a ReLU's output (Conv2D/Dense + ReLU, then BN), as the BatchNorm case below
            relu_done = bdx && bi - 1 >= lowest && layers_[bi - 1].relu_out;
            batchnorm_maxpool_backward(bdx, bl.spec.dweight, bl.spec.dbias, dy, l.argmax.data(),
                                       bl.xwin.data(), l.bn_below == 2 ? a_[i + 1] : nullptr,
                                       a_[bi], bl.mean.data(), bl.rstd.data(), bl.spec.weight,
                                       pool_params(o, l.in_shape, B), bl.bn_batch_stats, relu_done);
            dy = bdx;
            if (timing_) prof_.bwd_ms[bi] += now_ms() - t0;
            i = bi;
            if (!dy) break;
            continue;
        }
        switch (o.kind) {
            case OpKind::Conv2D:
                if (has_act && !skip_act)
                    activation_backward(dy, dy, a_[i + 1], rows, cols, act, zp_[i]);
                conv2d_backward(dx, o.dweight, o.dbias, dy, a_[i], o.weight,
                                conv_params(o, l.in_shape, B), workspace_.data());
                dy = dx;
                break;
            case OpKind::Dense:
                if (has_act && !skip_act)
                    activation_backward(dy, dy, a_[i + 1], rows, cols, act, zp_[i]);
                dense_backward(dx, o.dweight, o.dbias, dy, a_[i], o.weight,
                               B * (int)dense_rows_per_sample(l.in_shape), l.in_shape.back(),
                               o.units);
                dy = dx;
                break;
            case OpKind::MaxPool2D: {
                // Below a ReLU's output: fuse that ReLU's derivative into this pass (one pass
                // over the large pre-pool activation instead of two).
                // (Not when that layer's activity gradient must join first.)
                relu_done = i > 0 && i - 1 >= lowest && layers_[i - 1].relu_out &&
                            !has_activity(layers_[i - 1].spec);
                // The mask is read from the pool's output (its own buffer, never overwritten).
                maxpool2d_backward(other, dy, l.argmax.data(), pool_params(o, l.in_shape, B),
                                   relu_done ? a_[i + 1] : nullptr);
                dy = other;
                break;
            }
            case OpKind::AvgPool2D:
                avgpool2d_backward(other, dy, pool_params(o, l.in_shape, B));
                dy = other;
                break;
            case OpKind::Flatten: break;
            case OpKind::Dropout:
                if (l.active) dropout_backward(dy, dy, l.mask.data(), (int64_t)B * l.out_n, o.rate);
                break;
            case OpKind::Activation:
                if (!skip_act) activation_backward(dy, dy, a_[i + 1], rows, cols, act, zp_[i]);
                break;
            case OpKind::BatchNorm:
                // Above a ReLU's output (Conv2D/Dense + ReLU, then BN): fuse that ReLU's
                // derivative into this pass, as the max-pool does.
                relu_done = dx && i - 1 >= lowest && layers_[i - 1].relu_out;
                batchnorm_backward(dx, o.dweight, o.dbias, dy, a_[i], l.mean.data(), l.rstd.data(),
                                   o.weight, B * bn_rows_per_sample(l.in_shape), l.in_shape.back(),
                                   l.bn_batch_stats, relu_done);
                dy = dx;
                break;
            case OpKind::Augment:
                dy = nullptr;  // nothing below has weights (checked when the Net was built)
                break;
            case OpKind::GlobalAvgPool2D:
                global_avgpool2d_backward(other, dy, B, l.in_shape[0] * l.in_shape[1],
                                          l.in_shape[2]);
                dy = other;
                break;
            case OpKind::GlobalMaxPool2D:
                global_maxpool2d_backward(other, dy, a_[i], a_[i + 1], B,
                                          l.in_shape[0] * l.in_shape[1], l.in_shape[2]);
                dy = other;
                break;
            case OpKind::Rescale: rescale_backward(dy, dy, (int64_t)B * l.out_n, o.scale); break;
            case OpKind::Reshape: break;
            case OpKind::ZeroPad2D:
                zeropad2d_backward(other, dy, B, l.in_shape[0], l.in_shape[1], l.in_shape[2],
                                   o.pads[0], o.pads[1], o.pads[2], o.pads[3]);
                dy = other;
                break;
            // ---- issue #11
            case OpKind::Relu: relu_backward(dy, dy, a_[i], (int64_t)B * l.out_n, o.relu); break;
            case OpKind::Elu: elu_backward(dy, dy, a_[i], (int64_t)B * l.out_n, o.alpha); break;
            case OpKind::PRelu:
                prelu_backward(dx, o.dweight, l.partial.data(), dy, a_[i], o.weight, o.aidx.data(),
                               B, l.out_n, o.weight_n);
                dy = dx;
                break;
            case OpKind::SpatialDropout2D:
                if (l.active)
                    spatial_dropout_backward(dy, dy, l.mask.data(), B,
                                             (int64_t)l.in_shape[0] * l.in_shape[1], l.in_shape[2],
                                             o.rate);
                break;
            // depthwise/separable/dilated (netconv)
            case OpKind::DepthwiseConv2D:
            case OpKind::SeparableConv2D:
            case OpKind::Conv2DDilated:
                if (has_act && !skip_act)
                    activation_backward(dy, dy, a_[i + 1], rows, cols, act, zp_[i]);
                if (o.kind == OpKind::DepthwiseConv2D) {
                    depthwise_backward(dx, o.dweight, o.dbias, dy, a_[i], o.weight,
                                       depthwise_params(o, l.in_shape, B));
                } else if (o.kind == OpKind::SeparableConv2D) {
                    // the LayerEngine's order: the pointwise stage, then the depthwise one
                    const DepthwiseParams d = depthwise_params(o, l.in_shape, B);
                    conv2d_backward(l.dmid.data(), o.dweight2, o.dbias, dy, l.mid.data(), o.weight2,
                                    pointwise_params(o, d), workspace_.data());
                    depthwise_backward(dx, o.dweight, nullptr, l.dmid.data(), a_[i], o.weight, d);
                } else {
                    conv2d_dilated_backward(dx, o.dweight, o.dbias, dy, a_[i], o.weight,
                                            dilated_params(o, l.in_shape, B));
                }
                dy = dx;
                break;
        }
        if (timing_) prof_.bwd_ms[i] += now_ms() - t0;
        if (!dy) break;
    }
}

int64_t Net::count_correct(const void* y, int B) const {
    const float* out = a_.back();
    int64_t correct = 0;
    for (int b = 0; b < B; ++b) {
        const float* r = out + (size_t)b * K_;
        const int pred = (int)(std::max_element(r, r + K_) - r);  // first index on ties
        int truth;
        if (is_sparse(loss_)) {
            truth = ((const int32_t*)y)[b];
        } else {
            const float* t = (const float*)y + (size_t)b * K_;
            truth = (int)(std::max_element(t, t + K_) - t);
        }
        correct += pred == truth;
    }
    return correct;
}

static void apply_update(const OptSpec& opt, const ParamSlot& p, float lr, int64_t step) {
    switch (opt.kind) {
        case OptKind::Adam:
            adam_update(p.w, p.s0, p.s1, p.s2, p.g, p.n, lr, opt.beta1, opt.beta2, opt.eps, step);
            break;
        case OptKind::SGD: sgd_update(p.w, p.s0, p.g, p.n, lr, opt.momentum, opt.nesterov); break;
        case OptKind::RMSprop:
            rmsprop_update(p.w, p.s0, p.s1, p.s2, p.g, p.n, lr, opt.rho, opt.momentum, opt.eps,
                           opt.centered);
            break;
        case OptKind::Nadam:
            nadam_update(p.w, p.s0, p.s1, p.g, p.n, lr, opt.beta1, opt.beta2, opt.eps, step,
                         *opt.u_product);
            break;
        case OptKind::Adamax:
            adamax_update(p.w, p.s0, p.s1, p.g, p.n, lr, opt.beta1, opt.beta2, opt.eps, step);
            break;
        case OptKind::Adagrad: adagrad_update(p.w, p.s0, p.g, p.n, lr, opt.eps); break;
        case OptKind::Adadelta:
            adadelta_update(p.w, p.s0, p.s1, p.g, p.n, lr, opt.rho, opt.eps);
            break;
    }
}

// The optimizer's part of a step, in Keras's order (base_optimizer.py apply): clip every
// gradient, decay every weight, then update each weight.
static void optimizer_step(const OptSpec& opt, const std::vector<ParamSlot>& params, float lr,
                           int64_t step) {
    if (opt.clip != ClipKind::None) {
        // the arrays' list, kept between steps (clear keeps the capacity): no allocation per step
        static thread_local std::vector<float*> g;
        static thread_local std::vector<int64_t> n;
        g.clear(), n.clear();
        for (const ParamSlot& p : params) g.push_back(p.g), n.push_back(p.n);
        clip_gradients(g.data(), n.data(), (int)g.size(), opt.clip, opt.clip_value);
    }
    if (opt.has_weight_decay)
        for (const ParamSlot& p : params) weight_decay_update(p.w, p.n, lr, opt.weight_decay);
    for (const ParamSlot& p : params) apply_update(opt, p, lr, step);
}

StepResult Net::train_step(const float* x, const void* y, const int64_t* idx, int B, uint64_t seed,
                           const OptSpec& opt, const std::vector<ParamSlot>& params, float lr,
                           int64_t step, const float* sw, int64_t sample_offset, bool update) {
    CNNFAST_CHECK(B > 0 && B <= max_batch_, "Net: batch size out of range");
    CNNFAST_CHECK(sample_offset >= 0, "Net: sample_offset must be >= 0");
    const bool sparse = is_sparse(loss_);
    const int64_t in_n = sizes_.front();
    timing_ = profiling_;
    double t = timing_ ? now_ms() : 0.0;
    // Times the phase since t into acc (profiling only).
    auto lap = [&](double& acc) {
        if (!timing_) return;
        const double now = now_ms();
        acc += now - t;
        t = now;
    };
    // Gather the batch (the shuffle is a permutation of row indices).
    for (int b = 0; b < B; ++b) {
        std::memcpy(xbuf_.data() + (size_t)b * in_n, x + (size_t)idx[b] * in_n,
                    sizeof(float) * in_n);
        if (sparse)
            ybuf_i_[b] = ((const int32_t*)y)[idx[b]];
        else
            std::memcpy(ybuf_f_.data() + (size_t)b * K_, (const float*)y + (size_t)idx[b] * K_,
                        sizeof(float) * K_);
        if (sw) swbuf_[b] = sw[idx[b]];
    }
    const void* yb = sparse ? (const void*)ybuf_i_.data() : (const void*)ybuf_f_.data();
    lap(prof_.gather_ms);
    forward(xbuf_.data(), B, true, seed, sample_offset);  // forward/backward time themselves
    t = timing_ ? now_ms() : 0.0;
    StepResult r;
    r.loss = loss_and_grad(yb, B, true, sw ? swbuf_.data() : nullptr);
    r.correct = count_correct(yb, B);
    r.activity = activity_;
    lap(prof_.loss_ms);
    backward(B);
    t = timing_ ? now_ms() : 0.0;
    for (const ParamSlot& p : params)
        if (p.l1 != 0.0 || p.l2 != 0.0)
            r.penalty += weight_penalty(p.g, p.w, p.n, p.l1, p.l2, 1.0f);
    if (update) optimizer_step(opt, params, lr, step);
    lap(prof_.update_ms);
    if (timing_) ++prof_.steps;
    timing_ = false;
    return r;
}

void Net::apply_update(const OptSpec& opt, const std::vector<ParamSlot>& params, float lr,
                       int64_t step) {
    const double t = profiling_ ? now_ms() : 0.0;
    optimizer_step(opt, params, lr, step);
    if (profiling_) prof_.update_ms += now_ms() - t;
}

StepResult Net::evaluate(const float* x, const void* y, int64_t N, const float* sw) {
    timing_ = false;  // only train steps are profiled (even after one that threw)
    CNNFAST_CHECK(N > 0, "Net: evaluate needs at least one row");
    // An activity penalty is one over the whole batch (cnnfast/executor.py builds such a Net
    // for the evaluated batch).
    CNNFAST_CHECK(!has_activity_ || N <= max_batch_,
                  "Net: evaluate with an activity regularizer needs every row in one pass");
    const bool sparse = is_sparse(loss_);
    const int64_t in_n = sizes_.front();
    // loss_batch_mean's (weighted_loss_mean's) running sum, continued across the chunks
    float sum = 0.0f;
    StepResult r{0.0f, 0};
    for (int64_t r0 = 0; r0 < N; r0 += max_batch_) {
        const int B = (int)std::min<int64_t>(max_batch_, N - r0);
        const void* yc = sparse ? (const void*)((const int32_t*)y + r0)
                                : (const void*)((const float*)y + r0 * K_);
        forward(x + r0 * in_n, B, false, 0);
        sample_losses(yc, B);
        if (sw)
            for (int b = 0; b < B; ++b) sum += loss_buf_[b] * sw[r0 + b];
        else
            for (int b = 0; b < B; ++b) sum += loss_buf_[b];
        r.correct += count_correct(yc, B);
        r.activity = activity_;
    }
    r.loss = sum / (float)N;
    return r;
}

void Net::predict(const float* x, int B) {
    timing_ = false;  // only train steps are profiled (even after one that threw)
    forward(x, B, false, 0);
}

void Net::predict_rows(const float* x, float* out, int64_t N) {
    const int64_t in_n = sizes_.front(), out_n = sizes_.back();
    for (int64_t r0 = 0; r0 < N; r0 += max_batch_) {
        const int B = (int)std::min<int64_t>(max_batch_, N - r0);
        predict(x + r0 * in_n, B);
        std::memcpy(out + r0 * out_n, output(), sizeof(float) * B * out_n);
    }
}

std::vector<float> Net::activities() const {
    std::vector<float> v;
    for (const Layer& l : layers_) v.push_back(l.activity);
    return v;
}

void Net::set_profiling(bool on) {
    profiling_ = on;
    prof_ = Profile();
    prof_.fwd_ms.assign(layers_.size(), 0.0);
    prof_.bwd_ms.assign(layers_.size(), 0.0);
}

}  // namespace cnnfast
