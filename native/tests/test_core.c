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

/* xst_requantize_fast against xst_requantize: every shift, edge values of
 * x and of the multiplier, then random triples (n of them). */
static void test_requantize_fast(int n) {
  static const int32_t xs[] = {0, 1, -1, 2, -2, 3, -3, 127, -128, 1 << 30, -(1 << 30), (1 << 30) + 1,
                               -(1 << 30) - 1, INT32_MAX, INT32_MIN, INT32_MIN + 1, 0x55555555, -0x55555555};
  static const int32_t ms[] = {0, 1, 2, 3, 1 << 30, (1 << 30) + 1, (1 << 30) - 1, INT32_MAX, INT32_MAX - 1,
                               1610612736, 1073741825, 1518500250};
  int bad = 0;
  for (int32_t sh = -31; sh <= 30; sh++) {
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
      for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++) {
        if (xst_requantize_fast(xs[i], ms[j], sh) != xst_requantize(xs[i], ms[j], sh)) bad++;
      }
    }
  }
  CHECK(bad == 0, "requantize_fast edges: %d differ", bad);
  uint32_t s = 99;
  bad = 0;
  for (int it = 0; it < n; it++) {
    uint32_t a = xst_xorshift32(&s), b = xst_xorshift32(&s), c = xst_xorshift32(&s);
    /* x: full range, or small (ties are frequent when |x * m| is small) */
    int32_t x = (int32_t)(c & 1 ? a : (a & 0xFFFFu) - 0x8000u);
    if (c & 2) x = (int32_t)((int64_t)(a & 0x3FFFFu) - 0x20000);
    int32_t m = (int32_t)(b >> 1);
    if (c & 4) m = (int32_t)((b >> 1) & 0xFFFF0000u) | 0x4000; /* low bits 0: exact ties */
    if (c & 8) m = (int32_t)(1u << (b % 31));
    int32_t sh = (int32_t)((c >> 8) % 62) - 31;
    if (xst_requantize_fast(x, m, sh) != xst_requantize(x, m, sh)) {
      if (bad++ < 5) printf("requantize_fast(%ld, %ld, %ld) = %ld, want %ld\n", (long)x, (long)m, (long)sh,
                            (long)xst_requantize_fast(x, m, sh), (long)xst_requantize(x, m, sh));
    }
  }
  CHECK(bad == 0, "requantize_fast random: %d of %d differ", bad, n);
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
  /* four extents of 2^16: 2^64 elements, which a uint64 size would wrap to
   * 0 bytes (and then pass the bounds check) */
  int32_t dwbig[19] = {1 << 16, 1 << 16, 1 << 16, 1 << 16, 1 << 16, 1 << 16, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0};
  CHECK(xst_dispatch(XST_OP_DEPTHWISE_CONV2D_BACKWARD_WEIGHT, dwbig, 19, a, len) == XST_ERR_DIMS, "depthwise tensor of 2^64 elements");
  int32_t poolbig[17] = {1 << 16, 1 << 16, 1 << 16, 1 << 16, 1 << 16, 1 << 16, 1, 1, 1, 1, 0, 0, -128, 127, 0, 0, -1};
  CHECK(xst_dispatch(XST_OP_AVG_POOL_FORWARD, poolbig, 17, a, len) == XST_ERR_DIMS, "pool tensor of 2^64 elements");
  free(a);
}

/* ---- average pool, global mean, add, softmax: known answers ------------ */
static void test_poolops(void) {
  /* average pool 2x2 VALID on a 2x2 image: (1+2+2+2)/4 = 1.75 -> 2 and
   * (-1-1-1-3)/4 = -1.5 -> -2 (half away from zero, as TFLite) */
  xst_pool_dims d = {1, 2, 2, 1, 1, 1, 2, 2, 1, 1, 0, 0};
  int8_t in[4] = {1, 2, 2, 2}, out[4];
  CHECK(average_pool_s8_forward(&d, -128, 127, in, out, 0) == XST_OK && out[0] == 2, "avg pool 1.75: %d", out[0]);
  int8_t in2[4] = {-1, -1, -1, -3};
  CHECK(average_pool_s8_forward(&d, -128, 127, in2, out, 0) == XST_OK && out[0] == -2, "avg pool -1.5: %d", out[0]);
  /* backward: one window of 4 taps, g = 64 * 2^0 -> each tap 16 = 64 * 2^-2 */
  int8_t g[1] = {64}, gi[4];
  int32_t ge = 0, gie = 0, scratch[4];
  CHECK(average_pool_s8_backward(&d, g, &ge, gi, &gie, scratch) == XST_OK, "avg pool backward");
  CHECK(gi[0] == 64 && gi[3] == 64 && gie == -2, "avg pool backward 64/4: %d * 2^%d", gi[0], (int)gie);
  xst_pool_dims bad = d;
  bad.pad_h = 2;
  CHECK(average_pool_s8_forward(&bad, -128, 127, in, out, 0) == XST_ERR_DIMS, "pad >= filter");
  /* mean: 4 pixels, s_in = s_out: multiplier 2^30 shift 1 (1.0) */
  int8_t m[1];
  CHECK(mean_s8_forward(&d, 0, 1 << 30, 1, 0, in, m) == XST_OK && m[0] == 2, "mean 1.75 -> %d", m[0]);
  /* ADD: s1 = s2 = 1/256, s_out = 1/128: 10 + 20 -> 15; -1 + 0 -> -0.5 -> -1 */
  xst_add_quant q = {0, 1 << 30, 0, 0, 1 << 30, 0, 20, 0, 1 << 30, -19, -128, 127};
  int8_t a[2] = {10, -1}, b[2] = {20, 0}, o[2];
  CHECK(add_s8_forward(2, &q, a, b, o, 0) == XST_OK && o[0] == 15 && o[1] == -1, "add: %d %d", o[0], o[1]);
  q.left_shift = 23;
  CHECK(add_s8_forward(2, &q, a, b, o, 0) == XST_ERR_PARAM, "add left_shift 23");
  /* GRAD_ADD: 100*2^-7 + 100*2^-7 = 100*2^-6; 3*2^-7 -> 1.5 -> 2 */
  int8_t ga[2] = {100, 3}, gb[2] = {100, 0}, gs[2];
  int32_t ea = -7, eb = -7, es = 0;
  CHECK(add_s8_grad_sum(2, ga, &ea, gb, &eb, gs, &es) == XST_OK && gs[0] == 100 && gs[1] == 2 && es == -6,
        "grad sum: %d %d 2^%d", gs[0], gs[1], (int)es);
  int8_t z[2] = {0, 0};
  ea = 1024, eb = -1024;
  CHECK(add_s8_grad_sum(2, z, &ea, gb, &eb, gs, &es) == XST_OK && gs[0] == 100 && es == -1024,
        "grad sum with an all-zero operand of a far exponent: %d 2^%d", gs[0], (int)es);
  /* softmax, beta = scale = 1: multiplier 2^30, left shift 27, diff_min -15:
   * [3, 3] -> 1/2 each -> 0; [10, 9] -> [0.731, 0.269] -> [59, -59] */
  xst_softmax_quant sq = {1 << 30, 27, -15};
  int8_t x[4] = {3, 3, 10, 9}, p[4];
  CHECK(softmax_s8_forward(2, 2, &sq, x, p) == XST_OK && p[0] == 0 && p[1] == 0 && p[2] == 59 && p[3] == -59,
        "softmax: %d %d %d %d", p[0], p[1], p[2], p[3]);
  sq.input_left_shift = 28; /* 15 << 28 overflows int32 */
  CHECK(softmax_s8_forward(2, 2, &sq, x, p) == XST_ERR_PARAM, "softmax radius overflow");
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
    int32_t args[32]; /* the longest op (conv2d forward) takes 24 */
    for (int k = 0; k < n; k++) args[k] = rand_arg(len);
    int st = xst_dispatch(op, args, n, a, len);
    if (st == XST_OK) ran_ok++;
    else rejected++;
    free(a);
  }
  printf("fuzz: %d calls ran, %d rejected\n", ran_ok, rejected);
  CHECK(ran_ok > iterations / 100, "fuzz reached the kernels (%d ran)", ran_ok);
}

/* ---- conv2d ------------------------------------------------------------- */

static void put_i32(uint8_t *a, uint32_t off, int32_t v) { memcpy(a + off, &v, 4); }
static int32_t get_i32(const uint8_t *a, uint32_t off) {
  int32_t v;
  memcpy(&v, a + off, 4);
  return v;
}

/* Known answers on a 3x3 single-channel image 1..9 with a 2x2 all-ones
 * kernel, requantisation by exactly 1 (multiplier 2^30, shift 1). */
