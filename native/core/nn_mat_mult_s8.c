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

/* Two rows x two columns over k4 = k & ~3 (x1 = x0 + k, w1 = w0 + k):
 * s[r][c] += sum (x_r + off) * w_c. 23 instructions per 16 MACs. The asm
 * takes the 13 registers GCC can give an asm statement, so off2 is reloaded
 * from memory once per step (GCC 12 spills worse than that from the same
 * loop in C). noinline: inlined, the registers the caller keeps live can
 * leave too few for the asm ("impossible constraints"). */
static __attribute__((noinline)) void block_2x2_k4(const int8_t *x0, const int8_t *w0, int32_t k,
                         int32_t k4, int32_t off2, int32_t s[4]) {
  int32_t s00 = s[0], s01 = s[1], s10 = s[2], s11 = s[3];
  const int8_t *end = x0 + k4;
  const int32_t km4 = k - 4; /* x1 - x0 after the post-increment */
  int32_t t0, t1, t2, t3, t4, t5;
  if (k4 > 0) {
    __asm__ volatile(
        "1:\n\t"
        "ldr %[t0], %[off2]\n\t"
        "ldr %[t1], [%[x0]], #4\n\t"
        "ldr %[t2], [%[x0], %[km4]]\n\t"
        "sxtab16 %[t3], %[t0], %[t1]\n\t"
        "sxtab16 %[t1], %[t0], %[t1], ror #8\n\t"
        "sxtab16 %[t4], %[t0], %[t2]\n\t"
        "sxtab16 %[t2], %[t0], %[t2], ror #8\n\t"
        "ldr %[t0], [%[w0]], #4\n\t"
        "sxtb16 %[t5], %[t0]\n\t"
        "smlad %[s00], %[t3], %[t5], %[s00]\n\t"
        "smlad %[s10], %[t4], %[t5], %[s10]\n\t"
        "sxtb16 %[t0], %[t0], ror #8\n\t"
        "smlad %[s00], %[t1], %[t0], %[s00]\n\t"
        "smlad %[s10], %[t2], %[t0], %[s10]\n\t"
        "ldr %[t0], [%[w0], %[km4]]\n\t"
        "sxtb16 %[t5], %[t0]\n\t"
        "smlad %[s01], %[t3], %[t5], %[s01]\n\t"
        "smlad %[s11], %[t4], %[t5], %[s11]\n\t"
        "sxtb16 %[t0], %[t0], ror #8\n\t"
        "smlad %[s01], %[t1], %[t0], %[s01]\n\t"
        "smlad %[s11], %[t2], %[t0], %[s11]\n\t"
        "cmp %[x0], %[end]\n\t"
        "bne 1b\n\t"
        : [x0] "+&r"(x0), [w0] "+&r"(w0), [s00] "+&r"(s00), [s01] "+&r"(s01),
          [s10] "+&r"(s10), [s11] "+&r"(s11), [t0] "=&r"(t0), [t1] "=&r"(t1),
          [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4), [t5] "=&r"(t5)
        : [km4] "r"(km4), [end] "r"(end), [off2] "m"(off2) /* on the stack */
        : "cc", "memory");
  }
  s[0] = s00; s[1] = s01; s[2] = s10; s[3] = s11;
}

static void block_2x2(const int8_t *x0, const int8_t *w0, int32_t k,
                      int32_t off, int32_t *o0, int32_t *o1) {
  const int32_t off2 = (int32_t)(((uint32_t)off & 0xFFFFu) * 0x10001u);
  const int32_t k4 = k & ~3;
  int32_t s[4] = {0, 0, 0, 0};
  block_2x2_k4(x0, w0, k, k4, off2, s);
  const int8_t *x1 = x0 + k, *w1 = w0 + k;
  for (int32_t i = k4; i < k; i++) {
    const int32_t a0 = x0[i] + off, a1 = x1[i] + off;
    s[0] += a0 * w0[i];
    s[1] += a0 * w1[i];
    s[2] += a1 * w0[i];
    s[3] += a1 * w1[i];
  }
  o0[0] = s[0];
  o0[1] = s[1];
  o1[0] = s[2];
  o1[1] = s[3];
}

/* One step of 4 k for one row x four columns (w rows w0, w0 + k, w2,
 * w2 + k), pointers post-incremented: 23 instructions per 16 MACs. */
#define XST_STEP_1X4                                   \
  "ldr %[u], [%[x]], #4\n\t"                           \
  "sxtab16 %[xl], %[off2], %[u]\n\t"                   \
  "sxtab16 %[xh], %[off2], %[u], ror #8\n\t"           \
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

