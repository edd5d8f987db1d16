/*
 * 2-D convolution, int8 (TFLite CONV_2D with per-channel weights): forward
 * and backward.
 *
 * Layouts (NHWC / OHWI): in (batch, in_h, in_w, in_c), w (out_c, k_h, k_w,
 * in_c), bias (out_c) int32, out/grad_out (batch, out_h, out_w, out_c).
 * Dilation 1. Padding is explicit (pad_h = top, pad_w = left; the bottom and
 * right padding follow from out_h/out_w): tap (ky, kx) of output pixel
 * (oy, ox) reads input pixel (oy*stride_h - pad_h + ky, ox*stride_w - pad_w
 * + kx), and taps outside the image are skipped (they contribute as the zero
 * point), exactly as TFLite's reference_integer_ops::ConvPerChannel.
 *
 * The inner loops are dot products over contiguous runs: for one kernel row
 * ky the in-image taps kx in [kx0, kx1) read x[iy][ix0 .. ix0+(kx1-kx0)][0..in_c)
 * and w[c][ky][kx0 .. kx1][0..in_c), both contiguous in memory, so one run
 * of (kx1 - kx0) * in_c elements.
 *
 * A 1x1 convolution with stride 1 and no padding is a fully connected layer
 * over batch*h*w rows: forward and backward_input call the FC kernels (same
 * code, so the Cortex-M optimisations of the FC kernels apply here too).
 */
#include "xst.h"
#include "xst_fixed.h"
#include "nn_mat_mult_s8.h"
#include "nn_requant_s8.h"
#include "weight_update_s8.h"

#define XST_CONV_MAX_TAPS 65536      /* k_h*k_w*in_c: keeps the forward int32 sum exact */
#define XST_CONV_MAX_WG_PIXELS 65535 /* batch*out_h*out_w for the weight gradient      */
#define XST_CONV_MAX_BG_PIXELS (1 << 23) /* batch*out_h*out_w for the bias gradient    */
#define XST_CONV_MAX_BI_TERMS (1 << 24)  /* out_c*ceil(k_h/s_h)*ceil(k_w/s_w)          */
#define XST_CONV_MAX_DIM (1 << 24)   /* any one extent, stride or pad        */
#define XST_CONV_MAX_ELEMS INT64_C(0x7FFFFFFF) /* elements of any one tensor           */
#define XST_CONV_WG_PATCH 256        /* k_h*k_w*nic of backward_weight's patch loop (512 B) */

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Geometry of one axis: every output window [o*s - pad, o*s - pad + k) must
 * overlap the image [0, in), so no output pixel is made of padding only. */
static int axis_ok(int32_t in, int32_t out, int32_t k, int32_t s, int32_t pad) {
  if (in < 1 || out < 1 || k < 1 || s < 1) return 0;
  if (in > XST_CONV_MAX_DIM || out > XST_CONV_MAX_DIM || k > XST_CONV_MAX_DIM || s > XST_CONV_MAX_DIM) return 0;
  if (pad < 0 || pad >= k) return 0;
  return (int64_t)(out - 1) * s - pad < (int64_t)in;
}

/* a*b*c*d <= XST_CONV_MAX_ELEMS for positive factors <= 2^24, without
 * overflowing int64 on the way (each partial product is checked first). */
static int elems_ok(int32_t a, int32_t b, int32_t c, int32_t d) {
  int64_t n = (int64_t)a * b;
  if (n > XST_CONV_MAX_ELEMS) return 0;
  n *= c;
  if (n > XST_CONV_MAX_ELEMS) return 0;
  n *= d;
  return n <= XST_CONV_MAX_ELEMS;
}

int conv2d_s8_check_dims(const xst_conv_dims *d) {
  if (d->batch < 1 || d->in_c < 1 || d->out_c < 1) return XST_ERR_DIMS;
  if (d->batch > XST_CONV_MAX_DIM || d->in_c > XST_CONV_MAX_DIM || d->out_c > (1 << 20)) return XST_ERR_DIMS;
  if (!axis_ok(d->in_h, d->out_h, d->k_h, d->stride_h, d->pad_h)) return XST_ERR_DIMS;
  if (!axis_ok(d->in_w, d->out_w, d->k_w, d->stride_w, d->pad_w)) return XST_ERR_DIMS;
  if (!elems_ok(d->k_h, d->k_w, d->in_c, 1) || (int64_t)d->k_h * d->k_w * d->in_c > XST_CONV_MAX_TAPS) return XST_ERR_DIMS;
  if (!elems_ok(d->out_c, d->k_h, d->k_w, d->in_c)) return XST_ERR_DIMS;
  if (!elems_ok(d->batch, d->in_h, d->in_w, d->in_c)) return XST_ERR_DIMS;
  if (!elems_ok(d->batch, d->out_h, d->out_w, d->out_c)) return XST_ERR_DIMS;
  return XST_OK;
}

/* 1x1, stride 1, no padding, output the size of the input: an FC layer over
 * batch*h*w rows (if the FC kernel's own limits allow it). */
