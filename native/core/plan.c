/*
 * Training plans: validation and execution of a plan blob (format in
 * native/README.md "Plan blobs"; written by src/core/plan-format.ts).
 *
 * A blob is untrusted bytes. xst_plan_validate reads it only through
 * bounds-checked little-endian loads (no alignment assumed, no pointer
 * formed outside the given bytes), checks magic, version, length and CRC,
 * then every section, then every op's arguments with the dispatcher's own
 * checks (xst_dispatch_check) against the plan's arena and flash sizes, so
 * nothing runs unless the whole plan binds. xst_plan_run still goes through
 * xst_dispatch_memory for each op (the same checks again, cheap next to a
 * kernel).
 */
#include "xst.h"

#define MAX_SECTIONS 16u
#define MAX_PLAN_ARGS 32
#define IO_WORDS 20u

static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* The int32 whose two's-complement bits are v (no implementation-defined
 * conversion of an out-of-range unsigned value). */
static int32_t as_i32(uint32_t v) {
  return v <= 0x7FFFFFFFu ? (int32_t)v : (int32_t)(v - 0x80000000u) - 0x7FFFFFFF - 1;
}

/* [off, off + n) inside [0, limit), in 64 bits (no wrap). */
static int inside(uint64_t off, uint64_t n, uint64_t limit) { return off <= limit && n <= limit - off; }

static int fail(xst_plan *p, int status, int32_t section, int32_t index) {
  p->error_section = section;
  p->error_index = index;
  return status;
}

/* An arena range the host or the runtime touches: inside the plan's arena. */
static int arena_range(const xst_plan *p, uint32_t off, uint32_t n) { return n > 0 && inside(off, n, p->arena_bytes); }
static int arena_cell(const xst_plan *p, uint32_t off) { return off % 4u == 0 && arena_range(p, off, 4); }

static int check_init(xst_plan *p, const uint8_t *s, uint32_t bytes) {
  const int32_t kind = XST_PLAN_SECTION_INIT;
  if (bytes < 4) return fail(p, XST_ERR_PLAN_FORMAT, kind, -1);
  uint32_t count = rd32(s), pos = 4;
  if (count > bytes / 8u) return fail(p, XST_ERR_PLAN_FORMAT, kind, -1);
  for (uint32_t i = 0; i < count; i++) {
    if (bytes - pos < 8u) return fail(p, XST_ERR_PLAN_FORMAT, kind, (int32_t)i);
    uint32_t off = rd32(s + pos), n = rd32(s + pos + 4);
    uint64_t padded = ((uint64_t)n + 3u) & ~(uint64_t)3u;
    if (padded > (uint64_t)(bytes - pos - 8u)) return fail(p, XST_ERR_PLAN_FORMAT, kind, (int32_t)i);
    if (!arena_range(p, off, n)) return fail(p, XST_ERR_BOUNDS, kind, (int32_t)i);
    pos += 8u + (uint32_t)padded;
  }
  if (pos != bytes) return fail(p, XST_ERR_PLAN_FORMAT, kind, -1);
  p->init = s + 4;
  p->init_count = count;
  return XST_OK;
}

/* Reads op record i at s[pos, bytes): op id, argument count and the args
 * (into args[], at most MAX_PLAN_ARGS). Returns the record's size, or 0. */
static uint32_t read_op(const uint8_t *s, uint32_t pos, uint32_t bytes, int32_t *op, int32_t *args, int32_t *nargs) {
  if (bytes - pos < 8u) return 0;
  uint32_t id = rd32(s + pos), n = rd32(s + pos + 4);
  if (n > MAX_PLAN_ARGS || 4u * n > bytes - pos - 8u) return 0;
  for (uint32_t k = 0; k < n; k++) args[k] = as_i32(rd32(s + pos + 8u + 4u * k));
  *op = id > 0x7FFFFFFFu ? -1 : (int32_t)id;
  *nargs = (int32_t)n;
  return 8u + 4u * n;
}

