/*
 * Internal to the C core (not part of the public contract in xst.h): the
 * int8 matrix product every "dense" kernel reduces to,
 *
 *   acc[r][c] = sum_{i < k} (a[r][i] + a_offset) * b[c][i]
 *     r < rows, c < cols;  a (rows, k) and b (cols, k) int8, rows
 *     contiguous; acc (rows, cols) int32 with row stride acc_stride
 *     elements. Sets acc (does not accumulate).
 *
 * |a + a_offset| <= 255 and |b| <= 128 with k <= 65536 keep every sum exact
 * in int32 (the callers' dimension limits). No alignment is required of a
 * or b. acc must not overlap a or b.
 *
 * Two implementations, bit-identical (integer sums are exact):
 *  - Arm cores with the DSP extension (Cortex-M4/M7/M33: __ARM_FEATURE_DSP)
 *    and without XST_PORTABLE defined: the a rows are first "expanded" into
 *    a stack buffer (XST_MM_KC int32, 1 KB): per 4 k the int16 pairs
 *    (a0 + off, a2 + off) and (a1 + off, a3 + off) (__sxtab16), which an
 *    SMLAD multiplies with __sxtb16(w) and __sxtb16(w ror 8); then asm
 *    loops over whole column runs: 2 rows x 2 columns at 15 instructions
 *    per 16 MACs (one LDM of the expanded words), 1 row x 4 columns at 21.
 *    k <= 256: as many row pairs as the buffer holds go through one call;
 *    longer k in chunks of 256 (512 for a lone row). Odd columns and the
 *    k % 4 tail in C. Stack: about 1.2 KB;
 *  - everything else (host, RV32, Xtensa, XST_PORTABLE): plain C loops.
 *
 * Callers:
 *  - fully_connected_s8_forward: a = input rows, b = weights, k =
 *    in_features, in tiles of accumulators on the stack (DSP: 256 int32,
 *    8 rows x 32 columns, taller when out_features is small, 1 x 256 for a
 *    lone row; elsewhere XST_MM_TILE_ROWS x XST_MM_TILE_COLS), each tile
 *    requantised right away (no scratch).
 *    A 1x1 stride-1 convolution over H*W pixels is that call with rows = H*W.
 *  - conv2d general path: im2col one or two output pixels (kh*kw*cin int8
 *    each, the input offset NOT applied: out-of-image taps are written as
 *    -a_offset, i.e. the input zero point, so they contribute zero) into a
 *    scratch row pair, then xst_mat_mult_s8(scratch, 1 or 2, w + c0 * k, nc,
 *    k, input_offset, tile, XST_MM_TILE_COLS) over column tiles, requantise the tile.
 *  - depthwise: per output pixel, gather the kh*kw taps of a group of
 *    channels into a channel-major scratch (ch, kh*kw) and call with rows =
 *    1, a = one channel's taps, b = that channel's (transposed, (ch, kh*kw))
 *    weights, cols = 1 — or, better, stay with its own per-channel loop:
 *    depthwise has no reduction across channels, so this product only pays
 *    when kh*kw is large.
 */
#ifndef XST_NN_MAT_MULT_S8_H
#define XST_NN_MAT_MULT_S8_H

#include <stddef.h>
#include <stdint.h>

/* The DSP path is compiled where the ACLE says the SIMD32 instructions
 * exist, unless XST_PORTABLE forces the portable code (the bare-metal
 * Makefile's cortex-m4-portable image, to compare the two). */
#if defined(__ARM_FEATURE_DSP) && !defined(XST_PORTABLE)
#define XST_MM_DSP 1
#else
#define XST_MM_DSP 0
#endif

/* Accumulator tile a caller keeps on its stack (64 int32, 256 bytes). */
#define XST_MM_TILE_ROWS 2
#define XST_MM_TILE_COLS 32

void xst_mat_mult_s8(const int8_t *a, int32_t rows, const int8_t *b,
                     int32_t cols, int32_t k, int32_t a_offset, int32_t *acc,
                     int32_t acc_stride);

#endif /* XST_NN_MAT_MULT_S8_H */
