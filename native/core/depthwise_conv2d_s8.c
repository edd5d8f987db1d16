/*
 * Depthwise 2-D convolution, int8 (TFLite DEPTHWISE_CONV_2D, per-channel
 * weights, dilation 1): forward and backward.
 *
 * Layouts (NHWC, row-major):
 *   in / grad_in     (batch, in_h, in_w, in_c)
 *   w                (1, k_h, k_w, out_c)        out_c = in_c * mult
 *   out / grad_out   (batch, out_h, out_w, out_c)
 * Output channel oc reads input channel oc / mult (oc = ic * mult + m).
 * Padding: pad_h / pad_w are the top / left pads; taps outside the image are
 * skipped (they contribute as the input zero point, i.e. 0 after the offset),
 * exactly as TFLite's reference_integer_ops::DepthwiseConvPerChannel.
 * Gradients: int8 with a power-of-two exponent per tensor (real = q * 2^exp),
 * see native/README.md.
 */
#include "xst.h"
#include "xst_fixed.h"

#define XST_DW_MAX_DIM (1 << 24)
#define XST_DW_MAX_TAPS 65536       /* k_h*k_w: keeps the forward int32 sum exact */
#define XST_DW_MAX_PIXELS 65535     /* batch*out_h*out_w: weight-gradient sums exact */
#define XST_DW_MAX_BIAS_PIXELS (1 << 23) /* batch*out_h*out_w: bias-gradient sums exact */
#define XST_DW_CHUNK 32             /* channels per accumulator block (mult == 1) */

/* Every dimension positive (pads >= 0), a pad smaller than its kernel side,
 * and every output window overlapping the image: the first window starts at
 * -pad > -k, the last at (out-1)*stride - pad <= in - 1. SAME and VALID
 * geometries (TFLite's formulas) satisfy both. */
static int check_dims(const xst_dwconv_dims *d) {
  const int32_t v[11] = {d->batch, d->in_h, d->in_w, d->in_c, d->out_h, d->out_w,
                         d->mult, d->k_h, d->k_w, d->stride_h, d->stride_w};
  for (int k = 0; k < 11; k++) {
    if (v[k] < 1 || v[k] > XST_DW_MAX_DIM) return XST_ERR_DIMS;
  }
  if (d->pad_h < 0 || d->pad_h >= d->k_h || d->pad_w < 0 || d->pad_w >= d->k_w) return XST_ERR_DIMS;
  if ((int64_t)d->k_h * d->k_w > XST_DW_MAX_TAPS) return XST_ERR_DIMS;
  if ((int64_t)d->in_c * d->mult > XST_DW_MAX_DIM) return XST_ERR_DIMS;
  if ((int64_t)(d->out_h - 1) * d->stride_h - d->pad_h > (int64_t)d->in_h - 1) return XST_ERR_DIMS;
  if ((int64_t)(d->out_w - 1) * d->stride_w - d->pad_w > (int64_t)d->in_w - 1) return XST_ERR_DIMS;
  return XST_OK;
}

static int check_oc_range(const xst_dwconv_dims *d, const xst_block *blk) {
  const int32_t oc = d->in_c * d->mult;
  if (blk->oc_begin < 0 || blk->oc_begin >= blk->oc_end || blk->oc_end > oc) return XST_ERR_RANGE;
  return XST_OK;
}

/* Taps [lo, hi) of one kernel axis that fall inside [0, in) for a window
 * starting at origin (origin may be negative: padding). */
static void tap_range(int32_t origin, int32_t k, int32_t in, int32_t *lo, int32_t *hi) {
  *lo = origin < 0 ? -origin : 0;
  *hi = in - origin < k ? in - origin : k;
}

size_t depthwise_conv2d_s8_forward_scratch_size(const xst_dwconv_dims *d) {
  (void)d;
  return 0;
}

