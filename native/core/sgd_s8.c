/*
 * Integer SGD with stochastic rounding, applied from a gradient buffer.
 * The fused form (no buffer) is fully_connected_s8_backward_weight_sgd; both
 * use xst_sgd_step() so they agree to the bit.
 */
#include "xst.h"
#include "xst_fixed.h"
#include "weight_update_s8.h"

static int check_lr_range(const xst_lr *lr, int32_t oc_begin, int32_t oc_end) {
  for (int32_t c = oc_begin; c < oc_end; c++) {
    if (lr->multiplier[c] < 0 || lr->shift[c] < -62 || lr->shift[c] > 62) return XST_ERR_PARAM;
  }
  return XST_OK;
}

/* Runs of the fused conv / depthwise op 37-38 (weight_update_s8.h). */
int sgd_s8_run_check(const xst_lr *lr, int32_t oc_begin, int32_t oc_end, const uint32_t *rng) {
  int st = check_lr_range(lr, oc_begin, oc_end);
  if (st) return st;
  return *rng == 0 ? XST_ERR_PARAM : XST_OK;
}

void sgd_s8_apply_run(void *ctx, int32_t c, size_t w_at, size_t w_step, const int32_t *g, size_t g_step, int32_t n) {
  const sgd_s8_run *r = (const sgd_s8_run *)ctx;
  xst_sgd_s8_run(r->w + w_at, w_step, g, g_step, n, r->lr->multiplier[c], r->lr->shift[c], r->e, r->rng);
}

int sgd_s8_update(const xst_fc_dims *d, const xst_block *blk,
                  const int32_t *grad, const int32_t *grad_exp,
                  const xst_lr *lr, int8_t *w, uint32_t *rng) {
  if (d->in_features < 1 || d->out_features < 1) return XST_ERR_DIMS;
  if (blk->oc_begin < 0 || blk->oc_begin >= blk->oc_end || blk->oc_end > d->out_features) return XST_ERR_RANGE;
  if (blk->ic_begin < 0 || blk->ic_begin >= blk->ic_end || blk->ic_end > d->in_features) return XST_ERR_RANGE;
  int st = check_lr_range(lr, blk->oc_begin, blk->oc_end);
  if (st) return st;
  if (*rng == 0) return XST_ERR_PARAM;
  const int32_t nic = blk->ic_end - blk->ic_begin, e = *grad_exp;
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    const int32_t *g = grad + (size_t)(c - blk->oc_begin) * nic;
    int8_t *wc = w + (size_t)c * d->in_features + blk->ic_begin;
    const int64_t R = 31 - (int64_t)lr->shift[c] - (int64_t)e;
#if XST_SGD_DSP
    if (xst_sgd_dsp_ok(R)) {
      uint32_t state = *rng;
      const int32_t m = lr->multiplier[c], sr = (int32_t)R - 32, sr32 = 64 - (int32_t)R;
      for (int32_t i = 0; i < nic; i++) {
        if (g[i] != 0) wc[i] = xst_sgd_s8_dsp(wc[i], g[i], m, sr, sr32, &state);
      }
      *rng = state;
      continue;
    }
#endif
    if (xst_sgd_fast_ok(R)) {
      uint32_t state = *rng;
      for (int32_t i = 0; i < nic; i++) {
        if (g[i] != 0) wc[i] = xst_sgd_s8_fast(wc[i], g[i], lr->multiplier[c], (int)R, &state);
      }
      *rng = state;
      continue;
    }
    for (int32_t i = 0; i < nic; i++) {
      if (g[i] == 0) continue;
      int64_t v = (int64_t)wc[i] - xst_sgd_step(g[i], lr->multiplier[c], lr->shift[c], e, rng);
      wc[i] = (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
    }
  }
  return XST_OK;
}

int sgd_s32_update(const xst_block *blk, const int32_t *grad,
                   const int32_t *grad_exp, const xst_lr *lr, int32_t *bias,
                   uint32_t *rng) {
  if (blk->oc_begin < 0 || blk->oc_begin >= blk->oc_end) return XST_ERR_RANGE;
  int st = check_lr_range(lr, blk->oc_begin, blk->oc_end);
  if (st) return st;
  if (*rng == 0) return XST_ERR_PARAM;
  const int32_t e = *grad_exp;
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    const int32_t g = grad[c - blk->oc_begin];
    if (g == 0) continue;
    int64_t v = (int64_t)bias[c] - xst_sgd_step(g, lr->multiplier[c], lr->shift[c], e, rng);
    bias[c] = (int32_t)(v < INT32_MIN ? INT32_MIN : (v > INT32_MAX ? INT32_MAX : v));
  }
  return XST_OK;
}
