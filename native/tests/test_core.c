/*
 * Host tests of the C core, built with -fsanitize=address,undefined
 * (host-tests/c-core.test.ts builds and runs this). Known-answer checks of
 * the fixed-point helpers, bounds/alignment/alias rejection by the
 * dispatcher, and a fuzz of every op with random arguments over an arena
 * allocated to its exact size, so any out-of-bounds access or undefined
 * behaviour aborts the run. Prints "N passed, 0 failed" on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/xst.h"
#include "../core/xst_fixed.h"

static int passed = 0, failed = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (cond) passed++;                                    \
    else {                                                 \
      failed++;                                            \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);          \
      printf(__VA_ARGS__);                                 \
      printf("\n");                                        \
    }                                                      \
  } while (0)

static void test_fixed_point(void) {
  /* gemmlowp / TFLite semantics */
  CHECK(xst_sat_round_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX, "saturating case");
  CHECK(xst_sat_round_doubling_high_mul(1 << 30, 1 << 30) == 1 << 29, "0.5*0.5");
  /* -1.5: gemmlowp's nudge for negative products is 1 - 2^30, so a negative
   * tie rounds toward zero */
  CHECK(xst_sat_round_doubling_high_mul(-3, 1 << 30) == -1, "negative tie: %d",
        xst_sat_round_doubling_high_mul(-3, 1 << 30));
  CHECK(xst_sat_round_doubling_high_mul(3, 1 << 30) == 2, "positive tie rounds up");
  CHECK(xst_rounding_divide_by_pot(5, 1) == 3, "5/2 -> 3");
  CHECK(xst_rounding_divide_by_pot(-5, 1) == -3, "-5/2 -> -3");
  CHECK(xst_rounding_divide_by_pot(-4, 1) == -2, "-4/2 -> -2");
  CHECK(xst_rounding_divide_by_pot(INT32_MIN, 31) == -1, "INT32_MIN >> 31");
  /* 1000 * 0.75 = 750: multiplier 0.75 in Q31, shift 0 */
  CHECK(xst_requantize(1000, 1610612736, 0) == 750, "requant 0.75");
  /* 1000 * 0.75 * 2^-3 = 93.75 -> 94 */
  CHECK(xst_requantize(1000, 1610612736, -3) == 94, "requant right shift");
  /* 1000 * 0.75 * 2^2 = 3000 */
  CHECK(xst_requantize(1000, 1610612736, 2) == 3000, "requant left shift");
  CHECK(xst_floor_shr32(-1, 5) == -1 && xst_floor_shr32(-32, 5) == -1 && xst_floor_shr32(-33, 5) == -2, "floor shr");
  uint32_t s = 1;
  CHECK(xst_xorshift32(&s) == 270369u, "xorshift32 first value from 1: %u", s);
  const uint8_t digits[] = "123456789";
  CHECK(xst_crc32(0, digits, 9) == 0xCBF43926u, "crc32 check value");
}

/* An arena of exactly `len` bytes from malloc, so ASan sees its end. */
static uint8_t *arena_new(uint32_t len) {
  uint8_t *a = (uint8_t *)malloc(len ? len : 1);
  memset(a, 0, len ? len : 1);
  return a;
}