static int check_ops(xst_plan *p, int which, const uint8_t *s, uint32_t bytes) {
  const int32_t kind = which == XST_PLAN_TRAIN ? XST_PLAN_SECTION_TRAIN : XST_PLAN_SECTION_INFER;
  if (bytes < 4) return fail(p, XST_ERR_PLAN_FORMAT, kind, -1);
  uint32_t count = rd32(s), pos = 4;
  if (count == 0 || count > bytes / 8u) return fail(p, XST_ERR_PLAN_FORMAT, kind, -1);
  int32_t args[MAX_PLAN_ARGS];
  for (uint32_t i = 0; i < count; i++) {
    int32_t op = 0, nargs = 0;
    uint32_t size = read_op(s, pos, bytes, &op, args, &nargs);
    if (size == 0) return fail(p, XST_ERR_PLAN_FORMAT, kind, (int32_t)i);
    int st = xst_dispatch_check(op, args, nargs, p->arena_bytes, p->flash_len);
    if (st != XST_OK) return fail(p, st, kind, (int32_t)i);
    pos += size;
  }
  if (pos != bytes) return fail(p, XST_ERR_PLAN_FORMAT, kind, -1);
  p->ops[which] = s + 4;
  p->op_bytes[which] = bytes - 4u;
  p->op_count[which] = count;
  return XST_OK;
}

static int check_io(xst_plan *p, const uint8_t *s, uint32_t bytes) {
  const int32_t kind = XST_PLAN_SECTION_IO;
  if (bytes != 4u * IO_WORDS) return fail(p, XST_ERR_PLAN_FORMAT, kind, -1);
  uint32_t w[IO_WORDS];
  for (uint32_t k = 0; k < IO_WORDS; k++) w[k] = rd32(s + 4u * k);
  xst_plan_io io;
  io.input_offset = w[0];
  io.input_bytes = w[1];
  io.label_offset = w[9];
  io.classes = w[10];
  io.logits_offset = w[11];
  io.logits_bytes = w[12];
  io.metric_offset = as_i32(w[15]);
  io.output_offset = w[16];
  io.output_bytes = w[17];
  /* input: rank 1-4, its elements are its bytes (int8) */
  uint32_t rank = w[4];
  uint64_t elems = 1;
  if (rank < 1 || rank > 4) return fail(p, XST_ERR_PLAN_FORMAT, kind, 4);
  for (uint32_t k = 0; k < 4; k++) {
    uint32_t d = w[5 + k];
    if (k < rank ? (d < 1 || d > (1u << 24)) : d != 0) return fail(p, XST_ERR_PLAN_FORMAT, kind, (int32_t)(5 + k));
    if (k < rank) elems *= d;
  }
  if (elems != io.input_bytes) return fail(p, XST_ERR_PLAN_FORMAT, kind, 1);
  /* zero points of int8 tensors */
  const uint32_t zp[3] = {2, 13, 18};
  for (int k = 0; k < 3; k++) {
    int32_t z = as_i32(w[zp[k]]);
    if (z < -128 || z > 127) return fail(p, XST_ERR_PLAN_FORMAT, kind, (int32_t)zp[k]);
  }
  if (!arena_range(p, io.input_offset, io.input_bytes)) return fail(p, XST_ERR_BOUNDS, kind, 0);
  if (!arena_cell(p, io.label_offset)) return fail(p, XST_ERR_BOUNDS, kind, 9);
  if (io.label_offset < (uint64_t)io.input_offset + io.input_bytes && io.input_offset < (uint64_t)io.label_offset + 4u)
    return fail(p, XST_ERR_ALIAS, kind, 9); /* the host writes both: they must not overlap */
  if (io.classes < 1 || io.classes > 128 || io.logits_bytes != io.classes) return fail(p, XST_ERR_PLAN_FORMAT, kind, 10);
  if (!arena_range(p, io.logits_offset, io.logits_bytes)) return fail(p, XST_ERR_BOUNDS, kind, 11);
  if (io.metric_offset != -1 && (io.metric_offset < 0 || !arena_cell(p, (uint32_t)io.metric_offset)))
    return fail(p, XST_ERR_BOUNDS, kind, 15);
  if (!arena_range(p, io.output_offset, io.output_bytes)) return fail(p, XST_ERR_BOUNDS, kind, 16);
  p->io = io;
  return XST_OK;
}

