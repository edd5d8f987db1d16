/*
 * Log-quantized momentum (LQM) for int8 weights: the buffered form
 * (lqm_s8_update, from an int32 gradient block) and the fused form
 * (fully_connected_s8_backward_weight_lqm: the weight gradient of each
 * element is produced and applied at once, no gradient buffer). Both run
 * every element through lqm_element(), so they agree to the bit.
 *
 * The rule, units and state format are in xst.h ("log-quantized momentum").
 * Per element, integer only and without a multiply: a bit-field read, a
 * shift of the code, a shift-subtract (decay), a shift of the gradient
 * (eta and the QAS factor as one per-channel exponent), an add, one
 * xorshift32 draw and shift for the stochastic write-back, a leading-one
 * count (Q, floor) and a bit-field write. The gradient itself (fused form)
 * is the only multiply, as in every weight-gradient kernel.
 */
#include "xst.h"
#include "xst_fixed.h"

#define LQM_T_MAX (INT32_C(1) << 30) /* |eta*g| saturates here */

int lqm_check_params(const xst_lqm *p) {
  if (p->bits < 2 || p->bits > 5) return XST_ERR_PARAM;
  if (p->emin < -24 || p->emin > 0) return XST_ERR_PARAM;
  const int32_t top = p->emin + (INT32_C(1) << (p->bits - 1)) - 2;
  if (p->emax < p->emin || p->emax > 6 || p->emax > top) return XST_ERR_PARAM;
  if (p->decay < 0 || p->decay > 15) return XST_ERR_PARAM;
  return XST_OK;
}

uint64_t lqm_state_bytes(int32_t bits, uint64_t n) {
  return ((uint64_t)bits * n + 7u) / 8u;
}

/* bits-wide field at bit offset bits*k (bits <= 8: at most two bytes). */
static inline uint32_t field_get(const uint8_t *s, uint64_t k, int bits) {
  const uint64_t at = (uint64_t)bits * k;
  const size_t b = (size_t)(at >> 3);
  const int o = (int)(at & 7u);
  uint32_t v = (uint32_t)s[b] >> o;
  if (o + bits > 8) v |= (uint32_t)s[b + 1] << (8 - o);
  return v & ((1u << bits) - 1u);
}

static inline void field_set(uint8_t *s, uint64_t k, int bits, uint32_t v) {
  const uint64_t at = (uint64_t)bits * k;
  const size_t b = (size_t)(at >> 3);
  const int o = (int)(at & 7u);
  const uint32_t mask = (1u << bits) - 1u;
  const uint32_t cur = (uint32_t)s[b] | (o + bits > 8 ? (uint32_t)s[b + 1] << 8 : 0u);
  const uint32_t nv = (cur & ~(mask << o)) | ((v & mask) << o);
  s[b] = (uint8_t)(nv & 0xFFu);
  if (o + bits > 8) s[b + 1] = (uint8_t)(nv >> 8);
}

/* eta*g in momentum units: g * 2^S, S < 0 rounded to nearest (ties up),
 * saturated to +-2^30. */
static inline int32_t lqm_scaled(int32_t g, int64_t S) {
  if (g == 0) return 0;
  if (S >= 0) {
    if (S >= 31) return g > 0 ? LQM_T_MAX : -LQM_T_MAX;
    const int64_t v = (int64_t)g * ((int64_t)1 << S);
    return v > LQM_T_MAX ? LQM_T_MAX : (v < -LQM_T_MAX ? -LQM_T_MAX : (int32_t)v);
  }
  if (S < -32) return 0;
  const int n = (int)-S; /* 1..32 */
  return (int32_t)xst_floor_shr64((int64_t)g + ((int64_t)1 << (n - 1)), n);
}

/* Per-call constants. */
typedef struct {
  int bits, frac, decay, top_code;
  uint32_t code_mask, sign_bit;
} lqm_k;

static lqm_k lqm_consts(const xst_lqm *p) {
  lqm_k k;
  k.bits = (int)p->bits;
  k.frac = (int)-p->emin;
  k.decay = (int)p->decay;
  k.top_code = (int)(p->emax - p->emin + 1);
  k.code_mask = (1u << (p->bits - 1)) - 1u;
  k.sign_bit = 1u << (p->bits - 1);
  return k;
}