static void test_conv2d_known(void) {
  uint32_t len = 1024;
  uint8_t *a = arena_new(len);
  for (int i = 0; i < 9; i++) a[i] = (uint8_t)(i + 1); /* in @0 (1,3,3,1) */
  for (int i = 0; i < 4; i++) a[16 + i] = 1;           /* w @16 (1,2,2,1) */
  put_i32(a, 32, 1 << 30);                             /* multiplier @32 */
  put_i32(a, 36, 1);                                   /* shift @36 */
  /* VALID: out 2x2 */
  int32_t valid[24] = {1, 3, 3, 1, 2, 2, 1, 2, 2, 1, 1, 0, 0, 0, 0, -128, 127, 0, 16, -1, 64, -1, 32, 36};
  CHECK(xst_dispatch(XST_OP_CONV2D_FORWARD, valid, 24, a, len) == XST_OK, "conv valid");
  const int8_t want_valid[4] = {12, 16, 24, 28};
  CHECK(memcmp(a + 64, want_valid, 4) == 0, "conv valid values %d %d %d %d", (int8_t)a[64], (int8_t)a[65],
        (int8_t)a[66], (int8_t)a[67]);
  /* SAME (TFLite: total pad 1, top/left 0): out 3x3, the bottom/right taps
   * fall outside and are skipped; with input_offset 1 a skipped tap adds 0,
   * not the offset. */
  int32_t same[24] = {1, 3, 3, 1, 3, 3, 1, 2, 2, 1, 1, 0, 0, 1, 0, -128, 127, 0, 16, -1, 64, 80, 32, 36};
  CHECK(xst_dispatch(XST_OP_CONV2D_FORWARD, same, 24, a, len) == XST_OK, "conv same");
  const int8_t want_same[9] = {16, 20, 11, 28, 32, 17, 17, 19, 10};
  CHECK(memcmp(a + 64, want_same, 9) == 0, "conv same values");
  CHECK(a[80] == 0xFF && (a[81] & 1) == 1, "conv mask: all 9 inside (-128, 127)");
  /* backward input, VALID geometry: grad_out 1,2,3,4 (exp 0), mantissa 256
   * and wscale exp 7 (s_w = 1), pre 8 so gs = g; the transposed conv is
   * 1 3 2 / 4 10 6 / 3 7 4, normalised by 2^3 (max 10 -> 80), exponent -3. */
  for (int i = 0; i < 4; i++) a[100 + i] = (uint8_t)(i + 1); /* grad_out @100 */
  put_i32(a, 104, 0);                                        /* grad_out_exp */
  a[108] = 0; a[109] = 1;                                    /* mantissa 256 @108 (LE) */
  int32_t bi[21] = {1, 3, 3, 1, 2, 2, 1, 2, 2, 1, 1, 0, 0, 108, 7, 100, 104, 16, 112, 124, 128};
  CHECK(xst_dispatch(XST_OP_CONV2D_BACKWARD_INPUT, bi, 21, a, len) == XST_OK, "conv backward input");
  const int8_t want_gi[9] = {8, 24, 16, 32, 80, 48, 24, 56, 32};
  CHECK(memcmp(a + 112, want_gi, 9) == 0 && get_i32(a, 124) == -3, "conv backward input values, exp %d",
        get_i32(a, 124));
  /* weight and bias gradients with grad_out all ones: the window sums. */
  for (int i = 0; i < 4; i++) a[100 + i] = 1;
  int32_t bw[21] = {1, 3, 3, 1, 2, 2, 1, 2, 2, 1, 1, 0, 0, 0, 1, 0, 1, 0, 100, 0, 256};
  CHECK(xst_dispatch(XST_OP_CONV2D_BACKWARD_WEIGHT, bw, 21, a, len) == XST_OK, "conv backward weight");
  CHECK(get_i32(a, 256) == 12 && get_i32(a, 260) == 16 && get_i32(a, 264) == 24 && get_i32(a, 268) == 28,
        "conv weight gradient");
  int32_t bb[17] = {1, 3, 3, 1, 2, 2, 1, 2, 2, 1, 1, 0, 0, 0, 1, 100, 272};
  CHECK(xst_dispatch(XST_OP_CONV2D_BACKWARD_BIAS, bb, 17, a, len) == XST_OK && get_i32(a, 272) == 4,
        "conv bias gradient");
  /* geometry the core refuses */
  same[11] = 2; /* pad_h >= k_h */
  CHECK(xst_dispatch(XST_OP_CONV2D_FORWARD, same, 24, a, len) == XST_ERR_DIMS, "pad >= k");
  same[11] = 0;
  same[4] = 4; /* a window starting below the image */
  CHECK(xst_dispatch(XST_OP_CONV2D_FORWARD, same, 24, a, len) == XST_ERR_DIMS, "out_h too large");
  same[4] = 3;
  same[3] = INT32_MAX;
  CHECK(xst_dispatch(XST_OP_CONV2D_FORWARD, same, 24, a, len) == XST_ERR_DIMS, "huge in_c");
  free(a);
}

/* Plausible conv geometry, tensors packed into an arena of exactly the size
 * they need (ASan sees any read or write past a tensor at the end), then
 * sometimes one argument replaced by a hostile value. */
static void fuzz_conv2d(int iterations) {
  int ran_ok = 0;
  for (int it = 0; it < iterations; it++) {
    int32_t d[13];
    d[0] = 1 + (int32_t)(rnd() % 2);          /* batch */
    d[1] = 1 + (int32_t)(rnd() % 7);          /* in_h */
    d[2] = 1 + (int32_t)(rnd() % 7);          /* in_w */
    d[3] = 1 + (int32_t)(rnd() % 6);          /* in_c */
    d[6] = 1 + (int32_t)(rnd() % 6);          /* out_c */
    d[7] = 1 + (int32_t)(rnd() % 5);          /* k_h */
    d[8] = 1 + (int32_t)(rnd() % 5);          /* k_w */
    d[9] = 1 + (int32_t)(rnd() % 3);          /* stride_h */
    d[10] = 1 + (int32_t)(rnd() % 3);         /* stride_w */
    d[11] = (int32_t)(rnd() % (uint32_t)d[7]); /* pad_h < k_h */
    d[12] = (int32_t)(rnd() % (uint32_t)d[8]);
    /* largest out with (out-1)*s - pad < in, then maybe smaller */
    d[4] = (d[1] - 1 + d[11]) / d[9] + 1;
    d[5] = (d[2] - 1 + d[12]) / d[10] + 1;
    if (rnd() & 1) d[4] = 1 + (int32_t)(rnd() % (uint32_t)d[4]);
    if (rnd() & 1) d[5] = 1 + (int32_t)(rnd() % (uint32_t)d[5]);
    const uint32_t X = (uint32_t)(d[0] * d[1] * d[2] * d[3]), Y = (uint32_t)(d[0] * d[4] * d[5] * d[6]);
    const uint32_t W = (uint32_t)(d[6] * d[7] * d[8] * d[3]), O = (uint32_t)d[6];
    int32_t op = XST_OP_CONV2D_FORWARD + (int32_t)(rnd() % 4);
    int32_t args[32];
    memcpy(args, d, sizeof d);
    uint32_t top = 0;
#define TAKE(n, al) (top = (top + (al) - 1) / (al) * (al), top += (n), (int32_t)(top - (n)))
    const int32_t ob = (int32_t)(rnd() % O), oe = ob + 1 + (int32_t)(rnd() % (O - (uint32_t)ob));
    const int32_t ib = (int32_t)(rnd() % (uint32_t)d[3]), ie = ib + 1 + (int32_t)(rnd() % ((uint32_t)d[3] - (uint32_t)ib));
    int32_t n;
    if (op == XST_OP_CONV2D_FORWARD) {
      int32_t q[4] = {(int32_t)(rnd() % 256) - 127, (int32_t)(rnd() % 256) - 128, -128, 127};
      memcpy(args + 13, q, sizeof q);
      args[17] = TAKE(X, 1);
      args[18] = TAKE(W, 1);
      args[19] = (rnd() & 1) ? TAKE(O * 4, 4) : -1;
      args[20] = TAKE(Y, 1);
      args[21] = (rnd() & 1) ? TAKE((Y + 7) / 8, 1) : -1;
      args[22] = TAKE(O * 4, 4);
      args[23] = TAKE(O * 4, 4);
      n = 24;
    } else if (op == XST_OP_CONV2D_BACKWARD_INPUT) {
      args[13] = TAKE(O * 2, 2);
      args[14] = (int32_t)(rnd() % 8) - 4;
      args[15] = TAKE(Y, 1);
      args[16] = TAKE(4, 4);
      args[17] = TAKE(W, 1);
      args[18] = TAKE(X, 1);
      args[19] = TAKE(4, 4);
      args[20] = TAKE(X * 4 + O * 2, 4);
      n = 21;
    } else if (op == XST_OP_CONV2D_BACKWARD_BIAS) {
      args[13] = ob;
      args[14] = oe;
      args[15] = TAKE(Y, 1);
      args[16] = TAKE((uint32_t)(oe - ob) * 4, 4);
      n = 17;
    } else {
      args[13] = ob;
      args[14] = oe;
      args[15] = ib;
      args[16] = ie;
      args[17] = (int32_t)(rnd() % 256) - 127;
      args[18] = TAKE(Y, 1);
      args[19] = TAKE(X, 1);
      args[20] = TAKE((uint32_t)(oe - ob) * (uint32_t)(d[7] * d[8]) * (uint32_t)(ie - ib) * 4, 4);
      n = 21;
    }
#undef TAKE
    uint8_t *a = arena_new(top);
    fill_arena(a, top);
    /* mostly valid parameters in the arena: Q31 multipliers, shifts, Q15
     * mantissas, gradient exponents (fill_arena leaves many out of range) */
    if (op == XST_OP_CONV2D_FORWARD && rnd() % 8) {
      for (uint32_t c = 0; c < O; c++) {
        put_i32(a, (uint32_t)args[22] + 4 * c, (int32_t)(rnd() >> 1));
        put_i32(a, (uint32_t)args[23] + 4 * c, (int32_t)(rnd() % 50) - 31);
      }
    }
    if (op == XST_OP_CONV2D_BACKWARD_INPUT && rnd() % 8) {
      for (uint32_t c = 0; c < O; c++) {
        int16_t m = (int16_t)(rnd() & 0x7FFF);
        memcpy(a + args[13] + 2 * c, &m, 2);
      }
      put_i32(a, (uint32_t)args[16], (int32_t)(rnd() % 64) - 32);
    }
    if (rnd() % 4 == 0) args[rnd() % (uint32_t)n] = rand_arg(top);
    if (xst_dispatch(op, args, n, a, top) == XST_OK) ran_ok++;
    free(a);
  }
  printf("conv2d fuzz: %d of %d calls ran\n", ran_ok, iterations);
  CHECK(ran_ok > iterations / 2, "conv2d fuzz reached the kernels (%d ran)", ran_ok);
}
/* ---- depthwise conv2d (ops 14-17) ---- */

