/*
 * Bare-metal trace driver: replays a trace of kernel calls against the C
 * core (xst_dispatch) and prints one line per result on the semihosting
 * console, with the instructions each call took.
 *
 * Trace (little-endian u32 words): records `tag, nwords, payload[nwords]`
 *   1 ARENA [size]                      set the arena size in use, zero it
 *   2 WRITE [offset, nbytes, data...]   data padded to a multiple of 4 bytes;
 *                                       offsets from XST_FLASH_BASE fill the
 *                                       read-only region (flashing weights)
 *   3 CALL  [op, nargs, args...]        xst_dispatch(op, args, nargs, ...)
 *   4 CRC   [offset, nbytes]            -> crc <offset> <nbytes> <8 hex>
 *   5 READ  [offset, nbytes]            -> read <offset> <hex>
 *   6 PLAN  [nbytes, blob...]           a plan blob (src/core/plan-format.ts)
 *                                       into the read-only region, checked by
 *                                       xst_plan_validate against the image's
 *                                       arena capacity; the arena in use
 *                                       becomes the plan's, reset to its
 *                                       initial state (xst_plan_reset)
 *                                       -> plan <status> <section> <index> <arena>
 *   7 STEP  [which]                     xst_plan_run: 0 the training step,
 *                                       1 the inference
 *                                       -> step <which> <instructions> <status> <failed op>
 *   8 PLANCRC []                        -> plancrc <8 hex>: CRC-32 of the plan's
 *                                       trainable regions, concatenated
 *   0 END   []                          -> done, exit 0
 * Each CALL prints `call <index> <op> <instructions> <status>`. First of
 * all the driver prints `info counter <name> overhead <n> arena-capacity
 * <bytes>`.
 * Exit status: 0 done; 2 a kernel returned a nonzero status (after its call
 * line); 3 a malformed or out-of-bounds record, or a trace ending without
 * END; 4 no trace file (command line, open, read error); 5 the instruction
 * counter failed its self-check; 6 a CPU fault (printed by the port); 7 the
 * plan validator rejected a PLAN record (after its plan line).
 * Problems print `error <message>` first.
 *
 * The trace file is streamed through a small buffer (traces can be
 * megabytes); WRITE data goes straight into the arena. The path comes from
 * the semihosting command line: everything after its first word
 * (QEMU: -semihosting-config enable=on,arg=xstrain,arg=<trace>).
 *
 * Instruction counts: the counter is read right before and right after
 * xst_dispatch; the cost of one reading (two readings back to back) is
 * measured at start-up and subtracted, so a count covers the call itself
 * (argument set-up, call, return) and the kernel.
 */
#include <stddef.h>
#include <stdint.h>

#include "port.h"
#include "semihost.h"
#include "xst.h"

#ifndef XST_BAREMETAL_ARENA_CAPACITY
#define XST_BAREMETAL_ARENA_CAPACITY (200u * 1024u)
#endif
#define MAX_ARGS 64u
#define READ_BUF_SIZE 4096u
#define CMDLINE_SIZE 1024u

enum {
  EXIT_DONE = 0,
  EXIT_KERNEL = 2,
  EXIT_TRACE = 3,
  EXIT_HOST = 4,
  EXIT_COUNTER = 5,
  EXIT_PLAN = 7
};

enum {
  TAG_END = 0,
  TAG_ARENA = 1,
  TAG_WRITE = 2,
  TAG_CALL = 3,
  TAG_CRC = 4,
  TAG_READ = 5,
  TAG_PLAN = 6,
  TAG_STEP = 7,
  TAG_PLANCRC = 8
};

/* The arena: not zeroed at reset (.noinit), ARENA records zero what they
 * use. Its capacity is fixed at build time (ARENA_CAPACITY in the Makefile);
 * the linker script places it, the stack and everything else in 256 KB. */
static uint8_t arena[XST_BAREMETAL_ARENA_CAPACITY]
    __attribute__((section(".noinit.arena"), aligned(16)));
static uint32_t arena_size;

/* The read-only region (frozen weights), in the image's flash: kernels get
 * it as xst_memory.flash and cannot write it; only WRITE records fill it. */
#ifndef XST_BAREMETAL_FLASH_CAPACITY
#define XST_BAREMETAL_FLASH_CAPACITY (640u * 1024u)
#endif
static uint8_t flash_store[XST_BAREMETAL_FLASH_CAPACITY]
    __attribute__((section(".flash_store"), aligned(16)));
