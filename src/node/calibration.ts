// Node adapter: calibration samples for post-training quantisation from a
// directory (the CLI's --calibration DIR), as float32 arrays of the model
// input's real values. The same reader reads each class directory of
// labelled fine-tune samples (--finetune DIR, src/node/finetune.ts).
//
// Files, read in name order (names starting with "." are skipped; any other
// file is an error, so a directory of PNGs is not silently ignored):
//  - .npy (NumPy's format, versions 1-3, C order): dtype float32 ('<f4'),
//    float64 ('<f8', NumPy's default) or uint8 ('|u1'). Its element count is
//    the input's element count (one sample) or a multiple of it (a batch,
//    e.g. shape (k, 96, 96, 1) for input [1, 96, 96, 1]: k samples).
//  - .bin / .raw: one sample of raw little-endian values, told apart by the
//    size: 4 bytes per input element is float32, 1 byte per element uint8.
// Float values are the model input's real values as the float model takes
// them (after the normalisation it was trained with). uint8 values are raw
// sensor bytes (image pixels): they need byteScale/byteOffset to become real
// values (real = byte * byteScale + byteOffset, e.g. 1/255 and 0 for a model
// trained on [0, 1] images); without them a uint8 file is an error.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { GraphTensor } from '../core/graph.js';

export class CalibrationError extends Error {
  override name = 'CalibrationError';
}

export interface CalibrationOptions {
  byteScale?: number;
  byteOffset?: number;
}

export interface NpyArray {
  dtype: 'float32' | 'float64' | 'uint8';
  shape: number[];
  values: Float64Array | Uint8Array; // C order
}

const NPY_DTYPES: Record<string, NpyArray['dtype']> = { '<f4': 'float32', '<f8': 'float64', '|u1': 'uint8', 'u1': 'uint8', '<u1': 'uint8' };

