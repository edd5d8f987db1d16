/*
 * fp32 optimizer baselines: SGD, momentum SGD and Adam over a float32
 * parameter vector (the reference points the integer optimizers are
 * measured against). One IEEE-754 binary32 operation per C operation, in
 * the order written, so the TypeScript reference (Math.fround after every
 * operation, src/core/reference/optim.ts) gives the same bits. That needs
 * the compiler not to fuse a multiply and an add (Xtensa and Cortex-M4F
 * have fused multiply-add instructions): the pragma below is
 * -ffp-contract=off for this file under GCC and clang; another compiler
 * must be given the equivalent flag. The
 * square root is computed with integers (xst_sqrt_f32) and correctly
 * rounded, so no libm is linked and a soft-float core (RV32IMC) agrees with
 * a hard-float one (Cortex-M4F) to the bit.
 */
#include "xst.h"

/* -ffp-contract=off for this file whatever the build's flags (Moddable's
 * ESP-IDF and nRF makefiles included): no fused multiply-add. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

typedef union {
  float f;
  uint32_t u;
} f32bits;

static uint32_t bits_of(float x) {
  f32bits b;
  b.f = x;
  return b.u;
}

static float float_of(uint32_t u) {
  f32bits b;
  b.u = u;
  return b.f;
}

float xst_f32_from_bits(int32_t bits) { return float_of((uint32_t)bits); }

int xst_f32_finite(float x) { return ((bits_of(x) >> 23) & 0xFFu) != 0xFFu; }

/* floor(sqrt(v)) and v - floor(sqrt(v))^2 for v < 2^62, bit by bit. */
static uint64_t isqrt64(uint64_t v, uint64_t *rem) {
  uint64_t r = 0, bit = (uint64_t)1 << 62;
  while (bit > v) bit >>= 2;
  while (bit) {
    if (v >= r + bit) {
      v -= r + bit;
      r = (r >> 1) + bit;
    } else {
      r >>= 1;
    }
    bit >>= 2;
  }
  *rem = v;
  return r;
}

/* sqrt(x) correctly rounded to nearest (ties to even), IEEE-754 binary32:
 * the bits sqrtf gives on a conforming FPU. */
float xst_sqrt_f32(float x) {
  const uint32_t u = bits_of(x);
  const uint32_t e_field = (u >> 23) & 0xFFu, frac = u & 0x7FFFFFu;
  if (e_field == 0xFFu) return (u >> 31) && frac == 0 ? float_of(0x7FC00000u) : x; /* NaN, +Inf; -Inf -> NaN */
  if ((u & 0x7FFFFFFFu) == 0) return x;                                              /* +-0 */
  if (u >> 31) return float_of(0x7FC00000u);                                         /* negative */
  /* x = m * 2^e, m an integer */
  uint64_t m;
  int32_t e;
  if (e_field == 0) {
    m = frac;
    e = -149;
  } else {
    m = frac | 0x800000u;
    e = (int32_t)e_field - 150;
  }
  if (e % 2 != 0) { /* make e even: sqrt(m * 2^e) = sqrt(m) * 2^(e/2) */
    m <<= 1;
    e -= 1;
  }
  int len = 0;
  for (uint64_t t = m; t; t >>= 1) len++;
  const int k = (49 - len + 1) / 2; /* m << 2k has 49 or 50 bits */
  m <<= 2 * k;
  uint64_t rem;
  uint64_t r = isqrt64(m, &rem); /* in [2^24, 2^25) */
  int32_t q = e / 2 - k;         /* sqrt(x) = (r + frac) * 2^q */
  /* round off the lowest bit: guard = r & 1, sticky = rem != 0 */
  uint64_t rr = r >> 1;
  if ((r & 1) && (rem != 0 || (rr & 1))) rr++;
  q += 1;
  if (rr == ((uint64_t)1 << 24)) {
    rr >>= 1;
    q += 1;
  }
  return float_of((uint32_t)(q + 150) << 23 | ((uint32_t)rr & 0x7FFFFFu));
}

int sgd_f32_update(int32_t n, float lr, const float *grad, float *param) {
  if (n < 1) return XST_ERR_DIMS;
  if (!xst_f32_finite(lr)) return XST_ERR_PARAM;
  for (int32_t i = 0; i < n; i++) {
    const float step = lr * grad[i];
    param[i] = param[i] - step;
  }
  return XST_OK;
}

int momentum_f32_update(int32_t n, float lr, float momentum, const float *grad,
                        float *velocity, float *param) {
  if (n < 1) return XST_ERR_DIMS;
  if (!xst_f32_finite(lr) || !xst_f32_finite(momentum)) return XST_ERR_PARAM;
  for (int32_t i = 0; i < n; i++) {
    const float decayed = momentum * velocity[i];
    const float v = decayed + grad[i];
    velocity[i] = v;
    const float step = lr * v;
    param[i] = param[i] - step;
  }
  return XST_OK;
}

int adam_f32_update(int32_t n, const xst_adam_f32 *h, const float *grad,
                    float *m, float *v, float *beta_powers, float *param) {
  if (n < 1) return XST_ERR_DIMS;
  if (!xst_f32_finite(h->lr) || !xst_f32_finite(h->eps) || !(h->eps > 0.0f)) return XST_ERR_PARAM;
  if (!(h->beta1 >= 0.0f && h->beta1 < 1.0f && h->beta2 >= 0.0f && h->beta2 < 1.0f)) return XST_ERR_PARAM;
  if (!(beta_powers[0] >= 0.0f && beta_powers[0] <= 1.0f && beta_powers[1] >= 0.0f && beta_powers[1] <= 1.0f)) {
    return XST_ERR_PARAM; /* also rejects NaN */
  }
  const float p1 = beta_powers[0] * h->beta1, p2 = beta_powers[1] * h->beta2;
  beta_powers[0] = p1;
  beta_powers[1] = p2;
  const float c1 = 1.0f - p1, c2 = 1.0f - p2; /* > 0: p <= beta < 1 */
  const float one_minus_b1 = 1.0f - h->beta1, one_minus_b2 = 1.0f - h->beta2;
  for (int32_t i = 0; i < n; i++) {
    const float g = grad[i];
    const float m1 = h->beta1 * m[i];
    const float m2 = one_minus_b1 * g;
    const float mi = m1 + m2;
    const float g2 = g * g;
    const float v1 = h->beta2 * v[i];
    const float v2 = one_minus_b2 * g2;
    const float vi = v1 + v2;
    m[i] = mi;
    v[i] = vi;
    const float m_hat = mi / c1;
    const float v_hat = vi / c2;
    const float den = xst_sqrt_f32(v_hat) + h->eps;
    const float num = h->lr * m_hat;
    const float step = num / den;
    param[i] = param[i] - step;
  }
  return XST_OK;
}
