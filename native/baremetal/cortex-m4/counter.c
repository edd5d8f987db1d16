/*
 * Instruction counter for Cortex-M4 under QEMU. QEMU models no DWT cycle
 * counter, so this counts SysTick ticks: with `-icount shift=6` every
 * instruction advances the virtual clock by exactly 64 ns, and SysTick on
 * the processor clock (mps2-an386: 25 MHz) ticks every 40 ns, so d
 * instructions take E = floor((8d + q) / 5) ticks for a fixed unknown phase
 * q. As 8/5 > 1 that map is strictly increasing, so d is recovered exactly:
 * d = floor((5E + r) / 8) for r in a window of four of the eight residues
 * (fixed by q); the driver picks such an r with nop sleds of known length
 * (calibrate() in driver.c). Checked: with 1000 sled samples exactly four
 * phases pass, all giving the same counts, and op 8's loop measures its 10
 * instructions per element exactly.
 *
 * The 24-bit counter wraps every 2^24 ticks (~10.5 M instructions); the
 * SysTick interrupt counts wraps, so long calls are measured too. A call
 * that spans a wrap also counts the handler (5 instructions per wrap), so
 * such a call's count can differ by 5 with its position in the trace (it
 * is still the same from run to run).
 */
#include <stdint.h>

#include "port.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)
#define SYST_RELOAD 0x00FFFFFFu

const char port_counter_name[] = "systick-icount-shift6";

static volatile uint32_t wraps;

void systick_handler(void) { wraps++; }

void port_counter_init(void) {
  SYST_RVR = SYST_RELOAD;
  SYST_CVR = 0;
  SYST_CSR = 7u; /* processor clock, interrupt, enable */
}

uint64_t port_counter_raw(void) {
  uint32_t primask, w, v;
  __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
  w = wraps;
  v = SYST_CVR;
  /* A wrap after masking is pending and not yet counted: count it when the
   * value already shows the new period. */
  if ((SCB_ICSR & ICSR_PENDSTSET) != 0 && v > SYST_RELOAD / 2u) w++;
  __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
  return ((uint64_t)w << 24) + (SYST_RELOAD - v);
}

uint64_t port_counter_instructions(uint64_t raw, uint32_t phase) {
  return (raw * 5u + phase) >> 3;
}

uint32_t port_counter_phases(void) { return 8; }
