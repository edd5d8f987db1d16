/*
 * Log-quantized momentum (LQM) for int8 weights: the buffered form
 * (lqm_s8_update, from an int32 gradient block) and the fused form
 * (fully_connected_s8_backward_weight_lqm: the weight gradient of each
 * element is produced and applied at once, no gradient buffer). Both run
 * every element through lqm_element(), so they agree to the bit. The fused
 * form with an int16 master copy (fully_connected_s8_backward_weight_lqm16,
 * op 26) is the same code with another write-back (lqm16_write_back).
 *
 * The rule, units and state format are in xst.h ("log-quantized momentum").
 * Per element, integer only and without a multiply: a bit-field read (a
 * cursor walks each row's packed fields in order), a table load of the
 * decayed momentum Q(m) - dec(Q(m)) (the shift of the code and the
 * shift-subtract of the decay, done once per call for the 2^bits field
 * values), a shift of the gradient (eta and the QAS factor as one
 * per-channel exponent), an add, one xorshift32 draw and shift for the
 * stochastic write-back, a leading-one count (Q, floor) and a bit-field
 * write. The gradient itself (fused form) is the only multiply, as in every
 * weight-gradient kernel.
 *
 * Fast paths, all bit-identical to visiting every element: an element whose
 * field and step are both zero changes nothing and draws no random number,
 * so it is skipped (a zero input, or a whole row whose output gradient is
 * zero: there all-zero state bytes are skipped 8 fields at a time).
 */
#include "xst.h"
#include "xst_fixed.h"
#include "weight_update_s8.h"

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

#if defined(__GNUC__)
#define LQM_INLINE static inline __attribute__((always_inline))
#else
#define LQM_INLINE static inline
#endif

/* Per-call constants (lqm_k, weight_update_s8.h): dq[f] lets an element
 * read its decayed momentum with one load instead of a shift, a decay and a
 * sign. */
static void lqm_consts(const xst_lqm *p, lqm_k *k) {
  k->bits = (int)p->bits;
  k->frac = (int)-p->emin;
  k->top_code = (int)(p->emax - p->emin + 1);
  k->field_mask = (1u << p->bits) - 1u;
  k->sign_bit = 1u << (p->bits - 1);
  const uint32_t code_mask = k->sign_bit - 1u;
  for (uint32_t f = 0; f <= k->field_mask; f++) {
    const uint32_t code = f & code_mask;
    int32_t mag = code ? (INT32_C(1) << (code - 1)) : 0; /* |Q(m)| <= 2^14 */
    if (p->decay) mag -= (mag + (INT32_C(1) << p->decay) - 1) >> p->decay; /* ceil(|q| / 2^d) */
    k->dq[f] = (f & k->sign_bit) ? -mag : mag;
  }
}

/* A cursor on the packed state: the field at bit o (0..7) of byte *p. Rows
 * are walked field by field (o += bits), so only the start of a row needs
 * the 64-bit position bits*k. */
typedef struct {
  uint8_t *p;
  int o;
} lqm_cur;

LQM_INLINE lqm_cur cur_at(uint8_t *state, int bits, uint64_t k) {
  const uint64_t at = (uint64_t)bits * k;
  lqm_cur c;
  c.p = state + (size_t)(at >> 3);
  c.o = (int)(at & 7u);
  return c;
}

/* The next field (may point one past the state's last byte; never read). */
LQM_INLINE void cur_next(lqm_cur *c, int bits) {
  c->o += bits;
  c->p += c->o >> 3;
  c->o &= 7;
}

/* bits <= 8: a field spans at most two bytes. */
LQM_INLINE uint32_t cur_get(const lqm_k *K, lqm_cur c) {
  uint32_t v = (uint32_t)c.p[0] >> c.o;
  if (c.o + K->bits > 8) v |= (uint32_t)c.p[1] << (8 - c.o);
  return v & K->field_mask;
}

LQM_INLINE void cur_set(const lqm_k *K, lqm_cur c, uint32_t v) {
  const uint32_t m = K->field_mask << c.o, x = v << c.o; /* < 2^16 */
  c.p[0] = (uint8_t)(((uint32_t)c.p[0] & ~m & 0xFFu) | (x & 0xFFu));
  if (c.o + K->bits > 8) c.p[1] = (uint8_t)(((uint32_t)c.p[1] & ~(m >> 8) & 0xFFu) | (x >> 8));
}

/* floor(log2 a) + 1 for a > 0 (CLZ where the compiler has it). */
LQM_INLINE int lqm_bit_length(uint32_t a) {
#if defined(__GNUC__)
  return 32 - __builtin_clz(a);
#else
  return xst_bit_length(a);
#endif
}

