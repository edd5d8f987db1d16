/*
 * Per-target interface of the bare-metal trace driver (driver.c).
 *
 * Each target (cortex-m4/, rv32/) provides: its reset code, which calls
 * main() with .data copied and .bss zeroed and returns main's value to
 * port_exit(); a semihosting trap; and an instruction counter.
 */
#ifndef XST_BAREMETAL_PORT_H
#define XST_BAREMETAL_PORT_H

#include <stdint.h>

/* One semihosting call: op in r0/a0, parameter (block address) in r1/a1,
 * returns r0/a0. */
uintptr_t port_semihost(uintptr_t op, uintptr_t param);

/* Starts the instruction counter. Called once, before any reading. */
void port_counter_init(void);

/* A raw counter reading (monotonic; units are the target's). Kept as
 * short as possible: it runs inside every measured interval. */
uint64_t port_counter_raw(void);

/* Converts a raw reading to instructions since port_counter_init(), up to
 * an unknown constant. `phase` selects one of port_counter_phases()
 * candidate conversions; the driver picks the one that measures nop sleds
 * of known length exactly (see calibrate() in driver.c). */
uint64_t port_counter_instructions(uint64_t raw, uint32_t phase);
uint32_t port_counter_phases(void);

/* A one-line description of the counter, printed in the `info` line. */
extern const char port_counter_name[];

/* Ends the emulation with this exit status (semihosting). */
void port_exit(int status) __attribute__((noreturn));

#endif
