// The row-tiled forward (src/core/tiled-block.ts) against the untiled
// forward runner, bit for bit, on the C kernels:
//  - every inverted-residual block of the seeded MobileNetV2-w0.35 at 128x128
//    and at 32x32 (expansion + ReLU6, depthwise stride 1 and 2 + ReLU6,
//    projection, residual add), at band heights 1, 2, 3, 5, 7 and whole,
//    output and the ReLU masks of every band;
//  - chains across blocks (stem + block 0, stem + blocks 0-1): halos grow
//    through several windows;
//  - the same segments with the output overlapping the input (inPlaceShift,
//    bands in order and in reverse),
//    and the in-place depthwise;
//  - a control: bands that treat their edges as image borders (no halo) do
//    not match, so the comparison sees halo errors;
//  - on the XS engine (compiled core, xsmc glue): every block of the 32x32
//    network tiled in place in reverse band order equals the untiled forward.
import { describe, expect, it } from 'vitest';
import { buildMobileNetV2 } from '../src/compiler/arch/mobilenetv2.js';
import type { Tensor } from '../src/core/arena.js';
import type { Graph } from '../src/core/graph.js';
import { Kernels } from '../src/core/kernels.js';
import type { ForwardCall } from '../src/core/lowering.js';
import { Xorshift32 } from '../src/core/rng.js';
import { ForwardRunner } from '../src/core/runner.js';
import {
  type BandOrder, inPlaceBytes, inPlaceShift, planSegment, SegmentError, type SegmentShape, segmentFromGraph, TiledSegment,
} from '../src/core/tiled-block.js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeGraph } from '../src/core/graph-blob.js';
import { NodeDispatch, repoRoot } from '../src/node/addon.js';

const EXTRA = 1 << 20; // test region after the runner's activations

interface Model {
  g: Graph;
  runner: ForwardRunner;
  k: Kernels;
  dispatch: NodeDispatch;
  groups: Map<string, number[]>; // "stem", "block3" -> graph op positions
}

function model(resolution: number): Model {
  const g = buildMobileNetV2({ width: 0.35, resolution, classes: 10, seed: 1 });
  const runner = new ForwardRunner(g, { arenaCapacity: 1 << 20, flashCapacity: 1 << 20 });
  const dispatch = new NodeDispatch(new ArrayBuffer(runner.arenaBytes + EXTRA), new ArrayBuffer(runner.flashBytes));
  const k = new Kernels(dispatch);
  runner.load(k);
  const rng = new Xorshift32(resolution);
  const input = Uint8Array.from({ length: runner.input.bytes }, () => rng.int(-128, 127) & 0xff);
  runner.writeInput(k, input);
  const groups = new Map<string, number[]>();
  g.ops.forEach((op, p) => {
    const m = /^(stem|block\d+)\./.exec(g.tensors[op.outputs[0]!]!.name);
    if (m) groups.set(m[1]!, [...(groups.get(m[1]!) ?? []), p]);
  });
  return { g, runner, k, dispatch, groups };
}

// A bump allocator in the test region.
class Region {
  private top: number;
  constructor(private readonly m: Model) {
    this.top = Math.ceil(m.runner.arenaBytes / 16) * 16;
  }
  alloc(name: string, bytes: number, fill = 0xa5, dtype: 'int8' | 'uint8' = 'int8'): Tensor {
    const t: Tensor = { name, dtype, shape: [bytes], offset: this.top, bytes };
    this.top = Math.ceil((this.top + bytes) / 16) * 16;
    if (this.top > this.m.runner.arenaBytes + EXTRA) throw new Error('test region full');
    this.m.k.write(t, new Uint8Array(bytes).fill(fill));
    return t;
  }
}

const maskBytes = (t: Tensor) => Math.ceil(t.bytes / 8);

// Runs the model's steps up to (not including) position p.
function runTo(m: Model, state: { next: number }, p: number): void {
  for (; state.next < p; state.next++) m.runner.steps[state.next]!.run(m.k);
}

interface Expected {
  inputs: Map<number, Uint8Array>; // graph tensor -> bytes
  output: Uint8Array;
  masks: (Uint8Array | null)[]; // per position
}

