/*
 * Fully connected, int8: forward and backward.
 *
 * Layouts: in (rows, in_features), w (out_features, in_features) row-major,
 * out/grad_out (rows, out_features). Gradients: int8 with a power-of-two
 * exponent per tensor (real = q * 2^exp), see native/README.md.
 */
#include "xst.h"
#include "xst_fixed.h"
#include "nn_mat_mult_s8.h"
#if XST_MM_DSP
#include <arm_acle.h>
/* A 32-bit load from any address (Cortex-M4 allows unaligned LDR; see
 * nn_mat_mult_s8.c). */
typedef uint32_t xst_fc_u32_unaligned __attribute__((aligned(1), may_alias));
static inline uint32_t ld4_out(const int8_t *p) {
  return *(const xst_fc_u32_unaligned *)(const void *)p;
}
/* 0xFF in each byte lane where base <= x <= top (signed bytes): SSUB8 sets
 * the lane's GE flag for a non-negative exact difference, SEL picks by it.
 * One asm statement: the compiler knows nothing of the GE flags. */
static inline uint32_t in_range4(uint32_t x, uint32_t base4, uint32_t top4) {
  uint32_t m, t;
  __asm__("ssub8 %[t], %[x], %[b]\n\t"
          "sel %[m], %[ones], %[zero]\n\t"
          "ssub8 %[t], %[top], %[x]\n\t"
          "sel %[m], %[m], %[zero]"
          : [m] "=&r"(m), [t] "=&r"(t)
          : [x] "r"(x), [b] "r"(base4), [top] "r"(top4), [ones] "r"(0xFFFFFFFFu), [zero] "r"(0u));
  return m;
}

/* ---- backward DSP core -------------------------------------------------
 * out[m][n] (+)= sum_{k < 2 kp} a[m][k] * b[k][n]: a as packed int16 pairs
 * (a2[m][j] = a[m][2j] low, a[m][2j + 1] high, row stride astride words), b
 * int8 rows of stride ldb. For 4 columns and a pair of b rows: u0 =
 * b[k][n..n+3], u1 = b[k+1][n..n+3]; PKHBT(u0, u1 << 16) holds the bytes
 * (b[k][n], b[k][n+1], b[k+1][n], b[k+1][n+1]), whose SXTB16 is the pair
 * for column n and SXTB16 ror 8 the pair for n + 1, which an SMLAD
 * multiplies with the packed a pair; PKHTB(u1, u0 >> 16) gives n + 2, n + 3.
 * 13 instructions per 8 MACs plus the loop. Callers: backward_input (a = the
 * prescaled output gradients, b = the weights) and backward_weight (a = the
 * output gradients transposed to pairs of rows, b = the inputs, whose offset
 * rides in init). Integer sums are exact (every caller bounds them), so the
 * result is the portable loops' to the bit. */
static inline uint32_t pkhbt16(uint32_t lo, uint32_t hi) {
  uint32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
  return r;
}
static inline uint32_t pkhtb16(uint32_t hi, uint32_t lo) {
  uint32_t r;
  __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(hi), "r"(lo));
  return r;
}
static inline int32_t sxtb16_ror8(uint32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}

/* Stack buffers of backward_weight: inputs expanded per chunk (rows 1), the
 * output gradients as row pairs and the per-channel start values. */
#define XST_FC_BW_XC 512
#define XST_FC_BW_A 256
#define XST_FC_BW_M 64
#define XST_FC_BW_T 256 /* fused update, rows >= 2: gradient tile */

/* o[4j..4j+3] = g * (the 4 inputs of expanded group j), j < ng: per group
 * LDRD of the expanded pair, SMULBB/SMULTB, one STM (its register list is
 * ascending: the four products are pinned to r8-r11). Two groups a trip. */
