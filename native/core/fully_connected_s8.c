/*
 * Fully connected, int8: forward and backward.
 *
 * Layouts: in (rows, in_features), w (out_features, in_features) row-major,
 * out/grad_out (rows, out_features). Gradients: int8 with a power-of-two
 * exponent per tensor (real = q * 2^exp), see native/README.md.
 */
#include "xst.h"
#include "xst_fixed.h"
#include "nn_mat_mult_s8.h"

#define XST_FC_MAX_IN 65536   /* keeps the int32 forward accumulator exact */
#define XST_FC_MAX_ROWS 65535 /* keeps weight-gradient sums exact in int32 */

static int check_dims(const xst_fc_dims *d) {
  if (d->rows < 1 || d->in_features < 1 || d->out_features < 1) return XST_ERR_DIMS;
  if (d->in_features > XST_FC_MAX_IN || d->rows > XST_FC_MAX_ROWS) return XST_ERR_DIMS;
  if (d->out_features > (1 << 20)) return XST_ERR_DIMS;
  return XST_OK;
}

static int check_block(const xst_fc_dims *d, const xst_block *b) {
  if (b->oc_begin < 0 || b->oc_begin >= b->oc_end || b->oc_end > d->out_features) return XST_ERR_RANGE;
  if (b->ic_begin < 0 || b->ic_begin >= b->ic_end || b->ic_end > d->in_features) return XST_ERR_RANGE;
  return XST_OK;
}

static int check_lr(const xst_lr *lr, int32_t oc_begin, int32_t oc_end) {
  for (int32_t c = oc_begin; c < oc_end; c++) {
    if (lr->multiplier[c] < 0 || lr->shift[c] < -62 || lr->shift[c] > 62) return XST_ERR_PARAM;
  }
  return XST_OK;
}

size_t fully_connected_s8_forward_scratch_size(const xst_fc_dims *d) {
  (void)d;
  return 0;
}

int fully_connected_s8_forward(const xst_fc_dims *d, const xst_fc_quant *q,
                               const int8_t *in, const int8_t *w,
                               const int32_t *bias, int8_t *out,
                               uint8_t *mask) {
  int st = check_dims(d);
  if (st) return st;
  if (q->input_offset < -127 || q->input_offset > 128) return XST_ERR_PARAM;
  if (q->output_offset < -128 || q->output_offset > 127) return XST_ERR_PARAM;
  if (q->act_min < -128 || q->act_max > 127 || q->act_min > q->act_max) return XST_ERR_PARAM;
  const int32_t IN = d->in_features, OUT = d->out_features;
  for (int32_t c = 0; c < OUT; c++) {
    if (q->multiplier[c] < 0 || q->shift[c] < -31 || q->shift[c] > 30) return XST_ERR_PARAM;
  }
  /* Accumulators in tiles (xst_mat_mult_s8), each requantised right away. */
  int32_t tile[XST_MM_TILE_ROWS * XST_MM_TILE_COLS];
  for (int32_t r0 = 0; r0 < d->rows; r0 += XST_MM_TILE_ROWS) {
    const int32_t nr = d->rows - r0 < XST_MM_TILE_ROWS ? d->rows - r0 : XST_MM_TILE_ROWS;
    for (int32_t c0 = 0; c0 < OUT; c0 += XST_MM_TILE_COLS) {
      const int32_t nc = OUT - c0 < XST_MM_TILE_COLS ? OUT - c0 : XST_MM_TILE_COLS;
      /* |acc| <= 255 * 128 * 65536 < 2^31 */
      xst_mat_mult_s8(in + (size_t)r0 * IN, nr, w + (size_t)c0 * IN, nc, IN,
                      q->input_offset, tile, XST_MM_TILE_COLS);
      for (int32_t r = r0; r < r0 + nr; r++) {
        for (int32_t c = c0; c < c0 + nc; c++) {
          int32_t acc = tile[(r - r0) * XST_MM_TILE_COLS + (c - c0)];
          if (bias) acc = (int32_t)((uint32_t)acc + (uint32_t)bias[c]); /* wraps like the reference */
          int32_t v = xst_requantize(acc, q->multiplier[c], q->shift[c]);
          /* requantize returns an int32 near the int8 range; adding the offset
           * cannot overflow unless the multiplier is absurd, so saturate first. */
          if (v > 1 << 24) v = 1 << 24;
          if (v < -(1 << 24)) v = -(1 << 24);
          v += q->output_offset;
          size_t k = (size_t)r * OUT + c;
          if (mask) {
            uint8_t bit = (uint8_t)(1u << (k & 7));
            if (v > q->act_min && v < q->act_max) mask[k >> 3] |= bit;
            else mask[k >> 3] &= (uint8_t)~bit;
          }
          out[k] = (int8_t)xst_clamp32(v, q->act_min, q->act_max);
        }
      }
    }
  }
  return XST_OK;
}

