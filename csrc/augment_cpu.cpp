// augment_cpu.cpp -- RandomFlip / RandomRotation / RandomZoom / RandomTranslation /
//   RandomContrast / RandomCrop forward (see augment.h).
//   The resampling follows TensorFlow's ImageProjectiveTransformV3 CPU kernel step by step
//   (float32 arithmetic in the same order): map each output pixel through the image's
//   transform, fold the coordinate back into the image by the fill mode, then read the
//   nearest pixel (round half away from zero) or the bilinear mix of the four around it,
//   with fill_value for taps outside the image (constant mode).
#include "augment.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common.h"

namespace cnnfast {

namespace {

// TF's MapCoordinate for one axis of length len (a float coordinate in, one in [0, len-1] out,
// except constant mode, which leaves it for the bounds check of the read).
float map_coord(float c, int64_t len, FillMode mode) {
    switch (mode) {
        case FillMode::Reflect:  // [abcd] -> [dcba|abcd|dcba]
            if (c < 0) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz2 = 2 * len;
                    if (c < sz2) c = sz2 * (int64_t)(-c / sz2) + c;
                    c = (c < -len) ? c + sz2 : -c - 1;
                }
            } else if (c > len - 1) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz2 = 2 * len;
                    c -= sz2 * (int64_t)(c / sz2);
                    if (c >= len) c = sz2 - c - 1;
                }
            }
            break;
        case FillMode::Wrap:  // [abcd] -> [abcd|abcd|abcd]
            if (c < 0) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz = len - 1;
                    c += len * ((int64_t)(-c / sz) + 1);
                }
            } else if (c > len - 1) {
                if (len <= 1) {
                    c = 0;
                } else {
                    const int64_t sz = len - 1;
                    c -= len * (int64_t)(c / sz);
                }
            }
            break;
        case FillMode::Constant: return c;
        case FillMode::Nearest: break;
    }
    // The clamp matters: 3.5 in a row of 4 would round to 4 in nearest interpolation.
    return std::fmin(std::fmax(c, 0.0f), (float)(len - 1));
}

// Channel values of pixel (y, x) of img (H,W,C) into v, or fill_value outside the image.
inline const float* pixel(const float* img, const float* fill, int64_t y, int64_t x, int H, int W,
                          int C) {
    return (0 <= y && y < H && 0 <= x && x < W) ? img + (y * W + x) * C : fill;
}

// One image (H,W,C) through one transform t[8].
void transform_image(float* out, const float* img, const float* t, int H, int W, int C,
                     FillMode fill, Interpolation interp, const float* fillv) {
    for (int oy = 0; oy < H; ++oy)
        for (int ox = 0; ox < W; ++ox) {
            float* o = out + ((int64_t)oy * W + ox) * C;
            const float fx = (float)ox, fy = (float)oy;
            const float proj = t[6] * fx + t[7] * fy + 1.f;
            if (proj == 0) {
                for (int c = 0; c < C; ++c) o[c] = fillv[c];
                continue;
            }
            const float ix = (t[0] * fx + t[1] * fy + t[2]) / proj;
            const float iy = (t[3] * fx + t[4] * fy + t[5]) / proj;
            const float x = map_coord(ix, W, fill), y = map_coord(iy, H, fill);
            if (interp == Interpolation::Nearest) {
                const float* p =
                    pixel(img, fillv, (int64_t)std::round(y), (int64_t)std::round(x), H, W, C);
                for (int c = 0; c < C; ++c) o[c] = p[c];
                continue;
            }
            const float y0 = std::floor(y), x0 = std::floor(x);
            const float y1 = y0 + 1, x1 = x0 + 1;
            const float* p00 = pixel(img, fillv, (int64_t)y0, (int64_t)x0, H, W, C);
            const float* p01 = pixel(img, fillv, (int64_t)y0, (int64_t)x1, H, W, C);
            const float* p10 = pixel(img, fillv, (int64_t)y1, (int64_t)x0, H, W, C);
            const float* p11 = pixel(img, fillv, (int64_t)y1, (int64_t)x1, H, W, C);
            for (int c = 0; c < C; ++c) {
                const float top = (x1 - x) * p00[c] + (x - x0) * p01[c];
                const float bot = (x1 - x) * p10[c] + (x - x0) * p11[c];
                o[c] = (y1 - y) * top + (y - y0) * bot;
            }
        }
}