static void outer_row(int32_t *o, const int32_t *xp, int32_t ng, int32_t g) {
  register int32_t p0 __asm__("r8");
  register int32_t p1 __asm__("r9");
  register int32_t p2 __asm__("r10");
  register int32_t p3 __asm__("r11");
  const int32_t *const xe = xp + 2 * ng;
  int32_t xl, xh;
#define XST_FC_OUTER_STEP                            \
  "ldrd %[xl], %[xh], [%[xp]], #8\n\t"              \
  "smulbb %[p0], %[xl], %[g]\n\t"                   \
  "smulbb %[p1], %[xh], %[g]\n\t"                   \
  "smultb %[p2], %[xl], %[g]\n\t"                   \
  "smultb %[p3], %[xh], %[g]\n\t"                   \
  "stmia %[o]!, {%[p0], %[p1], %[p2], %[p3]}\n\t"
  __asm__ volatile(
      "tst %[ng], #1\n\t"
      "beq 1f\n\t" XST_FC_OUTER_STEP
      "1:\n\t"
      "cmp %[xp], %[xe]\n\t"
      "beq 2f\n\t"
      "3:\n\t" XST_FC_OUTER_STEP XST_FC_OUTER_STEP
      "cmp %[xp], %[xe]\n\t"
      "bne 3b\n\t"
      "2:\n\t"
      : [o] "+&r"(o), [xp] "+&r"(xp), [xl] "=&r"(xl), [xh] "=&r"(xh), [p0] "=&r"(p0), [p1] "=&r"(p1),
        [p2] "=&r"(p2), [p3] "=&r"(p3)
      : [xe] "r"(xe), [ng] "r"(ng), [g] "r"(g)
      : "cc", "memory");
#undef XST_FC_OUTER_STEP
}

/* init: per-m start values (set), or NULL: add to out. */
static void mm_pairs(const int32_t *a2, int32_t astride, int32_t m, int32_t kp, const int8_t *b,
                     int32_t ldb, int32_t n, int32_t *out, int32_t ostride, const int32_t *init) {
  const int32_t n4 = n & ~3;
  for (int32_t mi = 0; mi < m; mi++) {
    const int32_t *ar = a2 + (size_t)mi * astride;
    int32_t *o = out + (size_t)mi * ostride;
    for (int32_t j = 0; j < n4; j += 4) {
      int32_t s0, s1, s2, s3;
      if (init) s0 = s1 = s2 = s3 = init[mi];
      else { s0 = o[j]; s1 = o[j + 1]; s2 = o[j + 2]; s3 = o[j + 3]; }
      const int8_t *p = b + j;
      const int32_t *ap = ar, *const aend = ar + (kp & ~1);
#define XST_FC_PAIR_STEP(g, p0, p1)                                 \
  do {                                                              \
    const uint32_t u0 = ld4_out(p0), u1 = ld4_out(p1);              \
    const uint32_t t = pkhbt16(u0, u1), v = pkhtb16(u1, u0);        \
    s0 = __smlad(__sxtb16((int32_t)t), g, s0);                      \
    s1 = __smlad(sxtb16_ror8(t), g, s1);                            \
    s2 = __smlad(__sxtb16((int32_t)v), g, s2);                      \
    s3 = __smlad(sxtb16_ror8(v), g, s3);                            \
  } while (0)
      while (ap != aend) { /* two pairs of b rows a trip */
        const int32_t g0 = ap[0], g1 = ap[1];
        XST_FC_PAIR_STEP(g0, p, p + ldb);
        XST_FC_PAIR_STEP(g1, p + 2 * ldb, p + 3 * ldb);
        ap += 2;
        p += 4 * ldb;
      }
      if (kp & 1) XST_FC_PAIR_STEP(ap[0], p, p + ldb);
#undef XST_FC_PAIR_STEP
      o[j] = s0; o[j + 1] = s1; o[j + 2] = s2; o[j + 3] = s3;
    }
    for (int32_t j = n4; j < n; j++) {
      uint32_t s = init ? (uint32_t)init[mi] : (uint32_t)o[j];
      const int8_t *p = b + j;
      for (int32_t q = 0; q < kp; q++) {
        const int32_t g = ar[q];
        const int32_t glo = (int32_t)((uint32_t)g << 16) / 65536; /* exact: a multiple of 2^16 */
        s += (uint32_t)(glo * p[0]);
        s += (uint32_t)(xst_floor_shr32(g, 16) * p[ldb]);
        p += 2 * ldb;
      }
      o[j] = (int32_t)s;
    }
  }
}
#endif

#define XST_FC_MAX_IN 65536   /* keeps the int32 forward accumulator exact */
#define XST_FC_MAX_ROWS 65535 /* keeps weight-gradient sums exact in int32 */

static int check_dims(const xst_fc_dims *d) {
  if (d->rows < 1 || d->in_features < 1 || d->out_features < 1) return XST_ERR_DIMS;
  if (d->in_features > XST_FC_MAX_IN || d->rows > XST_FC_MAX_ROWS) return XST_ERR_DIMS;
  if (d->out_features > (1 << 20)) return XST_ERR_DIMS;
  return XST_OK;
}

