// `npx xstrain infer` and `compile` as a developer runs them: one JSON line
// (infer) or the plan and its report (compile) on success, an actionable
// message and a nonzero status on bad input.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSize } from '../src/cli/xstrain.js';
import { buildMobileNetV2 } from '../src/compiler/arch/mobilenetv2.js';
import { SchemeFitter } from '../src/compiler/train/budget.js';
import { trainableLayers } from '../src/compiler/train/layers.js';
import { type SparseUpdateScheme, checkScheme } from '../src/compiler/train/scheme.js';
import { importTflite } from '../src/compiler/tflite/import.js';
import { writeTflite } from '../src/compiler/tflite/write.js';
import { dequantizeGraph } from '../src/compiler/quantize/dequantize.js';
import { decodePlan } from '../src/core/plan-format.js';
import { PlanRuntime, seededSample } from '../src/core/plan-runtime.js';
import { NodeDispatch, repoRoot, validatePlanC } from '../src/node/addon.js';
import { FT, finetuneImages } from './support/finetune-search.js';

const cli = join(repoRoot, 'bin', 'xstrain.mjs');
const dir = mkdtempSync(join(tmpdir(), 'xstrain-cli-'));
const model = (m: string) => join(repoRoot, 'models', m);

// Asynchronous, so a long compile does not block the test worker's event loop
// (vitest's RPC to the worker times out on a loaded machine otherwise).
function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return runNode([cli, ...args]);
}

