// The plan blob: one compiled training step of a model, in the bytes a
// device keeps in flash. Written by the training compiler
// (src/compiler/train/lower.ts), read by the plan runtime (plan-runtime.ts)
// and, untrusted, validated in C before anything runs (native/core/plan.c).
// Platform-free: runs unchanged on XS.
//
// Format, version 1. Integers little-endian; offsets in bytes from the
// start of the blob; every section 16-aligned (the C reads it at any
// alignment but the flash section is tensor memory).
//
//   header (32 bytes)
//     0  "XSTP"         magic
//     4  u32 version    1
//     8  u32 length     bytes of the whole blob (bytes past it are ignored)
//     12 u32 crc        CRC-32 (IEEE, as xst_crc32) of bytes [16, length)
//     16 u32 arena      arena bytes the plan needs (offsets below it)
//     20 u32 sections   number of section-table entries, 1..16
//     24 u32 0, 28 u32 0  (reserved)
//   section table at 32: per section {u32 kind, u32 offset, u32 bytes};
//     kinds 1..6 exactly once each, inside the blob after the table,
//     4-aligned, not overlapping.
//   1 FLASH    the read-only region: frozen weights and biases,
//              requantisation, weight-scale and learning-rate tables. A
//              tensor offset XST_FLASH_BASE + i (0x40000000 + i) is byte i.
//   2 INIT     u32 count, then count records {u32 offset, u32 n, n bytes
//              padded to 4}: the arena's contents before the first step
//              (trainable weights and biases, zero optimizer state, the rng
//              seed); the rest of the arena starts at zero.
//   3 IO       20 words: input {offset, bytes, zero point, scale (f32
//              bits), rank, dims[4] (0 past the rank)}, label cell offset,
//              classes, logits {offset, bytes, zero point, scale},
//              metric cell offset (p(label) in Q16, -1: none), inference
//              output {offset, bytes, zero point, scale}.
//   4 TRAIN    u32 count >= 1, then count records {u32 op, u32 nargs,
//              i32 args[nargs]}: the dispatcher calls of one training step
//              (forward, loss, backward, fused updates) in order, exactly
//              the arguments Kernels hands to Dispatch.call.
//   5 INFER    the same for one inference (the forward, softmax included
//              when the model has one).
//   6 REGIONS  u32 count, then {u32 kind, u32 offset, u32 bytes}: the
//              arena ranges a step changes and a checkpoint keeps (kind 1
//              weights, 2 bias, 3 optimizer state, 4 rng).
//
// decodePlan checks everything but the ops' tensor bindings, which need the
// dispatcher's argument tables: the C validator (xst_plan_validate) checks
// those, every op against the plan's arena and flash, before the first op.

import { crc32 } from './crc32.js';
import { type OpId, opName, opNargs, statusNames } from './ops.js';

export const PLAN_VERSION = 1;
export const PLAN_HEADER_BYTES = 32;
const MAGIC = [0x58, 0x53, 0x54, 0x50]; // "XSTP"
const ALIGN = 16;
const MAX_SECTIONS = 16;
const MAX_ARGS = 32;
const IO_WORDS = 20;
const FLASH_BASE = 0x40000000; // = kernels.ts FLASH_BASE, native/core/xst.h

export const PlanSection = { flash: 1, init: 2, io: 3, train: 4, infer: 5, regions: 6 } as const;
export type PlanSectionName = keyof typeof PlanSection;
const sectionNames: readonly PlanSectionName[] = ['flash', 'init', 'io', 'train', 'infer', 'regions'];

export const RegionKind = { weights: 1, bias: 2, optimizer_state: 3, rng: 4 } as const;
export type RegionKindName = keyof typeof RegionKind;
const regionNames: readonly RegionKindName[] = ['weights', 'bias', 'optimizer_state', 'rng'];

// The C statuses of plan errors (native/core/xst.h, ops.ts statusNames).
export const PlanStatus = {
  bounds: 5,
  align: 6,
  alias: 8,
  magic: 10,
  version: 11,
  length: 12,
  crc: 13,
  format: 14,
  arena: 15,
} as const;

