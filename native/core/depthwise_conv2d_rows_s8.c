/*
 * depthwise_conv2d_s8_backward_input_rows (op 35): the input gradient of a
 * depthwise convolution with a scratch of one input row, bit-identical to
 * depthwise_conv2d_s8_backward_input (same arguments, same result).
 *
 * The whole-tensor kernel scatters every output gradient into int32 sums of
 * the whole input (batch*in_h*in_w*in_c*4 bytes of scratch), then
 * normalises to int8 with one exponent. Here each input row's sums are
 * gathered from the output rows whose windows cover it (only the kernel row
 * ky = iy - (oy*stride_h - pad_h) of each), into one row of int32: a first
 * pass over all rows finds the largest magnitude, a second recomputes each
 * row and writes it normalised. The sums are the same exact int32 sums (the
 * pre-scale bounds them below 2^30 as in the whole-tensor kernel), so their
 * order does not matter. Cost: the pre-scaled gradient is recomputed per
 * kernel row (k_h/stride_h times) and everything twice; scratch in_w*in_c*4
 * + out_c*2 bytes. Portable C only.
 */
#include "xst.h"
#include "xst_fixed.h"

static int check_dims(const xst_dwconv_dims *d) {
  const int32_t v[11] = {d->batch, d->in_h, d->in_w, d->in_c, d->out_h, d->out_w,
                         d->mult, d->k_h, d->k_w, d->stride_h, d->stride_w};
  for (int k = 0; k < 11; k++) {
    if (v[k] < 1 || v[k] > (1 << 24)) return XST_ERR_DIMS;
  }
  if (d->pad_h < 0 || d->pad_h >= d->k_h || d->pad_w < 0 || d->pad_w >= d->k_w) return XST_ERR_DIMS;
  if ((int64_t)d->k_h * d->k_w > 65536) return XST_ERR_DIMS;
  if ((int64_t)d->in_c * d->mult > (1 << 24)) return XST_ERR_DIMS;
  if ((int64_t)(d->out_h - 1) * d->stride_h - d->pad_h > (int64_t)d->in_h - 1) return XST_ERR_DIMS;
  if ((int64_t)(d->out_w - 1) * d->stride_w - d->pad_w > (int64_t)d->in_w - 1) return XST_ERR_DIMS;
  return XST_OK;
}

/* As depthwise_conv2d_s8.c: terms per input element <= mult *
 * ceil(k_h/stride_h) * ceil(k_w/stride_w) = 2^k, pre >= k - 1. */
static int backward_input_prescale(const xst_dwconv_dims *d) {
  uint64_t terms = (uint64_t)d->mult * (uint64_t)((d->k_h + d->stride_h - 1) / d->stride_h) *
                   (uint64_t)((d->k_w + d->stride_w - 1) / d->stride_w);
  if (terms > (UINT64_C(1) << 31)) terms = UINT64_C(1) << 31;
  int k = xst_bit_length((uint32_t)(terms - 1));
  return k > 9 ? k - 1 : 8;
}

size_t depthwise_conv2d_s8_backward_input_rows_scratch_size(const xst_dwconv_dims *d) {
  /* int32 acc[in_w * in_c], then int16 gs[out_c] */
  return (size_t)d->in_w * (size_t)d->in_c * 4u + (size_t)d->in_c * (size_t)d->mult * 2u;
}

/* acc[ix][ic] of input row iy of batch b. */
static void row_sums(const xst_dwconv_dims *d, const xst_wscale *ws, int pre, const int8_t *grad_out,
                     const int8_t *w, int32_t b, int32_t iy, int32_t *acc, int16_t *gs) {
  const int32_t W = d->in_w, C = d->in_c, M = d->mult, OC = C * M;
  for (size_t k = 0; k < (size_t)W * C; k++) acc[k] = 0;
  /* Output rows oy with 0 <= iy - (oy*s - pad) < k_h. */
  const int32_t top = iy + d->pad_h - d->k_h + 1;
  int32_t oy0 = top <= 0 ? 0 : (top + d->stride_h - 1) / d->stride_h;
  int32_t oy1 = (iy + d->pad_h) / d->stride_h + 1;
  if (oy1 > d->out_h) oy1 = d->out_h;
  for (int32_t oy = oy0; oy < oy1; oy++) {
    const int32_t ky = iy - (oy * d->stride_h - d->pad_h);
    for (int32_t ox = 0; ox < d->out_w; ox++) {
      const int32_t x0 = ox * d->stride_w - d->pad_w;
      const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = W - x0 < d->k_w ? W - x0 : d->k_w;
      const int8_t *g = grad_out + (((size_t)b * d->out_h + oy) * d->out_w + ox) * OC;
      int any = 0;
      for (int32_t c = 0; c < OC; c++) {
        gs[c] = (int16_t)xst_floor_shr32((int32_t)g[c] * ws->mantissa_q15[c] + (1 << (pre - 1)), pre);
        any |= gs[c];
      }
      if (!any) continue; /* exact: adds nothing */
      for (int32_t kx = kx0; kx < kx1; kx++) {
        int32_t *a = acc + (size_t)(x0 + kx) * C;
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

int depthwise_conv2d_s8_backward_input_rows(const xst_dwconv_dims *d, const xst_wscale *ws,
                                            const int8_t *grad_out, const int32_t *grad_out_exp,
                                            const int8_t *w, int8_t *grad_in, int32_t *grad_in_exp,
                                            void *scratch) {
  int st = check_dims(d);
  if (st) return st;
  const int32_t W = d->in_w, C = d->in_c, OC = C * d->mult;
  if (ws->exp < -64 || ws->exp > 64) return XST_ERR_PARAM;
  if (*grad_out_exp < -1024 || *grad_out_exp > 1024) return XST_ERR_PARAM;
  for (int32_t c = 0; c < OC; c++) {
    if (ws->mantissa_q15[c] < 0) return XST_ERR_PARAM;
  }
  const size_t row = (size_t)W * C;
  int32_t *acc = (int32_t *)scratch;
  int16_t *gs = (int16_t *)(acc + row);
  const int pre = backward_input_prescale(d);
  uint32_t maxabs = 0;
  for (int32_t b = 0; b < d->batch; b++) {
    for (int32_t iy = 0; iy < d->in_h; iy++) {
      row_sums(d, ws, pre, grad_out, w, b, iy, acc, gs);
      for (size_t k = 0; k < row; k++) {
        const uint32_t m = acc[k] < 0 ? (uint32_t)0 - (uint32_t)acc[k] : (uint32_t)acc[k];
        if (m > maxabs) maxabs = m;
      }
    }
  }
  const int s = maxabs ? xst_bit_length(maxabs) - 7 : 0;
  for (int32_t b = 0; b < d->batch; b++) {
    for (int32_t iy = 0; iy < d->in_h; iy++) {
      row_sums(d, ws, pre, grad_out, w, b, iy, acc, gs);
      int8_t *o = grad_in + ((size_t)b * d->in_h + iy) * row;
      for (size_t k = 0; k < row; k++) {
        const int32_t v = s > 0 ? xst_floor_shr32(acc[k] + (1 << (s - 1)), s) : acc[k] * (1 << -s);
        o[k] = (int8_t)xst_clamp32(v, -128, 127);
      }
    }
  }
  *grad_in_exp = *grad_out_exp + ws->exp - 15 + pre + s;
  return XST_OK;
}
