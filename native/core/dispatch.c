/*
 * The one entry point of the C core for every binding (Node-API, xsmc, the
 * bare-metal trace driver). Arguments are int32; tensors are byte offsets
 * into the arena. Each op lists its tensors in a small table; bind() checks
 * every one against the arena (bounds, alignment) and checks that no tensor
 * the op writes overlaps another of its tensors, before the kernel runs.
 * Argument layouts: see the table in native/README.md and src/core/ops.ts.
 *
 * xst_dispatch_check() runs the same checks without memory and without the
 * kernel (plan validation, plan.c): bind() stops after the checks and
 * returns CHECKED, which every op passes straight back.
 */
#include "xst.h"

#define MAX_DIM (1 << 24)
#define MAX_REFS 12

/* What an op binds its tensors against. check_only: arena and flash are
 * NULL, only their lengths count, and no pointer is formed. */
typedef struct {
  uint8_t *arena;
  uint32_t arena_len;
  const uint8_t *flash;
  uint32_t flash_len;
  int check_only;
} bind_mem;

/* bind()'s answer in check-only mode: every check passed (never returned
 * to a caller of the public functions). */
#define CHECKED (-1)

typedef struct {
  int32_t off;      /* byte offset, -1 = none (only if optional)  */
  uint64_t bytes;   /* size derived from the dims                 */
  uint32_t align;   /* 1, 2 or 4                                  */
  uint8_t written;  /* the op writes it                           */
  uint8_t optional; /* -1 allowed                                 */
  uint8_t inplace;  /* written in place: may not overlap others   */
  uint8_t present;  /* set by bind(): not an absent optional      */
  void *ptr;
} tref;

/* Resolves every tensor: arena offsets in [0, arena_len), flash offsets from
 * XST_FLASH_BASE (read-only). Offsets are compared in one number space, where
 * the two regions cannot meet, so the overlap check needs no region test. */
static int bind(const bind_mem *m, tref *t, int n) {
  for (int k = 0; k < n; k++) {
    t[k].ptr = 0;
    t[k].present = 0;
    if (t[k].off == -1 && t[k].optional) continue;
    if (t[k].off < 0) return XST_ERR_BOUNDS;
    uint64_t off = (uint32_t)t[k].off;
    if (off >= XST_FLASH_BASE) {
      off -= XST_FLASH_BASE;
      if ((!m->flash && !m->check_only) || off + t[k].bytes > (uint64_t)m->flash_len) return XST_ERR_BOUNDS;
      if (t[k].written) return XST_ERR_READONLY;
      if (off % t[k].align) return XST_ERR_ALIGN;
      t[k].present = 1;
      if (!m->check_only) t[k].ptr = (void *)(uintptr_t)(m->flash + off); /* kernels only read it */
      continue;
    }
    if (off + t[k].bytes > (uint64_t)m->arena_len) return XST_ERR_BOUNDS;
    if (off % t[k].align) return XST_ERR_ALIGN;
    t[k].present = 1;
    if (!m->check_only) t[k].ptr = m->arena + off;
  }
  for (int a = 0; a < n; a++) {
    if (!t[a].written || !t[a].present) continue;
    uint64_t a0 = (uint32_t)t[a].off, a1 = a0 + t[a].bytes;
    for (int b = 0; b < n; b++) {
      if (b == a || !t[b].present) continue;
      uint64_t b0 = (uint32_t)t[b].off, b1 = b0 + t[b].bytes;
      if (a0 < b1 && b0 < a1) return XST_ERR_ALIAS;
    }
  }
  return m->check_only ? CHECKED : XST_OK;
}

static int dim_ok(int32_t v) { return v >= 1 && v <= MAX_DIM; }

/* a*b*c*d < 2^31 for factors in [1, MAX_DIM], each partial product checked
 * before the next (four factors of 2^24 would wrap even a uint64). A tensor
 * of 2^31 elements or more is XST_ERR_DIMS, as for conv2d. */
static int elems4_ok(int32_t a, int32_t b, int32_t c, int32_t d) {
  const uint64_t lim = 0x7FFFFFFFu;
  uint64_t n = (uint64_t)a * (uint64_t)b;
  if (n > lim) return 0;
  n *= (uint64_t)c;
  if (n > lim) return 0;
  n *= (uint64_t)d;
  return n <= lim;
}

static int block_ok(int32_t out, int32_t in, int32_t ob, int32_t oe, int32_t ib, int32_t ie) {
  return ob >= 0 && ob < oe && oe <= out && ib >= 0 && ib < ie && ie <= in;
}

#define REF(o, b, al, w, opt) ((tref){(o), (uint64_t)(b), (al), (w), (opt), 0, 0, 0})
#define CELL(o, w) REF((o), 4, 4, (w), 0)

static int op_fc_forward(const int32_t *a, const bind_mem *m) {
  xst_fc_dims d = {a[0], a[1], a[2]};
  if (!dim_ok(d.rows) || !dim_ok(d.in_features) || !dim_ok(d.out_features)) return XST_ERR_DIMS;
  uint64_t R = (uint64_t)d.rows, I = (uint64_t)d.in_features, O = (uint64_t)d.out_features;
  tref t[7] = {
    REF(a[7], R * I, 1, 0, 0),            /* in    */
    REF(a[8], O * I, 1, 0, 0),            /* w     */
    REF(a[9], O * 4, 4, 0, 1),            /* bias  */
    REF(a[10], R * O, 1, 1, 0),           /* out   */
    REF(a[11], (R * O + 7) / 8, 1, 1, 1), /* mask  */
    REF(a[12], O * 4, 4, 0, 0),           /* multiplier */
    REF(a[13], O * 4, 4, 0, 0),           /* shift */
  };
  int st = bind(m, t, 7);
  if (st) return st;
  xst_fc_quant q = {a[3], a[4], a[5], a[6], (const int32_t *)t[5].ptr, (const int32_t *)t[6].ptr};
  return fully_connected_s8_forward(&d, &q, (const int8_t *)t[0].ptr, (const int8_t *)t[1].ptr,
                                    (const int32_t *)t[2].ptr, (int8_t *)t[3].ptr, (uint8_t *)t[4].ptr);
}

static int op_fc_backward_input(const int32_t *a, const bind_mem *m) {
  xst_fc_dims d = {a[0], a[1], a[2]};
  if (!dim_ok(d.rows) || !dim_ok(d.in_features) || !dim_ok(d.out_features)) return XST_ERR_DIMS;
  uint64_t R = (uint64_t)d.rows, I = (uint64_t)d.in_features, O = (uint64_t)d.out_features;
  tref t[7] = {
    REF(a[3], O * 2, 2, 0, 0),  /* wscale mantissa */
    REF(a[5], R * O, 1, 0, 0),  /* grad_out */
    CELL(a[6], 0),              /* grad_out_exp */
    REF(a[7], O * I, 1, 0, 0),  /* w */
    REF(a[8], R * I, 1, 1, 0),  /* grad_in */
    CELL(a[9], 1),              /* grad_in_exp */
    REF(a[10], fully_connected_s8_backward_input_scratch_size(&d), 4, 1, 0), /* scratch */
  };
  int st = bind(m, t, 7);
  if (st) return st;
  xst_wscale ws = {(const int16_t *)t[0].ptr, a[4]};
  return fully_connected_s8_backward_input(&d, &ws, (const int8_t *)t[1].ptr, (const int32_t *)t[2].ptr,
                                           (const int8_t *)t[3].ptr, (int8_t *)t[4].ptr,
                                           (int32_t *)t[5].ptr, t[6].ptr);
}