// NumPy .npy bytes -> values. Throws CalibrationError naming the file.
export function parseNpy(bytes: Uint8Array, where: string): NpyArray {
  const fail = (msg: string): never => {
    throw new CalibrationError(`${where}: ${msg}`);
  };
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (bytes.length < 10 || magic.some((m, i) => bytes[i] !== m)) fail('not a NumPy .npy file (no \\x93NUMPY magic)');
  const major = bytes[6]!;
  if (major < 1 || major > 3) fail(`.npy version ${major}.${bytes[7]} is not supported (1 to 3 are)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? dv.getUint16(8, true) : bytes.length >= 12 ? dv.getUint32(8, true) : fail('truncated header');
  const start = major === 1 ? 10 : 12;
  if (start + headerLen > bytes.length) fail('truncated header');
  let header = '';
  for (let i = start; i < start + headerLen; i++) header += String.fromCharCode(bytes[i]!);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1] ?? fail(`header has no 'descr': ${header.trim()}`);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1] ?? fail(`header has no 'fortran_order': ${header.trim()}`);
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1] ?? fail(`header has no 'shape': ${header.trim()}`);
  const dtype = NPY_DTYPES[descr] ?? fail(`dtype '${descr}' is not supported; save float32 ('<f4'), float64 ('<f8') or uint8 ('|u1') arrays, little-endian`);
  if (fortran === 'True') fail('array is in Fortran order; save it with np.save(path, np.ascontiguousarray(a))');
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s) => {
    const d = Number(s);
    return Number.isInteger(d) && d >= 0 ? d : fail(`shape (${shapeText}) is not a tuple of sizes`);
  });
  const count = shape.reduce((a, b) => a * b, 1);
  const size = dtype === 'uint8' ? 1 : dtype === 'float32' ? 4 : 8;
  const dataStart = start + headerLen;
  if (bytes.length - dataStart !== count * size) {
    fail(`shape (${shapeText}) of ${dtype} needs ${count * size} data bytes, the file has ${bytes.length - dataStart}`);
  }
  if (dtype === 'uint8') return { dtype, shape, values: bytes.slice(dataStart) };
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) values[i] = size === 4 ? dv.getFloat32(dataStart + 4 * i, true) : dv.getFloat64(dataStart + 8 * i, true);
  return { dtype, shape, values };
}

// Every sample in the directory, each the input's element count of real values.
export function loadCalibrationDir(dir: string, input: Pick<GraphTensor, 'name' | 'shape'>, options: CalibrationOptions = {}): Float32Array[] {
  return readSampleDir(dir, input, options, 'calibration');
}

// The samples of one directory in the formats above, in file-name order; `kind`
// names the directory in messages ("calibration", "fine-tune class").
// Shared by --calibration DIR and --finetune DIR (src/node/finetune.ts).
export function readSampleDir(dir: string, input: Pick<GraphTensor, 'name' | 'shape'>, options: CalibrationOptions, kind: string): Float32Array[] {
  const n = input.shape.reduce((a, b) => a * b, 1);
  const what = `the model input "${input.name}" [${input.shape.join('x')}] has ${n} values`;
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => !f.startsWith('.')).sort();
  } catch (e) {
    throw new CalibrationError(`cannot read the ${kind} directory ${dir}: ${(e as Error).message}`);
  }
  const { byteScale, byteOffset = 0 } = options;
  if (byteScale !== undefined && (!(byteScale > 0) || !Number.isFinite(byteScale) || !Number.isFinite(byteOffset))) {
    throw new CalibrationError(`byte scale ${byteScale} and offset ${byteOffset} must be finite, the scale positive`);
  }
  const fromBytes = (b: Uint8Array, where: string): Float64Array => {
    if (byteScale === undefined) {
      throw new CalibrationError(`${where} holds uint8 values; say how a byte maps to the model's real input ` +
        '(byte scale and offset: real = byte * scale + offset, e.g. 1/255 and 0 for a model trained on [0, 1] images), ' +
        'or give float32 samples');
    }
    return Float64Array.from(b, (v) => v * byteScale + byteOffset);
  };
  const samples: Float32Array[] = [];
  for (const f of names) {
    const path = join(dir, f);
    if (!statSync(path).isFile()) throw new CalibrationError(`${path} is not a file; the ${kind} directory holds .npy, .bin or .raw files only`);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(path));
    } catch (e) {
      throw new CalibrationError(`cannot read ${path}: ${(e as Error).message}`);
    }
    let values: Float64Array;
    if (f.endsWith('.npy')) {
      const a = parseNpy(bytes, path);
      values = a.dtype === 'uint8' ? fromBytes(a.values as Uint8Array, path) : (a.values as Float64Array);
      if (values.length === 0 || values.length % n !== 0) {
        throw new CalibrationError(`${path} has shape (${a.shape.join(', ')}) = ${values.length} values, not a multiple of the input's: ${what}`);
      }
    } else if (f.endsWith('.bin') || f.endsWith('.raw')) {
      if (bytes.length === 4 * n) {
        const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        values = Float64Array.from({ length: n }, (_, i) => dv.getFloat32(4 * i, true));
      } else if (bytes.length === n) {
        values = fromBytes(bytes, path);
      } else {
        throw new CalibrationError(`${path} has ${bytes.length} bytes; ${what}, so a raw sample is ${4 * n} bytes (float32) or ${n} bytes (uint8)`);
      }
    } else {
      throw new CalibrationError(`${path}: the ${kind} directory holds .npy (float32, float64 or uint8) and .bin/.raw ` +
        '(one raw float32 or uint8 sample) files; convert other formats first');
    }
    for (let k = 0; k < values.length; k += n) {
      const sample = Float32Array.from(values.subarray(k, k + n));
      const bad = sample.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new CalibrationError(`${path}: sample ${k / n} has ${sample[bad]} at element ${bad}; samples must be finite`);
      samples.push(sample);
    }
  }
  if (samples.length === 0) throw new CalibrationError(`the ${kind} directory ${dir} holds no samples; put .npy or .bin files of real inputs there (${what})`);
  return samples;
}