/* eta*g in momentum units: g * 2^S, S < 0 rounded to nearest (ties up),
 * saturated to +-2^30. */
LQM_INLINE int32_t lqm_scaled(int32_t g, int64_t S) {
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

/* The master write-back (res != NULL, op 26): master = 256 w + res in
 * 1/256 LSB, the step m~ (2^emin LSB units) added at that resolution,
 * stochastically rounded with the top frac - 8 bits of u when frac > 8,
 * exact (a shift up by 8 - frac) when frac <= 8; saturated at +-127 LSB;
 * then w = round(master / 256) (ties up) and res = master - 256 w. */
#define LQM16_MAX (127 * 256)
LQM_INLINE void lqm16_write_back(int32_t mt, int frac, uint32_t u, int8_t *w, int8_t *res) {
  const int32_t m = (int32_t)*w * 256 + (int32_t)*res; /* a shift; [-32640, 32639] */
  int32_t dm;
  if (frac >= 8) {
    const int32_t r = (int32_t)((u >> 1) >> (39 - frac)); /* the top frac - 8 bits of u */
    dm = xst_floor_shr32(mt + r, frac - 8);                /* mt + r < 2^31 */
  } else {
    /* |mt| >= 2^17 saturates the master as 2^17 does (|m| < 2^15). */
    uint32_t a = mt < 0 ? (uint32_t)0 - (uint32_t)mt : (uint32_t)mt;
    if (a > (UINT32_C(1) << 17)) a = UINT32_C(1) << 17;
    a <<= 8 - frac; /* <= 2^25 */
    dm = mt < 0 ? -(int32_t)a : (int32_t)a;
  }
  int32_t v = m + dm; /* |v| < 2^31 */
  v = v < -LQM16_MAX ? -LQM16_MAX : (v > LQM16_MAX ? LQM16_MAX : v);
  *w = (int8_t)xst_floor_shr32(v + 128, 8);
  *res = (int8_t)((int32_t)((uint32_t)(v + 128) & 0xFFu) - 128);
}

/* One element whose state field f (at cursor c) or step t = eta*g
 * (momentum units) is nonzero: a zero field with a zero step changes
 * nothing and draws nothing, so callers skip those. res: NULL for the int8
 * write-back (op 25), the residual byte for the master write-back (op 26);
 * a constant at every inlined call site. */
LQM_INLINE void lqm_element(const lqm_k *K, lqm_cur c, uint32_t f, int32_t t, int8_t *w, int8_t *res,
                            uint32_t *rng) {
  const int32_t mt = K->dq[f] - t; /* |mt| <= 2^14 + 2^30 */
  if (mt == 0) {
    cur_set(K, c, 0);
    return;
  }
  const uint32_t u = xst_xorshift32(rng);
  if (res) {
    lqm16_write_back(mt, K->frac, u, w, res);
  } else {
    const int32_t r = (int32_t)((u >> 1) >> (31 - K->frac)); /* the top frac bits of u (0 for frac 0) */
    const int32_t v = (int32_t)*w + xst_floor_shr32(mt + r, K->frac); /* mt + r < 2^31 */
    *w = (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
  }
  const uint32_t a = mt < 0 ? (uint32_t)0 - (uint32_t)mt : (uint32_t)mt;
  int code = lqm_bit_length(a); /* floor(log2 a) + 1 */
  if (code > K->top_code) code = K->top_code;
  cur_set(K, c, (uint32_t)code | (mt < 0 ? K->sign_bit : 0u));
}

/* Whether the 8 fields from a byte-aligned cursor (`bits` bytes) are all 0. */
LQM_INLINE int lqm_zero8(const uint8_t *p, int bits) {
  uint32_t any = 0;
  for (int j = 0; j < bits; j++) any |= p[j];
  return any == 0;
}

/* n elements from cursor c with a zero step (t = 0 for all): only nonzero
 * fields change. Runs of 8 fields starting on a byte boundary occupy
 * exactly `bits` bytes; all-zero runs are skipped whole. */
LQM_INLINE void lqm_row_no_step(const lqm_k *K, lqm_cur c, int32_t n, int8_t *w, int8_t *res, uint32_t *rng) {
  int32_t i = 0;
  while (i < n) {
    if (c.o == 0) {
      while (n - i >= 8 && lqm_zero8(c.p, K->bits)) {
        c.p += K->bits;
        i += 8;
      }
      if (i >= n) break;
    }
    const uint32_t f = cur_get(K, c);
    if (f) lqm_element(K, c, f, 0, &w[i], res ? &res[i] : 0, rng);
    cur_next(&c, K->bits);
    i++;
  }
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

/* n elements: weight element at + k*step (and its state field) with the
 * gradient g[k*gs] and step exponent S, k < n, in order. A zero field with
 * a zero step is skipped (it changes nothing and draws nothing). */
LQM_INLINE void lqm_run(const lqm_k *K, int64_t S, const int32_t *g, size_t gs, int32_t n, int8_t *w, uint8_t *state,
                        size_t at, size_t step, uint32_t *rng) {
  if (step == 1) {
    lqm_cur cur = cur_at(state, K->bits, at);
    int8_t *wr = w + at;
    for (int32_t k = 0; k < n; k++, cur_next(&cur, K->bits), g += gs) {
      const uint32_t f = cur_get(K, cur);
      const int32_t t = lqm_scaled(*g, S);
      if (f != 0 || t != 0) lqm_element(K, cur, f, t, &wr[k], 0, rng);
    }
    return;
  }
  for (int32_t k = 0; k < n; k++, at += step, g += gs) {
    const lqm_cur cur = cur_at(state, K->bits, at);
    const uint32_t f = cur_get(K, cur);
    const int32_t t = lqm_scaled(*g, S);
    if (f != 0 || t != 0) lqm_element(K, cur, f, t, &w[at], 0, rng);
  }
}

int lqm_s8_update(const xst_fc_dims *d, const xst_block *blk, const int32_t *grad, const int32_t *grad_exp,
                  const xst_lqm *p, uint8_t *state, int8_t *w, uint32_t *rng) {
  const uint64_t n = (uint64_t)d->in_features * (uint64_t)d->out_features;
  int st = check_common(d, blk, p, lqm_state_bytes(p->bits, n), rng);
  if (st) return st;
  lqm_k K;
  lqm_consts(p, &K);
  const int32_t IN = d->in_features, oc0 = blk->oc_begin, oc1 = blk->oc_end, ic0 = blk->ic_begin;
  const int32_t nic = blk->ic_end - ic0;
  const int64_t E = (int64_t)*grad_exp - p->emin;
  const int32_t *shift = p->shift;
  uint32_t s = *rng;
  for (int32_t c = oc0; c < oc1; c++) {
    const size_t start = (size_t)c * (size_t)IN + (size_t)ic0;
    lqm_run(&K, E + shift[c], grad + (size_t)(c - oc0) * (size_t)nic, 1, nic, w, state, start, 1, &s);
  }
  *rng = s;
  return XST_OK;
}

/* ---- runs of the fused conv / depthwise ops (39-40, weight_update_s8.h) ---- */

int lqm_s8_run_begin(lqm_s8_run *r, const xst_lqm *p, int32_t oc_begin, int32_t oc_end, int32_t grad_exp,
                     uint8_t *state, int8_t *w, const uint32_t *rng) {
  int st = lqm_check_params(p);
  if (st) return st;
  for (int32_t c = oc_begin; c < oc_end; c++) {
    if (p->shift[c] < -64 || p->shift[c] > 64) return XST_ERR_PARAM;
  }
  if (*rng == 0) return XST_ERR_PARAM;
  lqm_consts(p, &r->k);
  r->e = (int64_t)grad_exp - p->emin;
  r->shift = p->shift;
  r->state = state;
  r->w = w;
  r->rng = *rng;
  return XST_OK;
}

void lqm_s8_apply_run(void *ctx, int32_t c, size_t w_at, size_t w_step, const int32_t *g, size_t g_step, int32_t n) {
  lqm_s8_run *r = (lqm_s8_run *)ctx;
  lqm_run(&r->k, r->e + r->shift[c], g, g_step, n, r->w, r->state, w_at, w_step, &r->rng);
}

void lqm_s8_run_end(const lqm_s8_run *r, uint32_t *rng) {
  *rng = r->rng;
}

/* Steps of one row when rows == 1: g = gc * x with |gc| <= 128 (int8) and
 * |x| <= 255 (int8 + offset), so |g| < 2^15 and eta*g = lqm_scaled(g, S) is
 *   S in [0, 15]:   g * 2^S = (gc * 2^S) * x, exact (< 2^30, no saturation)
 *   S in [-15, -1]: floor((g + 2^(n-1)) / 2^n), n = -S, in 32 bits
 *   S <= -16:       0 for every g (0 < g + 2^(n-1) < 2^n), a no-step row
 *   S >= 16:        lqm_scaled itself.
 * `mode` is a constant at each call site (0, 1, 2 for the three stepped
 * forms), so each gets its own loop. */
LQM_INLINE void lqm_row1(const lqm_k *K, lqm_cur c, int mode, int32_t G, int n_sh, int64_t S, const int8_t *in,
                         int32_t input_offset, int32_t n, int8_t *w, int8_t *res, uint32_t *rng) {
  const int32_t half = mode == 1 ? (INT32_C(1) << (n_sh - 1)) : 0;
  for (int32_t i = 0; i < n; i++, cur_next(&c, K->bits)) {
    const int32_t x = (int32_t)in[i] + input_offset;
    const uint32_t f = cur_get(K, c);
    if (x == 0 && f == 0) continue; /* zero step, zero momentum */
    int32_t t;
    if (mode == 0) t = G * x;
    else if (mode == 1) t = xst_floor_shr32(G * x + half, n_sh);
    else t = lqm_scaled(G * x, S);
    if (f != 0 || t != 0) lqm_element(K, c, f, t, &w[i], res ? &res[i] : 0, rng);
  }
}

/* The fused kernel of ops 25 (res NULL) and 26 (res the residual tensor). */
LQM_INLINE int fc_lqm(const xst_fc_dims *d, const xst_block *blk, int32_t input_offset, const int8_t *grad_out,
                      const int32_t *grad_out_exp, const int8_t *in, const xst_lqm *p, uint8_t *state, int8_t *w,
                      int8_t *res, uint32_t *rng) {
  if (d->rows > 65535 || d->in_features > 65536 || d->out_features > (1 << 20)) return XST_ERR_DIMS;
  if (input_offset < -127 || input_offset > 128) return XST_ERR_PARAM;
  const uint64_t n = (uint64_t)d->in_features * (uint64_t)d->out_features;
  int st = check_common(d, blk, p, lqm_state_bytes(p->bits, n), rng);
  if (st) return st;
  lqm_k K;
  lqm_consts(p, &K);
  /* Locals, not reloads: every int8/uint8 store could alias *d and *blk. */
  const int32_t R = d->rows, IN = d->in_features, OUT = d->out_features;
  const int32_t oc0 = blk->oc_begin, oc1 = blk->oc_end, ic0 = blk->ic_begin, nic = blk->ic_end - ic0;
  const int64_t E = (int64_t)*grad_out_exp - p->emin;
  const int32_t *shift = p->shift;
  uint32_t s = *rng;
  for (int32_t c = oc0; c < oc1; c++) {
    const int64_t S = E + shift[c];
    const uint64_t start = (uint64_t)c * (uint64_t)IN + (uint64_t)ic0;
    int8_t *wr = w + start, *rr = res ? res + start : 0;
    const lqm_cur cur = cur_at(state, K.bits, start);
    if (R == 1) {
      const int32_t gc = grad_out[c];
      const int8_t *x = in + ic0;
      if (gc == 0 || S <= -16) lqm_row_no_step(&K, cur, nic, wr, rr, &s);
      else if (S < 0) lqm_row1(&K, cur, 1, gc, (int)-S, 0, x, input_offset, nic, wr, rr, &s);
      else if (S <= 15) lqm_row1(&K, cur, 0, gc * (INT32_C(1) << S), 0, 0, x, input_offset, nic, wr, rr, &s);
      else lqm_row1(&K, cur, 2, gc, 0, S, x, input_offset, nic, wr, rr, &s);
      continue;
    }
    lqm_cur at = cur;
    for (int32_t i = 0; i < nic; i++, cur_next(&at, K.bits)) {
      int32_t g = 0; /* |g| <= 65535 * 128 * 255 < 2^31 */
      const int8_t *go = grad_out + c, *x = in + ic0 + i;
      for (int32_t r = 0; r < R; r++, go += OUT, x += IN) g += (int32_t)*go * ((int32_t)*x + input_offset);
      const uint32_t f = cur_get(&K, at);
      const int32_t t = lqm_scaled(g, S);
      if (f != 0 || t != 0) lqm_element(&K, at, f, t, &wr[i], rr ? &rr[i] : 0, &s);
    }
  }
  *rng = s;
  return XST_OK;
}

int fully_connected_s8_backward_weight_lqm(const xst_fc_dims *d, const xst_block *blk, int32_t input_offset,
                                           const int8_t *grad_out, const int32_t *grad_out_exp, const int8_t *in,
                                           const xst_lqm *p, uint8_t *state, int8_t *w, uint32_t *rng) {
  return fc_lqm(d, blk, input_offset, grad_out, grad_out_exp, in, p, state, w, 0, rng);
}

int fully_connected_s8_backward_weight_lqm16(const xst_fc_dims *d, const xst_block *blk, int32_t input_offset,
                                             const int8_t *grad_out, const int32_t *grad_out_exp, const int8_t *in,
                                             const xst_lqm *p, uint8_t *state, int8_t *w, int8_t *residual,
                                             uint32_t *rng) {
  if (!residual) return XST_ERR_PARAM;
  return fc_lqm(d, blk, input_offset, grad_out, grad_out_exp, in, p, state, w, residual, rng);
}
