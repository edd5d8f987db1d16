// The MNIST MLP of the optimizer comparison in plain float: 784-100-10,
// ReLU, softmax cross-entropy, batch 1 (the float emulation of DESIGN.md
// section 2). Weights are Float32Arrays; activations and gradients are
// computed in float64 and the gradients stored as float32. Every parameter
// tensor is updated by its own VectorOptimizer (src/core/optim), so the fp32
// and fixed-point baselines and LQM train the same model from the same
// initial weights. Platform-free.

import type { ImageSet } from './idx.js';
import { Xorshift32 } from './rng.js';
import type { OptimizerFactory, VectorOptimizer } from './optim/optimizer.js';

export interface FloatMlpConfig {
  inputs: number;
  hidden: number;
  classes: number;
  seed: number; // weight init; optimizer seeds are derived from it
  initRange1: number; // w1 uniform in [-r, r]
  initRange2: number;
}

export const defaultFloatMlpConfig: FloatMlpConfig = {
  inputs: 784,
  hidden: 100,
  classes: 10,
  seed: 1,
  initRange1: 0.0875, // ~ sqrt(6 / 784), as the int8 MLP (src/core/mlp.ts)
  initRange2: 0.245, // ~ sqrt(6 / 100)
};

export class FloatMlp {
  // Parameters, [out][in] row-major; biases start at 0.
  readonly w1: Float32Array;
  readonly b1: Float32Array;
  readonly w2: Float32Array;
  readonly b2: Float32Array;
  // Gradients of the last step.
  private readonly gw1: Float32Array;
  private readonly gb1: Float32Array;
  private readonly gw2: Float32Array;
  private readonly gb2: Float32Array;
  // Activations of the last forward.
  private readonly x: Float64Array;
  private readonly h: Float64Array;
  private readonly logits: Float64Array;
  private readonly dh: Float64Array;
  private readonly nz: Int32Array; // indices of the nonzero inputs of the last forward
  private readonly opts: VectorOptimizer[];

  constructor(factory: OptimizerFactory, lr: number, readonly cfg: FloatMlpConfig = defaultFloatMlpConfig) {
    const { inputs: I, hidden: H, classes: C } = cfg;
    this.w1 = new Float32Array(H * I);
    this.b1 = new Float32Array(H);
    this.w2 = new Float32Array(C * H);
    this.b2 = new Float32Array(C);
    this.gw1 = new Float32Array(H * I);
    this.gb1 = new Float32Array(H);
    this.gw2 = new Float32Array(C * H);
    this.gb2 = new Float32Array(C);
    this.x = new Float64Array(I);
    this.h = new Float64Array(H);
    this.logits = new Float64Array(C);
    this.dh = new Float64Array(H);
    this.nz = new Int32Array(I);
    const rng = new Xorshift32(cfg.seed);
    const uniform = (r: number) => ((rng.next() / 4294967296) * 2 - 1) * r;
    for (let k = 0; k < this.w1.length; k++) this.w1[k] = uniform(cfg.initRange1);
    for (let k = 0; k < this.w2.length; k++) this.w2[k] = uniform(cfg.initRange2);
    const params = [this.w1, this.b1, this.w2, this.b2], names = ['w1', 'b1', 'w2', 'b2'];
    this.opts = params.map((p, k) => factory(p.length, lr, (cfg.seed * 4 + k + 1) >>> 0, names[k]));
  }

  get optimizerName(): string {
    return this.opts[0]!.name;
  }

  // Writes the logits of one image (pixels 0-255, scaled to [0, 1]).
  forward(pixels: Uint8Array): Float64Array {
    const { inputs: I, hidden: H, classes: C } = this.cfg;
    const x = this.x, h = this.h, w1 = this.w1, w2 = this.w2, nz = this.nz;
    // The nonzero pixels, in order (most MNIST pixels are 0): the sums below
    // add the same terms in the same order as a loop over every pixel.
    let n = 0;
    for (let i = 0; i < I; i++) {
      x[i] = pixels[i]! / 255;
      if (pixels[i] !== 0) nz[n++] = i;
    }
    for (let j = 0; j < H; j++) {
      let s = this.b1[j]!;
      const row = j * I;
      for (let k = 0; k < n; k++) {
        const i = nz[k]!;
        s += w1[row + i]! * x[i]!;
      }
      h[j] = s > 0 ? s : 0;
    }
    for (let c = 0; c < C; c++) {
      let s = this.b2[c]!;
      const row = c * H;
      for (let j = 0; j < H; j++) s += w2[row + j]! * h[j]!;
      this.logits[c] = s;
    }
    return this.logits;
  }

  predict(pixels: Uint8Array): number {
    const z = this.forward(pixels);
    let best = 0;
    for (let c = 1; c < z.length; c++) if (z[c]! > z[best]!) best = c;
    return best;
  }

  // One online step: forward, softmax cross-entropy backward, one update of
  // every tensor through its optimizer. Returns the loss.
  train(pixels: Uint8Array, label: number): number {
    const { inputs: I, hidden: H, classes: C } = this.cfg;
    const z = this.forward(pixels);
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, z[c]!);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(z[c]! - max);
    const loss = Math.log(sum) - (z[label]! - max);
    // dlogits = softmax - onehot
    const x = this.x, h = this.h, dh = this.dh, w2 = this.w2;
    dh.fill(0);
    for (let c = 0; c < C; c++) {
      const d = Math.exp(z[c]! - max) / sum - (c === label ? 1 : 0);
      this.gb2[c] = d;
      const row = c * H;
      for (let j = 0; j < H; j++) {
        this.gw2[row + j] = d * h[j]!;
        dh[j] += w2[row + j]! * d;
      }
    }
    for (let j = 0; j < H; j++) {
      const d = h[j]! > 0 ? dh[j]! : 0;
      this.gb1[j] = d;
      const row = j * I;
      for (let i = 0; i < I; i++) this.gw1[row + i] = d * x[i]!;
    }
    this.opts[0]!.step(this.w1, this.gw1);
    this.opts[1]!.step(this.b1, this.gb1);
    this.opts[2]!.step(this.w2, this.gw2);
    this.opts[3]!.step(this.b2, this.gb2);
    return loss;
  }
}

// Fraction of the first `count` images of `set` classified correctly.
export function evaluateFloatMlp(m: FloatMlp, set: ImageSet, count = set.count): number {
  const n = Math.min(count, set.count);
  let correct = 0;
  for (let k = 0; k < n; k++) if (m.predict(set.image(k)) === set.labels[k]) correct++;
  return correct / n;
}