static uint32_t flash_used;

/* ---- console output ------------------------------------------------------ */

static char line[256];
static uint32_t line_len;

static void out_flush(void) {
  if (line_len == 0) return;
  line[line_len] = '\0';
  sh_write0(line);
  line_len = 0;
}

static void out_char(char c) {
  if (line_len + 1 >= sizeof line) out_flush();
  line[line_len++] = c;
  if (c == '\n') out_flush();
}

static void out_str(const char *s) {
  while (*s != '\0') out_char(*s++);
}

static void out_u64(uint64_t v) {
  char tmp[21];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + (int)(v % 10u));
    v /= 10u;
  } while (v != 0);
  while (n > 0) out_char(tmp[--n]);
}

static void out_i32(int32_t v) {
  if (v < 0) {
    out_char('-');
    out_u64((uint64_t)(-(int64_t)v));
  } else {
    out_u64((uint64_t)v);
  }
}

static const char kHex[] = "0123456789abcdef";

static void out_hex8(uint32_t v) {
  for (int s = 28; s >= 0; s -= 4) out_char(kHex[(v >> s) & 15u]);
}

static void fail(int status, const char *msg) __attribute__((noreturn));
static void fail(int status, const char *msg) {
  out_str("error ");
  out_str(msg);
  out_char('\n');
  port_exit(status);
}

/* ---- streaming reader ---------------------------------------------------- */

static int32_t trace_fd = -1;
static uint8_t rbuf[READ_BUF_SIZE];
static uint32_t rpos, rlen;

/* Reads exactly n bytes into dst (dst may be NULL to skip). Returns 0, or -1
 * at end of file. Large reads bypass the buffer. */
static int read_bytes(uint8_t *dst, uint32_t n) {
  while (n > 0) {
    if (rpos == rlen) {
      int32_t got;
      if (dst != NULL && n >= READ_BUF_SIZE) {
        got = sh_read(trace_fd, dst, n);
        if (got < 0) fail(EXIT_HOST, "cannot read the trace file");
        if (got == 0) return -1;
        dst += got;
        n -= (uint32_t)got;
        continue;
      }
      got = sh_read(trace_fd, rbuf, READ_BUF_SIZE);
      if (got < 0) fail(EXIT_HOST, "cannot read the trace file");
      if (got == 0) return -1;
      rpos = 0;
      rlen = (uint32_t)got;
    }
    uint32_t take = rlen - rpos;
    if (take > n) take = n;
    if (dst != NULL) {
      for (uint32_t i = 0; i < take; i++) dst[i] = rbuf[rpos + i];
      dst += take;
    }
    rpos += take;
    n -= take;
  }
  return 0;
}

static uint32_t read_word(void) {
  uint8_t b[4];
  if (read_bytes(b, 4) != 0) fail(EXIT_TRACE, "trace truncated inside a record");
  return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
         ((uint32_t)b[3] << 24);
}

/* ---- instruction counter ------------------------------------------------- */

static uint32_t counter_phase;
static uint64_t counter_overhead;

#define SLED(k)                                                      \
  static __attribute__((noinline)) void sled_##k(void) {             \
    __asm__ volatile(".rept " #k "\n\tnop\n\t.endr" ::: "memory");   \
  }
SLED(0) SLED(1) SLED(2) SLED(3) SLED(4) SLED(5) SLED(6) SLED(7)
SLED(8) SLED(9) SLED(10) SLED(11) SLED(12) SLED(13) SLED(14) SLED(15)
static void (*const kSleds[16])(void) = {
    sled_0, sled_1, sled_2,  sled_3,  sled_4,  sled_5,  sled_6,  sled_7,
    sled_8, sled_9, sled_10, sled_11, sled_12, sled_13, sled_14, sled_15};

#define CAL_SAMPLES 64u

/* Picks the counter's conversion phase from nop sleds of known length (the
 * only phase under which a k-nop sled always measures k more than the empty
 * one), then measures the cost of one counter reading. Fails loudly rather
 * than print counts that are not exact. */
