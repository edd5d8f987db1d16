/*
 * 16-bit fixed-point optimizer baselines: SGD and momentum SGD on int16
 * parameters with a power-of-two scale (real = q * 2^param_exp), the
 * same-bit-width conventional methods LQM is compared with. Gradients are
 * in the fully-connected weight-gradient format (int32, exponent cell). The
 * learning rate is a Q31 multiplier and shift (lr = multiplier *
 * 2^(shift - 31)). Every rounding to the int16 grid is stochastic (xorshift32
 * state *rng) and every result saturates to [-32767, 32767].
 */
#include "xst.h"
#include "xst_fixed.h"

#define S16_MAX 32767
#define EXP_LIMIT 64 /* |param_exp|, |state_exp| */

static int16_t sat16(int64_t v) { return (int16_t)(v < -S16_MAX ? -S16_MAX : (v > S16_MAX ? S16_MAX : v)); }

/* a - b for the exponent arguments of xst_sgd_step, clamped to +-2^20 (the
 * step is already 0 or saturated far inside that range). */
static int32_t exp_diff(int32_t a, int32_t b) {
  int64_t d = (int64_t)a - (int64_t)b;
  return (int32_t)(d < -(1 << 20) ? -(1 << 20) : (d > (1 << 20) ? (1 << 20) : d));
}

static int check_params(const xst_s16_optim *p, uint32_t rng) {
  if (p->lr_multiplier < 0 || p->lr_shift < -62 || p->lr_shift > 62) return XST_ERR_PARAM;
  if (p->param_exp < -EXP_LIMIT || p->param_exp > EXP_LIMIT) return XST_ERR_PARAM;
  if (p->state_exp < -EXP_LIMIT || p->state_exp > EXP_LIMIT) return XST_ERR_PARAM;
  if (p->momentum_q15 < 0 || p->momentum_q15 > 32767) return XST_ERR_PARAM;
  if (rng == 0) return XST_ERR_PARAM;
  return XST_OK;
}

int sgd_s16_update(int32_t n, const xst_s16_optim *p, const int32_t *grad,
                   const int32_t *grad_exp, int16_t *param, uint32_t *rng) {
  if (n < 1) return XST_ERR_DIMS;
  int st = check_params(p, *rng);
  if (st) return st;
  const int32_t e = exp_diff(*grad_exp, p->param_exp);
  for (int32_t i = 0; i < n; i++) {
    if (grad[i] == 0) continue;
    const int64_t step = xst_sgd_step(grad[i], p->lr_multiplier, p->lr_shift, e, rng);
    param[i] = sat16((int64_t)param[i] - step);
  }
  return XST_OK;
}

/* lr * g in units of 2^(state_exp - 30): g * multiplier * 2^k, floored,
 * clamped to +-2^47 (2^17 state LSBs: beyond it the state saturates anyway). */
#define TERM_MAX ((int64_t)1 << 47)
static int64_t lr_term(int32_t g, int32_t multiplier, int64_t k) {
  const int64_t x = (int64_t)g * (int64_t)multiplier; /* |x| < 2^62 */
  int64_t t;
  if (k >= 0) {
    if (k > 47) t = x > 0 ? TERM_MAX : (x < 0 ? -TERM_MAX : 0);
    else if (x > (TERM_MAX >> k)) t = TERM_MAX;
    else if (x < -(TERM_MAX >> k)) t = -TERM_MAX;
    else t = x * ((int64_t)1 << k);
  } else {
    t = xst_floor_shr64(x, k < -63 ? 63 : (int)-k);
  }
  return t < -TERM_MAX ? -TERM_MAX : (t > TERM_MAX ? TERM_MAX : t);
}

int momentum_s16_update(int32_t n, const xst_s16_optim *p, const int32_t *grad,
                        const int32_t *grad_exp, int16_t *velocity,
                        int16_t *param, uint32_t *rng) {
  if (n < 1) return XST_ERR_DIMS;
  int st = check_params(p, *rng);
  if (st) return st;
  const int64_t k = (int64_t)p->lr_shift + (int64_t)*grad_exp - (int64_t)p->state_exp - 1;
  const int32_t R = p->param_exp - p->state_exp; /* velocity -> parameter LSBs: 2^-R */
  const int64_t mu = p->momentum_q15;
  uint32_t state = *rng;
  for (int32_t i = 0; i < n; i++) {
    const int32_t g = grad[i];
    const int32_t v = velocity[i];
    if (g == 0 && v == 0) continue;
    /* v' = sr(mu * v + lr * g) at 2^(state_exp - 30): |sum| < 2^45 + 2^47 + 2^30 */
    const uint32_t u1 = xst_xorshift32(&state);
    const int64_t sum = (int64_t)v * mu * 32768 + lr_term(g, p->lr_multiplier, k) + (int64_t)(u1 >> 2);
    const int16_t vn = sat16(xst_floor_shr64(sum, 30));
    velocity[i] = vn;
    /* w' = w - sr(v' * 2^-R) */
    const uint32_t u2 = xst_xorshift32(&state);
    int64_t step;
    if (R <= 0) step = (int64_t)vn * ((int64_t)1 << (-R > 17 ? 17 : -R));
    else if (R > 30) step = 0;
    else step = xst_floor_shr64((int64_t)vn * ((int64_t)1 << (30 - R)) + (int64_t)(u2 >> 2), 30);
    param[i] = sat16((int64_t)param[i] - step);
  }
  *rng = state;
  return XST_OK;
}
