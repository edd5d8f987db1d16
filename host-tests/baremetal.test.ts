// The C core as bare-metal images under QEMU (Cortex-M4F, RV32IMC): traces
// written in TypeScript, replayed on the images, results parsed back.
// Needs `npm run build:baremetal` (the cross toolchains and QEMU).
import { describe, it, expect } from 'vitest';

import { parseTraceOutput, TraceWriter, TRACE_EXIT } from '../src/core/trace.js';
import { runTrace, type BaremetalTarget } from '../src/node/qemu.js';

const TARGETS: BaremetalTarget[] = ['cortex-m4', 'rv32'];
const OP_ACTIVATION_BACKWARD = 8;
const XST_ERR_BOUNDS = 5;
const TIMEOUT = 60_000;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Deterministic pseudo-random bytes (xorshift32). */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

/** activation backward in TypeScript: grad[k] = 0 where mask bit k is clear. */
function activationBackward(mask: Uint8Array, grad: Uint8Array, n: number): Uint8Array {
  const out = grad.slice(0, n);
  for (let k = 0; k < n; k++) if (((mask[k >> 3]! >> (k & 7)) & 1) === 0) out[k] = 0;
  return out;
}

describe('trace format (no QEMU)', () => {
  it('encodes records as little-endian words', () => {
    const t = new TraceWriter(16)
      .arena(64)
      .write(8, new Uint8Array([1, 2, 3, 4, 5]))
      .call(8, [3, -1, 16])
      .crc(0, 4)
      .read(4, 2)
      .end();
    const w = Array.from(new Uint32Array(t.buffer, t.byteOffset, t.length / 4));
    expect(w).toEqual([
      1, 1, 64,
      2, 4, 8, 5, 0x04030201, 0x05,
      3, 5, 8, 3, 3, 0xffffffff, 16,
      4, 2, 0, 4,
      5, 2, 4, 2,
      0, 0,
    ]);
  });

  it('rejects values that do not fit a word', () => {
    expect(() => new TraceWriter().arena(-1)).toThrow(RangeError);
    expect(() => new TraceWriter().call(8, [2 ** 31])).toThrow(RangeError);
    expect(() => new TraceWriter().crc(1.5, 1)).toThrow(RangeError);
  });

  it('parses result lines and ignores others', () => {
    const p = parseTraceOutput(
      'info counter minstret-icount-shift0 overhead 8 arena-capacity 204800\n' +
        'call 0 8 10916 0\r\ncrc 16 5 3610a686\nread 4 00ff10\nqemu: something\n' +
        'call 1 8 88 5\nerror call 1 op 8 returned status 5 (tensor outside the arena)\n',
    );
    expect(p.calls).toEqual([
      { index: 0, op: 8, instructions: 10916, status: 0 },
      { index: 1, op: 8, instructions: 88, status: 5 },
    ]);
    expect(p.crcs).toEqual([{ offset: 16, nbytes: 5, crc: 0x3610a686 }]);
    expect(p.reads).toEqual([{ offset: 4, bytes: new Uint8Array([0, 0xff, 0x10]) }]);
    expect(p.done).toBe(false);
    expect(p.errors).toEqual(['call 1 op 8 returned status 5 (tensor outside the arena)']);
    expect(p.overhead).toBe(8);
    expect(p.counter).toBe('minstret-icount-shift0');
  });
});

