/*
 * Internal to the C core: xst_requantize (xst_fixed.h) for a non-negative
 * multiplier (every forward kernel rejects negative ones), written so that
 * GCC emits one SMLAL / MULH-style multiply-add and shifts instead of the
 * 64-bit division of the reference form. Bit-identical to xst_requantize
 * for multiplier in [0, 2^31 - 1], shift in [-31, 30]:
 *
 *  - gemmlowp's SaturatingRoundingDoublingHighMul(a, m) is
 *    trunc((a*m + nudge) / 2^31), nudge = 2^30 for a*m >= 0 and 1 - 2^30
 *    otherwise. For a*m = -t < 0 that is -floor((t - 1 + 2^30) / 2^31)
 *    = -ceil((t - 2^30) / 2^31) = floor((a*m + 2^30) / 2^31), the same
 *    formula as for a*m >= 0: one multiply-add and an arithmetic shift.
 *    The saturating case (INT32_MIN * INT32_MIN) needs m < 0.
 *  - |a*m| < 2^62, so the int64 sum does not overflow, and the quotient
 *    lies in (-2^31, 2^31): its low 32 bits are the int32 result.
 * The rounding right shift after it is xst_rounding_divide_by_pot as is.
 */
#ifndef XST_NN_REQUANT_S8_H
#define XST_NN_REQUANT_S8_H

#include <stddef.h>
#include <stdint.h>
#include "xst_fixed.h"

static inline int32_t xst_requantize_pos(int32_t x, int32_t multiplier, int32_t shift) {
  const int left = shift > 0 ? (int)shift : 0;
  const int right = shift > 0 ? 0 : (int)-shift;
  const int32_t a = (int32_t)((uint32_t)x << left); /* wraps like the reference */
  const uint64_t p = (uint64_t)((int64_t)a * multiplier + ((int64_t)1 << 30));
  /* floor(p / 2^31) in two's complement: bits 31..62 of p (it fits int32). */
  const int32_t h = (int32_t)(uint32_t)(p >> 31);
  return xst_rounding_divide_by_pot(h, right);
}

/* The forward kernels' output stage for one accumulator (bias already
 * added): requantise, saturate to +-2^24 (as fully_connected_s8_forward),
 * add the output offset, set or clear mask bit k, clamp, store out[k]. */
static inline void xst_requant_store(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_offset,
                                     int32_t act_min, int32_t act_max, size_t k, int8_t *out,
                                     uint8_t *mask) {
  int32_t v = xst_requantize_pos(acc, multiplier, shift);
  if (v > 1 << 24) v = 1 << 24;
  if (v < -(1 << 24)) v = -(1 << 24);
  v += out_offset;
  if (mask) {
    const uint8_t bit = (uint8_t)(1u << (k & 7));
    if (v > act_min && v < act_max) mask[k >> 3] |= bit;
    else mask[k >> 3] &= (uint8_t)~bit;
  }
  out[k] = (int8_t)xst_clamp32(v, act_min, act_max);
}

#if defined(__ARM_FEATURE_DSP) && !defined(XST_PORTABLE)
/* DSP builds (GCC on Arm: >> of a negative value is arithmetic): the whole
 * requantisation for shift in [-31, -1] (e = -shift >= 1) as one 64-bit
 * multiply-add and one shift of its high word. With P = a*m + 2^30 and
 * h = floor(P / 2^31) (above), xst_rounding_divide_by_pot(h, e) is
 * floor((h + 2^(e-1) - [h < 0]) / 2^e) (ties away from zero); [h < 0] may
 * be replaced by [a < 0] (m >= 0: h < 0 needs a < 0, and a < 0 with h >= 0
 * means h = 0, where both give 0); and floor((floor(P/2^31) + c) / 2^e) =
 * floor((P + c*2^31) / 2^(31+e)) for integer c. So the result is
 *   floor((a*m + 2^30 + 2^(30+e) - [a < 0]*2^31) / 2^(31+e))
 * = high word of that sum >> (e - 1); |sum| < 2^63, |result| <= 2^30. */
typedef struct {
  int32_t m, sh; /* multiplier, e - 1 */
  int64_t k;     /* 2^30 + 2^(30+e) */
} xst_rq_fast;

/* 0 if shift >= 0 (then use xst_requantize_pos). */
static inline int xst_rq_fast_init(xst_rq_fast *r, int32_t multiplier, int32_t shift) {
  if (shift >= 0) return 0;
  r->m = multiplier;
  r->sh = -shift - 1;
  r->k = ((int64_t)1 << 30) + ((int64_t)1 << (30 - shift));
  return 1;
}

static inline int32_t xst_rq_fast_apply(const xst_rq_fast *r, int32_t a) {
  const int64_t p = (int64_t)a * r->m + (r->k - (a < 0 ? ((int64_t)1 << 31) : 0));
  return (int32_t)(p >> 32) >> r->sh;
}

/* Output offset added, then mask bit k and out[k] as xst_requant_store:
 * the +-2^24 saturation there cannot change either (|v| <= 2^30 here; past
 * 2^24 both land outside [act_min, act_max] on the same side). */
static inline void xst_rq_fast_store(int32_t v, int32_t act_min, int32_t act_max, size_t k,
                                     int8_t *out, uint8_t *mask) {
  if (mask) {
    const uint8_t bit = (uint8_t)(1u << (k & 7));
    if (v > act_min && v < act_max) mask[k >> 3] |= bit;
    else mask[k >> 3] &= (uint8_t)~bit;
  }
  out[k] = (int8_t)(v < act_min ? act_min : (v > act_max ? act_max : v));
}
#endif

#endif /* XST_NN_REQUANT_S8_H */
