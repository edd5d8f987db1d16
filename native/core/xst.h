/*
 * xstrain C core: public contract.
 *
 * C99, no malloc, no stdio, no platform headers. Every tensor lives in one
 * caller-owned arena (a byte buffer); kernels take pointers, the dispatcher
 * takes byte offsets into the arena and checks every one of them before a
 * kernel runs. Bindings (Node-API, xsmc, the bare-metal trace driver) call
 * only xst_dispatch(), so bounds checking lives in exactly one place.
 *
 * Numeric conventions (see native/README.md for the full text):
 *  - activations: int8, per-tensor (scale, zero point), TFLite int8 spec;
 *  - weights: int8 symmetric per output channel, [out][in] row-major;
 *  - bias: int32 with scale s_x * s_w[c];
 *  - requantisation: Q31 multiplier + shift (TFLite convention: shift > 0 is
 *    a left shift), saturating rounding doubling high multiply, rounding
 *    right shift;
 *  - gradients: int8 values with one power-of-two exponent per tensor stored
 *    in an int32 cell next to them (real = q * 2^exp); weight/bias gradient
 *    buffers are int32 with the exponent of the output gradient.
 */
#ifndef XST_H
#define XST_H

#include <stddef.h>
#include <stdint.h>

/* ---- status codes ------------------------------------------------------ */
typedef enum {
  XST_OK = 0,
  XST_ERR_ARG_COUNT = 1,    /* wrong number of arguments for the op        */
  XST_ERR_BAD_OP = 2,       /* unknown op id                               */
  XST_ERR_DIMS = 3,         /* a dimension is zero, negative or too large  */
  XST_ERR_RANGE = 4,        /* a channel range is empty or out of bounds   */
  XST_ERR_BOUNDS = 5,       /* a tensor does not lie inside the arena      */
  XST_ERR_ALIGN = 6,        /* an int16/int32 tensor is not aligned        */
  XST_ERR_PARAM = 7,        /* a quantisation parameter is out of range    */
  XST_ERR_ALIAS = 8,        /* two tensors overlap where the op forbids it */
  XST_ERR_READONLY = 9,     /* the op writes a tensor in read-only memory  */
  /* plan blobs (plan.c) */
  XST_ERR_PLAN_MAGIC = 10,  /* not a plan: the first bytes are not XSTP    */
  XST_ERR_PLAN_VERSION = 11,/* a plan format this core does not read       */
  XST_ERR_PLAN_LENGTH = 12, /* the length field is beyond the given bytes  */
  XST_ERR_PLAN_CRC = 13,    /* the CRC does not match the bytes            */
  XST_ERR_PLAN_FORMAT = 14, /* a section, record or descriptor is malformed */
  XST_ERR_PLAN_ARENA = 15   /* the plan needs a larger arena than given    */
} xst_status;

const char *xst_status_name(int status);

/* ---- requantisation / fixed point helpers are in xst_fixed.h ----------- */

/* ---- kernel parameter structs (CMSIS-NN style) ------------------------- */

/* Shape of a fully-connected layer. rows = batch. */
typedef struct {
  int32_t rows;
  int32_t in_features;
  int32_t out_features;
} xst_fc_dims;

/* Forward quantisation of a fully-connected layer. */
typedef struct {
  int32_t input_offset;       /* -zp_in, in [-127, 128]                      */
  int32_t output_offset;      /*  zp_out, in [-128, 127]                     */
  int32_t act_min;            /* fused activation clamp, int8 domain         */
  int32_t act_max;
  const int32_t *multiplier;  /* [out] Q31 per-channel multipliers           */
  const int32_t *shift;       /* [out] per-channel shifts (>0: left)         */
} xst_fc_quant;

/* Scale of the weights for the input gradient: s_w[c] = m[c] * 2^(exp-15). */
typedef struct {
  const int16_t *mantissa_q15; /* [out] in [0, 32767]                        */
  int32_t exp;
} xst_wscale;

/* Half-open channel block [begin, end) used by the sparse update. */
typedef struct {
  int32_t oc_begin, oc_end;   /* output channels                             */
  int32_t ic_begin, ic_end;   /* input channels (features)                   */
} xst_block;

/* Per-channel learning-rate factor for SGD: step = lr * grad_real / s_param,
 * folded into Q31 multiplier + shift per output channel (QAS: the 1/s_w and
 * 1/(s_w*s_x) factors live here, computed at compile time). */
typedef struct {
  const int32_t *multiplier;  /* [out] Q31                                   */
  const int32_t *shift;       /* [out] TFLite convention                     */
} xst_lr;

/* ---- kernels ------------------------------------------------------------
 * Each kernel returns XST_OK or an error from dimension checks; pointers
 * are trusted (the dispatcher checked them). */

/* out[r][c] = clamp(requant(sum_i (in[r][i]+input_offset)*w[c][i] + bias[c]))
 * in (rows,in) int8, w (out,in) int8, bias (out) int32 or NULL,
 * out (rows,out) int8, mask (ceil(rows*out/8)) bit per output or NULL:
 * bit set when act_min < out < act_max (the clamp let the gradient through).
 * Aliasing: out and mask must not overlap in, w, bias. Scratch: none. */
int fully_connected_s8_forward(const xst_fc_dims *d, const xst_fc_quant *q,
                               const int8_t *in, const int8_t *w,
                               const int32_t *bias, int8_t *out,
                               uint8_t *mask);
size_t fully_connected_s8_forward_scratch_size(const xst_fc_dims *d);

/* grad_in[r][i] (int8, exponent *grad_in_exp) =
 *   sum_c w[c][i] * s_w[c] * grad_out[r][c] * 2^grad_out_exp, normalised so
 *   the largest magnitude lands in [64,127]. Sets (does not accumulate).
 * scratch: fully_connected_s8_backward_input_scratch_size() bytes, 4-aligned.
 * Aliasing: grad_in must not overlap grad_out, w or scratch. */
int fully_connected_s8_backward_input(const xst_fc_dims *d,
                                      const xst_wscale *ws,
                                      const int8_t *grad_out,
                                      const int32_t *grad_out_exp,
                                      const int8_t *w, int8_t *grad_in,
                                      int32_t *grad_in_exp, void *scratch);
size_t fully_connected_s8_backward_input_scratch_size(const xst_fc_dims *d);

/* grad_bias[c - oc_begin] = sum_r grad_out[r][c]  (int32, exponent of
 * grad_out). Sets. Only the output-channel range of blk is used.
 * Aliasing: none allowed. Scratch: none. */
int fully_connected_s8_backward_bias(const xst_fc_dims *d, const xst_block *blk,
                                     const int8_t *grad_out, int32_t *grad_bias);

/* grad_w[c - oc_begin][i - ic_begin] =
 *   sum_r grad_out[r][c] * (in[r][i] + input_offset)
 * int32, real scale 2^grad_out_exp * s_in. Sets. Aliasing: none allowed.
 * Scratch: none (the Arm DSP path keeps up to 1.3 KB on the stack). */
int fully_connected_s8_backward_weight(const xst_fc_dims *d,
                                       const xst_block *blk,
                                       int32_t input_offset,
                                       const int8_t *grad_out,
                                       const int8_t *in, int32_t *grad_w);

/* Fused weight gradient + integer SGD (Tiny Training Engine in-place update):
 * for each (c, i) in blk, g = sum_r grad_out[r][c]*(in[r][i]+input_offset)
 * and w[c][i] -= sr(g * lr[c] * 2^grad_out_exp), without a gradient buffer.
 * Bit-identical to backward_weight followed by sgd_s8_update. The Arm DSP
 * path keeps up to 2.3 KB on the stack (a gradient tile at rows >= 2). */
int fully_connected_s8_backward_weight_sgd(const xst_fc_dims *d,
                                           const xst_block *blk,
                                           int32_t input_offset,
                                           const int8_t *grad_out,
                                           const int32_t *grad_out_exp,
                                           const int8_t *in, const xst_lr *lr,
                                           int8_t *w, uint32_t *rng);