static int op_fc_backward_bias(const int32_t *a, const bind_mem *m) {
  xst_fc_dims d = {a[0], a[1], a[2]};
  if (!dim_ok(d.rows) || !dim_ok(d.in_features) || !dim_ok(d.out_features)) return XST_ERR_DIMS;
  xst_block b = {a[3], a[4], 0, d.in_features};
  if (!block_ok(d.out_features, d.in_features, b.oc_begin, b.oc_end, 0, d.in_features)) return XST_ERR_RANGE;
  tref t[2] = {
    REF(a[5], (uint64_t)d.rows * (uint64_t)d.out_features, 1, 0, 0),
    REF(a[6], (uint64_t)(b.oc_end - b.oc_begin) * 4, 4, 1, 0),
  };
  int st = bind(m, t, 2);
  if (st) return st;
  return fully_connected_s8_backward_bias(&d, &b, (const int8_t *)t[0].ptr, (int32_t *)t[1].ptr);
}

static int op_fc_backward_weight(const int32_t *a, const bind_mem *m) {
  xst_fc_dims d = {a[0], a[1], a[2]};
  if (!dim_ok(d.rows) || !dim_ok(d.in_features) || !dim_ok(d.out_features)) return XST_ERR_DIMS;
  xst_block b = {a[3], a[4], a[5], a[6]};
  if (!block_ok(d.out_features, d.in_features, b.oc_begin, b.oc_end, b.ic_begin, b.ic_end)) return XST_ERR_RANGE;
  uint64_t R = (uint64_t)d.rows;
  tref t[3] = {
    REF(a[8], R * (uint64_t)d.out_features, 1, 0, 0),
    REF(a[9], R * (uint64_t)d.in_features, 1, 0, 0),
    REF(a[10], (uint64_t)(b.oc_end - b.oc_begin) * (uint64_t)(b.ic_end - b.ic_begin) * 4, 4, 1, 0),
  };
  int st = bind(m, t, 3);
  if (st) return st;
  return fully_connected_s8_backward_weight(&d, &b, a[7], (const int8_t *)t[0].ptr,
                                            (const int8_t *)t[1].ptr, (int32_t *)t[2].ptr);
}

static int op_fc_backward_weight_sgd(const int32_t *a, const bind_mem *m) {
  xst_fc_dims d = {a[0], a[1], a[2]};
  if (!dim_ok(d.rows) || !dim_ok(d.in_features) || !dim_ok(d.out_features)) return XST_ERR_DIMS;
  xst_block b = {a[3], a[4], a[5], a[6]};
  if (!block_ok(d.out_features, d.in_features, b.oc_begin, b.oc_end, b.ic_begin, b.ic_end)) return XST_ERR_RANGE;
  uint64_t R = (uint64_t)d.rows, I = (uint64_t)d.in_features, O = (uint64_t)d.out_features;
  tref t[7] = {
    REF(a[8], R * O, 1, 0, 0),  /* grad_out */
    CELL(a[9], 0),              /* grad_out_exp */
    REF(a[10], R * I, 1, 0, 0), /* in */
    REF(a[11], O * 4, 4, 0, 0), /* lr multiplier */
    REF(a[12], O * 4, 4, 0, 0), /* lr shift */
    REF(a[13], O * I, 1, 1, 0), /* w (updated in place) */
    CELL(a[14], 1),             /* rng */
  };
  int st = bind(m, t, 7);
  if (st) return st;
  xst_lr lr = {(const int32_t *)t[3].ptr, (const int32_t *)t[4].ptr};
  return fully_connected_s8_backward_weight_sgd(&d, &b, a[7], (const int8_t *)t[0].ptr,
                                                (const int32_t *)t[1].ptr, (const int8_t *)t[2].ptr,
                                                &lr, (int8_t *)t[5].ptr, (uint32_t *)t[6].ptr);
}

static int op_sgd_s8_update(const int32_t *a, const bind_mem *m) {
  xst_fc_dims d = {1, a[0], a[1]};
  if (!dim_ok(d.in_features) || !dim_ok(d.out_features)) return XST_ERR_DIMS;
  xst_block b = {a[2], a[3], a[4], a[5]};
  if (!block_ok(d.out_features, d.in_features, b.oc_begin, b.oc_end, b.ic_begin, b.ic_end)) return XST_ERR_RANGE;
  uint64_t I = (uint64_t)d.in_features, O = (uint64_t)d.out_features;
  tref t[6] = {
    REF(a[6], (uint64_t)(b.oc_end - b.oc_begin) * (uint64_t)(b.ic_end - b.ic_begin) * 4, 4, 0, 0),
    CELL(a[7], 0),
    REF(a[8], O * 4, 4, 0, 0),
    REF(a[9], O * 4, 4, 0, 0),
    REF(a[10], O * I, 1, 1, 0),
    CELL(a[11], 1),
  };
  int st = bind(m, t, 6);
  if (st) return st;
  xst_lr lr = {(const int32_t *)t[2].ptr, (const int32_t *)t[3].ptr};
  return sgd_s8_update(&d, &b, (const int32_t *)t[0].ptr, (const int32_t *)t[1].ptr, &lr,
                       (int8_t *)t[4].ptr, (uint32_t *)t[5].ptr);
}

static int op_sgd_s32_update(const int32_t *a, const bind_mem *m) {
  int32_t out = a[0];
  if (!dim_ok(out)) return XST_ERR_DIMS;
  xst_block b = {a[1], a[2], 0, 1};
  if (!block_ok(out, 1, b.oc_begin, b.oc_end, 0, 1)) return XST_ERR_RANGE;
  uint64_t O = (uint64_t)out;
  tref t[6] = {
    REF(a[3], (uint64_t)(b.oc_end - b.oc_begin) * 4, 4, 0, 0),
    CELL(a[4], 0),
    REF(a[5], O * 4, 4, 0, 0),
    REF(a[6], O * 4, 4, 0, 0),
    REF(a[7], O * 4, 4, 1, 0),
    CELL(a[8], 1),
  };
  int st = bind(m, t, 6);
  if (st) return st;
  xst_lr lr = {(const int32_t *)t[2].ptr, (const int32_t *)t[3].ptr};
  return sgd_s32_update(&b, (const int32_t *)t[0].ptr, (const int32_t *)t[1].ptr, &lr,
                        (int32_t *)t[4].ptr, (uint32_t *)t[5].ptr);
}

static int op_activation_backward(const int32_t *a, const bind_mem *m) {
  if (!dim_ok(a[0])) return XST_ERR_DIMS;
  uint64_t n = (uint64_t)a[0];
  tref t[2] = {REF(a[1], (n + 7) / 8, 1, 0, 0), REF(a[2], n, 1, 1, 0)};
  int st = bind(m, t, 2);
  if (st) return st;
  return activation_s8_backward(a[0], (const uint8_t *)t[0].ptr, (int8_t *)t[1].ptr);
}

static int op_softmax_xent_backward(const int32_t *a, const bind_mem *m) {
  if (a[0] < 1 || a[0] > 128) return XST_ERR_DIMS;
  uint64_t n = (uint64_t)a[0];
  tref t[5] = {
    REF(a[1], n, 1, 0, 0), /* logits */
    CELL(a[3], 0),         /* label */
    REF(a[4], n, 1, 1, 0), /* grad */
    CELL(a[5], 1),         /* grad_exp */
    REF(a[6], 4, 4, 1, 1), /* p_label_q16 */
  };
  int st = bind(m, t, 5);
  if (st) return st;
  return softmax_xent_s8_backward(a[0], (const int8_t *)t[0].ptr, a[2], *(const int32_t *)t[1].ptr,
                                  (int8_t *)t[2].ptr, (int32_t *)t[3].ptr, (int32_t *)t[4].ptr);
}

/* ---- conv2d (conv2d_s8.c): args start with the 13 xst_conv_dims -------- */

/* Reads the dims and checks the geometry first: after that every tensor has
 * fewer than 2^31 elements, so the uint64 size products below cannot wrap. */