static void test_dwconv_known_answers(void) {
  /* 1x3x3x1 image 1..9 (stored as v - 3, input_offset 3), 3x3 kernel, SAME,
   * mult 2: channel 0 weights 1, channel 1 weights -1; requant x1. */
  uint8_t *a = arena_new(1024);
  int8_t *in = (int8_t *)a, *w = (int8_t *)(a + 16), *out = (int8_t *)(a + 48);
  int32_t *bias = (int32_t *)(a + 80), *mult = (int32_t *)(a + 96), *shift = (int32_t *)(a + 104);
  for (int i = 0; i < 9; i++) in[i] = (int8_t)(i + 1 - 3);
  for (int t = 0; t < 9; t++) { w[2 * t] = 1; w[2 * t + 1] = -1; }
  bias[0] = 1; bias[1] = 0;
  mult[0] = mult[1] = 1 << 30; shift[0] = shift[1] = 1; /* 0.5 * 2^1 = 1 */
  int32_t fw[24] = {1, 3, 3, 1, 3, 3, 2, 3, 3, 1, 1, 1, 1, 3, 0, -128, 127, 0, 16, 80, 48, -1, 96, 104};
  CHECK(xst_dispatch(XST_OP_DEPTHWISE_CONV2D_FORWARD, fw, 24, a, 1024) == XST_OK, "dw forward runs");
  static const int sums[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
  int ok = 1;
  for (int k = 0; k < 9; k++) ok &= out[2 * k] == sums[k] + 1 && out[2 * k + 1] == -sums[k];
  CHECK(ok, "dw forward 3x3 SAME sums, mult 2, bias, input offset");

  /* Weight and bias gradients (mult 1, offset 0): grad_out all 1. */
  int8_t *g = (int8_t *)(a + 128), *x = (int8_t *)(a + 144);
  int32_t *gw = (int32_t *)(a + 160), *gb = (int32_t *)(a + 200);
  for (int i = 0; i < 9; i++) { g[i] = 1; x[i] = (int8_t)(i + 1); }
  int32_t bw[19] = {1, 3, 3, 1, 3, 3, 1, 3, 3, 1, 1, 1, 1, 0, 1, 0, 128, 144, 160};
  CHECK(xst_dispatch(XST_OP_DEPTHWISE_CONV2D_BACKWARD_WEIGHT, bw, 19, a, 1024) == XST_OK, "dw weight grad runs");
  /* tap (ky,kx) meets input (oy+ky-1, ox+kx-1): the forward's window sums */
  static const int32_t wsums[9] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
  ok = 1;
  for (int t = 0; t < 9; t++) ok &= gw[t] == wsums[t];
  CHECK(ok, "dw weight gradient 3x3 SAME");
  int32_t bb[17] = {1, 3, 3, 1, 3, 3, 1, 3, 3, 1, 1, 1, 1, 0, 1, 128, 200};
  CHECK(xst_dispatch(XST_OP_DEPTHWISE_CONV2D_BACKWARD_BIAS, bb, 17, a, 1024) == XST_OK && gb[0] == 9, "dw bias gradient");

  /* Input gradient: w all 1 with s_w = 16384 * 2^(1-15) = 1, grad_out all 1
   * (exp 0): the real gradient counts the windows covering each pixel
   * (corner 4, edge 6, centre 9). pre = 8, gs = 64, max acc 576 -> s = 3,
   * grad_in = count * 8, exponent 0 + 1 - 15 + 8 + 3 = -3. */
  int16_t *ws = (int16_t *)(a + 208);
  int8_t *w1 = (int8_t *)(a + 212), *gi = (int8_t *)(a + 224);
  int32_t *ge = (int32_t *)(a + 236), *gie = (int32_t *)(a + 240);
  ws[0] = 16384; *ge = 0;
  for (int t = 0; t < 9; t++) w1[t] = 1;
  int32_t bi[21] = {1, 3, 3, 1, 3, 3, 1, 3, 3, 1, 1, 1, 1, 208, 1, 128, 236, 212, 224, 240, 256};
  CHECK(xst_dispatch(XST_OP_DEPTHWISE_CONV2D_BACKWARD_INPUT, bi, 21, a, 1024) == XST_OK, "dw input grad runs");
  static const int8_t counts[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};
  ok = *gie == -3;
  for (int i = 0; i < 9; i++) ok &= gi[i] == counts[i] * 8;
  CHECK(ok, "dw input gradient window counts (exp %d)", (int)*gie);
  CHECK(depthwise_conv2d_s8_backward_input_scratch_size(&(xst_dwconv_dims){1, 3, 3, 1, 3, 3, 1, 3, 3, 1, 1, 1, 1}) == 38,
        "dw scratch size");
  /* Geometry rejections by the kernel itself. */
  fw[11] = 3; /* pad_h >= k_h */
  CHECK(xst_dispatch(XST_OP_DEPTHWISE_CONV2D_FORWARD, fw, 24, a, 1024) == XST_ERR_DIMS, "dw pad >= k");
  fw[11] = 1; fw[1] = 1; /* in_h 1: the third output row's window misses the image */
  CHECK(xst_dispatch(XST_OP_DEPTHWISE_CONV2D_FORWARD, fw, 24, a, 1024) == XST_ERR_DIMS, "dw window past the image");
  free(a);
}

/* Plausible depthwise calls (valid geometry, tensors laid out back to back
 * in an exactly-sized arena), one argument sometimes made hostile. */
static void fuzz_dwconv(int iterations) {
  int ran_ok = 0, rejected = 0;
  for (int it = 0; it < iterations; it++) {
    int32_t B = 1 + (int32_t)(rnd() % 2), H = 1 + (int32_t)(rnd() % 7), W = 1 + (int32_t)(rnd() % 7);
    int32_t C = 1 + (int32_t)(rnd() % 40), M = 1 + (int32_t)(rnd() % 4);
    int32_t KH = 1 + (int32_t)(rnd() % 5), KW = 1 + (int32_t)(rnd() % 5);
    int32_t SH = 1 + (int32_t)(rnd() % 3), SW = 1 + (int32_t)(rnd() % 3);
    /* SAME geometry */
    int32_t OH = (H + SH - 1) / SH, OW = (W + SW - 1) / SW;
    int32_t th = (OH - 1) * SH + KH - H, tw = (OW - 1) * SW + KW - W;
    int32_t PH = th > 0 ? th / 2 : 0, PW = tw > 0 ? tw / 2 : 0;
    int32_t OC = C * M;
    uint32_t nin = (uint32_t)(B * H * W * C), nout = (uint32_t)(B * OH * OW * OC), nw = (uint32_t)(KH * KW * OC);
    uint32_t top = 0;
#define DW_PLACE(bytes) (top = (top + 3u) & ~3u, top += (uint32_t)(bytes), (int32_t)(top - (uint32_t)(bytes)))
    int32_t o_in = DW_PLACE(nin), o_w = DW_PLACE(nw), o_bias = DW_PLACE(OC * 4), o_out = DW_PLACE(nout);
    int32_t o_mask = DW_PLACE((nout + 7) / 8), o_mult = DW_PLACE(OC * 4), o_shift = DW_PLACE(OC * 4);
    int32_t o_ws = DW_PLACE(OC * 2), o_ge = DW_PLACE(4), o_gin = DW_PLACE(nin), o_gie = DW_PLACE(4);
    int32_t o_scr = DW_PLACE(nin * 4 + (uint32_t)OC * 2);
    int32_t ob = (int32_t)(rnd() % (uint32_t)OC), oe = ob + 1 + (int32_t)(rnd() % (uint32_t)(OC - ob));
    int32_t o_gw = DW_PLACE((uint32_t)(KH * KW * (oe - ob)) * 4), o_gb = DW_PLACE((uint32_t)(oe - ob) * 4);
#undef DW_PLACE
    uint32_t len = top;
    uint8_t *a = arena_new(len);
    fill_arena(a, len);
    for (int32_t c = 0; c < OC; c++) { /* mostly valid requantisation and scales */
      int32_t m = (int32_t)(rnd() & 0x7FFFFFFF), sh = (int32_t)(rnd() % 40) - 31;
      int16_t ws = (int16_t)(rnd() % 32768);
      memcpy(a + o_mult + 4 * c, &m, 4);
      memcpy(a + o_shift + 4 * c, &sh, 4);
      memcpy(a + o_ws + 2 * c, &ws, 2);
    }
    int32_t ge = (int32_t)(rnd() % 64) - 32;
    memcpy(a + o_ge, &ge, 4);
    const int32_t dims[13] = {B, H, W, C, OH, OW, M, KH, KW, SH, SW, PH, PW};
    int32_t args[24];
    int32_t op = XST_OP_DEPTHWISE_CONV2D_FORWARD + (int32_t)(rnd() % 4);
    memcpy(args, dims, sizeof dims);
    int32_t ioff = (int32_t)(rnd() % 256) - 127, zp = (int32_t)(rnd() % 256) - 128;
    if (op == XST_OP_DEPTHWISE_CONV2D_FORWARD) {
      const int32_t rest[11] = {ioff, zp, -128, 127, o_in, o_w, rnd() & 1 ? o_bias : -1, o_out,
                                rnd() & 1 ? o_mask : -1, o_mult, o_shift};
      memcpy(args + 13, rest, sizeof rest);
    } else if (op == XST_OP_DEPTHWISE_CONV2D_BACKWARD_INPUT) {
      const int32_t rest[8] = {o_ws, (int32_t)(rnd() % 20) - 10, o_out, o_ge, o_w, o_gin, o_gie, o_scr};
      memcpy(args + 13, rest, sizeof rest);
    } else if (op == XST_OP_DEPTHWISE_CONV2D_BACKWARD_BIAS) {
      const int32_t rest[4] = {ob, oe, o_out, o_gb};
      memcpy(args + 13, rest, sizeof rest);
    } else {
      const int32_t rest[6] = {ob, oe, ioff, o_out, o_in, o_gw};
      memcpy(args + 13, rest, sizeof rest);
    }
    int32_t n = xst_op_nargs(op);
    if (rnd() % 4 == 0) args[rnd() % (uint32_t)n] = rand_arg(len);
    int st = xst_dispatch(op, args, n, a, len);
    if (st == XST_OK) ran_ok++;
    else rejected++;
    free(a);
  }
  printf("dwconv fuzz: %d calls ran, %d rejected\n", ran_ok, rejected);
  CHECK(ran_ok > iterations / 2, "dwconv fuzz reached the kernels (%d ran)", ran_ok);
}
/* ---- end depthwise conv2d ---- */
/* Plausible argument vectors for ops 18-23 (small shapes, tensors laid out
 * one after another in an exactly sized arena), one or two arguments then
 * replaced by a hostile value, so the kernels run often and the checks are
 * hit at their edges. */
static void fuzz_poolops(int iterations) {
  static const int32_t ops[6] = {XST_OP_AVG_POOL_FORWARD, XST_OP_AVG_POOL_BACKWARD, XST_OP_ADD_FORWARD,
                                 XST_OP_GRAD_ADD, XST_OP_SOFTMAX_FORWARD, XST_OP_MEAN_FORWARD};
  int ran[6] = {0, 0, 0, 0, 0, 0};
  for (int it = 0; it < iterations; it++) {
    const int which = (int)(rnd() % 6);
    const int32_t op = ops[which];
    int32_t a[32];
    uint32_t top = 0;
#define PLACE(bytes) (top = (top + 3u) & ~3u, top += (uint32_t)(bytes), (int32_t)(top - (uint32_t)(bytes)))
    if (op == XST_OP_AVG_POOL_FORWARD || op == XST_OP_AVG_POOL_BACKWARD || op == XST_OP_MEAN_FORWARD) {
      const int32_t B = 1 + (int32_t)(rnd() % 2), H = 1 + (int32_t)(rnd() % 6), W = 1 + (int32_t)(rnd() % 6);
      const int32_t C = 1 + (int32_t)(rnd() % 5);
      const int32_t fh = 1 + (int32_t)(rnd() % 4), fw = 1 + (int32_t)(rnd() % 4);
      const int32_t sh = 1 + (int32_t)(rnd() % 3), sw = 1 + (int32_t)(rnd() % 3);
      const int32_t ph = (int32_t)(rnd() % (uint32_t)fh), pw = (int32_t)(rnd() % (uint32_t)fw);
      const int32_t oh = (H - 1 + ph) / sh + 1, ow = (W - 1 + pw) / sw + 1;
      const uint32_t I = (uint32_t)(B * H * W * C), O = (uint32_t)(B * oh * ow * C);
      if (op == XST_OP_MEAN_FORWARD) {
        int32_t m[10] = {B, H, W, C, (int32_t)(rnd() % 256) - 128, (int32_t)(rnd() >> 1), (int32_t)(rnd() % 40) - 31,
                         (int32_t)(rnd() % 256) - 128, 0, 0};
        m[8] = PLACE(I);
        m[9] = PLACE((uint32_t)(B * C));
        memcpy(a, m, sizeof m);
      } else {
        int32_t p[12] = {B, H, W, C, oh, ow, fh, fw, sh, sw, ph, pw};
        memcpy(a, p, sizeof p);
        if (op == XST_OP_AVG_POOL_FORWARD) {
          a[12] = -128 + (int32_t)(rnd() % 128);
          a[13] = a[12] + (int32_t)(rnd() % (uint32_t)(128 - a[12]));
          a[14] = PLACE(I);
          a[15] = PLACE(O);
          a[16] = rnd() % 3 ? PLACE((O + 7) / 8) : -1;
        } else {
          a[12] = PLACE(O);
          a[13] = PLACE(4);
          a[14] = PLACE(I);
          a[15] = PLACE(4);
          a[16] = PLACE(I * 4);
        }
      }
    } else if (op == XST_OP_ADD_FORWARD) {
      const int32_t n = 1 + (int32_t)(rnd() % 40);
      int32_t q[13] = {n, (int32_t)(rnd() % 256) - 127, (int32_t)(rnd() >> 1), -(int32_t)(rnd() % 32),
                       (int32_t)(rnd() % 256) - 127, (int32_t)(rnd() >> 1), -(int32_t)(rnd() % 32), 20,
                       (int32_t)(rnd() % 256) - 128, (int32_t)(rnd() >> 1), -(int32_t)(rnd() % 32), -128, 127};
      memcpy(a, q, sizeof q);
      a[13] = PLACE(n);
      a[14] = PLACE(n);
      a[15] = PLACE(n);
      a[16] = rnd() % 3 ? PLACE(((uint32_t)n + 7) / 8) : -1;
    } else if (op == XST_OP_GRAD_ADD) {
      const int32_t n = 1 + (int32_t)(rnd() % 40);
      a[0] = n;
      a[1] = PLACE(n);
      a[2] = PLACE(4);
      a[3] = PLACE(n);
      a[4] = PLACE(4);
      a[5] = PLACE(n);
      a[6] = PLACE(4);
    } else {
      const int32_t rows = 1 + (int32_t)(rnd() % 3), depth = 1 + (int32_t)(rnd() % 40);
      const int32_t ls = (int32_t)(rnd() % 32);
      a[0] = rows;
      a[1] = depth;
      a[2] = (int32_t)(rnd() >> 1);
      a[3] = ls;
      a[4] = -(int32_t)(rnd() % 300);
      a[5] = PLACE((uint32_t)(rows * depth));
      a[6] = PLACE((uint32_t)(rows * depth));
    }
#undef PLACE
    const int32_t n = xst_op_nargs(op);
    for (int k = 0, m = (int)(rnd() % 3); k < m; k++) a[rnd() % (uint32_t)n] = rand_arg(top);
    uint8_t *arena = arena_new(top);
    fill_arena(arena, top);
    if (xst_dispatch(op, a, n, arena, top) == XST_OK) ran[which]++;
    free(arena);
  }
  printf("fuzz ops 18-23: %d %d %d %d %d %d ran\n", ran[0], ran[1], ran[2], ran[3], ran[4], ran[5]);
  for (int k = 0; k < 6; k++) CHECK(ran[k] > iterations / 200, "op %d reached its kernel (%d runs)", (int)ops[k], ran[k]);
}

/* LQM (ops 24-26): small random layers in an exactly-sized arena (every
 * tensor packed end to end, the weights last (op 26: the residual after
 * them), so ASan sees any overrun), parameters around the edges of their
 * ranges, state sizes sometimes off. */
static void fuzz_lqm(int iterations) {
  int ran[3] = {0, 0, 0}, rejected = 0;
  for (int it = 0; it < iterations; it++) {
    const int op = (int)(rnd() % 3); /* 24, 25, 26 */
    const int32_t R = 1 + (int32_t)(rnd() % 3), I = 1 + (int32_t)(rnd() % 24), O = 1 + (int32_t)(rnd() % 12);
    const int32_t bits = 1 + (int32_t)(rnd() % 6), emin = 2 - (int32_t)(rnd() % 28);
    const int32_t emax = emin + (int32_t)(rnd() % 18) - 1, decay = (int32_t)(rnd() % 18) - 1;
    const int32_t ob = (int32_t)(rnd() % (uint32_t)O), ib = (int32_t)(rnd() % (uint32_t)I);
    const int32_t oe = ob + 1 + (int32_t)(rnd() % (uint32_t)(O - ob)), ie = ib + 1 + (int32_t)(rnd() % (uint32_t)(I - ib));
    const int32_t sb_ok = bits >= 1 ? (int32_t)((bits * O * I + 7) / 8) : 0;
    const int32_t sb = rnd() % 8 ? sb_ok : sb_ok + (int32_t)(rnd() % 3) - 1;
    /* layout: grad_exp, rng, shift[O], grad[noc*nic], grad_out[R*O], in[R*I], state[sb], w[O*I],
     * residual[O*I] (op 26) */
    const uint32_t ngrad = (uint32_t)((oe - ob) * (ie - ib));
    const uint32_t o_ge = 0, o_rng = 4, o_sh = 8, o_g = o_sh + 4u * (uint32_t)O, o_go = o_g + 4u * ngrad;
    const uint32_t o_in = o_go + (uint32_t)(R * O), o_st = o_in + (uint32_t)(R * I);
    const uint32_t o_w = o_st + (uint32_t)(sb > 0 ? sb : 0), o_r = o_w + (uint32_t)(O * I);
    const uint32_t len = o_r + (op == 2 ? (uint32_t)(O * I) : 0u);
    uint8_t *a = arena_new(len);
    fill_arena(a, len);
    int32_t ge = -(int32_t)(rnd() % 40), seed = (int32_t)(rnd() | 1u);
    memcpy(a + o_ge, &ge, 4);
    memcpy(a + o_rng, &seed, 4);
    for (int32_t c = 0; c < O; c++) {
      int32_t v = (int32_t)(rnd() % 140) - 70;
      memcpy(a + o_sh + 4u * (uint32_t)c, &v, 4);
    }
    for (uint32_t k = 0; k < ngrad; k++) {
      int32_t v = (int32_t)rnd();
      memcpy(a + o_g + 4u * k, &v, 4);
    }
    if (op == 0) {
      int32_t args[17] = {I, O, ob, oe, ib, ie, (int32_t)o_g, (int32_t)o_ge, (int32_t)o_sh, bits, emin, emax, decay,
                          (int32_t)o_st, sb, (int32_t)o_w, (int32_t)o_rng};
      if (xst_dispatch(XST_OP_LQM_S8_UPDATE, args, 17, a, len) == XST_OK) ran[0]++;
      else rejected++;
    } else if (op == 1) {
      int32_t args[20] = {R, I, O, ob, oe, ib, ie, (int32_t)(rnd() % 256) - 127, (int32_t)o_go, (int32_t)o_ge,
                          (int32_t)o_in, (int32_t)o_sh, bits, emin, emax, decay, (int32_t)o_st, sb, (int32_t)o_w,
                          (int32_t)o_rng};
      if (xst_dispatch(XST_OP_FC_BACKWARD_WEIGHT_LQM, args, 20, a, len) == XST_OK) ran[1]++;
      else rejected++;
    } else {
      int32_t args[21] = {R, I, O, ob, oe, ib, ie, (int32_t)(rnd() % 256) - 127, (int32_t)o_go, (int32_t)o_ge,
                          (int32_t)o_in, (int32_t)o_sh, bits, emin, emax, decay, (int32_t)o_st, sb, (int32_t)o_w,
                          (int32_t)o_r, (int32_t)o_rng};
      if (xst_dispatch(XST_OP_FC_BACKWARD_WEIGHT_LQM16, args, 21, a, len) == XST_OK) ran[2]++;
      else rejected++;
    }
    free(a);
  }
  printf("lqm fuzz: %d buffered, %d fused, %d fused master ran, %d rejected\n", ran[0], ran[1], ran[2], rejected);
  CHECK(ran[0] > iterations / 100 && ran[1] > iterations / 100 && ran[2] > iterations / 100,
        "lqm fuzz reached all three kernels (%d, %d, %d)", ran[0], ran[1], ran[2]);
}

/* ---- optimizer baselines (optim_f32.c, optim_s16.c) --------------------- */

static float f32_of_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static int32_t bits_of_f32(float f) {
  int32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* xst_sqrt_f32 is correctly rounded: (r - h)^2 < x < (r + h)^2 with h half
 * an ulp of r, both squares exact in double (25-bit operands). */
static void test_sqrt_f32(int n) {
  int bad = 0;
  for (int it = 0; it < n && bad < 5; it++) {
    uint32_t u = rnd() & 0x7FFFFFFFu;
    if (it % 4 == 0) u &= 0x007FFFFFu; /* subnormals */
    if (((u >> 23) & 0xFF) == 0xFF || u == 0) continue;
    const float x = f32_of_bits(u), r = xst_sqrt_f32(x);
    const uint32_t rb = (uint32_t)bits_of_f32(r);
    if (bits_of_f32(xst_sqrt_f32_soft(x)) != (int32_t)rb) { /* the integer path, whatever the host uses */
      bad++;
      CHECK(0, "sqrt of %08x: %08x, integer path %08x", (unsigned)u, (unsigned)rb, (unsigned)bits_of_f32(xst_sqrt_f32_soft(x)));
    }
    const double ulp = (double)f32_of_bits(rb + 1) - (double)r, h = ulp / 2;
    const double lo = ((double)r - h) * ((double)r - h), hi = ((double)r + h) * ((double)r + h);
    if (!(lo < (double)x && (double)x < hi)) {
      bad++;
      CHECK(0, "sqrt of %08x gives %08x", (unsigned)u, (unsigned)rb);
    }
  }
  CHECK(bad == 0, "xst_sqrt_f32 correctly rounded");
  CHECK(bits_of_f32(xst_sqrt_f32(4.0f)) == bits_of_f32(2.0f), "sqrt 4");
  CHECK(bits_of_f32(xst_sqrt_f32(-0.0f)) == bits_of_f32(-0.0f), "sqrt -0");
  CHECK(xst_sqrt_f32(-1.0f) != xst_sqrt_f32(-1.0f), "sqrt -1 is NaN");
  CHECK(xst_sqrt_f32_soft(-1.0f) != xst_sqrt_f32_soft(-1.0f), "integer sqrt -1 is NaN");
  CHECK(bits_of_f32(xst_sqrt_f32_soft(-0.0f)) == bits_of_f32(-0.0f), "integer sqrt -0");
}

/* The fp32 updates equal plain float32 arithmetic (this file is compiled
 * -std=c99: no contraction) to the bit, over magnitudes that reach the
 * subnormals: the host build computes some elements in double (optim_f32.c
 * f32_mul) and this checks that choice changes no bit. */
static float f32_any(void) {
  const uint32_t r = rnd();
  if (r % 5 == 0) return 0.0f;
  const uint32_t e = r % 7 == 0 ? 0u : (r % 3 == 0 ? 1u + rnd() % 40u : 80u + rnd() % 50u);
  return f32_of_bits((rnd() & 0x807FFFFFu) | (e << 23));
}
static void test_f32_updates_bits(int rounds) {
  enum { N = 64 };
  float g[N], m[N], v[N], p[N], rm[N], rv[N], rp[N], bp[2];
  int bad = 0;
  for (int r = 0; r < rounds && !bad; r++) {
    for (int i = 0; i < N; i++) {
      g[i] = f32_any();
      m[i] = rm[i] = f32_any();
      v[i] = rv[i] = f32_of_bits((uint32_t)bits_of_f32(f32_any()) & 0x7FFFFFFFu);
      p[i] = rp[i] = f32_any();
    }
    const float lr = 0.001f * (float)(1 + rnd() % 100), mu = 0.9f;
    /* momentum */
    float vm[N], pm[N], rvm[N], rpm[N];
    memcpy(vm, m, sizeof vm); memcpy(rvm, m, sizeof vm); memcpy(pm, p, sizeof pm); memcpy(rpm, p, sizeof pm);
    CHECK(momentum_f32_update(N, lr, mu, g, vm, pm) == XST_OK, "momentum f32 runs");
    for (int i = 0; i < N; i++) {
      rvm[i] = mu * rvm[i] + g[i];
      rpm[i] = rpm[i] - lr * rvm[i];
    }
    /* sgd */
    float ps[N], rps[N];
    memcpy(ps, p, sizeof ps); memcpy(rps, p, sizeof ps);
    CHECK(sgd_f32_update(N, lr, g, ps) == XST_OK, "sgd f32 runs");
    for (int i = 0; i < N; i++) rps[i] = rps[i] - lr * g[i];
    /* adam */
    const xst_adam_f32 h = {lr, 0.9f, 0.999f, 1e-8f};
    bp[0] = 0.5f; bp[1] = 0.75f;
    CHECK(adam_f32_update(N, &h, g, m, v, bp, p) == XST_OK, "adam f32 runs");
    const float p1 = 0.5f * 0.9f, p2 = 0.75f * 0.999f, c1 = 1.0f - p1, c2 = 1.0f - p2;
    for (int i = 0; i < N; i++) {
      rm[i] = 0.9f * rm[i] + (1.0f - 0.9f) * g[i];
      rv[i] = 0.999f * rv[i] + (1.0f - 0.999f) * (g[i] * g[i]);
      rp[i] = rp[i] - (lr * (rm[i] / c1)) / (xst_sqrt_f32_soft(rv[i] / c2) + 1e-8f); /* checked against the FPU above */
    }
    for (int i = 0; i < N && bad < 5; i++) {
      if (bits_of_f32(vm[i]) != bits_of_f32(rvm[i]) || bits_of_f32(pm[i]) != bits_of_f32(rpm[i]) ||
          bits_of_f32(ps[i]) != bits_of_f32(rps[i]) || bits_of_f32(m[i]) != bits_of_f32(rm[i]) ||
          bits_of_f32(v[i]) != bits_of_f32(rv[i]) || bits_of_f32(p[i]) != bits_of_f32(rp[i])) {
        bad++;
        CHECK(0, "f32 update differs from float32 arithmetic at round %d element %d (g %08x)", r, i, (unsigned)bits_of_f32(g[i]));
      }
    }
  }
  CHECK(bad == 0, "fp32 sgd, momentum and adam: the bits of plain float32 arithmetic, subnormals included");
}

static void test_optim_known(void) {
  const uint32_t len = 512;
  uint8_t *a = arena_new(len);
  float *g = (float *)(void *)(a + 0), *p = (float *)(void *)(a + 64), *v = (float *)(void *)(a + 128);
  for (int i = 0; i < 4; i++) { g[i] = (float)(i + 1); p[i] = 1.0f; }
  int32_t sgd[4] = {4, bits_of_f32(0.5f), 0, 64};
  CHECK(xst_dispatch(XST_OP_SGD_F32_UPDATE, sgd, 4, a, len) == XST_OK && p[0] == 0.5f && p[3] == -1.0f, "sgd f32");
  sgd[1] = (int32_t)0x7FC00000;
  CHECK(xst_dispatch(XST_OP_SGD_F32_UPDATE, sgd, 4, a, len) == XST_ERR_PARAM, "sgd f32 NaN lr");
  int32_t mom[6] = {4, bits_of_f32(1.0f), bits_of_f32(0.5f), 0, 128, 64};
  CHECK(xst_dispatch(XST_OP_MOMENTUM_F32_UPDATE, mom, 6, a, len) == XST_OK && v[1] == 2.0f && p[1] == -2.0f,
        "momentum f32");
  mom[4] = 64;
  CHECK(xst_dispatch(XST_OP_MOMENTUM_F32_UPDATE, mom, 6, a, len) == XST_ERR_ALIAS, "velocity aliases param");
  float *m = (float *)(void *)(a + 192), *pw = (float *)(void *)(a + 256);
  memset(a + 128, 0, 128);
  pw[0] = pw[1] = 1.0f;
  for (int i = 0; i < 4; i++) p[i] = 0.0f;
  int32_t adam[10] = {4, bits_of_f32(0.01f), bits_of_f32(0.9f), bits_of_f32(0.999f), bits_of_f32(1e-8f),
                      0, 192, 128, 256, 64};
  CHECK(xst_dispatch(XST_OP_ADAM_F32_UPDATE, adam, 10, a, len) == XST_OK, "adam f32 runs");
  /* first Adam step is lr * sign(g) (up to eps) */
  CHECK(p[2] < -0.0099f && p[2] > -0.0101f && pw[0] == 0.9f && m[0] != 0.0f, "adam f32 first step");
  pw[1] = 2.0f;
  CHECK(xst_dispatch(XST_OP_ADAM_F32_UPDATE, adam, 10, a, len) == XST_ERR_PARAM, "adam beta power > 1");
  pw[1] = 1.0f;
  adam[3] = bits_of_f32(1.0f);
  CHECK(xst_dispatch(XST_OP_ADAM_F32_UPDATE, adam, 10, a, len) == XST_ERR_PARAM, "adam beta2 = 1");
  /* int16 SGD: lr = 2^-1 (M = 2^30, shift 0), grad 4 * 2^0, param exp 0:
   * step exactly 2 whatever the draw */
  int16_t *q = (int16_t *)(void *)(a + 320);
  int32_t *gi = (int32_t *)(void *)(a + 0);
  gi[0] = 4; gi[1] = 0; gi[2] = -4; gi[3] = 1 << 30;
  put_i32(a, 300, 0);     /* grad exp */
  put_i32(a, 304, 12345); /* rng */
  q[0] = 10; q[1] = 10; q[2] = 32767; q[3] = 0;
  int32_t s16[8] = {4, 0, 1 << 30, 0, 0, 300, 320, 304};
  CHECK(xst_dispatch(XST_OP_SGD_S16_UPDATE, s16, 8, a, len) == XST_OK && q[0] == 8 && q[1] == 10 &&
        q[2] == 32767 && q[3] == -32767, "sgd s16 known answer and saturation");
  put_i32(a, 304, 0);
  CHECK(xst_dispatch(XST_OP_SGD_S16_UPDATE, s16, 8, a, len) == XST_ERR_PARAM, "sgd s16 rng 0");
  put_i32(a, 304, 7);
  int16_t *vel = (int16_t *)(void *)(a + 336);
  memset(vel, 0, 8);
  int32_t m16[11] = {4, 0, 0, 1 << 30, 0, 29491, 0, 300, 336, 320, 304};
  gi[3] = 0;
  q[0] = 10; q[1] = 10; q[2] = 0; q[3] = 0;
  CHECK(xst_dispatch(XST_OP_MOMENTUM_S16_UPDATE, m16, 11, a, len) == XST_OK && vel[0] == 2 && q[0] == 8 &&
        vel[2] == -2 && q[2] == 2 && vel[1] == 0 && q[1] == 10, "momentum s16 known answer");
  m16[5] = 32768;
  CHECK(xst_dispatch(XST_OP_MOMENTUM_S16_UPDATE, m16, 11, a, len) == XST_ERR_PARAM, "momentum s16 mu > 1");
  free(a);
}

static void fuzz_optim(int iterations) {
  int ran_ok = 0;
  static const int32_t fl[] = {0x3F800000, 0x3C23D70A, 0x3F666666, 0x3F7FBE77, 0x322BCC77, 0x7F800000,
                               (int32_t)0xFF800000, 0x7FC00000, 0x00000001, (int32_t)0x80000000, 0x7F7FFFFF};
  for (int it = 0; it < iterations; it++) {
    const uint32_t len = 64 + rnd() % 1024;
    uint8_t *a = arena_new(len);
    fill_arena(a, len);
    const int32_t op = XST_OP_SGD_F32_UPDATE + (int32_t)(rnd() % 5);
    const int32_t n = xst_op_nargs(op);
    int32_t args[16];
    for (int k = 0; k < n; k++) args[k] = rand_arg(len);
    args[0] = 1 + (int32_t)(rnd() % 16);
    const uint32_t step = ((uint32_t)args[0] * 4 + 3) & ~3u;
    /* lay the tensors out one after another, mostly valid */
    uint32_t at = 0;
    for (int k = 1; k < n; k++) {
      int tensor = 0;
      if (op <= XST_OP_ADAM_F32_UPDATE) tensor = op == XST_OP_SGD_F32_UPDATE ? k >= 2 : op == XST_OP_MOMENTUM_F32_UPDATE ? k >= 3 : k >= 5;
      else tensor = op == XST_OP_SGD_S16_UPDATE ? k >= 4 : k >= 6;
      if (!tensor) {
        if (op <= XST_OP_ADAM_F32_UPDATE && rnd() % 4) args[k] = pick(fl, (int)(sizeof fl / sizeof fl[0]));
        continue;
      }
      if (rnd() % 8) { args[k] = (int32_t)at; at += step; }
    }
    if (at < len && rnd() % 2) {
      /* plausible cells: exponents small, rng nonzero, powers 1.0f */
      for (uint32_t o = 0; o + 4 <= len; o += 4) if (rnd() % 2) put_i32(a, o, (int32_t)(rnd() % 64) - 32 + 0x3F800000 * (int32_t)(rnd() % 2));
    }
    if (xst_dispatch(op, args, n, a, len) == XST_OK) ran_ok++;
    free(a);
  }
  printf("optimizer fuzz: %d of %d calls ran\n", ran_ok, iterations);
  CHECK(ran_ok > iterations / 20, "optimizer fuzz reached the kernels (%d ran)", ran_ok);
}

/* CHANNEL_SLICE (op 36): a known answer, range and alias rejections, then
 * random layers in an exactly sized arena (input then output, end to end,
 * so ASan sees a read or write past either), the output checked against the
 * plain loop, with now and then a hostile argument. */
static void test_channel_slice(int iterations) {
  uint32_t len = 2 * 3 * 5 + 2 * 2;
  uint8_t *a = arena_new(len);
  for (uint32_t i = 0; i < 30; i++) a[i] = (uint8_t)i;
  int32_t ok[6] = {2 * 3, 5, 1, 3, 0, 30}; /* 6 rows of 5 channels, channels [1, 3) */
  CHECK(xst_dispatch(XST_OP_CHANNEL_SLICE, ok, 6, a, len) == XST_ERR_BOUNDS, "output past the end");
  free(a);
  len = 30 + 12;
  a = arena_new(len);
  for (uint32_t i = 0; i < 30; i++) a[i] = (uint8_t)i;
  CHECK(xst_dispatch(XST_OP_CHANNEL_SLICE, ok, 6, a, len) == XST_OK, "channel slice valid");
  CHECK(a[30] == 1 && a[31] == 2 && a[32] == 6 && a[41] == 27, "channel slice [1, 3): %d %d %d %d", a[30], a[31], a[32], a[41]);
  int32_t empty[6] = {6, 5, 3, 3, 0, 30}, wide[6] = {6, 5, 2, 6, 0, 30}, neg[6] = {6, 5, -1, 2, 0, 30};
  CHECK(xst_dispatch(XST_OP_CHANNEL_SLICE, empty, 6, a, len) == XST_ERR_RANGE, "empty channel range");
  CHECK(xst_dispatch(XST_OP_CHANNEL_SLICE, wide, 6, a, len) == XST_ERR_RANGE, "end > channels");
  CHECK(xst_dispatch(XST_OP_CHANNEL_SLICE, neg, 6, a, len) == XST_ERR_RANGE, "negative begin");
  int32_t overlap[6] = {6, 5, 1, 3, 0, 20};
  CHECK(xst_dispatch(XST_OP_CHANNEL_SLICE, overlap, 6, a, len) == XST_ERR_ALIAS, "output overlaps input");
  CHECK(channel_slice_s8(0, 5, 0, 1, (const int8_t *)a, (int8_t *)a + 30) == XST_ERR_DIMS, "rows = 0");
  free(a);

  int ran = 0, bad = 0;
  for (int it = 0; it < iterations; it++) {
    const int32_t R = 1 + (int32_t)(rnd() % 40), C = 1 + (int32_t)(rnd() % 24);
    const int32_t b = (int32_t)(rnd() % (uint32_t)C), e = b + 1 + (int32_t)(rnd() % (uint32_t)(C - b));
    const uint32_t in_bytes = (uint32_t)(R * C), out_bytes = (uint32_t)(R * (e - b));
    int32_t args[6] = {R, C, b, e, 0, (int32_t)in_bytes};
    const int hostile = rnd() % 4 == 0;
    if (hostile) args[rnd() % 6] = rand_arg(in_bytes + out_bytes);
    len = in_bytes + out_bytes;
    a = arena_new(len);
    fill_arena(a, len);
    uint8_t *copy = arena_new(len);
    memcpy(copy, a, len);
    if (xst_dispatch(XST_OP_CHANNEL_SLICE, args, 6, a, len) == XST_OK) {
      ran++;
      if (!hostile) {
        for (int32_t r = 0; r < R; r++) {
          for (int32_t c = b; c < e; c++) bad += a[in_bytes + (uint32_t)(r * (e - b) + c - b)] != copy[r * C + c];
        }
        bad += memcmp(a, copy, in_bytes) != 0; /* the input is left alone */
      }
    }
    free(copy);
    free(a);
  }
  printf("channel slice fuzz: %d of %d calls ran\n", ran, iterations);
  CHECK(bad == 0, "channel slice: %d wrong bytes", bad);
  CHECK(ran > iterations / 2, "channel slice fuzz reached the kernel (%d ran)", ran);
}


/* ---- fused conv / depthwise weight gradient + SGD / LQM (ops 37-40) ------ */

/* A random geometry and channel block of a fused weight update: SAME
 * padding, strides 1-3, sometimes the 1x1 FC path (conv) or patches beyond
 * the 256-entry gradient tile. */
typedef struct {
  int dw;
  int32_t B, H, W, C, M, KH, KW, SH, SW, OH, OW, PH, PW, OC;
  int32_t ob, oe, ib, ie, noc, nic, T;
  uint32_t nin, nout, nw, ngw;
} fw_case;

static fw_case fw_pick(void) {
  fw_case k;
  k.dw = (int)(rnd() & 1);
  const int big = rnd() % 8 == 0; /* patches beyond the 256-entry tile */
  k.B = 1 + (int32_t)(rnd() % 2), k.H = 1 + (int32_t)(rnd() % 7), k.W = 1 + (int32_t)(rnd() % 7);
  k.C = 1 + (int32_t)(rnd() % (big && !k.dw ? 40 : 9)), k.M = k.dw ? 1 + (int32_t)(rnd() % 3) : 1;
  k.KH = 1 + (int32_t)(rnd() % (big && k.dw ? 18 : 5)), k.KW = 1 + (int32_t)(rnd() % (big && k.dw ? 18 : 5));
  k.SH = 1 + (int32_t)(rnd() % 3), k.SW = 1 + (int32_t)(rnd() % 3);
  k.OH = (k.H + k.SH - 1) / k.SH, k.OW = (k.W + k.SW - 1) / k.SW; /* SAME */
  const int32_t th = (k.OH - 1) * k.SH + k.KH - k.H, tw = (k.OW - 1) * k.SW + k.KW - k.W;
  k.PH = th > 0 ? th / 2 : 0, k.PW = tw > 0 ? tw / 2 : 0;
  if (!k.dw && rnd() % 4 == 0) k.KH = k.KW = 1, k.SH = k.SW = 1, k.OH = k.H, k.OW = k.W, k.PH = k.PW = 0; /* the FC path */
  k.OC = k.dw ? k.C * k.M : 1 + (int32_t)(rnd() % 9);
  k.ob = (int32_t)(rnd() % (uint32_t)k.OC), k.oe = k.ob + 1 + (int32_t)(rnd() % (uint32_t)(k.OC - k.ob));
  k.ib = k.dw ? 0 : (int32_t)(rnd() % (uint32_t)k.C), k.ie = k.dw ? k.C : k.ib + 1 + (int32_t)(rnd() % (uint32_t)(k.C - k.ib));
  k.noc = k.oe - k.ob, k.nic = k.ie - k.ib, k.T = k.KH * k.KW;
  k.nin = (uint32_t)(k.B * k.H * k.W * k.C), k.nout = (uint32_t)(k.B * k.OH * k.OW * k.OC);
  k.nw = (uint32_t)(k.dw ? k.T * k.OC : k.OC * k.T * k.C), k.ngw = (uint32_t)(k.dw ? k.T * k.noc : k.noc * k.T * k.nic);
  return k;
}

/* The 13 dims and the weight-gradient op's arguments (bw, its count) for
 * case k with the given tensors. */
static int32_t fw_dims(const fw_case *k, int32_t *args, int32_t *bw, int32_t ioff, int32_t o_go, int32_t o_in,
                       int32_t o_gw, int32_t *bop) {
  const int32_t dims[13] = {k->B, k->H, k->W, k->C, k->OH, k->OW, k->dw ? k->M : k->OC, k->KH, k->KW, k->SH, k->SW, k->PH, k->PW};
  memcpy(args, dims, sizeof dims);
  memcpy(bw, dims, sizeof dims);
  if (k->dw) {
    const int32_t brest[6] = {k->ob, k->oe, ioff, o_go, o_in, o_gw};
    memcpy(bw + 13, brest, sizeof brest);
    *bop = XST_OP_DEPTHWISE_CONV2D_BACKWARD_WEIGHT;
    return 19;
  }
  const int32_t brest[8] = {k->ob, k->oe, k->ib, k->ie, ioff, o_go, o_in, o_gw};
  memcpy(bw + 13, brest, sizeof brest);
  *bop = XST_OP_CONV2D_BACKWARD_WEIGHT;
  return 21;
}

static void fw_fill(const fw_case *k, uint8_t *a, int32_t o_go, int32_t o_w) {
  const int sparse = rnd() % 3 == 0;
  for (uint32_t j = 0; j < k->nout; j++) a[o_go + (int32_t)j] = (uint8_t)(sparse && rnd() % 4 ? 0 : rnd());
  for (uint32_t j = 0; j < k->nw; j++) a[o_w + (int32_t)j] = (uint8_t)(int8_t)((int32_t)(rnd() % 255) - 127);
}

static void fw_report(const fw_case *k, const char *what) {
  printf("fused %s != unfused: %s dims %d %d %d %d %d %d %d %d %d %d %d %d %d block oc [%d,%d) ic [%d,%d)\n", what,
         k->dw ? "dw" : "conv", k->B, k->H, k->W, k->C, k->OH, k->OW, k->dw ? k->M : k->OC, k->KH, k->KW, k->SH, k->SW,
         k->PH, k->PW, k->ob, k->oe, k->ib, k->ie);
}

/* Op `op` with one argument replaced by a hostile one, on a copy of b in a;
 * frees both arenas. 1 if the call ran (XST_OK). */
static int fw_hostile(int32_t op, int32_t *args, int32_t n, uint8_t *a, uint8_t *b, uint32_t top) {
  memcpy(a, b, top);
  args[rnd() % (uint32_t)n] = rand_arg(top);
  const int ran = xst_dispatch(op, args, n, a, top) == XST_OK;
  free(b);
  free(a);
  return ran;
}

#define FW_PLACE(bytes) (top = (top + 3u) & ~3u, top += (uint32_t)(bytes), (int32_t)(top - (uint32_t)(bytes)))

/* SGD (ops 37-38): the fused op equals its backward_weight op followed by
 * sgd_s8_update (conv: on the (out_c, k_h*k_w*in_c) view of the weights,
 * one call per channel and tap when the block leaves input channels out;
 * depthwise: on the transposed (out_c, k_h*k_w) weights and gradient),
 * weights and rng state; then hostile arguments through the dispatcher. */
static void fuzz_fused_weight_sgd(int iterations) {
  int compared = 0, bad = 0, ran_hostile = 0;
  for (int it = 0; it < iterations; it++) {
    const fw_case k = fw_pick();
    const int dw = k.dw;
    const int32_t OC = k.OC, T = k.T, C = k.C, ob = k.ob, oe = k.oe, noc = k.noc, nic = k.nic;
    uint32_t top = 0;
    const int32_t o_go = FW_PLACE(k.nout), o_ge = FW_PLACE(4), o_in = FW_PLACE(k.nin), o_m = FW_PLACE(OC * 4);
    const int32_t o_s = FW_PLACE(OC * 4), o_w = FW_PLACE(k.nw), o_rng = FW_PLACE(4), o_gw = FW_PLACE(k.ngw * 4);
    const int32_t o_wt = FW_PLACE(k.nw); /* depthwise: transposed weights (out_c, k_h*k_w) */
    uint8_t *a = arena_new(top);
    fill_arena(a, top);
    fw_fill(&k, a, o_go, o_w);
    for (int32_t c = 0; c < OC; c++) {
      put_i32(a, (uint32_t)(o_m + 4 * c), (int32_t)(rnd() >> 1));
      put_i32(a, (uint32_t)(o_s + 4 * c), (int32_t)(rnd() % 125) - 62);
    }
    put_i32(a, (uint32_t)o_ge, (int32_t)(rnd() % 60) - 40);
    put_i32(a, (uint32_t)o_rng, (int32_t)(rnd() | 1u));
    const int32_t ioff = (int32_t)(rnd() % 256) - 127;
    int32_t args[32], bw[32], bop;
    const int32_t bn = fw_dims(&k, args, bw, ioff, o_go, o_in, o_gw, &bop);
    int32_t op, n;
    if (dw) {
      const int32_t rest[10] = {ob, oe, ioff, o_go, o_ge, o_in, o_m, o_s, o_w, o_rng};
      memcpy(args + 13, rest, sizeof rest);
      op = XST_OP_DEPTHWISE_CONV2D_BACKWARD_WEIGHT_SGD, n = 23;
    } else {
      const int32_t rest[12] = {ob, oe, k.ib, k.ie, ioff, o_go, o_ge, o_in, o_m, o_s, o_w, o_rng};
      memcpy(args + 13, rest, sizeof rest);
      op = XST_OP_CONV2D_BACKWARD_WEIGHT_SGD, n = 25;
    }
    uint8_t *b = arena_new(top);
    memcpy(b, a, top);
    const int st = xst_dispatch(op, args, n, a, top);
    CHECK(st == XST_OK, "fused weight sgd (%s) status %d", dw ? "depthwise" : "conv2d", st);
    /* the reference path on b: gradient buffer, then sgd_s8_update */
    int ok = xst_dispatch(bop, bw, bn, b, top) == XST_OK;
    if (dw) {
      for (int32_t c = 0; c < OC; c++) {
        for (int32_t t = 0; t < T; t++) b[o_wt + c * T + t] = b[o_w + t * OC + c];
      }
      for (int32_t t = 0; t < T; t++) { /* grad_w (T, noc) -> (noc, T), in the gw buffer via a copy */
        for (int32_t c = 0; c < noc; c++) put_i32(a, (uint32_t)o_gw + 4u * (uint32_t)(c * T + t), get_i32(b, (uint32_t)o_gw + 4u * (uint32_t)(t * noc + c)));
      }
      memcpy(b + o_gw, a + o_gw, k.ngw * 4); /* (a's gw area is scratch: the fused op never touches it) */
      const int32_t sargs[12] = {T, OC, ob, oe, 0, T, o_gw, o_ge, o_m, o_s, o_wt, o_rng};
      ok = ok && xst_dispatch(XST_OP_SGD_S8_UPDATE, sargs, 12, b, top) == XST_OK;
      for (int32_t c = 0; c < OC; c++) {
        for (int32_t t = 0; t < T; t++) b[o_w + t * OC + c] = b[o_wt + c * T + t];
      }
    } else if (nic == C) {
      const int32_t sargs[12] = {T * C, OC, ob, oe, 0, T * C, o_gw, o_ge, o_m, o_s, o_w, o_rng};
      ok = ok && xst_dispatch(XST_OP_SGD_S8_UPDATE, sargs, 12, b, top) == XST_OK;
    } else {
      for (int32_t c = ob; c < oe && ok; c++) {
        for (int32_t t = 0; t < T && ok; t++) {
          const int32_t g = o_gw + 4 * ((c - ob) * T * nic + t * nic);
          const int32_t sargs[12] = {T * C, OC, c, c + 1, t * C + k.ib, t * C + k.ie, g, o_ge, o_m, o_s, o_w, o_rng};
          ok = xst_dispatch(XST_OP_SGD_S8_UPDATE, sargs, 12, b, top) == XST_OK;
        }
      }
    }
    CHECK(ok, "unfused path ran (%s)", dw ? "depthwise" : "conv2d");
    if (st == XST_OK && ok) {
      compared++;
      const int diff = memcmp(a + o_w, b + o_w, k.nw) != 0 || get_i32(a, (uint32_t)o_rng) != get_i32(b, (uint32_t)o_rng);
      if (diff && bad < 5) fw_report(&k, "sgd");
      bad += diff;
    }
    ran_hostile += fw_hostile(op, args, n, a, b, top);
  }
  printf("fused weight sgd: %d compared with the unfused ops, %d hostile calls ran\n", compared, ran_hostile);
  CHECK(bad == 0, "fused weight sgd differs from backward_weight + sgd_s8_update in %d cases", bad);
  CHECK(compared == iterations, "every fused call ran (%d of %d)", compared, iterations);
}

/* Field j of a packed LQM state (bits per field, LSB first). */
static uint32_t lqm_field(const uint8_t *s, int32_t bits, uint32_t j) {
  uint32_t v = 0;
  for (int32_t q = 0; q < bits; q++) {
    const uint32_t at = (uint32_t)bits * j + (uint32_t)q;
    v |= (uint32_t)((s[at >> 3] >> (at & 7)) & 1) << q;
  }
  return v;
}

static void lqm_set_field(uint8_t *s, int32_t bits, uint32_t j, uint32_t v) {
  for (int32_t q = 0; q < bits; q++) {
    const uint32_t at = (uint32_t)bits * j + (uint32_t)q;
    s[at >> 3] = (uint8_t)((s[at >> 3] & ~(1u << (at & 7))) | (((v >> q) & 1u) << (at & 7)));
  }
}

/* LQM (ops 39-40): the fused op, from a random state over several steps,
 * equals its backward_weight op followed by lqm_s8_update (conv: the (out_c,
 * k_h*k_w*in_c) view, one call per channel and tap when input channels are
 * left out; depthwise: weights, state fields and gradient transposed to
 * (out_c, k_h*k_w)): weights, state bytes and rng; then hostile arguments
 * (and a wrong state size) through the dispatcher. */
static void fuzz_fused_weight_lqm(int iterations) {
  int compared = 0, bad = 0, ran_hostile = 0;
  for (int it = 0; it < iterations; it++) {
    const fw_case k = fw_pick();
    const int dw = k.dw;
    const int32_t OC = k.OC, T = k.T, C = k.C, ob = k.ob, oe = k.oe, noc = k.noc, nic = k.nic;
    const int32_t bits = 2 + (int32_t)(rnd() % 4), emin = -(int32_t)(rnd() % 25);
    const int32_t top_e = emin + (1 << (bits - 1)) - 2 < 6 ? emin + (1 << (bits - 1)) - 2 : 6;
    const int32_t emax = emin + (int32_t)(rnd() % (uint32_t)(top_e - emin + 1)), decay = (int32_t)(rnd() % 16);
    const int32_t sb = (int32_t)(((uint32_t)bits * k.nw + 7u) / 8u);
    uint32_t top = 0;
    const int32_t o_go = FW_PLACE(k.nout), o_ge = FW_PLACE(4), o_in = FW_PLACE(k.nin), o_sh = FW_PLACE(OC * 4);
    const int32_t o_rng = FW_PLACE(4), o_gw = FW_PLACE(k.ngw * 4), o_wt = FW_PLACE(k.nw), o_stt = FW_PLACE(sb);
    const int32_t o_gwt = FW_PLACE(k.ngw * 4), o_st = FW_PLACE(sb), o_w = FW_PLACE(k.nw); /* w last: ASan sees overruns */
    uint8_t *a = arena_new(top);
    fill_arena(a, top);
    fw_fill(&k, a, o_go, o_w);
    for (int32_t j = 0; j < sb; j++) a[o_st + j] = (uint8_t)rnd();
    for (int32_t c = 0; c < OC; c++) put_i32(a, (uint32_t)(o_sh + 4 * c), (int32_t)(rnd() % 40) - 30);
    put_i32(a, (uint32_t)o_ge, (int32_t)(rnd() % 40) - 30);
    put_i32(a, (uint32_t)o_rng, (int32_t)(rnd() | 1u));
    const int32_t ioff = (int32_t)(rnd() % 256) - 127;
    int32_t args[32], bw[32], bop;
    const int32_t bn = fw_dims(&k, args, bw, ioff, o_go, o_in, o_gw, &bop);
    int32_t op, n;
    if (dw) {
      const int32_t rest[15] = {ob, oe, ioff, o_go, o_ge, o_in, o_sh, bits, emin, emax, decay, o_st, sb, o_w, o_rng};
      memcpy(args + 13, rest, sizeof rest);
      op = XST_OP_DEPTHWISE_CONV2D_BACKWARD_WEIGHT_LQM, n = 28;
    } else {
      const int32_t rest[17] = {ob, oe, k.ib, k.ie, ioff, o_go, o_ge, o_in, o_sh, bits, emin, emax, decay, o_st, sb, o_w, o_rng};
      memcpy(args + 13, rest, sizeof rest);
      op = XST_OP_CONV2D_BACKWARD_WEIGHT_LQM, n = 30;
    }
    uint8_t *b = arena_new(top);
    memcpy(b, a, top);
    int ok = 1, st = XST_OK;
    for (int step = 0; step < 3 && ok && st == XST_OK; step++) {
      st = xst_dispatch(op, args, n, a, top);
      /* the reference path on b: gradient buffer, then lqm_s8_update */
      ok = xst_dispatch(bop, bw, bn, b, top) == XST_OK;
      if (dw) {
        for (int32_t c = 0; c < OC; c++) {
          for (int32_t t = 0; t < T; t++) {
            b[o_wt + c * T + t] = b[o_w + t * OC + c];
            lqm_set_field(b + o_stt, bits, (uint32_t)(c * T + t), lqm_field(b + o_st, bits, (uint32_t)(t * OC + c)));
          }
        }
        for (int32_t t = 0; t < T; t++) { /* grad_w (T, noc) -> (noc, T) */
          for (int32_t c = 0; c < noc; c++) put_i32(b, (uint32_t)o_gwt + 4u * (uint32_t)(c * T + t), get_i32(b, (uint32_t)o_gw + 4u * (uint32_t)(t * noc + c)));
        }
        const int32_t largs[17] = {T, OC, ob, oe, 0, T, o_gwt, o_ge, o_sh, bits, emin, emax, decay, o_stt, sb, o_wt, o_rng};
        ok = ok && xst_dispatch(XST_OP_LQM_S8_UPDATE, largs, 17, b, top) == XST_OK;
        for (int32_t c = 0; c < OC; c++) {
          for (int32_t t = 0; t < T; t++) {
            b[o_w + t * OC + c] = b[o_wt + c * T + t];
            lqm_set_field(b + o_st, bits, (uint32_t)(t * OC + c), lqm_field(b + o_stt, bits, (uint32_t)(c * T + t)));
          }
        }
      } else if (nic == C) {
        const int32_t largs[17] = {T * C, OC, ob, oe, 0, T * C, o_gw, o_ge, o_sh, bits, emin, emax, decay, o_st, sb, o_w, o_rng};
        ok = ok && xst_dispatch(XST_OP_LQM_S8_UPDATE, largs, 17, b, top) == XST_OK;
      } else {
        for (int32_t c = ob; c < oe && ok; c++) {
          for (int32_t t = 0; t < T && ok; t++) {
            const int32_t g = o_gw + 4 * ((c - ob) * T * nic + t * nic);
            const int32_t largs[17] = {T * C, OC, c, c + 1, t * C + k.ib, t * C + k.ie, g, o_ge, o_sh, bits, emin, emax, decay,
                                       o_st, sb, o_w, o_rng};
            ok = xst_dispatch(XST_OP_LQM_S8_UPDATE, largs, 17, b, top) == XST_OK;
          }
        }
      }
    }
    CHECK(st == XST_OK, "fused weight lqm (%s) status %d", dw ? "depthwise" : "conv2d", st);
    CHECK(ok, "unfused lqm path ran (%s)", dw ? "depthwise" : "conv2d");
    if (st == XST_OK && ok) {
      compared++;
      const int diff = memcmp(a + o_w, b + o_w, k.nw) != 0 || memcmp(a + o_st, b + o_st, (size_t)sb) != 0 ||
                       get_i32(a, (uint32_t)o_rng) != get_i32(b, (uint32_t)o_rng);
      if (diff && bad < 5) fw_report(&k, "lqm");
      bad += diff;
    }
    /* a state one byte short or long, then one argument replaced */
    memcpy(a, b, top);
    args[n - 3] = sb + (rnd() & 1 ? 1 : -1);
    CHECK(xst_dispatch(op, args, n, a, top) == XST_ERR_DIMS, "fused weight lqm: a state of the wrong size is refused");
    args[n - 3] = sb;
    ran_hostile += fw_hostile(op, args, n, a, b, top);
  }
  printf("fused weight lqm: %d compared with the unfused ops over 3 steps, %d hostile calls ran\n", compared, ran_hostile);
  CHECK(bad == 0, "fused weight lqm differs from backward_weight + lqm_s8_update in %d cases", bad);
  CHECK(compared == iterations, "every fused lqm call ran (%d of %d)", compared, iterations);
}

#undef FW_PLACE

int main(int argc, char **argv) {
  int iterations = argc > 1 ? atoi(argv[1]) : 200000;
  test_fixed_point();
  test_requantize_fast(iterations * 20);
  test_rejections();
  test_poolops();
  fuzz_dispatch(iterations);
  test_conv2d_known();
  fuzz_conv2d(iterations / 10);
  test_dwconv_known_answers();
  fuzz_dwconv(iterations / 10);
  fuzz_poolops(iterations / 4);
  fuzz_lqm(iterations / 4);
  test_sqrt_f32(iterations * 5);
  test_f32_updates_bits(iterations / 20);
  test_optim_known();
  fuzz_optim(iterations / 4);
  test_channel_slice(iterations / 10);
  fuzz_fused_weight_sgd(iterations / 40);
  fuzz_fused_weight_lqm(iterations / 40);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
