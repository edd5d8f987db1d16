/*
 * Average pooling (and the global mean), int8 NHWC: forward and backward.
 *
 * Layouts: in (batches, in_h, in_w, channels), out (batches, out_h, out_w,
 * channels). The window of output (oy, ox) starts at input row
 * oy*stride_h - pad_h, column ox*stride_w - pad_w; taps outside the image
 * are skipped and not counted (TFLite AVERAGE_POOL_2D, where SAME padding
 * averages only the in-image taps). Global average pooling is the same
 * kernel with a whole-image filter.
 *
 * Forward rounding, as reference_integer_ops::AveragePool:
 *   avg = sum > 0 ? (sum + count/2) / count : (sum - count/2) / count
 * with C's truncating division (half away from zero).
 *
 * Backward: each output gradient g is spread over the in-image taps of its
 * window as g / count. The 1/count factors are Q-format reciprocals
 * r = round(2^Q / count); the int32 sum of g*r over the windows holding a
 * pixel is exact. Q is the largest value (<= 30) that keeps that sum below
 * 2^30: with W = ceil(fh/sh)*ceil(fw/sw) windows per pixel at most,
 * 2^L > W, and 2^C <= the smallest window count, Q = 22 - L + C, so
 * |sum| <= 128 * W * (2^(Q-C) + 1/2) < 2^29 + 2^(7+L) < 2^30.
 * Error: each term is off by at most |g|/2 units of 2^(exp-Q), relative
 * error <= count / 2^(Q+1) (3x3 stride 1: Q = 20, 4e-6), far below the
 * int8 rounding of the normalised result (2^-7).
 */
#include "xst.h"
#include "xst_fixed.h"

#define XST_POOL_MAX_DIM (1 << 24)
#define XST_POOL_MAX_WINDOW 65536 /* filter_h * filter_w */

static int dim_ok(int32_t v) { return v >= 1 && v <= XST_POOL_MAX_DIM; }

static int check_dims(const xst_pool_dims *d) {
  if (!dim_ok(d->batches) || !dim_ok(d->in_h) || !dim_ok(d->in_w) || !dim_ok(d->channels) ||
      !dim_ok(d->out_h) || !dim_ok(d->out_w) || !dim_ok(d->filter_h) || !dim_ok(d->filter_w) ||
      !dim_ok(d->stride_h) || !dim_ok(d->stride_w)) {
    return XST_ERR_DIMS;
  }
  if ((int64_t)d->filter_h * d->filter_w > XST_POOL_MAX_WINDOW) return XST_ERR_DIMS;
  /* First and last window of each axis hold an in-image tap (windows move
   * monotonically, so then every window does). This also bounds
   * (out-1)*stride below 2^25, so the int32 window origins cannot overflow. */
  if (d->pad_h < 0 || d->pad_w < 0 || d->pad_h >= d->filter_h || d->pad_w >= d->filter_w) return XST_ERR_DIMS;
  if ((int64_t)(d->out_h - 1) * d->stride_h - d->pad_h >= d->in_h) return XST_ERR_DIMS;
  if ((int64_t)(d->out_w - 1) * d->stride_w - d->pad_w >= d->in_w) return XST_ERR_DIMS;
  return XST_OK;
}

/* In-image tap range [*t0, *t1) of window o along one axis. */
static void taps(int32_t o, int32_t stride, int32_t pad, int32_t filter, int32_t in, int32_t *t0,
                 int32_t *t1) {
  const int32_t origin = o * stride - pad;
  *t0 = origin < 0 ? -origin : 0;
  *t1 = in - origin < filter ? in - origin : filter;
}

int average_pool_s8_forward(const xst_pool_dims *d, int32_t act_min,
                            int32_t act_max, const int8_t *in, int8_t *out,
                            uint8_t *mask) {
  int st = check_dims(d);
  if (st) return st;
  if (act_min < -128 || act_max > 127 || act_min > act_max) return XST_ERR_PARAM;
  const int32_t H = d->in_h, W = d->in_w, C = d->channels;
  size_t k = 0; /* flat output index */
  for (int32_t b = 0; b < d->batches; b++) {
    const int8_t *img = in + (size_t)b * H * W * C;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      int32_t fy0, fy1;
      taps(oy, d->stride_h, d->pad_h, d->filter_h, H, &fy0, &fy1);
      const int32_t iy0 = oy * d->stride_h - d->pad_h;
      for (int32_t ox = 0; ox < d->out_w; ox++) {
        int32_t fx0, fx1;
        taps(ox, d->stride_w, d->pad_w, d->filter_w, W, &fx0, &fx1);
        const int32_t ix0 = ox * d->stride_w - d->pad_w;
        const int32_t count = (fy1 - fy0) * (fx1 - fx0); /* >= 1, <= 65536 */
        for (int32_t c = 0; c < C; c++, k++) {
          int32_t acc = 0; /* |acc| <= 128 * 65536 */
          for (int32_t fy = fy0; fy < fy1; fy++) {
            const int8_t *row = img + ((size_t)(iy0 + fy) * W + (size_t)(ix0 + fx0)) * C + c;
            for (int32_t fx = fx0; fx < fx1; fx++, row += C) acc += *row;
          }
          const int32_t v = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
          if (mask) {
            uint8_t bit = (uint8_t)(1u << (k & 7));
            if (v > act_min && v < act_max) mask[k >> 3] |= bit;
            else mask[k >> 3] &= (uint8_t)~bit;
          }
          out[k] = (int8_t)xst_clamp32(v, act_min, act_max);
        }
      }
    }
  }
  return XST_OK;
}

