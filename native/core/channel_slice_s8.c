/*
 * channel_slice_s8: a copy of input channels [begin, end) of an int8
 * activation, (rows, channels) -> (rows, end - begin). A sparse update that
 * trains only some input channels of a layer keeps just those for its
 * weight gradient: copied out while the activation is alive (in the
 * forward), so the activation itself can die at its last forward reader.
 * rows = N*H*W of an NHWC tensor (channels last), or the rows of an FC
 * input. A plain copy: bit-exact by construction.
 *
 * Memory contract: in (rows, channels) int8, out (rows, end - begin) int8.
 * No scratch. out must not overlap in (the dispatcher refuses it).
 */
#include "xst.h"

int channel_slice_s8(int32_t rows, int32_t channels, int32_t begin, int32_t end, const int8_t *in, int8_t *out) {
  if (rows < 1 || channels < 1 || begin < 0 || end <= begin || end > channels) return XST_ERR_DIMS;
  const int32_t n = end - begin;
  for (int32_t r = 0; r < rows; r++) {
    const int8_t *src = in + (size_t)r * (size_t)channels + (size_t)begin;
    int8_t *dst = out + (size_t)r * (size_t)n;
    for (int32_t c = 0; c < n; c++) dst[c] = src[c];
  }
  return XST_OK;
}