/* Pre-scaling of grad_out by the weight-scale mantissa keeps the int32 sum
 * over out_features exact: |gs| <= 2^(22 - pre), |w| <= 2^7, count <= 2^k,
 * so pre >= k - 1 bounds the sum by 2^30. */
static int backward_input_prescale(int32_t out_features) {
  int k = xst_bit_length((uint32_t)(out_features - 1)); /* ceil(log2(out)) */
  return k > 9 ? k - 1 : 8;
}

size_t fully_connected_s8_backward_input_scratch_size(const xst_fc_dims *d) {
  /* int32 acc[rows * in], then int16 gs[out] */
  return (size_t)d->rows * (size_t)d->in_features * 4u + (size_t)d->out_features * 2u;
}

int fully_connected_s8_backward_input(const xst_fc_dims *d,
                                      const xst_wscale *ws,
                                      const int8_t *grad_out,
                                      const int32_t *grad_out_exp,
                                      const int8_t *w, int8_t *grad_in,
                                      int32_t *grad_in_exp, void *scratch) {
  int st = check_dims(d);
  if (st) return st;
  const int32_t IN = d->in_features, OUT = d->out_features;
  if (ws->exp < -64 || ws->exp > 64) return XST_ERR_PARAM;
  if (*grad_out_exp < -1024 || *grad_out_exp > 1024) return XST_ERR_PARAM;
  for (int32_t c = 0; c < OUT; c++) {
    if (ws->mantissa_q15[c] < 0) return XST_ERR_PARAM;
  }
  int32_t *acc = (int32_t *)scratch;
  int16_t *gs = (int16_t *)(acc + (size_t)d->rows * IN);
  const int pre = backward_input_prescale(OUT);
  for (int32_t r = 0; r < d->rows; r++) {
    const int8_t *g = grad_out + (size_t)r * OUT;
    int32_t *a = acc + (size_t)r * IN;
    for (int32_t c = 0; c < OUT; c++) {
      gs[c] = (int16_t)xst_floor_shr32((int32_t)g[c] * ws->mantissa_q15[c] + (1 << (pre - 1)), pre);
    }
    for (int32_t i = 0; i < IN; i++) a[i] = 0;
    for (int32_t c = 0; c < OUT; c++) {
      const int32_t gc = gs[c];
      if (gc == 0) continue; /* exact: adds nothing */
      const int8_t *wc = w + (size_t)c * IN;
      for (int32_t i = 0; i < IN; i++) a[i] += wc[i] * gc;
    }
  }
  /* Normalise: the largest magnitude lands in [64, 127]. */
  const int s = xst_normalize_s8(acc, (size_t)d->rows * IN, grad_in);
  *grad_in_exp = *grad_out_exp + ws->exp - 15 + pre + s;
  return XST_OK;
}