/* Integer SGD with stochastic rounding (xorshift32 state *rng, advanced once
 * per element of the block whose gradient is nonzero, row-major over
 * (oc, ic); zero gradients change nothing and draw nothing):
 *   w[c][i] = clamp(w[c][i] - floor((g*M[c] + r) / 2^R), -127, 127),
 *   R = 31 - shift[c] - grad_exp, r uniform in [0, 2^R).
 * w is the full (out,in) tensor, grad the (oc,ic) block of blk. */
int sgd_s8_update(const xst_fc_dims *d, const xst_block *blk,
                  const int32_t *grad, const int32_t *grad_exp,
                  const xst_lr *lr, int8_t *w, uint32_t *rng);
/* The same for an int32 bias over blk's output-channel range. */
int sgd_s32_update(const xst_block *blk, const int32_t *grad,
                   const int32_t *grad_exp, const xst_lr *lr, int32_t *bias,
                   uint32_t *rng);

/* grad[k] = 0 where mask bit k is clear (ReLU/ReLU6 backward), in place. */
int activation_s8_backward(int32_t n, const uint8_t *mask, int8_t *grad);

/* Softmax cross-entropy gradient from int8 logits and a label:
 *   grad[j] = round(128 * softmax(s*logits)[j]) - 128*[j == label],
 * clamped to int8, *grad_exp = -7. exp is integer fixed point:
 * log2e_scale_q16 = round(s * log2(e) * 2^16). *p_label_q16 (may be NULL)
 * receives softmax[label] in Q16. classes in [1, 128].
 * Aliasing: grad must not overlap logits. Scratch: none. */
int softmax_xent_s8_backward(int32_t classes, const int8_t *logits,
                             int32_t log2e_scale_q16, int32_t label,
                             int8_t *grad, int32_t *grad_exp,
                             int32_t *p_label_q16);

/* ---- dispatcher ---------------------------------------------------------
 * One entry point for all bindings. args are int32; every tensor argument
 * is a byte offset into the arena, -1 where the op allows "none". Sizes are
 * derived from the dims in args and checked against arena_len, alignment
 * checked for int16/int32 tensors. Argument layouts: the table below and
 * src/core/ops.ts (the two must agree; tests check it). */
enum {
  XST_OP_FC_FORWARD = 1,
  XST_OP_FC_BACKWARD_INPUT = 2,
  XST_OP_FC_BACKWARD_BIAS = 3,
  XST_OP_FC_BACKWARD_WEIGHT = 4,
  XST_OP_FC_BACKWARD_WEIGHT_SGD = 5,
  XST_OP_SGD_S8_UPDATE = 6,
  XST_OP_SGD_S32_UPDATE = 7,
  XST_OP_ACTIVATION_BACKWARD = 8,
  XST_OP_SOFTMAX_XENT_BACKWARD = 9,
  /* ids 10-13 conv2d, 14-17 depthwise conv2d, 18-27 pooling, mean, add,
   * softmax, 24-27 LQM, 28-32 optimizer baselines, 33-35 split weights and
   * row-scratch input gradients, 36 channel slice, 37-38 fused conv and
   * depthwise weight gradient + SGD, 39-40 the same + LQM: see the
   * kernel-library sections below */
  XST_OP_COUNT = 41 /* one past the largest id the table may hold */
};

/* Argument layouts (count): tensors are arena byte offsets, "|-1" optional.
 *  FC_FORWARD (14): rows, in, out, input_offset, output_offset, act_min,
 *    act_max, in, w, bias|-1, out, mask|-1, multiplier(i32[out]),
 *    shift(i32[out])
 *  FC_BACKWARD_INPUT (11): rows, in, out, wscale_mantissa(i16[out]),
 *    wscale_exp, grad_out, grad_out_exp(cell), w, grad_in,
 *    grad_in_exp(cell), scratch
 *  FC_BACKWARD_BIAS (7): rows, in, out, oc_begin, oc_end, grad_out,
 *    grad_bias(i32[oc])
 *  FC_BACKWARD_WEIGHT (11): rows, in, out, oc_begin, oc_end, ic_begin,
 *    ic_end, input_offset, grad_out, in, grad_w(i32[oc][ic])
 *  FC_BACKWARD_WEIGHT_SGD (15): rows, in, out, oc_begin, oc_end, ic_begin,
 *    ic_end, input_offset, grad_out, grad_out_exp(cell), in,
 *    lr_multiplier(i32[out]), lr_shift(i32[out]), w, rng(cell)
 *  SGD_S8_UPDATE (12): in, out, oc_begin, oc_end, ic_begin, ic_end,
 *    grad(i32[oc][ic]), grad_exp(cell), lr_multiplier, lr_shift, w, rng(cell)
 *  SGD_S32_UPDATE (9): out, oc_begin, oc_end, grad(i32[oc]), grad_exp(cell),
 *    lr_multiplier, lr_shift, bias(i32[out]), rng(cell)
 *  ACTIVATION_BACKWARD (3): n, mask, grad
 *  SOFTMAX_XENT_BACKWARD (7): classes, logits, log2e_scale_q16,
 *    label(cell), grad, grad_exp(cell), p_label_q16(cell)|-1
 * A "cell" is one int32 in the arena (4-aligned). */
int xst_dispatch(int32_t op, const int32_t *args, int32_t nargs,
                 uint8_t *arena, uint32_t arena_len);

/* Read-only memory beside the arena: frozen weights, biases and
 * requantisation tables stay in flash on a device. A tensor offset at or
 * above XST_FLASH_BASE refers to flash[offset - XST_FLASH_BASE]; such a
 * tensor may only be read (a written one is XST_ERR_READONLY). The arena
 * must be smaller than XST_FLASH_BASE bytes. */
#define XST_FLASH_BASE 0x40000000
typedef struct {
  uint8_t *arena;
  uint32_t arena_len;
  const uint8_t *flash; /* may be NULL (then flash_len is 0) */
  uint32_t flash_len;
} xst_memory;
int xst_dispatch_memory(int32_t op, const int32_t *args, int32_t nargs,
                        const xst_memory *mem);
/* Number of arguments op takes, -1 for an unknown op. */
int32_t xst_op_nargs(int32_t op);

/* Every check xst_dispatch_memory makes (op, argument count, dims, channel
 * ranges, each tensor inside an arena of arena_len bytes or a flash region
 * of flash_len bytes, alignment, overlap, read-only), without memory and
 * without running the kernel: XST_OK or the status the call would return
 * before its kernel starts. (Checks a kernel makes on values it reads from
 * memory, such as a label or a table entry, still happen when it runs.) */
int xst_dispatch_check(int32_t op, const int32_t *args, int32_t nargs,
                       uint32_t arena_len, uint32_t flash_len);

/* CRC-32 (IEEE 802.3, reflected, init and xorout 0xFFFFFFFF). */
uint32_t xst_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* ---- training plans (native/core/plan.c; format: native/README.md) ------
 * A plan blob holds one training step (and an inference pass) of a model as
 * lists of dispatcher calls, plus the read-only region they read (frozen
 * weights, tables), the arena's initial contents (trainable weights, biases,
 * optimizer state, rng seed) and where the input, label and outputs live.
 * The blob is untrusted: xst_plan_validate checks the header (magic,
 * version, length, CRC), every section, and every op's arguments against
 * the plan's arena and flash (xst_dispatch_check) before anything runs. */
#define XST_PLAN_VERSION 1
#define XST_PLAN_HEADER_BYTES 32u

enum { XST_PLAN_TRAIN = 0, XST_PLAN_INFER = 1 };

/* Sections (kinds); a valid plan has each exactly once. */
enum {
  XST_PLAN_SECTION_FLASH = 1,   /* the read-only region, byte i = XST_FLASH_BASE + i */
  XST_PLAN_SECTION_INIT = 2,    /* arena contents at load: {offset, n, bytes} */
  XST_PLAN_SECTION_IO = 3,      /* input, label, logits, metric, output       */
  XST_PLAN_SECTION_TRAIN = 4,   /* the ops of one training step               */
  XST_PLAN_SECTION_INFER = 5,   /* the ops of one inference                   */
  XST_PLAN_SECTION_REGIONS = 6, /* trainable regions (checkpoints, CRCs)      */
  XST_PLAN_SECTION_KINDS = 6
};