static void test_rejections(void) {
  uint32_t len = 256;
  uint8_t *a = arena_new(len);
  /* activation backward: n = 100 needs 13 mask bytes + 100 grad bytes */
  int32_t ok[3] = {100, 0, 16};
  CHECK(xst_dispatch(XST_OP_ACTIVATION_BACKWARD, ok, 3, a, len) == XST_OK, "valid call");
  int32_t past[3] = {100, 0, 200};
  CHECK(xst_dispatch(XST_OP_ACTIVATION_BACKWARD, past, 3, a, len) == XST_ERR_BOUNDS, "grad past the end");
  int32_t neg[3] = {100, -1, 16};
  CHECK(xst_dispatch(XST_OP_ACTIVATION_BACKWARD, neg, 3, a, len) == XST_ERR_BOUNDS, "negative offset");
  int32_t huge[3] = {1 << 24, 0, 16};
  CHECK(xst_dispatch(XST_OP_ACTIVATION_BACKWARD, huge, 3, a, len) == XST_ERR_BOUNDS, "n larger than the arena");
  int32_t zero[3] = {0, 0, 16};
  CHECK(xst_dispatch(XST_OP_ACTIVATION_BACKWARD, zero, 3, a, len) == XST_ERR_DIMS, "n = 0");
  int32_t overlap[3] = {100, 0, 8};
  CHECK(xst_dispatch(XST_OP_ACTIVATION_BACKWARD, overlap, 3, a, len) == XST_ERR_ALIAS, "grad overlaps mask");
  CHECK(xst_dispatch(XST_OP_ACTIVATION_BACKWARD, ok, 2, a, len) == XST_ERR_ARG_COUNT, "too few args");
  CHECK(xst_dispatch(99, ok, 3, a, len) == XST_ERR_BAD_OP, "unknown op");
  CHECK(xst_dispatch(0, ok, 3, a, len) == XST_ERR_BAD_OP, "op 0");
  /* softmax: label cell misaligned */
  int32_t sm[7] = {10, 0, 11819, 17, 32, 44, -1};
  CHECK(xst_dispatch(XST_OP_SOFTMAX_XENT_BACKWARD, sm, 7, a, len) == XST_ERR_ALIGN, "misaligned label");
  sm[3] = 16;
  *(int32_t *)(a + 16) = 10; /* label out of range */
  CHECK(xst_dispatch(XST_OP_SOFTMAX_XENT_BACKWARD, sm, 7, a, len) == XST_ERR_PARAM, "label >= classes");
  *(int32_t *)(a + 16) = 3;
  CHECK(xst_dispatch(XST_OP_SOFTMAX_XENT_BACKWARD, sm, 7, a, len) == XST_OK, "softmax valid");
  CHECK(*(int32_t *)(a + 44) == -7, "softmax grad exponent");
  /* forward: an empty channel block or a too-small weight tensor */
  int32_t fc[14] = {1, 64, 8, 128, 0, -128, 127, 0, 64, -1, 64 + 512, -1, 0, 0};
  CHECK(xst_dispatch(XST_OP_FC_FORWARD, fc, 14, a, len) == XST_ERR_BOUNDS, "weights past the end");
  int32_t bw[11] = {1, 4, 4, 2, 2, 0, 4, 0, 0, 8, 16};
  CHECK(xst_dispatch(XST_OP_FC_BACKWARD_WEIGHT, bw, 11, a, len) == XST_ERR_RANGE, "empty oc range");
  bw[4] = 5;
  CHECK(xst_dispatch(XST_OP_FC_BACKWARD_WEIGHT, bw, 11, a, len) == XST_ERR_RANGE, "oc_end > out");
  free(a);
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void) { return xst_xorshift32(&rnd_state); }
static int32_t pick(const int32_t *v, int n) { return v[rnd() % (uint32_t)n]; }

/* Random argument vectors: mostly plausible (small dims, in-range offsets,
 * sensible parameters) so kernels run deep, sometimes hostile. */
static int32_t rand_arg(uint32_t len) {
  static const int32_t hostile[] = {-1, -2, 0, 1, 2, 3, 127, 128, -128, 255, 65535, 65536,
                                    1 << 24, (1 << 24) + 1, INT32_MAX, INT32_MIN, -31, 30, 31, 62, 63};
  switch (rnd() % 8) {
    case 0: return pick(hostile, (int)(sizeof hostile / sizeof hostile[0]));
    case 1: case 2: return (int32_t)(rnd() % 12) + 1;           /* a small dimension */
    case 3: return (int32_t)(rnd() % 256) - 128;                /* an int8-ish parameter */
    default: return (int32_t)((rnd() % (len + 8)) & ~3u) - 4;   /* an offset, aligned, maybe out */
  }
}

static void fill_arena(uint8_t *a, uint32_t len) {
  int small = rnd() & 1;
  for (uint32_t i = 0; i < len; i++) a[i] = (uint8_t)(small ? (rnd() % 5) : rnd());
  /* keep some int32 cells plausible: shifts, exponents, rng, labels */
  for (uint32_t i = 0; i + 4 <= len; i += 4) {
    if (rnd() % 3 == 0) {
      int32_t v = (int32_t)(rnd() % 64) - 32;
      memcpy(a + i, &v, 4);
    }
  }
}

static void fuzz_dispatch(int iterations) {
  int ran_ok = 0, rejected = 0;
  for (int it = 0; it < iterations; it++) {
    uint32_t len = 64 + rnd() % 2048;
    uint8_t *a = arena_new(len);
    fill_arena(a, len);
    int32_t op = 1 + (int32_t)(rnd() % (XST_OP_COUNT - 1));
    int32_t n = xst_op_nargs(op);
    int32_t args[16];
    for (int k = 0; k < n; k++) args[k] = rand_arg(len);
    int st = xst_dispatch(op, args, n, a, len);
    if (st == XST_OK) ran_ok++;
    else rejected++;
    free(a);
  }
  printf("fuzz: %d calls ran, %d rejected\n", ran_ok, rejected);
  CHECK(ran_ok > iterations / 100, "fuzz reached the kernels (%d ran)", ran_ok);
}

int main(int argc, char **argv) {
  int iterations = argc > 1 ? atoi(argv[1]) : 200000;
  test_fixed_point();
  test_rejections();
  fuzz_dispatch(iterations);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
