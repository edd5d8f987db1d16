/*
 * Depthwise 2-D convolution, int8 (TFLite DEPTHWISE_CONV_2D, per-channel
 * weights, dilation 1): forward and backward.
 *
 * Layouts (NHWC, row-major):
 *   in / grad_in     (batch, in_h, in_w, in_c)
 *   w                (1, k_h, k_w, out_c)        out_c = in_c * mult
 *   out / grad_out   (batch, out_h, out_w, out_c)
 * Output channel oc reads input channel oc / mult (oc = ic * mult + m).
 * Padding: pad_h / pad_w are the top / left pads; taps outside the image are
 * skipped (they contribute as the input zero point, i.e. 0 after the offset),
 * exactly as TFLite's reference_integer_ops::DepthwiseConvPerChannel.
 * Gradients: int8 with a power-of-two exponent per tensor (real = q * 2^exp),
 * see native/README.md.
 */
#include "xst.h"
#include "xst_fixed.h"
#include "nn_mat_mult_s8.h" /* XST_MM_DSP */
#include "nn_requant_s8.h"
#include "weight_update_s8.h"

#define XST_DW_MAX_DIM (1 << 24)
#define XST_DW_MAX_TAPS 65536       /* k_h*k_w: keeps the forward int32 sum exact */
#define XST_DW_MAX_PIXELS 65535     /* batch*out_h*out_w: weight-gradient sums exact */
#define XST_DW_MAX_BIAS_PIXELS (1 << 23) /* batch*out_h*out_w: bias-gradient sums exact */
#define XST_DW_CHUNK 32             /* channels per accumulator block (mult == 1) */

/* Every dimension positive (pads >= 0), a pad smaller than its kernel side,
 * and every output window overlapping the image: the first window starts at
 * -pad > -k, the last at (out-1)*stride - pad <= in - 1. SAME and VALID
 * geometries (TFLite's formulas) satisfy both. */
static int check_dims(const xst_dwconv_dims *d) {
  const int32_t v[11] = {d->batch, d->in_h, d->in_w, d->in_c, d->out_h, d->out_w,
                         d->mult, d->k_h, d->k_w, d->stride_h, d->stride_w};
  for (int k = 0; k < 11; k++) {
    if (v[k] < 1 || v[k] > XST_DW_MAX_DIM) return XST_ERR_DIMS;
  }
  if (d->pad_h < 0 || d->pad_h >= d->k_h || d->pad_w < 0 || d->pad_w >= d->k_w) return XST_ERR_DIMS;
  if ((int64_t)d->k_h * d->k_w > XST_DW_MAX_TAPS) return XST_ERR_DIMS;
  if ((int64_t)d->in_c * d->mult > XST_DW_MAX_DIM) return XST_ERR_DIMS;
  if ((int64_t)(d->out_h - 1) * d->stride_h - d->pad_h > (int64_t)d->in_h - 1) return XST_ERR_DIMS;
  if ((int64_t)(d->out_w - 1) * d->stride_w - d->pad_w > (int64_t)d->in_w - 1) return XST_ERR_DIMS;
  return XST_OK;
}

static int check_oc_range(const xst_dwconv_dims *d, const xst_block *blk) {
  const int32_t oc = d->in_c * d->mult;
  if (blk->oc_begin < 0 || blk->oc_begin >= blk->oc_end || blk->oc_end > oc) return XST_ERR_RANGE;
  return XST_OK;
}

/* Taps [lo, hi) of one kernel axis that fall inside [0, in) for a window
 * starting at origin (origin may be negative: padding). */
static void tap_range(int32_t origin, int32_t k, int32_t in, int32_t *lo, int32_t *hi) {
  *lo = origin < 0 ? -origin : 0;
  *hi = in - origin < k ? in - origin : k;
}

size_t depthwise_conv2d_s8_forward_scratch_size(const xst_dwconv_dims *d) {
  (void)d;
  return 0;
}

/* Bias, requantisation, output offset, clamp and mask bit of one output. */
static void finish_output(const xst_dwconv_quant *q, const int32_t *bias, int32_t acc, int32_t c,
                          size_t k, int8_t *out, uint8_t *mask) {
  if (bias) acc = (int32_t)((uint32_t)acc + (uint32_t)bias[c]); /* wraps like the reference */
  xst_requant_store(acc, q->multiplier[c], q->shift[c], q->output_offset, q->act_min, q->act_max, k, out, mask);
}

#if XST_MM_DSP
#include <arm_acle.h>

#define XST_DW_DSP_MAX_TAPS 64 /* k_h*k_w of the DSP path: 512 bytes of stack */

/* A 32-bit load from any address (Cortex-M4 allows unaligned LDR; the
 * aligned(1) type makes GCC emit one, where memcpy would be a library call
 * under -ffreestanding). */