function runNode(argv: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('xstrain infer', () => {
  it('prints the int8 output of hello_world for x = π/2 (sin = 1)', async () => {
    // x = 1.5708 -> q = round(x / 0.024480) - 128 = -64
    const input = join(dir, 'x.bin');
    writeFileSync(input, Uint8Array.of(-64 & 0xff));
    const out = execFileSync(process.execPath, [cli, 'infer', model('hello_world_int8.tflite'), '--input', input, '--target', 'node'],
      { encoding: 'utf8' });
    const line = JSON.parse(out.trim()) as { output: number[]; target: string };
    expect(line.target).toBe('node');
    expect(line.output).toHaveLength(1);
    const y = (line.output[0]! - 5) * 0.008291;
    expect(Math.abs(y - 1)).toBeLessThan(0.1);
  }, 60_000);

  it('an input of the wrong size says the size the model needs', async () => {
    const input = join(dir, 'short.bin');
    writeFileSync(input, new Uint8Array(100));
    const r = await run(['infer', model('person_detect.tflite'), '--input', input]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('input of "person_detect.tflite" is int8[1,96,96,1] = 9216 bytes, got 100 bytes');
  }, 60_000);

  it('a file that is not a model, a missing option and an unknown target are clear errors', async () => {
    const junk = join(dir, 'junk.tflite');
    writeFileSync(junk, new Uint8Array(64).fill(7));
    const bad = await run(['infer', junk, '--input', junk]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^xstrain: junk\.tflite: /);
    const noInput = await run(['infer', model('hello_world_int8.tflite')]);
    expect(noInput.status).toBe(2);
    expect(noInput.stderr).toContain('infer needs --input FILE');
    const target = await run(['infer', model('hello_world_int8.tflite'), '--input', junk, '--target', 'esp32']);
    expect(target.status).toBe(2);
    expect(target.stderr).toContain('unknown target "esp32": use one of node, xs, cortex-m4, rv32');
  }, 60_000);
});

// `xstrain compile` as a developer runs it: the plan, the report and the
// arena chart; an impossible budget and a bad scheme are errors that say
// what to change.
describe('xstrain compile', () => {
  const scheme = (name: string, s: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, typeof s === 'string' ? s : JSON.stringify(s));
    return path;
  };
  const bytes = (text: string) => Number(text.replace(/,/g, ''));
  const msScheme: SparseUpdateScheme = { biasLayers: 2, weights: [] };
  const pdScheme: SparseUpdateScheme = { biasLayers: 10, weights: [{ layer: 26, ratio: 0.5 }, { layer: 24, ratio: 0.25 }, { layer: 22, ratio: 0.125 }] };

  it('writes a plan the C validator accepts and whose training step runs, and a report that names the peak', async () => {
    const out = join(dir, 'ms.xstp');
    const r = await run(['compile', model('micro_speech_quantized.tflite'), '--board', 'moddable_four', '--scheme', scheme('ms.json', msScheme), '-o', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const blob = new Uint8Array(readFileSync(out));
    const plan = decodePlan(blob);
    expect(plan.arenaBytes).toBeLessThanOrEqual(131072);
    expect(validatePlanC(blob, plan.arenaBytes)[0]).toBe(0); // PLAN_OK
    expect(validatePlanC(blob, plan.arenaBytes - 16)[0]).not.toBe(0); // the arena it states is the arena it needs
    const rt = PlanRuntime.load(new NodeDispatch(new ArrayBuffer(plan.arenaBytes), new ArrayBuffer(plan.flash.length)), blob);
    const before = rt.regionsCrc();
    for (let i = 0; i < 3; i++) {
      const s = seededSample(plan, i, 7);
      expect(rt.step(s.input, s.label)).not.toBeNull();
    }
    expect(rt.regionsCrc()).not.toBe(before);

    // The report: the same peak the compiler plans, by role and per phase.
    const g = importTflite(new Uint8Array(readFileSync(model('micro_speech_quantized.tflite'))), 'micro_speech_quantized.tflite');
    const expected = new SchemeFitter(g, { budget: 131072 }).fit(msScheme).compiled.plan.report;
    const text = readFileSync(join(dir, 'ms.memory.txt'), 'utf8');
    expect(r.stdout).toContain(text);
    expect(text).toContain(`arena: ${plan.arenaBytes.toLocaleString('en-US')} B of the 131,072 B budget (board moddable_four, Moddable Four): fits`);
    expect(text).toContain(`peak: ${expected.peakLiveBytes.toLocaleString('en-US')} B live at step ${expected.peakStep} of ${expected.steps} ` +
      `(${expected.peakPhase}): ${expected.peakOp}`);
    expect(text).toMatch(/by role:\n +(weight|scratch|optimizer state|saved activation) +[\d,]+ B/);
    expect(text).toContain(`  ${expected.peakTensors[0]!.name}`);
    expect(text).toMatch(/peak per phase:\n  forward /);
    const svg = readFileSync(join(dir, 'ms.memory.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('arena offset (bytes)');
    expect(svg).toContain('budget 131,072 B');
  }, 120_000);

  it('--classes gives a new classifier; without --scheme or --finetune a scheme is chosen greedily to fit the board, and it says so', async () => {
    const out = join(dir, 'pd3.xstp');
    const r = await run(['compile', model('person_detect.tflite'), '--board', 'moddable_four', '--classes', '3', '-o', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('person_detect.tflite, 3 classes (new classifier)');
    expect(r.stdout).toContain('scheme (chosen greedily by bytes for the budget, not by what an update is worth; --finetune DIR searches by contribution)');
    expect(r.stdout).toMatch(/^no --scheme: the scheme is chosen greedily by bytes .*; give --finetune DIR of labelled samples to choose it by contribution/);
    const blob = new Uint8Array(readFileSync(out));
    const plan = decodePlan(blob);
    expect(plan.io.classes).toBe(3);
    expect(plan.arenaBytes).toBeLessThanOrEqual(131072);
    expect(validatePlanC(blob, plan.arenaBytes)[0]).toBe(0);
  }, 120_000);

  it('an impossible budget says by how much it is over, what is at the peak and a scheme that fits when applied', async () => {
    const r = await run(['compile', model('person_detect.tflite'), '--budget', '60k', '--scheme', scheme('pd.json', pdScheme), '-o', join(dir, 'pd.xstp')]);
    expect(r.status).toBe(1);
    const over = /the plan needs ([\d,]+) B of arena, the budget is 61,440 B \(--budget 60k\): over by ([\d,]+) B/.exec(r.stderr);
    expect(over, r.stderr).not.toBeNull();
    expect(bytes(over![1]!) - 61440).toBe(bytes(over![2]!));
    expect(r.stderr).toMatch(/At the peak \(step \d+ of \d+, .+\): MobilenetV1\/Conv2d_13_pointwise\/weights\/read\[\.\.\., 0:128\] 32,768 B \(weight\)/);
    expect(r.stderr).toMatch(/ - (drop the weight update|update fewer input channels) of layer 26 .*: [\d,]+ B \(fits\)/);
    const fit = /A scheme that fits in ([\d,]+) B.*\n {2}(\{.*\})\n/.exec(r.stderr);
    expect(fit, r.stderr).not.toBeNull();
    expect(bytes(fit![1]!)).toBeLessThanOrEqual(61440);
    const applied = await run(['compile', model('person_detect.tflite'), '--budget', '60k', '--scheme', scheme('pd-fit.json', fit![2]!), '-o', join(dir, 'pd-fit.xstp')]);
    expect(applied.stderr).toBe('');
    expect(applied.status).toBe(0);
    const plan = decodePlan(new Uint8Array(readFileSync(join(dir, 'pd-fit.xstp'))));
    expect(plan.arenaBytes).toBeLessThanOrEqual(61440);

    // Below what the classifier alone needs: nothing to drop.
    const tiny = await run(['compile', model('person_detect.tflite'), '--budget', '4k', '--scheme', scheme('pd.json', pdScheme)]);
    expect(tiny.status).toBe(1);
    expect(tiny.stderr).toContain('over by');
    expect(tiny.stderr).toMatch(/Even updating only the classifier needs [\d,]+ B/);
  }, 120_000);

  it('a bad scheme file lists every problem with its fix', async () => {
    const ms = model('micro_speech_quantized.tflite');
    const notJson = await run(['compile', ms, '--board', 'moddable_four', '--scheme', scheme('bad1.json', '{"biasLayers": 2,')]);
    expect(notJson.status).toBe(1);
    expect(notJson.stderr).toMatch(/^xstrain: scheme .*bad1\.json: not JSON: /);
    const bad = await run(['compile', ms, '--board', 'moddable_four', '--scheme',
      scheme('bad2.json', { biasLayers: 5, weights: [{ layer: 1 }, { layer: 7, ratio: 2 }, { layer: 0, ratio: 0.5, channels: 1, step: 1 }], bias: 1 })]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('problems:');
    for (const p of [
      'unknown key "bias" (a scheme has biasLayers, weights, classifier, note)',
      'weights[2] has unknown key "step" (use layer, ratio or channels)',
      'biasLayers is 5; the graph has 2 layers',
      'weights[0].layer 1 is the classifier, which always updates fully; remove it from weights',
      'weights[1].layer is 7, outside [0, 1]',
      'weights[2] gives both ratio and channels',
    ]) expect(bad.stderr).toContain(p);
    const missing = await run(['compile', ms, '--board', 'moddable_four', '--scheme', scheme('bad3.json', { biasLayers: 2 })]);
    expect(missing.stderr).toContain('weights is missing');
    // A kernel that does not exist: the split 3x3 convolution a sliced stem needs.
    const stem = await run(['compile', 'mbv2-w0.35-32', '--budget', '200k', '--scheme', scheme('stem.json', { biasLayers: 0, weights: [{ layer: 0, ratio: 0.5 }] })]);
    expect(stem.status).toBe(1);
    expect(stem.stderr).toMatch(/the scheme needs .*conv2d_s8_forward_split.*, which do(es)? not exist yet, to update the weights of layer 0 \(conv2d 3x3\)/);
  }, 120_000);

  it('usage errors say what to give', async () => {
    const ms = model('micro_speech_quantized.tflite');
    const cases: [string[], number, string][] = [
      [['compile', ms], 2, 'compile needs --board BOARD or --budget SIZE'],
      [['compile', ms, '--board', 'nrf52'], 2, 'unknown board "nrf52": use one of esp32c3, moddable_four, moddable_two'],
      [['compile', ms, '--budget', '12q'], 2, '--budget 12q: give bytes, or a size with k or m (1k = 1024 bytes), e.g. 120k or 1.5m'],
      [['compile', ms, '--budget', '100k', '--classes', '0'], 2, '--classes 0: give an integer from 1 to 128'],
      [['compile', ms, '--budget', '100k', '--optimizer', 'adam'], 2, 'unknown optimizer "adam": use sgd or lqm'],
      [['compile', 'resnet50', '--budget', '100k'], 2, '"resnet50" is neither a file nor a builtin architecture (mbv2-w<WIDTH>-<RESOLUTION>'],
      [['compile', ms, '--budget', '100k', '--calibration', dir], 2, 'is already int8; calibration samples quantise a float32 model'],
    ];
    for (const [args, status, message] of cases) {
      const r = await run(args);
      expect(r.status, args.join(' ')).toBe(status);
      expect(r.stderr).toContain(message);
    }
    const help = await run(['compile', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('contribution');
  }, 120_000);
});

// `xstrain compile --finetune DIR`: the scheme searched by contribution on
// labelled samples, here MNIST digits 5-9 (labels 0-4, float32 .bin files in
// one directory per class) for MobileNetV2-w0.35-32 with 5 classes. The
// written scheme must be the one searchScheme picks for the same samples with
// the options the CLI documents (support/finetune-search.ts, in a child
// process), and the plan must fit the budget. Bad directories fail before
// any probe.
describe('xstrain compile --finetune', () => {
  const root = mkdtempSync(join(tmpdir(), 'xstrain-ft-'));
  const images = finetuneImages();
  // A directory per class (named by labelDir), files named in the images' order.
  const makeSet = (name: string, labelDir: (label: number) => string = String) => {
    const d = join(root, name);
    for (const { values, label, k } of images) {
      mkdirSync(join(d, labelDir(label)), { recursive: true });
      writeFileSync(join(d, labelDir(label), `s${String(k).padStart(4, '0')}.bin`), new Uint8Array(values.buffer));
    }
    return d;
  };
  const good = makeSet('good');
  const args = (d: string, ...more: string[]) => ['compile', 'mbv2-w0.35-32', '--classes', '5', '--budget', String(FT.budget), '--finetune', d, ...more];

  it('writes the scheme searchScheme picks for the same samples, prints its table, and compiles a plan that fits', async () => {
    const out = join(dir, 'ft.xstp');
    // the CLI and the independent search (support/finetune-search.ts) run side by side
    const [r, child] = await Promise.all([
      run(args(good, '--probe-steps', String(FT.steps), '-o', out)),
      runNode(['--import', 'tsx', join(repoRoot, 'host-tests', 'support', 'finetune-search.ts')]),
    ]);
    expect(child.stderr).toBe('');
    const expected = JSON.parse(child.stdout) as { scheme: SparseUpdateScheme; text: string; train: number; eval: number; input: unknown };
    // quantizeImage is the input quantisation the builtin networks are built for: the CLI must derive it from the model
    expect(expected.input).toMatchObject({ scale: [1 / 128], zeroPoint: [0] });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`fine-tune samples from ${good}: 100 in 5 classes`);
    expect(r.stdout).toContain(`probes train ${FT.steps} steps on ${expected.train}, scored on ${expected.eval}`);
    expect(r.stdout).toContain(expected.text); // the same table, measurement for measurement
    const written = JSON.parse(readFileSync(join(dir, 'ft.scheme.json'), 'utf8')) as SparseUpdateScheme & { note: string };
    expect({ biasLayers: written.biasLayers, weights: written.weights }).toEqual(expected.scheme);
    expect(written.note).toContain('searched by xstrain compile --finetune');
    const model = buildMobileNetV2({ width: 0.35, resolution: 32, classes: 5, seed: 1 });
    expect(checkScheme(trainableLayers(model), written)).toEqual([]);

    const blob = new Uint8Array(readFileSync(out));
    const plan = decodePlan(blob);
    expect(plan.arenaBytes).toBeLessThanOrEqual(FT.budget);
    expect(validatePlanC(blob, plan.arenaBytes)[0]).toBe(0); // PLAN_OK
    const report = readFileSync(join(dir, 'ft.memory.txt'), 'utf8');
    expect(report).toContain(`scheme (searched by contribution on 100 fine-tune samples (${expected.train} probe training, ${expected.eval} eval)`);

    // The written file is a scheme --scheme takes, and it gives the same plan without searching.
    const again = await run(['compile', 'mbv2-w0.35-32', '--classes', '5', '--budget', String(FT.budget), '--scheme', join(dir, 'ft.scheme.json'), '-o', join(dir, 'ft2.xstp')]);
    expect(again.stderr).toBe('');
    expect(again.status).toBe(0);
    expect(new Uint8Array(readFileSync(join(dir, 'ft2.xstp')))).toEqual(blob);
  }, 300_000);

  it('bad fine-tune directories are errors that say what to do, before any probe', async () => {
    const bad = (name: string) => join(root, name);
    const cases: [string, RegExp | string][] = [];
    // a label the model does not have: digit names as labels
    cases.push([makeSet('digits', (label) => String(FT.digits[label])),
      `label 5 is not a class of the model, which has 5 (labels 0 to 4); give --classes 10 for a new classifier with that many classes, or remove the directory`]);
    // class names are labelled in sorted order: six names for five classes
    const named = makeSet('named', (label) => ['five', 'six', 'seven', 'eight', 'nine'][label]!);
    mkdirSync(join(named, 'zero'));
    writeFileSync(join(named, 'zero', 'a.bin'), new Uint8Array(images[0]!.values.buffer));
    cases.push([named, 'zero: label 5 (class names are labelled in sorted order: eight, five, nine, seven, six, zero) is not a class of the model']);
    const dup = makeSet('dup');
    mkdirSync(join(dup, '01'));
    cases.push([dup, ' are both label 1; merge them']);
    mkdirSync(bad('empty'));
    cases.push([bad('empty'), `the fine-tune directory ${bad('empty')} is empty; it holds one sub-directory per class`]);
    const subdir = makeSet('subdir');
    mkdirSync(join(subdir, '4', 'sub')); // not a sample: a class directory holds files only
    cases.push([subdir, `${join(subdir, '4', 'sub')} is not a file; the fine-tune class directory holds .npy, .bin or .raw files only`]);
    mkdirSync(join(bad('no-samples'), '0'), { recursive: true });
    cases.push([bad('no-samples'), `the fine-tune class directory ${join(bad('no-samples'), '0')} holds no samples`]);
    const short = makeSet('short');
    writeFileSync(join(short, '2', 'zz.bin'), new Uint8Array(100));
    cases.push([short, `${join(short, '2', 'zz.bin')} has 100 bytes; the model input "input" [1x32x32x3] has 3072 values, so a raw sample is 12288 bytes (float32)`]);
    const png = makeSet('png');
    writeFileSync(join(png, '1', 'photo.png'), Uint8Array.of(0x89, 0x50));
    cases.push([png, `${join(png, '1', 'photo.png')}: the fine-tune class directory holds .npy (float32, float64 or uint8) and .bin/.raw`]);
    const npy = makeSet('npy');
    writeFileSync(join(npy, '0', 'broken.npy'), new Uint8Array(64));
    cases.push([npy, `${join(npy, '0', 'broken.npy')}: not a NumPy .npy file`]);
    const loose = makeSet('loose');
    writeFileSync(join(loose, 'stray.bin'), new Uint8Array(4));
    cases.push([loose, `${join(loose, 'stray.bin')} is a file; the fine-tune directory holds one sub-directory per class`]);
    mkdirSync(join(bad('one'), '0'), { recursive: true });
    mkdirSync(join(bad('one'), '1'));
    for (const [k, cls] of [[0, '0'], [1, '0'], [2, '1']] as const) writeFileSync(join(bad('one'), cls, `${k}.bin`), new Uint8Array(images[k]!.values.buffer));
    cases.push([bad('one'), 'class 1 has one sample; every class needs at least 2 (one to train the probes, one to score them)']);
    for (const [d, message] of cases) {
      const r = await run(args(d));
      expect(r.status, `${d}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain(message);
      expect(r.stdout).not.toContain('scheme search:'); // nothing was probed
    }
  }, 300_000);

  it('usage errors: --finetune with --scheme, --probe-steps without --finetune or not a positive integer', async () => {
    const cases: [string[], string][] = [
      [[...args(good), '--scheme', join(dir, 'x.json')], '--finetune DIR searches for a scheme and --scheme FILE gives one: use one of them'],
      [['compile', 'mbv2-w0.35-32', '--budget', '24k', '--probe-steps', '10'], '--probe-steps applies to the scheme search: give --finetune DIR too'],
      [[...args(good), '--probe-steps', '0'], '--probe-steps 0: give a positive integer'],
    ];
    for (const [a, message] of cases) {
      const r = await run(a);
      expect(r.status, a.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
    }
  }, 120_000);
});

// A float32 model, as a training framework exports it: micro_speech
// dequantised and written as a float .tflite; the compiler quantises it from
// calibration samples (raw float32 .bin files) and plans its training.
describe('xstrain compile of a float32 model', () => {
  const floatModel = join(dir, 'micro_speech_float.tflite');
  const int8 = importTflite(readFileSync(model('micro_speech_quantized.tflite')), 'micro_speech');
  writeFileSync(floatModel, writeTflite(dequantizeGraph(int8)));
  const input = int8.tensors[int8.inputs[0]!]!, q = input.quant!;
  const n = input.shape.reduce((a, b) => a * b, 1);

  it('without calibration samples says what to give', async () => {
    const r = await run(['compile', floatModel, '--budget', '100k']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('this is a float32 model');
    expect(r.stderr).toContain('give calibration samples');
  }, 60_000);

  it('with --calibration DIR quantises it and writes a plan the C validator accepts', async () => {
    const cal = mkdtempSync(join(tmpdir(), 'xstrain-cal-'));
    let s = 12345;
    for (let k = 0; k < 16; k++) {
      const v = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        s = (s * 1103515245 + 12345) >>> 0;
        v[i] = ((s >>> 16) % 256 - 128 - q.zeroPoint[0]!) * q.scale[0]!; // values the int8 input can hold
      }
      writeFileSync(join(cal, `sample${k}.bin`), new Uint8Array(v.buffer));
    }
    const out = join(dir, 'float.xstp');
    const r = await run(['compile', floatModel, '--budget', '100k', '--calibration', cal, '-o', out]);
    expect(r.status, r.stderr).toBe(0);
    const blob = new Uint8Array(readFileSync(out));
    expect(validatePlanC(blob, decodePlan(blob).arenaBytes)[0]).toBe(0); // PLAN_OK
  }, 60_000);
});

describe('parseSize', () => {
  it('reads bytes, k and m (1k = 1024)', async () => {
    expect(parseSize('131072')).toBe(131072);
    expect(parseSize('120k')).toBe(122880);
    expect(parseSize('1.5m')).toBe(1572864);
    expect(parseSize('128KB')).toBe(131072);
    expect(() => parseSize('-3k')).toThrow(/--budget -3k/);
  });
});