static int check_block(const xst_fc_dims *d, const xst_block *b) {
  if (b->oc_begin < 0 || b->oc_begin >= b->oc_end || b->oc_end > d->out_features) return XST_ERR_RANGE;
  if (b->ic_begin < 0 || b->ic_begin >= b->ic_end || b->ic_end > d->in_features) return XST_ERR_RANGE;
  return XST_OK;
}

static int check_lr(const xst_lr *lr, int32_t oc_begin, int32_t oc_end) {
  for (int32_t c = oc_begin; c < oc_end; c++) {
    if (lr->multiplier[c] < 0 || lr->shift[c] < -62 || lr->shift[c] > 62) return XST_ERR_PARAM;
  }
  return XST_OK;
}

size_t fully_connected_s8_forward_scratch_size(const xst_fc_dims *d) {
  (void)d;
  return 0;
}

#if defined(__GNUC__)
#define XST_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define XST_ALWAYS_INLINE inline
#endif

/* One output: clamp(requantize(acc) , lo, hi) + off, where lo/hi are the
 * activation bounds minus the output offset. The reference first saturates
 * requantize() to +-2^24 and then adds the offset and clamps; clamping to
 * [act_min - offset, act_max - offset] before adding it gives the same byte
 * (both bounds lie within +-255) without any overflow. */
static inline int8_t clamp_out(int32_t v, int32_t lo, int32_t hi, int32_t off) {
  v = v < lo ? lo : (v > hi ? hi : v);
  return (int8_t)(v + off);
}

#if XST_MM_DSP
/* xst_requantize_fast for a right shift e = -shift >= 2, in five
 * instructions: hi:lo = (acc < 0 ? -2^30 : 2^30) + rnd * 2^32 with rnd =
 * 2^(e-2) (the rounding constant of xst_requantize_fast: 2^30 + 2^(30+e) -
 * [acc < 0] 2^31), SMLAL adds acc * m, and the result is hi >> (e - 1).
 * requant_col adds the output offset times 2^(e-1) to rnd. */
static inline int32_t requant_e2(int32_t acc, int32_t m, int32_t rnd, int32_t sft) {
  int32_t lo, hi;
  __asm__("asr %[hi], %[acc], #31\n\t"
          "orr %[lo], %[c30], %[hi], lsl #31\n\t"
          "add %[hi], %[hi], %[rnd]\n\t"
          "smlal %[lo], %[hi], %[acc], %[m]\n\t"
          "asr %[hi], %[hi], %[sft]"
          : [lo] "=&r"(lo), [hi] "=&r"(hi)
          : [acc] "r"(acc), [m] "r"(m), [rnd] "r"(rnd), [sft] "r"(sft), [c30] "r"(0x40000000));
  return hi;
}
#else
/* The same in C (the portable path: host, RV32, Xtensa). */
static inline int32_t requant_e2(int32_t acc, int32_t m, int32_t rnd, int32_t sft) {
  const int64_t t = (int64_t)acc * m + (acc < 0 ? -((int64_t)1 << 30) : ((int64_t)1 << 30));
  return xst_floor_shr32((int32_t)xst_floor_shr64(t, 32) + rnd, sft);
}
#endif

/* The forward's accumulator tile on the stack: XST_FC_TILE int32 (1 KB
 * with the DSP path, 256 bytes elsewhere), up to XST_FC_TILE_ROWS rows of
 * XST_FC_TILE / rows columns: few rows get wide tiles (a lone row: 256
 * columns, expanded once for all of them by xst_mat_mult_s8), few columns
 * tall ones, and the epilogue loads each column's parameters once for all
 * the tile's rows. */
#if XST_MM_DSP
#define XST_FC_TILE 256
#define XST_FC_TILE_ROWS 8
#else
#define XST_FC_TILE (XST_MM_TILE_ROWS * XST_MM_TILE_COLS)
#define XST_FC_TILE_ROWS XST_MM_TILE_ROWS
#endif

/* Requantises one tile column: nr accumulators at tp (stride ts) plus the
 * bias b (wrapping like the reference) to the bytes at op (stride
 * ostride). full: the activation range is [-128, 127], where the clamp is a
 * saturation to int8. For right shifts e = -sh in [2, 23] the output offset
 * rides in the rounding constant: floor((h + rnd + off 2^(e-1)) / 2^(e-1))
 * = floor((h + rnd) / 2^(e-1)) + off, with |h + rnd + off 2^(e-1)| <
 * 2^30 + 2^21 + 2^29 in int32, and nothing is left to saturate. */