static int as_fc(const xst_conv_dims *d, xst_fc_dims *fc) {
  if (d->k_h != 1 || d->k_w != 1 || d->stride_h != 1 || d->stride_w != 1) return 0;
  if (d->pad_h != 0 || d->pad_w != 0 || d->out_h != d->in_h || d->out_w != d->in_w) return 0;
  int64_t rows = (int64_t)d->batch * d->in_h * d->in_w;
  if (rows > 65535 || d->in_c > 65536) return 0;
  fc->rows = (int32_t)rows;
  fc->in_features = d->in_c;
  fc->out_features = d->out_c;
  return 1;
}

/* Clip taps [0, k) of window start o*s - pad to the image [0, in):
 * in-image taps are [*k0, *k1), the first one reads input index *i0. */
static void clip_taps(int32_t o, int32_t s, int32_t pad, int32_t k, int32_t in,
                      int32_t *k0, int32_t *k1, int32_t *i0) {
  const int32_t start = o * s - pad; /* axis_ok: -k < start < in <= 2^24 */
  *k0 = start < 0 ? -start : 0;
  *k1 = in - start < k ? in - start : k;
  *i0 = start + *k0;
}

static int check_quant(const xst_conv_dims *d, const xst_fc_quant *q) {
  if (q->input_offset < -127 || q->input_offset > 128) return XST_ERR_PARAM;
  if (q->output_offset < -128 || q->output_offset > 127) return XST_ERR_PARAM;
  if (q->act_min < -128 || q->act_max > 127 || q->act_min > q->act_max) return XST_ERR_PARAM;
  for (int32_t c = 0; c < d->out_c; c++) {
    if (q->multiplier[c] < 0 || q->shift[c] < -31 || q->shift[c] > 30) return XST_ERR_PARAM;
  }
  return XST_OK;
}

size_t conv2d_s8_forward_scratch_size(const xst_conv_dims *d) {
  (void)d;
  return 0;
}

#if XST_MM_DSP
#include <arm_acle.h>

static inline int32_t mm_sxtb16_ror8(uint32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
static inline int32_t mm_sxtab16_ror8(int32_t a, uint32_t x) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
  return r;
}

#define XST_CONV_IM2COL_BYTES 1024 /* two patches of k_h*k_w*in_c <= 512 int8 */

/* One output pixel's patch, (k_h, k_w, in_c) as the weights: in-image taps
 * copied, out-of-image taps written as -input_offset (the input zero point),
 * which the product's (x + input_offset) turns into 0, as skipping them. */
static void im2col_pixel(const xst_conv_dims *d, const int8_t *xb, int32_t oy, int32_t ox, int8_t pad,
                         int8_t *col) {
  const int32_t IC = d->in_c, KW = d->k_w;
  const size_t x_row = (size_t)d->in_w * IC, w_row = (size_t)KW * IC;
  int32_t ky0, ky1, iy0, kx0, kx1, ix0;
  clip_taps(oy, d->stride_h, d->pad_h, d->k_h, d->in_h, &ky0, &ky1, &iy0);
  clip_taps(ox, d->stride_w, d->pad_w, KW, d->in_w, &kx0, &kx1, &ix0);
  const size_t left = (size_t)kx0 * IC, run = (size_t)(kx1 - kx0) * IC, right = w_row - left - run;
  for (int32_t ky = 0; ky < d->k_h; ky++, col += w_row) {
    if (ky < ky0 || ky >= ky1) {
      for (size_t i = 0; i < w_row; i++) col[i] = pad;
      continue;
    }
    const int8_t *x = xb + (size_t)(iy0 + ky - ky0) * x_row + (size_t)ix0 * IC;
    for (size_t i = 0; i < left; i++) col[i] = pad;
    for (size_t i = 0; i < run; i++) col[left + i] = x[i];
    for (size_t i = 0; i < right; i++) col[left + run + i] = pad;
  }
}

/* Tiny patches (k_h*k_w*in_c <= 16, e.g. a 3x3 convolution of a 1-channel
 * image) and out_c <= 32: the weights are split into int16 pairs once (on
 * the stack, 1 KB at most), the patch of one output pixel once (with the
 * input offset added), then one SMLAD per two taps and output channel; the
 * patch is zero-padded to a multiple of 4, where the weights are 0.
 * Returns 0 when the shape or a shift >= 0 does not fit this path. */
