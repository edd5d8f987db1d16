/*
 * Fuzz of the plan validator (native/core/plan.c), built with
 * -fsanitize=address,undefined (host-tests/plan.test.ts builds and runs
 * this on a plan the compiler wrote):
 *
 *   test_plan <plan.xstp> <mutations> <seed>
 *
 * Each mutation copies the blob into a buffer of exactly its (possibly
 * truncated) length, so any read past it aborts, and changes it one way:
 *   - bit flips anywhere, the CRC resealed (most of these land in weights
 *     and tables: valid plans with other numbers) or not (CRC rejects);
 *   - truncation to a random length;
 *   - a structural word (header, section table, section counts, INIT record
 *     headers, I/O words, op ids, argument counts and arguments, region
 *     records) set to an edge value (0, -1, 2^31, the flash base, the arena
 *     size +- a few, the old value +- 1 or 4, ...), the CRC resealed so the
 *     checks past the CRC run.
 * Then xst_plan_validate with the original plan's arena size. A rejected
 * blob must say where (section, index) for the statuses that have one; an
 * accepted one is reset into an arena malloc'd to exactly its size and runs
 * its training step and inference: kernels may refuse values they read
 * (a status), but nothing may read or write out of bounds.
 * Prints "<n> mutations: <a> accepted and run, <r> rejected" and one line
 * per status; exit 0, or 1 on a failed expectation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/xst.h"
#include "../core/xst_fixed.h"

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void reseal(uint8_t *b, uint32_t len) {
  if (len < 16) return;
  uint32_t length = rd32(b + 8);
  if (length > len || length < 16) length = len;
  wr32(b + 12, xst_crc32(0, b + 16, length - 16u));
}

/* Byte positions of the structural words of a valid plan. */
static uint32_t *words;
static uint32_t nwords, capwords;

static void add_word(uint32_t pos) {
  if (nwords == capwords) {
    capwords = capwords ? 2 * capwords : 256;
    words = realloc(words, capwords * sizeof *words);
    if (!words) exit(2);
  }
  words[nwords++] = pos;
}

static void collect_words(const uint8_t *b, const xst_plan *p) {
  for (uint32_t k = 4; k < 32; k += 4) add_word(k);
  uint32_t nsec = rd32(b + 20);
  for (uint32_t i = 0; i < 3 * nsec; i++) add_word(32 + 4 * i);
  for (uint32_t i = 0; i < nsec; i++) {
    const uint8_t *e = b + 32 + 12 * i;
    uint32_t kind = rd32(e), off = rd32(e + 4), n = rd32(e + 8);
    if (kind == XST_PLAN_SECTION_FLASH) continue;
    add_word(off); /* a count, or the IO section's first word */
    if (kind == XST_PLAN_SECTION_IO || kind == XST_PLAN_SECTION_REGIONS) {
      for (uint32_t k = 4; k < n; k += 4) add_word(off + k);
    } else if (kind == XST_PLAN_SECTION_INIT) {
      uint32_t pos = off + 4;
      for (uint32_t r = 0; r < p->init_count; r++) {
        uint32_t len = rd32(b + pos + 4);
        add_word(pos);
        add_word(pos + 4);
        pos += 8 + ((len + 3u) & ~3u);
      }
    } else { /* TRAIN, INFER: op, nargs, every argument */
      uint32_t pos = off + 4, count = rd32(b + off);
      for (uint32_t r = 0; r < count; r++) {
        uint32_t na = rd32(b + pos + 4);
        for (uint32_t k = 0; k < 2 + na; k++) add_word(pos + 4 * k);
        pos += 8 + 4 * na;
      }
    }
  }
}