static int conv_dims(const int32_t *a, xst_conv_dims *d) {
  *d = (xst_conv_dims){a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]};
  return conv2d_s8_check_dims(d);
}

static uint64_t conv_in_elems(const xst_conv_dims *d) {
  return (uint64_t)d->batch * (uint64_t)d->in_h * (uint64_t)d->in_w * (uint64_t)d->in_c;
}
static uint64_t conv_out_elems(const xst_conv_dims *d) {
  return (uint64_t)d->batch * (uint64_t)d->out_h * (uint64_t)d->out_w * (uint64_t)d->out_c;
}
static uint64_t conv_w_elems(const xst_conv_dims *d) {
  return (uint64_t)d->out_c * (uint64_t)d->k_h * (uint64_t)d->k_w * (uint64_t)d->in_c;
}

static int op_conv2d_forward(const int32_t *a, const bind_mem *m) {
  xst_conv_dims d;
  int st = conv_dims(a, &d);
  if (st) return st;
  uint64_t O = (uint64_t)d.out_c, Y = conv_out_elems(&d);
  tref t[7] = {
    REF(a[17], conv_in_elems(&d), 1, 0, 0), /* in    */
    REF(a[18], conv_w_elems(&d), 1, 0, 0),  /* w     */
    REF(a[19], O * 4, 4, 0, 1),             /* bias  */
    REF(a[20], Y, 1, 1, 0),                 /* out   */
    REF(a[21], (Y + 7) / 8, 1, 1, 1),       /* mask  */
    REF(a[22], O * 4, 4, 0, 0),             /* multiplier */
    REF(a[23], O * 4, 4, 0, 0),             /* shift */
  };
  st = bind(m, t, 7);
  if (st) return st;
  xst_fc_quant q = {a[13], a[14], a[15], a[16], (const int32_t *)t[5].ptr, (const int32_t *)t[6].ptr};
  return conv2d_s8_forward(&d, &q, (const int8_t *)t[0].ptr, (const int8_t *)t[1].ptr,
                           (const int32_t *)t[2].ptr, (int8_t *)t[3].ptr, (uint8_t *)t[4].ptr);
}

static int op_conv2d_backward_input(const int32_t *a, const bind_mem *m) {
  xst_conv_dims d;
  int st = conv_dims(a, &d);
  if (st) return st;
  uint64_t O = (uint64_t)d.out_c;
  tref t[7] = {
    REF(a[13], O * 2, 2, 0, 0),                  /* wscale mantissa */
    REF(a[15], conv_out_elems(&d), 1, 0, 0),     /* grad_out */
    CELL(a[16], 0),                              /* grad_out_exp */
    REF(a[17], conv_w_elems(&d), 1, 0, 0),       /* w */
    REF(a[18], conv_in_elems(&d), 1, 1, 0),      /* grad_in */
    CELL(a[19], 1),                              /* grad_in_exp */
    REF(a[20], conv2d_s8_backward_input_scratch_size(&d), 4, 1, 0), /* scratch */
  };
  st = bind(m, t, 7);
  if (st) return st;
  xst_wscale ws = {(const int16_t *)t[0].ptr, a[14]};
  return conv2d_s8_backward_input(&d, &ws, (const int8_t *)t[1].ptr, (const int32_t *)t[2].ptr,
                                  (const int8_t *)t[3].ptr, (int8_t *)t[4].ptr, (int32_t *)t[5].ptr, t[6].ptr);
}

static int op_conv2d_backward_bias(const int32_t *a, const bind_mem *m) {
  xst_conv_dims d;
  int st = conv_dims(a, &d);
  if (st) return st;
  xst_block b = {a[13], a[14], 0, d.in_c};
  if (!block_ok(d.out_c, d.in_c, b.oc_begin, b.oc_end, 0, d.in_c)) return XST_ERR_RANGE;
  tref t[2] = {
    REF(a[15], conv_out_elems(&d), 1, 0, 0),                   /* grad_out  */
    REF(a[16], (uint64_t)(b.oc_end - b.oc_begin) * 4, 4, 1, 0), /* grad_bias */
  };
  st = bind(m, t, 2);
  if (st) return st;
  return conv2d_s8_backward_bias(&d, &b, (const int8_t *)t[0].ptr, (int32_t *)t[1].ptr);
}

static int op_conv2d_backward_weight(const int32_t *a, const bind_mem *m) {
  xst_conv_dims d;
  int st = conv_dims(a, &d);
  if (st) return st;
  xst_block b = {a[13], a[14], a[15], a[16]};
  if (!block_ok(d.out_c, d.in_c, b.oc_begin, b.oc_end, b.ic_begin, b.ic_end)) return XST_ERR_RANGE;
  uint64_t gw = (uint64_t)(b.oc_end - b.oc_begin) * (uint64_t)d.k_h * (uint64_t)d.k_w *
                (uint64_t)(b.ic_end - b.ic_begin);
  tref t[3] = {
    REF(a[18], conv_out_elems(&d), 1, 0, 0), /* grad_out */
    REF(a[19], conv_in_elems(&d), 1, 0, 0),  /* in       */
    REF(a[20], gw * 4, 4, 1, 0),             /* grad_w   */
  };
  st = bind(m, t, 3);
  if (st) return st;
  return conv2d_s8_backward_weight(&d, &b, a[17], (const int8_t *)t[0].ptr, (const int8_t *)t[1].ptr,
                                   (int32_t *)t[2].ptr);
}

/* ---- depthwise conv2d (ops 14-17) ---- */

/* args 0-12: xst_dwconv_dims. Each dim in [1, MAX_DIM], pads in [0, MAX_DIM];
 * the kernel checks the geometry itself (pads, window overlap). */
static int dw_dims(const int32_t *a, xst_dwconv_dims *d) {
  for (int k = 0; k < 11; k++) {
    if (!dim_ok(a[k])) return XST_ERR_DIMS;
  }
  if (a[11] < 0 || a[11] > MAX_DIM || a[12] < 0 || a[12] > MAX_DIM) return XST_ERR_DIMS;
  /* out_c = in_c * mult, then every tensor below 2^31 elements (the sizes
   * below are then exact) */
  if ((int64_t)a[3] * a[6] > MAX_DIM) return XST_ERR_DIMS;
  if (!elems4_ok(a[0], a[1], a[2], a[3]) || !elems4_ok(a[0], a[4], a[5], a[3] * a[6]) || !elems4_ok(a[7], a[8], a[3] * a[6], 1)) {
    return XST_ERR_DIMS;
  }
  xst_dwconv_dims v = {a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]};
  *d = v;
  return XST_OK;
}

/* Element counts of the depthwise tensors, in uint64 (dw_dims keeps each
 * below 2^31: no wrap). */
typedef struct { uint64_t in, out, oc, w, pixels; } dw_sizes;

static dw_sizes dw_size(const xst_dwconv_dims *d) {
  dw_sizes z;
  z.oc = (uint64_t)d->in_c * (uint64_t)d->mult;
  z.in = (uint64_t)d->batch * (uint64_t)d->in_h * (uint64_t)d->in_w * (uint64_t)d->in_c;
  z.pixels = (uint64_t)d->batch * (uint64_t)d->out_h * (uint64_t)d->out_w;
  z.out = z.pixels * z.oc;
  z.w = (uint64_t)d->k_h * (uint64_t)d->k_w * z.oc;
  return z;
}

/* The dims and the output-channel block at a[13], a[14] of the depthwise
 * gradient and update ops (16, 17, 38, 40). */
static int dw_oc_block(const int32_t *a, xst_dwconv_dims *d, dw_sizes *z, xst_block *b) {
  int st = dw_dims(a, d);
  if (st) return st;
  *z = dw_size(d);
  *b = (xst_block){a[13], a[14], 0, d->in_c};
  if (z->oc > MAX_DIM) return XST_ERR_DIMS;
  if (!block_ok((int32_t)z->oc, 1, b->oc_begin, b->oc_end, 0, 1)) return XST_ERR_RANGE;
  return XST_OK;
}