/* Bias, requantisation, output offset, clamp and mask bit of one output. */
static void finish_output(const xst_dwconv_quant *q, const int32_t *bias, int32_t acc, int32_t c,
                          size_t k, int8_t *out, uint8_t *mask) {
  if (bias) acc = (int32_t)((uint32_t)acc + (uint32_t)bias[c]); /* wraps like the reference */
  int32_t v = xst_requantize(acc, q->multiplier[c], q->shift[c]);
  if (v > 1 << 24) v = 1 << 24; /* as fully_connected_s8_forward: no overflow */
  if (v < -(1 << 24)) v = -(1 << 24);
  v += q->output_offset;
  if (mask) {
    uint8_t bit = (uint8_t)(1u << (k & 7));
    if (v > q->act_min && v < q->act_max) mask[k >> 3] |= bit;
    else mask[k >> 3] &= (uint8_t)~bit;
  }
  out[k] = (int8_t)xst_clamp32(v, q->act_min, q->act_max);
}

int depthwise_conv2d_s8_forward(const xst_dwconv_dims *d, const xst_dwconv_quant *q,
                                const int8_t *in, const int8_t *w,
                                const int32_t *bias, int8_t *out,
                                uint8_t *mask) {
  int st = check_dims(d);
  if (st) return st;
  if (q->input_offset < -127 || q->input_offset > 128) return XST_ERR_PARAM;
  if (q->output_offset < -128 || q->output_offset > 127) return XST_ERR_PARAM;
  if (q->act_min < -128 || q->act_max > 127 || q->act_min > q->act_max) return XST_ERR_PARAM;
  const int32_t H = d->in_h, W = d->in_w, C = d->in_c, M = d->mult, OC = C * M;
  for (int32_t c = 0; c < OC; c++) {
    if (q->multiplier[c] < 0 || q->shift[c] < -31 || q->shift[c] > 30) return XST_ERR_PARAM;
  }
  const int32_t off = q->input_offset;
  for (int32_t b = 0; b < d->batch; b++) {
    const int8_t *xb = in + (size_t)b * H * W * C;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      const int32_t y0 = oy * d->stride_h - d->pad_h;
      int32_t ky0, ky1;
      tap_range(y0, d->k_h, H, &ky0, &ky1);
      for (int32_t ox = 0; ox < d->out_w; ox++) {
        const int32_t x0 = ox * d->stride_w - d->pad_w;
        int32_t kx0, kx1;
        tap_range(x0, d->k_w, W, &kx0, &kx1);
        const size_t pix = ((size_t)b * d->out_h + oy) * d->out_w + ox;
        if (M == 1) {
          /* Contiguous channels: one accumulator block per output pixel,
           * the inner loop a plain multiply-accumulate over channels. */
          for (int32_t c0 = 0; c0 < C; c0 += XST_DW_CHUNK) {
            const int32_t n = C - c0 < XST_DW_CHUNK ? C - c0 : XST_DW_CHUNK;
            int32_t acc[XST_DW_CHUNK]; /* |acc| <= 255 * 128 * 65536 < 2^31 */
            for (int32_t i = 0; i < n; i++) acc[i] = 0;
            for (int32_t ky = ky0; ky < ky1; ky++) {
              for (int32_t kx = kx0; kx < kx1; kx++) {
                const int8_t *xp = xb + ((size_t)(y0 + ky) * W + (size_t)(x0 + kx)) * C + c0;
                const int8_t *wp = w + ((size_t)ky * d->k_w + kx) * OC + c0;
                for (int32_t i = 0; i < n; i++) acc[i] += ((int32_t)xp[i] + off) * wp[i];
              }
            }
            for (int32_t i = 0; i < n; i++) finish_output(q, bias, acc[i], c0 + i, pix * OC + c0 + i, out, mask);
          }
        } else {
          for (int32_t c = 0; c < OC; c++) {
            const int32_t ic = c / M;
            int32_t acc = 0;
            for (int32_t ky = ky0; ky < ky1; ky++) {
              for (int32_t kx = kx0; kx < kx1; kx++) {
                const int32_t x = xb[((size_t)(y0 + ky) * W + (size_t)(x0 + kx)) * C + ic];
                acc += (x + off) * w[((size_t)ky * d->k_w + kx) * OC + c];
              }
            }
            finish_output(q, bias, acc, c, pix * OC + c, out, mask);
          }
        }
      }
    }
  }
  return XST_OK;
}

