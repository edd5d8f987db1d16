// The compiler's model input: an int8 .tflite, used as it is; or a float32
// .tflite with calibration samples, quantised by the compiler
// (post-training quantisation, src/compiler/quantize). Users often have only
// the float model their training framework exported.
// Errors: TfliteImportError for the file (unreadable, unsupported op or
// dtype), QuantizeError for the calibration (none, wrong size, not finite).

import type { Graph } from '../core/graph.js';
import type { CalibrationSample } from './quantize/calibrate.js';
import { QuantizeError } from './quantize/errors.js';
import { quantizeGraph, type QuantizeOptions } from './quantize/quantize.js';
import { importAnyTflite } from './tflite/import.js';
import { CONVERT_HINT } from './tflite/validate.js';

export interface ImportModelOptions {
  // Real input samples (float32 values of the model input, row-major), needed
  // for a float32 model; ignored for an int8 one.
  calibration?: readonly CalibrationSample[];
  quantize?: QuantizeOptions;
}

export interface ImportedModel {
  graph: Graph; // int8
  float: Graph | null; // the float32 graph it was quantised from, if any
}

export function importModel(bytes: Uint8Array, name: string, options: ImportModelOptions = {}): ImportedModel {
  const { graph, precision } = importAnyTflite(bytes, name);
  if (precision === 'int8') return { graph, float: null };
  const input = graph.tensors[graph.inputs[0]!]!;
  if (!options.calibration || options.calibration.length === 0) {
    const n = input.shape.reduce((a, b) => a * b, 1);
    throw new QuantizeError(`${name}: this is a float32 model (input "${input.name}" float32[${input.shape.join('x')}]); ` +
      `give calibration samples (a few hundred real inputs of ${n} values each) and xstrain quantises it to int8; or ` +
      CONVERT_HINT.slice(CONVERT_HINT.indexOf('convert it')));
  }
  return { graph: quantizeGraph(graph, options.calibration, options.quantize), float: graph };
}