static XST_ALWAYS_INLINE void
requant_col(const int32_t *tp, int32_t ts, int32_t nr, int8_t *op, int32_t ostride, uint32_t b,
            int32_t m, int32_t sh, const xst_fc_quant *q, int full) {
  const int32_t off = q->output_offset, amin = q->act_min, amax = q->act_max;
  if (sh <= -2 && sh >= -23) {
    const int32_t sft = -sh - 1;
    const int32_t rnd = (int32_t)(1u << (sft - 1)) + off * (1 << sft);
    for (int32_t r = 0; r < nr; r++) {
      const int32_t v = requant_e2((int32_t)((uint32_t)*tp + b), m, rnd, sft);
#if XST_MM_DSP
      *op = (int8_t)(full ? __ssat(v, 8) : xst_clamp32(v, amin, amax));
#else
      (void)full;
      *op = (int8_t)xst_clamp32(v, amin, amax);
#endif
      tp += ts;
      op += ostride;
    }
  } else {
    for (int32_t r = 0; r < nr; r++) {
      *op = clamp_out(xst_requantize_fast((int32_t)((uint32_t)*tp + b), m, sh), amin - off, amax - off, off);
      tp += ts;
      op += ostride;
    }
  }
}

/* Requantises a tile (nr rows x nc columns, row stride ts) for output
 * channels c0.. into o (row stride ostride). always_inline: the calls with
 * bias == NULL and full get their own copies. */
static XST_ALWAYS_INLINE void
requant_tile(const int32_t *tile, int32_t ts, int32_t nr, int32_t nc, const int32_t *bias,
             const xst_fc_quant *q, int32_t c0, int8_t *o, int32_t ostride, int full) {
  const int32_t *mult = q->multiplier + c0, *shift = q->shift + c0;
  for (int32_t c = 0; c < nc; c++) {
    requant_col(tile + c, ts, nr, o + c, ostride, bias ? (uint32_t)bias[c] : 0u, mult[c], shift[c], q, full);
  }
}

/* The activation mask of the outputs: bit k set iff act_min < v < act_max
 * before the clamp, which is act_min < out[k] < act_max after it (a clamped
 * value sits on a bound). Whole bytes are written; a partial last byte keeps
 * its bits beyond n. act_min < x < act_max is (uint32)(x - act_min - 1) <=
 * act_max - act_min - 2 when act_max - act_min >= 2, and never otherwise. */
static void set_mask(const int8_t *out, size_t n, int32_t act_min, int32_t act_max, uint8_t *mask) {
  const int32_t base = act_min + 1;
  const int any = act_max - act_min >= 2;
  const uint32_t wm1 = any ? (uint32_t)(act_max - act_min - 2) : 0u;
  size_t k = 0;
#if XST_MM_DSP
  if (any) {
    /* 4 outputs a word (in_range4, top = act_max - 1); byte j & (1 << j),
     * times 0x01010101, sums the four bits into the top byte. */
    const uint32_t base4 = ((uint32_t)base & 0xFFu) * 0x01010101u;
    const uint32_t top4 = ((uint32_t)(act_max - 1) & 0xFFu) * 0x01010101u;
    for (; k + 8 <= n; k += 8) {
      const uint32_t v0 = ld4_out(out + k), v1 = ld4_out(out + k + 4);
      const uint32_t m0 = in_range4(v0, base4, top4), m1 = in_range4(v1, base4, top4);
      const uint32_t b0 = ((m0 & 0x08040201u) * 0x01010101u) >> 24;
      const uint32_t b1 = ((m1 & 0x08040201u) * 0x01010101u) >> 24;
      mask[k >> 3] = (uint8_t)(b0 | (b1 << 4));
    }
  }
#endif
  for (; k + 8 <= n; k += 8) {
    uint32_t bits = 0;
    if (any) {
      for (int j = 0; j < 8; j++) bits |= (uint32_t)((uint32_t)(out[k + j] - base) <= wm1) << j;
    }
    mask[k >> 3] = (uint8_t)bits;
  }
  if (k < n) {
    uint32_t bits = 0, keep = 0xFFu;
    for (int j = 0; k + (size_t)j < n; j++) {
      if (any && (uint32_t)(out[k + j] - base) <= wm1) bits |= 1u << j;
      keep &= ~(1u << j);
    }
    mask[k >> 3] = (uint8_t)((mask[k >> 3] & keep) | bits);
  }
}

