// The float64 oracle for whole models: each graph op evaluated in plain
// real arithmetic on dequantised tensors, then quantised with the output's
// scale and zero point. The op semantics live in
// src/compiler/quantize/float-forward.ts (written from the op definitions,
// not from the kernels it checks), which is also the float reference forward
// of post-training quantisation; this file adds the output rounding.
import type { GraphTensor } from '../../src/core/graph.js';

export { constantValues, dequantize, floatOp } from '../../src/compiler/quantize/float-forward.js';

function roundHalfAway(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

export function quantize(t: GraphTensor, real: Float64Array): Int8Array {
  const s = t.quant!.scale[0]!, zp = t.quant!.zeroPoint[0]!;
  return Int8Array.from(real, (v) => Math.max(-128, Math.min(127, roundHalfAway(v / s) + zp)));
}
