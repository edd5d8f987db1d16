/*
 * The shared int8 matrix product (see nn_mat_mult_s8.h for the contract and
 * its callers): a DSP path for Arm cores with SMLAD, the portable C for the
 * rest. Both compute exact int32 sums, so they agree to the bit.
 */
#include "nn_mat_mult_s8.h"

#if XST_MM_DSP
#include <arm_acle.h>

/* A 32-bit load from any address. Cortex-M3/M4/M7/M33 allow unaligned LDR;
 * the aligned(1) typedef makes GCC emit exactly that, where a memcpy would
 * become a library call under -ffreestanding. may_alias: it reads int8 data. */
typedef uint32_t xst_u32_unaligned __attribute__((aligned(1), may_alias));

static inline uint32_t ld4(const int8_t *p) {
  return *(const xst_u32_unaligned *)(const void *)p;
}

/* Bytes 0 and 2 of x sign-extended into two int16 lanes (low, high)... */
static inline int32_t lo16x2(uint32_t x) { return __sxtb16((int32_t)x); }
/* ...and bytes 1 and 3. Both operands of an SMLAD are split the same way. */
static inline int32_t hi16x2(uint32_t x) {
  int32_t r; /* GCC 12 does not fold a rotate into SXTB16's operand */
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
/* The same with the input offset (both lanes of off2) added. */
static inline int32_t lo16x2_off(int32_t off2, uint32_t x) { return __sxtab16(off2, (int32_t)x); }
static inline int32_t hi16x2_off(int32_t off2, uint32_t x) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(off2), "r"(x));
  return r;
}

/* The DSP product works on the a rows "expanded": per group of 4 k, the
 * int16 pairs (a[0] + off, a[2] + off) and (a[1] + off, a[3] + off) that an
 * SMLAD multiplies with __sxtb16(w) and __sxtb16(w ror 8). Expanded once per
 * row (pair) and chunk of XST_MM_KC k, they serve every column, so the inner
 * loops only load and split the weights (2 * XST_MM_KC k per chunk for a lone row):
 *  - 2 rows x 2 columns: 15 instructions per 16 MACs (LDM of the 4 expanded
 *    words, 2 LDR + 4 SXTB16 of weights, 8 SMLAD), two steps per loop trip;
 *  - 1 row x 4 columns (a lone row): 21 per 16 MACs.
 * The k % 4 tail is added in scalar C at the end. Stack: XST_MM_KC int32. */
#define XST_MM_KC 256 /* k per chunk (a multiple of 4) */

/* Expands rows a0 (and a1 when two) over k4 (a multiple of 4) int8 into
 * buf: 4 words per 4 k for two rows (row 0 lo, hi, row 1 lo, hi), 2 for
 * one. */
static void expand2(const int8_t *a0, const int8_t *a1, int32_t k4, int32_t off2, int32_t *buf) {
  for (int32_t i = 0; i < k4; i += 4) {
    const uint32_t v0 = ld4(a0 + i), v1 = ld4(a1 + i);
    buf[0] = lo16x2_off(off2, v0);
    buf[1] = hi16x2_off(off2, v0);
    buf[2] = lo16x2_off(off2, v1);
    buf[3] = hi16x2_off(off2, v1);
    buf += 4;
  }
}
static void expand1(const int8_t *a0, int32_t k4, int32_t off2, int32_t *buf) {
  for (int32_t i = 0; i < k4; i += 4) {
    const uint32_t v0 = ld4(a0 + i);
    buf[0] = lo16x2_off(off2, v0);
    buf[1] = hi16x2_off(off2, v0);
    buf += 2;
  }
}

/* One column against expanded row data (stride words per group, lo and hi
 * at xb[0], xb[1]) over ng groups of 4 k. */
static int32_t dot_expanded(const int32_t *xb, int32_t stride, int32_t ng, const int8_t *w, int32_t s) {
  for (int32_t g = 0; g < ng; g++) {
    const uint32_t u = ld4(w);
    s = __smlad(xb[0], lo16x2(u), s);
    s = __smlad(xb[1], hi16x2(u), s);
    xb += stride;
    w += 4;
  }
  return s;
}

/* nrp >= 1 row pairs x 2 * npairs columns over one chunk of ng >= 1 groups
 * of 4 k (xb0: the chunk's expanded row pairs, 4 * ng words each; w: column
 * 0's weights at the chunk; k: the weight row stride). acc rows o, o +
 * ostride, ...; accumulate: add to them, else set them. The expanded words go to r8-r11 so that one LDM
 * loads them (its register list is in ascending order). The loop does two
 * groups a trip; where a column pair starts (set: a first group with SMUAD
 * instead of zeroed sums, or load the sums) and where it enters the loop
 * (an odd count of groups starts in the middle) is decided once per call:
 * the code addresses, Thumb bit set, sit in the frame and each pair jumps
 * through them with LDR PC (3 instructions a pair instead of 11). */