typedef uint32_t xst_dw_u32_unaligned __attribute__((aligned(1), may_alias));
static inline uint32_t dw_ld4(const int8_t *p) { return *(const xst_dw_u32_unaligned *)(const void *)p; }
/* Bytes 1 and 3 of x sign-extended to int16 lanes, plus a (lane-wise). */
static inline int32_t dw_sxtab16_ror8(int32_t a, uint32_t x) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
  return r;
}
static inline int32_t dw_sxtb16_ror8(uint32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

/* A 32-bit store to any address (as dw_ld4). */
static inline void dw_st4(int8_t *p, uint32_t v) { *(xst_dw_u32_unaligned *)(void *)p = v; }

/* The fast output stage of 4 channels: v0..v3 (output offset added,
 * |v| <= 2^30 + 128) clamped to [lo, hi] (lo4 / hi4: the bounds in every
 * byte) and stored as 4 bytes at p; returns the 4 mask bits lo < v < hi.
 * SSAT to int8 first changes neither (-128 <= lo, hi <= 127); then per byte
 * SSUB8 sets GE where lo >= v (read from APSR.GE, bits 16-19, by MRS) and
 * SEL takes max(lo, v); again for v >= hi and min(hi, v). */
static inline uint32_t dw_clamp_store4(int32_t v0, int32_t v1, int32_t v2, int32_t v3, uint32_t lo4, uint32_t hi4,
                                       int8_t *p) {
  uint32_t r = (uint32_t)__ssat(v0, 8); /* bytes 1-3 replaced below (BFI) */
  __asm__("bfi %0, %1, #8, #24" : "+r"(r) : "r"(__ssat(v1, 8)));
  __asm__("bfi %0, %1, #16, #16" : "+r"(r) : "r"(__ssat(v2, 8)));
  __asm__("bfi %0, %1, #24, #8" : "+r"(r) : "r"(__ssat(v3, 8)));
  uint32_t c, f1, f2;
  __asm__("ssub8 %[c], %[lo], %[r]\n\t"
          "mrs %[f1], APSR\n\t"
          "sel %[c], %[lo], %[r]\n\t"
          "ssub8 %[f2], %[c], %[hi]\n\t"
          "mrs %[f2], APSR\n\t"
          "sel %[c], %[hi], %[c]"
          : [c] "=&r"(c), [f1] "=&r"(f1), [f2] "=&r"(f2)
          : [lo] "r"(lo4), [hi] "r"(hi4), [r] "r"(r)
          : "cc");
  dw_st4(p, c);
  return (~(f1 | f2) >> 16) & 0xFu;
}

/* Mask bits k..k+3 := bits (one byte read-modify-write, two when they
 * straddle a byte). */
static inline void dw_mask_nibble(uint8_t *mask, size_t k, uint32_t bits) {
  uint8_t *m = mask + (k >> 3);
  const unsigned sh = (unsigned)(k & 7);
  m[0] = (uint8_t)((m[0] & ~(0xFu << sh)) | bits << sh);
  if (sh > 4) m[1] = (uint8_t)((m[1] & ~(0xFu >> (8 - sh))) | bits >> (8 - sh));
}

/* Depth multiplier 1, channels [c0, c0 + 4) of every output pixel, on the
 * DSP extension: one 32-bit load brings the 4 channels of a tap, SXTAB16
 * splits it into (c0, c0+2) and (c0+1, c0+3) int16 pairs with the input
 * offset added, and SMLABB/SMLATT multiply each lane by the same lane of the
 * tap's weights, pre-split once per channel group into wx (2 words a tap).
 * The accumulators start at the bias: SMLAxy adds modulo 2^32, which is the
 * reference's wrapping bias add (the sum without bias is exact). */
/* One tap of 4 channels: x at xp, split weights wp[0..1]. */
#define DW_TAP(xp, wp)                                                            \
  do {                                                                            \
    const uint32_t v_ = dw_ld4(xp);                                               \
    const int32_t xl_ = __sxtab16(off2, (int32_t)v_), xh_ = dw_sxtab16_ror8(off2, v_); \
    const int32_t wl_ = (wp)[0], wh_ = (wp)[1];                                   \
    a0 = __smlabb(xl_, wl_, a0);                                                  \
    a2 = __smlatt(xl_, wl_, a2);                                                  \
    a1 = __smlabb(xh_, wh_, a1);                                                  \
    a3 = __smlatt(xh_, wh_, a3);                                                  \
  } while (0)

static __attribute__((noinline)) void dw_forward_dsp4(const xst_dwconv_dims *d, const xst_dwconv_quant *q, const int8_t *in,
                            const int8_t *w, const int32_t *bias, int8_t *out, uint8_t *mask,
                            int32_t c0) {
  const int32_t H = d->in_h, W = d->in_w, C = d->in_c, KW = d->k_w, KT = d->k_h * d->k_w;
  int32_t wx[2 * XST_DW_DSP_MAX_TAPS];
  for (int32_t t = 0; t < KT; t++) {
    const uint32_t u = dw_ld4(w + (size_t)t * C + c0);
    wx[2 * t] = __sxtb16((int32_t)u);
    wx[2 * t + 1] = dw_sxtb16_ror8(u);
  }
  const int32_t off2 = (int32_t)(((uint32_t)q->input_offset & 0xFFFFu) * 0x10001u);
  const int32_t b0 = bias ? bias[c0] : 0, b1 = bias ? bias[c0 + 1] : 0;
  const int32_t b2 = bias ? bias[c0 + 2] : 0, b3 = bias ? bias[c0 + 3] : 0;
  const int32_t *mult = q->multiplier + c0, *shift = q->shift + c0;
  const int32_t oo = q->output_offset, lo = q->act_min, hi = q->act_max;
  const uint32_t lo4 = ((uint32_t)lo & 0xFFu) * 0x01010101u, hi4 = ((uint32_t)hi & 0xFFu) * 0x01010101u;
  xst_rq_fast rq[4];
  int fast = 1;
  for (int i = 0; i < 4; i++) fast &= xst_rq_fast_init(&rq[i], mult[i], shift[i]);
  const size_t xcol = (size_t)C, xrow = (size_t)W * C;
  const int k3x3 = d->k_h == 3 && KW == 3;
  size_t k = (size_t)c0; /* index of out[b][oy][ox][c0] */
  for (int32_t b = 0; b < d->batch; b++) {
    const int8_t *xb = in + (size_t)b * H * W * C + c0;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      const int32_t y0 = oy * d->stride_h - d->pad_h;
      int32_t ky0, ky1;
      tap_range(y0, d->k_h, H, &ky0, &ky1);
      for (int32_t ox = 0; ox < d->out_w; ox++, k += (size_t)C) {
        const int32_t x0 = ox * d->stride_w - d->pad_w;
        int32_t kx0, kx1;
        tap_range(x0, KW, W, &kx0, &kx1);
        int32_t a0 = b0, a1 = b1, a2 = b2, a3 = b3;
        const int8_t *xr = xb + (size_t)(y0 + ky0) * xrow + (size_t)(x0 + kx0) * xcol;
        const int32_t *wr = wx + 2 * (ky0 * KW + kx0);
        const int32_t ny = ky1 - ky0, nx = kx1 - kx0;
        if (k3x3 && nx == 3) { /* 3x3 kernels away from the left/right edges: rows of 3 taps */
          DW_TAP(xr, wr); DW_TAP(xr + xcol, wr + 2); DW_TAP(xr + 2 * xcol, wr + 4);
          if (ny > 1) {
            const int8_t *x1p = xr + xrow;
            DW_TAP(x1p, wr + 6); DW_TAP(x1p + xcol, wr + 8); DW_TAP(x1p + 2 * xcol, wr + 10);
            if (ny > 2) {
              const int8_t *x2p = x1p + xrow;
              DW_TAP(x2p, wr + 12); DW_TAP(x2p + xcol, wr + 14); DW_TAP(x2p + 2 * xcol, wr + 16);
            }
          }
          goto store;
        }
        if (k3x3 && nx == 2) { /* 3x3 kernels at the left/right edge (SAME pad 1): rows of 2 taps */
          DW_TAP(xr, wr); DW_TAP(xr + xcol, wr + 2);
          if (ny > 1) {
            const int8_t *x1p = xr + xrow;
            DW_TAP(x1p, wr + 6); DW_TAP(x1p + xcol, wr + 8);
            if (ny > 2) {
              const int8_t *x2p = x1p + xrow;
              DW_TAP(x2p, wr + 12); DW_TAP(x2p + xcol, wr + 14);
            }
          }
          goto store;
        }
        for (int32_t ky = ky0; ky < ky1; ky++, xr += xrow, wr += 2 * KW) {
          const int8_t *xp = xr;
          const int32_t *wp = wr;
          for (int32_t i = 0; i < nx; i++, xp += xcol, wp += 2) DW_TAP(xp, wp);
        }
      store:
        if (fast) {
          const int32_t v0 = xst_rq_fast_apply(&rq[0], a0) + oo, v1 = xst_rq_fast_apply(&rq[1], a1) + oo;
          const int32_t v2 = xst_rq_fast_apply(&rq[2], a2) + oo, v3 = xst_rq_fast_apply(&rq[3], a3) + oo;
          const uint32_t bits = dw_clamp_store4(v0, v1, v2, v3, lo4, hi4, out + k);
          if (mask) dw_mask_nibble(mask, k, bits);
        } else {
          xst_requant_store(a0, mult[0], shift[0], oo, lo, hi, k, out, mask);
          xst_requant_store(a1, mult[1], shift[1], oo, lo, hi, k + 1, out, mask);
          xst_requant_store(a2, mult[2], shift[2], oo, lo, hi, k + 2, out, mask);
          xst_requant_store(a3, mult[3], shift[3], oo, lo, hi, k + 3, out, mask);
        }
      }
    }
  }
}
#endif

