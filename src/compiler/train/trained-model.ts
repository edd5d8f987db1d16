// The model after training: the graph a plan trains (the model after
// prepareHead: no softmax, maybe a new classifier) with every trainable
// weight and bias replaced by the values in the runtime's arena. Frozen
// tensors keep their data; quantisation parameters never change in int8
// training. The result compiles again like any model (fine-tuning a
// trained model further, or with another head).

import type { Graph, GraphTensor } from '../../core/graph.js';
import type { CompiledPlan } from './lower.js';

// `read(offset, bytes)`: the runtime's arena (PlanRuntime.dispatch.read).
export function trainedModel(c: CompiledPlan, read: (offset: number, bytes: number) => Uint8Array): Graph {
  const tg = c.compiled.graph;
  const offsetOf = new Map(c.compiled.plan.tensors.map((p) => [p.tensor, p.offset]));
  const tensors: GraphTensor[] = [...tg.model.tensors];
  tg.tensors.forEach((t, i) => {
    if (!t.persistent || t.home !== 'arena' || (t.role !== 'weight' && t.role !== 'bias') || t.source === null) return;
    const offset = offsetOf.get(i);
    const src = tensors[t.source]!;
    if (offset === undefined || !src.data) throw new Error(`trained model: "${t.name}" has no arena offset or no initial data`);
    const now = read(offset, t.bytes);
    let data: Uint8Array;
    if (!t.channels) {
      data = now.slice();
    } else {
      // A sliced weight holds input channels [b, e) of the last axis: put them back in place.
      const [b, e] = t.channels, full = src.shape.at(-1)!, n = e - b, rows = src.data.length / full;
      data = src.data.slice();
      for (let r = 0; r < rows; r++) data.set(now.subarray(r * n, r * n + n), r * full + b);
    }
    tensors[t.source] = { ...src, data };
  });
  return { ...tg.model, tensors };
}