for (const target of TARGETS) {
  describe(`bare-metal ${target}`, () => {
    it('WRITE then CRC and READ give back the written bytes', async () => {
      const data = bytes(1001, 7);
      const trace = new TraceWriter()
        .arena(4096)
        .write(100, data)
        .crc(100, data.length)
        .read(100, data.length)
        .read(4000, 8) // never written: zeroed by ARENA
        .end();
      const r = await runTrace(target, trace);
      expect(r.parsed.errors).toEqual([]);
      expect(r.exitCode).toBe(TRACE_EXIT.done);
      expect(r.parsed.done).toBe(true);
      expect(r.parsed.crcs).toEqual([{ offset: 100, nbytes: 1001, crc: crc32(data) }]);
      expect(r.parsed.reads).toEqual([
        { offset: 100, bytes: data },
        { offset: 4000, bytes: new Uint8Array(8) },
      ]);
    }, TIMEOUT);

    it('op 8 (activation backward) zeroes the gradients the mask clears', async () => {
      const n = 1024;
      const mask = bytes(n / 8, 11);
      const grad = bytes(n, 12);
      const trace = new TraceWriter()
        .arena(8192)
        .write(0, mask)
        .write(1024, grad)
        .call(OP_ACTIVATION_BACKWARD, [n, 0, 1024])
        .read(1024, n)
        .crc(1024, n)
        .end();
      const r = await runTrace(target, trace);
      expect(r.parsed.errors).toEqual([]);
      expect(r.exitCode).toBe(0);
      const want = activationBackward(mask, grad, n);
      expect(r.parsed.reads[0]?.bytes).toEqual(want);
      expect(r.parsed.crcs[0]?.crc).toBe(crc32(want));
      expect(r.parsed.calls).toHaveLength(1);
      expect(r.parsed.calls[0]).toMatchObject({ index: 0, op: 8, status: 0 });
      expect(r.parsed.calls[0]!.instructions).toBeGreaterThan(n);
    }, TIMEOUT);

    it('counts instructions exactly and identically run to run', async () => {
      const w = new TraceWriter().arena(4096).write(0, new Uint8Array(128).fill(0xff));
      w.write(1024, bytes(1024, 3));
      // All mask bits set: every element costs the same, so the counts for
      // n = 1, 2, 3, 4 step by one constant if the counter resolves single
      // instructions.
      for (const n of [1, 2, 3, 4, 1024, 1]) w.call(OP_ACTIVATION_BACKWARD, [n, 0, 1024]);
      const trace = w.end();
      const a = await runTrace(target, trace);
      const b = await runTrace(target, trace);
      expect(a.exitCode).toBe(0);
      expect(b.exitCode).toBe(0);
      expect(a.parsed.calls).toHaveLength(6);
      expect(b.parsed.calls).toEqual(a.parsed.calls);
      expect(b.parsed.overhead).toBe(a.parsed.overhead);
      // The measurement overhead subtracted is a small constant.
      expect(a.parsed.overhead).toBeGreaterThan(0);
      expect(a.parsed.overhead).toBeLessThan(64);
      const c = a.parsed.calls.map((x) => x.instructions);
      const step = c[1]! - c[0]!;
      expect(step).toBeGreaterThan(0);
      expect(c[2]! - c[1]!).toBe(step);
      expect(c[3]! - c[2]!).toBe(step);
      // Same call, same count, wherever it sits in the trace.
      expect(c[5]).toBe(c[0]);
      expect(c[4]).toBeGreaterThan(c[3]!);
    }, TIMEOUT);

    it('an out-of-bounds WRITE is an error and a nonzero exit', async () => {
      const trace = new TraceWriter().arena(64).write(62, new Uint8Array(4)).end();
      const r = await runTrace(target, trace);
      expect(r.exitCode).toBe(TRACE_EXIT.badTrace);
      expect(r.parsed.done).toBe(false);
      expect(r.parsed.errors).toHaveLength(1);
      expect(r.parsed.errors[0]).toMatch(/WRITE out of bounds/);
    }, TIMEOUT);

    it('an out-of-bounds CALL is a kernel error status and exit 2', async () => {
      // n = 1024 gradient bytes at offset 16 of a 64-byte arena.
      const trace = new TraceWriter()
        .arena(64)
        .call(OP_ACTIVATION_BACKWARD, [1024, 0, 16])
        .crc(0, 4)
        .end();
      const r = await runTrace(target, trace);
      expect(r.exitCode).toBe(TRACE_EXIT.kernelStatus);
      expect(r.parsed.calls).toEqual([
        expect.objectContaining({ index: 0, op: 8, status: XST_ERR_BOUNDS }),
      ]);
      expect(r.parsed.crcs).toEqual([]);
      expect(r.parsed.done).toBe(false);
      expect(r.parsed.errors).toHaveLength(1);
    }, TIMEOUT);

    it('a malformed trace is exit 3', async () => {
      const good = new TraceWriter().arena(64).write(0, new Uint8Array(16)).end();
      const truncated = good.slice(0, good.length - 12); // inside the WRITE, no END
      const r = await runTrace(target, truncated);
      expect(r.exitCode).toBe(TRACE_EXIT.badTrace);
      expect(r.parsed.errors[0]).toMatch(/truncated/);
    }, TIMEOUT);
  });
}