// Keras's rotation about the image centre (base_image_preprocessing_layer.py
// _compute_affine_matrix with no shear, scale 1, no translation), in float32 as Keras.
void rotation_matrix(float* t, float angle_deg, int H, int W) {
    const float rad = angle_deg * (float)(M_PI / 180.0);
    const float cx = 0.5f * (float)(W - 1), cy = 0.5f * (float)(H - 1);
    const float c = std::cos(rad), s = std::sin(rad);
    const float a0 = c, a1 = -s, b0 = s, b1 = c;
    t[0] = a0, t[1] = a1, t[2] = cx - cx * a0 - cy * a1;
    t[3] = b0, t[4] = b1, t[5] = cy - cx * b0 - cy * b1;
    t[6] = t[7] = 0.0f;
}

// Keras's zoom about the image centre (random_zoom.py _get_zoom_matrix).
void zoom_matrix(float* t, float zy, float zx, int H, int W) {
    t[0] = zx, t[1] = 0.0f, t[2] = (((float)W - 1.0f) / 2.0f) * (1.0f - zx);
    t[3] = 0.0f, t[4] = zy, t[5] = (((float)H - 1.0f) / 2.0f) * (1.0f - zy);
    t[6] = t[7] = 0.0f;
}

// Keras's translation matrix (random_translation.py _get_translation_matrix): output (x, y)
// reads the input at (x - dx, y - dy).
void translation_matrix(float* t, float dy, float dx) {
    t[0] = 1.0f, t[1] = 0.0f, t[2] = -dx;
    t[3] = 0.0f, t[4] = 1.0f, t[5] = -dy;
    t[6] = t[7] = 0.0f;
}

float uniform_in(uint64_t seed, int64_t b, int j, double lo, double hi) {
    return (float)(lo + (hi - lo) * augment_uniform(seed, b, j));
}

// Keras's centred window for a crop of (h, w) from H x W (random_crop.py's fallback and
// smart_resize): the largest window of the crop's aspect ratio, and its start.
void centred_window(int H, int W, int h, int w, int* wh, int* ww, int* h0, int* w0) {
    *wh = std::max(std::min(H, (int)((double)W * h / w)), 1);
    *ww = std::max(std::min(W, (int)((double)H * w / h)), 1);
    *h0 = (int)((double)(H - *wh) / 2);
    *w0 = (int)((double)(W - *ww) / 2);
}

// The crop window of a training step: Keras's uniform start when the image is larger than the
// crop in both axes, else its centred start (random_crop.py get_random_transformation).
void crop_start(const AugmentSpec& s, int H, int W, uint64_t seed, int* h0, int* w0) {
    if (H > s.crop_h && W > s.crop_w) {
        *h0 = (int)std::floor((double)(H - s.crop_h + 1) * augment_uniform(seed, 0, 0));
        *w0 = (int)std::floor((double)(W - s.crop_w + 1) * augment_uniform(seed, 0, 1));
    } else {
        int wh, ww;
        centred_window(H, W, s.crop_h, s.crop_w, &wh, &ww, h0, w0);
    }
}

struct Lerp {
    int64_t lo, hi;
    float t;
};