static __attribute__((noinline)) int conv_forward_dsp_small(const xst_conv_dims *d, const xst_fc_quant *q,
                                                            const int8_t *in, const int8_t *w,
                                                            const int32_t *bias, int8_t *out, uint8_t *mask) {
  const int32_t K = d->k_h * d->k_w * d->in_c, OC = d->out_c, K4 = (K + 3) & ~3, NP = K4 / 2;
  if (K4 > 16 || OC > XST_MM_TILE_COLS) return 0;
  xst_rq_fast rq[XST_MM_TILE_COLS];
  for (int32_t c = 0; c < OC; c++) {
    if (!xst_rq_fast_init(&rq[c], q->multiplier[c], q->shift[c])) return 0;
  }
  int32_t ws[XST_MM_TILE_COLS * 8];
  for (int32_t c = 0; c < OC; c++) {
    for (int32_t j = 0; j < K4; j += 4) {
      uint32_t u = 0;
      for (int32_t i = 0; i < 4; i++) {
        if (j + i < K) u |= (uint32_t)(uint8_t)w[(size_t)c * K + j + i] << (8 * i);
      }
      ws[c * NP + j / 2] = __sxtb16((int32_t)u);
      ws[c * NP + j / 2 + 1] = mm_sxtb16_ror8(u);
    }
  }
  const int32_t off2 = (int32_t)(((uint32_t)q->input_offset & 0xFFFFu) * 0x10001u);
  const int8_t pad = (int8_t)-q->input_offset;
  const int32_t oo = q->output_offset, lo = q->act_min, hi = q->act_max;
  const size_t x_img = (size_t)d->in_h * d->in_w * d->in_c;
  uint32_t colw[4];
  int8_t *col = (int8_t *)colw;
  int32_t xs[8];
  size_t k = 0;
  for (int32_t b = 0; b < d->batch; b++) {
    const int8_t *xb = in + (size_t)b * x_img;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      for (int32_t ox = 0; ox < d->out_w; ox++) {
        im2col_pixel(d, xb, oy, ox, pad, col);
        for (int32_t i = K; i < K4; i++) col[i] = 0;
        for (int32_t j = 0; j < K4 / 4; j++) {
          xs[2 * j] = __sxtab16(off2, (int32_t)colw[j]);
          xs[2 * j + 1] = mm_sxtab16_ror8(off2, colw[j]);
        }
        const int32_t *wc = ws;
        for (int32_t c = 0; c < OC; c++, k++, wc += NP) {
          int32_t acc = bias ? bias[c] : 0; /* SMLAD adds modulo 2^32: the wrapping bias add */
          for (int32_t j = 0; j < NP; j++) acc = __smlad(xs[j], wc[j], acc);
          xst_rq_fast_store(xst_rq_fast_apply(&rq[c], acc) + oo, lo, hi, k, out, mask);
        }
      }
    }
  }
  return 1;
}

/* The general path on the DSP extension: im2col two output pixels into a
 * stack buffer (XST_CONV_IM2COL_BYTES), xst_mat_mult_s8 against the weights
 * in tiles of XST_MM_TILE_COLS output channels, requantise the tile.
 * Returns 0 (nothing written) when a patch does not fit the buffer. */
static __attribute__((noinline)) int conv_forward_dsp(const xst_conv_dims *d, const xst_fc_quant *q, const int8_t *in,
                            const int8_t *w, const int32_t *bias, int8_t *out, uint8_t *mask) {
  const int32_t K = d->k_h * d->k_w * d->in_c, OC = d->out_c;
  if (2 * K > XST_CONV_IM2COL_BYTES) return 0;
  int8_t col[XST_CONV_IM2COL_BYTES];
  int32_t tile[XST_MM_TILE_ROWS * XST_MM_TILE_COLS];
  xst_rq_fast rq[XST_MM_TILE_COLS];
  int fast = OC <= XST_MM_TILE_COLS; /* one tile: requantisation constants set once */
  for (int32_t c = 0; fast && c < OC; c++) fast = xst_rq_fast_init(&rq[c], q->multiplier[c], q->shift[c]);
  const int8_t pad = (int8_t)-q->input_offset; /* input_offset in [-127, 128] */
  const int32_t oo = q->output_offset, lo = q->act_min, hi = q->act_max;
  const size_t x_img = (size_t)d->in_h * d->in_w * d->in_c;
  const int32_t OW = d->out_w;
  const int64_t per_img = (int64_t)d->out_h * OW;
  const int64_t P = (int64_t)d->batch * per_img;
  int32_t pb = 0, py = 0, px = 0;
  for (int64_t p = 0; p < P; p += 2) {
    const int32_t nr = P - p < 2 ? 1 : 2;
    for (int32_t r = 0; r < nr; r++) { /* pixel p + r is (pb, py, px) */
      im2col_pixel(d, in + (size_t)pb * x_img, py, px, pad, col + (size_t)r * K);
      if (++px == OW) {
        px = 0;
        if (++py == d->out_h) py = 0, pb++;
      }
    }
    for (int32_t c0 = 0; c0 < OC; c0 += XST_MM_TILE_COLS) {
      const int32_t nc = OC - c0 < XST_MM_TILE_COLS ? OC - c0 : XST_MM_TILE_COLS;
      xst_mat_mult_s8(col, nr, w + (size_t)c0 * K, nc, K, q->input_offset, tile, XST_MM_TILE_COLS);
      for (int32_t r = 0; r < nr; r++) {
        const int32_t *t = tile + r * XST_MM_TILE_COLS;
        size_t k = (size_t)(p + r) * OC + c0;
        for (int32_t c = c0; c < c0 + nc; c++, k++) {
          int32_t acc = t[c - c0];
          if (bias) acc = (int32_t)((uint32_t)acc + (uint32_t)bias[c]); /* wraps like the reference */
          if (fast) xst_rq_fast_store(xst_rq_fast_apply(&rq[c], acc) + oo, lo, hi, k, out, mask);
          else xst_requant_store(acc, q->multiplier[c], q->shift[c], oo, lo, hi, k, out, mask);
        }
      }
    }
  }
  return 1;
}
#endif