// The untiled forward of the positions, each relu op writing its mask
// (whole tensors, the runner's own buffers), from the runner's state.
function untiled(m: Model, state: { next: number }, positions: number[]): Expected {
  runTo(m, state, positions[0]!);
  const produced = new Set(positions.map((p) => m.g.ops[p]!.outputs[0]!));
  const inputs = new Map<number, Uint8Array>();
  for (const p of positions) {
    for (const t of m.g.ops[p]!.inputs) {
      if (t >= 0 && !m.g.tensors[t]!.data && !produced.has(t)) inputs.set(t, m.k.read(m.runner.tensors[t]!));
    }
  }
  const region = new Region(m);
  const masks = positions.map((p) => {
    const call = m.runner.steps[p]!.call!;
    const op = m.g.ops[p]!;
    const mask = 'activation' in op && op.activation !== 'none' ? region.alloc(`mask${p}`, maskBytes(m.runner.tensors[op.outputs[0]!]!), 0xa5, 'uint8') : null;
    runCall(m.k, { ...call, args: { ...call.args, mask } } as ForwardCall);
    return mask ? m.k.read(mask) : null;
  });
  state.next = positions.at(-1)! + 1;
  return { inputs, output: m.k.read(m.runner.tensors[m.g.ops[positions.at(-1)!]!.outputs[0]!]!), masks };
}

function runCall(k: Kernels, c: ForwardCall): void {
  if (c.kind === 'conv2d') k.conv2dForward(c.args);
  else if (c.kind === 'depthwise_conv2d') k.depthwiseConv2dForward(c.args);
  else k.addForward(c.args);
}

interface TiledRun {
  output: Uint8Array;
  masks: (Uint8Array | null)[];
  scratchBytes: number;
  lag: number;
}

// The tiled forward of the positions on copies of their inputs in the test
// region; `inPlace`: the output overlaps the first input (shifted by the lag).
function tiled(m: Model, positions: number[], bandRows: number, exp: Expected, inPlace: boolean, order: BandOrder = 'forward'): TiledRun {
  const masksAt = new Set(positions.filter((p) => { const op = m.g.ops[p]!; return 'activation' in op && op.activation !== 'none'; }));
  const shape = segmentFromGraph(m.g, positions, { masks: masksAt });
  const plan = planSegment(shape, bandRows);
  const region = new Region(m);
  const graphTensorOf = (v: number) => m.g.tensors.findIndex((t) => t.name === shape.values[v]!.name);
  const firstInput = shape.values.findIndex((v, i) => v.external && i !== shape.output);
  const lag = inPlace ? inPlaceShift(shape, plan, firstInput, order) : 0;
  const bytes = (v: number) => shape.values[v]!.h * shape.values[v]!.w * shape.values[v]!.c;
  const tensors: (Tensor | null)[] = shape.values.map(() => null);
  if (inPlace) {
    const union = region.alloc('in-place', inPlaceBytes(shape, firstInput, lag));
    tensors[shape.output] = { ...union, name: 'output', offset: union.offset + Math.max(0, -lag), bytes: bytes(shape.output) };
    tensors[firstInput] = { ...union, name: 'input', offset: union.offset + Math.max(0, lag), bytes: bytes(firstInput) };
  }
  shape.values.forEach((v, i) => {
    if (!v.external || tensors[i]) return;
    tensors[i] = { ...region.alloc(v.name, bytes(i)), name: v.name };
  });
  shape.values.forEach((v, i) => {
    if (!v.external || i === shape.output) return;
    m.k.write(tensors[i]!, exp.inputs.get(graphTensorOf(i))!);
  });
  const scratch = plan.scratchBytes ? region.alloc('scratch', plan.scratchBytes) : null;
  const masks = positions.map((p, s) => (masksAt.has(p) ? region.alloc(`mask${p}`, exp.masks[s]!.length, 0x5a, 'uint8') : null));
  const calls = positions.map((p, s) => {
    const c = m.runner.steps[p]!.call!;
    return { ...c, args: { ...c.args, mask: masks[s] } } as ForwardCall;
  });
  new TiledSegment(shape, plan, { tensors, calls, scratch, order }).run(m.k);
  return { output: m.k.read(tensors[shape.output]!), masks: masks.map((t) => (t ? m.k.read(t) : null)), scratchBytes: plan.scratchBytes, lag };
}