// Grow-only scratch of the calling thread (the kernels fill it before their parallel regions,
// which only read it): after the first call at the largest size, a call allocates nothing.
template <class T>
T* thread_scratch(size_t n) {
    static thread_local std::vector<T> buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

// TF's compute_interpolation_weights with the HalfPixelScaler (resize_bilinear_op.cc):
// v[0..out_size) overwritten.
void lerp_weights(Lerp* v, int out_size, int in_size) {
    const float scale = (float)in_size / (float)out_size;
    for (int i = 0; i < out_size; ++i) {
        const float in = ((float)i + 0.5f) * scale - 0.5f;
        const float f = std::floor(in);
        v[i].lo = std::max((int64_t)f, (int64_t)0);
        v[i].hi = std::min((int64_t)std::ceil(in), (int64_t)in_size - 1);
        v[i].t = in - f;
    }
}

// One window of an image with row stride `rs` floats, resized to (oh, ow) through the
// weights ys, xs (computed for the window's size).
void resize_window(float* out, const float* win, int64_t rs, int C, int oh, int ow, const Lerp* ys,
                   const Lerp* xs) {
    for (int y = 0; y < oh; ++y) {
        const float* r0 = win + ys[y].lo * rs;
        const float* r1 = win + ys[y].hi * rs;
        const float yl = ys[y].t;
        float* o = out + (int64_t)y * ow * C;
        for (int x = 0; x < ow; ++x) {
            const int64_t a = xs[x].lo * C, b = xs[x].hi * C;
            const float xl = xs[x].t;
            for (int c = 0; c < C; ++c) {
                const float top = r0[a + c] + (r0[b + c] - r0[a + c]) * xl;
                const float bot = r1[a + c] + (r1[b + c] - r1[a + c]) * xl;
                o[(int64_t)x * C + c] = top + (bot - top) * yl;
            }
        }
    }
}

// out (B,oh,ow,C) = the window (wh, ww) at (h0, w0) of each image, resized when it differs.
void window_resize(float* out, const float* inp, int B, int H, int W, int C, int h0, int w0, int wh,
                   int ww, int oh, int ow) {
    const int64_t n = (int64_t)H * W * C, on = (int64_t)oh * ow * C, rs = (int64_t)W * C;
    const bool same = wh == oh && ww == ow;
    Lerp* ys = nullptr;
    Lerp* xs = nullptr;
    if (!same) {
        ys = thread_scratch<Lerp>((size_t)oh + ow);
        xs = ys + oh;
        lerp_weights(ys, oh, wh), lerp_weights(xs, ow, ww);
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int b = 0; b < B; ++b) {
        const float* win = inp + b * n + (int64_t)h0 * rs + (int64_t)w0 * C;
        float* o = out + b * on;
        if (same) {
            for (int y = 0; y < oh; ++y)
                std::memcpy(o + (int64_t)y * ow * C, win + y * rs, sizeof(float) * ow * C);
        } else {
            resize_window(o, win, rs, C, oh, ow, ys, xs);
        }
    }
}

// The columns (of W*C) whose row sums contrast_image accumulates at a time, on the stack.
constexpr int64_t kContrastTile = 256;

// Keras's RandomContrast on one image (H,W,C): the per-channel mean over rows, then over
// columns (float32 after each, as Keras's two means), (x - mean) * f + mean, clipped.
// work: contrast_work_size(W, C) floats (the column means (W,C), then the channel means (C,)).
void contrast_image(float* out, const float* img, float f, int H, int W, int C, float lo, float hi,
                    float* work) {
    const int64_t wc = (int64_t)W * C;
    float* mean_col = work;
    float* mean = work + wc;
    // Each column's sum in double over the rows in order, a tile of columns at a time.
    for (int64_t i0 = 0; i0 < wc; i0 += kContrastTile) {
        const int64_t nt = std::min(kContrastTile, wc - i0);
        double acc[kContrastTile];
        for (int64_t j = 0; j < nt; ++j) acc[j] = 0.0;
        for (int y = 0; y < H; ++y) {
            const float* row = img + (int64_t)y * wc + i0;
            for (int64_t j = 0; j < nt; ++j) acc[j] += row[j];
        }
        for (int64_t j = 0; j < nt; ++j) mean_col[i0 + j] = (float)(acc[j] / H);
    }
    for (int c = 0; c < C; ++c) {
        double m = 0.0;
        for (int x = 0; x < W; ++x) m += mean_col[(int64_t)x * C + c];
        mean[c] = (float)(m / W);
    }
    for (int64_t p = 0; p < (int64_t)H * W; ++p)
        for (int c = 0; c < C; ++c) {
            const float v = (img[p * C + c] - mean[c]) * f + mean[c];
            out[p * C + c] = std::fmin(std::fmax(v, lo), hi);
        }
}

}  // namespace

size_t contrast_work_size(int W, int C) {
    return (size_t)W * C + C;
}

size_t augment_work_size(const AugmentSpec& s, int B, int W, int C) {
    size_t n = (size_t)kAugmentWork * B;
    if (s.kind == AugmentKind::Contrast) n += (size_t)B * contrast_work_size(W, C);
    return n;
}

