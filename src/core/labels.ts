// Labels and the learning policy of the device app: infer on every window,
// learn only when the window has a label. Labels come from
//   - a button: a press labels the last window with the button's class.
//     The class is held, not cycled: it stays what `button K` on the
//     console (or the buttonLabel option) set, so one press is one label
//     and a user who teaches one event ("this is the fault") never has to
//     count presses; cycling would make the meaning of a press depend on
//     how many came before;
//   - the console (serial) channel: `label K` labels the last window;
//     `train on|off`, `selftrain T|off`, `button K`, `status`, `help`;
//   - self-training (off by default): a window whose prediction reaches the
//     confidence threshold T trains on its own prediction.
// A label outside the head's classes is rejected with a message; so is a
// label while the sensor is not ok (learning pauses, inference goes on when
// windows come again), a second label for the same window, and a label
// before any window. Nothing throws: every outcome is a message to show.
// Platform-free; the button's time comes from the caller (now()).

import type { PlanRuntime } from './plan-runtime.js';
import { softmaxForward } from './reference/softmax.js';
import type { CaptureStatus } from './sensor.js';
import { softmaxQuantParams } from './tflite-params.js';

export type LabelSource = 'button' | 'console' | 'self';

// ---- console commands ------------------------------------------------------------

export type Command =
  | { kind: 'label'; label: number }
  | { kind: 'train'; on: boolean }
  | { kind: 'selftrain'; threshold: number | null } // null: off
  | { kind: 'button'; label: number }
  | { kind: 'status' }
  | { kind: 'help' }
  | { kind: 'invalid'; message: string };

export const COMMAND_HELP = 'commands: label K | button K | train on|off | selftrain T (0 < T < 1) | selftrain off | status | help';

function classIndex(word: string | undefined, command: string): Command {
  if (word === undefined || !/^\d+$/.test(word)) {
    return { kind: 'invalid', message: `${command} needs a class index (0, 1, 2, ...), got ${word === undefined ? 'nothing' : `'${word}'`}` };
  }
  return { kind: command as 'label' | 'button', label: Number(word) };
}

// One line from the console -> a command (nothing is applied here).
export function parseCommand(line: string): Command {
  const words = line.trim().split(/\s+/).filter((w) => w.length > 0);
  const [verb, arg, extra] = [words[0]?.toLowerCase(), words[1]?.toLowerCase(), words[2]];
  if (verb === undefined) return { kind: 'invalid', message: `empty command; ${COMMAND_HELP}` };
  if (extra !== undefined) return { kind: 'invalid', message: `'${line.trim()}': too many words; ${COMMAND_HELP}` };
  switch (verb) {
    case 'label':
    case 'button':
      return classIndex(arg, verb);
    case 'train':
      if (arg === 'on' || arg === 'off') return { kind: 'train', on: arg === 'on' };
      return { kind: 'invalid', message: `train takes on or off, got ${arg === undefined ? 'nothing' : `'${arg}'`}` };
    case 'selftrain': {
      if (arg === 'off') return { kind: 'selftrain', threshold: null };
      const t = arg === undefined || !/^[0-9.]+$/.test(arg) ? NaN : Number(arg);
      if (t > 0 && t < 1) return { kind: 'selftrain', threshold: t };
      return { kind: 'invalid', message: `selftrain takes a confidence threshold T with 0 < T < 1 (e.g. selftrain 0.9) or off, got ${arg === undefined ? 'nothing' : `'${arg}'`}` };
    }
    case 'status':
    case 'help':
      return arg === undefined ? { kind: verb } : { kind: 'invalid', message: `${verb} takes no argument` };
    default:
      return { kind: 'invalid', message: `unknown command '${words[0]}'; ${COMMAND_HELP}` };
  }
}

// ---- predictions ----------------------------------------------------------------

export interface Prediction {
  label: number; // the largest logit (the first of equals)
  confidenceQ8: number; // p(label) in 1/256, 0..255: the int8 softmax's output + 128
}