/* Terms summed into one grad_in element: for a fixed input row only the
 * taps ky == (iy + pad_h) mod stride_h meet an output row, so at most
 * mult * ceil(k_h/stride_h) * ceil(k_w/stride_w) products. The pre-scaled
 * gradient has |gs| <= 2^(22 - pre) and |w| <= 2^7; with terms <= 2^k,
 * pre >= k - 1 bounds the int32 sum by 2^30 (as the fully-connected one). */
static int backward_input_prescale(const xst_dwconv_dims *d) {
  uint64_t terms = (uint64_t)d->mult * (uint64_t)((d->k_h + d->stride_h - 1) / d->stride_h) *
                   (uint64_t)((d->k_w + d->stride_w - 1) / d->stride_w);
  if (terms > (UINT64_C(1) << 31)) terms = UINT64_C(1) << 31;
  int k = xst_bit_length((uint32_t)(terms - 1)); /* ceil(log2(terms)) */
  return k > 9 ? k - 1 : 8;
}

size_t depthwise_conv2d_s8_backward_input_scratch_size(const xst_dwconv_dims *d) {
  /* int32 acc[batch * in_h * in_w * in_c], then int16 gs[out_c] */
  return (size_t)d->batch * (size_t)d->in_h * (size_t)d->in_w * (size_t)d->in_c * 4u +
         (size_t)d->in_c * (size_t)d->mult * 2u;
}

int depthwise_conv2d_s8_backward_input(const xst_dwconv_dims *d,
                                       const xst_wscale *ws,
                                       const int8_t *grad_out,
                                       const int32_t *grad_out_exp,
                                       const int8_t *w, int8_t *grad_in,
                                       int32_t *grad_in_exp, void *scratch) {
  int st = check_dims(d);
  if (st) return st;
  const int32_t H = d->in_h, W = d->in_w, C = d->in_c, M = d->mult, OC = C * M;
  if (ws->exp < -64 || ws->exp > 64) return XST_ERR_PARAM;
  if (*grad_out_exp < -1024 || *grad_out_exp > 1024) return XST_ERR_PARAM;
  for (int32_t c = 0; c < OC; c++) {
    if (ws->mantissa_q15[c] < 0) return XST_ERR_PARAM;
  }
  const size_t n = (size_t)d->batch * H * W * C;
  int32_t *acc = (int32_t *)scratch;
  int16_t *gs = (int16_t *)(acc + n);
  const int pre = backward_input_prescale(d);
  for (size_t k = 0; k < n; k++) acc[k] = 0;
  /* Scatter each output gradient to the input taps its window read. */
  for (int32_t b = 0; b < d->batch; b++) {
    int32_t *ab = acc + (size_t)b * H * W * C;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      const int32_t y0 = oy * d->stride_h - d->pad_h;
      int32_t ky0, ky1;
      tap_range(y0, d->k_h, H, &ky0, &ky1);
      for (int32_t ox = 0; ox < d->out_w; ox++) {
        const int32_t x0 = ox * d->stride_w - d->pad_w;
        int32_t kx0, kx1;
        tap_range(x0, d->k_w, W, &kx0, &kx1);
        const int8_t *g = grad_out + (((size_t)b * d->out_h + oy) * d->out_w + ox) * OC;
        int any = 0;
        for (int32_t c = 0; c < OC; c++) {
          gs[c] = (int16_t)xst_floor_shr32((int32_t)g[c] * ws->mantissa_q15[c] + (1 << (pre - 1)), pre);
          any |= gs[c];
        }
        if (!any) continue; /* exact: adds nothing */
        for (int32_t ky = ky0; ky < ky1; ky++) {
          for (int32_t kx = kx0; kx < kx1; kx++) {
            int32_t *a = ab + ((size_t)(y0 + ky) * W + (size_t)(x0 + kx)) * C;
            const int8_t *wp = w + ((size_t)ky * d->k_w + kx) * OC;
            if (M == 1) {
              for (int32_t c = 0; c < C; c++) a[c] += wp[c] * gs[c];
            } else {
              for (int32_t c = 0; c < OC; c++) a[c / M] += wp[c] * gs[c];
            }
          }
        }
      }
    }
  }
  uint32_t maxabs = 0;
  for (size_t k = 0; k < n; k++) {
    uint32_t m = acc[k] < 0 ? (uint32_t)0 - (uint32_t)acc[k] : (uint32_t)acc[k];
    if (m > maxabs) maxabs = m;
  }
  /* Normalise: the largest magnitude lands in [64, 127]. */
  const int s = maxabs ? xst_bit_length(maxabs) - 7 : 0;
  for (size_t k = 0; k < n; k++) {
    int32_t v;
    if (s > 0) v = xst_floor_shr32(acc[k] + (1 << (s - 1)), s);
    else v = acc[k] * (1 << -s);
    grad_in[k] = (int8_t)xst_clamp32(v, -128, 127);
  }
  *grad_in_exp = *grad_out_exp + ws->exp - 15 + pre + s;
  return XST_OK;
}

