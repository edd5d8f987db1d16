/*
 * Softmax cross-entropy gradient from int8 logits, integer only.
 *
 * softmax(s * x)[j] = 2^(s*log2(e)*(x_j - x_max)) / sum. The exponent
 * t = (x_j - x_max) * round(s*log2(e)*2^16) is split into an integer part n
 * and a fraction f; 2^f comes from a 33-entry table of 2^(i/32) in Q30 with
 * linear interpolation (relative error below 7e-5), 2^n is a shift. Terms are
 * kept in Q16, so up to 128 classes sum without overflow.
 */
#include "xst.h"
#include "xst_fixed.h"

/* round(2^(i/32) * 2^30), i = 0..32 */
static const uint32_t kExp2Q30[33] = {
  1073741824u, 1097253708u, 1121280436u, 1145833280u,
  1170923762u, 1196563654u, 1222764986u, 1249540052u,
  1276901417u, 1304861917u, 1333434672u, 1362633090u,
  1392470869u, 1422962010u, 1454120821u, 1485961921u,
  1518500250u, 1551751076u, 1585730000u, 1620452965u,
  1655936265u, 1692196547u, 1729250827u, 1767116489u,
  1805811301u, 1845353420u, 1885761398u, 1927054196u,
  1969251188u, 2012372174u, 2056437387u, 2101467502u,
  2147483648u
};

/* 2^(t / 2^16) in Q16 for t <= 0. */
static uint32_t exp2_neg_q16(int32_t t) {
  int32_t n = xst_floor_shr32(t, 16);          /* n <= 0 */
  uint32_t f = (uint32_t)(t - n * 65536);      /* [0, 65535] */
  uint32_t idx = f >> 11, frac = f & 2047u;
  uint32_t lo = kExp2Q30[idx], hi = kExp2Q30[idx + 1];
  uint32_t v = lo + (uint32_t)(((uint64_t)(hi - lo) * frac) >> 11); /* Q30 */
  int32_t sh = 14 - n;
  return sh >= 32 ? 0u : v >> sh;
}

int softmax_xent_s8_backward(int32_t classes, const int8_t *logits,
                             int32_t log2e_scale_q16, int32_t label,
                             int8_t *grad, int32_t *grad_exp,
                             int32_t *p_label_q16) {
  if (classes < 1 || classes > 128) return XST_ERR_DIMS;
  if (log2e_scale_q16 < 1 || log2e_scale_q16 > (1 << 23)) return XST_ERR_PARAM;
  if (label < 0 || label >= classes) return XST_ERR_PARAM;
  int32_t xmax = -128;
  for (int32_t j = 0; j < classes; j++) if (logits[j] > xmax) xmax = logits[j];
  uint32_t sum = 0; /* <= 128 * 2^16 */
  for (int32_t j = 0; j < classes; j++) {
    sum += exp2_neg_q16(((int32_t)logits[j] - xmax) * log2e_scale_q16);
  }
  uint32_t e_label = 0;
  for (int32_t j = 0; j < classes; j++) {
    uint32_t e = exp2_neg_q16(((int32_t)logits[j] - xmax) * log2e_scale_q16);
    int32_t p128 = (int32_t)((e * 128u + sum / 2u) / sum); /* e*128 <= 2^23 */
    if (j == label) { p128 -= 128; e_label = e; }
    grad[j] = (int8_t)xst_clamp32(p128, -128, 127);
  }
  *grad_exp = -7;
  if (p_label_q16) {
    *p_label_q16 = (int32_t)((((uint64_t)e_label << 16) + sum / 2u) / sum);
  }
  return XST_OK;
}