#define XST_OPERANDS_1X4                                                    \
  : [x] "+&r"(x), [w0] "+&r"(w0), [w2] "+&r"(w2), [s0] "+&r"(s0),          \
    [s1] "+&r"(s1), [s2] "+&r"(s2), [s3] "+&r"(s3), [u] "=&r"(u),          \
    [t] "=&r"(t), [xl] "=&r"(xl), [xh] "=&r"(xh)                            \
  : [km4] "r"(km4), [end] "m"(end), [off2] "r"(off2)                        \
  : "cc", "memory"

/* The k & ~3 part of one row x four columns (w rows at w, w + k, w + 2k,
 * w + 3k), 8 k per loop trip. noinline for the reason given above. */
static __attribute__((noinline)) void loop_1x4(const int8_t *x, const int8_t *w,
                                               int32_t k, int32_t off2, int32_t s[4]) {
  const int8_t *w0 = w, *w2 = w + 2 * k;
  const int32_t km4 = k - 4;
  const int32_t step4 = k & 4;
  int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, u, t, xl, xh;
  const int8_t *end = x + (k & ~7);
  if (k >= 8) {
    __asm__ volatile("1:\n\t" XST_STEP_1X4 XST_STEP_1X4
                     "ldr %[t], %[end]\n\t" /* no 14th register for end */
                     "cmp %[x], %[t]\n\t"
                     "bne 1b\n\t" XST_OPERANDS_1X4);
  }
  if (step4) __asm__ volatile(XST_STEP_1X4 XST_OPERANDS_1X4);
  s[0] = s0;
  s[1] = s1;
  s[2] = s2;
  s[3] = s3;
}

/* One row x four columns. */
static void block_1x4(const int8_t *x, const int8_t *w, int32_t k,
                      int32_t off, int32_t *o) {
  const int32_t off2 = (int32_t)(((uint32_t)off & 0xFFFFu) * 0x10001u);
  const int8_t *const xs = x, *const ws = w;
  int32_t s[4];
  if (k >= 4) {
    loop_1x4(x, w, k, off2, s);
  } else {
    s[0] = s[1] = s[2] = s[3] = 0;
  }
  int32_t s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
  for (int32_t i = k & ~3; i < k; i++) {
    const int32_t a = xs[i] + off;
    s0 += a * ws[i];
    s1 += a * ws[k + i];
    s2 += a * ws[2 * k + i];
    s3 += a * ws[3 * k + i];
  }
  o[0] = s0;
  o[1] = s1;
  o[2] = s2;
  o[3] = s3;
}

/* One row x one column. */
static int32_t block_1x1(const int8_t *x, const int8_t *w, int32_t k, int32_t off) {
  const int32_t off2 = (int32_t)(((uint32_t)off & 0xFFFFu) * 0x10001u);
  int32_t s = 0;
  int32_t i = 0;
  for (; i + 4 <= k; i += 4) {
    const uint32_t v = ld4(x + i), u = ld4(w + i);
    s = __smlad(lo16x2_off(off2, v), lo16x2(u), s);
    s = __smlad(hi16x2_off(off2, v), hi16x2(u), s);
  }
  for (; i < k; i++) s += (x[i] + off) * w[i];
  return s;
}

void xst_mat_mult_s8(const int8_t *a, int32_t rows, const int8_t *b,
                     int32_t cols, int32_t k, int32_t a_offset, int32_t *acc,
                     int32_t acc_stride) {
  int32_t r = 0;
  for (; r + 2 <= rows; r += 2) {
    const int8_t *x0 = a + (size_t)r * k;
    int32_t *o0 = acc + (size_t)r * acc_stride;
    int32_t c = 0;
    for (; c + 2 <= cols; c += 2) {
      block_2x2(x0, b + (size_t)c * k, k, a_offset, o0 + c, o0 + acc_stride + c);
    }
    if (c < cols) {
      const int8_t *w0 = b + (size_t)c * k;
      o0[c] = block_1x1(x0, w0, k, a_offset);
      o0[acc_stride + c] = block_1x1(x0 + k, w0, k, a_offset);
    }
  }
  if (r < rows) {
    const int8_t *x0 = a + (size_t)r * k;
    int32_t *o0 = acc + (size_t)r * acc_stride;
    int32_t c = 0;
    for (; c + 4 <= cols; c += 4) block_1x4(x0, b + (size_t)c * k, k, a_offset, o0 + c);
    for (; c < cols; c++) o0[c] = block_1x1(x0, b + (size_t)c * k, k, a_offset);
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
