// The plan runtime: loads a plan blob (plan-format.ts) into a Dispatch and
// runs training steps and inferences by calling the kernels the plan lists.
// Platform-free: the same code runs on Node (C addon, or the TypeScript
// reference kernels) and on XS; recorded as a trace (recordPlanTrace), the
// bare-metal images run the same plan with the C executor (plan.c).
//
// Loading checks the blob twice: decodePlan (structure, with messages that
// say what is wrong), then, when the Dispatch is the C core, the C validator
// (every op's tensors against the arena and flash) before the first op runs.

import { crc32 } from './crc32.js';
import { BufferDispatch, type Dispatch, FLASH_BASE, type PlanBinding } from './kernels.js';
import { opName, statusNames } from './ops.js';
import { type Plan, type PlanCall, PlanError, PlanSection, PlanStatus, decodePlan, describePlanStatus } from './plan-format.js';
import { Xorshift32 } from './rng.js';
import { TraceWriter } from './trace.js';

// The C validator as a binding exposes it (xst_plan_validate): status,
// section kind, record index.
export type PlanValidator = (blob: Uint8Array, arenaCapacity: number) => readonly [number, number, number];

export interface PlanLoadOptions {
  arenaCapacity?: number; // the arena the Dispatch has (default: what the plan needs)
  validate?: PlanValidator | null; // default: the Dispatch's own, if it has one
  // Run the ops in C from the blob when the Dispatch can (bindPlan; default
  // true): no decoded op list, no copy of the flash section. false: one
  // Dispatch call per op (what a trace records).
  bind?: boolean;
}

export class PlanRuntime {
  readonly plan: Plan;
  private readonly label = new Int32Array(1);
  private binding: PlanBinding | null = null;

  private constructor(readonly dispatch: Dispatch, plan: Plan, private readonly blob: Uint8Array) {
    this.plan = plan;
  }

  // Whether the ops run in C from the blob (bindPlan) rather than one
  // Dispatch call each.
  get bound(): boolean {
    return this.binding !== null;
  }

  // Decodes and validates blob, writes its flash section into the
  // Dispatch's read-only region and puts the arena in its initial state.
  static load(dispatch: Dispatch, blob: Uint8Array, options: PlanLoadOptions = {}): PlanRuntime {
    const buffers = dispatch instanceof BufferDispatch ? dispatch : null;
    const capacity = options.arenaCapacity ?? (buffers ? buffers.bytes.length : Infinity);
    const bind = options.bind !== false && dispatch.bindPlan ? dispatch.bindPlan.bind(dispatch) : null;
    const plan = decodePlan(blob, capacity, { calls: !bind });
    if (bind) {
      const binding = bind(blob, Math.min(capacity, 0x3fffffff));
      if (binding.status[0] !== 0) PlanRuntime.rejected(blob, binding.status);
      const rt = new PlanRuntime(dispatch, plan, blob);
      rt.binding = binding;
      rt.reset();
      return rt;
    }
    const flashHas = buffers ? (buffers.flashBytes?.length ?? 0) : Infinity;
    if (plan.flash.length > flashHas) {
      throw new PlanError(`the plan's flash section is ${plan.flash.length} bytes, the ${dispatch.name} Dispatch's read-only region ` +
        `${flashHas}; give it a flash buffer of at least that size`, PlanStatus.bounds, PlanSection.flash);
    }
    const validate = options.validate === undefined ? dispatch.validatePlan?.bind(dispatch) : options.validate;
    if (validate) {
      const status = validate(blob, Math.min(capacity, 0x3fffffff));
      if (status[0] !== 0) PlanRuntime.rejected(blob, status);
    }
    const rt = new PlanRuntime(dispatch, plan, blob);
    if (plan.flash.length) dispatch.write(FLASH_BASE, plan.flash);
    rt.reset();
    return rt;
  }

  // The C validator's verdict as a PlanError naming the op it stopped at.
  private static rejected(blob: Uint8Array, [status, section, index]: readonly [number, number, number]): never {
    const calls = section === 4 || section === 5 ? decodePlan(blob)[section === 4 ? 'train' : 'infer'] : [];
    const call = calls[index];
    const op = call ? ` (${opName[call.op]})` : '';
    throw new PlanError(`${describePlanStatus(status, section, index)}${op}`, status, section, index);
  }

  // The arena as before the first step: zero, then the INIT records.
  reset(): void {
    this.dispatch.write(0, new Uint8Array(this.plan.arenaBytes));
    for (const r of this.plan.init) this.dispatch.write(r.offset, r.bytes);
  }

  private checkLabel(label: number): void {
    const { classes } = this.plan.io;
    if (!Number.isInteger(label) || label < 0 || label >= classes) {
      throw new PlanError(`plan label ${label} is not a class index in [0, ${classes})`, 3);
    }
  }

  private writeInput(input: Int8Array | Uint8Array): void {
    const t = this.plan.io.input;
    if (input.length !== t.bytes) {
      throw new PlanError(`plan input is int8[${t.shape.join('x')}] = ${t.bytes} bytes, got ${input.length} bytes`, 3);
    }
    this.dispatch.write(t.offset, new Uint8Array(input.buffer, input.byteOffset, input.length));
  }

