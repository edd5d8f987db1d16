/*
 * Fully-connected layers with the weights split by input channel, and the
 * low-memory input gradient (ops 33-34). A sparse update that trains only
 * input channels [0, split) of a layer keeps that slice w_lo (out, split)
 * in the arena and leaves the frozen rest w_hi (out, in - split) in flash;
 * a 1x1 stride-1 convolution is this layer over its pixels (conv2d_s8.c).
 *
 * fully_connected_s8_forward_split: bit-identical to
 *   fully_connected_s8_forward on W = [w_lo | w_hi]: the int32 sum over the
 *   input channels is exact (|sum| < 255 * 128 * 65536 < 2^31), so taking it
 *   in two ranges changes nothing; the bias is added wrapping, then the
 *   same requantisation and mask (xst_requant_store).
 *
 * fully_connected_s8_backward_input_rows: bit-identical to
 *   fully_connected_s8_backward_input on W = [w_lo | w_hi] (w_hi may be
 *   absent: split = in), with a scratch of one row instead of the whole
 *   tensor: one int32 row of sums and the pre-scaled output gradient. The
 *   int8 result needs the largest magnitude of all rows before any row is
 *   written, so the rows are computed twice: a first pass finds the
 *   largest, a second recomputes each row and writes it normalised (twice
 *   the multiply-accumulates, rows*in*4 bytes less arena). The sums are the
 *   same exact int32 sums in both passes and as in the whole-tensor kernel.
 *
 * Portable C only.
 */
#include "xst.h"
#include "nn_requant_s8.h"

static int check_dims(const xst_fc_dims *d, int32_t split) {
  if (d->rows < 1 || d->in_features < 1 || d->out_features < 1) return XST_ERR_DIMS;
  if (d->in_features > 65536 || d->rows > 65535 || d->out_features > (1 << 20)) return XST_ERR_DIMS;
  if (split < 1 || split > d->in_features) return XST_ERR_DIMS;
  return XST_OK;
}

int fully_connected_s8_forward_split(const xst_fc_dims *d, int32_t split, const xst_fc_quant *q,
                                     const int8_t *in, const int8_t *w_lo, const int8_t *w_hi,
                                     const int32_t *bias, int8_t *out, uint8_t *mask) {
  int st = check_dims(d, split);
  if (st) return st;
  if (split < d->in_features && !w_hi) return XST_ERR_DIMS;
  if (q->input_offset < -127 || q->input_offset > 128) return XST_ERR_PARAM;
  if (q->output_offset < -128 || q->output_offset > 127) return XST_ERR_PARAM;
  if (q->act_min < -128 || q->act_max > 127 || q->act_min > q->act_max) return XST_ERR_PARAM;
  const int32_t IN = d->in_features, OUT = d->out_features, NH = IN - split;
  for (int32_t c = 0; c < OUT; c++) {
    if (q->multiplier[c] < 0 || q->shift[c] < -31 || q->shift[c] > 30) return XST_ERR_PARAM;
  }
  const int32_t off = q->input_offset;
  size_t k = 0;
  for (int32_t r = 0; r < d->rows; r++) {
    const int8_t *x = in + (size_t)r * IN;
    for (int32_t c = 0; c < OUT; c++, k++) {
      const int8_t *wl = w_lo + (size_t)c * split;
      int32_t acc = 0;
      for (int32_t i = 0; i < split; i++) acc += ((int32_t)x[i] + off) * wl[i];
      if (NH > 0) {
        const int8_t *wh = w_hi + (size_t)c * NH;
        for (int32_t i = 0; i < NH; i++) acc += ((int32_t)x[split + i] + off) * wh[i];
      }
      if (bias) acc = (int32_t)((uint32_t)acc + (uint32_t)bias[c]);
      xst_requant_store(acc, q->multiplier[c], q->shift[c], q->output_offset, q->act_min, q->act_max, k, out, mask);
    }
  }
  return XST_OK;
}

/* As fully_connected_s8.c: |gs| <= 2^(22 - pre), |w| <= 2^7, out <= 2^k
 * terms, pre >= k - 1 keeps the sum below 2^30. */
