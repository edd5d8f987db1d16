/*
 * RV32IMC start-up for QEMU virt (-bios none: execution starts at _start in
 * machine mode), the trap vector and the semihosting trap.
 */
  /* -march=rv32imc: this binutils wants Zicsr named for csr* instructions. */
  .option arch, +zicsr

  .section .text.start, "ax"
  .globl _start
_start:
  .option push
  .option norelax
  la gp, __global_pointer$
  .option pop
  la sp, __stack_top
  la t0, trap_entry
  csrw mtvec, t0
  call rv32_start
1:
  j 1b

/* Any trap (no interrupts are enabled): report it and exit. */
  .balign 4
trap_entry:
  la sp, __stack_top
  csrr a0, mcause
  csrr a1, mepc
  csrr a2, mtval
  call rv32_trap
2:
  j 2b

/*
 * uintptr_t port_semihost(uintptr_t op, uintptr_t param): op in a0, param in
 * a1, result in a0. The RISC-V semihosting sequence must be these three
 * uncompressed instructions, in one page (hence the alignment).
 */
  .section .text.port_semihost, "ax"
  .globl port_semihost
  .balign 16
port_semihost:
  .option push
  .option norvc
  slli x0, x0, 0x1f
  ebreak
  srai x0, x0, 7
  .option pop
  ret