int depthwise_conv2d_s8_forward(const xst_dwconv_dims *d, const xst_dwconv_quant *q,
                                const int8_t *in, const int8_t *w,
                                const int32_t *bias, int8_t *out,
                                uint8_t *mask) {
  int st = check_dims(d);
  if (st) return st;
  if (q->input_offset < -127 || q->input_offset > 128) return XST_ERR_PARAM;
  if (q->output_offset < -128 || q->output_offset > 127) return XST_ERR_PARAM;
  if (q->act_min < -128 || q->act_max > 127 || q->act_min > q->act_max) return XST_ERR_PARAM;
  const int32_t H = d->in_h, W = d->in_w, C = d->in_c, M = d->mult, OC = C * M;
  for (int32_t c = 0; c < OC; c++) {
    if (q->multiplier[c] < 0 || q->shift[c] < -31 || q->shift[c] > 30) return XST_ERR_PARAM;
  }
  const int32_t off = q->input_offset;
  int32_t cb = 0; /* mult 1: channels [0, cb) are done */
#if XST_MM_DSP
  if (M == 1 && (int64_t)d->k_h * d->k_w <= XST_DW_DSP_MAX_TAPS) {
    for (; cb + 4 <= C; cb += 4) dw_forward_dsp4(d, q, in, w, bias, out, mask, cb);
    if (cb == C) return XST_OK;
  }
#endif
  for (int32_t b = 0; b < d->batch; b++) {
    const int8_t *xb = in + (size_t)b * H * W * C;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      const int32_t y0 = oy * d->stride_h - d->pad_h;
      int32_t ky0, ky1;
      tap_range(y0, d->k_h, H, &ky0, &ky1);
      for (int32_t ox = 0; ox < d->out_w; ox++) {
        const int32_t x0 = ox * d->stride_w - d->pad_w;
        int32_t kx0, kx1;
        tap_range(x0, d->k_w, W, &kx0, &kx1);
        const size_t pix = ((size_t)b * d->out_h + oy) * d->out_w + ox;
        if (M == 1) {
          /* Contiguous channels: one accumulator block per output pixel,
           * the inner loop a plain multiply-accumulate over channels. */
          for (int32_t c0 = cb; c0 < C; c0 += XST_DW_CHUNK) {
            const int32_t n = C - c0 < XST_DW_CHUNK ? C - c0 : XST_DW_CHUNK;
            int32_t acc[XST_DW_CHUNK]; /* |acc| <= 255 * 128 * 65536 < 2^31 */
            for (int32_t i = 0; i < n; i++) acc[i] = 0;
            for (int32_t ky = ky0; ky < ky1; ky++) {
              for (int32_t kx = kx0; kx < kx1; kx++) {
                const int8_t *xp = xb + ((size_t)(y0 + ky) * W + (size_t)(x0 + kx)) * C + c0;
                const int8_t *wp = w + ((size_t)ky * d->k_w + kx) * OC + c0;
                for (int32_t i = 0; i < n; i++) acc[i] += ((int32_t)xp[i] + off) * wp[i];
              }
            }
            for (int32_t i = 0; i < n; i++) finish_output(q, bias, acc[i], c0 + i, pix * OC + c0 + i, out, mask);
          }
        } else {
          for (int32_t c = 0; c < OC; c++) {
            const int32_t ic = c / M;
            int32_t acc = 0;
            for (int32_t ky = ky0; ky < ky1; ky++) {
              for (int32_t kx = kx0; kx < kx1; kx++) {
                const int32_t x = xb[((size_t)(y0 + ky) * W + (size_t)(x0 + kx)) * C + ic];
                acc += (x + off) * w[((size_t)ky * d->k_w + kx) * OC + c];
              }
            }
            finish_output(q, bias, acc, c, pix * OC + c, out, mask);
          }
        }
      }
    }
  }
  return XST_OK;
}