static int op_dw_forward(const int32_t *a, const bind_mem *m) {
  xst_dwconv_dims d;
  int st = dw_dims(a, &d);
  if (st) return st;
  dw_sizes z = dw_size(&d);
  tref t[7] = {
    REF(a[17], z.in, 1, 0, 0),              /* in    */
    REF(a[18], z.w, 1, 0, 0),               /* w     */
    REF(a[19], z.oc * 4, 4, 0, 1),          /* bias  */
    REF(a[20], z.out, 1, 1, 0),             /* out   */
    REF(a[21], (z.out + 7) / 8, 1, 1, 1),   /* mask  */
    REF(a[22], z.oc * 4, 4, 0, 0),          /* multiplier */
    REF(a[23], z.oc * 4, 4, 0, 0),          /* shift */
  };
  st = bind(m, t, 7);
  if (st) return st;
  xst_dwconv_quant q = {a[13], a[14], a[15], a[16], (const int32_t *)t[5].ptr, (const int32_t *)t[6].ptr};
  return depthwise_conv2d_s8_forward(&d, &q, (const int8_t *)t[0].ptr, (const int8_t *)t[1].ptr,
                                     (const int32_t *)t[2].ptr, (int8_t *)t[3].ptr, (uint8_t *)t[4].ptr);
}

static int op_dw_backward_input(const int32_t *a, const bind_mem *m) {
  xst_dwconv_dims d;
  int st = dw_dims(a, &d);
  if (st) return st;
  dw_sizes z = dw_size(&d);
  tref t[7] = {
    REF(a[13], z.oc * 2, 2, 0, 0),  /* wscale mantissa */
    REF(a[15], z.out, 1, 0, 0),     /* grad_out */
    CELL(a[16], 0),                 /* grad_out_exp */
    REF(a[17], z.w, 1, 0, 0),       /* w */
    REF(a[18], z.in, 1, 1, 0),      /* grad_in */
    CELL(a[19], 1),                 /* grad_in_exp */
    /* depthwise_conv2d_s8_backward_input_scratch_size(), in uint64 */
    REF(a[20], z.in * 4 + z.oc * 2, 4, 1, 0), /* scratch */
  };
  st = bind(m, t, 7);
  if (st) return st;
  xst_wscale ws = {(const int16_t *)t[0].ptr, a[14]};
  return depthwise_conv2d_s8_backward_input(&d, &ws, (const int8_t *)t[1].ptr, (const int32_t *)t[2].ptr,
                                            (const int8_t *)t[3].ptr, (int8_t *)t[4].ptr,
                                            (int32_t *)t[5].ptr, t[6].ptr);
}

static int op_dw_backward_bias(const int32_t *a, const bind_mem *m) {
  xst_dwconv_dims d;
  dw_sizes z;
  xst_block b;
  int st = dw_oc_block(a, &d, &z, &b);
  if (st) return st;
  tref t[2] = {
    REF(a[15], z.out, 1, 0, 0),
    REF(a[16], (uint64_t)(b.oc_end - b.oc_begin) * 4, 4, 1, 0),
  };
  st = bind(m, t, 2);
  if (st) return st;
  return depthwise_conv2d_s8_backward_bias(&d, &b, (const int8_t *)t[0].ptr, (int32_t *)t[1].ptr);
}

static int op_dw_backward_weight(const int32_t *a, const bind_mem *m) {
  xst_dwconv_dims d;
  dw_sizes z;
  xst_block b;
  int st = dw_oc_block(a, &d, &z, &b);
  if (st) return st;
  tref t[3] = {
    REF(a[16], z.out, 1, 0, 0), /* grad_out */
    REF(a[17], z.in, 1, 0, 0),  /* in */
    REF(a[18], (uint64_t)d.k_h * (uint64_t)d.k_w * (uint64_t)(b.oc_end - b.oc_begin) * 4, 4, 1, 0), /* grad_w */
  };
  st = bind(m, t, 3);
  if (st) return st;
  return depthwise_conv2d_s8_backward_weight(&d, &b, a[15], (const int8_t *)t[0].ptr,
                                             (const int8_t *)t[1].ptr, (int32_t *)t[2].ptr);
}

/* ---- fused conv / depthwise weight gradient + SGD (ids 37-38) ------------ */

static int op_conv2d_backward_weight_sgd(const int32_t *a, const bind_mem *m) {
  xst_conv_dims d;
  int st = conv_dims(a, &d);
  if (st) return st;
  xst_block b = {a[13], a[14], a[15], a[16]};
  if (!block_ok(d.out_c, d.in_c, b.oc_begin, b.oc_end, b.ic_begin, b.ic_end)) return XST_ERR_RANGE;
  uint64_t O = (uint64_t)d.out_c;
  tref t[7] = {
    REF(a[18], conv_out_elems(&d), 1, 0, 0), /* grad_out */
    CELL(a[19], 0),                          /* grad_out_exp */
    REF(a[20], conv_in_elems(&d), 1, 0, 0),  /* in */
    REF(a[21], O * 4, 4, 0, 0),              /* lr multiplier */
    REF(a[22], O * 4, 4, 0, 0),              /* lr shift */
    REF(a[23], conv_w_elems(&d), 1, 1, 0),   /* w (updated in place) */
    CELL(a[24], 1),                          /* rng */
  };
  st = bind(m, t, 7);
  if (st) return st;
  xst_lr lr = {(const int32_t *)t[3].ptr, (const int32_t *)t[4].ptr};
  return conv2d_s8_backward_weight_sgd(&d, &b, a[17], (const int8_t *)t[0].ptr, (const int32_t *)t[1].ptr,
                                       (const int8_t *)t[2].ptr, &lr, (int8_t *)t[5].ptr, (uint32_t *)t[6].ptr);
}

static int op_dw_backward_weight_sgd(const int32_t *a, const bind_mem *m) {
  xst_dwconv_dims d;
  dw_sizes z;
  xst_block b;
  int st = dw_oc_block(a, &d, &z, &b);
  if (st) return st;
  tref t[7] = {
    REF(a[16], z.out, 1, 0, 0),    /* grad_out */
    CELL(a[17], 0),                /* grad_out_exp */
    REF(a[18], z.in, 1, 0, 0),     /* in */
    REF(a[19], z.oc * 4, 4, 0, 0), /* lr multiplier */
    REF(a[20], z.oc * 4, 4, 0, 0), /* lr shift */
    REF(a[21], z.w, 1, 1, 0),      /* w (updated in place) */
    CELL(a[22], 1),                /* rng */
  };
  st = bind(m, t, 7);
  if (st) return st;
  xst_lr lr = {(const int32_t *)t[3].ptr, (const int32_t *)t[4].ptr};
  return depthwise_conv2d_s8_backward_weight_sgd(&d, &b, a[15], (const int8_t *)t[0].ptr, (const int32_t *)t[1].ptr,
                                                 (const int8_t *)t[2].ptr, &lr, (int8_t *)t[5].ptr, (uint32_t *)t[6].ptr);
}

/* ---- average pool, global mean, add, softmax (ids 18-23) ---------------- */

static int pool_dims(const int32_t *a, xst_pool_dims *d) {
  *d = (xst_pool_dims){a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]};
  for (int k = 0; k < 10; k++) {
    if (!dim_ok(a[k])) return XST_ERR_DIMS;
  }
  if (a[10] < 0 || a[11] < 0) return XST_ERR_DIMS;
  if (!elems4_ok(a[0], a[1], a[2], a[3]) || !elems4_ok(a[0], a[4], a[5], a[3])) return XST_ERR_DIMS;
  return XST_OK;
}

