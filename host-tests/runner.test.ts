// The forward runner on the ops no bundled model uses (ADD with a residual
// connection, MEAN, average pooling with stride, FC over a flattened map):
// a small graph built here, checked layer by layer against float64 math and
// the TypeScript reference, and run on XS and the bare-metal images. Plus
// the runner's own refusals.
import { describe, expect, it } from 'vitest';
import type { Graph, GraphTensor } from '../src/core/graph.js';
import { decodeGraph, encodeGraph } from '../src/core/graph-blob.js';
import { Xorshift32 } from '../src/core/rng.js';
import { ForwardRunner } from '../src/core/runner.js';
import { inferBaremetal, inferXs } from '../src/node/infer.js';
import { checkLayers, kernelsFor } from './support/model-check.js';

const rng = new Xorshift32(99);
const q = (scale: number | number[], zp: number | number[], axis = 0) => ({
  scale: Array.isArray(scale) ? scale : [scale], zeroPoint: Array.isArray(zp) ? zp : [zp], axis,
});
const int8s = (n: number, lo = -127, hi = 127) => Uint8Array.from({ length: n }, () => rng.int(lo, hi) & 0xff);
const int32s = (n: number, lo: number, hi: number) => new Uint8Array(Int32Array.from({ length: n }, () => rng.int(lo, hi)).buffer);
const act = (name: string, shape: number[], scale: number, zp: number): GraphTensor =>
  ({ name, dtype: 'int8', shape, quant: q(scale, zp), data: null });

function residualGraph(): Graph {
  const convScales = [0.011, 0.007, 0.013, 0.009];
  const tensors: GraphTensor[] = [
    act('x', [1, 6, 6, 4], 0.05, -3), // 0
    { name: 'conv.w', dtype: 'int8', shape: [4, 3, 3, 4], quant: q(convScales, [0, 0, 0, 0], 0), data: int8s(144) }, // 1
    { name: 'conv.b', dtype: 'int32', shape: [4], quant: q(convScales.map((s) => s * 0.05), [0, 0, 0, 0]), data: int32s(4, -400, 400) }, // 2
    act('conv.y', [1, 6, 6, 4], 0.04, -128), // 3
    act('add.y', [1, 6, 6, 4], 0.06, -100), // 4
    act('pool.y', [1, 3, 3, 4], 0.06, -100), // 5
    { name: 'mean.axes', dtype: 'int32', shape: [2], quant: null, data: new Uint8Array(Int32Array.of(1, 2).buffer) }, // 6
    act('mean.y', [1, 1, 1, 4], 0.03, 5), // 7
    { name: 'flat.shape', dtype: 'int32', shape: [2], quant: null, data: new Uint8Array(Int32Array.of(1, 4).buffer) }, // 8
    act('flat.y', [1, 4], 0.03, 5), // 9
    { name: 'fc.w', dtype: 'int8', shape: [3, 4], quant: q(0.02, 0), data: int8s(12) }, // 10
    { name: 'fc.b', dtype: 'int32', shape: [3], quant: q(0.0006, 0), data: int32s(3, -50, 50) }, // 11
    act('logits', [1, 3], 0.01, 0), // 12
    act('probs', [1, 3], 1 / 256, -128), // 13
  ];
  return {
    name: 'residual', tensors, inputs: [0], outputs: [13],
    ops: [
      { index: 0, kind: 'conv2d', inputs: [0, 1, 2], outputs: [3], padding: 'same', strideH: 1, strideW: 1, dilationH: 1, dilationW: 1, activation: 'relu' },
      { index: 1, kind: 'add', inputs: [0, 3], outputs: [4], activation: 'relu6' },
      { index: 2, kind: 'average_pool2d', inputs: [4], outputs: [5], padding: 'valid', strideH: 2, strideW: 2, filterH: 2, filterW: 2, activation: 'none' },
      { index: 3, kind: 'mean', inputs: [5, 6], outputs: [7], keepDims: true },
      { index: 4, kind: 'reshape', inputs: [7, 8], outputs: [9] },
      { index: 5, kind: 'fully_connected', inputs: [9, 10, 11], outputs: [12], activation: 'none', keepNumDims: false },
      { index: 6, kind: 'softmax', inputs: [12], outputs: [13], beta: 1 },
    ],
  };
}

describe('forward runner on a residual graph', () => {
  const graph = residualGraph();
  const runner = new ForwardRunner(graph);
  const inputs = Array.from({ length: 3 }, () => int8s(144, -128, 127));

  it('places the two live 144-byte maps of the residual apart and reuses dead ones', () => {
    const x = runner.tensors[0]!, conv = runner.tensors[3]!, add = runner.tensors[4]!;
    expect(x.offset + x.bytes <= conv.offset || conv.offset + conv.bytes <= x.offset).toBe(true); // both live at the add
    expect(runner.tensors[9]!.offset).toBe(runner.tensors[7]!.offset); // reshape aliases
    expect(runner.arenaBytes).toBeLessThan(3 * 160); // not one buffer per tensor
    expect(add.bytes).toBe(144);
  });

  it('every layer is within 1 LSB of float64 math and C equals the TypeScript reference', () => {
    const { outputs, off } = checkLayers(graph, runner, inputs);
    expect(outputs).toBeGreaterThan(3 * 300);
    expect(off / outputs).toBeLessThan(0.05);
  });

  it('the model blob round-trips, and XS, Cortex-M4F and RV32 give the Node outputs', async () => {
    expect(decodeGraph(encodeGraph(graph))).toEqual(graph);
    const k = kernelsFor(runner, 'c');
    for (const input of inputs) {
      const want = Array.from(runner.run(k, input));
      expect(Array.from((await inferXs(graph, input)).output)).toEqual(want);
      for (const target of ['cortex-m4', 'rv32'] as const) {
        expect(Array.from((await inferBaremetal(runner, input, target)).output), target).toEqual(want);
      }
    }
  }, 120_000);

  it('refuses what it cannot run, saying why', () => {
    const g = residualGraph();
    const broadcast = { ...g, ops: g.ops.map((o) => (o.kind === 'add' ? { ...o, inputs: [0, 7] } : o)) }; // [1,6,6,4] + [1,1,1,4]
    expect(() => new ForwardRunner(broadcast)).toThrow(/operator 1 \(add\).*broadcasting, which is not supported/);
    const small = () => new ForwardRunner(g, { arenaCapacity: 200, flashCapacity: 4096 });
    expect(small).toThrow('model "residual" needs 4');
    expect(small).toThrow('bytes of arena for its activations, the arena has 200');
    const dilated = { ...g, ops: g.ops.map((o) => (o.kind === 'conv2d' ? { ...o, dilationH: 2 } : o)) };
    expect(() => new ForwardRunner(dilated)).toThrow('operator 0 (conv2d): dilation 2x1 is not supported');
    const badBlob = encodeGraph(g);
    badBlob[40] ^= 1;
    expect(() => decodeGraph(badBlob)).toThrow('model blob: CRC mismatch (corrupted)');
    expect(() => decodeGraph(badBlob.subarray(0, 100))).toThrow('truncated');
  });
});