/* Terms summed into one grad_in element: for a fixed input row only the
 * taps ky == (iy + pad_h) mod stride_h meet an output row, so at most
 * mult * ceil(k_h/stride_h) * ceil(k_w/stride_w) products. The pre-scaled
 * gradient has |gs| <= 2^(22 - pre) and |w| <= 2^7; with terms <= 2^k,
 * pre >= k - 1 bounds the int32 sum by 2^30 (as the fully-connected one). */
static int backward_input_prescale(const xst_dwconv_dims *d) {
  uint64_t terms = (uint64_t)d->mult * (uint64_t)((d->k_h + d->stride_h - 1) / d->stride_h) *
                   (uint64_t)((d->k_w + d->stride_w - 1) / d->stride_w);
  if (terms > (UINT64_C(1) << 31)) terms = UINT64_C(1) << 31;
  int k = xst_bit_length((uint32_t)(terms - 1)); /* ceil(log2(terms)) */
  return k > 9 ? k - 1 : 8;
}

#if XST_MM_DSP
typedef uint32_t xst_dw_u32_alias __attribute__((may_alias));

/* Depth multiplier 1 on the DSP extension: per output pixel the pre-scaled
 * gradient of channels 4j..4j+3 is packed into two words gsw[2j] =
 * (gs[4j], gs[4j+2]) and gsw[2j+1] = (gs[4j+1], gs[4j+3]) (int16 lanes,
 * |gs| <= 2^14), the layout SXTB16 gives a 32-bit load of 4 weights; then
 * per channel group (skipped when its 4 gradients are 0: exact) and tap,
 * SMLABB/SMLATT add w * gs into the 4 accumulators. Channels past the last
 * multiple of 4 take the plain loop. gsw: the scratch's int16[out_c] area. */