int fully_connected_s8_forward(const xst_fc_dims *d, const xst_fc_quant *q,
                               const int8_t *in, const int8_t *w,
                               const int32_t *bias, int8_t *out,
                               uint8_t *mask) {
  int st = check_dims(d);
  if (st) return st;
  if (q->input_offset < -127 || q->input_offset > 128) return XST_ERR_PARAM;
  if (q->output_offset < -128 || q->output_offset > 127) return XST_ERR_PARAM;
  if (q->act_min < -128 || q->act_max > 127 || q->act_min > q->act_max) return XST_ERR_PARAM;
  const int32_t IN = d->in_features, OUT = d->out_features;
  for (int32_t c = 0; c < OUT; c++) {
    if (q->multiplier[c] < 0 || q->shift[c] < -31 || q->shift[c] > 30) return XST_ERR_PARAM;
  }
  /* Accumulators in tiles (xst_mat_mult_s8), each requantised right away. */
  int32_t tile[XST_FC_TILE];
  const int full = q->act_min == -128 && q->act_max == 127;
  /* Tile rows: at least XST_FC_TILE_ROWS, more when few output channels
   * leave room (48x48x8 -> 16: 16 rows of 16), never more than there are. */
  int32_t tr = XST_FC_TILE / OUT;
  if (tr < XST_FC_TILE_ROWS) tr = XST_FC_TILE_ROWS;
  if (tr > d->rows) tr = d->rows;
  const int32_t ts = XST_FC_TILE / tr; /* tile columns (row stride) */
  for (int32_t r0 = 0; r0 < d->rows; r0 += tr) {
    const int32_t nr = d->rows - r0 < tr ? d->rows - r0 : tr;
    for (int32_t c0 = 0; c0 < OUT; c0 += ts) {
      const int32_t nc = OUT - c0 < ts ? OUT - c0 : ts;
      /* |acc| <= 255 * 128 * 65536 < 2^31 */
      xst_mat_mult_s8(in + (size_t)r0 * IN, nr, w + (size_t)c0 * IN, nc, IN,
                      q->input_offset, tile, ts);
      int8_t *o = out + (size_t)r0 * OUT + c0;
      if (bias && full) requant_tile(tile, ts, nr, nc, bias + c0, q, c0, o, OUT, 1);
      else if (bias) requant_tile(tile, ts, nr, nc, bias + c0, q, c0, o, OUT, 0);
      else if (full) requant_tile(tile, ts, nr, nc, NULL, q, c0, o, OUT, 1);
      else requant_tile(tile, ts, nr, nc, NULL, q, c0, o, OUT, 0);
    }
  }
  if (mask) set_mask(out, (size_t)d->rows * (size_t)OUT, q->act_min, q->act_max, mask);
  return XST_OK;
}

/* Pre-scaling of grad_out by the weight-scale mantissa keeps the int32 sum
 * over out_features exact: |gs| <= 2^(22 - pre), |w| <= 2^7, count <= 2^k,
 * so pre >= k - 1 bounds the sum by 2^30. */
static int backward_input_prescale(int32_t out_features) {
  int k = xst_bit_length((uint32_t)(out_features - 1)); /* ceil(log2(out)) */
  return k > 9 ? k - 1 : 8;
}

size_t fully_connected_s8_backward_input_scratch_size(const xst_fc_dims *d) {
  /* int32 acc[rows * in], then int16 gs[out] */
  return (size_t)d->rows * (size_t)d->in_features * 4u + (size_t)d->out_features * 2u;
}