/* Where the host puts a sample and finds the results (arena offsets). */
typedef struct {
  uint32_t input_offset, input_bytes;  /* int8 input tensor               */
  uint32_t label_offset;               /* int32 cell: class index          */
  uint32_t classes;
  uint32_t logits_offset, logits_bytes;
  int32_t metric_offset;               /* int32 cell: p(label) Q16, or -1  */
  uint32_t output_offset, output_bytes;/* what the inference ops leave     */
} xst_plan_io;

/* A validated plan: views into the blob (which must outlive it). */
typedef struct {
  const uint8_t *blob;
  uint32_t length;
  uint32_t arena_bytes;
  const uint8_t *flash;
  uint32_t flash_len;
  const uint8_t *init; /* first INIT record */
  uint32_t init_count;
  const uint8_t *ops[2]; /* first op record of TRAIN, INFER */
  uint32_t op_bytes[2];  /* bytes of their records */
  uint32_t op_count[2];
  const uint8_t *regions; /* first region record: kind, offset, bytes */
  uint32_t region_count;
  xst_plan_io io;
  /* Where validation failed: the section kind (0: header or section
   * table, -1: nothing failed) and the record index inside it (-1: the
   * section as a whole; IO: the word index). */
  int32_t error_section;
  int32_t error_index;
} xst_plan;

/* Checks blob[0, len) as a plan for an arena of arena_capacity bytes and
 * fills *plan. XST_OK, or a status saying what is wrong (XST_ERR_PLAN_*,
 * or the dispatcher's status for the op at plan->error_index of section
 * plan->error_section). The blob must be 4-aligned in memory (its flash
 * section holds int32 tables; else XST_ERR_ALIGN). Bytes past the header's
 * length are ignored. */
int xst_plan_validate(const uint8_t *blob, uint32_t len, uint32_t arena_capacity, xst_plan *plan);

/* Zeroes arena[0, plan->arena_bytes) and writes the INIT records: the
 * state before the first step. XST_ERR_PLAN_ARENA if arena_len is short. */
int xst_plan_reset(const xst_plan *plan, uint8_t *arena, uint32_t arena_len);

/* Runs the TRAIN or INFER ops in order (each through
 * xst_dispatch_memory, so each is checked again); stops at the first
 * nonzero status and stores the op's index in *failed_op (-1 when all ran;
 * failed_op may be NULL). The host wrote the input and label first. */
int xst_plan_run(const xst_plan *plan, int which, uint8_t *arena, uint32_t arena_len, int32_t *failed_op);

/* ---- kernel library: conv2d (native/core/conv2d_s8.c) -------------------
 * TFLite CONV_2D, int8, per-channel weights, dilation 1. NHWC activations,
 * OHWI weights. Padding explicit: pad_h/pad_w are the top/left padding
 * (src/core/conv-geometry.ts computes them and out_h/out_w from SAME/VALID
 * as TFLite does); taps outside the image are skipped. Valid geometry per
 * axis: 0 <= pad < k and (out-1)*stride - pad < in (every output window
 * overlaps the image); every extent in [1, 2^24], k_h*k_w*in_c <= 65536,
 * out_c <= 2^20, every tensor < 2^31 elements. */
typedef struct {
  int32_t batch, in_h, in_w, in_c;
  int32_t out_h, out_w, out_c;
  int32_t k_h, k_w;
  int32_t stride_h, stride_w;
  int32_t pad_h, pad_w;       /* top, left                                   */
} xst_conv_dims;

/* XST_OK or XST_ERR_DIMS for the geometry rules above (used by all four). */
int conv2d_s8_check_dims(const xst_conv_dims *d);

/* out[b][oy][ox][c] = clamp(requant(bias[c] + sum_{ky,kx in image, i}
 *   (in[b][oy*sh-ph+ky][ox*sw-pw+kx][i] + input_offset) * w[c][ky][kx][i]))
 * in (batch,in_h,in_w,in_c), w (out_c,k_h,k_w,in_c), bias (out_c) or NULL,
 * out (batch,out_h,out_w,out_c), mask (ceil(batch*out_h*out_w*out_c/8)) or
 * NULL, bit k = ((b*out_h+oy)*out_w+ox)*out_c+c set when act_min < v <
 * act_max. Bit-exact with TFLite ConvPerChannel. 1x1/stride 1/no padding
 * runs fully_connected_s8_forward over batch*h*w rows.
 * Aliasing: out and mask must not overlap in, w, bias. Scratch: none.
 * Stack (GCC 12 -O2 -fstack-usage, Cortex-M4F): DSP builds 168 + 1,992
 * bytes for the general path (im2col of two pixels, 1 KB, when
 * k_h*k_w*in_c <= 512; else the portable loop) or 168 + 1,728 for the
 * tiny-patch path (split weights, k_h*k_w*in_c <= 16 and out_c <= 32);
 * portable builds 168. */
int conv2d_s8_forward(const xst_conv_dims *d, const xst_fc_quant *q,
                      const int8_t *in, const int8_t *w, const int32_t *bias,
                      int8_t *out, uint8_t *mask);
size_t conv2d_s8_forward_scratch_size(const xst_conv_dims *d);

/* grad_in (batch,in_h,in_w,in_c) int8, exponent *grad_in_exp: the
 * transposed convolution of grad_out (batch,out_h,out_w,out_c) (exponent
 * *grad_out_exp) with w * s_w[c], accumulated exactly in int32 and
 * normalised so the largest magnitude lands in [64,127]. Sets. Terms per
 * element T = out_c*ceil(k_h/stride_h)*ceil(k_w/stride_w) <= 2^24 (else
 * XST_ERR_DIMS); grad_out is pre-scaled by the weight-scale mantissa to
 * 2^(22-pre) with pre = max(8, ceil(log2 T) - 1), so every int32 partial sum
 * stays below 2^30. 1x1/stride 1/no padding runs
 * fully_connected_s8_backward_input (the same pre).
 * scratch: conv2d_s8_backward_input_scratch_size() bytes, 4-aligned
 * (batch*in_h*in_w*in_c*4 + out_c*2; SIZE_MAX if that does not fit size_t).
 * Aliasing: grad_in must not overlap grad_out, w or scratch. */
int conv2d_s8_backward_input(const xst_conv_dims *d, const xst_wscale *ws,
                             const int8_t *grad_out, const int32_t *grad_out_exp,
                             const int8_t *w, int8_t *grad_in,
                             int32_t *grad_in_exp, void *scratch);
size_t conv2d_s8_backward_input_scratch_size(const xst_conv_dims *d);

/* grad_bias[c - oc_begin] = sum_{b,oy,ox} grad_out[b][oy][ox][c], int32,
 * exponent of grad_out. Sets. batch*out_h*out_w <= 2^23 (exact int32 sum).
 * Only blk's output-channel range is used. Aliasing: none. Scratch: none. */
int conv2d_s8_backward_bias(const xst_conv_dims *d, const xst_block *blk,
                            const int8_t *grad_out, int32_t *grad_bias);

/* grad_w[c-oc_begin][ky][kx][i-ic_begin] = sum_{b,oy,ox} grad_out[b][oy][ox][c]
 *   * (in[b][oy*sh-ph+ky][ox*sw-pw+kx][i] + input_offset), out-of-image taps
 * contributing 0; int32 (noc, k_h, k_w, nic), real scale 2^grad_out_exp *
 * s_in. Sets. batch*out_h*out_w <= 65535 (65535 * 128 * 255 < 2^31: exact).
 * Aliasing: none. Scratch: none. k_h*k_w*nic <= 256: patch by patch (the
 * pixel's offset-added input patch once, then one flat loop per output
 * channel; DSP builds: pixel pairs through SMLAD); larger patches: per-tap
 * loop. Stack (GCC 12 -O2 -fstack-usage, Cortex-M4F): DSP builds 176 + 1,248
 * (two interleaved int16 patches, 1 KB); portable builds 680 (one int16
 * patch, 512 B). */
int conv2d_s8_backward_weight(const xst_conv_dims *d, const xst_block *blk,
                              int32_t input_offset, const int8_t *grad_out,
                              const int8_t *in, int32_t *grad_w);

