/*
 * Internal to the C core (not part of the public contract in xst.h): how the
 * fused conv / depthwise weight updates (ops 37-40) split into the loops
 * that produce the weight gradient and the update that consumes it.
 *
 * The gradient loops (conv2d_s8.c, depthwise_conv2d_s8.c) produce the
 * gradient of the block in small int32 tiles on the stack and hand each tile
 * to an update as runs: run (c, w_at, w_step, g, g_step, n) is the n
 * gradients g[k * g_step] of weight elements w_at + k * w_step (k < n) of
 * output channel c, in the element order of the fused op (conv: (c, ky, kx,
 * i); depthwise: (c, ky, kx)). The SGD ops apply a run with
 * xst_sgd_s8_run, the LQM ops with lqm_s8_apply_run below; element indices
 * into w are also indices into the LQM state (one field per weight).
 */
#ifndef XST_WEIGHT_UPDATE_S8_H
#define XST_WEIGHT_UPDATE_S8_H

#include "xst.h"

typedef void (*xst_wg_apply)(void *ctx, int32_t c, size_t w_at, size_t w_step, const int32_t *g, size_t g_step,
                             int32_t n);

/* conv2d_s8.c: the limits of conv2d_s8_backward_weight (XST_ERR_DIMS,
 * XST_ERR_RANGE, XST_ERR_PARAM for the input offset); then the runs of the
 * block, as conv2d_s8_backward_weight_sgd makes them (not the 1x1 FC path:
 * the callers take it first). */
int conv2d_s8_weight_grad_check(const xst_conv_dims *d, const xst_block *blk, int32_t input_offset);
void conv2d_s8_weight_grad_runs(const xst_conv_dims *d, const xst_block *blk, int32_t input_offset,
                                const int8_t *grad_out, const int8_t *in, xst_wg_apply apply, void *ctx);

/* depthwise_conv2d_s8.c: the same for depthwise_conv2d_s8_backward_weight
 * (blk->ic_* unused). */
int depthwise_conv2d_s8_weight_grad_check(const xst_dwconv_dims *d, const xst_block *blk, int32_t input_offset);
void depthwise_conv2d_s8_weight_grad_runs(const xst_dwconv_dims *d, const xst_block *blk, int32_t input_offset,
                                          const int8_t *grad_out, const int8_t *in, xst_wg_apply apply, void *ctx);

/* sgd_s8.c: the SGD update of runs with the channel's learning rate
 * (xst_sgd_s8_run). sgd_s8_run_check: multiplier >= 0 and shift in [-62,
 * 62] over [oc_begin, oc_end), *rng != 0 (else XST_ERR_PARAM). */
typedef struct {
  const xst_lr *lr;
  int32_t e; /* the gradient's exponent */
  int8_t *w;
  uint32_t *rng;
} sgd_s8_run;

int sgd_s8_run_check(const xst_lr *lr, int32_t oc_begin, int32_t oc_end, const uint32_t *rng);
void sgd_s8_apply_run(void *ctx, int32_t c, size_t w_at, size_t w_step, const int32_t *g, size_t g_step, int32_t n);

/* lqm_s8.c: the LQM update of runs (lqm_s8_update's rule, element by
 * element through the same lqm_element). lqm_s8_run_begin checks the
 * parameters (lqm_check_params, shift[c] in [-64, 64] over [oc_begin,
 * oc_end), *rng != 0: else XST_ERR_PARAM) and fills the context;
 * lqm_s8_apply_run is an xst_wg_apply on it; lqm_s8_run_end stores the rng
 * state back. */
/* Per-call constants of lqm_s8.c. dq[f]: the decayed momentum Q(m) -
 * dec(Q(m)) (units, signed) of each state field value f. */
typedef struct {
  int bits, frac, top_code;
  uint32_t field_mask, sign_bit;
  int32_t dq[32];
} lqm_k;

typedef struct {
  lqm_k k;
  int64_t e; /* grad_exp - emin: a channel's S = e + shift[c] */
  const int32_t *shift;
  uint8_t *state;
  int8_t *w;
  uint32_t rng;
} lqm_s8_run;

int lqm_s8_run_begin(lqm_s8_run *r, const xst_lqm *p, int32_t oc_begin, int32_t oc_end, int32_t grad_exp,
                     uint8_t *state, int8_t *w, const uint32_t *rng);
void lqm_s8_apply_run(void *ctx, int32_t c, size_t w_at, size_t w_step, const int32_t *g, size_t g_step, int32_t n);
void lqm_s8_run_end(const lqm_s8_run *r, uint32_t *rng);

#endif /* XST_WEIGHT_UPDATE_S8_H */