size_t average_pool_s8_backward_scratch_size(const xst_pool_dims *d) {
  /* int32 acc[batches * in_h * in_w * channels] */
  return (size_t)d->batches * (size_t)d->in_h * (size_t)d->in_w * (size_t)d->channels * 4u;
}

/* Q of the reciprocals (see the file comment). */
static int backward_q(const xst_pool_dims *d) {
  const int32_t wy = (d->filter_h + d->stride_h - 1) / d->stride_h;
  const int32_t wx = (d->filter_w + d->stride_w - 1) / d->stride_w;
  int32_t cy = d->filter_h, cx = d->filter_w; /* smallest tap counts */
  for (int32_t o = 0; o < d->out_h; o++) {
    int32_t t0, t1;
    taps(o, d->stride_h, d->pad_h, d->filter_h, d->in_h, &t0, &t1);
    if (t1 - t0 < cy) cy = t1 - t0;
  }
  for (int32_t o = 0; o < d->out_w; o++) {
    int32_t t0, t1;
    taps(o, d->stride_w, d->pad_w, d->filter_w, d->in_w, &t0, &t1);
    if (t1 - t0 < cx) cx = t1 - t0;
  }
  const int L = xst_bit_length((uint32_t)(wy * wx)); /* wy*wx <= 65536: L <= 17 */
  const int Cb = xst_bit_length((uint32_t)(cy * cx)) - 1;
  const int q = 22 - L + Cb;
  return q > 30 ? 30 : q;
}

int average_pool_s8_backward(const xst_pool_dims *d, const int8_t *grad_out,
                             const int32_t *grad_out_exp, int8_t *grad_in,
                             int32_t *grad_in_exp, void *scratch) {
  int st = check_dims(d);
  if (st) return st;
  if (*grad_out_exp < -1024 || *grad_out_exp > 1024) return XST_ERR_PARAM;
  const int32_t H = d->in_h, W = d->in_w, C = d->channels;
  const size_t n = (size_t)d->batches * H * W * C;
  int32_t *acc = (int32_t *)scratch;
  for (size_t i = 0; i < n; i++) acc[i] = 0;
  const int q = backward_q(d);
  const int8_t *g = grad_out;
  for (int32_t b = 0; b < d->batches; b++) {
    int32_t *img = acc + (size_t)b * H * W * C;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      int32_t fy0, fy1;
      taps(oy, d->stride_h, d->pad_h, d->filter_h, H, &fy0, &fy1);
      const int32_t iy0 = oy * d->stride_h - d->pad_h;
      for (int32_t ox = 0; ox < d->out_w; ox++, g += C) {
        int32_t fx0, fx1;
        taps(ox, d->stride_w, d->pad_w, d->filter_w, W, &fx0, &fx1);
        const int32_t ix0 = ox * d->stride_w - d->pad_w;
        const uint32_t count = (uint32_t)((fy1 - fy0) * (fx1 - fx0));
        const int32_t r = (int32_t)((((uint32_t)1 << q) + count / 2) / count);
        for (int32_t fy = fy0; fy < fy1; fy++) {
          for (int32_t fx = fx0; fx < fx1; fx++) {
            int32_t *a = img + ((size_t)(iy0 + fy) * W + (size_t)(ix0 + fx)) * C;
            for (int32_t c = 0; c < C; c++) a[c] += g[c] * r;
          }
        }
      }
    }
  }
  /* Normalise: the largest magnitude lands in [64, 127]. */
  const int s = xst_normalize_s8(acc, n, grad_in);
  *grad_in_exp = *grad_out_exp - q + s;
  return XST_OK;
}

/* TFLite reference_integer_ops::Mean over axes [1, 2] (keep_dims): the sum
 * of (in - zp_in) over the image is requantised by s_in/s_out first, then
 * divided by h*w with the same half-away-from-zero rounding as the pool.
 * d: in_h x in_w image, out 1x1, filter = image, stride 1, no padding. */
int mean_s8_forward(const xst_pool_dims *d, int32_t input_zero_point,
                    int32_t multiplier, int32_t shift,
                    int32_t output_zero_point, const int8_t *in,
                    int8_t *out) {
  int st = check_dims(d);
  if (st) return st;
  if (d->out_h != 1 || d->out_w != 1 || d->filter_h != d->in_h || d->filter_w != d->in_w || d->pad_h || d->pad_w) {
    return XST_ERR_DIMS;
  }
  if (input_zero_point < -128 || input_zero_point > 127) return XST_ERR_PARAM;
  if (output_zero_point < -128 || output_zero_point > 127) return XST_ERR_PARAM;
  if (multiplier < 0 || shift < -31 || shift > 30) return XST_ERR_PARAM;
  const int32_t C = d->channels, n = d->in_h * d->in_w; /* n <= 65536 */
  for (int32_t b = 0; b < d->batches; b++) {
    const int8_t *img = in + (size_t)b * (size_t)n * C;
    for (int32_t c = 0; c < C; c++) {
      int32_t acc = 0; /* |acc| <= 255 * 65536 */
      for (int32_t p = 0; p < n; p++) acc += (int32_t)img[(size_t)p * C + c] - input_zero_point;
      acc = xst_requantize(acc, multiplier, shift);
      /* requantize can return up to ~2^31 for an absurd multiplier: keep
       * the rounding and zero point additions inside int32 */
      acc = xst_clamp32(acc, -(1 << 30), 1 << 30);
      acc = acc > 0 ? (acc + n / 2) / n : (acc - n / 2) / n;
      acc += output_zero_point;
      out[(size_t)b * C + c] = (int8_t)xst_clamp32(acc, -128, 127);
    }
  }
  return XST_OK;
}