/* Fused weight gradient + integer SGD (Tiny Training Engine in-place
 * update, as fully_connected_s8_backward_weight_sgd): for each
 * (c, ky, kx, i) of the block in that (row-major) order, g = the gradient
 * of conv2d_s8_backward_weight and, when g != 0,
 *   w[c][ky][kx][i] = clamp(w - floor((g*M[c] + r) / 2^R), -127, 127),
 * R = 31 - shift[c] - *grad_out_exp, r from one xorshift32 draw (QAS lives
 * in the per-channel lr, computed on the host). w is the whole (out_c, k_h,
 * k_w, in_c) tensor. Bit-identical to conv2d_s8_backward_weight followed by
 * sgd_s8_update on the (out_c, k_h*k_w*in_c) view of w, one call per output
 * channel and tap when the block's input channels are not all of in_c.
 * 1x1/stride 1/no padding runs fully_connected_s8_backward_weight_sgd.
 * Limits as conv2d_s8_backward_weight; lr multiplier >= 0 and shift in
 * [-62, 62] over the block, *rng != 0 (else XST_ERR_PARAM). Aliasing: w must
 * not overlap the other tensors. Scratch: none. Stack (GCC 12 -O2
 * -fstack-usage, Cortex-M4F DSP): 80 + 1,232 (the gradient loop with its
 * 1 KB tile) + the conv2d_s8_backward_weight call's 1,440, or the FC
 * kernel's for 1x1. */
int conv2d_s8_backward_weight_sgd(const xst_conv_dims *d, const xst_block *blk, int32_t input_offset,
                                  const int8_t *grad_out, const int32_t *grad_out_exp, const int8_t *in,
                                  const xst_lr *lr, int8_t *w, uint32_t *rng);

/* Dispatcher ops. "dims" below is the 13 int32 of xst_conv_dims in order:
 * batch, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, stride_h,
 * stride_w, pad_h, pad_w.
 *  CONV2D_FORWARD (24): dims, input_offset, output_offset, act_min, act_max,
 *    in, w, bias|-1, out, mask|-1, multiplier(i32[out_c]), shift(i32[out_c])
 *  CONV2D_BACKWARD_INPUT (21): dims, wscale_mantissa(i16[out_c]),
 *    wscale_exp, grad_out, grad_out_exp(cell), w, grad_in, grad_in_exp(cell),
 *    scratch
 *  CONV2D_BACKWARD_BIAS (17): dims, oc_begin, oc_end, grad_out,
 *    grad_bias(i32[oc])
 *  CONV2D_BACKWARD_WEIGHT (21): dims, oc_begin, oc_end, ic_begin, ic_end,
 *    input_offset, grad_out, in, grad_w(i32[oc][k_h][k_w][ic]) */
enum {
  XST_OP_CONV2D_FORWARD = 10,
  XST_OP_CONV2D_BACKWARD_INPUT = 11,
  XST_OP_CONV2D_BACKWARD_BIAS = 12,
  XST_OP_CONV2D_BACKWARD_WEIGHT = 13
};

/* ---- kernel library: depthwise conv2d (depthwise_conv2d_s8.c) ----------
 * TFLite DEPTHWISE_CONV_2D, int8, per-channel weights, dilation 1.
 * in (batch, in_h, in_w, in_c) NHWC int8; w (1, k_h, k_w, out_c) int8 with
 * out_c = in_c * mult, output channel oc = ic * mult + m reads input channel
 * ic = oc / mult; out (batch, out_h, out_w, out_c). pad_h / pad_w are the top
 * and left pads (SAME: floor(total / 2), VALID: 0); taps outside the image
 * are skipped (they contribute as the input zero point). Limits (else
 * XST_ERR_DIMS): every dim in [1, 2^24], pads in [0, k - 1], k_h*k_w <=
 * 65536, out_c <= 2^24, every output window overlaps the image
 * ((out - 1) * stride - pad <= in - 1), which SAME and VALID both satisfy. */
typedef struct {
  int32_t batch;
  int32_t in_h, in_w, in_c;
  int32_t out_h, out_w;
  int32_t mult;               /* depth multiplier: out_c = in_c * mult       */
  int32_t k_h, k_w;
  int32_t stride_h, stride_w;
  int32_t pad_h, pad_w;       /* top and left padding                         */
} xst_dwconv_dims;

/* Forward quantisation: the fully-connected one, per output channel
 * (multiplier and shift have out_c entries). */
typedef xst_fc_quant xst_dwconv_quant;

/* out[b][oy][ox][oc] = clamp(requant(bias[oc] + sum_{ky,kx inside}
 *   (in[b][oy*sh-ph+ky][ox*sw-pw+kx][oc/mult] + input_offset) * w[ky][kx][oc]))
 * bias (out_c) int32 or NULL; mask (ceil(batch*out_h*out_w*out_c / 8)) bit per
 * output or NULL, set when act_min < out < act_max. Bit-exact with TFLite's
 * reference DepthwiseConvPerChannel. Aliasing: out and mask must not overlap
 * in, w, bias. Scratch: none (size twin returns 0). Stack (GCC 12 -O2
 * -fstack-usage, Cortex-M4F): DSP builds with depth multiplier 1 and
 * k_h*k_w <= 64: 296 + 760 bytes (512 of them split weights); other shapes:
 * 296; portable builds: 288. */
int depthwise_conv2d_s8_forward(const xst_dwconv_dims *d, const xst_dwconv_quant *q,
                                const int8_t *in, const int8_t *w,
                                const int32_t *bias, int8_t *out,
                                uint8_t *mask);
size_t depthwise_conv2d_s8_forward_scratch_size(const xst_dwconv_dims *d);

/* grad_in[b][iy][ix][ic] (int8, exponent *grad_in_exp) = sum over m, ky, kx
 *   with oy*sh-ph+ky == iy, ox*sw-pw+kx == ix of
 *   w[ky][kx][oc] * s_w[oc] * grad_out[b][oy][ox][oc] * 2^grad_out_exp,
 *   oc = ic*mult + m; normalised so the largest magnitude lands in [64,127].
 * grad_out is pre-scaled by the Q15 weight-scale mantissa into 16 bits with a
 * shift `pre` chosen from mult*ceil(k_h/sh)*ceil(k_w/sw), the most terms one
 * element sums, so the int32 sum stays below 2^30. Sets (does not accumulate).
 * scratch: depthwise_conv2d_s8_backward_input_scratch_size() bytes, 4-aligned
 * (int32 [batch*in_h*in_w*in_c] then int16 [out_c]).
 * Aliasing: grad_in must not overlap grad_out, w or scratch. DSP builds with
 * depth multiplier 1: 4 channels per 32-bit weight load (SMLABB/SMLATT), the
 * int16 scratch area holding the pixel's gradients as packed pairs. Stack
 * (GCC 12 -O2 -fstack-usage, Cortex-M4F): DSP 176 + 200, portable 152. */
int depthwise_conv2d_s8_backward_input(const xst_dwconv_dims *d,
                                       const xst_wscale *ws,
                                       const int8_t *grad_out,
                                       const int32_t *grad_out_exp,
                                       const int8_t *w, int8_t *grad_in,
                                       int32_t *grad_in_exp, void *scratch);
size_t depthwise_conv2d_s8_backward_input_scratch_size(const xst_dwconv_dims *d);

/* grad_bias[oc - oc_begin] = sum_{b,oy,ox} grad_out[b][oy][ox][oc] (int32,
 * exponent of grad_out), oc in [oc_begin, oc_end). Sets. Only the
 * output-channel range of blk is used. batch*out_h*out_w <= 2^23 (exact).
 * Aliasing: none allowed. Scratch: none. */
int depthwise_conv2d_s8_backward_bias(const xst_dwconv_dims *d, const xst_block *blk,
                                      const int8_t *grad_out, int32_t *grad_bias);

