// Node adapter: a float32 Graph as a trainable tfjs function, and back.
// The fp32 baselines of the transfer benchmark train with tfjs (tfjs-core on
// the pure-JS CPU backend: its wasm backend has no conv filter gradients).
//
// Layouts: tfjs and the Graph are both NHWC; the weights are not.
//   conv2d            Graph OHWI [O][kh][kw][I]     tfjs [kh][kw][I][O]  (transpose 1,2,3,0)
//   depthwise_conv2d  Graph [1][kh][kw][C*m]        tfjs [kh][kw][C][m]  (same bytes: channel c*m+j)
//   fully_connected   Graph [O][I]                  tfjs variable [O][I], y = x W^T + b
// Activations carry a batch dimension N in tfjs where the Graph has 1: every
// shape the function builds is the Graph's with dimension 0 replaced by N.
// The function returns the logits: the output of the last op before a
// trailing softmax (and the reshapes after the classifier are kept).

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { type FusedActivation, type Graph, GraphError, type GraphOp, type GraphTensor } from '../core/graph.js';
import { constantValues } from '../compiler/quantize/float-forward.js';
import { repoRoot } from './addon.js';

// tfjs-core's Node bundle registers no gradients (the @tensorflow/tfjs union
// package does, from tfjs-core's ES-module dist/register_all_gradients.js,
// whose extensionless imports Node cannot load). So: bundle that file once
// with esbuild (tsx's and vitest's) into out/tfjs/ as CommonJS and require
// it. Its copy of the ops registers into tfjs's global gradient registry and
// runs on the global engine (tfjs keeps both on globalThis for this reason).
function registerGradients(): void {
  const req = createRequire(import.meta.url);
  const version = (req('@tensorflow/tfjs-core/package.json') as { version: string }).version;
  const file = join(repoRoot, 'out', 'tfjs', `register_all_gradients-${version}.cjs`);
  if (!existsSync(file)) {
    const esbuild = req('esbuild') as { buildSync(o: object): { outputFiles: { text: string }[] } };
    const r = esbuild.buildSync({
      entryPoints: [req.resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js')],
      bundle: true, format: 'cjs', platform: 'node', write: false, logLevel: 'error',
    });
    mkdirSync(join(repoRoot, 'out', 'tfjs'), { recursive: true });
    writeFileSync(file, r.outputFiles[0]!.text);
  }
  req(file);
}

export const tfjsVersion = (): string =>
  (createRequire(import.meta.url)('@tensorflow/tfjs-core/package.json') as { version: string }).version;

// tfjs-backend-cpu's Conv2DBackpropFilter reads every element through
// TensorBuffer.get (about 1 s for the 3x3 filter gradient of a 32x7x7x16 ->
// 32x4x4x32 conv, over 90% of a training step of task B's MNIST CNN at batch
// 32). The same sums over typed arrays, for the MNIST pre-training only (not
// for the benchmark's arms, which measure tfjs as it is):
// withFastConvFilterGradient(fn) registers it for the CPU backend while fn
// runs and puts tfjs's own kernel back after. NHWC, dilation 1.
type KernelArgs = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs: Record<string, unknown> };
interface CpuBackend {
  data: { get(id: unknown): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo;
}

export function conv2dFilterGradient(args: KernelArgs): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const backend = args.backend as CpuBackend;
  const a = args.attrs as { strides: number | [number, number]; pad: 'same' | 'valid' | number; dataFormat: 'NHWC' | 'NCHW'; dimRoundingMode?: 'floor' | 'round' | 'ceil'; filterShape: [number, number, number, number] };
  if (a.dataFormat !== 'NHWC') throw new Error('conv2dFilterGradient: NHWC only');
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: O, filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
  const top = info.padInfo.top, left = info.padInfo.left;
  const xv = backend.data.get(x.dataId).values, dyv = backend.data.get(dy.dataId).values;
  const dw = new Float32Array(KH * KW * C * O); // [kh][kw][c][o]
  for (let b = 0; b < N; b++)
    for (let yr = 0; yr < OH; yr++)
      for (let yc = 0; yc < OW; yc++) {
        const d = ((b * OH + yr) * OW + yc) * O;
        for (let kr = 0; kr < KH; kr++) {
          const xr = yr * sh - top + kr;
          if (xr < 0 || xr >= H) continue;
          for (let kc = 0; kc < KW; kc++) {
            const xc = yc * sw - left + kc;
            if (xc < 0 || xc >= W) continue;
            const xi = ((b * H + xr) * W + xc) * C, wi = (kr * KW + kc) * C * O;
            for (let c = 0; c < C; c++) {
              const xval = xv[xi + c]!;
              if (xval === 0) continue;
              const w0 = wi + c * O;
              for (let o = 0; o < O; o++) dw[w0 + o]! += xval * dyv[d + o]!;
            }
          }
        }
      }
  return backend.makeTensorInfo(a.filterShape, 'float32', dw);
}