// The class and its softmax probability from int8 logits at `scale`, with
// the reference int8 softmax (TFLite's, output scale 1/256): integer
// arithmetic only, the same on every engine.
export function predict(logits: Int8Array, scale: number): Prediction {
  const n = logits.length;
  if (n < 1) throw new RangeError('predict: no logits');
  const probs = new Int8Array(n);
  softmaxForward(1, n, softmaxQuantParams(1, scale), logits, probs);
  let best = 0;
  for (let c = 1; c < n; c++) if (logits[c]! > logits[best]!) best = c;
  return { label: best, confidenceQ8: probs[best]! + 128 };
}

// p >= threshold with p = confidenceQ8 / 256 (exact: 256 * T is exact).
export function isConfident(p: Prediction, threshold: number): boolean {
  return p.confidenceQ8 >= threshold * 256;
}

// A label a head with `classes` outputs can learn, or the message that
// rejects it.
export function checkLabel(label: number, classes: number): string | null {
  if (Number.isInteger(label) && label >= 0 && label < classes) return null;
  return `label ${label} rejected: the head has ${classes} classes (labels 0 to ${classes - 1})`;
}

// ---- the button --------------------------------------------------------------------

// The part of embedded:io/digital the button needs: read() of the pin.
export interface DigitalReader {
  read(): number;
}

export interface ButtonOptions {
  now: () => number; // ms
  onPress: () => void;
  // The pin level while pressed: 0 (default) for a button to ground on an
  // input with the pull-up (Digital.InputPullUp).
  pressedLevel?: 0 | 1;
  // A press within this many ms of the last one is contact bounce (default 50).
  debounceMs?: number;
}

// Turns the edges of a digital input into presses: wire it as the Digital's
// onReadable with edge Rising | Falling, `onReadable() { button.readable(this) }`.
export class Button {
  private down = false;
  private lastPress = -Infinity;
  presses = 0;

  constructor(readonly o: ButtonOptions) {}

  readable(io: DigitalReader): void {
    const down = io.read() === (this.o.pressedLevel ?? 0);
    if (down && !this.down) {
      const t = this.o.now();
      if (t - this.lastPress >= (this.o.debounceMs ?? 50)) {
        this.lastPress = t;
        this.presses++;
        this.o.onPress();
      }
    }
    this.down = down;
  }
}

// ---- the policy ------------------------------------------------------------------

// What learning needs of the model: inference and one training step on the
// input already in the arena, the logits' scale and the head's classes.
export interface Trainer {
  readonly classes: number;
  readonly logitScale: number;
  infer(): Int8Array; // the logits
  train(label: number): void;
}

export function planTrainer(rt: PlanRuntime): Trainer {
  return {
    classes: rt.plan.io.classes,
    logitScale: rt.plan.io.logits.scale,
    infer: () => {
      rt.inferInPlace();
      return rt.logits();
    },
    train: (label) => {
      rt.stepInPlace(label);
    },
  };
}

// What the policy needs of the capture (src/core/sensor.ts Capture).
export interface WindowSource {
  readonly status: CaptureStatus;
  readonly hasWindow: boolean; // the last window is valid (no fault since)
  readonly windows: number; // windows so far: the last one's number
  writeInput(): void; // its features into the arena's input again
}

export interface LearnerOptions {
  training?: boolean; // default true
  selfTrain?: number | null; // confidence threshold, default null (off)
  buttonLabel?: number; // the class a button press gives, default 0
  report?: (message: string) => void; // every message also goes here (console, trace)
}

export interface WindowOutcome {
  window: number;
  prediction: Prediction;
  trained: 'self' | null;
  message: string;
}

export interface LabelOutcome {
  accepted: boolean;
  message: string;
}

export class OnlineLearner {
  training: boolean;
  selfTrain: number | null;
  buttonLabel: number;
  inferences = 0;
  steps = 0; // every training step, self-training's included
  selfSteps = 0;
  rejected = 0; // labels not used (with the reason in their message)
  private labelled = 0; // the window number that has a human label (0: none)
  private last: Prediction | null = null;
  private readonly report: ((message: string) => void) | null;

