// The forward runner: lowers an int8 Graph (src/core/graph.ts) to calls of
// the C kernels and runs it. Constants (weights, biases, requantisation
// tables) go to the read-only flash region; activations are placed in the
// arena by lifetime (planner.ts), reshapes alias their input. Platform-free:
// the same code runs on Node, on XS and, recorded as a trace, on the
// bare-metal images. The per-op lowering (quantisation parameters computed
// TFLite's way) lives in lowering.ts, shared with the training-plan compiler.

import { type DType, type Tensor } from './arena.js';
import { type Graph, GraphError, type GraphOp, type GraphTensor, tensorElements } from './graph.js';
import { FLASH_BASE, Kernels } from './kernels.js';
import { type ForwardCall, type LoweringContext, lowerForwardOp } from './lowering.js';
import { planLifetimes } from './planner.js';

export { activationRange, outputMultipliers } from './lowering.js';

export interface RunnerOptions {
  arenaCapacity: number;
  flashCapacity: number;
}

export const defaultRunnerOptions: RunnerOptions = { arenaCapacity: 200 * 1024, flashCapacity: 640 * 1024 };

// One lowered operator: what it is and how to call its kernel.
export interface Step {
  index: number; // the graph op's index
  kind: GraphOp['kind'];
  macs: number; // multiply-accumulates of the forward (0 for data movement)
  run(k: Kernels): void;
  // The kernel call of a conv2d, depthwise or add step (whole tensors), so a
  // row-tiled forward (tiled-block.ts) can call it on bands.
  call?: ForwardCall;
}

interface Constant {
  tensor: Tensor;
  bytes: Uint8Array;
}

function dtypeOf(t: GraphTensor, what: string): DType {
  if (t.dtype === 'float32') throw new GraphError(`${what}: tensor "${t.name}" is float32; the runner needs int8`);
  return t.dtype;
}

export class ForwardRunner {
  readonly steps: Step[] = [];
  readonly constants: Constant[] = [];
  readonly tensors: (Tensor | null)[]; // graph tensor index -> placed tensor
  readonly arenaBytes: number;
  readonly flashBytes: number;
  private flashTop = 0;

  constructor(readonly graph: Graph, readonly options: RunnerOptions = defaultRunnerOptions) {
    if (graph.inputs.length !== 1 || graph.outputs.length !== 1) {
      throw new GraphError(`model "${graph.name}" has ${graph.inputs.length} inputs and ${graph.outputs.length} outputs; the runner takes one of each`);
    }
    this.tensors = new Array<Tensor | null>(graph.tensors.length).fill(null);
    this.arenaBytes = this.placeActivations();
    const ctx: LoweringContext = {
      graph,
      tensor: (index, what) => this.placed(index, what),
      constant: (name, dtype, shape, bytes) => this.constant(name, dtype, shape, bytes),
    };
    for (const op of graph.ops) {
      const lowered = lowerForwardOp(ctx, op);
      this.steps.push({ index: op.index, kind: op.kind, ...lowered });
    }
    this.flashBytes = this.flashTop;
  }

  get input(): Tensor {
    return this.tensors[this.graph.inputs[0]!]!;
  }

  get output(): Tensor {
    return this.tensors[this.graph.outputs[0]!]!;
  }

  get inputTensor(): GraphTensor {
    return this.graph.tensors[this.graph.inputs[0]!]!;
  }

  get outputTensor(): GraphTensor {
    return this.graph.tensors[this.graph.outputs[0]!]!;
  }

  // Writes the constants into the flash region ("flashing the model").
  load(k: Kernels): void {
    for (const c of this.constants) k.write(c.tensor, c.bytes);
  }

  writeInput(k: Kernels, input: Uint8Array | Int8Array): void {
    const t = this.input;
    if (input.length !== t.bytes) {
      throw new GraphError(
        `input of "${this.graph.name}" is ${this.inputTensor.dtype}[${this.inputTensor.shape.join(',')}] = ${t.bytes} bytes, got ${input.length} bytes`,
      );
    }
    k.write(t, new Uint8Array(input.buffer, input.byteOffset, input.length));
  }

