// Labels and the learning policy (src/core/labels.ts):
//  - console lines parse to commands, anything else to a message that says
//    what is accepted;
//  - a label outside the head's classes is rejected with a message, from the
//    console, the button's class, or the API;
//  - the prediction's confidence is the int8 softmax of the logits (close to
//    the float softmax), and self-training trains on a window exactly when
//    that confidence reaches the threshold (off by default, off when
//    training is off);
//  - the button: falling edges of a pull-up input are presses, contact
//    bounce within the debounce time is one press, and the class it gives
//    is held until `button K` changes it.
import { describe, expect, it } from 'vitest';
import {
  Button, COMMAND_HELP, OnlineLearner, type Trainer, type WindowSource, checkLabel, isConfident, parseCommand, predict,
} from '../src/core/labels.js';
import { Xorshift32 } from '../src/core/rng.js';
import { FakeDigital } from '../src/core/sensor-faults.js';
import type { CaptureStatus } from '../src/core/sensor.js';

class Source implements WindowSource {
  status: CaptureStatus = { state: 'ok', fault: null, message: 'ok', failedPolls: 0, since: 0 };
  hasWindow = false;
  windows = 0;
  writes = 0;
  next(): void {
    this.windows++;
    this.hasWindow = true;
  }
  writeInput(): void {
    this.writes++;
  }
}

class Stub implements Trainer {
  readonly classes = 4;
  readonly logitScale = 0.125;
  logits = Int8Array.of(0, 0, 0, 0);
  trained: number[] = [];
  infer(): Int8Array {
    return this.logits;
  }
  train(label: number): void {
    this.trained.push(label);
  }
}

describe('console commands', () => {
  it('parses the commands, case-insensitively and with extra spaces', () => {
    expect(parseCommand('label 3')).toEqual({ kind: 'label', label: 3 });
    expect(parseCommand('  LABEL   0 ')).toEqual({ kind: 'label', label: 0 });
    expect(parseCommand('button 2')).toEqual({ kind: 'button', label: 2 });
    expect(parseCommand('train on')).toEqual({ kind: 'train', on: true });
    expect(parseCommand('train OFF')).toEqual({ kind: 'train', on: false });
    expect(parseCommand('selftrain 0.9')).toEqual({ kind: 'selftrain', threshold: 0.9 });
    expect(parseCommand('selftrain .75')).toEqual({ kind: 'selftrain', threshold: 0.75 });
    expect(parseCommand('selftrain off')).toEqual({ kind: 'selftrain', threshold: null });
    expect(parseCommand('status')).toEqual({ kind: 'status' });
    expect(parseCommand('help')).toEqual({ kind: 'help' });
  });

  it('anything else is a message saying what is wrong and what is accepted', () => {
    const msg = (line: string) => {
      const c = parseCommand(line);
      expect(c.kind).toBe('invalid');
      return (c as { message: string }).message;
    };
    expect(msg('lable 3')).toBe(`unknown command 'lable'; ${COMMAND_HELP}`);
    expect(msg('')).toBe(`empty command; ${COMMAND_HELP}`);
    expect(msg('label')).toBe('label needs a class index (0, 1, 2, ...), got nothing');
    expect(msg('label -1')).toBe("label needs a class index (0, 1, 2, ...), got '-1'");
    expect(msg('label 1.5')).toBe("label needs a class index (0, 1, 2, ...), got '1.5'");
    expect(msg('label 3 4')).toBe(`'label 3 4': too many words; ${COMMAND_HELP}`);
    expect(msg('train maybe')).toBe("train takes on or off, got 'maybe'");
    for (const bad of ['1', '0', '1.5', '-0.5', 'x', '0.9.1']) expect(msg(`selftrain ${bad}`)).toMatch(/^selftrain takes a confidence threshold T with 0 < T < 1/);
    expect(msg('status now')).toBe('status takes no argument');
  });

  it('applied by the learner: each command changes what it says and replies', () => {
    const learner = new OnlineLearner(new Stub(), new Source());
    expect(learner.command('selftrain 0.8')).toEqual({ accepted: true, message: 'self-training at confidence >= 0.8' });
    expect(learner.selfTrain).toBe(0.8);
    expect(learner.command('train off').message).toBe('training off');
    expect(learner.training).toBe(false);
    expect(learner.command('button 3').message).toBe('the button now labels windows 3');
    expect(learner.buttonLabel).toBe(3);
    expect(learner.command('frobnicate')).toEqual({ accepted: false, message: `unknown command 'frobnicate'; ${COMMAND_HELP}` });
    expect(learner.command('status').message).toBe('sensor ok; windows 0; training off; self-training >= 0.8; button label 3; ' +
      'steps 0 (self 0); rejected 0; last prediction none');
  });
});