static void calibrate(void) {
  static uint64_t before[CAL_SAMPLES], after[CAL_SAMPLES];
  uint32_t phases = port_counter_phases();
  uint32_t found = phases;
  for (uint32_t i = 0; i < CAL_SAMPLES; i++) {
    void (*sled)(void) = kSleds[i % 16u];
    before[i] = port_counter_raw();
    sled();
    after[i] = port_counter_raw();
  }
  for (uint32_t p = 0; p < phases && found == phases; p++) {
    uint64_t base = port_counter_instructions(after[0], p) -
                    port_counter_instructions(before[0], p);
    uint32_t ok = 1;
    for (uint32_t i = 0; i < CAL_SAMPLES && ok; i++) {
      uint64_t d = port_counter_instructions(after[i], p) -
                   port_counter_instructions(before[i], p);
      ok = d == base + (i % 16u);
    }
    if (ok) found = p;
  }
  if (found == phases) fail(EXIT_COUNTER, "instruction counter: nop sleds do not measure exactly");
  counter_phase = found;

  for (uint32_t i = 0; i < 8; i++) {
    uint64_t a = port_counter_raw();
    uint64_t b = port_counter_raw();
    uint64_t d = port_counter_instructions(b, found) - port_counter_instructions(a, found);
    if (i == 0) {
      counter_overhead = d;
    } else if (d != counter_overhead) {
      fail(EXIT_COUNTER, "instruction counter: reading cost is not constant");
    }
  }
}

/* ---- records -------------------------------------------------------------- */

static int32_t call_args[MAX_ARGS];
static uint32_t call_index;

static void expect_words(uint32_t nwords, uint32_t want, const char *what) {
  if (nwords != want) {
    out_str("error malformed ");
    out_str(what);
    out_str(" record: ");
    out_u64(nwords);
    out_str(" payload words, expected ");
    out_u64(want);
    out_char('\n');
    port_exit(EXIT_TRACE);
  }
}

/* Checks [offset, offset + nbytes) lies in the arena in use. */
static void check_range(const char *what, uint32_t offset, uint32_t nbytes) {
  if (offset <= arena_size && nbytes <= arena_size - offset) return;
  out_str("error ");
  out_str(what);
  out_str(" out of bounds: offset ");
  out_u64(offset);
  out_str(" nbytes ");
  out_u64(nbytes);
  out_str(" arena ");
  out_u64(arena_size);
  out_char('\n');
  port_exit(EXIT_TRACE);
}

static void do_arena(uint32_t nwords) {
  expect_words(nwords, 1, "ARENA");
  uint32_t size = read_word();
  if (size > XST_BAREMETAL_ARENA_CAPACITY) {
    out_str("error ARENA size ");
    out_u64(size);
    out_str(" exceeds the image's capacity ");
    out_u64(XST_BAREMETAL_ARENA_CAPACITY);
    out_char('\n');
    port_exit(EXIT_TRACE);
  }
  for (uint32_t i = 0; i < size; i++) arena[i] = 0;
  arena_size = size;
}

static void do_write(uint32_t nwords) {
  if (nwords < 2) expect_words(nwords, 2, "WRITE");
  uint32_t offset = read_word();
  uint32_t nbytes = read_word();
  uint32_t data_words = nbytes / 4u + (nbytes % 4u != 0);
  expect_words(nwords, 2u + data_words, "WRITE");
  uint8_t *dst;
  if (offset >= XST_FLASH_BASE) {
    uint32_t at = offset - XST_FLASH_BASE;
    if (at > XST_BAREMETAL_FLASH_CAPACITY || nbytes > XST_BAREMETAL_FLASH_CAPACITY - at) {
      out_str("error WRITE outside the flash region: offset ");
      out_u64(at);
      out_str(" nbytes ");
      out_u64(nbytes);
      out_str(" flash ");
      out_u64(XST_BAREMETAL_FLASH_CAPACITY);
      out_char('\n');
      port_exit(EXIT_TRACE);
    }
    if (at + nbytes > flash_used) flash_used = at + nbytes;
    dst = flash_store + at;
  } else {
    check_range("WRITE", offset, nbytes);
    dst = arena + offset;
  }
  if (read_bytes(dst, nbytes) != 0 || read_bytes(NULL, data_words * 4u - nbytes) != 0) {
    fail(EXIT_TRACE, "trace truncated inside a WRITE record");
  }
}