export async function withFastConvFilterGradient<T>(fn: () => Promise<T>): Promise<T> {
  await tfjsReady();
  const stock = tf.getKernel('Conv2DBackpropFilter', 'cpu');
  if (!stock) throw new Error('tfjs: no cpu Conv2DBackpropFilter kernel to replace');
  tf.unregisterKernel('Conv2DBackpropFilter', 'cpu');
  tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'cpu', kernelFunc: conv2dFilterGradient as unknown as tf.KernelFunc });
  try {
    return await fn();
  } finally {
    tf.unregisterKernel('Conv2DBackpropFilter', 'cpu');
    tf.registerKernel(stock);
  }
}

// The backend once per process ('cpu': deterministic, single-threaded JS).
let backendReady: Promise<void> | null = null;
export function tfjsReady(): Promise<void> {
  backendReady ??= tf.setBackend('cpu').then((ok) => {
    registerGradients();
    if (!ok) throw new Error('tfjs: the cpu backend (@tensorflow/tfjs-backend-cpu) did not initialise');
  });
  return backendReady;
}

export interface TfjsLayer {
  op: GraphOp; // a conv2d, depthwise_conv2d or fully_connected op of the graph
  weights: tf.Variable; // in tfjs layout (see above)
  bias: tf.Variable | null; // [O], null when the op has no bias input
}

export interface TfjsGraph {
  graph: Graph;
  layers: TfjsLayer[]; // in op order
  logits: number; // graph tensor index of the returned logits
  classes: number;
  inputShape: number[]; // [H, W, C] (the graph input without its batch)
  // x: [N, H, W, C] real input -> logits [N, classes]. `from`/`to` run a
  // slice of the ops: from = a tensor index whose value is x (default the
  // graph input), to = the tensor to return (default the logits).
  apply(x: tf.Tensor, range?: { from?: number; to?: number }): tf.Tensor;
  variables(): tf.Variable[]; // every weight and bias
  dispose(): void;
}

function activate(y: tf.Tensor, a: FusedActivation): tf.Tensor {
  if (a === 'relu') return tf.relu(y);
  if (a === 'relu6') return tf.relu6(y);
  return y;
}

function floatValues(t: GraphTensor): Float32Array {
  if (t.dtype !== 'float32') throw new GraphError(`tensor "${t.name}" is ${t.dtype}; graphToTfjs takes a float32 graph (dequantizeGraph an int8 one)`);
  return Float32Array.from(constantValues(t));
}

export interface GraphToTfjsOptions {
  trainable?: boolean; // tf.Variable trainable flag (default true)
  namePrefix?: string; // variable names are unique per process in tfjs
}

let instance = 0;