int conv2d_s8_forward(const xst_conv_dims *d, const xst_fc_quant *q,
                      const int8_t *in, const int8_t *w, const int32_t *bias,
                      int8_t *out, uint8_t *mask) {
  int st = conv2d_s8_check_dims(d);
  if (!st) st = check_quant(d, q);
  if (st) return st;
  xst_fc_dims fc;
  if (as_fc(d, &fc)) return fully_connected_s8_forward(&fc, q, in, w, bias, out, mask);
#if XST_MM_DSP
  if (conv_forward_dsp_small(d, q, in, w, bias, out, mask)) return XST_OK;
  if (conv_forward_dsp(d, q, in, w, bias, out, mask)) return XST_OK;
#endif
  const int32_t IC = d->in_c, OC = d->out_c, KH = d->k_h, KW = d->k_w;
  const size_t w_row = (size_t)KW * IC, w_chan = (size_t)KH * w_row; /* OHWI strides */
  const size_t x_row = (size_t)d->in_w * IC, x_img = (size_t)d->in_h * x_row;
  size_t k = 0; /* index of out[b][oy][ox][c], the mask bit */
  for (int32_t b = 0; b < d->batch; b++) {
    const int8_t *xb = in + (size_t)b * x_img;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      int32_t ky0, ky1, iy0;
      clip_taps(oy, d->stride_h, d->pad_h, KH, d->in_h, &ky0, &ky1, &iy0);
      for (int32_t ox = 0; ox < d->out_w; ox++) {
        int32_t kx0, kx1, ix0;
        clip_taps(ox, d->stride_w, d->pad_w, KW, d->in_w, &kx0, &kx1, &ix0);
        const size_t run = (size_t)(kx1 - kx0) * IC; /* contiguous in x and w */
        for (int32_t c = 0; c < OC; c++, k++) {
          int32_t acc = 0; /* |acc| <= 255 * 128 * k_h*k_w*in_c <= 255*128*65536 < 2^31 */
          for (int32_t ky = ky0; ky < ky1; ky++) {
            const int8_t *x = xb + (size_t)(iy0 + ky - ky0) * x_row + (size_t)ix0 * IC;
            const int8_t *wk = w + (size_t)c * w_chan + (size_t)ky * w_row + (size_t)kx0 * IC;
            for (size_t i = 0; i < run; i++) acc += ((int32_t)x[i] + q->input_offset) * wk[i];
          }
          if (bias) acc = (int32_t)((uint32_t)acc + (uint32_t)bias[c]); /* wraps like the reference */
          xst_requant_store(acc, q->multiplier[c], q->shift[c], q->output_offset, q->act_min, q->act_max, k, out, mask);
        }
      }
    }
  }
  return XST_OK;
}

/* Terms summed into one grad_in element: every output channel times the
 * kernel taps that land on one input pixel, at most ceil(k/s) per axis. */
static int64_t backward_input_terms(const xst_conv_dims *d) {
  return (int64_t)d->out_c * ceil_div(d->k_h, d->stride_h) * ceil_div(d->k_w, d->stride_w);
}

/* As the FC kernel: |gs| <= 2^(22 - pre) (|g| <= 2^7, mantissa < 2^15),
 * |w| <= 2^7, terms <= 2^t, so pre >= t - 1 bounds every partial sum by
 * 2^30; pre >= 8 keeps gs in int16. For a 1x1/stride-1 conv terms = out_c,
 * the FC kernel's own choice, so both paths agree to the bit. */
static int backward_input_prescale(int64_t terms) {
  int t = xst_bit_length((uint32_t)(terms - 1)); /* ceil(log2(terms)), terms <= 2^24 */
  return t > 9 ? t - 1 : 8;
}

static uint64_t backward_input_scratch_bytes(const xst_conv_dims *d) {
  /* int32 acc[batch*in_h*in_w*in_c], then int16 gs[out_c] */
  return (uint64_t)d->batch * (uint64_t)d->in_h * (uint64_t)d->in_w * (uint64_t)d->in_c * 4u +
         (uint64_t)d->out_c * 2u;
}

size_t conv2d_s8_backward_input_scratch_size(const xst_conv_dims *d) {
  uint64_t n = backward_input_scratch_bytes(d);
  return n > (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)n; /* SIZE_MAX never fits an arena */
}