static uint32_t edge_value(uint32_t *s, uint32_t old, const xst_plan *p) {
  uint32_t r = xst_xorshift32(s);
  switch (r % 24u) {
    case 0: return 0;
    case 1: return 1;
    case 2: return 0xFFFFFFFFu;
    case 3: return 0x7FFFFFFFu;
    case 4: return 0x80000000u;
    case 5: return XST_FLASH_BASE;
    case 6: return XST_FLASH_BASE - 4u;
    case 7: return XST_FLASH_BASE + p->flash_len - 4u;
    case 8: return XST_FLASH_BASE + p->flash_len;
    case 9: return p->arena_bytes;
    case 10: return p->arena_bytes - 1u;
    case 11: return p->arena_bytes - 4u;
    case 12: return p->arena_bytes + 4u;
    case 13: return old + 1u;
    case 14: return old - 1u;
    case 15: return old + 4u;
    case 16: return old - 4u;
    case 17: return old ^ (1u << (xst_xorshift32(s) % 32u));
    case 18: return old * 2u;
    case 19: return old / 2u;
    case 20: return 1u << 24;
    case 21: return (1u << 24) + 1u;
    case 22: return p->length;
    default: return xst_xorshift32(s);
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: test_plan <plan.xstp> <mutations> <seed>\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", argv[1]);
    return 2;
  }
  static uint8_t file[1 << 22];
  uint32_t len = (uint32_t)fread(file, 1, sizeof file, f);
  fclose(f);
  long count = atol(argv[2]);
  uint32_t seed = (uint32_t)strtoul(argv[3], NULL, 10) | 1u;

  /* The original: valid, and its step runs. */
  uint8_t *orig = malloc(len);
  if (!orig) return 2;
  memcpy(orig, file, len);
  xst_plan base;
  int st = xst_plan_validate(orig, len, 0xFFFFFFu, &base);
  if (st != XST_OK) {
    printf("FAIL the original plan is rejected: %s (section %d, index %d)\n", xst_status_name(st),
           (int)base.error_section, (int)base.error_index);
    return 1;
  }
  collect_words(orig, &base);
  const uint32_t arena_cap = base.arena_bytes;

  long accepted = 0, rejected = 0, failures = 0, ran_ok = 0;
  long by_status[32] = {0};
  uint32_t s = seed;
  for (long m = 0; m < count; m++) {
    uint32_t kind = xst_xorshift32(&s) % 16u;
    uint32_t n = len;
    if (kind < 2) { /* truncation */
      n = xst_xorshift32(&s) % len;
    }
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return 2;
    memcpy(b, orig, n);
    if (kind >= 2 && kind < 5) { /* bit flips; kinds 2-3 resealed */
      uint32_t flips = 1 + xst_xorshift32(&s) % 8u;
      for (uint32_t i = 0; i < flips; i++) {
        uint32_t at = xst_xorshift32(&s) % n;
        b[at] ^= (uint8_t)(1u << (xst_xorshift32(&s) % 8u));
      }
      if (kind < 4) reseal(b, n);
    } else if (kind >= 5) { /* structural words, resealed */
      uint32_t edits = 1 + (xst_xorshift32(&s) % 4u == 0);
      for (uint32_t i = 0; i < edits; i++) {
        uint32_t at = words[xst_xorshift32(&s) % nwords];
        wr32(b + at, edge_value(&s, rd32(b + at), &base));
      }
      reseal(b, n);
    }

    xst_plan p;
    st = xst_plan_validate(b, n, arena_cap, &p);
    if (st < 0 || st >= 32) {
      printf("FAIL mutation %ld: status %d out of range\n", m, st);
      failures++;
    } else {
      by_status[st]++;
    }
    if (st != XST_OK) {
      rejected++;
      /* where: a section kind (0 header/table) and a record index; the
       * statuses only an op's binding gives name the TRAIN or INFER op */
      int op_only = st == XST_ERR_ARG_COUNT || st == XST_ERR_BAD_OP || st == XST_ERR_DIMS || st == XST_ERR_RANGE ||
                    st == XST_ERR_PARAM || st == XST_ERR_READONLY;
      if (p.error_section < 0 || p.error_section > XST_PLAN_SECTION_KINDS || p.error_index < -1 ||
          (op_only && (p.error_section != XST_PLAN_SECTION_TRAIN && p.error_section != XST_PLAN_SECTION_INFER))) {
        printf("FAIL mutation %ld: status %d at section %d index %d\n", m, st, (int)p.error_section, (int)p.error_index);
        failures++;
      }
    } else {
      accepted++;
      if (p.arena_bytes > arena_cap) {
        printf("FAIL mutation %ld: accepted an arena of %u > %u\n", m, p.arena_bytes, arena_cap);
        failures++;
      }
      uint8_t *arena = malloc(p.arena_bytes);
      if (!arena) return 2;
      int rs = xst_plan_reset(&p, arena, p.arena_bytes);
      int32_t failed = -1;
      int r1 = rs ? rs : xst_plan_run(&p, XST_PLAN_TRAIN, arena, p.arena_bytes, &failed);
      int r2 = rs ? rs : xst_plan_run(&p, XST_PLAN_INFER, arena, p.arena_bytes, &failed);
      if (!rs && !r1 && !r2) ran_ok++;
      free(arena);
    }
    free(b);
  }
  printf("%ld mutations: %ld accepted and run (%ld without a kernel status), %ld rejected\n", count, accepted, ran_ok,
         rejected);
  for (int k = 0; k < 32; k++) {
    if (by_status[k]) printf("status %d (%s): %ld\n", k, xst_status_name(k), by_status[k]);
  }
  free(orig);
  free(words);
  if (failures) printf("%ld failures\n", failures);
  return failures ? 1 : 0;
}
