// int8 Graph -> float32 Graph: every activation float32 without quantisation,
// int8 weights as w * s_w[c], int32 biases as b * s_b[c] (their stored scale,
// s_in * s_w[c] rounded to float32), all stored as float32. The float model
// the int8 one approximates, up to its rounding: used to make float test
// models from the bundled int8 ones (no float .tflite is bundled) and to
// check that quantising it again lands near the original.
// Host-side compiler code, platform-free.

import type { Graph, GraphTensor } from '../../core/graph.js';
import { QuantizeError } from './errors.js';
import { constantValues, dequantize } from './float-forward.js';

export function dequantizeGraph(g: Graph, name = `${g.name}-float`): Graph {
  const layerConstants = new Set<number>(); // weights and biases
  for (const op of g.ops) {
    if (op.kind === 'conv2d' || op.kind === 'depthwise_conv2d' || op.kind === 'fully_connected') {
      for (const t of op.inputs.slice(1)) if (t >= 0) layerConstants.add(t);
    }
  }
  const tensors = g.tensors.map((t, i): GraphTensor => {
    if (!t.data) {
      if (t.dtype !== 'int8') throw new QuantizeError(`${g.name}: activation "${t.name}" is ${t.dtype}; dequantizeGraph takes an int8 graph`);
      return { name: t.name, dtype: 'float32', shape: t.shape.slice(), quant: null, data: null };
    }
    if (!layerConstants.has(i)) return { ...t, shape: t.shape.slice(), data: t.data.slice() }; // shapes, axes
    if (t.dtype === 'float32') return { ...t, quant: null, shape: t.shape.slice(), data: t.data.slice() };
    if (!t.quant) throw new QuantizeError(`${g.name}: constant "${t.name}" is ${t.dtype} without quantisation parameters`);
    const real = Float32Array.from(dequantize(t, constantValues(t)));
    return { name: t.name, dtype: 'float32', shape: t.shape.slice(), quant: null, data: new Uint8Array(real.buffer) };
  });
  return { name, tensors, ops: g.ops.map((op) => ({ ...op, inputs: op.inputs.slice(), outputs: op.outputs.slice() })), inputs: g.inputs.slice(), outputs: g.outputs.slice() };
}