int conv2d_s8_backward_input(const xst_conv_dims *d, const xst_wscale *ws,
                             const int8_t *grad_out, const int32_t *grad_out_exp,
                             const int8_t *w, int8_t *grad_in,
                             int32_t *grad_in_exp, void *scratch) {
  int st = conv2d_s8_check_dims(d);
  if (st) return st;
  const int64_t terms = backward_input_terms(d);
  if (terms > XST_CONV_MAX_BI_TERMS) return XST_ERR_DIMS;
  if (ws->exp < -64 || ws->exp > 64) return XST_ERR_PARAM;
  if (*grad_out_exp < -1024 || *grad_out_exp > 1024) return XST_ERR_PARAM;
  const int32_t IC = d->in_c, OC = d->out_c, KH = d->k_h, KW = d->k_w;
  for (int32_t c = 0; c < OC; c++) {
    if (ws->mantissa_q15[c] < 0) return XST_ERR_PARAM;
  }
  xst_fc_dims fc;
  if (as_fc(d, &fc)) {
    return fully_connected_s8_backward_input(&fc, ws, grad_out, grad_out_exp, w, grad_in, grad_in_exp, scratch);
  }
  const size_t n = (size_t)d->batch * d->in_h * d->in_w * IC;
  int32_t *acc = (int32_t *)scratch;
  int16_t *gs = (int16_t *)(acc + n);
  const int pre = backward_input_prescale(terms);
  const size_t w_row = (size_t)KW * IC, w_chan = (size_t)KH * w_row;
  const size_t x_row = (size_t)d->in_w * IC, x_img = (size_t)d->in_h * x_row;
  for (size_t j = 0; j < n; j++) acc[j] = 0;
  /* The transposed convolution, scattered: each output pixel adds
   * w[c][ky][kx][:] * gs[c] into the input pixels its taps read. */
  const int8_t *g = grad_out;
  for (int32_t b = 0; b < d->batch; b++) {
    int32_t *ab = acc + (size_t)b * x_img;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      int32_t ky0, ky1, iy0;
      clip_taps(oy, d->stride_h, d->pad_h, KH, d->in_h, &ky0, &ky1, &iy0);
      for (int32_t ox = 0; ox < d->out_w; ox++, g += OC) {
        int32_t kx0, kx1, ix0;
        clip_taps(ox, d->stride_w, d->pad_w, KW, d->in_w, &kx0, &kx1, &ix0);
        const size_t run = (size_t)(kx1 - kx0) * IC;
        for (int32_t c = 0; c < OC; c++) {
          gs[c] = (int16_t)xst_floor_shr32((int32_t)g[c] * ws->mantissa_q15[c] + (1 << (pre - 1)), pre);
        }
        for (int32_t c = 0; c < OC; c++) {
          const int32_t gc = gs[c];
          if (gc == 0) continue; /* exact: adds nothing */
          for (int32_t ky = ky0; ky < ky1; ky++) {
            int32_t *a = ab + (size_t)(iy0 + ky - ky0) * x_row + (size_t)ix0 * IC;
            const int8_t *wk = w + (size_t)c * w_chan + (size_t)ky * w_row + (size_t)kx0 * IC;
            for (size_t i = 0; i < run; i++) a[i] += wk[i] * gc; /* |a| <= 2^30, see prescale */
          }
        }
      }
    }
  }
  /* Normalise: the largest magnitude lands in [64, 127]. */
  const int s = xst_normalize_s8(acc, n, grad_in);
  *grad_in_exp = *grad_out_exp + ws->exp - 15 + pre + s;
  return XST_OK;
}

int conv2d_s8_backward_bias(const xst_conv_dims *d, const xst_block *blk,
                            const int8_t *grad_out, int32_t *grad_bias) {
  int st = conv2d_s8_check_dims(d);
  if (st) return st;
  if (blk->oc_begin < 0 || blk->oc_begin >= blk->oc_end || blk->oc_end > d->out_c) return XST_ERR_RANGE;
  const int64_t pixels = (int64_t)d->batch * d->out_h * d->out_w;
  if (pixels > XST_CONV_MAX_BG_PIXELS) return XST_ERR_DIMS; /* |sum| <= 128 * 2^23 = 2^30 */
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) grad_bias[c - blk->oc_begin] = 0;
  for (int64_t p = 0; p < pixels; p++) {
    const int8_t *g = grad_out + (size_t)p * d->out_c;
    for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) grad_bias[c - blk->oc_begin] += g[c];
  }
  return XST_OK;
}

/* backward_weight's input patch of output pixel (oy, ox) of image xb:
 * the block's (k_h, k_w, nic) taps as x + input_offset (|.| <= 255), 0 for
 * out-of-image taps, written to pp[0], pp[step], pp[2 * step], ... */
static void wg_patch(const xst_conv_dims *d, const xst_block *blk, int32_t input_offset, const int8_t *xb,
                     int32_t oy, int32_t ox, int16_t *pp, size_t step) {
  const int32_t IC = d->in_c, KH = d->k_h, KW = d->k_w, nic = blk->ic_end - blk->ic_begin;
  const size_t x_row = (size_t)d->in_w * IC;
  int32_t ky0, ky1, iy0, kx0, kx1, ix0;
  clip_taps(oy, d->stride_h, d->pad_h, KH, d->in_h, &ky0, &ky1, &iy0);
  clip_taps(ox, d->stride_w, d->pad_w, KW, d->in_w, &kx0, &kx1, &ix0);
  xb += blk->ic_begin;
  const size_t row = (size_t)KW * nic, left = (size_t)kx0 * nic, right = (size_t)(KW - kx1) * nic;
  for (int32_t ky = 0; ky < KH; ky++) {
    if (ky < ky0 || ky >= ky1) {
      for (size_t i = 0; i < row; i++, pp += step) *pp = 0;
      continue;
    }
    for (size_t i = 0; i < left; i++, pp += step) *pp = 0;
    const int8_t *x = xb + (size_t)(iy0 + ky - ky0) * x_row + (size_t)ix0 * IC;
    if (nic == IC) { /* the in-image taps of the row are one contiguous run */
      const size_t run = (size_t)(kx1 - kx0) * IC;
      for (size_t i = 0; i < run; i++, pp += step) *pp = (int16_t)((int32_t)x[i] + input_offset);
    } else {
      for (int32_t kx = kx0; kx < kx1; kx++, x += IC) {
        for (int32_t i = 0; i < nic; i++, pp += step) *pp = (int16_t)((int32_t)x[i] + input_offset);
      }
    }
    for (size_t i = 0; i < right; i++, pp += step) *pp = 0;
  }
}