static uint64_t pool_in_elems(const xst_pool_dims *d) {
  return (uint64_t)d->batches * (uint64_t)d->in_h * (uint64_t)d->in_w * (uint64_t)d->channels;
}

static uint64_t pool_out_elems(const xst_pool_dims *d) {
  return (uint64_t)d->batches * (uint64_t)d->out_h * (uint64_t)d->out_w * (uint64_t)d->channels;
}

static int op_avg_pool_forward(const int32_t *a, const bind_mem *m) {
  xst_pool_dims d;
  int st = pool_dims(a, &d);
  if (st) return st;
  const uint64_t I = pool_in_elems(&d), O = pool_out_elems(&d);
  tref t[3] = {
    REF(a[14], I, 1, 0, 0),           /* in   */
    REF(a[15], O, 1, 1, 0),           /* out  */
    REF(a[16], (O + 7) / 8, 1, 1, 1), /* mask */
  };
  st = bind(m, t, 3);
  if (st) return st;
  return average_pool_s8_forward(&d, a[12], a[13], (const int8_t *)t[0].ptr, (int8_t *)t[1].ptr,
                                 (uint8_t *)t[2].ptr);
}

static int op_avg_pool_backward(const int32_t *a, const bind_mem *m) {
  xst_pool_dims d;
  int st = pool_dims(a, &d);
  if (st) return st;
  const uint64_t I = pool_in_elems(&d), O = pool_out_elems(&d);
  tref t[5] = {
    REF(a[12], O, 1, 0, 0),     /* grad_out */
    CELL(a[13], 0),             /* grad_out_exp */
    REF(a[14], I, 1, 1, 0),     /* grad_in */
    CELL(a[15], 1),             /* grad_in_exp */
    REF(a[16], I * 4, 4, 1, 0), /* scratch */
  };
  st = bind(m, t, 5);
  if (st) return st;
  return average_pool_s8_backward(&d, (const int8_t *)t[0].ptr, (const int32_t *)t[1].ptr, (int8_t *)t[2].ptr,
                                  (int32_t *)t[3].ptr, t[4].ptr);
}

static int op_add_forward(const int32_t *a, const bind_mem *m) {
  if (!dim_ok(a[0])) return XST_ERR_DIMS;
  const uint64_t n = (uint64_t)a[0];
  tref t[4] = {
    REF(a[13], n, 1, 0, 0),           /* in1  */
    REF(a[14], n, 1, 0, 0),           /* in2  */
    REF(a[15], n, 1, 1, 0),           /* out  */
    REF(a[16], (n + 7) / 8, 1, 1, 1), /* mask */
  };
  int st = bind(m, t, 4);
  if (st) return st;
  const xst_add_quant q = {a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]};
  return add_s8_forward(a[0], &q, (const int8_t *)t[0].ptr, (const int8_t *)t[1].ptr, (int8_t *)t[2].ptr,
                        (uint8_t *)t[3].ptr);
}

static int op_grad_add(const int32_t *a, const bind_mem *m) {
  if (!dim_ok(a[0])) return XST_ERR_DIMS;
  const uint64_t n = (uint64_t)a[0];
  tref t[6] = {
    REF(a[1], n, 1, 0, 0), /* a */
    CELL(a[2], 0),         /* a_exp */
    REF(a[3], n, 1, 0, 0), /* b */
    CELL(a[4], 0),         /* b_exp */
    REF(a[5], n, 1, 1, 0), /* out */
    CELL(a[6], 1),         /* out_exp */
  };
  int st = bind(m, t, 6);
  if (st) return st;
  return add_s8_grad_sum(a[0], (const int8_t *)t[0].ptr, (const int32_t *)t[1].ptr, (const int8_t *)t[2].ptr,
                         (const int32_t *)t[3].ptr, (int8_t *)t[4].ptr, (int32_t *)t[5].ptr);
}

static int op_softmax_forward(const int32_t *a, const bind_mem *m) {
  if (!dim_ok(a[0]) || !dim_ok(a[1])) return XST_ERR_DIMS;
  const uint64_t n = (uint64_t)a[0] * (uint64_t)a[1];
  tref t[2] = {REF(a[5], n, 1, 0, 0), REF(a[6], n, 1, 1, 0)};
  int st = bind(m, t, 2);
  if (st) return st;
  const xst_softmax_quant q = {a[2], a[3], a[4]};
  return softmax_s8_forward(a[0], a[1], &q, (const int8_t *)t[0].ptr, (int8_t *)t[1].ptr);
}

static int op_mean_forward(const int32_t *a, const bind_mem *m) {
  for (int k = 0; k < 4; k++) {
    if (!dim_ok(a[k])) return XST_ERR_DIMS;
  }
  const xst_pool_dims d = {a[0], a[1], a[2], a[3], 1, 1, a[1], a[2], 1, 1, 0, 0};
  tref t[2] = {REF(a[8], pool_in_elems(&d), 1, 0, 0), REF(a[9], pool_out_elems(&d), 1, 1, 0)};
  int st = bind(m, t, 2);
  if (st) return st;
  return mean_s8_forward(&d, a[4], a[5], a[6], a[7], (const int8_t *)t[0].ptr, (int8_t *)t[1].ptr);
}

/* ---- log-quantized momentum (lqm_s8.c, ids 24-26) ----------------------- */

/* The LQM scalars of args [k, k+4): bits, emin, emax, decay; the state
 * tensor's size from bits and in*out, checked against state_bytes. */
static int lqm_params(const int32_t *a, int k, const int32_t *shift, xst_lqm *p) {
  *p = (xst_lqm){a[k], a[k + 1], a[k + 2], a[k + 3], shift};
  return lqm_check_params(p);
}

static int op_lqm_s8_update(const int32_t *a, const bind_mem *m) {
  xst_fc_dims d = {1, a[0], a[1]};
  if (!dim_ok(d.in_features) || !dim_ok(d.out_features)) return XST_ERR_DIMS;
  xst_block b = {a[2], a[3], a[4], a[5]};
  if (!block_ok(d.out_features, d.in_features, b.oc_begin, b.oc_end, b.ic_begin, b.ic_end)) return XST_ERR_RANGE;
  xst_lqm p;
  int st = lqm_params(a, 9, 0, &p);
  if (st) return st;
  uint64_t I = (uint64_t)d.in_features, O = (uint64_t)d.out_features;
  if (a[14] < 0 || (uint64_t)a[14] != lqm_state_bytes(p.bits, I * O)) return XST_ERR_DIMS;
  tref t[6] = {
    REF(a[6], (uint64_t)(b.oc_end - b.oc_begin) * (uint64_t)(b.ic_end - b.ic_begin) * 4, 4, 0, 0), /* grad */
    CELL(a[7], 0),                         /* grad_exp */
    REF(a[8], O * 4, 4, 0, 0),             /* shift */
    REF(a[13], (uint64_t)a[14], 1, 1, 0),  /* state */
    REF(a[15], O * I, 1, 1, 0),            /* w */
    CELL(a[16], 1),                        /* rng */
  };
  st = bind(m, t, 6);
  if (st) return st;
  p.shift = (const int32_t *)t[2].ptr;
  return lqm_s8_update(&d, &b, (const int32_t *)t[0].ptr, (const int32_t *)t[1].ptr, &p, (uint8_t *)t[3].ptr,
                       (int8_t *)t[4].ptr, (uint32_t *)t[5].ptr);
}

