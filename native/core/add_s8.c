/*
 * Elementwise add, int8: the TFLite ADD forward (residual connections) and
 * the sum of two int8 gradients where the branches of a residual fork meet.
 *
 * Forward, as reference_integer_ops::Add: each input gets its offset, is
 * shifted left by left_shift (20) and scaled by its multiplier (< 1,
 * rounding right shift); the int32 sum is scaled by the output multiplier,
 * offset and clamped. |in + offset| <= 255 and left_shift <= 22 keep every
 * intermediate below 2^31. The parameters come from
 * src/core/tflite-params.ts (TFLite's Prepare).
 *
 * Backward: out = a + b in reals, so dL/da = dL/db = dL/dout: the output
 * gradient tensor (int8 + exponent) is passed on unchanged, after
 * activation_s8_backward when the forward had a clamp. No kernel.
 *
 * Gradient sum: real = qa*2^ea + qb*2^eb. Both operands are brought to a
 * common exponent e_w = max(min(ea, eb), top - 30), top = the leading-bit
 * position (bit_length(max|q|) + e) of the larger operand, so each term is
 * below 2^30 and the sum fits int32. When |ea - eb| <= 22, e_w = min(ea, eb)
 * and the sum is exact; otherwise the smaller-exponent operand is rounded
 * (half up) at 2^e_w first, 23 bits below the result's leading bit, and the
 * final rounding to int8 can differ from the correctly rounded sum by at
 * most 1 LSB (double rounding at a tie).
 */
#include "xst.h"
#include "xst_fixed.h"

#define XST_ADD_MAX_N (1 << 24)
#define XST_GRAD_EXP_LIMIT 1024

int add_s8_forward(int32_t n, const xst_add_quant *q, const int8_t *in1,
                   const int8_t *in2, int8_t *out, uint8_t *mask) {
  if (n < 1 || n > XST_ADD_MAX_N) return XST_ERR_DIMS;
  if (q->input1_offset < -127 || q->input1_offset > 128) return XST_ERR_PARAM;
  if (q->input2_offset < -127 || q->input2_offset > 128) return XST_ERR_PARAM;
  if (q->output_offset < -128 || q->output_offset > 127) return XST_ERR_PARAM;
  if (q->left_shift < 0 || q->left_shift > 22) return XST_ERR_PARAM;
  if (q->input1_multiplier < 0 || q->input2_multiplier < 0 || q->output_multiplier < 0) return XST_ERR_PARAM;
  if (q->input1_shift < -31 || q->input1_shift > 0 || q->input2_shift < -31 || q->input2_shift > 0 ||
      q->output_shift < -31 || q->output_shift > 0) {
    return XST_ERR_PARAM;
  }
  if (q->act_min < -128 || q->act_max > 127 || q->act_min > q->act_max) return XST_ERR_PARAM;
  for (int32_t k = 0; k < n; k++) {
    const int32_t v1 = ((int32_t)in1[k] + q->input1_offset) * (1 << q->left_shift);
    const int32_t v2 = ((int32_t)in2[k] + q->input2_offset) * (1 << q->left_shift);
    const int32_t s1 = xst_requantize(v1, q->input1_multiplier, q->input1_shift);
    const int32_t s2 = xst_requantize(v2, q->input2_multiplier, q->input2_shift);
    /* |s1|, |s2| <= 255 * 2^22, so the sum and the offset stay in int32 */
    const int32_t v = xst_requantize(s1 + s2, q->output_multiplier, q->output_shift) + q->output_offset;
    if (mask) {
      uint8_t bit = (uint8_t)(1u << (k & 7));
      if (v > q->act_min && v < q->act_max) mask[k >> 3] |= bit;
      else mask[k >> 3] &= (uint8_t)~bit;
    }
    out[k] = (int8_t)xst_clamp32(v, q->act_min, q->act_max);
  }
  return XST_OK;
}

static uint32_t maxabs8(int32_t n, const int8_t *x) {
  uint32_t m = 0;
  for (int32_t k = 0; k < n; k++) {
    uint32_t a = (uint32_t)(x[k] < 0 ? -(int32_t)x[k] : x[k]);
    if (a > m) m = a;
  }
  return m;
}

/* q * 2^sh: a left shift for sh >= 0 (the caller bounds the result below
 * 2^30), else a right shift rounding half up (0 beyond 30 places). */
static int32_t scale_pot(int32_t q, int32_t sh) {
  if (q == 0) return 0; /* an all-zero operand may have any exponent */
  if (sh >= 0) return q * (1 << sh);
  if (sh < -30) return 0; /* |q| <= 128: far below one unit */
  return xst_floor_shr32(q + (1 << (-sh - 1)), (int)-sh);
}

int add_s8_grad_sum(int32_t n, const int8_t *a, const int32_t *a_exp,
                    const int8_t *b, const int32_t *b_exp, int8_t *out,
                    int32_t *out_exp) {
  if (n < 1 || n > XST_ADD_MAX_N) return XST_ERR_DIMS;
  const int32_t ea = *a_exp, eb = *b_exp;
  if (ea < -XST_GRAD_EXP_LIMIT || ea > XST_GRAD_EXP_LIMIT || eb < -XST_GRAD_EXP_LIMIT || eb > XST_GRAD_EXP_LIMIT) {
    return XST_ERR_PARAM;
  }
  const uint32_t ma = maxabs8(n, a), mb = maxabs8(n, b);
  int32_t ew = ea < eb ? ea : eb;
  if (ma || mb) {
    const int32_t ta = ma ? xst_bit_length(ma) + ea : INT32_MIN / 2;
    const int32_t tb = mb ? xst_bit_length(mb) + eb : INT32_MIN / 2;
    const int32_t top = ta > tb ? ta : tb;
    if (top - 30 > ew) ew = top - 30;
  }
  const int32_t sa = ea - ew, sb = eb - ew; /* <= 30 - bit_length(max|q|) */
  uint32_t maxabs = 0;
  for (int32_t k = 0; k < n; k++) {
    const int32_t v = scale_pot(a[k], sa) + scale_pot(b[k], sb); /* |v| < 2^31 */
    uint32_t m = v < 0 ? (uint32_t)0 - (uint32_t)v : (uint32_t)v;
    if (m > maxabs) maxabs = m;
  }
  /* Normalise: the largest magnitude lands in [64, 127]. */
  const int s = maxabs ? xst_bit_length(maxabs) - 7 : 0;
  for (int32_t k = 0; k < n; k++) {
    const int32_t v = scale_pot(a[k], sa) + scale_pot(b[k], sb);
    int32_t r;
    if (s > 0) r = (int32_t)xst_floor_shr64((int64_t)v + ((int64_t)1 << (s - 1)), s);
    else r = v * (1 << -s);
    out[k] = (int8_t)xst_clamp32(r, -128, 127);
  }
  *out_exp = ew + s;
  return XST_OK;
}