  constructor(readonly trainer: Trainer, readonly source: WindowSource, o: LearnerOptions = {}) {
    this.training = o.training ?? true;
    this.selfTrain = o.selfTrain ?? null;
    this.buttonLabel = o.buttonLabel ?? 0;
    this.report = o.report ?? null;
    const bad = checkLabel(this.buttonLabel, trainer.classes);
    if (bad) throw new RangeError(`button ${bad}`);
    if (this.selfTrain !== null && !(this.selfTrain > 0 && this.selfTrain < 1)) {
      throw new RangeError(`self-training threshold ${this.selfTrain} must be in (0, 1)`);
    }
  }

  private say<T extends { message: string }>(outcome: T): T {
    this.report?.(outcome.message);
    return outcome;
  }

  // Call when Capture.poll() has produced a window: inference, and a
  // self-training step when that is on and the prediction is confident.
  onWindow(): WindowOutcome {
    const window = this.source.windows;
    this.source.writeInput();
    const prediction = predict(this.trainer.infer(), this.trainer.logitScale);
    this.inferences++;
    this.last = prediction;
    const p = `window ${window}: class ${prediction.label} (p ${(prediction.confidenceQ8 / 256).toFixed(2)})`;
    if (!this.training || this.selfTrain === null || !isConfident(prediction, this.selfTrain) || this.source.status.state !== 'ok') {
      return { window, prediction, trained: null, message: p };
    }
    this.source.writeInput(); // the inference may have reused the input's bytes
    this.trainer.train(prediction.label);
    this.steps++;
    this.selfSteps++;
    return this.say({ window, prediction, trained: 'self', message: `${p}: self-trained (threshold ${this.selfTrain})` });
  }

  // A label for the last window, from the button or the console.
  label(label: number, from: 'button' | 'console'): LabelOutcome {
    const reject = (message: string): LabelOutcome => {
      this.rejected++;
      return this.say({ accepted: false, message });
    };
    const bad = checkLabel(label, this.trainer.classes);
    if (bad) return reject(bad);
    const status = this.source.status;
    if (status.state !== 'ok') return reject(`label ${label} not used: learning is paused while the sensor is ${status.state} (${status.message})`);
    if (!this.training) return reject(`label ${label} not used: training is off ('train on' turns it on)`);
    const window = this.source.windows;
    if (!this.source.hasWindow) return reject(`label ${label} not used: no window since the sensor ${window ? 'recovered' : 'started'}`);
    if (this.labelled === window) return reject(`label ${label} not used: window ${window} already has a label`);
    this.source.writeInput();
    this.trainer.train(label);
    this.steps++;
    this.labelled = window;
    return this.say({ accepted: true, message: `window ${window} trained on label ${label} (${from})` });
  }

  press(): LabelOutcome {
    return this.label(this.buttonLabel, 'button');
  }

  // One console line -> its reply.
  command(line: string): LabelOutcome {
    const c = parseCommand(line);
    switch (c.kind) {
      case 'invalid':
        return this.say({ accepted: false, message: c.message });
      case 'label':
        return this.label(c.label, 'console');
      case 'button': {
        const bad = checkLabel(c.label, this.trainer.classes);
        if (bad) return this.say({ accepted: false, message: `button ${bad}` });
        this.buttonLabel = c.label;
        return this.say({ accepted: true, message: `the button now labels windows ${c.label}` });
      }
      case 'train':
        this.training = c.on;
        return this.say({ accepted: true, message: `training ${c.on ? 'on' : 'off'}` });
      case 'selftrain':
        this.selfTrain = c.threshold;
        return this.say({ accepted: true, message: c.threshold === null ? 'self-training off' : `self-training at confidence >= ${c.threshold}` });
      case 'status':
        return this.say({ accepted: true, message: this.describe() });
      case 'help':
        return this.say({ accepted: true, message: COMMAND_HELP });
    }
  }

  describe(): string {
    const s = this.source.status, l = this.last;
    return `sensor ${s.state}${s.state === 'ok' ? '' : ` (${s.message})`}; windows ${this.source.windows}; ` +
      `training ${this.training ? 'on' : 'off'}; self-training ${this.selfTrain === null ? 'off' : `>= ${this.selfTrain}`}; ` +
      `button label ${this.buttonLabel}; steps ${this.steps} (self ${this.selfSteps}); rejected ${this.rejected}; ` +
      `last prediction ${l ? `${l.label} (p ${(l.confidenceQ8 / 256).toFixed(2)})` : 'none'}`;
  }
}