/* Ops 25 and 26 (lqm16: the residual tensor at a[19], rng moves to a[20]). */
static int fc_backward_weight_lqm_args(const int32_t *a, const bind_mem *m, int lqm16) {
  xst_fc_dims d = {a[0], a[1], a[2]};
  if (!dim_ok(d.rows) || !dim_ok(d.in_features) || !dim_ok(d.out_features)) return XST_ERR_DIMS;
  xst_block b = {a[3], a[4], a[5], a[6]};
  if (!block_ok(d.out_features, d.in_features, b.oc_begin, b.oc_end, b.ic_begin, b.ic_end)) return XST_ERR_RANGE;
  xst_lqm p;
  int st = lqm_params(a, 12, 0, &p);
  if (st) return st;
  uint64_t R = (uint64_t)d.rows, I = (uint64_t)d.in_features, O = (uint64_t)d.out_features;
  if (a[17] < 0 || (uint64_t)a[17] != lqm_state_bytes(p.bits, I * O)) return XST_ERR_DIMS;
  tref t[8] = {
    REF(a[8], R * O, 1, 0, 0),             /* grad_out */
    CELL(a[9], 0),                         /* grad_out_exp */
    REF(a[10], R * I, 1, 0, 0),            /* in */
    REF(a[11], O * 4, 4, 0, 0),            /* shift */
    REF(a[16], (uint64_t)a[17], 1, 1, 0),  /* state */
    REF(a[18], O * I, 1, 1, 0),            /* w */
    CELL(a[lqm16 ? 20 : 19], 1),           /* rng */
    REF(a[19], O * I, 1, 1, 0),            /* residual (lqm16 only: op 25 binds 7) */
  };
  st = bind(m, t, lqm16 ? 8 : 7);
  if (st) return st;
  p.shift = (const int32_t *)t[3].ptr;
  if (lqm16) {
    return fully_connected_s8_backward_weight_lqm16(&d, &b, a[7], (const int8_t *)t[0].ptr,
                                                    (const int32_t *)t[1].ptr, (const int8_t *)t[2].ptr, &p,
                                                    (uint8_t *)t[4].ptr, (int8_t *)t[5].ptr, (int8_t *)t[7].ptr,
                                                    (uint32_t *)t[6].ptr);
  }
  return fully_connected_s8_backward_weight_lqm(&d, &b, a[7], (const int8_t *)t[0].ptr, (const int32_t *)t[1].ptr,
                                                (const int8_t *)t[2].ptr, &p, (uint8_t *)t[4].ptr,
                                                (int8_t *)t[5].ptr, (uint32_t *)t[6].ptr);
}

static int op_fc_backward_weight_lqm(const int32_t *a, const bind_mem *m) {
  return fc_backward_weight_lqm_args(a, m, 0);
}

static int op_fc_backward_weight_lqm16(const int32_t *a, const bind_mem *m) {
  return fc_backward_weight_lqm_args(a, m, 1);
}
/* ---- end of log-quantized momentum ---- */
/* ---- optimizer baselines (ids 28-32, optim_f32.c / optim_s16.c) ---------- */

static int op_sgd_f32(const int32_t *a, const bind_mem *m) {
  if (!dim_ok(a[0])) return XST_ERR_DIMS;
  const uint64_t n = (uint64_t)a[0];
  tref t[2] = {REF(a[2], n * 4, 4, 0, 0), REF(a[3], n * 4, 4, 1, 0)};
  int st = bind(m, t, 2);
  if (st) return st;
  return sgd_f32_update(a[0], xst_f32_from_bits(a[1]), (const float *)t[0].ptr, (float *)t[1].ptr);
}

static int op_momentum_f32(const int32_t *a, const bind_mem *m) {
  if (!dim_ok(a[0])) return XST_ERR_DIMS;
  const uint64_t n = (uint64_t)a[0];
  tref t[3] = {REF(a[3], n * 4, 4, 0, 0), REF(a[4], n * 4, 4, 1, 0), REF(a[5], n * 4, 4, 1, 0)};
  int st = bind(m, t, 3);
  if (st) return st;
  return momentum_f32_update(a[0], xst_f32_from_bits(a[1]), xst_f32_from_bits(a[2]), (const float *)t[0].ptr,
                             (float *)t[1].ptr, (float *)t[2].ptr);
}

static int op_adam_f32(const int32_t *a, const bind_mem *m) {
  if (!dim_ok(a[0])) return XST_ERR_DIMS;
  const uint64_t n = (uint64_t)a[0];
  tref t[5] = {
    REF(a[5], n * 4, 4, 0, 0), /* grad */
    REF(a[6], n * 4, 4, 1, 0), /* m */
    REF(a[7], n * 4, 4, 1, 0), /* v */
    REF(a[8], 8, 4, 1, 0),     /* beta powers */
    REF(a[9], n * 4, 4, 1, 0), /* param */
  };
  int st = bind(m, t, 5);
  if (st) return st;
  const xst_adam_f32 h = {xst_f32_from_bits(a[1]), xst_f32_from_bits(a[2]), xst_f32_from_bits(a[3]),
                          xst_f32_from_bits(a[4])};
  return adam_f32_update(a[0], &h, (const float *)t[0].ptr, (float *)t[1].ptr, (float *)t[2].ptr,
                         (float *)t[3].ptr, (float *)t[4].ptr);
}

static int op_sgd_s16(const int32_t *a, const bind_mem *m) {
  if (!dim_ok(a[0])) return XST_ERR_DIMS;
  const uint64_t n = (uint64_t)a[0];
  tref t[4] = {REF(a[4], n * 4, 4, 0, 0), CELL(a[5], 0), REF(a[6], n * 2, 2, 1, 0), CELL(a[7], 1)};
  int st = bind(m, t, 4);
  if (st) return st;
  const xst_s16_optim p = {a[1], 0, a[2], a[3], 0};
  return sgd_s16_update(a[0], &p, (const int32_t *)t[0].ptr, (const int32_t *)t[1].ptr, (int16_t *)t[2].ptr,
                        (uint32_t *)t[3].ptr);
}

static int op_momentum_s16(const int32_t *a, const bind_mem *m) {
  if (!dim_ok(a[0])) return XST_ERR_DIMS;
  const uint64_t n = (uint64_t)a[0];
  tref t[5] = {
    REF(a[6], n * 4, 4, 0, 0), /* grad */
    CELL(a[7], 0),             /* grad_exp */
    REF(a[8], n * 2, 2, 1, 0), /* velocity */
    REF(a[9], n * 2, 2, 1, 0), /* param */
    CELL(a[10], 1),            /* rng */
  };
  int st = bind(m, t, 5);
  if (st) return st;
  const xst_s16_optim p = {a[1], a[2], a[3], a[4], a[5]};
  return momentum_s16_update(a[0], &p, (const int32_t *)t[0].ptr, (const int32_t *)t[1].ptr, (int16_t *)t[2].ptr,
                             (int16_t *)t[3].ptr, (uint32_t *)t[4].ptr);
}

/* ---- split weights, row-scratch input gradients (ids 33-35) ------------ */

static int op_fc_forward_split(const int32_t *a, const bind_mem *m) {
  xst_fc_dims d = {a[0], a[1], a[2]};
  if (!dim_ok(d.rows) || !dim_ok(d.in_features) || !dim_ok(d.out_features)) return XST_ERR_DIMS;
  if (a[3] < 1 || a[3] > d.in_features) return XST_ERR_DIMS;
  uint64_t R = (uint64_t)d.rows, I = (uint64_t)d.in_features, O = (uint64_t)d.out_features, S = (uint64_t)a[3];
  if (S < I && a[10] == -1) return XST_ERR_DIMS;
  tref t[8] = {
    REF(a[8], R * I, 1, 0, 0),            /* in    */
    REF(a[9], O * S, 1, 0, 0),            /* w_lo  */
    REF(a[10], O * (I - S), 1, 0, 1),     /* w_hi  */
    REF(a[11], O * 4, 4, 0, 1),           /* bias  */
    REF(a[12], R * O, 1, 1, 0),           /* out   */
    REF(a[13], (R * O + 7) / 8, 1, 1, 1), /* mask  */
    REF(a[14], O * 4, 4, 0, 0),           /* multiplier */
    REF(a[15], O * 4, 4, 0, 0),           /* shift */
  };
  if (S == I) t[2].off = -1;
  int st = bind(m, t, 8);
  if (st) return st;
  xst_fc_quant q = {a[4], a[5], a[6], a[7], (const int32_t *)t[6].ptr, (const int32_t *)t[7].ptr};
  return fully_connected_s8_forward_split(&d, a[3], &q, (const int8_t *)t[0].ptr, (const int8_t *)t[1].ptr,
                                          (const int8_t *)t[2].ptr, (const int32_t *)t[3].ptr, (int8_t *)t[4].ptr,
                                          (uint8_t *)t[5].ptr);
}