#if XST_MM_DSP
typedef uint32_t xst_conv_u32_alias __attribute__((may_alias));

/* backward_weight on the DSP extension, k_h*k_w*nic <= XST_CONV_WG_PATCH:
 * output pixels in pairs (p0, p1); their patches interleaved as int16 lanes
 * (one word (x_p0[j], x_p1[j]) per tap j, 1 KB of stack) and each output
 * channel's two gradients as one word (g_p0[c], g_p1[c]), so one SMLAD adds
 * both pixels' terms to grad_w[c][j]. An odd last pixel pairs with a zero
 * gradient. Every partial sum is a sum of some of the terms, so it stays
 * within the exact bound of the whole (|sum| < 2^31). */
static __attribute__((noinline)) void conv_backward_weight_dsp(const xst_conv_dims *d, const xst_block *blk,
                                                               int32_t input_offset, const int8_t *grad_out,
                                                               const int8_t *in, int32_t *grad_w) {
  int16_t xh[2 * XST_CONV_WG_PATCH] __attribute__((aligned(4)));
  const xst_conv_u32_alias *xw = (const xst_conv_u32_alias *)(const void *)xh;
  const int32_t OC = d->out_c, OW = d->out_w;
  const int32_t K = d->k_h * d->k_w * (blk->ic_end - blk->ic_begin);
  const size_t x_img = (size_t)d->in_h * d->in_w * d->in_c;
  const int64_t P = (int64_t)d->batch * d->out_h * OW;
  int32_t pb = 0, py = 0, px = 0;
  for (int64_t p = 0; p < P; p += 2) {
    const int two = P - p >= 2;
    for (int r = 0; r < 2; r++) { /* pixel p + r is (pb, py, px) */
      if (r == 1 && !two) {
        for (int32_t j = 0; j < K; j++) xh[2 * j + 1] = 0;
        break;
      }
      wg_patch(d, blk, input_offset, in + (size_t)pb * x_img, py, px, xh + r, 2);
      if (++px == OW) {
        px = 0;
        if (++py == d->out_h) py = 0, pb++;
      }
    }
    const int8_t *g0 = grad_out + (size_t)p * OC, *g1 = two ? g0 + OC : g0;
    int32_t *gwc = grad_w;
    for (int32_t c = blk->oc_begin; c < blk->oc_end; c++, gwc += K) {
      const int32_t a = g0[c], bb = two ? g1[c] : 0;
      if ((a | bb) == 0) continue; /* exact: adds nothing */
      const int32_t gp = (int32_t)(((uint32_t)a & 0xFFFFu) | (uint32_t)bb << 16);
      for (int32_t j = 0; j < K; j++) gwc[j] = __smlad(gp, (int32_t)xw[j], gwc[j]);
    }
  }
}
#endif