static __attribute__((noinline)) void dw_backward_input_dsp(const xst_dwconv_dims *d, const int16_t *mant, int pre,
                                                            const int8_t *grad_out, const int8_t *w, int32_t *acc,
                                                            uint32_t *gsw_) {
  xst_dw_u32_alias *gsw = gsw_;
  const int32_t H = d->in_h, W = d->in_w, C = d->in_c, KW = d->k_w, C4 = C & ~3;
  const int32_t round = 1 << (pre - 1);
  const size_t xrow = (size_t)W * C, wrow = (size_t)KW * C;
  int32_t tail[3];
  for (int32_t b = 0; b < d->batch; b++) {
    int32_t *ab = acc + (size_t)b * H * xrow;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      const int32_t y0 = oy * d->stride_h - d->pad_h;
      int32_t ky0, ky1;
      tap_range(y0, d->k_h, H, &ky0, &ky1);
      for (int32_t ox = 0; ox < d->out_w; ox++) {
        const int32_t x0 = ox * d->stride_w - d->pad_w;
        int32_t kx0, kx1;
        tap_range(x0, KW, W, &kx0, &kx1);
        const int8_t *g = grad_out + (((size_t)b * d->out_h + oy) * d->out_w + ox) * C;
        for (int32_t c = 0; c < C4; c += 4) {
          const int32_t g0 = xst_floor_shr32((int32_t)g[c] * mant[c] + round, pre);
          const int32_t g1 = xst_floor_shr32((int32_t)g[c + 1] * mant[c + 1] + round, pre);
          const int32_t g2 = xst_floor_shr32((int32_t)g[c + 2] * mant[c + 2] + round, pre);
          const int32_t g3 = xst_floor_shr32((int32_t)g[c + 3] * mant[c + 3] + round, pre);
          gsw[c / 2] = ((uint32_t)g0 & 0xFFFFu) | (uint32_t)g2 << 16;
          gsw[c / 2 + 1] = ((uint32_t)g1 & 0xFFFFu) | (uint32_t)g3 << 16;
        }
        for (int32_t c = C4; c < C; c++) tail[c - C4] = xst_floor_shr32((int32_t)g[c] * mant[c] + round, pre);
        int32_t *ar = ab + (size_t)(y0 + ky0) * xrow + (size_t)(x0 + kx0) * C;
        const int8_t *wr = w + (size_t)ky0 * wrow + (size_t)kx0 * C;
        const int32_t nx = kx1 - kx0;
        for (int32_t c = 0; c < C4; c += 4) {
          const int32_t s02 = (int32_t)gsw[c / 2], s13 = (int32_t)gsw[c / 2 + 1];
          if ((s02 | s13) == 0) continue; /* exact: adds nothing */
          int32_t *ay = ar + c;
          const int8_t *wy = wr + c;
          for (int32_t ky = ky0; ky < ky1; ky++, ay += xrow, wy += wrow) {
            int32_t *a = ay;
            const int8_t *wp = wy;
            for (int32_t i = 0; i < nx; i++, a += C, wp += C) {
              const uint32_t v = dw_ld4(wp);
              const int32_t wl = __sxtb16((int32_t)v), wh = dw_sxtb16_ror8(v);
              a[0] = __smlabb(wl, s02, a[0]);
              a[2] = __smlatt(wl, s02, a[2]);
              a[1] = __smlabb(wh, s13, a[1]);
              a[3] = __smlatt(wh, s13, a[3]);
            }
          }
        }
        for (int32_t c = C4; c < C; c++) {
          const int32_t gc = tail[c - C4];
          if (gc == 0) continue;
          for (int32_t ky = ky0; ky < ky1; ky++) {
            for (int32_t kx = kx0; kx < kx1; kx++) {
              ab[((size_t)(y0 + ky) * W + (size_t)(x0 + kx)) * C + c] += w[((size_t)ky * KW + kx) * C + c] * gc;
            }
          }
        }
      }
    }
  }
}
#endif

size_t depthwise_conv2d_s8_backward_input_scratch_size(const xst_dwconv_dims *d) {
  /* int32 acc[batch * in_h * in_w * in_c], then int16 gs[out_c] */
  return (size_t)d->batch * (size_t)d->in_h * (size_t)d->in_w * (size_t)d->in_c * 4u +
         (size_t)d->in_c * (size_t)d->mult * 2u;
}