/* grad_w[ky][kx][oc - oc_begin] = sum_{b,oy,ox, tap inside the image}
 *   grad_out[b][oy][ox][oc] * (in[b][iy][ix][oc/mult] + input_offset)
 * int32, real scale 2^grad_out_exp * s_in; oc in [oc_begin, oc_end). The block
 * keeps the weights' (k_h, k_w, channel) layout, so the full range is shaped
 * like w. Sets. Sparse update: only blk's output-channel range is used; a
 * depthwise weight connects one output channel to one input channel (oc/mult),
 * so there is no separate input-channel range (ic_begin/ic_end are ignored).
 * batch*out_h*out_w <= 65535 keeps the sums exact (|sum| < 2^31).
 * Aliasing: none allowed. Scratch: none. DSP builds with depth multiplier 1:
 * per 4 channels and tap, the sum over the output pixels whose tap is in the
 * image, 4 channels per 32-bit load of grad_out and input (SMLABB/SMLATT).
 * Stack (GCC 12 -O2 -fstack-usage, Cortex-M4F): DSP 160 + 152, portable 136. */
int depthwise_conv2d_s8_backward_weight(const xst_dwconv_dims *d,
                                        const xst_block *blk,
                                        int32_t input_offset,
                                        const int8_t *grad_out,
                                        const int8_t *in, int32_t *grad_w);

enum {
  XST_OP_DEPTHWISE_CONV2D_FORWARD = 14,
  XST_OP_DEPTHWISE_CONV2D_BACKWARD_INPUT = 15,
  XST_OP_DEPTHWISE_CONV2D_BACKWARD_BIAS = 16,
  XST_OP_DEPTHWISE_CONV2D_BACKWARD_WEIGHT = 17
};

/* Fused weight gradient + integer SGD, per channel: for each output
 * channel oc of blk (in order) and each tap (ky, kx) (row-major), g = the
 * gradient of depthwise_conv2d_s8_backward_weight and, when g != 0,
 *   w[ky][kx][oc] = clamp(w - floor((g*M[oc] + r) / 2^R), -127, 127),
 * R = 31 - shift[oc] - *grad_out_exp, one xorshift32 draw per nonzero g.
 * w is the whole (1, k_h, k_w, out_c) tensor. Bit-identical to
 * depthwise_conv2d_s8_backward_weight followed by sgd_s8_update on the
 * transposed (out_c, k_h*k_w) weights and gradient. Limits as
 * depthwise_conv2d_s8_backward_weight; lr and rng as the conv2d one.
 * Aliasing: w must not overlap the other tensors. Scratch: none. Stack
 * (GCC 12 -O2 -fstack-usage, Cortex-M4F DSP): 56 + 1,248 (the gradient loop
 * with its 1 KB tile) + the depthwise_conv2d_s8_backward_weight call's 312. */
int depthwise_conv2d_s8_backward_weight_sgd(const xst_dwconv_dims *d, const xst_block *blk, int32_t input_offset,
                                            const int8_t *grad_out, const int32_t *grad_out_exp, const int8_t *in,
                                            const xst_lr *lr, int8_t *w, uint32_t *rng);

/* Argument layouts (count). DW = the 13 dims of xst_dwconv_dims in order:
 * batch, in_h, in_w, in_c, out_h, out_w, mult, k_h, k_w, stride_h, stride_w,
 * pad_h, pad_w (args 0-12); out_c = in_c * mult.
 *  DEPTHWISE_CONV2D_FORWARD (24): DW, input_offset, output_offset, act_min,
 *    act_max, in, w, bias(i32[out_c])|-1, out, mask|-1,
 *    multiplier(i32[out_c]), shift(i32[out_c])
 *  DEPTHWISE_CONV2D_BACKWARD_INPUT (21): DW, wscale_mantissa(i16[out_c]),
 *    wscale_exp, grad_out, grad_out_exp(cell), w, grad_in,
 *    grad_in_exp(cell), scratch
 *  DEPTHWISE_CONV2D_BACKWARD_BIAS (17): DW, oc_begin, oc_end, grad_out,
 *    grad_bias(i32[oc])
 *  DEPTHWISE_CONV2D_BACKWARD_WEIGHT (19): DW, oc_begin, oc_end, input_offset,
 *    grad_out, in, grad_w(i32[k_h][k_w][oc]) */
/* ---- average pool, global mean, add, softmax (op ids 18-27) -------------
 * Activations NHWC int8. TFLite semantics (reference_integer_ops), see the
 * header comment of each kernel file for the rounding and bounds. */

/* Shape of a 2-D pooling window sweep (TFLite PoolParams with explicit
 * padding): SAME/VALID are turned into pad_h/pad_w (top/left) by the host.
 * Every window must hold at least one in-image tap. */
typedef struct {
  int32_t batches, in_h, in_w, channels;
  int32_t out_h, out_w;
  int32_t filter_h, filter_w;
  int32_t stride_h, stride_w;
  int32_t pad_h, pad_w;
} xst_pool_dims;

/* TFLite ADD int8 parameters (ArithmeticParams). Multipliers Q31 in
 * [0, 2^31), shifts in [-31, 0] (QuantizeMultiplierSmallerThanOneExp). */
typedef struct {
  int32_t input1_offset, input1_multiplier, input1_shift; /* offset = -zp1 */
  int32_t input2_offset, input2_multiplier, input2_shift; /* offset = -zp2 */
  int32_t left_shift;                                     /* 20 for int8   */
  int32_t output_offset, output_multiplier, output_shift; /* offset = zp   */
  int32_t act_min, act_max;
} xst_add_quant;

/* TFLite int8 softmax parameters (SoftmaxParams), from the host:
 * PreprocessSoftmaxScaling(beta, s_in, 5 integer bits) and
 * diff_min = -CalculateInputRadius(5, input_left_shift). */
typedef struct {
  int32_t input_multiplier;  /* Q31, >= 0                                  */
  int32_t input_left_shift;  /* [0, 31]                                    */
  int32_t diff_min;          /* <= 0: inputs further below the row max -> 0 */
} xst_softmax_quant;

/* out[b][oy][ox][c] = clamp(round_half_away(sum of the in-image taps of the
 * window / their count), act_min, act_max): input and output share scale
 * and zero point. in (b,in_h,in_w,c), out (b,out_h,out_w,c), mask
 * ceil(out elements/8) or NULL (bit set when act_min < v < act_max).
 * Aliasing: out and mask must not overlap in. Scratch: none. */
int average_pool_s8_forward(const xst_pool_dims *d, int32_t act_min,
                            int32_t act_max, const int8_t *in, int8_t *out,
                            uint8_t *mask);

/* grad_in[pixel] (exponent *grad_in_exp) = sum over the windows holding the
 * pixel of grad_out[window] * 2^grad_out_exp / count(window), accumulated
 * exactly in int32 with Q-format reciprocals of the counts, normalised so
 * the largest magnitude lands in [64, 127]. Sets. Also the backward of the
 * global mean (filter = whole image). scratch: _scratch_size() bytes,
 * 4-aligned. Aliasing: grad_in must not overlap grad_out or scratch. */
int average_pool_s8_backward(const xst_pool_dims *d, const int8_t *grad_out,
                             const int32_t *grad_out_exp, int8_t *grad_in,
                             int32_t *grad_in_exp, void *scratch);
size_t average_pool_s8_backward_scratch_size(const xst_pool_dims *d);

/* TFLite MEAN over axes [1, 2] with keep_dims, int8:
 * out[b][c] = clamp(round_half_away(requant(sum_hw (in - zp_in),
 * multiplier, shift) / (h*w)) + zp_out). multiplier/shift from
 * s_in / s_out. in (b,h,w,c), out (b,1,1,c). Aliasing: none. Scratch: none. */
int mean_s8_forward(const xst_pool_dims *d, int32_t input_zero_point,
                    int32_t multiplier, int32_t shift,
                    int32_t output_zero_point, const int8_t *in,
                    int8_t *out);

/* TFLite ADD int8 (same shapes, no broadcast): n elements, optional mask
 * (bit set when act_min < v < act_max). Backward: out = a + b in reals, so
 * the gradient of each input is the output gradient (after the mask).
 * Aliasing: out and mask must not overlap the inputs. Scratch: none. */
int add_s8_forward(int32_t n, const xst_add_quant *q, const int8_t *in1,
                   const int8_t *in2, int8_t *out, uint8_t *mask);

