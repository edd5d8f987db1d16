// The trainer service of the device app: loads and validates the plan,
// restores the newest checkpoint, and then, window by window from the
// sensor capture, infers and trains when the window has a label, keeping a
// running accuracy and loss, checkpointing every N windows through the
// rollback guard, and reporting progress. Platform-free (runs on XS): the
// plan blob, the Dispatch, the flash and the sensor are handed in.
//
// What it owns and reuses: PlanRuntime (plan-runtime.ts) for the plan;
// Capture + FrameFeatures (sensor.ts) for the windows (or, with the
// `windows` option, another feature path such as the device's
// AccelerometerFeatures); OnlineLearner
// (labels.ts) for the policy "infer on every window, learn only with a
// label"; CheckpointStore (checkpoint.ts) and RollbackGuard (rollback.ts)
// for the training state in flash.
//
// The checkpoint's step is the stream position: windows taken so far (each
// labelled window is one training step). A resumed app replays from there,
// so a run stopped and started again trains on the same windows in the same
// order as one without a stop and ends in the same bytes. The running
// averages are not in the checkpoint: they start again after a resume.
//
// Running accuracy and loss are exponential moving averages over the
// labelled windows with horizon `average` (weight 1/min(n, average) for the
// n-th value: the plain mean until `average` values, then an EMA with
// alpha = 1/average). Accuracy: the prediction of the inference made
// before learning on the window (test-then-train) against its label; loss:
// -ln p(label) from the training step's forward (also before its update).

import { type BootResult, CheckpointStore, checkpointFlashBytes, planCheckpointState, planIdentity } from './checkpoint.js';
import type { Flash } from './flash.js';
import type { Dispatch } from './kernels.js';
import { type LabelOutcome, type LearnerOptions, OnlineLearner, type Prediction, parseCommand, planTrainer } from './labels.js';
import { type Plan, decodePlan } from './plan-format.js';
import { PlanRuntime, lossOfMetric } from './plan-runtime.js';
import { RollbackGuard, holdoutAccuracy } from './rollback.js';
import { Capture, type CaptureOptions, type FeaturePath, type Frame, FrameFeatures, type SensorClass } from './sensor.js';

export class TrainerError extends Error {}

export interface LabelledFrames {
  readonly count: number;
  frame(index: number): Frame;
  label(index: number): number;
}

// Windows of samples other than camera frames (e.g. an accelerometer's):
// their feature path and the capture's window; the plan's input is then
// whatever the features fill (Capture checks the size).
export interface WindowOptions<S> {
  features: FeaturePath<S>;
  size: number; // samples a window
  hop: number; // samples between window starts
  rateHz?: number; // default 0: every poll samples
  onStatus?: CaptureOptions<S>['onStatus'];
}

export interface TrainerOptions<S = Frame> {
  blob: Uint8Array; // the plan blob, as read from its flash partition
  what?: string; // where the blob came from, for messages (e.g. its path)
  dispatch: (plan: Plan) => Dispatch; // a Dispatch with the plan's arena and flash
  arenaCapacity?: number; // the arena the Dispatch has (default: what the plan needs)
  // The checkpoint partition (from sector 0), given the bytes of training
  // state the plan keeps (checkpointFlashBytes(stateBytes, sector) fit two).
  flash: (stateBytes: number) => Flash;
  sensor: SensorClass<S>;
  // Without it: one grayscale frame a window, through FrameFeatures (below).
  windows?: WindowOptions<S>;
  // The learner's options (button label, self-training, its report of
  // labels and commands). Default: none, so labelOf's refusals are said here.
  learner?: LearnerOptions;
  // Pixel byte -> real value (FrameFeatures). Default: byteScale = the
  // input's scale, byteOffset = -(128 + zeroPoint) * scale, so byte b
  // becomes int8 b - 128 exactly (person_detect's camera convention).
  byteScale?: number;
  byteOffset?: number;
  checkpointEvery?: number; // windows between checkpoints (default 200; 0: never)
  // Labelled frames: with them, checkpoints go through the rollback guard
  // (scored an inference each, converted as the capture converts).
  holdout?: LabelledFrames;
  rollbackMargin?: number; // default 0.15
  onMessage?: (message: string) => void; // boot, checkpoints, rollbacks, refused labels
  average?: number; // horizon of the running averages in labelled windows (default 100)
}