int depthwise_conv2d_s8_backward_input(const xst_dwconv_dims *d,
                                       const xst_wscale *ws,
                                       const int8_t *grad_out,
                                       const int32_t *grad_out_exp,
                                       const int8_t *w, int8_t *grad_in,
                                       int32_t *grad_in_exp, void *scratch) {
  int st = check_dims(d);
  if (st) return st;
  const int32_t H = d->in_h, W = d->in_w, C = d->in_c, M = d->mult, OC = C * M;
  if (ws->exp < -64 || ws->exp > 64) return XST_ERR_PARAM;
  if (*grad_out_exp < -1024 || *grad_out_exp > 1024) return XST_ERR_PARAM;
  for (int32_t c = 0; c < OC; c++) {
    if (ws->mantissa_q15[c] < 0) return XST_ERR_PARAM;
  }
  const size_t n = (size_t)d->batch * H * W * C;
  int32_t *acc = (int32_t *)scratch;
  int16_t *gs = (int16_t *)(acc + n);
  const int pre = backward_input_prescale(d);
  for (size_t k = 0; k < n; k++) acc[k] = 0;
#if XST_MM_DSP
  if (M == 1) {
    dw_backward_input_dsp(d, ws->mantissa_q15, pre, grad_out, w, acc, (uint32_t *)(void *)gs);
    goto normalise;
  }
#endif
  /* Scatter each output gradient to the input taps its window read. */
  for (int32_t b = 0; b < d->batch; b++) {
    int32_t *ab = acc + (size_t)b * H * W * C;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      const int32_t y0 = oy * d->stride_h - d->pad_h;
      int32_t ky0, ky1;
      tap_range(y0, d->k_h, H, &ky0, &ky1);
      for (int32_t ox = 0; ox < d->out_w; ox++) {
        const int32_t x0 = ox * d->stride_w - d->pad_w;
        int32_t kx0, kx1;
        tap_range(x0, d->k_w, W, &kx0, &kx1);
        const int8_t *g = grad_out + (((size_t)b * d->out_h + oy) * d->out_w + ox) * OC;
        int any = 0;
        for (int32_t c = 0; c < OC; c++) {
          gs[c] = (int16_t)xst_floor_shr32((int32_t)g[c] * ws->mantissa_q15[c] + (1 << (pre - 1)), pre);
          any |= gs[c];
        }
        if (!any) continue; /* exact: adds nothing */
        for (int32_t ky = ky0; ky < ky1; ky++) {
          for (int32_t kx = kx0; kx < kx1; kx++) {
            int32_t *a = ab + ((size_t)(y0 + ky) * W + (size_t)(x0 + kx)) * C;
            const int8_t *wp = w + ((size_t)ky * d->k_w + kx) * OC;
            if (M == 1) {
              for (int32_t c = 0; c < C; c++) a[c] += wp[c] * gs[c];
            } else {
              for (int32_t c = 0; c < OC; c++) a[c / M] += wp[c] * gs[c];
            }
          }
        }
      }
    }
  }
#if XST_MM_DSP
normalise:;
#endif
  /* Normalise: the largest magnitude lands in [64, 127]. */
  const int s = xst_normalize_s8(acc, n, grad_in);
  *grad_in_exp = *grad_out_exp + ws->exp - 15 + pre + s;
  return XST_OK;
}

int depthwise_conv2d_s8_backward_bias(const xst_dwconv_dims *d, const xst_block *blk,
                                      const int8_t *grad_out, int32_t *grad_bias) {
  int st = check_dims(d);
  if (!st) st = check_oc_range(d, blk);
  if (st) return st;
  const int64_t pixels = (int64_t)d->batch * d->out_h * d->out_w;
  if (pixels > XST_DW_MAX_BIAS_PIXELS) return XST_ERR_DIMS; /* |sum| <= 128 * 2^23 */
  const int32_t OC = d->in_c * d->mult, noc = blk->oc_end - blk->oc_begin;
  for (int32_t c = 0; c < noc; c++) grad_bias[c] = 0;
  for (int64_t p = 0; p < pixels; p++) {
    const int8_t *g = grad_out + (size_t)p * OC + blk->oc_begin;
    for (int32_t c = 0; c < noc; c++) grad_bias[c] += g[c];
  }
  return XST_OK;
}

/* Output rows/columns [*lo, *hi) whose tap k reads inside [0, in) on one axis:
 * o*s - pad + k in [0, in). (*hi may be below *lo: no output.) */
static void tap_outputs(int32_t k, int32_t s, int32_t pad, int32_t in, int32_t out, int32_t *lo, int32_t *hi) {
  const int32_t first = pad - k, last = in - 1 + pad - k; /* o*s in [first, last] */
  *lo = first > 0 ? (first + s - 1) / s : 0;
  *hi = last < 0 ? 0 : (last / s + 1 < out ? last / s + 1 : out);
}

#if XST_MM_DSP

/* Depth multiplier 1, channels [c, c + 4) (gw columns [col, col + 4)): for
 * each tap, the sum over the output pixels whose tap lies in the image (a
 * rectangle of output rows and columns) with 4 accumulators in registers;
 * one 32-bit load brings 4 channels of grad_out and of the input, SXTB16 /
 * SXTAB16 (input offset added) split them into int16 lanes and SMLABB /
 * SMLATT accumulate (exact: |sum| < 2^31, see the pixel limit). */