int augment_num_params(AugmentKind kind) {
    return kind == AugmentKind::Rotation || kind == AugmentKind::Contrast ? 1 : 2;
}

void augment_out_hw(const AugmentSpec& s, int H, int W, int* oh, int* ow) {
    *oh = s.kind == AugmentKind::Crop ? s.crop_h : H;
    *ow = s.kind == AugmentKind::Crop ? s.crop_w : W;
}

void augment_params(float* params, float* transforms, const AugmentSpec& s, int B, int H, int W,
                    uint64_t seed, int64_t first) {
    const int P = augment_num_params(s.kind);
    for (int b = 0; b < B; ++b) {
        float* p = params + (int64_t)b * P;
        float* t = transforms ? transforms + (int64_t)b * 8 : nullptr;
        const int64_t g = first + b;  // the image's position in the (global) batch
        switch (s.kind) {
            case AugmentKind::Flip: {
                // Keras draws one uniform per image and flips at <= 0.5; in
                // horizontal_and_vertical mode the same draw flips both axes (random_flip.py).
                const bool flip = augment_uniform(seed, g, 0) <= 0.5;
                p[0] = s.flip_h && flip;
                p[1] = s.flip_v && flip;
            } break;
            case AugmentKind::Rotation:
                p[0] = uniform_in(seed, g, 0, s.lo0 * 360.0, s.hi0 * 360.0);
                if (t) rotation_matrix(t, p[0], H, W);
                break;
            case AugmentKind::Zoom:
                p[0] = uniform_in(seed, g, 0, 1.0 + s.lo0, 1.0 + s.hi0);
                p[1] = s.has_width ? uniform_in(seed, g, 1, 1.0 + s.lo1, 1.0 + s.hi1) : p[0];
                if (t) zoom_matrix(t, p[0], p[1], H, W);
                break;
            case AugmentKind::Translation:
                // Keras: uniform fractions (float32) times the image's height and width
                p[0] = uniform_in(seed, b, 0, s.lo0, s.hi0) * (float)H;
                p[1] = uniform_in(seed, b, 1, s.lo1, s.hi1) * (float)W;
                if (t) translation_matrix(t, p[0], p[1]);
                break;
            case AugmentKind::Contrast:
                p[0] = uniform_in(seed, b, 0, 1.0 - s.lo0, 1.0 + s.hi0);
                break;
            case AugmentKind::Crop: {
                int h0, w0;
                crop_start(s, H, W, seed, &h0, &w0);
                p[0] = (float)h0, p[1] = (float)w0;
            } break;
        }
    }
}

void projective_transform(float* out, const float* inp, const float* transforms, int B, int H,
                          int W, int C, FillMode fill, Interpolation interp, float fill_value) {
    const int64_t n = (int64_t)H * W * C;
    // The pixel read outside the image: C copies of fill_value, shared (read-only) by the threads.
    float* fillv = thread_scratch<float>((size_t)C);
    std::fill(fillv, fillv + C, fill_value);
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int b = 0; b < B; ++b)
        transform_image(out + b * n, inp + b * n, transforms + (int64_t)b * 8, H, W, C, fill,
                        interp, fillv);
}

// Image (H,W,C) reversed along W (flip_h) and/or H (flip_v), or copied.
static void flip_image(float* out, const float* img, bool fh, bool fv, int H, int W, int C) {
    for (int y = 0; y < H; ++y) {
        const float* row = img + (int64_t)(fv ? H - 1 - y : y) * W * C;
        float* orow = out + (int64_t)y * W * C;
        if (!fh) {
            std::memcpy(orow, row, sizeof(float) * W * C);
            continue;
        }
        for (int x = 0; x < W; ++x)
            std::memcpy(orow + (int64_t)x * C, row + (int64_t)(W - 1 - x) * C, sizeof(float) * C);
    }
}