static int op_fc_backward_input_rows(const int32_t *a, const bind_mem *m) {
  xst_fc_dims d = {a[0], a[1], a[2]};
  if (!dim_ok(d.rows) || !dim_ok(d.in_features) || !dim_ok(d.out_features)) return XST_ERR_DIMS;
  if (a[3] < 1 || a[3] > d.in_features) return XST_ERR_DIMS;
  uint64_t R = (uint64_t)d.rows, I = (uint64_t)d.in_features, O = (uint64_t)d.out_features, S = (uint64_t)a[3];
  if (S < I && a[9] == -1) return XST_ERR_DIMS;
  tref t[8] = {
    REF(a[4], O * 2, 2, 0, 0),       /* wscale mantissa */
    REF(a[6], R * O, 1, 0, 0),       /* grad_out */
    CELL(a[7], 0),                   /* grad_out_exp */
    REF(a[8], O * S, 1, 0, 0),       /* w_lo */
    REF(a[9], O * (I - S), 1, 0, 1), /* w_hi */
    REF(a[10], R * I, 1, 1, 0),      /* grad_in */
    CELL(a[11], 1),                  /* grad_in_exp */
    REF(a[12], fully_connected_s8_backward_input_rows_scratch_size(&d), 4, 1, 0), /* scratch */
  };
  if (S == I) t[4].off = -1;
  int st = bind(m, t, 8);
  if (st) return st;
  xst_wscale ws = {(const int16_t *)t[0].ptr, a[5]};
  return fully_connected_s8_backward_input_rows(&d, a[3], &ws, (const int8_t *)t[1].ptr, (const int32_t *)t[2].ptr,
                                                (const int8_t *)t[3].ptr, (const int8_t *)t[4].ptr, (int8_t *)t[5].ptr,
                                                (int32_t *)t[6].ptr, t[7].ptr);
}

static int op_dw_backward_input_rows(const int32_t *a, const bind_mem *m) {
  xst_dwconv_dims d;
  int st = dw_dims(a, &d);
  if (st) return st;
  dw_sizes z = dw_size(&d);
  tref t[7] = {
    REF(a[13], z.oc * 2, 2, 0, 0),  /* wscale mantissa */
    REF(a[15], z.out, 1, 0, 0),     /* grad_out */
    CELL(a[16], 0),                 /* grad_out_exp */
    REF(a[17], z.w, 1, 0, 0),       /* w */
    REF(a[18], z.in, 1, 1, 0),      /* grad_in */
    CELL(a[19], 1),                 /* grad_in_exp */
    /* depthwise_conv2d_s8_backward_input_rows_scratch_size(), in uint64 */
    REF(a[20], (uint64_t)d.in_w * (uint64_t)d.in_c * 4 + z.oc * 2, 4, 1, 0), /* scratch */
  };
  st = bind(m, t, 7);
  if (st) return st;
  xst_wscale ws = {(const int16_t *)t[0].ptr, a[14]};
  return depthwise_conv2d_s8_backward_input_rows(&d, &ws, (const int8_t *)t[1].ptr, (const int32_t *)t[2].ptr,
                                                 (const int8_t *)t[3].ptr, (int8_t *)t[4].ptr,
                                                 (int32_t *)t[5].ptr, t[6].ptr);
}

/* ---- saved input channels (id 36) ---------------------------------------- */

static int op_channel_slice(const int32_t *a, const bind_mem *m) {
  if (!dim_ok(a[0]) || !dim_ok(a[1])) return XST_ERR_DIMS;
  if (a[2] < 0 || a[3] <= a[2] || a[3] > a[1]) return XST_ERR_RANGE;
  const uint64_t R = (uint64_t)a[0], C = (uint64_t)a[1], N = (uint64_t)(a[3] - a[2]);
  tref t[2] = {REF(a[4], R * C, 1, 0, 0), REF(a[5], R * N, 1, 1, 0)};
  int st = bind(m, t, 2);
  if (st) return st;
  return channel_slice_s8(a[0], a[1], a[2], a[3], (const int8_t *)t[0].ptr, (int8_t *)t[1].ptr);
}

/* ---- fused conv / depthwise weight gradient + LQM (ids 39-40) ------------ */

/* The arguments both ops share from grad_out at a[g] on: grad_out (out
 * elements), grad_out_exp, in (in elements), lqm_shift (oc), bits, emin,
 * emax, decay, state, state_bytes (the packing of nw weights), w (nw), rng.
 * Binds them into t[7] and fills *p. */
static int fused_lqm_args(const int32_t *a, int g, uint64_t out, uint64_t in, uint64_t oc, uint64_t nw,
                          const bind_mem *m, tref *t, xst_lqm *p) {
  int st = lqm_params(a, g + 4, 0, p);
  if (st) return st;
  if (a[g + 9] < 0 || (uint64_t)a[g + 9] != lqm_state_bytes(p->bits, nw)) return XST_ERR_DIMS;
  t[0] = REF(a[g], out, 1, 0, 0);                  /* grad_out */
  t[1] = CELL(a[g + 1], 0);                        /* grad_out_exp */
  t[2] = REF(a[g + 2], in, 1, 0, 0);               /* in */
  t[3] = REF(a[g + 3], oc * 4, 4, 0, 0);           /* lqm shift */
  t[4] = REF(a[g + 8], (uint64_t)a[g + 9], 1, 1, 0); /* state */
  t[5] = REF(a[g + 10], nw, 1, 1, 0);              /* w (updated in place) */
  t[6] = CELL(a[g + 11], 1);                       /* rng */
  st = bind(m, t, 7);
  if (st) return st;
  p->shift = (const int32_t *)t[3].ptr;
  return XST_OK;
}

static int op_conv2d_backward_weight_lqm(const int32_t *a, const bind_mem *m) {
  xst_conv_dims d;
  int st = conv_dims(a, &d);
  if (st) return st;
  xst_block b = {a[13], a[14], a[15], a[16]};
  if (!block_ok(d.out_c, d.in_c, b.oc_begin, b.oc_end, b.ic_begin, b.ic_end)) return XST_ERR_RANGE;
  tref t[7];
  xst_lqm p;
  st = fused_lqm_args(a, 18, conv_out_elems(&d), conv_in_elems(&d), (uint64_t)d.out_c, conv_w_elems(&d), m, t, &p);
  if (st) return st;
  return conv2d_s8_backward_weight_lqm(&d, &b, a[17], (const int8_t *)t[0].ptr, (const int32_t *)t[1].ptr,
                                       (const int8_t *)t[2].ptr, &p, (uint8_t *)t[4].ptr, (int8_t *)t[5].ptr,
                                       (uint32_t *)t[6].ptr);
}

static int op_dw_backward_weight_lqm(const int32_t *a, const bind_mem *m) {
  xst_dwconv_dims d;
  dw_sizes z;
  xst_block b;
  int st = dw_oc_block(a, &d, &z, &b);
  if (st) return st;
  tref t[7];
  xst_lqm p;
  st = fused_lqm_args(a, 16, z.out, z.in, z.oc, z.w, m, t, &p);
  if (st) return st;
  return depthwise_conv2d_s8_backward_weight_lqm(&d, &b, a[15], (const int8_t *)t[0].ptr, (const int32_t *)t[1].ptr,
                                                 (const int8_t *)t[2].ptr, &p, (uint8_t *)t[4].ptr, (int8_t *)t[5].ptr,
                                                 (uint32_t *)t[6].ptr);
}