static int backward_input_prescale(int32_t out_features) {
  int k = xst_bit_length((uint32_t)(out_features - 1));
  return k > 9 ? k - 1 : 8;
}

size_t fully_connected_s8_backward_input_rows_scratch_size(const xst_fc_dims *d) {
  /* int32 acc[in], then int16 gs[out] */
  return (size_t)d->in_features * 4u + (size_t)d->out_features * 2u;
}

/* acc[i] = sum_c gs[c] * W[c][i] of row r. */
static void row_sums(const xst_fc_dims *d, int32_t split, const xst_wscale *ws, int pre, const int8_t *grad_out,
                     const int8_t *w_lo, const int8_t *w_hi, int32_t r, int32_t *acc, int16_t *gs) {
  const int32_t IN = d->in_features, OUT = d->out_features;
  const int8_t *g = grad_out + (size_t)r * OUT;
  for (int32_t c = 0; c < OUT; c++) {
    gs[c] = (int16_t)xst_floor_shr32((int32_t)g[c] * ws->mantissa_q15[c] + (1 << (pre - 1)), pre);
  }
  for (int32_t i = 0; i < IN; i++) acc[i] = 0;
  for (int32_t c = 0; c < OUT; c++) {
    const int32_t gc = gs[c];
    if (gc == 0) continue; /* exact: adds nothing */
    const int8_t *wl = w_lo + (size_t)c * split;
    for (int32_t i = 0; i < split; i++) acc[i] += wl[i] * gc;
    if (split < IN) {
      const int8_t *wh = w_hi + (size_t)c * (IN - split);
      for (int32_t i = split; i < IN; i++) acc[i] += wh[i - split] * gc;
    }
  }
}

int fully_connected_s8_backward_input_rows(const xst_fc_dims *d, int32_t split, const xst_wscale *ws,
                                           const int8_t *grad_out, const int32_t *grad_out_exp,
                                           const int8_t *w_lo, const int8_t *w_hi, int8_t *grad_in,
                                           int32_t *grad_in_exp, void *scratch) {
  int st = check_dims(d, split);
  if (st) return st;
  if (split < d->in_features && !w_hi) return XST_ERR_DIMS;
  const int32_t IN = d->in_features, OUT = d->out_features;
  if (ws->exp < -64 || ws->exp > 64) return XST_ERR_PARAM;
  if (*grad_out_exp < -1024 || *grad_out_exp > 1024) return XST_ERR_PARAM;
  for (int32_t c = 0; c < OUT; c++) {
    if (ws->mantissa_q15[c] < 0) return XST_ERR_PARAM;
  }
  int32_t *acc = (int32_t *)scratch;
  int16_t *gs = (int16_t *)(acc + IN);
  const int pre = backward_input_prescale(OUT);
  /* Pass 1: the largest magnitude (xst_normalize_s8's shift). */
  uint32_t maxabs = 0;
  for (int32_t r = 0; r < d->rows; r++) {
    row_sums(d, split, ws, pre, grad_out, w_lo, w_hi, r, acc, gs);
    for (int32_t i = 0; i < IN; i++) {
      const uint32_t m = acc[i] < 0 ? (uint32_t)0 - (uint32_t)acc[i] : (uint32_t)acc[i];
      if (m > maxabs) maxabs = m;
    }
  }
  const int s = maxabs ? xst_bit_length(maxabs) - 7 : 0;
  /* Pass 2: the same sums, normalised as xst_normalize_s8 does. */
  for (int32_t r = 0; r < d->rows; r++) {
    row_sums(d, split, ws, pre, grad_out, w_lo, w_hi, r, acc, gs);
    int8_t *o = grad_in + (size_t)r * IN;
    for (int32_t i = 0; i < IN; i++) {
      const int32_t v = s > 0 ? xst_floor_shr32(acc[i] + (1 << (s - 1)), s) : acc[i] * (1 << -s);
      o[i] = (int8_t)xst_clamp32(v, -128, 127);
    }
  }
  *grad_in_exp = *grad_out_exp + ws->exp - 15 + pre + s;
  return XST_OK;
}