function expectSame(what: string, exp: Expected, got: TiledRun): void {
  const diff = (a: Uint8Array, b: Uint8Array) => a.findIndex((x, i) => x !== b[i]);
  expect(got.output.length, `${what}: output bytes`).toBe(exp.output.length);
  expect(diff(exp.output, got.output), `${what}: first output byte that differs`).toBe(-1);
  exp.masks.forEach((mk, s) => {
    if (mk) expect(diff(mk, got.masks[s]!), `${what}: first mask byte that differs (step ${s})`).toBe(-1);
  });
}

const BANDS = [1, 2, 3, 5, 7, 1 << 20];

describe.each([128, 32])('MobileNetV2-w0.35 at %i pixels square: tiled blocks are bit-identical to the untiled forward', (resolution) => {
  const m = model(resolution);
  const state = { next: 0 };
  const blocks = [...m.groups.keys()].filter((n) => n !== 'stem');

  it('every block (expansion, depthwise stride 1 and 2, projection, residual add), bands of 1, 2, 3, 5, 7 rows and whole, masks included; in place too', () => {
    const seen = { stride2: 0, residual: 0, inPlaceSaved: 0 };
    for (const name of blocks) {
      const positions = m.groups.get(name)!;
      const exp = untiled(m, state, positions);
      if (positions.some((p) => m.g.ops[p]!.kind === 'add')) seen.residual++;
      if (positions.some((p) => { const op = m.g.ops[p]!; return op.kind === 'depthwise_conv2d' && op.strideH === 2; })) seen.stride2++;
      for (const B of BANDS) {
        expectSame(`${name} band ${B}`, exp, tiled(m, positions, B, exp, false));
        const ip = tiled(m, positions, B, exp, true);
        expectSame(`${name} band ${B} in place (shift ${ip.lag})`, exp, ip);
        const rev = tiled(m, positions, B, exp, true, 'reverse');
        expectSame(`${name} band ${B} in place, bands in reverse (shift ${rev.lag})`, exp, rev);
        expectSame(`${name} band ${B} bands in reverse`, exp, tiled(m, positions, B, exp, false, 'reverse'));
      }
    }
    expect(seen.residual).toBe(10);
    expect(seen.stride2).toBe(4);
    void seen.inPlaceSaved;
  });
});

