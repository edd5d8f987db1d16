// channel_slice_s8 (op 36, native/core/channel_slice_s8.c): the copy of the
// input channels [begin, end) of an activation that a sparse weight update
// keeps (train-graph.ts "save input channels"):
//  - C (Node addon) is bit-identical to the TypeScript reference on random
//    shapes and on MBV2-w0.35-128's saved slices (block 14's 8x8x56 -> 0:7,
//    block 15's 8x8x56 -> 0:28), and leaves its input alone;
//  - Kernels refuses an empty or out-of-bounds range and a wrongly sized
//    output before anything runs; the C refuses an output over its input;
//  - the same calls replay bit-identically on the Cortex-M4F (DSP, portable)
//    and RV32IMC images.
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../src/core/arena.js';
import { KernelArgumentError, Kernels } from '../src/core/kernels.js';
import { Op } from '../src/core/ops.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { Xorshift32 } from '../src/core/rng.js';
import { TraceWriter } from '../src/core/trace.js';
import { NodeDispatch } from '../src/node/addon.js';
import { runTrace } from '../src/node/qemu.js';

interface Case {
  rows: number;
  channels: number;
  begin: number;
  end: number;
}

const rng = new Xorshift32(36);
const cases: Case[] = [
  { rows: 64, channels: 56, begin: 0, end: 7 }, // block14.expand's input, ratio 0.125
  { rows: 64, channels: 56, begin: 0, end: 28 }, // block15.expand's input, ratio 0.5
  { rows: 1, channels: 1, begin: 0, end: 1 },
  { rows: 3, channels: 9, begin: 8, end: 9 },
  ...Array.from({ length: 20 }, () => {
    const channels = rng.int(1, 40), begin = rng.int(0, channels - 1);
    return { rows: rng.int(1, 50), channels, begin, end: rng.int(begin + 1, channels) };
  }),
];

const tensor = (name: string, offset: number, shape: number[]): Tensor =>
  ({ name, dtype: 'int8', shape, offset, bytes: shape.reduce((a, d) => a * d, 1) });

// Input at 0, output right after it: an arena of exactly their bytes.
function layout(c: Case): { input: Tensor; output: Tensor; bytes: number } {
  const input = tensor('x', 0, [c.rows, c.channels]);
  const output = tensor('x[..., b:e]', input.bytes, [c.rows, c.end - c.begin]);
  return { input, output, bytes: input.bytes + output.bytes };
}

describe('channel_slice_s8: C = TypeScript reference', () => {
  it('random shapes and MBV2-128\'s saved slices, bit-identical; the input is left alone', () => {
    for (const c of cases) {
      const { input, output, bytes } = layout(c);
      const data = Uint8Array.from({ length: input.bytes }, () => rng.next() & 0xff);
      const run = (k: Kernels) => {
        k.write(input, data);
        k.channelSlice({ ...c, input, output });
        return { out: Array.from(k.read(output)), x: Array.from(k.read(input)) };
      };
      const cRun = run(new Kernels(new NodeDispatch(new ArrayBuffer(bytes))));
      const ref = run(new Kernels(new ReferenceDispatch(new ArrayBuffer(bytes))));
      expect(cRun.out, JSON.stringify(c)).toEqual(ref.out);
      expect(cRun.x).toEqual(Array.from(data));
      // and the reference is the plain slice
      const want = Array.from({ length: output.bytes }, (_, i) => {
        const n = c.end - c.begin;
        return data[Math.floor(i / n) * c.channels + c.begin + (i % n)]!;
      });
      expect(ref.out, JSON.stringify(c)).toEqual(want);
    }
  });

  it('bad ranges and sizes are refused before the call; the C refuses an output over its input', () => {
    const k = new Kernels(new NodeDispatch(new ArrayBuffer(256)));
    const input = tensor('x', 0, [4, 8]);
    const ok = { rows: 4, channels: 8, begin: 2, end: 5, input, output: tensor('y', 64, [4, 3]) };
    expect(() => k.channelSlice(ok)).not.toThrow();
    expect(() => k.channelSlice({ ...ok, begin: 5 })).toThrow(/channel range \[5, 5\) is not inside \[0, 8\)/);
    expect(() => k.channelSlice({ ...ok, end: 9 })).toThrow(KernelArgumentError);
    expect(() => k.channelSlice({ ...ok, begin: -1 })).toThrow(KernelArgumentError);
    expect(() => k.channelSlice({ ...ok, output: tensor('y', 64, [4, 4]) })).toThrow(/output tensor "y" is int8\[4x4\] \(16 bytes\), expected int8\[4x3\]/);
    expect(() => k.channelSlice({ ...ok, output: tensor('y', 16, [4, 3]) })).toThrow(/overlaps/);
  });
});

describe('channel_slice_s8 on the Cortex-M4F and RV32IMC images', () => {
  // Every case in one trace: each in its own arena (ARENA zeroes it), read back.
  const trace = new TraceWriter();
  const expected: number[][] = [];
  for (const c of cases) {
    const { input, output, bytes } = layout(c);
    const data = Uint8Array.from({ length: input.bytes }, () => rng.next() & 0xff);
    const ref = new Kernels(new ReferenceDispatch(new ArrayBuffer(bytes)));
    ref.write(input, data);
    ref.channelSlice({ ...c, input, output });
    expected.push(Array.from(ref.read(output)));
    trace.arena(bytes).write(input.offset, data).call(Op.ChannelSlice, [c.rows, c.channels, c.begin, c.end, input.offset, output.offset])
      .read(output.offset, output.bytes);
  }
  const bytes = trace.end();
  for (const target of ['cortex-m4', 'cortex-m4-portable', 'rv32'] as const) {
    it(`${target}: ${cases.length} cases bit-identical`, async () => {
      const r = await runTrace(target, bytes);
      expect(r.parsed.errors).toEqual([]);
      expect(r.exitCode).toBe(0);
      expect(r.parsed.calls.map((c) => c.status)).toEqual(cases.map(() => 0));
      expect(r.parsed.reads.map((x) => Array.from(new Int8Array(x.bytes.buffer, x.bytes.byteOffset, x.bytes.length)).map((v) => v & 0xff)))
        .toEqual(expected);
    }, 60_000);
  }
});