/* One element: state field k, weight *w, step t = eta*g (momentum units). */
static inline void lqm_element(const lqm_k *K, uint8_t *state, uint64_t k, int32_t t, int8_t *w,
                               uint32_t *rng) {
  const uint32_t f = field_get(state, k, K->bits);
  if (f == 0 && t == 0) return; /* zero momentum, zero step: nothing changes */
  const uint32_t code = f & K->code_mask;
  int32_t mag = code ? (INT32_C(1) << (code - 1)) : 0; /* |Q(m)| <= 2^14 */
  if (K->decay) mag -= (mag + (INT32_C(1) << K->decay) - 1) >> K->decay; /* ceil(|q| / 2^d) */
  const int32_t dq = (f & K->sign_bit) ? -mag : mag;
  const int32_t mt = dq - t; /* |mt| <= 2^14 + 2^30 */
  if (mt == 0) {
    field_set(state, k, K->bits, 0);
    return;
  }
  const uint32_t u = xst_xorshift32(rng);
  const int32_t r = K->frac ? (int32_t)(u >> (32 - K->frac)) : 0;
  const int32_t v = (int32_t)*w + xst_floor_shr32(mt + r, K->frac); /* mt + r < 2^31 */
  *w = (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
  const uint32_t a = mt < 0 ? (uint32_t)0 - (uint32_t)mt : (uint32_t)mt;
  int c = xst_bit_length(a); /* floor(log2 a) + 1 */
  if (c > K->top_code) c = K->top_code;
  field_set(state, k, K->bits, (uint32_t)c | (mt < 0 ? K->sign_bit : 0u));
}

static int check_common(const xst_fc_dims *d, const xst_block *blk, const xst_lqm *p, uint64_t state_bytes,
                        const uint32_t *rng) {
  if (d->in_features < 1 || d->out_features < 1 || d->rows < 1) return XST_ERR_DIMS;
  if (blk->oc_begin < 0 || blk->oc_begin >= blk->oc_end || blk->oc_end > d->out_features) return XST_ERR_RANGE;
  if (blk->ic_begin < 0 || blk->ic_begin >= blk->ic_end || blk->ic_end > d->in_features) return XST_ERR_RANGE;
  int st = lqm_check_params(p);
  if (st) return st;
  if (state_bytes != lqm_state_bytes(p->bits, (uint64_t)d->in_features * (uint64_t)d->out_features))
    return XST_ERR_DIMS;
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    if (p->shift[c] < -64 || p->shift[c] > 64) return XST_ERR_PARAM;
  }
  if (*rng == 0) return XST_ERR_PARAM;
  return XST_OK;
}

int lqm_s8_update(const xst_fc_dims *d, const xst_block *blk, const int32_t *grad, const int32_t *grad_exp,
                  const xst_lqm *p, uint8_t *state, int8_t *w, uint32_t *rng) {
  const uint64_t n = (uint64_t)d->in_features * (uint64_t)d->out_features;
  int st = check_common(d, blk, p, lqm_state_bytes(p->bits, n), rng);
  if (st) return st;
  const lqm_k K = lqm_consts(p);
  const int32_t nic = blk->ic_end - blk->ic_begin;
  uint32_t s = *rng;
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    const int64_t S = (int64_t)*grad_exp + p->shift[c] - p->emin;
    const int32_t *g = grad + (size_t)(c - blk->oc_begin) * (size_t)nic;
    const uint64_t row = (uint64_t)c * (uint64_t)d->in_features;
    for (int32_t i = blk->ic_begin; i < blk->ic_end; i++) {
      lqm_element(&K, state, row + (uint64_t)i, lqm_scaled(g[i - blk->ic_begin], S), &w[row + (uint64_t)i], &s);
    }
  }
  *rng = s;
  return XST_OK;
}

int fully_connected_s8_backward_weight_lqm(const xst_fc_dims *d, const xst_block *blk, int32_t input_offset,
                                           const int8_t *grad_out, const int32_t *grad_out_exp, const int8_t *in,
                                           const xst_lqm *p, uint8_t *state, int8_t *w, uint32_t *rng) {
  if (d->rows > 65535 || d->in_features > 65536 || d->out_features > (1 << 20)) return XST_ERR_DIMS;
  if (input_offset < -127 || input_offset > 128) return XST_ERR_PARAM;
  const uint64_t n = (uint64_t)d->in_features * (uint64_t)d->out_features;
  int st = check_common(d, blk, p, lqm_state_bytes(p->bits, n), rng);
  if (st) return st;
  const lqm_k K = lqm_consts(p);
  const int32_t IN = d->in_features, OUT = d->out_features;
  uint32_t s = *rng;
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    const int64_t S = (int64_t)*grad_out_exp + p->shift[c] - p->emin;
    const uint64_t row = (uint64_t)c * (uint64_t)IN;
    if (d->rows == 1) {
      const int32_t gc = grad_out[c];
      for (int32_t i = blk->ic_begin; i < blk->ic_end; i++) {
        const int32_t g = gc * ((int32_t)in[i] + input_offset);
        lqm_element(&K, state, row + (uint64_t)i, lqm_scaled(g, S), &w[row + (uint64_t)i], &s);
      }
      continue;
    }
    for (int32_t i = blk->ic_begin; i < blk->ic_end; i++) {
      int32_t g = 0; /* |g| <= 65535 * 128 * 255 < 2^31 */
      for (int32_t r = 0; r < d->rows; r++) {
        g += (int32_t)grad_out[(size_t)r * (size_t)OUT + (size_t)c] *
             ((int32_t)in[(size_t)r * (size_t)IN + (size_t)i] + input_offset);
      }
      lqm_element(&K, state, row + (uint64_t)i, lqm_scaled(g, S), &w[row + (uint64_t)i], &s);
    }
  }
  *rng = s;
  return XST_OK;
}