describe('chains across blocks and the in-place depthwise (128x128)', () => {
  const m = model(128);

  it('stem + block 0 and stem + blocks 0-1 as one segment: halos through 3 and 5 windows', () => {
    const stem = m.groups.get('stem')!, b0 = m.groups.get('block0')!, b1 = m.groups.get('block1')!;
    for (const positions of [[...stem, ...b0], [...stem, ...b0, ...b1]]) {
      const state = { next: 0 };
      const exp = untiled(m, state, positions);
      for (const B of [1, 2, 3, 5]) {
        expectSame(`chain of ${positions.length} band ${B}`, exp, tiled(m, positions, B, exp, false));
        expectSame(`chain of ${positions.length} band ${B} in place`, exp, tiled(m, positions, B, exp, true));
        expectSame(`chain of ${positions.length} band ${B} in place, reverse`, exp, tiled(m, positions, B, exp, true, 'reverse'));
      }
    }
  });

  it('the in-place depthwise: one row band at a time, output two input rows below the input (stride 1), half a row (stride 2); in reverse, above', () => {
    for (const name of ['block0', 'block1', 'block2']) {
      const dw = m.groups.get(name)!.find((p) => m.g.ops[p]!.kind === 'depthwise_conv2d')!;
      const state = { next: 0 };
      const exp = untiled(m, state, [dw]);
      const got = tiled(m, [dw], 1, exp, true);
      expectSame(`${name} depthwise in place`, exp, got);
      const shape = segmentFromGraph(m.g, [dw]);
      const x = shape.values[0]!, rowBytes = x.w * x.c;
      const stride = (m.g.ops[dw] as { strideH: number }).strideH;
      expect(got.lag).toBe(stride === 1 ? 2 * rowBytes : rowBytes / 2);
      expect(got.scratchBytes).toBe(0); // nothing banded: no line buffer, no copy
      const rev = tiled(m, [dw], 1, exp, true, 'reverse');
      expectSame(`${name} depthwise in place, reverse`, exp, rev);
      // Reverse: the output starts two input rows above the input (stride 1); at stride 2 its last
      // row must clear the whole input (the last band reads the input's last row), so the
      // shrinking depthwise wants the forward order.
      const y = shape.values[shape.output]!;
      expect(rev.lag).toBe(stride === 1 ? -2 * rowBytes : (y.h - 1) * y.w * y.c - x.h * rowBytes);
    }
  });

  it('a value read outside the segment (keep) is written whole, band by band, and the output still matches', () => {
    const positions = m.groups.get('block2')!;
    const expandOut = m.g.ops[positions[0]!]!.outputs[0]!;
    const state = { next: 0 };
    runTo(m, state, positions[0]! + 1);
    const expanded = m.k.read(m.runner.tensors[expandOut]!);
    const exp = untiled(m, { next: positions[0]! }, positions);
    const shape = segmentFromGraph(m.g, positions, { keep: new Set([expandOut]) });
    const kept = shape.values.findIndex((v) => v.tensor === expandOut);
    expect(shape.values[kept]!.external).toBe(true);
    for (const B of [1, 3, 7]) {
      const plan = planSegment(shape, B);
      const region = new Region(m);
      const tensors = shape.values.map((v) => (v.external ? region.alloc(v.name, v.h * v.w * v.c) : null));
      const input = shape.values.findIndex((v) => v.tensor === m.g.ops[positions[0]!]!.inputs[0]);
      m.k.write(tensors[input]!, exp.inputs.get(m.g.ops[positions[0]!]!.inputs[0]!)!);
      const calls = positions.map((p) => m.runner.steps[p]!.call!);
      new TiledSegment(shape, plan, { tensors, calls, scratch: plan.scratchBytes ? region.alloc('scratch', plan.scratchBytes) : null }).run(m.k);
      expect(Array.from(m.k.read(tensors[kept]!)), `band ${B}: kept expansion`).toEqual(Array.from(expanded));
      expect(Array.from(m.k.read(tensors[shape.output]!)), `band ${B}: output`).toEqual(Array.from(exp.output));
    }
  });

  it('control: bands computed as separate images (edges padded, no halo rows) do not match', () => {
    // What a tiling without halos would do: each band of 4 rows through
    // expansion, depthwise (its own top/bottom pad), projection and add.
    const positions = m.groups.get('block2')!;
    const state = { next: 0 };
    const exp = untiled(m, state, positions);
    const calls = positions.map((p) => m.runner.steps[p]!.call!);
    const [expand, dw, project, add] = calls as [Extract<ForwardCall, { kind: 'conv2d' }>, Extract<ForwardCall, { kind: 'depthwise_conv2d' }>,
      Extract<ForwardCall, { kind: 'conv2d' }>, Extract<ForwardCall, { kind: 'add' }>];
    const region = new Region(m);
    const x = region.alloc('x', expand.args.input.bytes), y = region.alloc('y', add.args.output.bytes);
    m.k.write(x, [...exp.inputs.values()][0]!);
    const W = dw.args.inW, C = dw.args.inC, Cin = expand.args.inC, Cout = project.args.outC, R = 4;
    const e = region.alloc('e', R * W * C), d = region.alloc('d', R * W * C), p = region.alloc('p', R * W * Cout);
    const rows = (t: Tensor, a: number, n: number, c: number): Tensor => ({ ...t, shape: [1, n, W, c], offset: t.offset + a * W * c, bytes: n * W * c });
    for (let a = 0; a < dw.args.inH; a += R) {
      const n = Math.min(R, dw.args.inH - a);
      m.k.conv2dForward({ ...expand.args, inH: n, outH: n, input: rows(x, a, n, Cin), output: rows(e, 0, n, C) });
      m.k.depthwiseConv2dForward({ ...dw.args, inH: n, outH: n, input: rows(e, 0, n, C), output: rows(d, 0, n, C) });
      m.k.conv2dForward({ ...project.args, inH: n, outH: n, input: rows(d, 0, n, C), output: rows(p, 0, n, Cout) });
      m.k.addForward({ ...add.args, n: n * W * Cout, input1: rows(x, a, n, Cin), input2: rows(p, 0, n, Cout), output: rows(y, a, n, Cout) });
    }
    const got = m.k.read(y);
    const differ = got.reduce((acc, v, i) => acc + (v !== exp.output[i] ? 1 : 0), 0);
    expect(differ).toBeGreaterThan(0);
    // Only rows next to a band edge can differ.
    for (let i = 0; i < got.length; i++) {
      if (got[i] === exp.output[i]) continue;
      const r = Math.floor(i / (W * Cout));
      expect(r % R === 0 || r % R === R - 1, `row ${r}`).toBe(true);
    }
  });
});

