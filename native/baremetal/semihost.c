/* Semihosting calls shared by both targets; see semihost.h. */
#include "semihost.h"

#include "port.h"

enum {
  SYS_OPEN = 0x01,
  SYS_CLOSE = 0x02,
  SYS_WRITE0 = 0x04,
  SYS_READ = 0x06,
  SYS_GET_CMDLINE = 0x15,
  SYS_EXIT = 0x18,
  SYS_EXIT_EXTENDED = 0x20
};

/* Reasons for SYS_EXIT / SYS_EXIT_EXTENDED. */
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define ADP_STOPPED_RUNTIME_ERROR_UNKNOWN 0x20023u

int sh_get_cmdline(char *buf, size_t size) {
  uintptr_t block[2];
  if (size < 2) return -1;
  block[0] = (uintptr_t)buf;
  block[1] = (uintptr_t)(size - 1);
  if (port_semihost(SYS_GET_CMDLINE, (uintptr_t)block) != 0) return -1;
  /* block[1] now holds the length written; the host also NUL-terminates. */
  if (block[1] >= size) return -1;
  buf[block[1]] = '\0';
  return 0;
}

int32_t sh_open_read(const char *path) {
  uintptr_t block[3];
  size_t len = 0;
  while (path[len] != '\0') len++;
  block[0] = (uintptr_t)path;
  block[1] = 1; /* "rb" */
  block[2] = (uintptr_t)len;
  return (int32_t)port_semihost(SYS_OPEN, (uintptr_t)block);
}

int32_t sh_read(int32_t handle, void *buf, uint32_t n) {
  uintptr_t block[3];
  uintptr_t left;
  block[0] = (uintptr_t)handle;
  block[1] = (uintptr_t)buf;
  block[2] = (uintptr_t)n;
  /* SYS_READ returns the number of bytes NOT read. */
  left = port_semihost(SYS_READ, (uintptr_t)block);
  if (left > n) return -1;
  return (int32_t)(n - left);
}

void sh_close(int32_t handle) {
  uintptr_t block[1];
  block[0] = (uintptr_t)handle;
  (void)port_semihost(SYS_CLOSE, (uintptr_t)block);
}

void sh_write0(const char *s) { (void)port_semihost(SYS_WRITE0, (uintptr_t)s); }

void port_exit(int status) {
  uintptr_t block[2];
  block[0] = ADP_STOPPED_APPLICATION_EXIT;
  block[1] = (uintptr_t)status;
  /* SYS_EXIT_EXTENDED carries the status on 32-bit targets. */
  (void)port_semihost(SYS_EXIT_EXTENDED, (uintptr_t)block);
  /* Host without it: plain SYS_EXIT can only say success or failure. */
  (void)port_semihost(SYS_EXIT, status == 0 ? ADP_STOPPED_APPLICATION_EXIT
                                            : ADP_STOPPED_RUNTIME_ERROR_UNKNOWN);
  for (;;) {
  }
}