/* Gradient sum where two branches meet (residual fork):
 * real out = qa*2^ea + qb*2^eb, written as int8 + exponent normalised so
 * the largest magnitude lands in [64, 127]. Exact int32 sum when
 * |ea - eb| <= 22; beyond that the smaller-exponent operand is rounded at
 * 2^(top-30) first (top: the larger operand's leading bit), so the result
 * is within 1 LSB of the correctly rounded sum. Sets.
 * Aliasing: out must not overlap a or b. Scratch: none. */
int add_s8_grad_sum(int32_t n, const int8_t *a, const int32_t *a_exp,
                    const int8_t *b, const int32_t *b_exp, int8_t *out,
                    int32_t *out_exp);

/* TFLite int8 softmax over the last axis: rows x depth, output scale 1/256,
 * zero point -128, gemmlowp fixed-point exp (Q5.26 input, Q12.19 sum),
 * bit-exact with reference_ops::Softmax. depth in [1, 511] (keeps the sum
 * of exps below 2^28 so the output shift stays <= 31).
 * Aliasing: out must not overlap in. Scratch: none. */
int softmax_s8_forward(int32_t rows, int32_t depth,
                       const xst_softmax_quant *q, const int8_t *in,
                       int8_t *out);

enum {
  XST_OP_AVG_POOL_FORWARD = 18,
  XST_OP_AVG_POOL_BACKWARD = 19,
  XST_OP_ADD_FORWARD = 20,
  XST_OP_GRAD_ADD = 21,
  XST_OP_SOFTMAX_FORWARD = 22,
  XST_OP_MEAN_FORWARD = 23
  /* 24-26 LQM (below), 27 free: the mean backward is AVG_POOL_BACKWARD
   * with a whole-image filter (VALID, out 1x1) */
};

/* Argument layouts (count), as above:
 *  AVG_POOL_FORWARD (17): batches, in_h, in_w, channels, out_h, out_w,
 *    filter_h, filter_w, stride_h, stride_w, pad_h, pad_w, act_min,
 *    act_max, in, out, mask|-1
 *  AVG_POOL_BACKWARD (17): batches, in_h, in_w, channels, out_h, out_w,
 *    filter_h, filter_w, stride_h, stride_w, pad_h, pad_w, grad_out,
 *    grad_out_exp(cell), grad_in, grad_in_exp(cell), scratch
 *  ADD_FORWARD (17): n, input1_offset, input1_multiplier, input1_shift,
 *    input2_offset, input2_multiplier, input2_shift, left_shift,
 *    output_offset, output_multiplier, output_shift, act_min, act_max,
 *    in1, in2, out, mask|-1
 *  GRAD_ADD (7): n, a, a_exp(cell), b, b_exp(cell), out, out_exp(cell)
 *  SOFTMAX_FORWARD (7): rows, depth, input_multiplier, input_left_shift,
 *    diff_min, in, out
 *  MEAN_FORWARD (10): batches, h, w, channels, input_zero_point,
 *    multiplier, shift, output_zero_point, in, out */

/* ---- log-quantized momentum optimizer (lqm_s8.c, op ids 24-26) ---------
 * LQM (DESIGN.md section 2): per parameter a momentum held as sign + a
 * power-of-two exponent code, integer only, no multiply in the update:
 *   m~ = Q(m) - dec(Q(m)) - eta*g,   w += sr(m~),   m = Q(m~)
 * Units: the momentum and m~ count u = 2^emin weight LSBs. Q(x) =
 * sign(x) 2^floor(log2|x|) (leading-one detection, floor) clipped to the
 * window [2^emin, 2^emax] LSB; |x| < 1 u is 0. State code k (the low bits-1
 * bits; the top bit is the sign): 0 is zero, k >= 1 is 2^(k-1) u, so
 * emax - emin + 1 <= 2^(bits-1) - 1. dec(q) = sign(q) ceil(|q| / 2^decay)
 * (decay 0: dec = 0, the published rule, which never lets a momentum decay
 * under zero gradients; the ceiling makes even a 1 u momentum decay).
 * eta*g = g * 2^S, S = grad_exp + shift[c] - emin, rounded to nearest (ties
 * up) for S < 0 and saturated to +-2^30 for S > 0. The write-back rounds
 * stochastically: w = clamp(w + floor((m~ + r) / 2^-emin), -127, 127), r the
 * top -emin bits of one xorshift32 draw per element with m~ != 0 (row-major
 * over the block; zero m~ draws nothing). QAS and eta both live in the
 * per-channel shift (computed on the host: round(log2(eta s_x / s_w[c]))).
 * State: bits per parameter packed LSB first, element c*in + i of the full
 * (out, in) weight tensor at bit bits*(c*in + i); state_bytes must equal
 * ceil(bits*out*in/8) (else XST_ERR_DIMS); all-zero bytes = zero momentum.
 * Limits (else XST_ERR_PARAM): bits in [2, 5], emin in [-24, 0], emax in
 * [emin, min(6, emin + 2^(bits-1) - 2)], decay in [0, 15], shift[c] in
 * [-64, 64], *rng != 0. */
typedef struct {
  int32_t bits;         /* state bits per parameter (sign + exponent code)  */
  int32_t emin, emax;   /* momentum exponent window, in weight LSBs         */
  int32_t decay;        /* decay shift d (0: none, the published rule)      */
  const int32_t *shift; /* [out] per-channel step exponent (eta and QAS)    */
} xst_lqm;

/* Checks the scalar LQM parameters (bits, window, decay): XST_OK or
 * XST_ERR_PARAM. */
int lqm_check_params(const xst_lqm *p);
/* Bytes of the packed state of n parameters: ceil(bits * n / 8). */
uint64_t lqm_state_bytes(int32_t bits, uint64_t n);

/* LQM update of the (oc, ic) block of the int8 (out, in) weights from an
 * int32 gradient block grad[c - oc_begin][i - ic_begin] (exponent
 * *grad_exp), in place. Every element of the block is updated (a zero
 * gradient still applies and decays the momentum). */
int lqm_s8_update(const xst_fc_dims *d, const xst_block *blk,
                  const int32_t *grad, const int32_t *grad_exp,
                  const xst_lqm *p, uint8_t *state, int8_t *w,
                  uint32_t *rng);

/* Fused weight gradient + LQM (no gradient buffer): for each (c, i) in blk,
 * g = sum_r grad_out[r][c] * (in[r][i] + input_offset) and the update of
 * lqm_s8_update. Bit-identical to fully_connected_s8_backward_weight
 * followed by lqm_s8_update. Scratch: none. */
int fully_connected_s8_backward_weight_lqm(const xst_fc_dims *d,
                                           const xst_block *blk,
                                           int32_t input_offset,
                                           const int8_t *grad_out,
                                           const int32_t *grad_out_exp,
                                           const int8_t *in,
                                           const xst_lqm *p, uint8_t *state,
                                           int8_t *w, uint32_t *rng);

/* The same with an int16 master copy of the weights (op 26): the int8
 * weights w (what the forward kernels read, unchanged) and an int8 residual
 * tensor of the same shape hold master = 256 w + residual in 1/256 LSB.
 * Every (w, residual) byte pair is a valid master (residual in [-128, 127]
 * makes w = round(master / 256), ties up), so w == round(master / 256)
 * always holds. The step m~ is added at 1/256 LSB: with F = -emin,
 *   F >= 8: master += floor((m~ + r) / 2^(F-8)), r the top F-8 bits of the
 *           element's xorshift32 draw (0 for F = 8);
 *   F < 8:  master += m~ * 2^(8-F), exact (m~ is a multiple of 1/256 LSB);
 * one draw per element with m~ != 0 either way (as op 25). Then master is
 * clamped to [-127 * 256, 127 * 256] (+-127 LSB), w = floor((master + 128)
 * / 256) and residual = master - 256 w. The momentum state, eta*g and
 * every other rule are those of op 25. residual must not overlap w, state
 * or any other tensor (XST_ERR_ALIAS); NULL is XST_ERR_PARAM. */