static int check_regions(xst_plan *p, const uint8_t *s, uint32_t bytes) {
  const int32_t kind = XST_PLAN_SECTION_REGIONS;
  if (bytes < 4) return fail(p, XST_ERR_PLAN_FORMAT, kind, -1);
  uint32_t count = rd32(s);
  if (count > (bytes - 4u) / 12u || bytes != 4u + 12u * count) return fail(p, XST_ERR_PLAN_FORMAT, kind, -1);
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t *r = s + 4u + 12u * i;
    uint32_t k = rd32(r);
    if (k < 1 || k > 4) return fail(p, XST_ERR_PLAN_FORMAT, kind, (int32_t)i);
    if (!arena_range(p, rd32(r + 4), rd32(r + 8))) return fail(p, XST_ERR_BOUNDS, kind, (int32_t)i);
  }
  p->regions = s + 4;
  p->region_count = count;
  return XST_OK;
}

int xst_plan_validate(const uint8_t *blob, uint32_t len, uint32_t arena_capacity, xst_plan *p) {
  if (!p) return XST_ERR_PLAN_FORMAT;
  *p = (xst_plan){0};
  p->error_index = -1;
  if (!blob || len < XST_PLAN_HEADER_BYTES) return fail(p, blob ? XST_ERR_PLAN_LENGTH : XST_ERR_PLAN_FORMAT, 0, -1);
  if (blob[0] != 'X' || blob[1] != 'S' || blob[2] != 'T' || blob[3] != 'P') return fail(p, XST_ERR_PLAN_MAGIC, 0, -1);
  if (rd32(blob + 4) != XST_PLAN_VERSION) return fail(p, XST_ERR_PLAN_VERSION, 0, -1);
  uint32_t length = rd32(blob + 8);
  if (length < XST_PLAN_HEADER_BYTES || length > len) return fail(p, XST_ERR_PLAN_LENGTH, 0, -1);
  if (rd32(blob + 12) != xst_crc32(0, blob + 16, length - 16u)) return fail(p, XST_ERR_PLAN_CRC, 0, -1);
  p->blob = blob;
  p->length = length;
  p->arena_bytes = rd32(blob + 16);
  uint32_t nsec = rd32(blob + 20);
  if (rd32(blob + 24) != 0 || rd32(blob + 28) != 0) return fail(p, XST_ERR_PLAN_FORMAT, 0, -1);
  if (p->arena_bytes == 0 || p->arena_bytes >= XST_FLASH_BASE) return fail(p, XST_ERR_PLAN_FORMAT, 0, -1);
  if (p->arena_bytes > arena_capacity) return fail(p, XST_ERR_PLAN_ARENA, 0, -1);
  if (nsec < 1 || nsec > MAX_SECTIONS || !inside(XST_PLAN_HEADER_BYTES, 12u * nsec, length))
    return fail(p, XST_ERR_PLAN_FORMAT, 0, -1);
  const uint32_t table_end = XST_PLAN_HEADER_BYTES + 12u * nsec;

  /* The section table: kinds 1..6 once each, 4-aligned, inside the blob
   * after the table, pairwise disjoint. */
  uint32_t off[XST_PLAN_SECTION_KINDS + 1] = {0}, size[XST_PLAN_SECTION_KINDS + 1] = {0};
  uint32_t seen = 0;
  for (uint32_t i = 0; i < nsec; i++) {
    const uint8_t *e = blob + XST_PLAN_HEADER_BYTES + 12u * i;
    uint32_t kind = rd32(e), o = rd32(e + 4), n = rd32(e + 8);
    if (kind < 1 || kind > XST_PLAN_SECTION_KINDS || (seen & (1u << kind))) return fail(p, XST_ERR_PLAN_FORMAT, 0, (int32_t)i);
    if (o % 4u || o < table_end || !inside(o, n, length)) return fail(p, XST_ERR_PLAN_FORMAT, 0, (int32_t)i);
    for (uint32_t k = 1; k <= XST_PLAN_SECTION_KINDS; k++) {
      if ((seen & (1u << k)) && o < (uint64_t)off[k] + size[k] && off[k] < (uint64_t)o + n)
        return fail(p, XST_ERR_PLAN_FORMAT, 0, (int32_t)i);
    }
    seen |= 1u << kind;
    off[kind] = o;
    size[kind] = n;
  }
  for (uint32_t k = 1; k <= XST_PLAN_SECTION_KINDS; k++) {
    if (!(seen & (1u << k))) return fail(p, XST_ERR_PLAN_FORMAT, (int32_t)k, -1);
  }

  /* The flash section is tensor memory: int32 tables need a 4-aligned base. */
  p->flash = blob + off[XST_PLAN_SECTION_FLASH];
  p->flash_len = size[XST_PLAN_SECTION_FLASH];
  if ((uintptr_t)p->flash % 4u) return fail(p, XST_ERR_ALIGN, XST_PLAN_SECTION_FLASH, -1);

  int st = check_init(p, blob + off[XST_PLAN_SECTION_INIT], size[XST_PLAN_SECTION_INIT]);
  if (st) return st;
  st = check_io(p, blob + off[XST_PLAN_SECTION_IO], size[XST_PLAN_SECTION_IO]);
  if (st) return st;
  st = check_ops(p, XST_PLAN_TRAIN, blob + off[XST_PLAN_SECTION_TRAIN], size[XST_PLAN_SECTION_TRAIN]);
  if (st) return st;
  st = check_ops(p, XST_PLAN_INFER, blob + off[XST_PLAN_SECTION_INFER], size[XST_PLAN_SECTION_INFER]);
  if (st) return st;
  st = check_regions(p, blob + off[XST_PLAN_SECTION_REGIONS], size[XST_PLAN_SECTION_REGIONS]);
  if (st) return st;
  p->error_section = -1;
  return XST_OK;
}

