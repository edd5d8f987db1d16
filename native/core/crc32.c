/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), bitwise: no table,
 * so it costs no RAM or flash on the device; it runs on checkpoints and test
 * checksums, not in a training step. xst_crc32(0, ...) starts a new CRC. */
#include "xst.h"

uint32_t xst_crc32(uint32_t crc, const uint8_t *data, size_t len) {
  crc = ~crc;
  for (size_t i = 0; i < len; i++) {
    crc ^= data[i];
    for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}