#define XST_STEP_2X2_OP(mac00, mac01)                  \
  "ldmia %[xb]!, {%[a0], %[a1], %[a2], %[a3]}\n\t"     \
  "ldr %[u], [%[w0]], #4\n\t"                          \
  "sxtb16 %[t], %[u]\n\t"                              \
  mac00                                                \
  "sxtb16 %[u], %[u], ror #8\n\t"                      \
  "smlad %[s00], %[a1], %[u], %[s00]\n\t"              \
  "smlad %[s10], %[a3], %[u], %[s10]\n\t"              \
  "ldr %[u], [%[w0], %[km4]]\n\t"                      \
  "sxtb16 %[t], %[u]\n\t"                              \
  mac01                                                \
  "sxtb16 %[u], %[u], ror #8\n\t"                      \
  "smlad %[s01], %[a1], %[u], %[s01]\n\t"              \
  "smlad %[s11], %[a3], %[u], %[s11]\n\t"
#define XST_STEP_2X2                                                   \
  XST_STEP_2X2_OP("smlad %[s00], %[a0], %[t], %[s00]\n\t"              \
                  "smlad %[s10], %[a2], %[t], %[s10]\n\t",             \
                  "smlad %[s01], %[a0], %[t], %[s01]\n\t"              \
                  "smlad %[s11], %[a2], %[t], %[s11]\n\t")
#define XST_STEP_2X2_FIRST                                             \
  XST_STEP_2X2_OP("smuad %[s00], %[a0], %[t]\n\t"                      \
                  "smuad %[s10], %[a2], %[t]\n\t",                     \
                  "smuad %[s01], %[a0], %[t]\n\t"                      \
                  "smuad %[s11], %[a2], %[t]\n\t")

/* aligned(4): ADR's PC is Align(PC, 4), and GAS resolves the ADRs below
 * within the section assuming its alignment; at -Os functions are only
 * 2-aligned and the computed addresses would be off by 2. */