export interface TrainerReport {
  windows: number; // stream position
  steps: number; // training steps in this run
  accuracy: number | null; // running, in [0, 1]; null before the first label
  loss: number | null;
  arenaBytes: number;
  checkpoints: number; // saved in this run
  rollbacks: number;
}

export class TrainerService<S = Frame> {
  readonly rt: PlanRuntime;
  readonly capture: Capture<S>;
  readonly learner: OnlineLearner;
  readonly store: CheckpointStore;
  readonly guard: RollbackGuard | null;
  readonly every: number;
  readonly average: number;
  readonly messages: string[] = []; // the last 100 things the service said, in order
  boot: BootResult | null = null;
  windows = 0; // stream position: restored from the checkpoint, then +1 a window
  startWindow = 0;
  accuracy: number | null = null;
  loss: number | null = null;
  checkpoints = 0;
  rollbacks = 0;
  private labelled = 0; // labelled windows in this run (for the averages)
  private last: Prediction | null = null; // the last window's (before any label)

  constructor(readonly o: TrainerOptions<S>) {
    const what = o.what ?? 'the plan';
    try {
      // decodePlan sizes the Dispatch (no op list kept); load decodes again
      // and runs the C validator (every op's tensors against the arena and
      // flash).
      const d = o.dispatch(decodePlan(o.blob, Infinity, { calls: false }));
      this.rt = o.arenaCapacity === undefined ? PlanRuntime.load(d, o.blob) : PlanRuntime.load(d, o.blob, { arenaCapacity: o.arenaCapacity });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new TrainerError(`${what} is not a usable training plan: ${why}; compile it again (npm start's prepare step does)`);
    }
    const { io } = this.rt.plan;
    const w = o.windows;
    if (w) {
      this.capture = new Capture(o.sensor, { ...w, input: io.input, arena: this.rt.dispatch });
    } else {
      if (io.input.shape.length !== 4 || io.input.shape[3] !== 1) {
        throw new TrainerError(`${what}: the trainer feeds grayscale camera frames; the plan's input is int8[${io.input.shape.join('x')}], not [1, H, W, 1]`);
      }
      const [height, width] = [io.input.shape[1]!, io.input.shape[2]!];
      const scale = io.input.scale;
      const features = new FrameFeatures({
        width, height,
        byteScale: o.byteScale ?? scale,
        byteOffset: o.byteOffset ?? -(128 + io.input.zeroPoint) * scale,
      });
      // S is Frame here (no windows option: the frame path).
      this.capture = new Capture(o.sensor, { features: features as unknown as FeaturePath<S>, input: io.input, arena: this.rt.dispatch, size: 1, hop: 1 });
    }
    const rt = this.rt;
    this.learner = new OnlineLearner(planTrainer(rt), this.capture, o.learner);
    const state = planCheckpointState(this.rt);
    const payload = this.rt.plan.regions.reduce((a, r) => a + r.bytes, 0);
    const flash = o.flash(payload);
    try {
      this.store = new CheckpointStore(flash, state, planIdentity(o.blob));
    } catch (e) {
      throw new TrainerError(`${(e as Error).message} (the plan keeps ${payload} bytes of training state; ${checkpointFlashBytes(payload, flash.blockSize)} bytes of flash hold two checkpoints)`);
    }
    this.every = o.checkpointEvery ?? 200;
    this.average = o.average ?? 100;
    const h = o.holdout;
    this.guard = h && h.count ? new RollbackGuard(this.store, () => this.accuracyOn(h), o.rollbackMargin ?? 0.15) : null;
  }

  private say(message: string): void {
    if (this.messages.length === 100) this.messages.shift();
    this.messages.push(message);
    this.o.onMessage?.(message);
  }

  // Restores the newest valid checkpoint (a damaged one is named and
  // skipped, boot says which it fell back to) or says it starts fresh.
  // Returns the stream position to resume from.
  start(): number {
    const boot = this.store.boot();
    this.boot = boot;
    for (const m of boot.messages) this.say(m);
    this.windows = this.startWindow = boot.restored ? boot.restored.step : 0;
    return this.windows;
  }