  invoke(k: Kernels): void {
    for (const s of this.steps) s.run(k);
  }

  run(k: Kernels, input: Uint8Array | Int8Array): Int8Array {
    this.writeInput(k, input);
    this.invoke(k);
    return k.readInt8(this.output);
  }

  get macs(): number {
    return this.steps.reduce((a, s) => a + s.macs, 0);
  }

  // ---- placement -----------------------------------------------------------

  // Activations (tensors without data) get arena offsets by lifetime; a
  // reshape's output is its input's buffer under another shape.
  private placeActivations(): number {
    const g = this.graph;
    const root = g.tensors.map((_, i) => i);
    for (const op of g.ops) {
      if (op.kind === 'reshape') root[op.outputs[0]!] = root[op.inputs[0]!]!;
    }
    const find = (i: number): number => (root[i] === i ? i : (root[i] = find(root[i]!)));
    const life = new Map<number, { first: number; last: number }>();
    const touch = (t: number, step: number) => {
      if (t < 0 || g.tensors[t]!.data) return;
      const r = find(t);
      const l = life.get(r);
      if (!l) life.set(r, { first: step, last: step });
      else {
        l.first = Math.min(l.first, step);
        l.last = Math.max(l.last, step);
      }
    };
    for (const t of g.inputs) touch(t, -1);
    g.ops.forEach((op, s) => {
      for (const t of op.inputs) touch(t, s);
      for (const t of op.outputs) touch(t, s);
    });
    for (const t of g.outputs) touch(t, g.ops.length);
    const roots = [...life.keys()];
    const place = planLifetimes(roots.map((r) => ({ bytes: tensorElements(g.tensors[r]!), ...life.get(r)! })));
    if (place.peak > this.options.arenaCapacity) {
      throw new GraphError(
        `model "${g.name}" needs ${place.peak} bytes of arena for its activations, the arena has ${this.options.arenaCapacity}; ` +
          'give it a larger arena or use a smaller model/input',
      );
    }
    const at = new Map(roots.map((r, i) => [r, place.offsets[i]!]));
    g.tensors.forEach((t, i) => {
      if (t.data) return;
      const off = at.get(find(i));
      if (off === undefined) return; // not used by any op
      this.tensors[i] = { name: t.name, dtype: dtypeOf(t, 'activation'), shape: t.shape, offset: off, bytes: tensorElements(t) };
    });
    return place.peak;
  }

  // A constant in flash: the graph tensor's bytes, or derived parameters.
  private constant(name: string, dtype: DType, shape: number[], bytes: Uint8Array): Tensor {
    const align = 16;
    const at = Math.ceil(this.flashTop / align) * align;
    if (at + bytes.length > this.options.flashCapacity) {
      throw new GraphError(
        `model "${this.graph.name}" needs more than ${this.options.flashCapacity} bytes of flash for its constants ` +
          `(at "${name}"); give it a larger flash region`,
      );
    }
    const tensor: Tensor = { name, dtype, shape, offset: FLASH_BASE + at, bytes: bytes.length };
    this.flashTop = at + bytes.length;
    this.constants.push({ tensor, bytes });
    return tensor;
  }

  // A graph tensor where the runner keeps it: a constant in flash (placed on
  // first use), an activation in the arena.
  private placed(index: number, what: string): Tensor {
    const t = this.graph.tensors[index];
    if (!t) throw new GraphError(`${what}: tensor ${index} does not exist`);
    const existing = this.tensors[index];
    if (existing) return existing;
    if (!t.data) throw new GraphError(`${what}: tensor "${t.name}" is not an activation any op uses`);
    const placed = this.constant(t.name, dtypeOf(t, what), t.shape, t.data);
    this.tensors[index] = placed;
    return placed;
  }
}