int fully_connected_s8_backward_input(const xst_fc_dims *d,
                                      const xst_wscale *ws,
                                      const int8_t *grad_out,
                                      const int32_t *grad_out_exp,
                                      const int8_t *w, int8_t *grad_in,
                                      int32_t *grad_in_exp, void *scratch) {
  int st = check_dims(d);
  if (st) return st;
  const int32_t IN = d->in_features, OUT = d->out_features;
  if (ws->exp < -64 || ws->exp > 64) return XST_ERR_PARAM;
  if (*grad_out_exp < -1024 || *grad_out_exp > 1024) return XST_ERR_PARAM;
  for (int32_t c = 0; c < OUT; c++) {
    if (ws->mantissa_q15[c] < 0) return XST_ERR_PARAM;
  }
  int32_t *acc = (int32_t *)scratch;
  const int pre = backward_input_prescale(OUT);
#if XST_MM_DSP
  /* Per row: the prescaled gradients as packed pairs (OUT / 2 words, in the
   * gs area), then acc[r] = sum over output-channel pairs (mm_pairs); an odd
   * last channel is added in C. */
  int32_t *gp = acc + (size_t)d->rows * IN;
  const int32_t kp = OUT / 2;
  const int32_t half = (int32_t)1 << (pre - 1);
  for (int32_t r = 0; r < d->rows; r++) {
    const int8_t *g = grad_out + (size_t)r * OUT;
    int32_t *a = acc + (size_t)r * IN;
    for (int32_t j = 0; j < kp; j++) {
      const int32_t g0 = xst_floor_shr32((int32_t)g[2 * j] * ws->mantissa_q15[2 * j] + half, pre);
      const int32_t g1 = xst_floor_shr32((int32_t)g[2 * j + 1] * ws->mantissa_q15[2 * j + 1] + half, pre);
      gp[j] = (int32_t)(((uint32_t)g0 & 0xFFFFu) | ((uint32_t)g1 << 16));
    }
    static const int32_t zero = 0;
    if (kp > 0) mm_pairs(gp, 0, 1, kp, w, IN, IN, a, 0, &zero);
    else {
      for (int32_t i = 0; i < IN; i++) a[i] = 0;
    }
    if (OUT & 1) {
      const int32_t c = OUT - 1;
      const int32_t gc = xst_floor_shr32((int32_t)g[c] * ws->mantissa_q15[c] + half, pre);
      const int8_t *wc = w + (size_t)c * IN;
      if (gc != 0) {
        for (int32_t i = 0; i < IN; i++) a[i] += wc[i] * gc;
      }
    }
  }
#else
  int16_t *gs = (int16_t *)(acc + (size_t)d->rows * IN);
  for (int32_t r = 0; r < d->rows; r++) {
    const int8_t *g = grad_out + (size_t)r * OUT;
    int32_t *a = acc + (size_t)r * IN;
    for (int32_t c = 0; c < OUT; c++) {
      gs[c] = (int16_t)xst_floor_shr32((int32_t)g[c] * ws->mantissa_q15[c] + (1 << (pre - 1)), pre);
    }
    for (int32_t i = 0; i < IN; i++) a[i] = 0;
    for (int32_t c = 0; c < OUT; c++) {
      const int32_t gc = gs[c];
      if (gc == 0) continue; /* exact: adds nothing */
      const int8_t *wc = w + (size_t)c * IN;
      for (int32_t i = 0; i < IN; i++) a[i] += wc[i] * gc;
    }
  }
#endif
  /* Normalise: the largest magnitude lands in [64, 127]. */
  const int s = xst_normalize_s8(acc, (size_t)d->rows * IN, grad_in);
  *grad_in_exp = *grad_out_exp + ws->exp - 15 + pre + s;
  return XST_OK;
}

int fully_connected_s8_backward_bias(const xst_fc_dims *d, const xst_block *blk,
                                     const int8_t *grad_out, int32_t *grad_bias) {
  int st = check_dims(d);
  if (st) return st;
  if (blk->oc_begin < 0 || blk->oc_begin >= blk->oc_end || blk->oc_end > d->out_features) return XST_ERR_RANGE;
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    int32_t s = 0;
    for (int32_t r = 0; r < d->rows; r++) s += grad_out[(size_t)r * d->out_features + c];
    grad_bias[c - blk->oc_begin] = s;
  }
  return XST_OK;
}

#if XST_MM_DSP
/* rows >= 2: out[c - c_begin][i] = sum_r grad_out[r][c] (x[r][i] + off), c in
 * [c_begin, c_end), i < nic (x: the inputs at the block's first column, row
 * stride in_features; out row stride ostride), as G^T X over row pairs
 * (mm_pairs): the output gradients of a group of channels, transposed to
 * packed row pairs, on the stack (XST_FC_BW_A words, chunks of row pairs);
 * the input offset enters as off * sum_r g[r][c], the start value of each
 * sum; an odd last row is added in C. */