describe('labels outside the head', () => {
  it('are rejected with a message naming the head\'s classes, and nothing trains', () => {
    expect(checkLabel(3, 4)).toBe(null);
    expect(checkLabel(4, 4)).toBe('label 4 rejected: the head has 4 classes (labels 0 to 3)');
    expect(checkLabel(-1, 4)).toBe('label -1 rejected: the head has 4 classes (labels 0 to 3)');
    expect(checkLabel(1.5, 4)).toBe('label 1.5 rejected: the head has 4 classes (labels 0 to 3)');
    const stub = new Stub(), source = new Source();
    const reported: string[] = [];
    const learner = new OnlineLearner(stub, source, { report: (m) => reported.push(m) });
    source.next();
    learner.onWindow();
    expect(learner.command('label 7')).toEqual({ accepted: false, message: 'label 7 rejected: the head has 4 classes (labels 0 to 3)' });
    expect(learner.label(4, 'button').accepted).toBe(false);
    expect(learner.command('button 4').message).toBe('button label 4 rejected: the head has 4 classes (labels 0 to 3)');
    expect(learner.buttonLabel).toBe(0);
    expect(stub.trained).toEqual([]);
    expect(learner.rejected).toBe(2);
    expect(reported).toContain('label 7 rejected: the head has 4 classes (labels 0 to 3)');
    // A label in range for the same window trains once.
    expect(learner.command('label 3')).toEqual({ accepted: true, message: 'window 1 trained on label 3 (console)' });
    expect(stub.trained).toEqual([3]);
    expect(() => new OnlineLearner(stub, source, { buttonLabel: 9 })).toThrow('button label 9 rejected: the head has 4 classes');
  });

  it('no window yet, or training off: not used, with the reason', () => {
    const stub = new Stub(), source = new Source();
    const learner = new OnlineLearner(stub, source, { training: false });
    expect(learner.label(1, 'console').message).toBe("label 1 not used: training is off ('train on' turns it on)");
    learner.command('train on');
    expect(learner.label(1, 'console').message).toBe('label 1 not used: no window since the sensor started');
    source.next();
    expect(learner.label(1, 'console').accepted).toBe(true);
    expect(stub.trained).toEqual([1]);
    expect(source.writes).toBe(1); // the window's features went back into the arena before the step
  });
});

describe('predictions and self-training', () => {
  it('the int8 softmax confidence is within 1/128 of the float softmax, for the largest logit', () => {
    const rng = new Xorshift32(5);
    for (let k = 0; k < 200; k++) {
      const n = 2 + rng.below(9), scale = Math.fround(0.02 + rng.below(200) / 1000);
      const logits = Int8Array.from({ length: n }, () => rng.int(-128, 127));
      const p = predict(logits, scale);
      const max = Math.max(...logits);
      expect(logits[p.label]).toBe(max);
      expect(logits.indexOf(max)).toBe(p.label);
      const sum = Array.from(logits).reduce((a, v) => a + Math.exp((v - max) * scale), 0);
      expect(Math.abs(p.confidenceQ8 / 256 - 1 / sum)).toBeLessThanOrEqual(1 / 128);
    }
  });

  it('trains on its own prediction exactly when the confidence reaches the threshold; off by default', () => {
    const stub = new Stub(), source = new Source();
    stub.logits = Int8Array.of(-20, 30, -20, 0); // class 1
    const p = predict(stub.logits, stub.logitScale);
    expect(p.label).toBe(1);
    const atQ8 = p.confidenceQ8;
    expect(atQ8).toBeGreaterThan(128);
    expect(isConfident(p, atQ8 / 256)).toBe(true);
    expect(isConfident(p, (atQ8 + 1) / 256)).toBe(false);

    const learner = new OnlineLearner(stub, source);
    source.next();
    expect(learner.onWindow().trained).toBe(null); // self-training is off by default
    learner.command(`selftrain ${atQ8 / 256}`);
    source.next();
    const o = learner.onWindow();
    expect(o).toMatchObject({ window: 2, trained: 'self', prediction: p });
    expect(o.message).toBe(`window 2: class 1 (p ${(atQ8 / 256).toFixed(2)}): self-trained (threshold ${atQ8 / 256})`);
    learner.command(`selftrain ${(atQ8 + 1) / 256}`);
    source.next();
    expect(learner.onWindow().trained).toBe(null);
    learner.command(`selftrain ${atQ8 / 256}`);
    learner.command('train off');
    source.next();
    expect(learner.onWindow().trained).toBe(null);
    expect(stub.trained).toEqual([1]);
    expect([learner.inferences, learner.steps, learner.selfSteps]).toEqual([4, 1, 1]);
    // A self-trained window can still take a human label (a correction).
    learner.command('train on');
    learner.command('selftrain 0.5');
    source.next();
    learner.onWindow();
    expect(learner.label(2, 'console').accepted).toBe(true);
    expect(stub.trained).toEqual([1, 1, 2]);
  });
});

describe('the button', () => {
  it('a press labels the last window with the held class; bounce is one press; button K changes the class', () => {
    let now = 0;
    const stub = new Stub(), source = new Source();
    const learner = new OnlineLearner(stub, source, { buttonLabel: 2 });
    const button = new Button({ now: () => now, onPress: () => learner.press() });
    const pin = new FakeDigital({ level: 1, edge: FakeDigital.Rising | FakeDigital.Falling, onReadable() { button.readable(this); } });
    const press = (bounces: number) => {
      for (let b = 0; b < bounces; b++) {
        pin.set(0);
        now += 2;
        pin.set(1);
        now += 2;
      }
      pin.set(0);
      now += 100;
      pin.set(1);
      now += 100;
    };
    source.next();
    press(3);
    expect(button.presses).toBe(1);
    expect(stub.trained).toEqual([2]);
    press(0); // same window: refused, but counted as a press
    expect(button.presses).toBe(2);
    expect(stub.trained).toEqual([2]);
    learner.command('button 1');
    source.next();
    press(1);
    source.next();
    press(0);
    expect(stub.trained).toEqual([2, 1, 1]);
    // Pressed level 1 (a button to 3.3 V with a pull-down): rising edges are presses.
    const high = new Button({ now: () => now, pressedLevel: 1, onPress: () => learner.press() });
    const pin2 = new FakeDigital({ level: 0, onReadable() { high.readable(this); } });
    source.next();
    pin2.set(1);
    expect(high.presses).toBe(1);
    pin2.set(0);
    expect(stub.trained).toEqual([2, 1, 1, 1]);
  });
});