  get plan(): Plan {
    return this.rt.plan;
  }

  // One poll of the capture. When it gives a window: inference, then the
  // label `labelOf(position)` gives (null: none) as a training step, then a
  // checkpoint when one is due. Returns the window's prediction, or null
  // when there was no window.
  poll(now: number, labelOf: (position: number) => number | null): Prediction | null {
    if (!this.capture.poll(now)) return null;
    const position = this.windows++;
    const outcome = this.learner.onWindow();
    this.last = outcome.prediction;
    const label = labelOf(position);
    if (label !== null) this.label(label, 'console');
    if (this.every > 0 && this.windows % this.every === 0) this.checkpoint();
    return outcome.prediction;
  }

  // A label for the last window (a training step when the learner takes
  // it), counted in the running averages. A refusal is said here unless the
  // learner has its own report (which said it).
  label(label: number, from: 'button' | 'console'): LabelOutcome {
    const done = this.learner.label(label, from);
    if (!done.accepted) {
      if (!this.o.learner?.report) this.say(done.message);
    } else if (this.last) {
      this.labelled++;
      const w = 1 / Math.min(this.labelled, this.average);
      const hit = this.last.label === label ? 1 : 0;
      this.accuracy = this.accuracy === null ? hit : this.accuracy + w * (hit - this.accuracy);
      const metric = this.rt.metric(); // the step just taken
      if (metric !== null) {
        const l = lossOfMetric(metric);
        this.loss = this.loss === null ? l : this.loss + w * (l - this.loss);
      }
    }
    return done;
  }

  press(): LabelOutcome {
    return this.label(this.learner.buttonLabel, 'button');
  }

  // One console line: labels go through label() (the averages), the other
  // commands to the learner.
  command(line: string): LabelOutcome {
    const c = parseCommand(line);
    return c.kind === 'label' ? this.label(c.label, 'console') : this.learner.command(line);
  }

  // Saves the training state at the current position (through the rollback
  // guard when there is a holdout), unless the newest checkpoint is already
  // of this position.
  checkpoint(): void {
    const newest = this.store.newest();
    if (newest && newest.step === this.windows) return;
    if (this.guard) {
      const r = this.guard.checkpoint(this.windows);
      if (r.action === 'rolled back') this.rollbacks++;
      else this.checkpoints++;
      this.say(r.message);
    } else {
      const saved = this.store.save(this.windows);
      this.checkpoints++;
      this.say(`saved checkpoint generation ${saved.generation} at step ${saved.step}`);
    }
  }

  // The fraction of the first `count` labelled frames the model classifies
  // right (an inference each, on the features the capture would make; the
  // training state is not touched).
  accuracyOn(set: LabelledFrames, count = set.count): number {
    let correct = 0;
    for (let i = 0; i < count; i++) correct += holdoutAccuracy(this.rt, [{ input: this.features(set.frame(i)), label: set.label(i) }]);
    return count ? correct / count : 0;
  }

  // A frame's int8 features as the capture makes them (for test sets).
  features(frame: Frame): Int8Array {
    const f = this.capture.o.features as unknown as FrameFeatures;
    if (!(f instanceof FrameFeatures)) throw new TrainerError('features(frame): this trainer takes windows of other samples, not camera frames');
    const table = f.byteTable(this.rt.plan.io.input), out = new Int8Array(frame.pixels.length);
    for (let i = 0; i < out.length; i++) out[i] = table[frame.pixels[i]!]!;
    return out;
  }

  report(): TrainerReport {
    return {
      windows: this.windows, steps: this.learner.steps, accuracy: this.accuracy, loss: this.loss,
      arenaBytes: this.rt.plan.arenaBytes, checkpoints: this.checkpoints, rollbacks: this.rollbacks,
    };
  }

  // One progress line (the app adds what only the platform knows: time,
  // heap).
  progress(total: number | null = null): string {
    const r = this.report();
    const acc = r.accuracy === null ? '-' : `${(100 * r.accuracy).toFixed(1)}%`;
    const loss = r.loss === null ? '-' : r.loss.toFixed(3);
    return `step ${r.windows}${total === null ? '' : `/${total}`}  running accuracy ${acc}  loss ${loss}  ` +
      `arena ${r.arenaBytes} B`;
  }
}