export interface PlanTensor {
  offset: number; // arena byte offset
  bytes: number;
  zeroPoint: number;
  scale: number; // float32
}

export interface PlanIo {
  input: PlanTensor & { shape: number[] }; // int8, rank 1..4
  label: number; // int32 cell: the class index
  classes: number;
  logits: PlanTensor;
  metric: number; // int32 cell: p(label) in Q16 after a step; -1 when absent
  output: PlanTensor; // what the inference ops leave (softmax output or logits)
}

export interface PlanCall {
  op: OpId;
  args: Int32Array;
}

export interface PlanInit {
  offset: number;
  bytes: Uint8Array;
}

export interface PlanRegion {
  kind: RegionKindName;
  offset: number;
  bytes: number;
}

export interface Plan {
  arenaBytes: number;
  flash: Uint8Array;
  init: PlanInit[];
  io: PlanIo;
  // The op lists; empty when decoded with { calls: false } (the ops then
  // run from the blob in C: PlanRuntime with a Dispatch that binds plans).
  train: PlanCall[];
  infer: PlanCall[];
  trainOps: number; // ops of a training step, decoded or not
  inferOps: number;
  regions: PlanRegion[];
}

export interface DecodeOptions {
  // false: check every op record as usual but keep no PlanCall objects (on
  // XS they were 100 KB of heap for person_detect's plan, README "Memory").
  calls?: boolean;
}

// A plan that cannot be used: `status` is the C status that means the same
// (native/core/xst.h), `section`/`index` where (section kind, 0 for the
// header or table; record index, -1 for the section as a whole).
export class PlanError extends Error {
  constructor(message: string, readonly status: number, readonly section = 0, readonly index = -1) {
    super(message);
  }
}

export function planSectionName(kind: number): string {
  return kind === 0 ? 'header' : (sectionNames[kind - 1] ?? `section ${kind}`).toUpperCase();
}

export function regionKindName(kind: number): RegionKindName | null {
  return regionNames[kind - 1] ?? null;
}

// What a C status from the validator means, with where it happened.
export function describePlanStatus(status: number, section: number, index: number): string {
  const what = statusNames[status] ?? `status ${status}`;
  if (section <= 0) return `plan rejected: ${what} (status ${status})`;
  const where = `${planSectionName(section)}${index >= 0 ? ` record ${index}` : ''}`;
  return `plan rejected at ${where}: ${what} (status ${status})`;
}

// ---- encoding -----------------------------------------------------------------

class Writer {
  bytes: Uint8Array;
  view: DataView;
  len = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, this.len));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }

  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.len, v >>> 0, true);
    this.len += 4;
  }

  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.len, v | 0, true);
    this.len += 4;
  }

  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.len, v, true);
    this.len += 4;
  }

  raw(b: Uint8Array): void {
    this.reserve(b.length);
    this.bytes.set(b, this.len);
    this.len += b.length;
  }

  pad(align: number): void {
    const n = (align - (this.len % align)) % align;
    this.reserve(n);
    this.len += n; // fresh bytes are zero
  }
}

function checkInt(what: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new PlanError(`plan: ${what} is ${v}, expected an integer in [${min}, ${max}]`, PlanStatus.format);
}

function writeCalls(w: Writer, calls: readonly PlanCall[], what: string): void {
  w.u32(calls.length);
  calls.forEach((c, i) => {
    const n = opNargs[c.op];
    if (n === undefined) throw new PlanError(`plan: ${what} op ${i} has unknown op id ${c.op}`, 2);
    if (c.args.length !== n) throw new PlanError(`plan: ${what} op ${i} (${opName[c.op]}) has ${c.args.length} args, the op takes ${n}`, 1);
    w.u32(c.op);
    w.u32(n);
    for (let k = 0; k < n; k++) w.i32(c.args[k]!);
  });
}