int depthwise_conv2d_s8_backward_bias(const xst_dwconv_dims *d, const xst_block *blk,
                                      const int8_t *grad_out, int32_t *grad_bias) {
  int st = check_dims(d);
  if (!st) st = check_oc_range(d, blk);
  if (st) return st;
  const int64_t pixels = (int64_t)d->batch * d->out_h * d->out_w;
  if (pixels > XST_DW_MAX_BIAS_PIXELS) return XST_ERR_DIMS; /* |sum| <= 128 * 2^23 */
  const int32_t OC = d->in_c * d->mult, noc = blk->oc_end - blk->oc_begin;
  for (int32_t c = 0; c < noc; c++) grad_bias[c] = 0;
  for (int64_t p = 0; p < pixels; p++) {
    const int8_t *g = grad_out + (size_t)p * OC + blk->oc_begin;
    for (int32_t c = 0; c < noc; c++) grad_bias[c] += g[c];
  }
  return XST_OK;
}

int depthwise_conv2d_s8_backward_weight(const xst_dwconv_dims *d,
                                        const xst_block *blk,
                                        int32_t input_offset,
                                        const int8_t *grad_out,
                                        const int8_t *in, int32_t *grad_w) {
  int st = check_dims(d);
  if (!st) st = check_oc_range(d, blk);
  if (st) return st;
  if (input_offset < -127 || input_offset > 128) return XST_ERR_PARAM;
  /* |sum| <= 65535 * 128 * 255 < 2^31 */
  if ((int64_t)d->batch * d->out_h * d->out_w > XST_DW_MAX_PIXELS) return XST_ERR_DIMS;
  const int32_t H = d->in_h, W = d->in_w, C = d->in_c, M = d->mult, OC = C * M;
  const int32_t ob = blk->oc_begin, noc = blk->oc_end - blk->oc_begin;
  const size_t nw = (size_t)d->k_h * d->k_w * noc;
  for (size_t k = 0; k < nw; k++) grad_w[k] = 0;
  for (int32_t b = 0; b < d->batch; b++) {
    const int8_t *xb = in + (size_t)b * H * W * C;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      const int32_t y0 = oy * d->stride_h - d->pad_h;
      int32_t ky0, ky1;
      tap_range(y0, d->k_h, H, &ky0, &ky1);
      for (int32_t ox = 0; ox < d->out_w; ox++) {
        const int32_t x0 = ox * d->stride_w - d->pad_w;
        int32_t kx0, kx1;
        tap_range(x0, d->k_w, W, &kx0, &kx1);
        const int8_t *g = grad_out + (((size_t)b * d->out_h + oy) * d->out_w + ox) * OC + ob;
        for (int32_t ky = ky0; ky < ky1; ky++) {
          for (int32_t kx = kx0; kx < kx1; kx++) {
            const int8_t *xp = xb + ((size_t)(y0 + ky) * W + (size_t)(x0 + kx)) * C;
            int32_t *gw = grad_w + ((size_t)ky * d->k_w + kx) * noc;
            if (M == 1) {
              const int8_t *xc = xp + ob;
              for (int32_t c = 0; c < noc; c++) gw[c] += g[c] * ((int32_t)xc[c] + input_offset);
            } else {
              for (int32_t c = 0; c < noc; c++) gw[c] += g[c] * ((int32_t)xp[(ob + c) / M] + input_offset);
            }
          }
        }
      }
    }
  }
  return XST_OK;
}
