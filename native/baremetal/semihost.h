/*
 * Semihosting (Arm "Semihosting for AArch32 and AArch64" v2, the same
 * operation numbers on RISC-V) over port_semihost(). Only what the trace
 * driver needs: the command line, reading one file, console output, exit.
 */
#ifndef XST_BAREMETAL_SEMIHOST_H
#define XST_BAREMETAL_SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

/* Copies the command line (-semihosting-config ...,arg=A,arg=B gives
 * "A B") into buf, NUL-terminated. Returns 0, or -1 on failure. */
int sh_get_cmdline(char *buf, size_t size);

/* Opens a host file for reading in binary mode. Returns a handle >= 0, or
 * -1. */
int32_t sh_open_read(const char *path);

/* Reads up to n bytes. Returns the number of bytes read (0 at end of
 * file), or -1 on a host error. */
int32_t sh_read(int32_t handle, void *buf, uint32_t n);

void sh_close(int32_t handle);

/* Writes a NUL-terminated string to the semihosting console. */
void sh_write0(const char *s);

#endif