static void bw_pairs(const xst_fc_dims *d, int32_t c_begin, int32_t c_end, const int8_t *x, int32_t nic,
                     int32_t input_offset, const int8_t *grad_out, int32_t *out, int32_t ostride) {
  const int32_t IN = d->in_features, OUT = d->out_features;
  int32_t a2[XST_FC_BW_A], init[XST_FC_BW_M];
  const int32_t kp = d->rows / 2;
  const int32_t kpc = kp < XST_FC_BW_A ? kp : XST_FC_BW_A;
  int32_t mc = XST_FC_BW_A / kpc;
  if (mc > XST_FC_BW_M) mc = XST_FC_BW_M;
  for (int32_t c0 = c_begin; c0 < c_end; c0 += mc) {
    const int32_t nm = c_end - c0 < mc ? c_end - c0 : mc;
    int32_t *o = out + (size_t)(c0 - c_begin) * ostride;
    for (int32_t mi = 0; mi < nm; mi++) {
      int32_t s = 0; /* |s| <= 128 * 65535: exact, and so is off * s */
      for (int32_t r = 0; r < d->rows; r++) s += grad_out[(size_t)r * OUT + c0 + mi];
      init[mi] = input_offset * s;
    }
    for (int32_t q0 = 0; q0 < kp; q0 += kpc) {
      const int32_t nq = kp - q0 < kpc ? kp - q0 : kpc;
      for (int32_t mi = 0; mi < nm; mi++) {
        const int8_t *g = grad_out + (size_t)(2 * q0) * OUT + c0 + mi;
        int32_t *ap = a2 + mi * nq;
        for (int32_t q = 0; q < nq; q++) {
          ap[q] = (int32_t)(((uint32_t)(int32_t)g[0] & 0xFFFFu) | ((uint32_t)(int32_t)g[OUT] << 16));
          g += 2 * OUT;
        }
      }
      mm_pairs(a2, nq, nm, nq, x + (size_t)(2 * q0) * IN, IN, nic, o, ostride, q0 == 0 ? init : NULL);
    }
    if (d->rows & 1) {
      const int32_t r = d->rows - 1;
      const int8_t *xr = x + (size_t)r * IN;
      for (int32_t mi = 0; mi < nm; mi++) {
        const int32_t g = grad_out[(size_t)r * OUT + c0 + mi];
        int32_t *om = o + (size_t)mi * ostride;
        if (g == 0) continue;
        for (int32_t i = 0; i < nic; i++) om[i] += g * xr[i];
      }
    }
  }
}
#endif

int fully_connected_s8_backward_weight(const xst_fc_dims *d,
                                       const xst_block *blk,
                                       int32_t input_offset,
                                       const int8_t *grad_out,
                                       const int8_t *in, int32_t *grad_w) {
  int st = check_dims(d);
  if (!st) st = check_block(d, blk);
  if (st) return st;
  if (input_offset < -127 || input_offset > 128) return XST_ERR_PARAM;
  const int32_t IN = d->in_features, OUT = d->out_features;
  const int32_t nic = blk->ic_end - blk->ic_begin;
#if XST_MM_DSP
  if (d->rows == 1) {
    /* An outer product: grad_w[c][i] = g[c] * (x[i] + off). The inputs
     * plus offset expanded to int16 pairs (x0, x2), (x1, x3) per 4, once per
     * chunk of XST_FC_BW_XC; then 4 outputs per SMULBB / SMULTB quad. */
    int32_t xb[XST_FC_BW_XC / 2];
    const int32_t off2 = (int32_t)(((uint32_t)input_offset & 0xFFFFu) * 0x10001u);
    const int8_t *x = in + blk->ic_begin;
    for (int32_t i0 = 0; i0 < nic; i0 += XST_FC_BW_XC) {
      const int32_t n = nic - i0 < XST_FC_BW_XC ? nic - i0 : XST_FC_BW_XC;
      const int32_t n4 = n & ~3;
      for (int32_t j = 0; j < n4; j += 4) {
        const uint32_t u = ld4_out(x + i0 + j);
        xb[j / 2] = __sxtab16(off2, (int32_t)u);
        int32_t h;
        __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(h) : "r"(off2), "r"(u));
        xb[j / 2 + 1] = h;
      }
      for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
        const int32_t g = grad_out[c];
        int32_t *o = grad_w + (size_t)(c - blk->oc_begin) * nic + i0;
        if (n4 > 0) outer_row(o, xb, n4 / 4, g);
        for (int32_t j = n4; j < n; j++) o[j] = g * ((int32_t)x[i0 + j] + input_offset);
      }
    }
    return XST_OK;
  }
  bw_pairs(d, blk->oc_begin, blk->oc_end, in + blk->ic_begin, nic, input_offset, grad_out, grad_w, nic);
  return XST_OK;
#endif
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    int32_t *gw = grad_w + (size_t)(c - blk->oc_begin) * nic;
    for (int32_t i = 0; i < nic; i++) gw[i] = 0;
    for (int32_t r = 0; r < d->rows; r++) {
      const int32_t g = grad_out[(size_t)r * OUT + c];
      if (g == 0) continue;
      const int8_t *x = in + (size_t)r * IN + blk->ic_begin;
      for (int32_t i = 0; i < nic; i++) gw[i] += g * ((int32_t)x[i] + input_offset);
    }
  }
  return XST_OK;
}

