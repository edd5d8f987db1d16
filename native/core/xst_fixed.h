/*
 * Fixed-point helpers shared by the kernels (static inline, header only).
 *
 * Semantics follow TFLite's reference integer ops and CMSIS-NN's default
 * (double-rounding) requantisation. Arithmetic shifts of negative numbers
 * are written as floor divisions that C99 defines (xst_floor_shr*), so the
 * code has no implementation-defined or undefined behaviour.
 */
#ifndef XST_FIXED_H
#define XST_FIXED_H

#include <stddef.h>
#include <stdint.h>

/* floor(x / 2^n) for n in [0, 31]. */
static inline int32_t xst_floor_shr32(int32_t x, int n) {
  return x >= 0 ? (int32_t)(x >> n) : (int32_t)~(~x >> n);
}

/* floor(x / 2^n) for n in [0, 63]. */
static inline int64_t xst_floor_shr64(int64_t x, int n) {
  return x >= 0 ? (int64_t)(x >> n) : (int64_t)~(~x >> n);
}

/* (a * b * 2) >> 32 rounded half away from zero, saturating the one case
 * that overflows (INT32_MIN * INT32_MIN). gemmlowp's
 * SaturatingRoundingDoublingHighMul. */
static inline int32_t xst_sat_round_doubling_high_mul(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b;
  int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
  /* C99 division truncates toward zero, as gemmlowp requires. */
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero; exponent in
 * [0, 31]. gemmlowp's RoundingDivideByPOT. */
static inline int32_t xst_rounding_divide_by_pot(int32_t x, int exponent) {
  int32_t mask = (int32_t)((UINT32_C(1) << exponent) - 1u);
  int32_t remainder = x & mask;
  int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return xst_floor_shr32(x, exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier: x * m * 2^(shift - 31), with
 * shift > 0 a left shift (applied before the multiply, wrapping as the
 * reference does on two's complement hardware) and shift <= 0 a rounding
 * right shift after it. shift must lie in [-31, 30]. */
static inline int32_t xst_requantize(int32_t x, int32_t multiplier,
                                     int32_t shift) {
  int left = shift > 0 ? (int)shift : 0;
  int right = shift > 0 ? 0 : (int)-shift;
  int32_t shifted = (int32_t)((uint32_t)x << left);
  return xst_rounding_divide_by_pot(
      xst_sat_round_doubling_high_mul(shifted, multiplier), right);
}

/* xst_requantize for multiplier >= 0 (every caller's range), bit-identical,
 * in one 64-bit multiply-add and shifts. Why it is exact:
 *  - with m >= 0 the saturating case cannot occur and gemmlowp's doubling
 *    high multiply is floor((ab + 2^30) / 2^31) for either sign of ab (for
 *    ab < 0 its truncated (ab + 1 - 2^30) / 2^31 is that ceiling-as-floor);
 *  - RoundingDivideByPOT(v, e), e >= 1, is floor((v + 2^(e-1) - [v < 0]) /
 *    2^e), and nested floors of divisions by positive integers compose, so
 *    the two roundings are one: floor((ab + 2^30 + (2^(e-1) - [v<0]) 2^31) /
 *    2^(31+e));
 *  - [v < 0] may be replaced by [x < 0]: they differ only when ab lies in
 *    [-2^30, -1], where v = 0 and both choices give 0.
 * For e >= 1 the shift by 31 + e >= 32 is the high word shifted by e - 1.
 * tests: native/tests/test_core.c compares it with xst_requantize. */
static inline int32_t xst_requantize_fast(int32_t x, int32_t multiplier,
                                          int32_t shift) {
  if (shift < 0) {
    const int e = (int)-shift; /* 1..31 */
    const int64_t round = ((int64_t)1 << 30) + ((int64_t)1 << (30 + e)) -
                          (x < 0 ? ((int64_t)1 << 31) : 0);
    const int64_t t = (int64_t)x * multiplier + round; /* |t| < 2^63 */
    return xst_floor_shr32((int32_t)xst_floor_shr64(t, 32), e - 1);
  }
  const int32_t shifted = (int32_t)((uint32_t)x << shift);
  return (int32_t)xst_floor_shr64((int64_t)shifted * multiplier + ((int64_t)1 << 30), 31);
}

static inline int32_t xst_clamp32(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* Marsaglia xorshift32 (13, 17, 5). The state must never be 0. */
static inline uint32_t xst_xorshift32(uint32_t *state) {
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  *state = x;
  return x;
}

/* Number of significant bits of a non-negative value (0 for 0). */
static inline int xst_bit_length(uint32_t v) {
  int n = 0;
  while (v) { n++; v >>= 1; }
  return n;
}

#define XST_SGD_STEP_MAX INT64_C(0x7FFFFFFF)

/* One stochastically rounded SGD step: floor((g * m + r) / 2^R) with
 * R = 31 - shift - grad_exp and r uniform in [0, 2^R) drawn from *rng
 * (one draw per call). R < 0 scales up with saturation; R > 62 gives 0.
 * The result is clamped to +-XST_SGD_STEP_MAX. Callers skip g == 0 (the
 * step is 0 and no random number is drawn). */
static inline int64_t xst_sgd_step(int32_t g, int32_t m, int32_t shift,
                                   int32_t grad_exp, uint32_t *rng) {
  int64_t x = (int64_t)g * (int64_t)m; /* |x| < 2^62 */
  int64_t R = 31 - (int64_t)shift - (int64_t)grad_exp;
  uint32_t u = xst_xorshift32(rng);
  int64_t step;
  if (R <= 0) {
    int64_t up = -R;
    if (up >= 32) {
      step = x > 0 ? XST_SGD_STEP_MAX : -XST_SGD_STEP_MAX;
    } else {
      int64_t lim = INT64_MAX >> up; /* check before scaling: no overflow */
      if (x > lim || x < -lim) {
        step = x > 0 ? XST_SGD_STEP_MAX : -XST_SGD_STEP_MAX;
      } else {
        step = x * ((int64_t)1 << up);
      }
    }
  } else if (R > 62) {
    step = 0;
  } else {
    uint64_t r = R <= 32 ? (uint64_t)(u >> (32 - R)) : ((uint64_t)u << (R - 32));
    step = xst_floor_shr64(x + (int64_t)r, (int)R);
  }
  if (step > XST_SGD_STEP_MAX) step = XST_SGD_STEP_MAX;
  if (step < -XST_SGD_STEP_MAX) step = -XST_SGD_STEP_MAX;
  return step;
}

/* The common case of xst_sgd_step, R = 31 - shift - grad_exp in [1, 62],
 * for a loop over one output channel (R is constant along it): one 64-bit
 * multiply-add and shift, r = floor(u * 2^(R-32)) as there. It returns the
 * updated int8 weight; xst_sgd_step's +-2^31 clamp of the step cannot change
 * a weight clamped to [-127, 127], so the two agree to the bit. */
static inline int xst_sgd_fast_ok(int64_t R) { return R >= 1 && R <= 62; }

static inline int8_t xst_sgd_s8_fast(int8_t w, int32_t g, int32_t m, int R, uint32_t *state) {
  const uint64_t u = (uint64_t)xst_xorshift32(state) << 32;
  const int64_t x = (int64_t)g * m + (int64_t)(u >> (64 - R));
  const int64_t v = (int64_t)w - xst_floor_shr64(x, R);
  return (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
}

/* Block floating point (the activation-gradient format): writes acc[0..n)
 * scaled by 2^-s into int8, rounding half up, with s chosen so the largest
 * magnitude lands in [64, 127]; returns s (negative: scaled up). Needs
 * |acc[k]| < 2^30, which every caller's sum bound guarantees. */
static inline int xst_normalize_s8(const int32_t *acc, size_t n, int8_t *out) {
  uint32_t maxabs = 0;
  for (size_t k = 0; k < n; k++) {
    uint32_t m = acc[k] < 0 ? (uint32_t)0 - (uint32_t)acc[k] : (uint32_t)acc[k];
    if (m > maxabs) maxabs = m;
  }
  const int s = maxabs ? xst_bit_length(maxabs) - 7 : 0;
  for (size_t k = 0; k < n; k++) {
    int32_t v;
    if (s > 0) v = xst_floor_shr32(acc[k] + (1 << (s - 1)), s);
    else v = acc[k] * (1 << -s);
    out[k] = (int8_t)xst_clamp32(v, -128, 127);
  }
  return s;
}

/* Arm cores with the DSP extension (not XST_PORTABLE): xst_sgd_s8_fast for
 * R in [32, 62], s = R - 32, in a few instructions. r = u 2^s exactly there,
 * so hi:lo = u << s (LSL and LSR by 32 - s; a register LSR by 32 gives 0),
 * SMLAL adds g m (|g m + r| < 2^63), and floor((g m + r) / 2^R) is the high
 * word shifted right by s. The weight update saturates (QSUB, then SSAT to
 * [-128, 127] and -128 -> -127): the same clamp as the reference's 64-bit
 * one. Bit-identical to xst_sgd_s8_fast; callers pass s and 32 - s. */
#if defined(__ARM_FEATURE_DSP) && !defined(XST_PORTABLE)
#define XST_SGD_DSP 1
static inline int xst_sgd_dsp_ok(int64_t R) { return R >= 32 && R <= 62; }
static inline int8_t xst_sgd_s8_dsp(int8_t w, int32_t g, int32_t m, int32_t s, int32_t s32, uint32_t *state) {
  const uint32_t u = xst_xorshift32(state);
  uint32_t lo;
  int32_t hi, v;
  __asm__("lsl %[lo], %[u], %[s]\n\t"
          "lsr %[hi], %[u], %[s32]\n\t"
          "smlal %[lo], %[hi], %[g], %[m]\n\t"
          "asr %[hi], %[hi], %[s]\n\t"
          "qsub %[v], %[w], %[hi]\n\t"
          "ssat %[v], #8, %[v]"
          : [lo] "=&r"(lo), [hi] "=&r"(hi), [v] "=&r"(v)
          : [u] "r"(u), [s] "r"(s), [s32] "r"(s32), [g] "r"(g), [m] "r"(m), [w] "r"((int32_t)w)
          : "cc");
  return (int8_t)(v < -127 ? -127 : v);
}
#else
#define XST_SGD_DSP 0
#endif

/* sgd_s8_update along one run of n weights that share a learning rate:
 * for k < n with g[k*gs] != 0, in k order (one xorshift32 draw each),
 *   w[k*ws] = clamp(w[k*ws] - floor((g*m + r) / 2^R), -127, 127),
 * R = 31 - shift - grad_exp (xst_sgd_step; the DSP and fast forms where R
 * allows, bit-identical to it). The fused conv and depthwise weight-gradient
 * updates apply a gradient tile through it. */
static inline void xst_sgd_s8_run(int8_t *w, size_t ws, const int32_t *g, size_t gs, int32_t n, int32_t m,
                                  int32_t shift, int32_t grad_exp, uint32_t *rng) {
  const int64_t R = 31 - (int64_t)shift - (int64_t)grad_exp;
#if XST_SGD_DSP
  if (xst_sgd_dsp_ok(R)) {
    uint32_t state = *rng;
    const int32_t s = (int32_t)R - 32, s32 = 64 - (int32_t)R;
    for (int32_t k = 0; k < n; k++, w += ws, g += gs) {
      if (*g != 0) *w = xst_sgd_s8_dsp(*w, *g, m, s, s32, &state);
    }
    *rng = state;
    return;
  }
#endif
  if (xst_sgd_fast_ok(R)) {
    uint32_t state = *rng;
    for (int32_t k = 0; k < n; k++, w += ws, g += gs) {
      if (*g != 0) *w = xst_sgd_s8_fast(*w, *g, m, (int)R, &state);
    }
    *rng = state;
    return;
  }
  for (int32_t k = 0; k < n; k++, w += ws, g += gs) {
    if (*g == 0) continue;
    const int64_t v = (int64_t)*w - xst_sgd_step(*g, m, shift, grad_exp, rng);
    *w = (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
  }
}

#endif /* XST_FIXED_H */
