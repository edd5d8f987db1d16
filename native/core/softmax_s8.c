/*
 * Softmax, int8 in and out (TFLite SOFTMAX, int8 path of
 * reference_ops::Softmax; CMSIS-NN arm_softmax_s8 computes the same bits).
 *
 * in (rows, depth) int8 with any scale; out (rows, depth) int8 with scale
 * 1/256 and zero point -128. Per row: diff = in - max(row); entries with
 * diff < diff_min give -128 (exp below the output resolution); the others
 * are scaled to Q5.26 by input_multiplier << input_left_shift (beta * s_in),
 * exponentiated with gemmlowp's exp_on_negative_values (Q0.31 result),
 * summed in Q12.19, and multiplied by the reciprocal of the sum (gemmlowp's
 * one_over_one_plus_x_for_x_in_0_1 Newton iteration) with a rounding shift
 * to 8 bits. The gemmlowp fixed-point helpers are written out below with
 * the same rounding; every add that gemmlowp leaves unchecked wraps here
 * (two's complement, as on the targets) instead of being undefined.
 *
 * Bounds: each exp term is <= 2^19 in Q12.19 and depth <= 511, so the sum
 * is < 2^28 and the output shift 31 - 8 + (12 - clz(sum)) lies in [23, 31].
 * The parameter check requires min(-diff_min, 255) << input_left_shift to
 * fit int32, which TFLite's CalculateInputRadius guarantees.
 */
#include "xst.h"
#include "xst_fixed.h"

#define XST_SOFTMAX_MAX_DEPTH 511
#define XST_SOFTMAX_MAX_ROWS (1 << 24)

static int32_t add_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static int32_t sub_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
static int32_t mul(int32_t a, int32_t b) { return xst_sat_round_doubling_high_mul(a, b); }

/* gemmlowp SaturatingRoundingMultiplyByPOT<e>, e in [1, 30]. */
static int32_t sat_shl(int32_t x, int e) {
  const int32_t threshold = (int32_t)((UINT32_C(1) << (31 - e)) - 1u);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return x * (1 << e);
}

/* gemmlowp RoundingHalfSum: (a + b) / 2 rounded half away from zero. */
static int32_t rounding_half_sum(int32_t a, int32_t b) {
  const int64_t sum = (int64_t)a + (int64_t)b;
  return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8. */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
  const int32_t constant_term = 1895147668;     /* exp(-1/8), Q0.31 */
  const int32_t constant_1_over_3 = 715827883;  /* 1/3, Q0.31 */
  const int32_t x = add_wrap(a, 1 << 28);       /* a + 1/8 */
  const int32_t x2 = mul(x, x);
  const int32_t x3 = mul(x2, x);
  const int32_t x4 = mul(x2, x2);
  const int32_t x4_over_4 = xst_rounding_divide_by_pot(x4, 2);
  const int32_t poly = xst_rounding_divide_by_pot(add_wrap(mul(add_wrap(x4_over_4, x3), constant_1_over_3), x2), 1);
  return add_wrap(constant_term, mul(constant_term, add_wrap(x, poly)));
}

/* exp(a) for a <= 0 in Q5.26, result Q0.31 (gemmlowp exp_on_negative_values
 * with 5 integer bits): exp of a mod 1/4 times exp(-2^k) for each set bit k
 * of the rest. */
static int32_t exp_on_negative_values_q5(int32_t a) {
  const int32_t one_quarter = 1 << 24;
  const int32_t a_mod_quarter_minus_quarter = (int32_t)((uint32_t)a & (uint32_t)(one_quarter - 1)) - one_quarter;
  int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(sat_shl(a_mod_quarter_minus_quarter, 5));
  const uint32_t remainder = (uint32_t)sub_wrap(a_mod_quarter_minus_quarter, a);
  /* exp(-2^k) in Q0.31 for k = -2 .. 4, selected by bit 26 + k */
  static const int32_t kMultiplier[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  for (int k = 0; k < 7; k++) {
    if (remainder & (UINT32_C(1) << (24 + k))) result = mul(result, kMultiplier[k]);
  }
  return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out (Newton-Raphson, 3 steps in
 * Q2.29). */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a) {
  const int32_t half_denominator = rounding_half_sum(a, INT32_MAX);
  const int32_t constant_48_over_17 = 1515870810;
  const int32_t constant_neg_32_over_17 = -1010580540;
  int32_t x = add_wrap(constant_48_over_17, mul(half_denominator, constant_neg_32_over_17));
  for (int i = 0; i < 3; i++) {
    const int32_t half_denominator_times_x = mul(half_denominator, x);
    const int32_t one_minus = sub_wrap(1 << 29, half_denominator_times_x);
    x = add_wrap(x, sat_shl(mul(x, one_minus), 2));
  }
  return sat_shl(x, 1);
}

int softmax_s8_forward(int32_t rows, int32_t depth,
                       const xst_softmax_quant *q, const int8_t *in,
                       int8_t *out) {
  if (rows < 1 || rows > XST_SOFTMAX_MAX_ROWS || depth < 1 || depth > XST_SOFTMAX_MAX_DEPTH) return XST_ERR_DIMS;
  if (q->input_multiplier < 0 || q->input_left_shift < 0 || q->input_left_shift > 31 || q->diff_min > 0) {
    return XST_ERR_PARAM;
  }
  const int64_t radius = q->diff_min < -255 ? 255 : -(int64_t)q->diff_min;
  if ((radius << q->input_left_shift) > INT32_MAX) return XST_ERR_PARAM;
  const int64_t scale = (int64_t)1 << q->input_left_shift;
  for (int32_t r = 0; r < rows; r++) {
    const int8_t *x = in + (size_t)r * depth;
    int8_t *y = out + (size_t)r * depth;
    int32_t max = -128;
    for (int32_t c = 0; c < depth; c++) max = x[c] > max ? x[c] : max;
    int32_t sum = 0; /* Q12.19, < 511 * 2^19 */
    for (int32_t c = 0; c < depth; c++) {
      const int32_t diff = (int32_t)x[c] - max;
      if (diff < q->diff_min) continue;
      const int32_t scaled = mul((int32_t)(diff * scale), q->input_multiplier);
      sum += xst_rounding_divide_by_pot(exp_on_negative_values_q5(scaled), 12);
    }
    /* gemmlowp GetReciprocal: sum = (1 + m) * 2^bits_over_unit, m in [0, 1) */
    const int headroom_plus_one = 32 - xst_bit_length((uint32_t)sum);
    const int bits_over_unit = 12 - headroom_plus_one;
    const int32_t m = (int32_t)(((uint32_t)sum << headroom_plus_one) - (UINT32_C(1) << 31));
    const int32_t shifted_scale = one_over_one_plus_x_for_x_in_0_1(m);
    const int exponent = bits_over_unit + 31 - 8; /* [23, 31] */
    for (int32_t c = 0; c < depth; c++) {
      const int32_t diff = (int32_t)x[c] - max;
      if (diff < q->diff_min) {
        y[c] = -128;
        continue;
      }
      const int32_t scaled = mul((int32_t)(diff * scale), q->input_multiplier);
      const int32_t e = exp_on_negative_values_q5(scaled);
      const int32_t v = xst_rounding_divide_by_pot(mul(shifted_scale, e), exponent) - 128;
      y[c] = (int8_t)xst_clamp32(v, -128, 127);
    }
  }
  return XST_OK;
}
