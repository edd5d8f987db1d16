/*
 * Cortex-M4F start-up for QEMU's mps2-an386: vector table, reset handler
 * (copy .data, zero .bss, enable the FPU), fault handlers, semihosting trap.
 */
#include <stdint.h>

#include "port.h"
#include "semihost.h"

extern uint32_t __stack_top;
extern uint32_t __data_load, __data_start, __data_end;
extern uint32_t __bss_start, __bss_end;

int main(void);
void reset_handler(void) __attribute__((noreturn));
void systick_handler(void);
static void fault_handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

__attribute__((section(".vectors"), used))
const uintptr_t vector_table[16] = {
    (uintptr_t)&__stack_top,
    (uintptr_t)reset_handler,
    (uintptr_t)fault_handler, /* NMI */
    (uintptr_t)fault_handler, /* HardFault */
    (uintptr_t)fault_handler, /* MemManage */
    (uintptr_t)fault_handler, /* BusFault */
    (uintptr_t)fault_handler, /* UsageFault */
    0, 0, 0, 0,
    (uintptr_t)fault_handler, /* SVCall */
    (uintptr_t)fault_handler, /* DebugMonitor */
    0,
    (uintptr_t)fault_handler, /* PendSV */
    (uintptr_t)systick_handler,
};

void reset_handler(void) {
  /* FPU first: CP10 and CP11 full access. */
  SCB_CPACR |= 0xFu << 20;
  __asm__ volatile("dsb\n\tisb" ::: "memory");

  volatile uint32_t *src = &__data_load;
  volatile uint32_t *dst = &__data_start;
  while (dst < &__data_end) *dst++ = *src++;
  for (dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;

  port_exit(main());
}

static void fault_handler(void) {
  uint32_t ipsr;
  static const char kHex[] = "0123456789abcdef";
  static char msg[] = "error cpu fault: exception 0x00\n";
  __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
  msg[sizeof msg - 4] = kHex[(ipsr >> 4) & 15u];
  msg[sizeof msg - 3] = kHex[ipsr & 15u];
  sh_write0(msg);
  port_exit(6);
}

uintptr_t port_semihost(uintptr_t op, uintptr_t param) {
  register uintptr_t r0 __asm__("r0") = op;
  register uintptr_t r1 __asm__("r1") = param;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}