void augment_forward(float* out, const float* inp, float* work, const AugmentSpec& s, int B, int H,
                     int W, int C, uint64_t seed, int64_t first) {
    CNNFAST_CHECK(B >= 0 && H > 0 && W > 0 && C > 0, "augment_forward: bad image shape");
    if (s.kind == AugmentKind::Flip) {
        augment_params(work, nullptr, s, B, H, W, seed, first);
        const int64_t n = (int64_t)H * W * C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
        for (int b = 0; b < B; ++b)
            flip_image(out + b * n, inp + b * n, work[2 * b] != 0.0f, work[2 * b + 1] != 0.0f, H, W,
                       C);
        return;
    }
    if (s.kind == AugmentKind::Contrast) {
        // work: the factors (B,), then per image its contrast_image scratch
        augment_params(work, nullptr, s, B, H, W, seed, first);
        const int64_t n = (int64_t)H * W * C;
        float* scratch = work + (int64_t)kAugmentWork * B;
        const int64_t per = (int64_t)contrast_work_size(W, C);
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
        for (int b = 0; b < B; ++b)
            contrast_image(out + b * n, inp + b * n, work[b], H, W, C, s.vmin, s.vmax,
                           scratch + b * per);
        return;
    }
    if (s.kind == AugmentKind::Crop) {
        int h0, w0;
        crop_start(s, H, W, seed, &h0, &w0);
        // Keras slices crop_h x crop_w rows and columns from the start (fewer at the edge),
        // then resizes what it got to the crop size.
        crop_resize(out, inp, B, H, W, C, h0, w0, s.crop_h, s.crop_w);
        return;
    }
    // work: the transforms (B,8), then the parameters (B,P <= 2)
    augment_params(work + (int64_t)B * 8, work, s, B, H, W, seed, first);
    projective_transform(out, inp, work, B, H, W, C, s.fill, s.interp, s.fill_value);
}

void crop_resize(float* out, const float* inp, int B, int H, int W, int C, int h0, int w0, int oh,
                 int ow) {
    CNNFAST_CHECK(0 <= h0 && h0 < H && 0 <= w0 && w0 < W && oh > 0 && ow > 0,
                  "crop_resize: the window starts outside the image");
    window_resize(out, inp, B, H, W, C, h0, w0, std::min(oh, H - h0), std::min(ow, W - w0), oh, ow);
}

void resize_bilinear(float* out, const float* inp, int B, int H, int W, int C, int oh, int ow) {
    CNNFAST_CHECK(H > 0 && W > 0 && C > 0 && oh > 0 && ow > 0, "resize_bilinear: bad shape");
    window_resize(out, inp, B, H, W, C, 0, 0, H, W, oh, ow);
}

void augment_inference(float* out, const float* inp, const AugmentSpec& s, int B, int H, int W,
                       int C) {
    CNNFAST_CHECK(B >= 0 && H > 0 && W > 0 && C > 0, "augment_inference: bad image shape");
    if (s.kind != AugmentKind::Crop) {
        std::memcpy(out, inp, sizeof(float) * B * H * W * C);
        return;
    }
    // Keras's documented inference rule (smart_resize): the centred window of the crop's
    // aspect ratio, resized to the crop size.
    int wh, ww, h0, w0;
    centred_window(H, W, s.crop_h, s.crop_w, &wh, &ww, &h0, &w0);
    window_resize(out, inp, B, H, W, C, h0, w0, wh, ww, s.crop_h, s.crop_w);
}

