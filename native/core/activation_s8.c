/*
 * ReLU / ReLU6 backward from the 1-bit mask written by the forward kernel:
 * grad[k] = 0 where bit k (LSB first within each byte) is clear. In place.
 */
#include "xst.h"

int activation_s8_backward(int32_t n, const uint8_t *mask, int8_t *grad) {
  if (n < 1) return XST_ERR_DIMS;
  for (int32_t k = 0; k < n; k++) {
    if (!((mask[k >> 3] >> (k & 7)) & 1u)) grad[k] = 0;
  }
  return XST_OK;
}
