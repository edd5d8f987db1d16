/*
 * RV32IMC port: C start-up (copy .data, zero .bss), trap report, and the
 * instruction counter: minstret/minstreth, which QEMU derives from its
 * instruction count under -icount (shift=0: one count per instruction,
 * exact at the CSR read), so no calibration is needed (one phase).
 */
#include <stdint.h>

#include "port.h"
#include "semihost.h"

extern uint32_t __data_load, __data_start, __data_end;
extern uint32_t __bss_start, __bss_end;

int main(void);
void rv32_start(void) __attribute__((noreturn));
void rv32_trap(uint32_t mcause, uint32_t mepc, uint32_t mtval) __attribute__((noreturn));

void rv32_start(void) {
  volatile uint32_t *src = &__data_load;
  volatile uint32_t *dst = &__data_start;
  while (dst < &__data_end) *dst++ = *src++;
  for (dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
  port_exit(main());
}

static void put_hex(char *p, uint32_t v) {
  static const char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 8; i++) p[i] = kHex[(v >> (28 - 4 * i)) & 15u];
}

void rv32_trap(uint32_t mcause, uint32_t mepc, uint32_t mtval) {
  /* A breakpoint trap means semihosting is off: nothing can be reported. */
  if (mcause == 3u) {
    for (;;) {
    }
  }
  static char msg[] = "error cpu trap: mcause 00000000 mepc 00000000 mtval 00000000\n";
  put_hex(msg + 23, mcause);
  put_hex(msg + 37, mepc);
  put_hex(msg + 52, mtval);
  sh_write0(msg);
  port_exit(6);
}

const char port_counter_name[] = "minstret-icount-shift0";

void port_counter_init(void) {}

uint64_t port_counter_raw(void) {
  uint32_t hi, lo, hi2;
  do {
    __asm__ volatile(".option push\n\t.option arch, +zicsr\n\t"
                     "csrr %0, minstreth\n\t"
                     "csrr %1, minstret\n\t"
                     "csrr %2, minstreth\n\t"
                     ".option pop"
                     : "=r"(hi), "=r"(lo), "=r"(hi2));
  } while (hi != hi2);
  return ((uint64_t)hi << 32) | lo;
}

uint64_t port_counter_instructions(uint64_t raw, uint32_t phase) {
  (void)phase;
  return raw;
}

uint32_t port_counter_phases(void) { return 1; }