function writeTensor(w: Writer, t: PlanTensor): void {
  w.u32(t.offset);
  w.u32(t.bytes);
  w.i32(t.zeroPoint);
  w.f32(t.scale);
}

export function encodePlan(p: Plan): Uint8Array {
  checkInt('arena bytes', p.arenaBytes, 1, FLASH_BASE - 1);
  const sections: { kind: number; body: Uint8Array }[] = [];
  const section = (kind: number, fill: (w: Writer) => void) => {
    const w = new Writer(256);
    fill(w);
    sections.push({ kind, body: w.bytes.subarray(0, w.len) });
  };
  section(PlanSection.flash, (w) => w.raw(p.flash));
  section(PlanSection.init, (w) => {
    w.u32(p.init.length);
    for (const r of p.init) {
      w.u32(r.offset);
      w.u32(r.bytes.length);
      w.raw(r.bytes);
      w.pad(4);
    }
  });
  section(PlanSection.io, (w) => {
    const { input, logits, output } = p.io;
    if (input.shape.length < 1 || input.shape.length > 4) throw new PlanError(`plan: input rank ${input.shape.length}, expected 1 to 4`, PlanStatus.format);
    writeTensor(w, input);
    w.u32(input.shape.length);
    for (let k = 0; k < 4; k++) w.u32(input.shape[k] ?? 0);
    w.u32(p.io.label);
    w.u32(p.io.classes);
    writeTensor(w, logits);
    w.i32(p.io.metric);
    writeTensor(w, output);
  });
  section(PlanSection.train, (w) => writeCalls(w, p.train, 'TRAIN'));
  section(PlanSection.infer, (w) => writeCalls(w, p.infer, 'INFER'));
  section(PlanSection.regions, (w) => {
    w.u32(p.regions.length);
    for (const r of p.regions) {
      w.u32(RegionKind[r.kind]);
      w.u32(r.offset);
      w.u32(r.bytes);
    }
  });
  // Layout: header, table, then the sections (flash first: the largest,
  // and 16-aligned like every section).
  const w = new Writer(PLAN_HEADER_BYTES + 12 * sections.length + sections.reduce((a, s) => a + s.body.length + ALIGN, 0));
  w.raw(Uint8Array.from(MAGIC));
  w.u32(PLAN_VERSION);
  w.u32(0); // length, below
  w.u32(0); // crc, below
  w.u32(p.arenaBytes);
  w.u32(sections.length);
  w.u32(0);
  w.u32(0);
  const tableAt = w.len;
  for (let i = 0; i < sections.length; i++) {
    w.u32(0);
    w.u32(0);
    w.u32(0);
  }
  sections.forEach((s, i) => {
    w.pad(ALIGN);
    const at = w.len;
    w.raw(s.body);
    w.view.setUint32(tableAt + 12 * i, s.kind, true);
    w.view.setUint32(tableAt + 12 * i + 4, at, true);
    w.view.setUint32(tableAt + 12 * i + 8, s.body.length, true);
  });
  const out = w.bytes.slice(0, w.len);
  const v = new DataView(out.buffer);
  v.setUint32(8, out.length, true);
  v.setUint32(12, crc32(out.subarray(16)), true);
  decodePlan(out); // what we write we can read: the same checks hold
  return out;
}

// Recomputes the CRC of a blob in place (for tests that edit fields).
export function resealPlan(blob: Uint8Array): void {
  const v = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const length = Math.min(v.getUint32(8, true), blob.length);
  v.setUint32(12, crc32(blob.subarray(16, length)), true);
}

// ---- decoding -----------------------------------------------------------------

function hex8(v: number): string {
  return (v >>> 0).toString(16).padStart(8, '0');
}