int fully_connected_s8_backward_weight_lqm16(const xst_fc_dims *d,
                                             const xst_block *blk,
                                             int32_t input_offset,
                                             const int8_t *grad_out,
                                             const int32_t *grad_out_exp,
                                             const int8_t *in,
                                             const xst_lqm *p, uint8_t *state,
                                             int8_t *w, int8_t *residual,
                                             uint32_t *rng);

enum {
  XST_OP_LQM_S8_UPDATE = 24,
  XST_OP_FC_BACKWARD_WEIGHT_LQM = 25,
  XST_OP_FC_BACKWARD_WEIGHT_LQM16 = 26
  /* 27 free */
};

/* Fused conv / depthwise weight gradient + LQM (ops 39-40; the Tiny
 * Training Engine's in-place update with the LQM rule): the gradient of
 * conv2d_s8_backward_weight (depthwise_conv2d_s8_backward_weight), element
 * by element in the order of the SGD ops 37 (38): conv (c, ky, kx, i) of the
 * block, depthwise per output channel c then (ky, kx); each element through
 * the update of lqm_s8_update with S = *grad_out_exp + shift[c] - emin (QAS
 * and eta in the per-channel shift, as op 25). Every element of the block
 * is updated (a zero gradient still decays the momentum). The state holds
 * one field per element of the whole weight tensor, at the element's index
 * in it: conv w[c][ky][kx][i] at bits*((c*k_h + ky)*k_w + kx)*in_c + i),
 * depthwise w[ky][kx][c] at bits*((ky*k_w + kx)*out_c + c): op 25's packing
 * on the flat tensor. Bit-identical to the weight-gradient op followed by
 * lqm_s8_update on the (out_c, k_h*k_w*in_c) view of conv weights (one call
 * per channel and tap when input channels are left out); 1x1/stride 1/no
 * padding convs run fully_connected_s8_backward_weight_lqm. Limits as the
 * weight-gradient kernels; LQM parameters, shift[c] over the block and
 * *rng as op 25 (else XST_ERR_PARAM). Aliasing: w and state must not
 * overlap each other or the other tensors. Scratch: none. Stack (GCC 12
 * -O2 -fstack-usage, Cortex-M4F DSP): conv 240, depthwise 216, + the
 * gradient loop of ops 37-38 (1,232 / 1,248 with its 1 KB tile) + its
 * weight-gradient call (1,440 / 312; 80 for an LQM run). */
int conv2d_s8_backward_weight_lqm(const xst_conv_dims *d, const xst_block *blk, int32_t input_offset,
                                  const int8_t *grad_out, const int32_t *grad_out_exp, const int8_t *in,
                                  const xst_lqm *p, uint8_t *state, int8_t *w, uint32_t *rng);
int depthwise_conv2d_s8_backward_weight_lqm(const xst_dwconv_dims *d, const xst_block *blk, int32_t input_offset,
                                            const int8_t *grad_out, const int32_t *grad_out_exp, const int8_t *in,
                                            const xst_lqm *p, uint8_t *state, int8_t *w, uint32_t *rng);

enum {
  XST_OP_CONV2D_BACKWARD_WEIGHT_LQM = 39,
  XST_OP_DEPTHWISE_CONV2D_BACKWARD_WEIGHT_LQM = 40
};

/* Argument layouts (count):
 *  CONV2D_BACKWARD_WEIGHT_LQM (30): conv dims (13), oc_begin, oc_end,
 *    ic_begin, ic_end, input_offset, grad_out, grad_out_exp(cell), in,
 *    lqm_shift(i32[out_c]), bits, emin, emax, decay,
 *    state(u8[state_bytes]), state_bytes = ceil(bits*out_c*k_h*k_w*in_c/8),
 *    w(i8[out_c][k_h][k_w][in_c]), rng(cell)
 *  DEPTHWISE_CONV2D_BACKWARD_WEIGHT_LQM (28): depthwise dims (13),
 *    oc_begin, oc_end, input_offset, grad_out, grad_out_exp(cell), in,
 *    lqm_shift(i32[out_c]), bits, emin, emax, decay,
 *    state(u8[state_bytes]), state_bytes = ceil(bits*k_h*k_w*out_c/8),
 *    w(i8[1][k_h][k_w][out_c]), rng(cell) */

/* Argument layouts (count):
 *  LQM_S8_UPDATE (17): in, out, oc_begin, oc_end, ic_begin, ic_end,
 *    grad(i32[oc][ic]), grad_exp(cell), lqm_shift(i32[out]), bits, emin,
 *    emax, decay, state(u8[state_bytes]), state_bytes, w, rng(cell)
 *  FC_BACKWARD_WEIGHT_LQM (20): rows, in, out, oc_begin, oc_end, ic_begin,
 *    ic_end, input_offset, grad_out, grad_out_exp(cell), in,
 *    lqm_shift(i32[out]), bits, emin, emax, decay, state(u8[state_bytes]),
 *    state_bytes, w, rng(cell)
 *  FC_BACKWARD_WEIGHT_LQM16 (21): the args of FC_BACKWARD_WEIGHT_LQM with
 *    residual(i8[out][in]) between w and rng */
/* ---- kernel library: optimizer baselines (optim_f32.c, optim_s16.c) -----
 * The conventional optimizers the LQM optimizer is measured against, on a
 * flat parameter vector of n elements (any tensor, in place).
 *
 * fp32 (optim_f32.c): float32 parameters and state; hyper-parameters travel
 * as the bit patterns of float32 values in int32 args. One binary32
 * operation per C operation, in the order of the formulas below, no fused
 * multiply-add (build with -ffp-contract=off): bit-identical to the
 * TypeScript reference (Math.fround per operation) on every core, the
 * square root computed with integers (correctly rounded, no libm).
 *   SGD:      x -= lr * g
 *   momentum: v = momentum * v + g;  x -= lr * v
 *   Adam:     p1 *= beta1; p2 *= beta2 (beta_powers, start at 1, 1);
 *             m = beta1 * m + (1 - beta1) * g;
 *             v = beta2 * v + (1 - beta2) * (g * g);
 *             x -= (lr * (m / (1 - p1))) / (sqrt(v / (1 - p2)) + eps)
 * XST_ERR_PARAM: a non-finite hyper-parameter, beta outside [0, 1),
 * eps <= 0, a beta power outside [0, 1] (or NaN). Aliasing: none (the
 * dispatcher rejects overlapping tensors). Scratch: none. */
typedef struct {
  float lr, beta1, beta2, eps;
} xst_adam_f32;

int sgd_f32_update(int32_t n, float lr, const float *grad, float *param);
int momentum_f32_update(int32_t n, float lr, float momentum, const float *grad,
                        float *velocity, float *param);
int adam_f32_update(int32_t n, const xst_adam_f32 *h, const float *grad,
                    float *m, float *v, float *beta_powers, float *param);
/* Correctly rounded binary32 square root (what sqrtf gives): the SSE
 * instruction on x86-64, xst_sqrt_f32_soft (integers only) elsewhere. */
float xst_sqrt_f32(float x);
float xst_sqrt_f32_soft(float x);
float xst_f32_from_bits(int32_t bits);
int xst_f32_finite(float x);

/* 16-bit fixed point (optim_s16.c): param int16, real = q * 2^param_exp;
 * grad int32 with exponent cell (the FC weight-gradient format);
 * lr = lr_multiplier * 2^(lr_shift - 31) (Q31, shift in [-62, 62]);
 * stochastic rounding with the xorshift32 cell; saturation to
 * [-32767, 32767].
 *  sgd_s16_update: per element with g != 0 (one draw, in index order;
 *    zero gradients change nothing and draw nothing):
 *    q = sat(q - floor((g * M + r) / 2^R)), R = 31 - lr_shift - grad_exp
 *    + param_exp, r uniform in [0, 2^R): xst_sgd_step, as sgd_s8_update.
 *  momentum_s16_update: velocity int16 in parameter units (real = v *
 *    2^state_exp; v <- momentum * v + lr * g, x <- x - v: heavy ball with
 *    the learning rate inside the state, so the state's exponent is set
 *    from the parameter's, not from the gradient's range); momentum_q15 in
 *    [0, 32767] (0.9 -> 29491). Per element with g != 0 or v != 0, two
 *    draws u1, u2:
 *    v' = sat(floor((v * mu * 2^15 + T + (u1 >> 2)) / 2^30)),
 *      T = floor(g * M * 2^(lr_shift + grad_exp - state_exp - 1)) clamped
 *      to +-2^47 (lr * g in units of 2^(state_exp - 30));
 *    q' = sat(q - s), R = param_exp - state_exp:
 *      R <= 0: s = v' * 2^min(-R, 17); 1 <= R <= 30: s = floor((v' *
 *      2^(30 - R) + (u2 >> 2)) / 2^30); R > 30: s = 0.
 * param_exp, state_exp in [-64, 64] (momentum's state_exp only), else
 * XST_ERR_PARAM; so is a zero rng state. Aliasing: none. Scratch: none. */