int conv2d_s8_backward_weight(const xst_conv_dims *d, const xst_block *blk,
                              int32_t input_offset, const int8_t *grad_out,
                              const int8_t *in, int32_t *grad_w) {
  int st = conv2d_s8_check_dims(d);
  if (st) return st;
  if (blk->oc_begin < 0 || blk->oc_begin >= blk->oc_end || blk->oc_end > d->out_c) return XST_ERR_RANGE;
  if (blk->ic_begin < 0 || blk->ic_begin >= blk->ic_end || blk->ic_end > d->in_c) return XST_ERR_RANGE;
  if (input_offset < -127 || input_offset > 128) return XST_ERR_PARAM;
  /* |g * (x + off)| <= 128 * 255 and at most one term per output pixel:
   * 65535 * 32640 < 2^31. */
  if ((int64_t)d->batch * d->out_h * d->out_w > XST_CONV_MAX_WG_PIXELS) return XST_ERR_DIMS;
  const int32_t IC = d->in_c, OC = d->out_c, KH = d->k_h, KW = d->k_w;
  const int32_t nic = blk->ic_end - blk->ic_begin;
  const size_t gw_row = (size_t)KW * nic, gw_chan = (size_t)KH * gw_row; /* (noc, k_h, k_w, nic) */
  const size_t x_row = (size_t)d->in_w * IC, x_img = (size_t)d->in_h * x_row;
  const size_t nw = (size_t)(blk->oc_end - blk->oc_begin) * gw_chan;
  for (size_t j = 0; j < nw; j++) grad_w[j] = 0;
  const int8_t *g = grad_out;
  if (gw_chan <= XST_CONV_WG_PATCH) {
#if XST_MM_DSP
    conv_backward_weight_dsp(d, blk, input_offset, grad_out, in, grad_w);
#else
    /* Patch by patch: the block's (k_h, k_w, nic) input patch of one output
     * pixel (wg_patch) once, then every output channel adds gc * patch to
     * its contiguous gradient row: one flat loop of k_h*k_w*nic, whatever
     * the geometry. */
    int16_t patch[XST_CONV_WG_PATCH];
    const int32_t K = (int32_t)gw_chan;
    for (int32_t b = 0; b < d->batch; b++) {
      for (int32_t oy = 0; oy < d->out_h; oy++) {
        for (int32_t ox = 0; ox < d->out_w; ox++, g += OC) {
          wg_patch(d, blk, input_offset, in + (size_t)b * x_img, oy, ox, patch, 1);
          int32_t *gwc = grad_w;
          for (int32_t c = blk->oc_begin; c < blk->oc_end; c++, gwc += K) {
            const int32_t gc = g[c];
            if (gc == 0) continue; /* exact: adds nothing */
            for (int32_t j = 0; j < K; j++) gwc[j] += gc * patch[j];
          }
        }
      }
    }
#endif
    return XST_OK;
  }
  for (int32_t b = 0; b < d->batch; b++) {
    const int8_t *xb = in + (size_t)b * x_img;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      int32_t ky0, ky1, iy0;
      clip_taps(oy, d->stride_h, d->pad_h, KH, d->in_h, &ky0, &ky1, &iy0);
      for (int32_t ox = 0; ox < d->out_w; ox++, g += OC) {
        int32_t kx0, kx1, ix0;
        clip_taps(ox, d->stride_w, d->pad_w, KW, d->in_w, &kx0, &kx1, &ix0);
        for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
          const int32_t gc = g[c];
          if (gc == 0) continue; /* exact: adds nothing */
          int32_t *gwc = grad_w + (size_t)(c - blk->oc_begin) * gw_chan;
          for (int32_t ky = ky0; ky < ky1; ky++) {
            const int8_t *xr = xb + (size_t)(iy0 + ky - ky0) * x_row + blk->ic_begin;
            for (int32_t kx = kx0; kx < kx1; kx++) {
              const int8_t *x = xr + (size_t)(ix0 + kx - kx0) * IC;
              int32_t *gw = gwc + (size_t)ky * gw_row + (size_t)kx * nic;
              for (int32_t i = 0; i < nic; i++) gw[i] += gc * ((int32_t)x[i] + input_offset);
            }
          }
        }
      }
    }
  }
  return XST_OK;
}

/* ---- fused weight gradient + update (SGD op 37, LQM op 39) ------------------
 * The gradient of conv2d_s8_backward_weight, element by element in the
 * order (c, ky, kx, i) of the block, handed to the update in runs
 * (weight_update_s8.h) as it is produced: no gradient buffer in the arena,
 * only a tile of XST_CONV_WGS_TILE int32 on the stack.
 *  - 1x1, stride 1, no padding: the FC kernels over batch*h*w rows (the
 *    same order and the same numbers; the callers take this path);
 *  - k_h*k_w*nic <= XST_CONV_WGS_TILE: as many whole output channels per
 *    tile as fit, each tile through conv2d_s8_backward_weight (its DSP
 *    path on Cortex-M4) and then the runs channel by channel;
 *  - larger patches: one output channel, one tap and up to the tile's size
 *    of input channels at a time, summed over the output pixels whose tap
 *    lies in the image. */
#define XST_CONV_WGS_TILE 256

/* Output positions [*lo, *hi) whose tap k lies in the image on one axis:
 * o*s - pad + k in [0, in), o in [0, out). */
static void tap_outputs(int32_t k, int32_t s, int32_t pad, int32_t in, int32_t out, int32_t *lo, int32_t *hi) {
  const int32_t first = pad - k, last = in - 1 + pad - k; /* o*s in [first, last]; |.| < 2^25 */
  *lo = first > 0 ? (first + s - 1) / s : 0;
  *hi = last < 0 ? 0 : (last / s + 1 < out ? last / s + 1 : out);
  if (*hi < *lo) *hi = *lo;
}

int conv2d_s8_weight_grad_check(const xst_conv_dims *d, const xst_block *blk, int32_t input_offset) {
  int st = conv2d_s8_check_dims(d);
  if (st) return st;
  if (blk->oc_begin < 0 || blk->oc_begin >= blk->oc_end || blk->oc_end > d->out_c) return XST_ERR_RANGE;
  if (blk->ic_begin < 0 || blk->ic_begin >= blk->ic_end || blk->ic_end > d->in_c) return XST_ERR_RANGE;
  if (input_offset < -127 || input_offset > 128) return XST_ERR_PARAM;
  if ((int64_t)d->batch * d->out_h * d->out_w > XST_CONV_MAX_WG_PIXELS) return XST_ERR_DIMS;
  return XST_OK;
}