typedef int (*op_fn)(const int32_t *, const bind_mem *);
/* Indexed by op id (designated initialisers: one line per op, any order);
 * ids without a row are unknown ops. */
static const struct { op_fn fn; int32_t nargs; } kOps[XST_OP_COUNT] = {
  [XST_OP_FC_FORWARD] = {op_fc_forward, 14},
  [XST_OP_FC_BACKWARD_INPUT] = {op_fc_backward_input, 11},
  [XST_OP_FC_BACKWARD_BIAS] = {op_fc_backward_bias, 7},
  [XST_OP_FC_BACKWARD_WEIGHT] = {op_fc_backward_weight, 11},
  [XST_OP_FC_BACKWARD_WEIGHT_SGD] = {op_fc_backward_weight_sgd, 15},
  [XST_OP_SGD_S8_UPDATE] = {op_sgd_s8_update, 12},
  [XST_OP_SGD_S32_UPDATE] = {op_sgd_s32_update, 9},
  [XST_OP_ACTIVATION_BACKWARD] = {op_activation_backward, 3},
  [XST_OP_SOFTMAX_XENT_BACKWARD] = {op_softmax_xent_backward, 7},
  [XST_OP_CONV2D_FORWARD] = {op_conv2d_forward, 24},
  [XST_OP_CONV2D_BACKWARD_INPUT] = {op_conv2d_backward_input, 21},
  [XST_OP_CONV2D_BACKWARD_BIAS] = {op_conv2d_backward_bias, 17},
  [XST_OP_CONV2D_BACKWARD_WEIGHT] = {op_conv2d_backward_weight, 21},
  [XST_OP_DEPTHWISE_CONV2D_FORWARD] = {op_dw_forward, 24},
  [XST_OP_DEPTHWISE_CONV2D_BACKWARD_INPUT] = {op_dw_backward_input, 21},
  [XST_OP_DEPTHWISE_CONV2D_BACKWARD_BIAS] = {op_dw_backward_bias, 17},
  [XST_OP_DEPTHWISE_CONV2D_BACKWARD_WEIGHT] = {op_dw_backward_weight, 19},
  [XST_OP_AVG_POOL_FORWARD] = {op_avg_pool_forward, 17},
  [XST_OP_AVG_POOL_BACKWARD] = {op_avg_pool_backward, 17},
  [XST_OP_ADD_FORWARD] = {op_add_forward, 17},
  [XST_OP_GRAD_ADD] = {op_grad_add, 7},
  [XST_OP_SOFTMAX_FORWARD] = {op_softmax_forward, 7},
  [XST_OP_MEAN_FORWARD] = {op_mean_forward, 10},
  [XST_OP_LQM_S8_UPDATE] = {op_lqm_s8_update, 17},
  [XST_OP_FC_BACKWARD_WEIGHT_LQM] = {op_fc_backward_weight_lqm, 20},
  [XST_OP_FC_BACKWARD_WEIGHT_LQM16] = {op_fc_backward_weight_lqm16, 21},
  [XST_OP_SGD_F32_UPDATE] = {op_sgd_f32, 4},
  [XST_OP_MOMENTUM_F32_UPDATE] = {op_momentum_f32, 6},
  [XST_OP_ADAM_F32_UPDATE] = {op_adam_f32, 10},
  [XST_OP_SGD_S16_UPDATE] = {op_sgd_s16, 8},
  [XST_OP_MOMENTUM_S16_UPDATE] = {op_momentum_s16, 11},
  [XST_OP_FC_FORWARD_SPLIT] = {op_fc_forward_split, 16},
  [XST_OP_FC_BACKWARD_INPUT_ROWS] = {op_fc_backward_input_rows, 13},
  [XST_OP_DEPTHWISE_CONV2D_BACKWARD_INPUT_ROWS] = {op_dw_backward_input_rows, 21},
  [XST_OP_CHANNEL_SLICE] = {op_channel_slice, 6},
  [XST_OP_CONV2D_BACKWARD_WEIGHT_SGD] = {op_conv2d_backward_weight_sgd, 25},
  [XST_OP_DEPTHWISE_CONV2D_BACKWARD_WEIGHT_SGD] = {op_dw_backward_weight_sgd, 23},
  [XST_OP_CONV2D_BACKWARD_WEIGHT_LQM] = {op_conv2d_backward_weight_lqm, 30},
  [XST_OP_DEPTHWISE_CONV2D_BACKWARD_WEIGHT_LQM] = {op_dw_backward_weight_lqm, 28},
};

int xst_dispatch_memory(int32_t op, const int32_t *args, int32_t nargs, const xst_memory *mem) {
  if (op < 1 || op >= XST_OP_COUNT || !kOps[op].fn) return XST_ERR_BAD_OP;
  if (nargs != kOps[op].nargs) return XST_ERR_ARG_COUNT;
  if (!mem || (!mem->arena && mem->arena_len) || (!mem->flash && mem->flash_len)) return XST_ERR_BOUNDS;
  if (mem->arena_len >= XST_FLASH_BASE) return XST_ERR_BOUNDS;
  const bind_mem m = {mem->arena, mem->arena_len, mem->flash, mem->flash_len, 0};
  int st = kOps[op].fn(args, &m);
  return st == CHECKED ? XST_OK : st; /* (cannot happen: not check-only) */
}

int xst_dispatch_check(int32_t op, const int32_t *args, int32_t nargs, uint32_t arena_len, uint32_t flash_len) {
  if (op < 1 || op >= XST_OP_COUNT || !kOps[op].fn) return XST_ERR_BAD_OP;
  if (nargs != kOps[op].nargs) return XST_ERR_ARG_COUNT;
  if (arena_len >= XST_FLASH_BASE) return XST_ERR_BOUNDS;
  const bind_mem m = {0, arena_len, 0, flash_len, 1};
  int st = kOps[op].fn(args, &m);
  return st == CHECKED ? XST_OK : st;
}

int xst_dispatch(int32_t op, const int32_t *args, int32_t nargs, uint8_t *arena, uint32_t arena_len) {
  xst_memory m = {arena, arena_len, 0, 0};
  return xst_dispatch_memory(op, args, nargs, &m);
}

int32_t xst_op_nargs(int32_t op) {
  return op >= 1 && op < XST_OP_COUNT && kOps[op].fn ? kOps[op].nargs : -1;
}

const char *xst_status_name(int status) {
  switch (status) {
    case XST_OK: return "ok";
    case XST_ERR_ARG_COUNT: return "wrong number of arguments";
    case XST_ERR_BAD_OP: return "unknown op";
    case XST_ERR_DIMS: return "bad dimensions";
    case XST_ERR_RANGE: return "channel range out of bounds";
    case XST_ERR_BOUNDS: return "tensor outside the arena";
    case XST_ERR_ALIGN: return "tensor misaligned";
    case XST_ERR_PARAM: return "quantisation parameter out of range";
    case XST_ERR_ALIAS: return "output tensor overlaps another tensor";
    case XST_ERR_READONLY: return "output tensor in read-only memory";
    case XST_ERR_PLAN_MAGIC: return "not a plan (bad magic)";
    case XST_ERR_PLAN_VERSION: return "unsupported plan version";
    case XST_ERR_PLAN_LENGTH: return "plan truncated (length field beyond the bytes)";
    case XST_ERR_PLAN_CRC: return "plan CRC mismatch";
    case XST_ERR_PLAN_FORMAT: return "malformed plan section";
    case XST_ERR_PLAN_ARENA: return "arena too small for the plan";
    default: return "unknown status";
  }
}