static void do_call(uint32_t nwords) {
  if (nwords < 2) expect_words(nwords, 2, "CALL");
  int32_t op = (int32_t)read_word();
  uint32_t nargs = read_word();
  if (nargs > MAX_ARGS) {
    out_str("error malformed CALL record: ");
    out_u64(nargs);
    out_str(" args, at most ");
    out_u64(MAX_ARGS);
    out_char('\n');
    port_exit(EXIT_TRACE);
  }
  expect_words(nwords, 2u + nargs, "CALL");
  for (uint32_t i = 0; i < nargs; i++) call_args[i] = (int32_t)read_word();

  xst_memory mem = {arena, arena_size, flash_store, flash_used};
  uint64_t t0 = port_counter_raw();
  int status = xst_dispatch_memory(op, call_args, (int32_t)nargs, &mem);
  uint64_t t1 = port_counter_raw();
  uint64_t n = port_counter_instructions(t1, counter_phase) -
               port_counter_instructions(t0, counter_phase) - counter_overhead;

  out_str("call ");
  out_u64(call_index);
  out_char(' ');
  out_i32(op);
  out_char(' ');
  out_u64(n);
  out_char(' ');
  out_i32(status);
  out_char('\n');
  if (status != 0) {
    const char *name = xst_status_name(status);
    out_str("error call ");
    out_u64(call_index);
    out_str(" op ");
    out_i32(op);
    out_str(" returned status ");
    out_i32(status);
    out_str(" (");
    out_str(name != NULL ? name : "?");
    out_str(")\n");
    port_exit(EXIT_KERNEL);
  }
  call_index++;
}

static void do_crc(uint32_t nwords) {
  expect_words(nwords, 2, "CRC");
  uint32_t offset = read_word();
  uint32_t nbytes = read_word();
  check_range("CRC", offset, nbytes);
  uint32_t crc = xst_crc32(0, arena + offset, nbytes);
  out_str("crc ");
  out_u64(offset);
  out_char(' ');
  out_u64(nbytes);
  out_char(' ');
  out_hex8(crc);
  out_char('\n');
}

static void do_read(uint32_t nwords) {
  expect_words(nwords, 2, "READ");
  uint32_t offset = read_word();
  uint32_t nbytes = read_word();
  check_range("READ", offset, nbytes);
  out_str("read ");
  out_u64(offset);
  out_char(' ');
  for (uint32_t i = 0; i < nbytes; i++) {
    uint8_t b = arena[offset + i];
    out_char(kHex[b >> 4]);
    out_char(kHex[b & 15u]);
  }
  out_char('\n');
}

/* ---- plans ----------------------------------------------------------------- */

/* The plan loaded by the last PLAN record: views into flash_store. */
static xst_plan plan;
static int plan_loaded;

static void do_plan(uint32_t nwords) {
  if (nwords < 1) expect_words(nwords, 1, "PLAN");
  uint32_t nbytes = read_word();
  uint32_t data_words = nbytes / 4u + (nbytes % 4u != 0);
  expect_words(nwords, 1u + data_words, "PLAN");
  if (nbytes > XST_BAREMETAL_FLASH_CAPACITY) {
    out_str("error PLAN of ");
    out_u64(nbytes);
    out_str(" bytes exceeds the flash region ");
    out_u64(XST_BAREMETAL_FLASH_CAPACITY);
    out_char('\n');
    port_exit(EXIT_TRACE);
  }
  plan_loaded = 0;
  if (read_bytes(flash_store, nbytes) != 0 || read_bytes(NULL, data_words * 4u - nbytes) != 0) {
    fail(EXIT_TRACE, "trace truncated inside a PLAN record");
  }
  flash_used = nbytes;
  int status = xst_plan_validate(flash_store, nbytes, XST_BAREMETAL_ARENA_CAPACITY, &plan);
  out_str("plan ");
  out_i32(status);
  out_char(' ');
  out_i32(status ? plan.error_section : -1);
  out_char(' ');
  out_i32(status ? plan.error_index : -1);
  out_char(' ');
  out_u64(status ? 0 : plan.arena_bytes);
  out_char('\n');
  if (status != 0) {
    const char *name = xst_status_name(status);
    out_str("error plan rejected: ");
    out_str(name != NULL ? name : "?");
    out_char('\n');
    port_exit(EXIT_PLAN);
  }
  arena_size = plan.arena_bytes;
  if (xst_plan_reset(&plan, arena, arena_size) != XST_OK) fail(EXIT_PLAN, "plan reset failed");
  plan_loaded = 1;
}