static __attribute__((noinline)) void dw_backward_weight_dsp4(const xst_dwconv_dims *d, int32_t input_offset,
                                                              const int8_t *grad_out, const int8_t *in,
                                                              int32_t *grad_w, int32_t noc, int32_t c, int32_t col) {
  const int32_t H = d->in_h, W = d->in_w, C = d->in_c, OH = d->out_h, OW = d->out_w;
  const int32_t off2 = (int32_t)(((uint32_t)input_offset & 0xFFFFu) * 0x10001u);
  const size_t xstep = (size_t)d->stride_w * C;
  for (int32_t ky = 0; ky < d->k_h; ky++) {
    int32_t oy0, oy1;
    tap_outputs(ky, d->stride_h, d->pad_h, H, OH, &oy0, &oy1);
    for (int32_t kx = 0; kx < d->k_w; kx++) {
      int32_t ox0, ox1;
      tap_outputs(kx, d->stride_w, d->pad_w, W, OW, &ox0, &ox1);
      int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      const int32_t nx = ox1 - ox0;
      for (int32_t b = 0; nx > 0 && b < d->batch; b++) {
        for (int32_t oy = oy0; oy < oy1; oy++) {
          const int32_t iy = oy * d->stride_h - d->pad_h + ky, ix = ox0 * d->stride_w - d->pad_w + kx;
          const int8_t *xp = in + (((size_t)b * H + iy) * W + ix) * C + c;
          const int8_t *gp = grad_out + (((size_t)b * OH + oy) * OW + ox0) * C + c;
          for (int32_t i = 0; i < nx; i++, xp += xstep, gp += C) {
            const uint32_t v = dw_ld4(xp), g = dw_ld4(gp);
            const int32_t xl = __sxtab16(off2, (int32_t)v), xh = dw_sxtab16_ror8(off2, v);
            const int32_t gl = __sxtb16((int32_t)g), gh = dw_sxtb16_ror8(g);
            a0 = __smlabb(gl, xl, a0);
            a2 = __smlatt(gl, xl, a2);
            a1 = __smlabb(gh, xh, a1);
            a3 = __smlatt(gh, xh, a3);
          }
        }
      }
      int32_t *gw = grad_w + ((size_t)ky * d->k_w + kx) * noc + col;
      gw[0] = a0, gw[1] = a1, gw[2] = a2, gw[3] = a3;
    }
  }
}
#endif

int depthwise_conv2d_s8_backward_weight(const xst_dwconv_dims *d,
                                        const xst_block *blk,
                                        int32_t input_offset,
                                        const int8_t *grad_out,
                                        const int8_t *in, int32_t *grad_w) {
  int st = check_dims(d);
  if (!st) st = check_oc_range(d, blk);
  if (st) return st;
  if (input_offset < -127 || input_offset > 128) return XST_ERR_PARAM;
  /* |sum| <= 65535 * 128 * 255 < 2^31 */
  if ((int64_t)d->batch * d->out_h * d->out_w > XST_DW_MAX_PIXELS) return XST_ERR_DIMS;
  const int32_t H = d->in_h, W = d->in_w, C = d->in_c, M = d->mult, OC = C * M;
  const int32_t ob = blk->oc_begin, noc = blk->oc_end - blk->oc_begin;
  const size_t nw = (size_t)d->k_h * d->k_w * noc;
  for (size_t k = 0; k < nw; k++) grad_w[k] = 0;
  int32_t cb = 0; /* mult 1: block columns [0, cb) are done */
#if XST_MM_DSP
  if (M == 1) {
    for (; cb + 4 <= noc; cb += 4) dw_backward_weight_dsp4(d, input_offset, grad_out, in, grad_w, noc, ob + cb, cb);
    if (cb == noc) return XST_OK;
  }
#endif
  for (int32_t b = 0; b < d->batch; b++) {
    const int8_t *xb = in + (size_t)b * H * W * C;
    for (int32_t oy = 0; oy < d->out_h; oy++) {
      const int32_t y0 = oy * d->stride_h - d->pad_h;
      int32_t ky0, ky1;
      tap_range(y0, d->k_h, H, &ky0, &ky1);
      for (int32_t ox = 0; ox < d->out_w; ox++) {
        const int32_t x0 = ox * d->stride_w - d->pad_w;
        int32_t kx0, kx1;
        tap_range(x0, d->k_w, W, &kx0, &kx1);
        const int8_t *g = grad_out + (((size_t)b * d->out_h + oy) * d->out_w + ox) * OC + ob;
        for (int32_t ky = ky0; ky < ky1; ky++) {
          for (int32_t kx = kx0; kx < kx1; kx++) {
            const int8_t *xp = xb + ((size_t)(y0 + ky) * W + (size_t)(x0 + kx)) * C;
            int32_t *gw = grad_w + ((size_t)ky * d->k_w + kx) * noc;
            if (M == 1) {
              const int8_t *xc = xp + ob;
              for (int32_t c = cb; c < noc; c++) gw[c] += g[c] * ((int32_t)xc[c] + input_offset);
            } else {
              for (int32_t c = 0; c < noc; c++) gw[c] += g[c] * ((int32_t)xp[(ob + c) / M] + input_offset);
            }
          }
        }
      }
    }
  }
  return XST_OK;
}

/* ---- fused weight gradient + update (SGD op 38, LQM op 40) ------------------
 * The gradient of depthwise_conv2d_s8_backward_weight, per output channel
 * oc of the block and then per tap (ky, kx), handed to the update in runs
 * (weight_update_s8.h) as it is produced: no gradient buffer in the arena,
 * a tile of XST_DW_WGS_TILE int32 on the stack. k_h*k_w <= XST_DW_WGS_TILE:
 * as many channels per tile as fit (a multiple of 4 when there are at least
 * 4: the DSP path's channel groups), each tile through
 * depthwise_conv2d_s8_backward_weight; larger kernels: one channel and up
 * to the tile's size of taps at a time. */