// Reads and checks a plan blob. arenaCapacity: the arena the caller has
// (default: whatever the plan says). The flash section and the INIT bytes
// are views into blob (nothing large is copied on a device).
export function decodePlan(blob: Uint8Array, arenaCapacity = Infinity, options: DecodeOptions = {}): Plan {
  const keepCalls = options.calls ?? true;
  const fail: (msg: string, status: number, section?: number, index?: number) => never = (msg, status, section = 0, index = -1) => {
    throw new PlanError(`plan: ${msg}`, status, section, index);
  };
  if (blob.length < PLAN_HEADER_BYTES) fail(`${blob.length} bytes is shorter than the ${PLAN_HEADER_BYTES}-byte header (truncated)`, PlanStatus.length);
  const v = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const u32 = (at: number) => v.getUint32(at, true);
  if (MAGIC.some((m, i) => blob[i] !== m)) {
    fail(`the blob starts with 0x${hex8(v.getUint32(0, false))}, not "XSTP": not a plan`, PlanStatus.magic);
  }
  if (u32(4) !== PLAN_VERSION) fail(`format version ${u32(4)}; this runtime reads version ${PLAN_VERSION}: recompile the plan`, PlanStatus.version);
  const length = u32(8);
  if (length < PLAN_HEADER_BYTES || length > blob.length) {
    fail(`the header says ${length} bytes but ${blob.length} were given (truncated or a bad length field)`, PlanStatus.length);
  }
  const crc = crc32(blob.subarray(16, length));
  if (u32(12) !== crc) fail(`CRC mismatch: the header says ${hex8(u32(12))}, the bytes give ${hex8(crc)} (corrupted blob)`, PlanStatus.crc);
  const arenaBytes = u32(16), nsec = u32(20);
  if (u32(24) !== 0 || u32(28) !== 0) fail('reserved header words are not zero', PlanStatus.format);
  if (arenaBytes === 0 || arenaBytes >= FLASH_BASE) fail(`arena size ${arenaBytes} is not in [1, 2^30)`, PlanStatus.format);
  if (arenaBytes > arenaCapacity) {
    fail(`the plan needs an arena of ${arenaBytes} bytes, the arena has ${arenaCapacity}; give it a larger arena or compile a smaller scheme`,
      PlanStatus.arena);
  }
  if (nsec < 1 || nsec > MAX_SECTIONS || PLAN_HEADER_BYTES + 12 * nsec > length) {
    fail(`${nsec} sections in the table (1 to ${MAX_SECTIONS}, inside the blob)`, PlanStatus.format);
  }
  const tableEnd = PLAN_HEADER_BYTES + 12 * nsec;
  const at = new Map<number, { offset: number; bytes: number }>();
  for (let i = 0; i < nsec; i++) {
    const kind = u32(PLAN_HEADER_BYTES + 12 * i), offset = u32(PLAN_HEADER_BYTES + 12 * i + 4), bytes = u32(PLAN_HEADER_BYTES + 12 * i + 8);
    if (kind < 1 || kind > sectionNames.length) fail(`section table entry ${i} has unknown kind ${kind}`, PlanStatus.format, 0, i);
    if (at.has(kind)) fail(`section ${planSectionName(kind)} appears twice`, PlanStatus.format, 0, i);
    if (offset % 4 || offset < tableEnd || offset + bytes > length) {
      fail(`section ${planSectionName(kind)} at [${offset}, ${offset + bytes}) is not 4-aligned inside [${tableEnd}, ${length})`, PlanStatus.format, 0, i);
    }
    for (const [k, s] of at) {
      if (offset < s.offset + s.bytes && s.offset < offset + bytes) {
        fail(`sections ${planSectionName(kind)} and ${planSectionName(k)} overlap`, PlanStatus.format, 0, i);
      }
    }
    at.set(kind, { offset, bytes });
  }
  const body = (kind: number): { offset: number; bytes: number } => {
    const s = at.get(kind);
    if (!s) return fail(`section ${planSectionName(kind)} is missing`, PlanStatus.format, kind);
    return s;
  };
  const inArena = (off: number, n: number) => n > 0 && off + n <= arenaBytes;
  const flashS = body(PlanSection.flash);
  // Views into blob, not copies: on a device the flash section stays in flash.
  const flash = blob.subarray(flashS.offset, flashS.offset + flashS.bytes);

  // INIT
  const initS = body(PlanSection.init);
  const init: PlanInit[] = [];
  {
    const K = PlanSection.init, end = initS.offset + initS.bytes;
    if (initS.bytes < 4) fail('INIT section has no record count', PlanStatus.format, K);
    const count = u32(initS.offset);
    let pos = initS.offset + 4;
    if (count > initS.bytes / 8) fail(`INIT says ${count} records, more than fit its ${initS.bytes} bytes`, PlanStatus.format, K);
    for (let i = 0; i < count; i++) {
      if (end - pos < 8) fail(`INIT record ${i} is cut off`, PlanStatus.format, K, i);
      const off = u32(pos), n = u32(pos + 4), padded = Math.ceil(n / 4) * 4;
      if (padded > end - pos - 8) fail(`INIT record ${i} (${n} bytes) runs past its section`, PlanStatus.format, K, i);
      if (!inArena(off, n)) fail(`INIT record ${i} writes [${off}, ${off + n}) outside the ${arenaBytes}-byte arena`, PlanStatus.bounds, K, i);
      init.push({ offset: off, bytes: blob.subarray(pos + 8, pos + 8 + n) });
      pos += 8 + padded;
    }
    if (pos !== end) fail(`INIT has ${end - pos} bytes after its last record`, PlanStatus.format, K);
  }

  // IO
  const ioS = body(PlanSection.io);
  let io: PlanIo;
  {
    const K = PlanSection.io;
    if (ioS.bytes !== 4 * IO_WORDS) fail(`IO section is ${ioS.bytes} bytes, expected ${4 * IO_WORDS}`, PlanStatus.format, K);
    const w = (k: number) => u32(ioS.offset + 4 * k), i = (k: number) => v.getInt32(ioS.offset + 4 * k, true);
    const f = (k: number) => v.getFloat32(ioS.offset + 4 * k, true);
    const tensor = (k: number): PlanTensor => ({ offset: w(k), bytes: w(k + 1), zeroPoint: i(k + 2), scale: f(k + 3) });
    const rank = w(4);
    if (rank < 1 || rank > 4) fail(`IO input rank ${rank}, expected 1 to 4`, PlanStatus.format, K, 4);
    const shape: number[] = [];
    for (let k = 0; k < 4; k++) {
      const d = w(5 + k);
      if (k < rank ? d < 1 || d > 1 << 24 : d !== 0) fail(`IO input dimension ${k} is ${d}`, PlanStatus.format, K, 5 + k);
      if (k < rank) shape.push(d);
    }
    io = { input: { ...tensor(0), shape }, label: w(9), classes: w(10), logits: tensor(11), metric: i(15), output: tensor(16) };
    if (shape.reduce((a, d) => a * d, 1) !== io.input.bytes) {
      fail(`IO input is ${io.input.bytes} bytes, its shape [${shape}] has ${shape.reduce((a, d) => a * d, 1)} int8 elements`, PlanStatus.format, K, 1);
    }
    for (const [name, t, word] of [['input', io.input, 2], ['logits', io.logits, 13], ['output', io.output, 18]] as const) {
      if (t.zeroPoint < -128 || t.zeroPoint > 127) fail(`IO ${name} zero point ${t.zeroPoint} is not int8`, PlanStatus.format, K, word);
    }
    const range = (name: string, t: { offset: number; bytes: number }, word: number) => {
      if (!inArena(t.offset, t.bytes)) {
        fail(`IO ${name} [${t.offset}, ${t.offset + t.bytes}) is outside the ${arenaBytes}-byte arena`, PlanStatus.bounds, K, word);
      }
    };
    const cell = (name: string, off: number, word: number) => {
      if (off % 4 || !inArena(off, 4)) fail(`IO ${name} cell at ${off} is not a 4-aligned int32 inside the ${arenaBytes}-byte arena`, PlanStatus.bounds, K, word);
    };
    range('input', io.input, 0);
    cell('label', io.label, 9);
    if (io.label < io.input.offset + io.input.bytes && io.input.offset < io.label + 4) fail('IO label cell overlaps the input', PlanStatus.alias, K, 9);
    if (io.classes < 1 || io.classes > 128 || io.logits.bytes !== io.classes) {
      fail(`IO has ${io.classes} classes and ${io.logits.bytes} logit bytes (1 to 128 classes, one byte each)`, PlanStatus.format, K, 10);
    }
    range('logits', io.logits, 11);
    if (io.metric !== -1) cell('metric', io.metric, 15);
    range('output', io.output, 16);
  }

  // TRAIN, INFER
  const calls = (kind: number): { calls: PlanCall[]; count: number } => {
    const s = body(kind), name = planSectionName(kind), end = s.offset + s.bytes;
    if (s.bytes < 4) fail(`${name} section has no op count`, PlanStatus.format, kind);
    const count = u32(s.offset);
    if (count === 0 || count > s.bytes / 8) fail(`${name} says ${count} ops (at least 1, at most what fits ${s.bytes} bytes)`, PlanStatus.format, kind);
    const out: PlanCall[] = [];
    // Every call's args in one buffer (each call a view of its part): a
    // buffer per call cost the XS heap about 3 slots and a chunk header more
    // per call (README, "Memory").
    const all = new Int32Array(keepCalls ? (s.bytes - 4) >> 2 : 0);
    let used = 0;
    let pos = s.offset + 4;
    for (let i = 0; i < count; i++) {
      if (end - pos < 8) fail(`${name} op ${i} is cut off`, PlanStatus.format, kind, i);
      const op = u32(pos), n = u32(pos + 4);
      if (n > MAX_ARGS || 4 * n > end - pos - 8) fail(`${name} op ${i} has ${n} args, more than its section holds`, PlanStatus.format, kind, i);
      const want = opNargs[op as OpId];
      if (want === undefined) fail(`${name} op ${i} has unknown op id ${op}`, 2, kind, i);
      if (n !== want) fail(`${name} op ${i} (${opName[op as OpId]}) has ${n} args, the op takes ${want}`, 1, kind, i);
      if (keepCalls) {
        const args = all.subarray(used, used + n);
        used += n;
        for (let k = 0; k < n; k++) args[k] = v.getInt32(pos + 8 + 4 * k, true);
        out.push({ op: op as OpId, args });
      }
      pos += 8 + 4 * n;
    }
    if (pos !== end) fail(`${name} has ${end - pos} bytes after its last op`, PlanStatus.format, kind);
    return { calls: out, count };
  };
  const train = calls(PlanSection.train), infer = calls(PlanSection.infer);

  // REGIONS
  const regS = body(PlanSection.regions);
  const regions: PlanRegion[] = [];
  {
    const K = PlanSection.regions;
    const count = regS.bytes >= 4 ? u32(regS.offset) : -1;
    if (count < 0 || regS.bytes !== 4 + 12 * count) fail(`REGIONS is ${regS.bytes} bytes for ${count} records of 12`, PlanStatus.format, K);
    for (let i = 0; i < count; i++) {
      const r = regS.offset + 4 + 12 * i;
      const kind = regionKindName(u32(r));
      if (!kind) fail(`REGIONS record ${i} has unknown kind ${u32(r)}`, PlanStatus.format, K, i);
      const offset = u32(r + 4), bytes = u32(r + 8);
      if (!inArena(offset, bytes)) fail(`REGIONS record ${i} [${offset}, ${offset + bytes}) is outside the ${arenaBytes}-byte arena`, PlanStatus.bounds, K, i);
      regions.push({ kind: kind!, offset, bytes });
    }
  }
  return { arenaBytes, flash, init, io, train: train.calls, infer: infer.calls, trainOps: train.count, inferOps: infer.count, regions };
}

export const PLAN_FLASH_BASE = FLASH_BASE;
