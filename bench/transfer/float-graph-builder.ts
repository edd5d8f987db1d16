// A float32 Graph built layer by layer with seeded initial weights: the MNIST
// CNN that task B pre-trains (pretrain.ts) and the small test models of
// host-tests/tfjs-graph.test.ts. Weights: He-uniform, U(-r, r) with
// r = sqrt(6 / fan_in) (Glorot's for a layer without ReLU), biases 0, drawn
// from xorshift32 so a seed gives the same model everywhere.

import type { FusedActivation, Graph, GraphOp, GraphTensor, Padding } from '../../src/core/graph.js';
import { Xorshift32 } from '../../src/core/rng.js';

const outSize = (n: number, k: number, s: number, p: Padding) => (p === 'same' ? Math.ceil(n / s) : Math.floor((n - k) / s) + 1);

export class FloatGraphBuilder {
  readonly tensors: GraphTensor[] = [];
  readonly ops: GraphOp[] = [];
  private readonly rng: Xorshift32;
  readonly input: number;

  constructor(readonly name: string, inputShape: [number, number, number], seed: number) {
    this.rng = new Xorshift32(seed);
    this.input = this.activation('input', [1, ...inputShape]);
  }

  shape(t: number): number[] {
    return this.tensors[t]!.shape;
  }

  private activation(name: string, shape: number[]): number {
    return this.tensors.push({ name, dtype: 'float32', shape, quant: null, data: null }) - 1;
  }

  private constant(name: string, shape: number[], values: Float32Array | Int32Array, dtype: 'float32' | 'int32' = 'float32'): number {
    return this.tensors.push({ name, dtype, shape, quant: null, data: new Uint8Array(values.buffer.slice(0)) }) - 1;
  }

  private uniform(n: number, fanIn: number, relu: boolean): Float32Array {
    const r = Math.sqrt(6 / fanIn) * (relu ? 1 : Math.SQRT1_2);
    return Float32Array.from({ length: n }, () => ((this.rng.next() / 4294967296) * 2 - 1) * r);
  }

  // Distributes over the union, so each op kind's literal is checked.
  private push(op: GraphOp extends infer O ? (O extends GraphOp ? Omit<O, 'index'> : never) : never): number {
    this.ops.push({ ...op, index: this.ops.length } as GraphOp);
    return op.outputs[0]!;
  }

  conv2d(x: number, out: number, k: number, stride: number, padding: Padding, activation: FusedActivation): number {
    const [, H, W, C] = this.shape(x) as [number, number, number, number];
    const n = this.ops.length;
    const w = this.constant(`conv${n}/weights`, [out, k, k, C], this.uniform(out * k * k * C, k * k * C, activation !== 'none'));
    const b = this.constant(`conv${n}/bias`, [out], new Float32Array(out));
    const y = this.activation(`conv${n}/out`, [1, outSize(H, k, stride, padding), outSize(W, k, stride, padding), out]);
    return this.push({ kind: 'conv2d', inputs: [x, w, b], outputs: [y], padding, strideH: stride, strideW: stride, dilationH: 1, dilationW: 1, activation });
  }

  depthwise(x: number, mult: number, k: number, stride: number, padding: Padding, activation: FusedActivation): number {
    const [, H, W, C] = this.shape(x) as [number, number, number, number];
    const n = this.ops.length, out = C * mult;
    const w = this.constant(`dw${n}/weights`, [1, k, k, out], this.uniform(out * k * k, k * k, activation !== 'none'));
    const b = this.constant(`dw${n}/bias`, [out], new Float32Array(out));
    const y = this.activation(`dw${n}/out`, [1, outSize(H, k, stride, padding), outSize(W, k, stride, padding), out]);
    return this.push({ kind: 'depthwise_conv2d', inputs: [x, w, b], outputs: [y], padding, strideH: stride, strideW: stride, dilationH: 1, dilationW: 1, depthMultiplier: mult, activation });
  }

  averagePool(x: number, k: number, stride: number, padding: Padding): number {
    const [, H, W, C] = this.shape(x) as [number, number, number, number];
    const y = this.activation(`pool${this.ops.length}/out`, [1, outSize(H, k, stride, padding), outSize(W, k, stride, padding), C]);
    return this.push({ kind: 'average_pool2d', inputs: [x], outputs: [y], padding, strideH: stride, strideW: stride, filterH: k, filterW: k, activation: 'none' });
  }

  add(a: number, b: number, activation: FusedActivation): number {
    const y = this.activation(`add${this.ops.length}/out`, this.shape(a).slice());
    return this.push({ kind: 'add', inputs: [a, b], outputs: [y], activation });
  }

  reshape(x: number, shape: number[]): number {
    const s = this.constant(`reshape${this.ops.length}/shape`, [shape.length], Int32Array.from(shape), 'int32');
    const y = this.activation(`reshape${this.ops.length}/out`, shape);
    return this.push({ kind: 'reshape', inputs: [x, s], outputs: [y] });
  }

  fullyConnected(x: number, out: number, activation: FusedActivation): number {
    const s = this.shape(x), features = s.slice(1).reduce((a, d) => a * d, 1);
    const n = this.ops.length;
    const w = this.constant(`fc${n}/weights`, [out, features], this.uniform(out * features, features, activation !== 'none'));
    const b = this.constant(`fc${n}/bias`, [out], new Float32Array(out));
    const y = this.activation(`fc${n}/out`, [1, out]);
    return this.push({ kind: 'fully_connected', inputs: [x, w, b], outputs: [y], activation, keepNumDims: false });
  }

  softmax(x: number): number {
    const y = this.activation(`softmax${this.ops.length}/out`, this.shape(x).slice());
    return this.push({ kind: 'softmax', inputs: [x], outputs: [y], beta: 1 });
  }

  graph(output: number): Graph {
    return { name: this.name, tensors: this.tensors, ops: this.ops, inputs: [this.input], outputs: [output] };
  }
}