  private run(calls: readonly PlanCall[], what: 'TRAIN' | 'INFER'): void {
    if (this.binding) {
      const { failed, status } = this.binding.run(what === 'TRAIN' ? 0 : 1);
      if (failed >= 0) {
        let name = '?', note = '';
        try {
          const call = decodePlan(this.blob)[what === 'TRAIN' ? 'train' : 'infer'][failed];
          if (call) name = opName[call.op];
        } catch (e) {
          note = `; the blob changed after it was loaded (${(e as Error).message})`;
        }
        throw new PlanError(`plan ${what} op ${failed} (${name}): ${statusNames[status] ?? `status ${status}`}${note}`, status,
          what === 'TRAIN' ? 4 : 5, failed);
      }
      return;
    }
    for (let i = 0; i < calls.length; i++) {
      const c = calls[i]!;
      try {
        this.dispatch.call(c.op, c.args);
      } catch (e) {
        throw new PlanError(`plan ${what} op ${i} (${opName[c.op]}): ${(e as Error).message}`, 0, what === 'TRAIN' ? 4 : 5, i);
      }
    }
  }

  // One training step on (input, label): forward, loss, backward, updates.
  // Returns p(label) before the update, in Q16, when the plan keeps it.
  step(input: Int8Array | Uint8Array, label: number): number | null {
    this.checkLabel(label);
    this.writeInput(input);
    return this.stepInPlace(label);
  }

  // The same step on the input already in the arena (written there by the
  // sensor capture, src/core/sensor.ts).
  stepInPlace(label: number): number | null {
    const { io } = this.plan;
    this.checkLabel(label);
    this.label[0] = label;
    this.dispatch.write(io.label, new Uint8Array(this.label.buffer));
    this.run(this.plan.train, 'TRAIN');
    return this.metric();
  }

  // p(label) of the last step's forward, in Q16 (the metric cell), when the
  // plan keeps it.
  metric(): number | null {
    const { io } = this.plan;
    if (io.metric < 0) return null;
    const b = this.dispatch.read(io.metric, 4);
    return new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
  }

  // The logits of the last step's forward (before its update) or of the
  // last inference.
  logits(): Int8Array {
    const t = this.plan.io.logits;
    const b = this.dispatch.read(t.offset, t.bytes);
    return new Int8Array(b.buffer, b.byteOffset, b.length);
  }

  // Inference only: the model's output (softmax output or logits).
  infer(input: Int8Array | Uint8Array): Int8Array {
    this.writeInput(input);
    return this.inferInPlace();
  }

  // The same inference on the input already in the arena. The inference
  // leaves the logits where a step does (logits() reads them).
  inferInPlace(): Int8Array {
    this.run(this.plan.infer, 'INFER');
    const t = this.plan.io.output;
    const b = this.dispatch.read(t.offset, t.bytes);
    return new Int8Array(b.buffer, b.byteOffset, b.length);
  }

  // The trainable regions (weights, biases, optimizer state, rng) in plan
  // order, concatenated: what a checkpoint keeps.
  regionBytes(): Uint8Array {
    const total = this.plan.regions.reduce((a, r) => a + r.bytes, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const r of this.plan.regions) {
      out.set(this.dispatch.read(r.offset, r.bytes), at);
      at += r.bytes;
    }
    return out;
  }

  // CRC-32 of regionBytes() (as the bare-metal driver's PLANCRC prints it).
  regionsCrc(): number {
    return crc32(this.regionBytes());
  }
}

// -ln p from the loss kernel's p(label) in Q16 (host-side reporting).
export function lossOfMetric(pQ16: number): number {
  return -Math.log(Math.max(pQ16, 1) / 65536);
}

// A deterministic sample for a plan's input: int8 values and a label from
// xorshift32(seed, index), the same on every engine.
export function seededSample(plan: Plan, index: number, seed: number): { input: Int8Array; label: number } {
  const rng = new Xorshift32((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0 || 1);
  const input = new Int8Array(plan.io.input.bytes);
  for (let i = 0; i < input.length; i++) input[i] = (rng.next() & 0xff) - 128;
  return { input, label: rng.next() % plan.io.classes };
}

// The bare-metal trace of a plan run (native/baremetal/driver.c): load and
// validate the plan, then per sample write input and label and run one
// training step, then the CRC of the trainable regions; optionally an
// inference on `inferInput` and a READ of its output.
export function recordPlanTrace(blob: Uint8Array, samples: readonly { input: Int8Array; label: number }[],
  inferInput?: Int8Array): Uint8Array {
  const plan = decodePlan(blob);
  const w = new TraceWriter(blob.length + 4096);
  w.plan(blob);
  const cell = new Int32Array(1);
  for (const s of samples) {
    w.write(plan.io.input.offset, new Uint8Array(s.input.buffer, s.input.byteOffset, s.input.length));
    cell[0] = s.label;
    w.write(plan.io.label, new Uint8Array(cell.buffer.slice(0)));
    w.planStep('train');
  }
  w.planCrc();
  if (inferInput) {
    w.write(plan.io.input.offset, new Uint8Array(inferInput.buffer, inferInput.byteOffset, inferInput.length));
    w.planStep('infer');
    w.read(plan.io.output.offset, plan.io.output.bytes);
  }
  return w.end();
}