// ---- scipy.ndimage.affine_transform (the legacy ImageDataGenerator) ----
namespace {

// scipy's map_coordinate (ni_interpolation.c): a coordinate outside [0, len-1] folded back;
// -1 in constant mode means "outside" (the output is cval).
double scipy_map(double in, int64_t len, WarpMode mode) {
    if (in < 0) {
        switch (mode) {
            case WarpMode::Reflect:
                if (len <= 1) return 0;
                {
                    const int64_t sz2 = 2 * len;
                    if (in < -sz2) in = sz2 * (int64_t)(-in / sz2) + in;
                    in = in < -len ? in + sz2 : -in - 1;
                }
                return in;
            case WarpMode::Wrap:
                if (len <= 1) return 0;
                {
                    const int64_t sz = len - 1;
                    in += sz * ((int64_t)(-in / sz) + 1);
                }
                return in;
            case WarpMode::Nearest: return 0;
            case WarpMode::Constant: return -1;
        }
    } else if (in > len - 1) {
        switch (mode) {
            case WarpMode::Reflect:
                if (len <= 1) return 0;
                {
                    const int64_t sz2 = 2 * len;
                    in -= sz2 * (int64_t)(in / sz2);
                    if (in >= len) in = sz2 - in - 1;
                }
                return in;
            case WarpMode::Wrap:
                if (len <= 1) return 0;
                {
                    const int64_t sz = len - 1;
                    in -= sz * (int64_t)(in / sz);
                }
                return in;
            case WarpMode::Nearest: return (double)(len - 1);
            case WarpMode::Constant: return -1;
        }
    }
    return in;
}

// A tap index outside [0, len): reflect and nearest repeat the edge sample (scipy's
// half-sample extension), wrap and constant mirror about it (their taps there carry weight 0).
inline int64_t scipy_tap(int64_t i, int64_t len, WarpMode mode) {
    if (i >= 0 && i < len) return i;
    if (len <= 1) return 0;
    if (mode == WarpMode::Reflect || mode == WarpMode::Nearest) return i < 0 ? 0 : len - 1;
    return i < 0 ? -i : 2 * len - 2 - i;
}

void warp_image(float* out, const float* img, const double* m, uint8_t flags, int H, int W, int C,
                WarpMode mode, int order, double cval) {
    const bool warp = flags & 1, fh = flags & 2, fv = flags & 4;
    for (int r = 0; r < H; ++r)
        for (int c = 0; c < W; ++c) {
            float* o = out + ((int64_t)r * W + c) * C;
            const int sr = fv ? H - 1 - r : r, sc = fh ? W - 1 - c : c;  // the flip after
            if (!warp) {
                const float* p = img + ((int64_t)sr * W + sc) * C;
                for (int k = 0; k < C; ++k) o[k] = p[k];
                continue;
            }
            // scipy's sum order: 0, then row * m, column * m, then the offset
            double yr = 0.0, yc = 0.0;
            yr += (double)sr * m[0];
            yr += (double)sc * m[1];
            yr += m[2];
            yc += (double)sr * m[3];
            yc += (double)sc * m[4];
            yc += m[5];
            const double cr = scipy_map(yr, H, mode), cc = scipy_map(yc, W, mode);
            if (!(cr > -1.0) || !(cc > -1.0)) {
                for (int k = 0; k < C; ++k) o[k] = (float)cval;
                continue;
            }
            if (order == 0) {
                const int64_t ir = scipy_tap((int64_t)std::floor(cr + 0.5), H, mode);
                const int64_t ic = scipy_tap((int64_t)std::floor(cc + 0.5), W, mode);
                const float* p = img + (ir * W + ic) * C;
                for (int k = 0; k < C; ++k) o[k] = p[k];
                continue;
            }
            const int64_t r0 = (int64_t)std::floor(cr), c0 = (int64_t)std::floor(cc);
            const double tr = cr - (double)r0, tc = cc - (double)c0;
            const double wr[2] = {1.0 - tr, tr}, wc[2] = {1.0 - tc, tc};
            const int64_t rr[2] = {scipy_tap(r0, H, mode), scipy_tap(r0 + 1, H, mode)};
            const int64_t cs[2] = {scipy_tap(c0, W, mode), scipy_tap(c0 + 1, W, mode)};
            for (int k = 0; k < C; ++k) {
                double t = 0.0;
                for (int a = 0; a < 2; ++a)
                    for (int b = 0; b < 2; ++b) {
                        double coeff = img[(rr[a] * W + cs[b]) * C + k];
                        coeff *= wr[a];
                        coeff *= wc[b];
                        t += coeff;
                    }
                o[k] = (float)t;
            }
        }
}

}  // namespace

void affine_warp(float* out, const float* inp, const double* m, const uint8_t* flags, int B, int H,
                 int W, int C, WarpMode mode, int order, double cval) {
    CNNFAST_CHECK(B >= 0 && H > 0 && W > 0 && C > 0, "affine_warp: bad image shape");
    CNNFAST_CHECK(order == 0 || order == 1, "affine_warp: order must be 0 or 1");
    const int64_t n = (int64_t)H * W * C;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int b = 0; b < B; ++b)
        warp_image(out + b * n, inp + b * n, m + (int64_t)b * 6, flags[b], H, W, C, mode, order,
                   cval);
}

}  // namespace cnnfast