int fully_connected_s8_backward_bias(const xst_fc_dims *d, const xst_block *blk,
                                     const int8_t *grad_out, int32_t *grad_bias) {
  int st = check_dims(d);
  if (st) return st;
  if (blk->oc_begin < 0 || blk->oc_begin >= blk->oc_end || blk->oc_end > d->out_features) return XST_ERR_RANGE;
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    int32_t s = 0;
    for (int32_t r = 0; r < d->rows; r++) s += grad_out[(size_t)r * d->out_features + c];
    grad_bias[c - blk->oc_begin] = s;
  }
  return XST_OK;
}

int fully_connected_s8_backward_weight(const xst_fc_dims *d,
                                       const xst_block *blk,
                                       int32_t input_offset,
                                       const int8_t *grad_out,
                                       const int8_t *in, int32_t *grad_w) {
  int st = check_dims(d);
  if (!st) st = check_block(d, blk);
  if (st) return st;
  if (input_offset < -127 || input_offset > 128) return XST_ERR_PARAM;
  const int32_t IN = d->in_features, OUT = d->out_features;
  const int32_t nic = blk->ic_end - blk->ic_begin;
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    int32_t *gw = grad_w + (size_t)(c - blk->oc_begin) * nic;
    for (int32_t i = 0; i < nic; i++) gw[i] = 0;
    for (int32_t r = 0; r < d->rows; r++) {
      const int32_t g = grad_out[(size_t)r * OUT + c];
      if (g == 0) continue;
      const int8_t *x = in + (size_t)r * IN + blk->ic_begin;
      for (int32_t i = 0; i < nic; i++) gw[i] += g * ((int32_t)x[i] + input_offset);
    }
  }
  return XST_OK;
}

int fully_connected_s8_backward_weight_sgd(const xst_fc_dims *d,
                                           const xst_block *blk,
                                           int32_t input_offset,
                                           const int8_t *grad_out,
                                           const int32_t *grad_out_exp,
                                           const int8_t *in, const xst_lr *lr,
                                           int8_t *w, uint32_t *rng) {
  int st = check_dims(d);
  if (!st) st = check_block(d, blk);
  if (!st) st = check_lr(lr, blk->oc_begin, blk->oc_end);
  if (st) return st;
  if (input_offset < -127 || input_offset > 128) return XST_ERR_PARAM;
  if (*rng == 0) return XST_ERR_PARAM;
  const int32_t IN = d->in_features, OUT = d->out_features;
  const int32_t e = *grad_out_exp;
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    const int32_t m = lr->multiplier[c], sh = lr->shift[c];
    int8_t *wc = w + (size_t)c * IN;
    if (d->rows == 1) {
      /* Batch 1, the on-device case: one product per element, whole rows
       * skipped when the output gradient is zero (no random draw then). */
      const int32_t g = grad_out[c];
      if (g == 0) continue;
      const int64_t R = 31 - (int64_t)sh - (int64_t)e;
      if (xst_sgd_fast_ok(R)) {
        uint32_t state = *rng; /* kept in a register along the row */
        for (int32_t i = blk->ic_begin; i < blk->ic_end; i++) {
          const int32_t gi = g * ((int32_t)in[i] + input_offset);
          if (gi != 0) wc[i] = xst_sgd_s8_fast(wc[i], gi, m, (int)R, &state);
        }
        *rng = state;
        continue;
      }
      for (int32_t i = blk->ic_begin; i < blk->ic_end; i++) {
        const int32_t gi = g * ((int32_t)in[i] + input_offset);
        if (gi == 0) continue;
        int64_t v = (int64_t)wc[i] - xst_sgd_step(gi, m, sh, e, rng);
        wc[i] = (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
      }
      continue;
    }
    for (int32_t i = blk->ic_begin; i < blk->ic_end; i++) {
      int32_t gi = 0;
      for (int32_t r = 0; r < d->rows; r++) {
        gi += grad_out[(size_t)r * OUT + c] * ((int32_t)in[(size_t)r * IN + i] + input_offset);
      }
      if (gi == 0) continue;
      int64_t v = (int64_t)wc[i] - xst_sgd_step(gi, m, sh, e, rng);
      wc[i] = (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
    }
  }
  return XST_OK;
}