int xst_plan_reset(const xst_plan *p, uint8_t *arena, uint32_t arena_len) {
  if (!p || !p->blob || !arena || arena_len < p->arena_bytes) return XST_ERR_PLAN_ARENA;
  for (uint32_t i = 0; i < p->arena_bytes; i++) arena[i] = 0;
  const uint8_t *r = p->init;
  for (uint32_t i = 0; i < p->init_count; i++) {
    uint32_t off = rd32(r), n = rd32(r + 4);
    for (uint32_t k = 0; k < n; k++) arena[off + k] = r[8 + k]; /* validated: inside the arena */
    r += 8u + ((n + 3u) & ~3u);
  }
  return XST_OK;
}

int xst_plan_run(const xst_plan *p, int which, uint8_t *arena, uint32_t arena_len, int32_t *failed_op) {
  if (failed_op) *failed_op = -1;
  if (which != XST_PLAN_TRAIN && which != XST_PLAN_INFER) return XST_ERR_PLAN_FORMAT;
  if (!p || !p->blob || !arena || arena_len < p->arena_bytes) return XST_ERR_PLAN_ARENA;
  const xst_memory mem = {arena, p->arena_bytes, p->flash, p->flash_len};
  const uint8_t *s = p->ops[which];
  int32_t args[MAX_PLAN_ARGS];
  uint32_t pos = 0;
  for (uint32_t i = 0; i < p->op_count[which]; i++) {
    int32_t op = 0, nargs = 0;
    uint32_t size = read_op(s, pos, p->op_bytes[which], &op, args, &nargs);
    int st = size ? xst_dispatch_memory(op, args, nargs, &mem) : XST_ERR_PLAN_FORMAT;
    if (st != XST_OK) {
      if (failed_op) *failed_op = (int32_t)i;
      return st;
    }
    pos += size;
  }
  return XST_OK;
}