export function graphToTfjs(g: Graph, o: GraphToTfjsOptions = {}): TfjsGraph {
  if (g.inputs.length !== 1 || g.outputs.length !== 1) {
    throw new GraphError(`model "${g.name}" has ${g.inputs.length} inputs and ${g.outputs.length} outputs; one of each is supported`);
  }
  const trainable = o.trainable ?? true;
  const prefix = `${o.namePrefix ?? g.name}#${instance++}`;
  // The logits: the graph output, or the input of a final softmax.
  let ops = g.ops;
  const last = ops[ops.length - 1];
  if (last && last.kind === 'softmax' && last.outputs[0] === g.outputs[0]) ops = ops.slice(0, -1);
  const logits = ops.length ? ops[ops.length - 1]!.outputs[0]! : g.inputs[0]!;
  const lT = g.tensors[logits]!;
  const classes = lT.shape[lT.shape.length - 1]!;

  const layers: TfjsLayer[] = [];
  const byOp = new Map<GraphOp, TfjsLayer>();
  for (const op of ops) {
    if (op.kind !== 'conv2d' && op.kind !== 'depthwise_conv2d' && op.kind !== 'fully_connected') continue;
    const wT = g.tensors[op.inputs[1]!]!;
    const w = floatValues(wT);
    let wt: tf.Tensor;
    if (op.kind === 'conv2d') wt = tf.tidy(() => tf.transpose(tf.tensor4d(w, wT.shape as [number, number, number, number]), [1, 2, 3, 0]));
    else if (op.kind === 'depthwise_conv2d') {
      const C = g.tensors[op.inputs[0]!]!.shape[3]!;
      wt = tf.tensor4d(w, [wT.shape[1]!, wT.shape[2]!, C, op.depthMultiplier]);
    } else wt = tf.tensor2d(w, [wT.shape[0]!, wT.shape[1]!]);
    const weights = tf.variable(wt, trainable, `${prefix}/${op.index}/w`);
    wt.dispose();
    const bi = op.inputs[2] ?? -1;
    const bias = bi < 0 ? null : tf.variable(tf.tensor1d(floatValues(g.tensors[bi]!)), trainable, `${prefix}/${op.index}/b`);
    const layer = { op, weights, bias };
    layers.push(layer);
    byOp.set(op, layer);
  }

  const apply = (x: tf.Tensor, range: { from?: number; to?: number } = {}): tf.Tensor => {
    const from = range.from ?? g.inputs[0]!, to = range.to ?? logits;
    const N = x.shape[0]!;
    const shapeOf = (t: number) => [N, ...g.tensors[t]!.shape.slice(1)];
    const values = new Map<number, tf.Tensor>([[from, x]]);
    const value = (t: number): tf.Tensor => {
      const v = values.get(t);
      if (!v) throw new GraphError(`model "${g.name}": tensor ${t} "${g.tensors[t]!.name}" is read before it is written (range starts at ${from})`);
      return v;
    };
    let start = 0;
    if (from !== g.inputs[0]) {
      start = ops.findIndex((op) => op.outputs[0] === from) + 1;
      if (start === 0) throw new GraphError(`model "${g.name}": no op writes tensor ${from}`);
    }
    for (const op of ops.slice(start)) {
      const x0 = value(op.inputs[0]!);
      let y: tf.Tensor;
      switch (op.kind) {
        case 'conv2d':
        case 'depthwise_conv2d': {
          const l = byOp.get(op)!;
          const conv = op.kind === 'conv2d'
            ? tf.conv2d(x0 as tf.Tensor4D, l.weights as tf.Tensor4D, [op.strideH, op.strideW], op.padding, 'NHWC', [op.dilationH, op.dilationW])
            : tf.depthwiseConv2d(x0 as tf.Tensor4D, l.weights as tf.Tensor4D, [op.strideH, op.strideW], op.padding, 'NHWC', [op.dilationH, op.dilationW]);
          y = activate(l.bias ? tf.add(conv, l.bias) : conv, op.activation);
          break;
        }
        case 'fully_connected': {
          const l = byOp.get(op)!;
          const I = l.weights.shape[1]!;
          const flat = tf.reshape(x0, [-1, I]);
          const mm = tf.matMul(flat, l.weights as tf.Tensor2D, false, true);
          y = activate(l.bias ? tf.add(mm, l.bias) : mm, op.activation);
          y = tf.reshape(y, shapeOf(op.outputs[0]!));
          break;
        }
        case 'average_pool2d': {
          // TFLite and tfjs both average over the valid taps only (SAME). A
          // pool over the whole map (VALID) is a mean over H and W: the same
          // sums, and tfjs-backend-cpu's AvgPoolGrad is much slower than
          // the mean's gradient.
          const [, H, W] = x0.shape as [number, number, number, number];
          const global = op.padding === 'valid' && op.filterH === H && op.filterW === W;
          const pooled = global ? tf.mean(x0, [1, 2], true) : tf.avgPool(x0 as tf.Tensor4D, [op.filterH, op.filterW], [op.strideH, op.strideW], op.padding);
          y = activate(pooled, op.activation);
          break;
        }
        case 'mean': {
          const r = g.tensors[op.inputs[0]!]!.shape.length;
          const axes = Array.from(constantValues(g.tensors[op.inputs[1]!]!), (a) => (a < 0 ? a + r : a));
          y = tf.reshape(tf.mean(x0, axes, op.keepDims), shapeOf(op.outputs[0]!));
          break;
        }
        case 'add':
          y = activate(tf.add(x0, value(op.inputs[1]!)), op.activation);
          break;
        case 'reshape':
          y = tf.reshape(x0, shapeOf(op.outputs[0]!));
          break;
        case 'softmax':
          y = tf.softmax(op.beta === 1 ? x0 : tf.mul(x0, op.beta));
          break;
      }
      values.set(op.outputs[0]!, y);
      if (op.outputs[0] === to) break;
    }
    const out = value(to);
    return to === logits ? tf.reshape(out, [N, classes]) : out;
  };

  return {
    graph: g,
    layers,
    logits,
    classes,
    inputShape: g.tensors[g.inputs[0]!]!.shape.slice(1),
    apply,
    variables: () => layers.flatMap((l) => (l.bias ? [l.weights, l.bias] : [l.weights])),
    dispose: () => layers.forEach((l) => { l.weights.dispose(); l.bias?.dispose(); }),
  };
}

// The inverse: the graph with each layer's weights and bias replaced by the
// variables' current values (Graph layouts, float32). Everything else (ops,
// shapes, a trailing softmax) is the source graph's.
export function tfjsToGraph(m: TfjsGraph, name = m.graph.name): Graph {
  const g = m.graph;
  const tensors = g.tensors.map((t) => ({ ...t, shape: t.shape.slice(), data: t.data ? t.data.slice() : null }));
  const put = (index: number, values: Float32Array) => {
    const t = tensors[index]!;
    if (values.length * 4 !== t.data!.length) throw new GraphError(`tensor "${t.name}": ${values.length} values for ${t.data!.length} bytes`);
    t.data = new Uint8Array(values.slice().buffer);
  };
  for (const l of m.layers) {
    const op = l.op;
    const w = tf.tidy(() => (op.kind === 'conv2d' ? tf.transpose(l.weights, [3, 0, 1, 2]) : l.weights.clone()));
    put(op.inputs[1]!, w.dataSync() as Float32Array);
    w.dispose();
    if (l.bias) put(op.inputs[2]!, l.bias.dataSync() as Float32Array);
  }
  return { name, tensors, ops: g.ops.map((op) => ({ ...op, inputs: op.inputs.slice(), outputs: op.outputs.slice() })), inputs: g.inputs.slice(), outputs: g.outputs.slice() };
}
