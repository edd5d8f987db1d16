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
 * square root is correctly rounded (IEEE-754 requires it of sqrt), so no
 * libm is linked: on x86-64 (the Node addon) it is the SSE2 instruction,
 * elsewhere an integer computation (xst_sqrt_f32_soft), and a soft-float
 * core (RV32IMC) agrees with a hard-float one (Cortex-M4F) and with the
 * host to the bit. The host C tests compare the two on every run.
 */
#include "xst.h"

#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#define XST_F32_VIA_F64 1
#endif

/* One binary32 operation each: f32_mul(wide, a, b) is the float32 product
 * either way. On x86-64 (the Node addon), with wide set, the operation is
 * done in double and rounded once to float: the same bits (for + - * / and
 * sqrt, rounding twice is harmless when the wide format has at least 2p + 2
 * significand bits: 53 >= 2 * 24 + 2), and it does not stall on float32
 * subnormals, which x86's float32 arithmetic handles by a microcode assist
 * on every subnormal operand or result (a float32 subnormal is a normal
 * double). The double path is ~4x slower on normal numbers here, so the
 * loops take it only for the elements that may meet a subnormal (tiny());
 * either path gives the same bits, so that choice is only about speed.
 * Measured on MNIST steps: momentum 2.0 ms a step with float32 only, 0.6
 * with the choice; Adam 3.7 -> see bench/results/optim.json. Elsewhere
 * (Cortex-M4F, Xtensa, soft-float RV32) plain float32 operations. */
#ifdef XST_F32_VIA_F64
/* The empty asm keeps the double: GCC would otherwise narrow the operation
 * back to float32 (it knows the result is the same). */
static inline float f32_round(double d) {
  __asm__("" : "+x"(d));
  return (float)d;
}
#define F32_OP(name, op)                                            \
  static inline float name(int wide, float a, float b) {            \
    return wide ? f32_round((double)a op (double)b) : a op b;       \
  }
#else
#define F32_OP(name, op) \
  static inline float name(int wide, float a, float b) { return (void)wide, a op b; }
#endif
F32_OP(f32_mul, *)
F32_OP(f32_add, +)
F32_OP(f32_sub, -)
F32_OP(f32_div, /)

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

/* 0 < |x| < 2^(e_field - 127): state that small may lead to a subnormal
 * operand or result within one update (zeros cost nothing). */
static inline int tiny(float x, uint32_t e_field) { return (bits_of(x) & 0x7FFFFFFFu) - 1u < (e_field << 23) - 1u; }
#define TINY_STATE 27u /* 2^-100 */
#define TINY_GRAD 69u  /* 2^-58: g * g * (1 - beta2) stays normal */

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
 * the bits sqrtf gives on a conforming FPU, with integers only (about 140 ns
 * on x86: Adam's update is 8x slower than with the instruction). */
float xst_sqrt_f32_soft(float x) {
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

/* The SSE2 instruction on x86-64 (in double, rounded once more to float:
 * the same bits, see f32_mul; no subnormal stall), else the integer path.
 * NaN and negative inputs give a NaN either way (the payload may differ). */
float xst_sqrt_f32(float x) {
#ifdef XST_F32_VIA_F64
  return f32_round(_mm_cvtsd_f64(_mm_sqrt_sd(_mm_setzero_pd(), _mm_set_sd((double)x))));
#else
  return xst_sqrt_f32_soft(x);
#endif
}

int sgd_f32_update(int32_t n, float lr, const float *grad, float *param) {
  if (n < 1) return XST_ERR_DIMS;
  if (!xst_f32_finite(lr)) return XST_ERR_PARAM;
  for (int32_t i = 0; i < n; i++) {
    const int wide = tiny(grad[i], TINY_STATE) || tiny(param[i], TINY_STATE);
    const float step = f32_mul(wide, lr, grad[i]);
    param[i] = f32_sub(wide, param[i], step);
  }
  return XST_OK;
}

int momentum_f32_update(int32_t n, float lr, float momentum, const float *grad,
                        float *velocity, float *param) {
  if (n < 1) return XST_ERR_DIMS;
  if (!xst_f32_finite(lr) || !xst_f32_finite(momentum)) return XST_ERR_PARAM;
  for (int32_t i = 0; i < n; i++) {
    const int wide = tiny(velocity[i], TINY_STATE) || tiny(grad[i], TINY_STATE);
    const float decayed = f32_mul(wide, momentum, velocity[i]);
    const float v = f32_add(wide, decayed, grad[i]);
    velocity[i] = v;
    const float step = f32_mul(wide, lr, v);
    param[i] = f32_sub(wide, param[i], step);
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
    const int w = tiny(m[i], TINY_STATE) || tiny(v[i], TINY_STATE) || tiny(g, TINY_GRAD);
    const float m1 = f32_mul(w, h->beta1, m[i]);
    const float m2 = f32_mul(w, one_minus_b1, g);
    const float mi = f32_add(w, m1, m2);
    const float g2 = f32_mul(w, g, g);
    const float v1 = f32_mul(w, h->beta2, v[i]);
    const float v2 = f32_mul(w, one_minus_b2, g2);
    const float vi = f32_add(w, v1, v2);
    m[i] = mi;
    v[i] = vi;
    const float m_hat = f32_div(w, mi, c1);
    const float v_hat = f32_div(w, vi, c2);
    const float den = f32_add(w, xst_sqrt_f32(v_hat), h->eps);
    const float num = f32_mul(w, h->lr, m_hat);
    const float step = f32_div(w, num, den);
    param[i] = f32_sub(w, param[i], step);
  }
  return XST_OK;
}
