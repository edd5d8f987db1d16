// src/node/tfjs-graph.ts against the float64 reference forward (FloatForward):
// the tfjs function of a float Graph must compute the Graph's logits (the
// weight layouts OHWI / 1HWC / [O][I] converted right, SAME padding split as
// TFLite splits it, fused activations), on the dequantised person_detect
// with task A's new head and on a small CNN with every op kind; and the
// round trip Graph -> tfjs -> Graph must give back the same constants.

import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Graph, tensorElements } from '../src/core/graph.js';
import { constantValues, FloatForward } from '../src/compiler/quantize/float-forward.js';
import { importFloatTflite } from '../src/compiler/tflite/import.js';
import { writeTflite } from '../src/compiler/tflite/write.js';
import { Xorshift32 } from '../src/core/rng.js';
import { graphToTfjs, tfjsReady, tfjsToGraph, withFastConvFilterGradient } from '../src/node/tfjs-graph.js';
import { FloatGraphBuilder } from '../bench/transfer/float-graph-builder.js';
import { imageOf, loadTaskA } from '../bench/transfer/data.js';
import { taskAModel } from '../bench/transfer/fp32.js';

beforeAll(async () => { await tfjsReady(); });

function tfjsLogits(g: Graph, inputs: Float32Array[]): Float32Array[] {
  const m = graphToTfjs(g);
  const shape = m.inputShape, n = tensorElements(g.tensors[g.inputs[0]!]!);
  const batch = new Float32Array(inputs.length * n);
  inputs.forEach((x, k) => batch.set(x, k * n));
  const y = tf.tidy(() => m.apply(tf.tensor(batch, [inputs.length, ...shape])).dataSync() as Float32Array);
  m.dispose();
  return inputs.map((_, k) => y.slice(k * m.classes, (k + 1) * m.classes));
}

// Largest |tfjs - reference| over all logits, relative to the largest |reference|.
function relativeError(got: Float32Array[], want: Float64Array[]): number {
  let err = 0, scale = 0;
  want.forEach((w, k) => w.forEach((v, i) => {
    err = Math.max(err, Math.abs(got[k]![i]! - v));
    scale = Math.max(scale, Math.abs(v));
  }));
  return err / scale;
}

function smallCnn(seed: number): Graph {
  // Every op kind and option the converter handles: conv (SAME and VALID,
  // strides 1 and 2, ReLU/ReLU6/none), depthwise with multiplier 2 and 1,
  // a residual add, average pooling (SAME, and global), reshape, fully connected, softmax.
  const b = new FloatGraphBuilder('small-cnn', [11, 9, 3], seed);
  const a = b.conv2d(b.input, 6, 3, 2, 'same', 'relu6'); // 6x5x6
  const d = b.depthwise(a, 2, 3, 1, 'same', 'relu'); // 6x5x12
  const c = b.conv2d(d, 6, 1, 1, 'same', 'none');
  const r = b.add(a, c, 'relu');
  const e = b.depthwise(r, 1, 3, 2, 'same', 'relu6'); // 3x3x6
  const q = b.averagePool(e, 2, 1, 'same'); // 3x3x6, SAME pads after only
  const v = b.conv2d(q, 8, 2, 1, 'valid', 'relu'); // 2x2x8
  const p = b.averagePool(v, 2, 2, 'valid'); // 1x1x8
  const f = b.reshape(p, [1, 8]);
  return b.graph(b.softmax(b.fullyConnected(f, 5, 'none')));
}

// The biases of FloatGraphBuilder are zero: give them values so that a
// wrongly applied bias shows.
function withBiases(g: Graph, seed: number): Graph {
  const rng = new Xorshift32(seed);
  for (const op of g.ops) {
    const bi = op.inputs[2] ?? -1;
    if (op.kind === 'add' || op.kind === 'reshape' || bi < 0) continue;
    const t = g.tensors[bi]!;
    t.data = new Uint8Array(Float32Array.from({ length: t.shape[0]! }, () => (rng.next() / 4294967296 - 0.5) * 0.4).buffer);
  }
  return g;
}

const randomInput = (n: number, seed: number) => {
  const rng = new Xorshift32(seed);
  return Float32Array.from({ length: n }, () => rng.next() / 4294967296 * 2 - 1);
};