static __attribute__((noinline, aligned(4))) void mm_2rows(const int32_t *xb0, int32_t ng, const int8_t *w,
                                               int32_t k, int32_t *o, int32_t ostride,
                                               int32_t npairs, int32_t accumulate, int32_t nrp) {
  /* Everything the loops do not keep in registers lives in this frame (an
   * asm statement takes at most 30 operands, read-write ones count twice). */
  const int32_t *xend = xb0 + 4 * ng;
  const int32_t *const xlast = xb0 + 4 * ng * nrp; /* xend of the last row pair */
  const int32_t wstep = 2 * k - 4 * ng; /* w0 at a pair's end -> next pair */
  const int32_t obytes = ostride * 4;
  const int32_t ostep = 2 * obytes - 8 * npairs; /* o at a row pair's end -> next */
  int32_t *oend = o + 2 * npairs;
  const int8_t *const wbase = w;
  /* bit 0: ng odd; bit 1: ng == 1; bit 2: accumulate */
  const int32_t flags = (ng & 1) | (ng == 1 ? 2 : 0) | (accumulate ? 4 : 0);
  const int32_t km4 = k - 4;
  const int8_t *w0;
  const int32_t *xb;
  int32_t s00, s01, s10, s11, u, t;
  uint32_t start, entry, entry_rest; /* code addresses */
  register int32_t a0 __asm__("r8");
  register int32_t a1 __asm__("r9");
  register int32_t a2 __asm__("r10");
  register int32_t a3 __asm__("r11");
  __asm__ volatile(
      /* entry: all ng groups (after loading the sums); entry_rest: the
       * ng - 1 after the SMUAD group, none when ng == 1 */
      "ldr %[t], %[flags]\n\t"
      "tst %[t], #1\n\t"
      "ite eq\n\t"
      "adreq.w %[u], 1f\n\t"
      "adrne.w %[u], 4f\n\t"
      "orr %[u], %[u], #1\n\t"
      "str %[u], %[entry]\n\t"
      "tst %[t], #1\n\t"
      "ite eq\n\t"
      "adreq.w %[u], 4f\n\t"
      "adrne.w %[u], 1f\n\t"
      "tst %[t], #2\n\t"
      "it ne\n\t"
      "adrne.w %[u], 8f\n\t"
      "orr %[u], %[u], #1\n\t"
      "str %[u], %[entry_rest]\n\t"
      "tst %[t], #4\n\t"
      "ite eq\n\t"
      "adreq.w %[u], 7f\n\t"
      "adrne.w %[u], 5f\n\t"
      "orr %[u], %[u], #1\n\t"
      "str %[u], %[start]\n\t"
      "ldr %[w0], %[wbase]\n\t"
      "2:\n\t" /* a column pair */
      "ldr %[xb], %[xb0]\n\t"
      "ldr pc, %[start]\n\t"
      "7:\n\t" XST_STEP_2X2_FIRST
      "ldr pc, %[entry_rest]\n\t"
      "5:\n\t"
      "ldr %[u], %[o]\n\t"
      "ldr %[t], %[obytes]\n\t"
      "ldr %[s10], [%[u], %[t]]\n\t"
      "add %[t], %[t], %[u]\n\t"
      "ldr %[s11], [%[t], #4]\n\t"
      "ldr %[s01], [%[u], #4]\n\t"
      "ldr %[s00], [%[u]]\n\t"
      "ldr pc, %[entry]\n\t"
      "1:\n\t" XST_STEP_2X2
      "4:\n\t" XST_STEP_2X2
      "ldr %[t], %[xend]\n\t"
      "cmp %[xb], %[t]\n\t"
      "bne 1b\n\t"
      "8:\n\t"
      "ldr %[u], %[o]\n\t"
      "ldr %[t], %[obytes]\n\t"
      "str %[s10], [%[u], %[t]]\n\t"
      "add %[t], %[t], %[u]\n\t"
      "str %[s11], [%[t], #4]\n\t"
      "str %[s01], [%[u], #4]\n\t"
      "str %[s00], [%[u]], #8\n\t"
      "str %[u], %[o]\n\t"
      "ldr %[t], %[wstep]\n\t"
      "add %[w0], %[w0], %[t]\n\t"
      "ldr %[t], %[oend]\n\t"
      "cmp %[u], %[t]\n\t"
      "bne 2b\n\t"
      /* the next row pair: its expanded block starts at xend, its acc
       * rows 2 * ostride further */
      "ldr %[t], %[xend]\n\t"
      "ldr %[u], %[xlast]\n\t"
      "cmp %[t], %[u]\n\t"
      "beq 9f\n\t"
      "ldr %[u], %[xb0]\n\t"
      "str %[t], %[xb0]\n\t"
      "sub %[u], %[t], %[u]\n\t"
      "add %[t], %[t], %[u]\n\t"
      "str %[t], %[xend]\n\t"
      "ldr %[u], %[o]\n\t"
      "ldr %[t], %[ostep]\n\t"
      "add %[u], %[u], %[t]\n\t"
      "str %[u], %[o]\n\t"
      "ldr %[t], %[obytes]\n\t"
      "ldr %[u], %[oend]\n\t"
      "add %[u], %[u], %[t], lsl #1\n\t"
      "str %[u], %[oend]\n\t"
      "ldr %[w0], %[wbase]\n\t"
      "b 2b\n\t"
      "9:\n\t"
      : [xb] "=&r"(xb), [w0] "=&r"(w0), [s00] "=&r"(s00), [s01] "=&r"(s01),
        [s10] "=&r"(s10), [s11] "=&r"(s11), [u] "=&r"(u), [t] "=&r"(t),
        [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [o] "+m"(o),
        [start] "=m"(start), [entry] "=m"(entry), [entry_rest] "=m"(entry_rest),
        [xb0] "+m"(xb0), [xend] "+m"(xend), [oend] "+m"(oend)
      : [km4] "r"(km4), [wstep] "m"(wstep), [obytes] "m"(obytes), [ostep] "m"(ostep),
        [wbase] "m"(wbase), [flags] "m"(flags), [xlast] "m"(xlast)
      : "cc", "memory");
}

/* One row x 4 * nquads columns over one chunk (xb: 2 words per group). */
#define XST_STEP_1X4                                   \
  "ldrd %[xl], %[xh], [%[xb]], #8\n\t"                 \
  "ldr %[u], [%[w0]], #4\n\t"                          \
  "sxtb16 %[t], %[u]\n\t"                              \
  "smlad %[s0], %[xl], %[t], %[s0]\n\t"                \
  "sxtb16 %[u], %[u], ror #8\n\t"                      \
  "smlad %[s0], %[xh], %[u], %[s0]\n\t"                \
  "ldr %[u], [%[w0], %[km4]]\n\t"                      \
  "sxtb16 %[t], %[u]\n\t"                              \
  "smlad %[s1], %[xl], %[t], %[s1]\n\t"                \
  "sxtb16 %[u], %[u], ror #8\n\t"                      \
  "smlad %[s1], %[xh], %[u], %[s1]\n\t"                \
  "ldr %[u], [%[w2]], #4\n\t"                          \
  "sxtb16 %[t], %[u]\n\t"                              \
  "smlad %[s2], %[xl], %[t], %[s2]\n\t"                \
  "sxtb16 %[u], %[u], ror #8\n\t"                      \
  "smlad %[s2], %[xh], %[u], %[s2]\n\t"                \
  "ldr %[u], [%[w2], %[km4]]\n\t"                      \
  "sxtb16 %[t], %[u]\n\t"                              \
  "smlad %[s3], %[xl], %[t], %[s3]\n\t"                \
  "sxtb16 %[u], %[u], ror #8\n\t"                      \
  "smlad %[s3], %[xh], %[u], %[s3]\n\t"

static __attribute__((noinline)) void mm_1row(const int32_t *xb0, int32_t ng, const int8_t *w,
                                              int32_t k, int32_t *o, int32_t nquads,
                                              int32_t accumulate) {
  const int32_t *const xend = xb0 + 2 * ng;
  const int32_t wstep = 4 * k - 4 * ng;
  int32_t *const oend = o + 4 * nquads;
  const int32_t odd = ng & 1, acc = accumulate;
  const int32_t km4 = k - 4;
  const int8_t *w0 = w, *w2 = w + 2 * k;
  const int32_t *xb;
  int32_t s0, s1, s2, s3, u, t, xl, xh;
  __asm__ volatile(
      "2:\n\t"
      "ldr %[xb], %[xb0]\n\t"
      "ldr %[t], %[acc]\n\t"
      "cmp %[t], #0\n\t"
      "bne 5f\n\t"
      "mov %[s0], #0\n\t"
      "mov %[s1], #0\n\t"
      "mov %[s2], #0\n\t"
      "mov %[s3], #0\n\t"
      "6:\n\t"
      "ldr %[t], %[odd]\n\t"
      "cmp %[t], #0\n\t"
      "bne 4f\n\t"
      "1:\n\t" XST_STEP_1X4
      "4:\n\t" XST_STEP_1X4
      "cmp %[xb], %[xend]\n\t"
      "bne 1b\n\t"
      "ldr %[u], %[o]\n\t"
      "strd %[s0], %[s1], [%[u]]\n\t"
      "strd %[s2], %[s3], [%[u], #8]\n\t"
      "add %[u], %[u], #16\n\t"
      "str %[u], %[o]\n\t"
      "ldr %[t], %[wstep]\n\t"
      "add %[w0], %[w0], %[t]\n\t"
      "add %[w2], %[w2], %[t]\n\t"
      "ldr %[t], %[oend]\n\t"
      "cmp %[u], %[t]\n\t"
      "bne 2b\n\t"
      "b 9f\n\t"
      "5:\n\t"
      "ldr %[u], %[o]\n\t"
      "ldrd %[s0], %[s1], [%[u]]\n\t"
      "ldrd %[s2], %[s3], [%[u], #8]\n\t"
      "b 6b\n\t"
      "9:\n\t"
      : [xb] "=&r"(xb), [w0] "+&r"(w0), [w2] "+&r"(w2), [s0] "=&r"(s0), [s1] "=&r"(s1),
        [s2] "=&r"(s2), [s3] "=&r"(s3), [u] "=&r"(u), [t] "=&r"(t), [xl] "=&r"(xl),
        [xh] "=&r"(xh), [o] "+m"(o)
      : [km4] "r"(km4), [xend] "r"(xend), [xb0] "m"(xb0), [wstep] "m"(wstep),
        [oend] "m"(oend), [odd] "m"(odd), [acc] "m"(acc)
      : "cc", "memory");
}

void xst_mat_mult_s8(const int8_t *a, int32_t rows, const int8_t *b,
                     int32_t cols, int32_t k, int32_t a_offset, int32_t *acc,
                     int32_t acc_stride) {
  const int32_t off2 = (int32_t)(((uint32_t)a_offset & 0xFFFFu) * 0x10001u);
  const int32_t k4 = k & ~3, np = cols / 2;
  int32_t buf[XST_MM_KC];
  int32_t r = 0;
  if (k4 > 0 && k4 <= XST_MM_KC) {
    /* Short rows: as many row pairs as buf holds expanded at once, one
     * mm_2rows call for all of them (small k is all overhead otherwise). */
    const int32_t maxrp = XST_MM_KC / k4;
    while (rows - r >= 2) {
      int32_t nrp = (rows - r) / 2;
      if (nrp > maxrp) nrp = maxrp;
      for (int32_t p = 0; p < nrp; p++) {
        const int8_t *x0 = a + (size_t)(r + 2 * p) * k;
        expand2(x0, x0 + k, k4, off2, buf + p * k4);
      }
      int32_t *o0 = acc + (size_t)r * acc_stride;
      if (np > 0) mm_2rows(buf, k4 / 4, b, k, o0, acc_stride, np, 0, nrp);
      if (cols & 1) {
        const int32_t c = cols - 1;
        const int8_t *wl = b + (size_t)c * k;
        for (int32_t p = 0; p < nrp; p++) {
          int32_t *op = o0 + (size_t)(2 * p) * acc_stride;
          op[c] = dot_expanded(buf + p * k4, 4, k4 / 4, wl, 0);
          op[acc_stride + c] = dot_expanded(buf + p * k4 + 2, 4, k4 / 4, wl, 0);
        }
      }
      r += 2 * nrp;
    }
  } else {
    /* Long rows (or k < 4): one row pair at a time, XST_MM_KC k a chunk. */
    for (; rows - r >= 2; r += 2) {
      const int8_t *x0 = a + (size_t)r * k, *x1 = x0 + k;
      int32_t *o0 = acc + (size_t)r * acc_stride, *o1 = o0 + acc_stride;
      for (int32_t kc0 = 0; kc0 < k4; kc0 += XST_MM_KC) {
        const int32_t kc = k4 - kc0 < XST_MM_KC ? k4 - kc0 : XST_MM_KC;
        const int32_t ng = kc / 4, accumulate = kc0 > 0;
        const int8_t *wc = b + kc0;
        expand2(x0 + kc0, x1 + kc0, kc, off2, buf);
        if (np > 0) mm_2rows(buf, ng, wc, k, o0, acc_stride, np, accumulate, 1);
        if (cols & 1) {
          const int32_t c = cols - 1;
          const int8_t *wl = wc + (size_t)c * k;
          o0[c] = dot_expanded(buf, 4, ng, wl, accumulate ? o0[c] : 0);
          o1[c] = dot_expanded(buf + 2, 4, ng, wl, accumulate ? o1[c] : 0);
        }
      }
    }
  }
  if (r < rows) {
    /* A lone row: 2 * XST_MM_KC k a chunk (2 words per 4 k). */
    const int8_t *x0 = a + (size_t)r * k;
    int32_t *o0 = acc + (size_t)r * acc_stride;
    for (int32_t kc0 = 0; kc0 < k4; kc0 += 2 * XST_MM_KC) {
      const int32_t kc = k4 - kc0 < 2 * XST_MM_KC ? k4 - kc0 : 2 * XST_MM_KC;
      const int32_t ng = kc / 4, accumulate = kc0 > 0;
      const int8_t *wc = b + kc0;
      expand1(x0 + kc0, kc, off2, buf);
      const int32_t nq = cols / 4;
      if (nq > 0) mm_1row(buf, ng, wc, k, o0, nq, accumulate);
      for (int32_t c = nq * 4; c < cols; c++) {
        o0[c] = dot_expanded(buf, 2, ng, wc + (size_t)c * k, accumulate ? o0[c] : 0);
      }
    }
  }
  /* The k % 4 tail (all of k when k < 4: the sums start at 0 then). */
  if (k4 < k) {
    for (r = 0; r < rows; r++) {
      const int8_t *x = a + (size_t)r * k;
      int32_t *o = acc + (size_t)r * acc_stride;
      for (int32_t c = 0; c < cols; c++) {
        const int8_t *wl = b + (size_t)c * k;
        int32_t s = k4 > 0 ? o[c] : 0;
        for (int32_t i = k4; i < k; i++) s += (x[i] + a_offset) * wl[i];
        o[c] = s;
      }
    }
  }
}

#else /* portable C: host, RV32, Xtensa, XST_PORTABLE */

void xst_mat_mult_s8(const int8_t *a, int32_t rows, const int8_t *b,
                     int32_t cols, int32_t k, int32_t a_offset, int32_t *acc,
                     int32_t acc_stride) {
  for (int32_t r = 0; r < rows; r++) {
    const int8_t *x = a + (size_t)r * k;
    int32_t *o = acc + (size_t)r * acc_stride;
    for (int32_t c = 0; c < cols; c++) {
      const int8_t *w = b + (size_t)c * k;
      int32_t s = 0;
      for (int32_t i = 0; i < k; i++) s += ((int32_t)x[i] + a_offset) * w[i];
      o[c] = s;
    }
  }
}

#endif