describe('band plans', () => {
  const g = buildMobileNetV2({ width: 0.35, resolution: 128, classes: 10, seed: 1 });
  const groups = new Map<string, number[]>();
  g.ops.forEach((op, p) => {
    const m = /^(stem|block\d+)\./.exec(g.tensors[op.outputs[0]!]!.name);
    if (m) groups.set(m[1]!, [...(groups.get(m[1]!) ?? []), p]);
  });

  it('block 1 (8 -> 48 -> stride-2 depthwise -> 8 at 64x64): the band buffers and the recomputed rows, by hand', () => {
    const shape: SegmentShape = segmentFromGraph(g, groups.get('block1')!);
    // One output row: 3 expansion rows (64 x 48) and 1 depthwise row (32 x 48), both live at the depthwise.
    const p1 = planSegment(shape, 1);
    expect(p1.scratchBytes).toBe(3 * 64 * 48 + 32 * 48);
    expect(p1.bands.length).toBe(32);
    // Rows 2r, 2r+1, 2r+2 of the expansion per output row r (top pad 0; the last band has the bottom pad).
    expect(p1.bands[5]!.rows[shape.steps[0]!.output]).toEqual([10, 13]);
    expect(p1.bands[31]!.rows[shape.steps[0]!.output]).toEqual([62, 64]);
    // Expansion MACs: 32 bands x 3 rows instead of 64 rows; depthwise and projection unchanged.
    const expand = 64 * 48 * 8, dw = 32 * 48 * 9, project = 32 * 8 * 48;
    expect(p1.untiledMacs).toBe(64 * expand + 32 * dw + 32 * project);
    expect(p1.macs).toBe((32 * 3 - 1) * expand + 32 * dw + 32 * project);
    const p4 = planSegment(shape, 4);
    expect(p4.scratchBytes).toBe(9 * 64 * 48 + 4 * 32 * 48);
  });

  it('refuses masks that do not start on a byte and a band height below 1', () => {
    const shape = segmentFromGraph(g, groups.get('block1')!, { masks: new Set(groups.get('block1')!.slice(0, 1)) });
    const odd: SegmentShape = { ...shape, values: shape.values.map((v) => (v.c === 48 ? { ...v, w: 63, c: 47 } : v)) };
    expect(() => planSegment(odd, 2)).toThrow(SegmentError);
    expect(() => planSegment(odd, 2)).toThrow('do not start on mask bytes');
    expect(planSegment(odd, 1 << 20).bands.length).toBe(1); // one band: any mask works
    expect(() => planSegment(shape, 0)).toThrow('band height 0 must be a positive integer');
  });
});

describe('on the XS engine', () => {
  it('every block of MBV2-w0.35 at 32x32 in 2-row bands, in place in reverse order, equals the runner (host-tests/fixtures/xs/tiled.js)', () => {
    const xs = join(repoRoot, 'out', 'xs', 'xst-xs'), core = join(repoRoot, 'out', 'ts', 'core', 'tiled-block.js');
    if (!existsSync(xs) || !existsSync(core)) throw new Error('XS host or compiled TypeScript missing: run npm run build:ts and npm run build:xs');
    const g = buildMobileNetV2({ width: 0.35, resolution: 32, classes: 10, seed: 1 });
    const dir = mkdtempSync(join(tmpdir(), 'xstrain-tiled-'));
    try {
      writeFileSync(join(dir, 'g.bin'), encodeGraph(g));
      const run = spawnSync(xs, [join(repoRoot, 'host-tests', 'fixtures', 'xs', 'tiled.js'), join(dir, 'g.bin')], { encoding: 'utf8', timeout: 60_000 });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const lines = run.stdout.trim().split('\n');
      expect(lines.filter((l) => l.endsWith(' same'))).toHaveLength(17);
      // The logits after the runner's own steps, as on Node.
      const runner = new ForwardRunner(g);
      const k = new Kernels(new NodeDispatch(new ArrayBuffer(runner.arenaBytes), new ArrayBuffer(runner.flashBytes)));
      runner.load(k);
      const input = Uint8Array.from({ length: runner.input.bytes }, (_, i) => (i * 37) & 0xff);
      expect(lines.at(-1)).toBe(`logits ${Array.from(runner.run(k, input)).join(',')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