int fully_connected_s8_backward_weight_sgd(const xst_fc_dims *d,
                                           const xst_block *blk,
                                           int32_t input_offset,
                                           const int8_t *grad_out,
                                           const int32_t *grad_out_exp,
                                           const int8_t *in, const xst_lr *lr,
                                           int8_t *w, uint32_t *rng) {
  int st = check_dims(d);
  if (!st) st = check_block(d, blk);
  if (!st) st = check_lr(lr, blk->oc_begin, blk->oc_end);
  if (st) return st;
  if (input_offset < -127 || input_offset > 128) return XST_ERR_PARAM;
  if (*rng == 0) return XST_ERR_PARAM;
  const int32_t IN = d->in_features, OUT = d->out_features;
  const int32_t e = *grad_out_exp;
  for (int32_t c = blk->oc_begin; c < blk->oc_end; c++) {
    const int32_t m = lr->multiplier[c], sh = lr->shift[c];
    int8_t *wc = w + (size_t)c * IN;
    if (d->rows == 1) {
      /* Batch 1, the on-device case: one product per element, whole rows
       * skipped when the output gradient is zero (no random draw then). */
      const int32_t g = grad_out[c];
      if (g == 0) continue;
      const int64_t R = 31 - (int64_t)sh - (int64_t)e;
#if XST_SGD_DSP
      if (xst_sgd_dsp_ok(R)) {
        uint32_t state = *rng;
        const int32_t sr = (int32_t)R - 32, sr32 = 64 - (int32_t)R;
        const int8_t *x = in + blk->ic_begin;
        int8_t *wp = wc + blk->ic_begin;
        const int32_t n = blk->ic_end - blk->ic_begin;
        for (int32_t i = 0; i < n; i++) {
          const int32_t gi = g * ((int32_t)x[i] + input_offset);
          if (gi != 0) wp[i] = xst_sgd_s8_dsp(wp[i], gi, m, sr, sr32, &state);
        }
        *rng = state;
        continue;
      }
#endif
      if (xst_sgd_fast_ok(R)) {
        uint32_t state = *rng; /* kept in a register along the row */
        for (int32_t i = blk->ic_begin; i < blk->ic_end; i++) {
          const int32_t gi = g * ((int32_t)in[i] + input_offset);
          if (gi != 0) wc[i] = xst_sgd_s8_fast(wc[i], gi, m, (int)R, &state);
        }
        *rng = state;
        continue;
      }
      for (int32_t i = blk->ic_begin; i < blk->ic_end; i++) {
        const int32_t gi = g * ((int32_t)in[i] + input_offset);
        if (gi == 0) continue;
        int64_t v = (int64_t)wc[i] - xst_sgd_step(gi, m, sh, e, rng);
        wc[i] = (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
      }
      continue;
    }
#if XST_MM_DSP
    {
      /* rows >= 2: the channel's gradients XST_FC_BW_T columns at a time
       * (bw_pairs into a stack tile), then the updates in column order. */
      int32_t tile[XST_FC_BW_T];
      const int64_t R = 31 - (int64_t)sh - (int64_t)e;
      const int32_t sr = (int32_t)R - 32, sr32 = 64 - (int32_t)R;
      for (int32_t i0 = blk->ic_begin; i0 < blk->ic_end; i0 += XST_FC_BW_T) {
        const int32_t n = blk->ic_end - i0 < XST_FC_BW_T ? blk->ic_end - i0 : XST_FC_BW_T;
        bw_pairs(d, c, c + 1, in + i0, n, input_offset, grad_out, tile, n);
        int8_t *wp = wc + i0;
        if (xst_sgd_dsp_ok(R)) {
          uint32_t state = *rng;
          for (int32_t i = 0; i < n; i++) {
            if (tile[i] != 0) wp[i] = xst_sgd_s8_dsp(wp[i], tile[i], m, sr, sr32, &state);
          }
          *rng = state;
        } else {
          for (int32_t i = 0; i < n; i++) {
            if (tile[i] == 0) continue;
            int64_t v = (int64_t)wp[i] - xst_sgd_step(tile[i], m, sh, e, rng);
            wp[i] = (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
          }
        }
      }
      continue;
    }
#endif
    for (int32_t i = blk->ic_begin; i < blk->ic_end; i++) {
      int32_t gi = 0;
      for (int32_t r = 0; r < d->rows; r++) {
        gi += grad_out[(size_t)r * OUT + c] * ((int32_t)in[(size_t)r * IN + i] + input_offset);
      }
      if (gi == 0) continue;
      int64_t v = (int64_t)wc[i] - xst_sgd_step(gi, m, sh, e, rng);
      wc[i] = (int8_t)(v < -127 ? -127 : (v > 127 ? 127 : v));
    }
  }
  return XST_OK;
}
