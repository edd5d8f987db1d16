// Node adapter: labelled fine-tune samples from a directory (the CLI's
// --finetune DIR), as the int8 input tensors of the model with their labels,
// for the scheme search (src/compiler/train/search.ts).
//
// Layout: one sub-directory per class, holding that class's samples in the
// formats of --calibration (src/node/calibration.ts: .npy float32/float64,
// one sample or a batch; raw float32 .bin/.raw), real values as the model
// takes them:
//   DIR/0/*.npy, DIR/1/*.bin, ...   names that are all integers are the labels
//   DIR/idle/..., DIR/shake/...     other names: labels 0, 1, ... in sorted order
// Names starting with "." are skipped; a plain file in DIR is an error (it
// would otherwise be silently left out). Each sample is quantised with the
// model input's scale and zero point (round(x / scale) + zeroPoint,
// saturated). Samples are ordered by label, then by file name.

import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { GraphTensor } from '../core/graph.js';
import { quantizeReal } from '../core/quant.js';
import type { LabelledSample } from '../compiler/train/search.js';
import { CalibrationError, readSampleDir } from './calibration.js';

export class FinetuneError extends Error {
  override name = 'FinetuneError';
}

export interface FinetuneSet {
  samples: LabelledSample[];
  classes: { label: number; name: string; samples: number }[]; // one per class directory, by label
  clamped: number; // input values outside the int8 input's range (saturated)
}

export function loadFinetuneDir(dir: string, input: Pick<GraphTensor, 'name' | 'shape' | 'quant'>, classes: number): FinetuneSet {
  if (!input.quant) throw new FinetuneError(`the model input "${input.name}" is not quantised; fine-tune samples need its int8 scale and zero point`);
  const layout = `one sub-directory per class (0, 1, ... or class names, sorted) holding .npy or .bin samples`;
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => !f.startsWith('.'));
  } catch (e) {
    throw new FinetuneError(`cannot read the fine-tune directory ${dir}: ${(e as Error).message}`);
  }
  const files = names.filter((f) => !statSync(join(dir, f)).isDirectory());
  if (files.length) {
    throw new FinetuneError(`${join(dir, files.sort()[0]!)} is a file; the fine-tune directory holds ${layout}: move the samples into their class's directory`);
  }
  if (!names.length) throw new FinetuneError(`the fine-tune directory ${dir} is empty; it holds ${layout}`);
  const numeric = names.every((f) => /^\d+$/.test(f));
  const sorted = numeric ? [...names].sort((a, b) => Number(a) - Number(b)) : [...names].sort();
  const labelled = sorted.map((name, i) => ({ name, label: numeric ? Number(name) : i }));
  const twice = labelled.find((c, i) => i > 0 && labelled[i - 1]!.label === c.label);
  if (twice) throw new FinetuneError(`${join(dir, twice.name)} and ${join(dir, labelled.find((c) => c.label === twice.label)!.name)} are both label ${twice.label}; merge them`);
  const out = labelled.filter((c) => c.label >= classes);
  if (out.length) {
    const c = out[0]!;
    throw new FinetuneError(`${join(dir, c.name)}: label ${c.label}${numeric ? '' : ` (class names are labelled in sorted order: ${sorted.join(', ')})`} ` +
      `is not a class of the model, which has ${classes} (labels 0 to ${classes - 1}); ` +
      `give --classes ${Math.max(...labelled.map((x) => x.label)) + 1} for a new classifier with that many classes, or remove the directory`);
  }
  const samples: LabelledSample[] = [];
  const counts: FinetuneSet['classes'] = [];
  let clamped = 0;
  for (const c of labelled) {
    let values: Float32Array[];
    try {
      values = readSampleDir(join(dir, c.name), input, {}, 'fine-tune class');
    } catch (e) {
      if (e instanceof CalibrationError) throw new FinetuneError(e.message);
      throw e;
    }
    for (const v of values) {
      const q = quantizeReal(v, input.quant);
      clamped += q.clamped;
      samples.push({ input: q.data, label: c.label });
    }
    counts.push({ label: c.label, name: c.name, samples: values.length });
  }
  return { samples, classes: counts, clamped };
}