describe('graphToTfjs against FloatForward', () => {
  it('person_detect (dequantised, task A\'s new 10-class head): logits of real images agree to 1e-4 of their range', () => {
    // Three test images of task A (Fashion-MNIST at 96x96) as the fp32 arms feed them.
    const { graph: g, inputReal } = taskAModel();
    const task = loadTaskA({ train: 1, test: 3 });
    const images = [0, 1, 2].map((i) => inputReal(imageOf(task.test, i)));
    const ref = new FloatForward(g);
    const want = images.map((x) => ref.output(x));
    const got = tfjsLogits(g, images);
    expect(relativeError(got, want)).toBeLessThan(1e-4);
    // Not a constant model: the images give different logits.
    expect(Math.abs(want[0]![0]! - want[1]![0]!)).toBeGreaterThan(1e-4);
  });

  it('a small CNN with every supported op agrees to 1e-5 of its range', () => {
    const g = withBiases(smallCnn(3), 4);
    const inputs = [randomInput(11 * 9 * 3, 1), randomInput(11 * 9 * 3, 2)];
    // The reference's logits: the input of the final softmax.
    const ref = new FloatForward(g);
    const logitsT = g.ops[g.ops.length - 1]!.inputs[0]!;
    const want = inputs.map((x) => ref.run(x)[logitsT]!);
    expect(relativeError(tfjsLogits(g, inputs), want)).toBeLessThan(1e-5);
  });

  it('catches a wrong layout: a conv weight stored transposed gives other logits', () => {
    const g = withBiases(smallCnn(3), 4);
    const x = [randomInput(11 * 9 * 3, 1)];
    const logitsT = g.ops[g.ops.length - 1]!.inputs[0]!;
    const want = [new FloatForward(g).run(x[0]!)[logitsT]!];
    // Swap kh and kw of the first conv's weights (a 3x3 kernel): same bytes
    // count, different model.
    const wT = g.tensors[g.ops[0]!.inputs[1]!]!;
    const [O, KH, KW, I] = wT.shape as [number, number, number, number];
    const w = constantValues(wT), s = new Float32Array(w.length);
    for (let o = 0; o < O; o++) for (let y = 0; y < KH; y++) for (let xk = 0; xk < KW; xk++) for (let i = 0; i < I; i++) {
      s[((o * KH + y) * KW + xk) * I + i] = w[((o * KH + xk) * KW + y) * I + i]!;
    }
    wT.data = new Uint8Array(s.buffer);
    expect(relativeError(tfjsLogits(g, x), want)).toBeGreaterThan(1e-3);
  });
});

describe('tfjsToGraph', () => {
  it('gives back the same constants (round trip), and trained variables land in Graph layout', () => {
    const g = withBiases(smallCnn(5), 6);
    const m = graphToTfjs(g);
    const back = tfjsToGraph(m);
    g.tensors.forEach((t, i) => {
      if (t.data) expect(back.tensors[i]!.data, t.name).toEqual(t.data);
    });
    // Change the variables by a known amount; the graph written back must
    // compute what tfjs computes (so its layout is the Graph's).
    for (const v of m.variables()) v.assign(tf.tidy(() => tf.add(v, tf.mul(tf.sin(tf.reshape(tf.range(0, v.size), v.shape)), 0.05))));
    const changed = tfjsToGraph(m, 'changed');
    const x = [randomInput(11 * 9 * 3, 9)];
    const logitsT = g.ops[g.ops.length - 1]!.inputs[0]!;
    const got = tf.tidy(() => m.apply(tf.tensor(x[0]!, [1, 11, 9, 3])).dataSync() as Float32Array);
    const want = new FloatForward(changed).run(x[0]!)[logitsT]!;
    expect(relativeError([got], [want])).toBeLessThan(1e-5);
    expect(relativeError([got], [new FloatForward(g).run(x[0]!)[logitsT]!])).toBeGreaterThan(1e-3);
    m.dispose();
  });

  it('a float graph goes through writeTflite and the float importer unchanged', () => {
    const g = withBiases(smallCnn(7), 8);
    const m = graphToTfjs(g);
    const back = importFloatTflite(writeTflite(tfjsToGraph(m)), 'small-cnn');
    m.dispose();
    const x = randomInput(11 * 9 * 3, 10);
    const a = new FloatForward(g).output(x), b = new FloatForward(back).output(x);
    expect(Array.from(b)).toEqual(Array.from(a));
  });
});

describe('withFastConvFilterGradient', () => {
  it('gives the gradients of tfjs\'s own Conv2DBackpropFilter, and puts that kernel back', async () => {
    const g = withBiases(smallCnn(11), 12);
    const m = graphToTfjs(g);
    const x = tf.tensor(randomInput(4 * 11 * 9 * 3, 13), [4, 11, 9, 3]);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 4], 'int32'), 5);
    const loss = () => tf.losses.softmaxCrossEntropy(y, m.apply(x)) as tf.Scalar;
    const stockKernel = tf.getKernel('Conv2DBackpropFilter', 'cpu')!;
    const stock = tf.variableGrads(loss, m.variables()).grads;
    const fast = await withFastConvFilterGradient(async () => tf.variableGrads(loss, m.variables()).grads);
    expect(tf.getKernel('Conv2DBackpropFilter', 'cpu')!.kernelFunc).toBe(stockKernel.kernelFunc);
    for (const k of Object.keys(stock)) {
      const d = tf.max(tf.abs(tf.sub(stock[k]!, fast[k]!))).dataSync()[0]!, s = tf.max(tf.abs(stock[k]!)).dataSync()[0]!;
      expect(s, k).toBeGreaterThan(0);
      expect(d / s, k).toBeLessThan(1e-5);
    }
    m.dispose();
  });
});