#define XST_DW_WGS_TILE 256

int depthwise_conv2d_s8_weight_grad_check(const xst_dwconv_dims *d, const xst_block *blk, int32_t input_offset) {
  int st = check_dims(d);
  if (!st) st = check_oc_range(d, blk);
  if (st) return st;
  if (input_offset < -127 || input_offset > 128) return XST_ERR_PARAM;
  if ((int64_t)d->batch * d->out_h * d->out_w > XST_DW_MAX_PIXELS) return XST_ERR_DIMS;
  return XST_OK;
}

void depthwise_conv2d_s8_weight_grad_runs(const xst_dwconv_dims *d, const xst_block *blk, int32_t input_offset,
                                          const int8_t *grad_out, const int8_t *in, xst_wg_apply apply, void *ctx) {
  const int32_t H = d->in_h, W = d->in_w, C = d->in_c, M = d->mult, OC = C * M, T = d->k_h * d->k_w;
  int32_t tile[XST_DW_WGS_TILE];
  if (T <= XST_DW_WGS_TILE) {
    int32_t per = XST_DW_WGS_TILE / T;
    if (per >= 4) per &= ~3;
    for (int32_t c0 = blk->oc_begin; c0 < blk->oc_end; c0 += per) {
      const xst_block sub = {c0, blk->oc_end - c0 < per ? blk->oc_end : c0 + per, 0, 1};
      const int32_t n = sub.oc_end - sub.oc_begin;
      depthwise_conv2d_s8_backward_weight(d, &sub, input_offset, grad_out, in, tile); /* checked by the caller: XST_OK */
      for (int32_t j = 0; j < n; j++) apply(ctx, c0 + j, (size_t)(c0 + j), (size_t)OC, tile + j, (size_t)n, T);
    }
    return;
  }
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    const int32_t ic = c / M;
    for (int32_t t0 = 0; t0 < T; t0 += XST_DW_WGS_TILE) {
      const int32_t n = T - t0 < XST_DW_WGS_TILE ? T - t0 : XST_DW_WGS_TILE;
      for (int32_t j = 0; j < n; j++) {
        const int32_t ky = (t0 + j) / d->k_w, kx = (t0 + j) % d->k_w;
        int32_t oy0, oy1, ox0, ox1, s = 0; /* |s| < 2^31: the pixel limit */
        tap_outputs(ky, d->stride_h, d->pad_h, H, d->out_h, &oy0, &oy1);
        tap_outputs(kx, d->stride_w, d->pad_w, W, d->out_w, &ox0, &ox1);
        for (int32_t b = 0; b < d->batch; b++) {
          for (int32_t oy = oy0; oy < oy1; oy++) {
            const int32_t iy = oy * d->stride_h - d->pad_h + ky;
            for (int32_t ox = ox0; ox < ox1; ox++) {
              const int32_t ix = ox * d->stride_w - d->pad_w + kx;
              const int32_t g = grad_out[(((size_t)b * d->out_h + oy) * d->out_w + ox) * OC + c];
              s += g * ((int32_t)in[(((size_t)b * H + iy) * W + ix) * C + ic] + input_offset);
            }
          }
        }
        tile[j] = s;
      }
      apply(ctx, c, (size_t)t0 * OC + (size_t)c, (size_t)OC, tile, 1, n);
    }
  }
}

int depthwise_conv2d_s8_backward_weight_sgd(const xst_dwconv_dims *d, const xst_block *blk, int32_t input_offset,
                                            const int8_t *grad_out, const int32_t *grad_out_exp, const int8_t *in,
                                            const xst_lr *lr, int8_t *w, uint32_t *rng) {
  int st = depthwise_conv2d_s8_weight_grad_check(d, blk, input_offset);
  if (!st) st = sgd_s8_run_check(lr, blk->oc_begin, blk->oc_end, rng);
  if (st) return st;
  sgd_s8_run r = {lr, *grad_out_exp, w, rng};
  depthwise_conv2d_s8_weight_grad_runs(d, blk, input_offset, grad_out, in, sgd_s8_apply_run, &r);
  return XST_OK;
}

int depthwise_conv2d_s8_backward_weight_lqm(const xst_dwconv_dims *d, const xst_block *blk, int32_t input_offset,
                                            const int8_t *grad_out, const int32_t *grad_out_exp, const int8_t *in,
                                            const xst_lqm *p, uint8_t *state, int8_t *w, uint32_t *rng) {
  int st = depthwise_conv2d_s8_weight_grad_check(d, blk, input_offset);
  if (st) return st;
  lqm_s8_run r;
  st = lqm_s8_run_begin(&r, p, blk->oc_begin, blk->oc_end, *grad_out_exp, state, w, rng);
  if (st) return st;
  depthwise_conv2d_s8_weight_grad_runs(d, blk, input_offset, grad_out, in, lqm_s8_apply_run, &r);
  lqm_s8_run_end(&r, rng);
  return XST_OK;
}