void conv2d_s8_weight_grad_runs(const xst_conv_dims *d, const xst_block *blk, int32_t input_offset,
                                const int8_t *grad_out, const int8_t *in, xst_wg_apply apply, void *ctx) {
  const int32_t IC = d->in_c, OC = d->out_c, KH = d->k_h, KW = d->k_w, nic = blk->ic_end - blk->ic_begin;
  const size_t w_chan = (size_t)KH * KW * IC;
  const int32_t K = KH * KW * nic; /* <= XST_CONV_MAX_TAPS */
  int32_t tile[XST_CONV_WGS_TILE];
  if (K <= XST_CONV_WGS_TILE) {
    const int32_t per = XST_CONV_WGS_TILE / K;
    for (int32_t c0 = blk->oc_begin; c0 < blk->oc_end; c0 += per) {
      const xst_block sub = {c0, blk->oc_end - c0 < per ? blk->oc_end : c0 + per, blk->ic_begin, blk->ic_end};
      conv2d_s8_backward_weight(d, &sub, input_offset, grad_out, in, tile); /* checked by the caller: XST_OK */
      for (int32_t c = sub.oc_begin; c < sub.oc_end; c++) {
        const int32_t *g = tile + (size_t)(c - sub.oc_begin) * K;
        const size_t wc = (size_t)c * w_chan + (size_t)blk->ic_begin;
        if (nic == IC) { /* the channel's weights are one run */
          apply(ctx, c, wc, 1, g, 1, K);
          continue;
        }
        for (int32_t t = 0; t < KH * KW; t++) apply(ctx, c, wc + (size_t)t * IC, 1, g + (size_t)t * nic, 1, nic);
      }
    }
    return;
  }
  const size_t x_row = (size_t)d->in_w * IC, x_img = (size_t)d->in_h * x_row;
  const size_t g_row = (size_t)d->out_w * OC, g_img = (size_t)d->out_h * g_row;
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    for (int32_t ky = 0; ky < KH; ky++) {
      int32_t oy0, oy1;
      tap_outputs(ky, d->stride_h, d->pad_h, d->in_h, d->out_h, &oy0, &oy1);
      for (int32_t kx = 0; kx < KW; kx++) {
        int32_t ox0, ox1;
        tap_outputs(kx, d->stride_w, d->pad_w, d->in_w, d->out_w, &ox0, &ox1);
        const size_t wt = (size_t)c * w_chan + ((size_t)ky * KW + kx) * IC;
        for (int32_t i0 = blk->ic_begin; i0 < blk->ic_end; i0 += XST_CONV_WGS_TILE) {
          const int32_t n = blk->ic_end - i0 < XST_CONV_WGS_TILE ? blk->ic_end - i0 : XST_CONV_WGS_TILE;
          for (int32_t i = 0; i < n; i++) tile[i] = 0;
          for (int32_t b = 0; b < d->batch; b++) {
            for (int32_t oy = oy0; oy < oy1; oy++) {
              const int32_t iy = oy * d->stride_h - d->pad_h + ky;
              for (int32_t ox = ox0; ox < ox1; ox++) {
                const int32_t gc = grad_out[(size_t)b * g_img + (size_t)oy * g_row + (size_t)ox * OC + c];
                if (gc == 0) continue; /* exact: adds nothing */
                const int32_t ix = ox * d->stride_w - d->pad_w + kx;
                const int8_t *x = in + (size_t)b * x_img + (size_t)iy * x_row + (size_t)ix * IC + i0;
                for (int32_t i = 0; i < n; i++) tile[i] += gc * ((int32_t)x[i] + input_offset);
              }
            }
          }
          apply(ctx, c, wt + (size_t)i0, 1, tile, 1, n);
        }
      }
    }
  }
}

int conv2d_s8_backward_weight_sgd(const xst_conv_dims *d, const xst_block *blk, int32_t input_offset,
                                  const int8_t *grad_out, const int32_t *grad_out_exp, const int8_t *in,
                                  const xst_lr *lr, int8_t *w, uint32_t *rng) {
  int st = conv2d_s8_weight_grad_check(d, blk, input_offset);
  if (!st) st = sgd_s8_run_check(lr, blk->oc_begin, blk->oc_end, rng);
  if (st) return st;
  xst_fc_dims fc;
  if (as_fc(d, &fc)) return fully_connected_s8_backward_weight_sgd(&fc, blk, input_offset, grad_out, grad_out_exp, in, lr, w, rng);
  sgd_s8_run r = {lr, *grad_out_exp, w, rng};
  conv2d_s8_weight_grad_runs(d, blk, input_offset, grad_out, in, sgd_s8_apply_run, &r);
  return XST_OK;
}

int conv2d_s8_backward_weight_lqm(const xst_conv_dims *d, const xst_block *blk, int32_t input_offset,
                                  const int8_t *grad_out, const int32_t *grad_out_exp, const int8_t *in,
                                  const xst_lqm *p, uint8_t *state, int8_t *w, uint32_t *rng) {
  int st = conv2d_s8_weight_grad_check(d, blk, input_offset);
  if (st) return st;
  xst_fc_dims fc;
  if (as_fc(d, &fc)) return fully_connected_s8_backward_weight_lqm(&fc, blk, input_offset, grad_out, grad_out_exp, in, p, state, w, rng);
  lqm_s8_run r;
  st = lqm_s8_run_begin(&r, p, blk->oc_begin, blk->oc_end, *grad_out_exp, state, w, rng);
  if (st) return st;
  conv2d_s8_weight_grad_runs(d, blk, input_offset, grad_out, in, lqm_s8_apply_run, &r);
  lqm_s8_run_end(&r, rng);
  return XST_OK;
}
