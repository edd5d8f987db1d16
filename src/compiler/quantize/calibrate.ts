// Activation ranges of a float graph from calibration samples: the float
// reference forward (float-forward.ts) runs on each sample and every tensor
// an op writes (and the graph input) records its smallest and largest value.
//
// How per-sample extremes become one range (RangeMethod):
//  - 'minmax' (the default): the smallest minimum and largest maximum over
//    all samples, as TFLite's post-training calibrator does. Nothing seen in
//    calibration saturates; one outlier sample widens the range (coarser
//    steps for every other input).
//  - 'average': the mean of the per-sample minima and of the maxima, which
//    is what a moving-average observer (TensorFlow's QAT, PyTorch's
//    MovingAverageMinMaxObserver) converges to, without depending on the
//    order of the samples. Rare extremes saturate at int8's ends instead of
//    stretching the scale; better when a few samples are unrepresentative.
// A percentile rule was left out: it needs every value of every activation
// (or a histogram per tensor) kept across samples, megabytes for an image
// model, and on small calibration sets it behaves like 'average'.
// Every range holds 0 (TFLite's rule: zero must be exactly representable).

import { type Graph, tensorElements } from '../../core/graph.js';
import { QuantizeError } from './errors.js';
import { FloatForward } from './float-forward.js';

export type RangeMethod = 'minmax' | 'average';

export interface TensorRange {
  lo: number; // <= 0
  hi: number; // >= 0
}

// One float32 input sample: the real values of the model input, row-major
// (NHWC for images), exactly the input tensor's element count.
export type CalibrationSample = ArrayLike<number>;

export function checkSamples(g: Graph, samples: readonly CalibrationSample[]): void {
  const input = g.tensors[g.inputs[0]!]!;
  const n = tensorElements(input);
  const what = `the model input "${input.name}" is ${input.dtype}[${input.shape.join('x')}] = ${n} values`;
  if (samples.length === 0) {
    throw new QuantizeError(`${g.name}: no calibration samples; give at least one real input (a few hundred representative ` +
      `ones is typical), each ${n} values: ${what}`);
  }
  samples.forEach((s, i) => {
    if (s.length !== n) throw new QuantizeError(`${g.name}: calibration sample ${i} has ${s.length} values; ${what}`);
    for (let k = 0; k < n; k++) {
      if (!Number.isFinite(s[k]!)) throw new QuantizeError(`${g.name}: calibration sample ${i} has ${s[k]} at element ${k}; samples must be finite numbers`);
    }
  });
}

// Range of every tensor the forward writes (and the input), by tensor
// index; null for constants and tensors no op writes.
export function calibrate(g: Graph, samples: readonly CalibrationSample[], method: RangeMethod = 'minmax'): (TensorRange | null)[] {
  if (method !== 'minmax' && method !== 'average') throw new QuantizeError(`unknown range method "${String(method)}": use "minmax" or "average"`);
  checkSamples(g, samples);
  const forward = new FloatForward(g);
  const lo = new Float64Array(g.tensors.length), hi = new Float64Array(g.tensors.length);
  const seen = new Uint8Array(g.tensors.length);
  for (const s of samples) {
    forward.run(s).forEach((v, t) => {
      if (!v) return;
      let a = Infinity, b = -Infinity;
      for (let i = 0; i < v.length; i++) {
        const x = v[i]!;
        if (x < a) a = x;
        if (x > b) b = x;
      }
      if (!Number.isFinite(a) || !Number.isFinite(b)) {
        throw new QuantizeError(`${g.name}: tensor "${g.tensors[t]!.name}" is not finite on a calibration sample (${a}..${b}); ` +
          'check the model\'s weights and the samples\' scale');
      }
      if (method === 'average') {
        lo[t]! += a / samples.length;
        hi[t]! += b / samples.length;
      } else if (!seen[t]) {
        [lo[t], hi[t]] = [a, b];
      } else {
        lo[t] = Math.min(lo[t]!, a);
        hi[t] = Math.max(hi[t]!, b);
      }
      seen[t] = 1;
    });
  }
  return Array.from(seen, (s, t) => (s ? { lo: Math.min(0, lo[t]!), hi: Math.max(0, hi[t]!) } : null));
}