static void do_step(uint32_t nwords) {
  expect_words(nwords, 1, "STEP");
  uint32_t which = read_word();
  if (!plan_loaded) fail(EXIT_TRACE, "STEP before a valid PLAN");
  if (which > 1u) fail(EXIT_TRACE, "STEP: which must be 0 (train) or 1 (infer)");
  int32_t failed = -1;
  uint64_t t0 = port_counter_raw();
  int status = xst_plan_run(&plan, (int)which, arena, arena_size, &failed);
  uint64_t t1 = port_counter_raw();
  uint64_t n = port_counter_instructions(t1, counter_phase) -
               port_counter_instructions(t0, counter_phase) - counter_overhead;
  out_str("step ");
  out_u64(which);
  out_char(' ');
  out_u64(n);
  out_char(' ');
  out_i32(status);
  out_char(' ');
  out_i32(failed);
  out_char('\n');
  if (status != 0) {
    const char *name = xst_status_name(status);
    out_str("error step op ");
    out_i32(failed);
    out_str(" returned status ");
    out_i32(status);
    out_str(" (");
    out_str(name != NULL ? name : "?");
    out_str(")\n");
    port_exit(EXIT_KERNEL);
  }
}

static void do_plancrc(uint32_t nwords) {
  expect_words(nwords, 0, "PLANCRC");
  if (!plan_loaded) fail(EXIT_TRACE, "PLANCRC before a valid PLAN");
  uint32_t crc = 0;
  for (uint32_t i = 0; i < plan.region_count; i++) {
    const uint8_t *r = plan.regions + 12u * i;
    uint32_t off = (uint32_t)r[4] | ((uint32_t)r[5] << 8) | ((uint32_t)r[6] << 16) | ((uint32_t)r[7] << 24);
    uint32_t len = (uint32_t)r[8] | ((uint32_t)r[9] << 8) | ((uint32_t)r[10] << 16) | ((uint32_t)r[11] << 24);
    crc = xst_crc32(crc, arena + off, len); /* validated: inside the plan's arena */
  }
  out_str("plancrc ");
  out_hex8(crc);
  out_char('\n');
}

/* ---- main ---------------------------------------------------------------- */

static const char *trace_path(char *cmdline) {
  char *p = cmdline;
  while (*p != '\0' && *p != ' ') p++;
  while (*p == ' ') p++;
  return *p != '\0' ? p : NULL;
}

int main(void) {
  static char cmdline[CMDLINE_SIZE];

  port_counter_init();
  calibrate();
  out_str("info counter ");
  out_str(port_counter_name);
  out_str(" overhead ");
  out_u64(counter_overhead);
  out_str(" arena-capacity ");
  out_u64(XST_BAREMETAL_ARENA_CAPACITY);
  out_char('\n');

  if (sh_get_cmdline(cmdline, sizeof cmdline) != 0) fail(EXIT_HOST, "no semihosting command line");
  const char *path = trace_path(cmdline);
  if (path == NULL) {
    fail(EXIT_HOST, "no trace file: run with -semihosting-config enable=on,arg=xstrain,arg=<trace>");
  }
  trace_fd = sh_open_read(path);
  if (trace_fd < 0) {
    out_str("error cannot open trace file ");
    out_str(path);
    out_char('\n');
    port_exit(EXIT_HOST);
  }

  for (;;) {
    uint8_t head[8];
    if (read_bytes(head, 8) != 0) fail(EXIT_TRACE, "trace ended without an END record");
    uint32_t tag = (uint32_t)head[0] | ((uint32_t)head[1] << 8) | ((uint32_t)head[2] << 16) |
                   ((uint32_t)head[3] << 24);
    uint32_t nwords = (uint32_t)head[4] | ((uint32_t)head[5] << 8) |
                      ((uint32_t)head[6] << 16) | ((uint32_t)head[7] << 24);
    switch (tag) {
      case TAG_END:
        expect_words(nwords, 0, "END");
        sh_close(trace_fd);
        out_str("done\n");
        return EXIT_DONE;
      case TAG_ARENA: do_arena(nwords); break;
      case TAG_WRITE: do_write(nwords); break;
      case TAG_CALL: do_call(nwords); break;
      case TAG_CRC: do_crc(nwords); break;
      case TAG_READ: do_read(nwords); break;
      case TAG_PLAN: do_plan(nwords); break;
      case TAG_STEP: do_step(nwords); break;
      case TAG_PLANCRC: do_plancrc(nwords); break;
      default:
        out_str("error malformed trace: unknown record tag ");
        out_u64(tag);
        out_char('\n');
        port_exit(EXIT_TRACE);
    }
  }
}