typedef struct {
  int32_t param_exp;
  int32_t state_exp;    /* momentum: velocity exponent */
  int32_t lr_multiplier;
  int32_t lr_shift;
  int32_t momentum_q15; /* momentum only */
} xst_s16_optim;

int sgd_s16_update(int32_t n, const xst_s16_optim *p, const int32_t *grad,
                   const int32_t *grad_exp, int16_t *param, uint32_t *rng);
int momentum_s16_update(int32_t n, const xst_s16_optim *p, const int32_t *grad,
                        const int32_t *grad_exp, int16_t *velocity,
                        int16_t *param, uint32_t *rng);

enum {
  XST_OP_SGD_F32_UPDATE = 28,
  XST_OP_MOMENTUM_F32_UPDATE = 29,
  XST_OP_ADAM_F32_UPDATE = 30,
  XST_OP_SGD_S16_UPDATE = 31,
  XST_OP_MOMENTUM_S16_UPDATE = 32
};

/* Argument layouts (count); f32(...) = float32 bits in an int32 arg:
 *  SGD_F32_UPDATE (4): n, f32(lr), grad(f32[n]), param(f32[n])
 *  MOMENTUM_F32_UPDATE (6): n, f32(lr), f32(momentum), grad(f32[n]),
 *    velocity(f32[n]), param(f32[n])
 *  ADAM_F32_UPDATE (10): n, f32(lr), f32(beta1), f32(beta2), f32(eps),
 *    grad(f32[n]), m(f32[n]), v(f32[n]), beta_powers(f32[2]), param(f32[n])
 *  SGD_S16_UPDATE (8): n, param_exp, lr_multiplier, lr_shift,
 *    grad(i32[n]), grad_exp(cell), param(i16[n]), rng(cell)
 *  MOMENTUM_S16_UPDATE (11): n, param_exp, state_exp, lr_multiplier,
 *    lr_shift, momentum_q15, grad(i32[n]), grad_exp(cell),
 *    velocity(i16[n]), param(i16[n]), rng(cell) */

/* ---- kernel library: split weights and row-scratch input gradients
 * (fully_connected_split_s8.c, depthwise_conv2d_rows_s8.c, ids 33-35) ----
 * A layer whose sparse update trains input channels [0, split) keeps only
 * that slice w_lo (out, split) in the arena; w_hi (out, in - split) stays in
 * flash. The *_rows input gradients take one row of scratch instead of the
 * whole tensor and compute every sum twice (a pass for the exponent, a pass
 * to write); all three are bit-identical to the whole-weight /
 * whole-scratch kernels. */

/* fully_connected_s8_forward on W = [w_lo | w_hi]; split in [1, in]
 * (split = in: w_hi unused, may be NULL). Aliasing as
 * fully_connected_s8_forward. Scratch: none. */
int fully_connected_s8_forward_split(const xst_fc_dims *d, int32_t split, const xst_fc_quant *q,
                                     const int8_t *in, const int8_t *w_lo, const int8_t *w_hi,
                                     const int32_t *bias, int8_t *out, uint8_t *mask);

/* fully_connected_s8_backward_input on W = [w_lo | w_hi] with
 * fully_connected_s8_backward_input_rows_scratch_size() = in*4 + out*2
 * bytes of scratch (4-aligned). Aliasing: grad_in must not overlap
 * grad_out, the weights or scratch. */
int fully_connected_s8_backward_input_rows(const xst_fc_dims *d, int32_t split, const xst_wscale *ws,
                                           const int8_t *grad_out, const int32_t *grad_out_exp,
                                           const int8_t *w_lo, const int8_t *w_hi, int8_t *grad_in,
                                           int32_t *grad_in_exp, void *scratch);
size_t fully_connected_s8_backward_input_rows_scratch_size(const xst_fc_dims *d);

/* depthwise_conv2d_s8_backward_input with
 * depthwise_conv2d_s8_backward_input_rows_scratch_size() = in_w*in_c*4 +
 * out_c*2 bytes of scratch (4-aligned). Aliasing as the whole-tensor one. */
int depthwise_conv2d_s8_backward_input_rows(const xst_dwconv_dims *d, const xst_wscale *ws,
                                            const int8_t *grad_out, const int32_t *grad_out_exp,
                                            const int8_t *w, int8_t *grad_in, int32_t *grad_in_exp,
                                            void *scratch);
size_t depthwise_conv2d_s8_backward_input_rows_scratch_size(const xst_dwconv_dims *d);

enum {
  XST_OP_FC_FORWARD_SPLIT = 33,
  XST_OP_FC_BACKWARD_INPUT_ROWS = 34,
  XST_OP_DEPTHWISE_CONV2D_BACKWARD_INPUT_ROWS = 35
};

/* Argument layouts (count):
 *  FC_FORWARD_SPLIT (16): rows, in, out, split, input_offset,
 *    output_offset, act_min, act_max, in, w_lo(out x split),
 *    w_hi(out x (in - split))|-1, bias|-1, out, mask|-1,
 *    multiplier(i32[out]), shift(i32[out])
 *  FC_BACKWARD_INPUT_ROWS (13): rows, in, out, split,
 *    wscale_mantissa(i16[out]), wscale_exp, grad_out, grad_out_exp(cell),
 *    w_lo, w_hi|-1, grad_in, grad_in_exp(cell), scratch(in*4 + out*2)
 *  DEPTHWISE_CONV2D_BACKWARD_INPUT_ROWS (21): as
 *    DEPTHWISE_CONV2D_BACKWARD_INPUT, scratch in_w*in_c*4 + out_c*2 */

/* ---- kernel library: saved input channels (channel_slice_s8.c, id 36) ----
 * out[r][c - begin] = in[r][c] for c in [begin, end): the input channels a
 * sparse weight update reads, copied out of an activation (rows, channels)
 * while it is alive. Scratch: none. Aliasing: out must not overlap in. */
int channel_slice_s8(int32_t rows, int32_t channels, int32_t begin, int32_t end, const int8_t *in, int8_t *out);

enum { XST_OP_CHANNEL_SLICE = 36 };

/* ---- kernel library: fused conv / depthwise weight gradient + SGD
 * (conv2d_s8.c, depthwise_conv2d_s8.c, ids 37-38; see the kernels above) */
enum {
  XST_OP_CONV2D_BACKWARD_WEIGHT_SGD = 37,
  XST_OP_DEPTHWISE_CONV2D_BACKWARD_WEIGHT_SGD = 38
};

/* Argument layouts (count):
 *  CONV2D_BACKWARD_WEIGHT_SGD (25): the 13 conv dims, oc_begin, oc_end,
 *    ic_begin, ic_end, input_offset, grad_out, grad_out_exp(cell), in,
 *    lr_multiplier(i32[out_c]), lr_shift(i32[out_c]),
 *    w(i8[out_c][k_h][k_w][in_c]), rng(cell)
 *  DEPTHWISE_CONV2D_BACKWARD_WEIGHT_SGD (23): the 13 depthwise dims,
 *    oc_begin, oc_end, input_offset, grad_out, grad_out_exp(cell), in,
 *    lr_multiplier(i32[out_c]), lr_shift(i32[out_c]),
 *    w(i8[k_h][k_w][out_c]), rng(cell) */

/* Argument layout (count):
 *  CHANNEL_SLICE (6): rows, channels, begin, end, in(rows x channels),
 *    out(rows x (end - begin)) */

#endif /* XST_H */
