// A truncated, corrupted or hostile .tflite gives a Graph that passes
// validation or a TfliteImportError: never another exception, a crash or a
// hang. 10,000 seeded mutations of each bundled model: byte flips, runs of
// random bytes, truncations, 32-bit words overwritten with offsets near the
// end of the buffer, duplicated and zeroed regions. Half of the mutations
// land in the flatbuffer structure (everything but the constant data), where
// a uniform pick would rarely go in a 300 KB file that is mostly weights.
// The model is mutated in place and restored, not copied, per case. The
// float32 path gets 2,000 mutations each of two float models the writer
// makes from the bundled ones.
import { readFileSync } from 'node:fs';
import * as flatbuffers from 'flatbuffers';
import { describe, expect, it } from 'vitest';
import type { Graph } from '../src/core/graph.js';
import { Xorshift32 } from '../src/core/rng.js';
import * as tfl from '../src/compiler/tflite/generated/tflite_subset_generated.js';
import { dequantizeGraph } from '../src/compiler/quantize/dequantize.js';
import { type GraphPrecision, importAnyTflite, importTflite, TfliteImportError, validateGraph } from '../src/compiler/tflite/import.js';
import { writeTflite } from '../src/compiler/tflite/write.js';

// TFLITE_FUZZ_CASES / TFLITE_FUZZ_SEED run a longer or different campaign.
const CASES = Number(process.env.TFLITE_FUZZ_CASES ?? 10_000);
const SEED = Number(process.env.TFLITE_FUZZ_SEED ?? 0);
const BYTES = { int8: 1, uint8: 1, int16: 2, int32: 4, float32: 4 } as const;

// Byte ranges of the model that are not Buffer.data payloads.
function structureRanges(bytes: Uint8Array): [number, number][] {
  const bb = new flatbuffers.ByteBuffer(bytes);
  const model = tfl.Model.getRootAsModel(bb);
  const data: [number, number][] = [];
  for (let i = 0; i < model.buffersLength(); i++) {
    const buf = model.buffers(i)!;
    const off = bb.__offset(buf.bb_pos, 4);
    if (off) data.push([bb.__vector(buf.bb_pos + off), bb.__vector_len(buf.bb_pos + off)]);
  }
  data.sort((a, b) => a[0] - b[0]);
  const ranges: [number, number][] = [];
  let at = 0;
  for (const [start, len] of data) {
    if (start > at) ranges.push([at, start]);
    at = Math.max(at, start + len);
  }
  if (at < bytes.length) ranges.push([at, bytes.length]);
  return ranges;
}

// An accepted graph must hold up on its own, not only because the importer
// said so: validation again, plus the invariants a consumer relies on.
function checkGraph(g: Graph, precision: GraphPrecision): void {
  validateGraph(g, precision);
  const T = g.tensors.length;
  for (const t of g.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data !== null && t.data.length !== n * BYTES[t.dtype]) throw new Error(`tensor ${t.name}: data size`);
  }
  for (const op of g.ops) {
    for (const v of [...op.inputs, ...op.outputs]) if (v < -1 || v >= T) throw new Error('tensor index out of range');
  }
}

interface Undo {
  pos: number;
  saved: Uint8Array;
}

type Importer = (bytes: Uint8Array, name: string) => { graph: Graph; precision: GraphPrecision };
const int8Only: Importer = (bytes, name) => ({ graph: importTflite(bytes, name), precision: 'int8' });
const readBundled = (file: string) => new Uint8Array(readFileSync(new URL(`../models/${file}`, import.meta.url)));

async function fuzzModel(file: string, seed: number, pristine: Uint8Array = readBundled(file), importer = int8Only, cases = CASES) {
  const bytes = new Uint8Array(pristine); // own buffer at offset 0: the importer reads it in place
  const n = bytes.length;
  const structure = structureRanges(bytes);
  const structureSize = structure.reduce((a, [s, e]) => a + e - s, 0);
  const rng = new Xorshift32(seed);
  const view = new DataView(bytes.buffer);

  const pick = (): number => {
    if (rng.below(2) === 0) return rng.below(n);
    let k = rng.below(structureSize);
    for (const [s, e] of structure) {
      if (k < e - s) return s + k;
      k -= e - s;
    }
    return 0;
  };
  const undo: Undo[] = [];
  const save = (pos: number, len: number) => {
    const end = Math.min(n, pos + len);
    undo.push({ pos, saved: bytes.slice(pos, end) });
    return end;
  };

  // Mutates `bytes` in place (recording what to restore); returns the length
  // of the file to import (shorter for a truncation).
  const mutate = (): number => {
    const kind = rng.below(6);
    switch (kind) {
      case 0: { // flip 1..8 bytes
        const k = 1 + rng.below(8);
        for (let i = 0; i < k; i++) {
          const p = pick();
          save(p, 1);
          bytes[p] = bytes[p]! ^ (1 + rng.below(255));
        }
        return n;
      }
      case 1: { // a run of random bytes
        const p = pick();
        const end = save(p, 1 + rng.below(64));
        for (let i = p; i < end; i++) bytes[i] = rng.below(256);
        return n;
      }
      case 2: // truncation
        return rng.below(n);
      case 3: { // 32-bit words rewritten as offsets near (or past) the end
        const k = 1 + rng.below(4);
        for (let i = 0; i < k; i++) {
          const p = pick() & ~3;
          if (p + 4 > n) continue;
          save(p, 4);
          const choice = rng.below(4);
          const v = choice === 0 ? n - p - rng.below(16)
            : choice === 1 ? n - p + rng.below(64)
            : choice === 2 ? [0x7fffffff, 0xffffffff, 0x80000000, 0x10000000][rng.below(4)]!
            : rng.next();
          view.setUint32(p, v >>> 0, true);
        }
        return n;
      }
      case 4: { // a region duplicated over another
        const from = pick();
        const to = pick();
        const len = 1 + rng.below(256);
        save(to, len);
        bytes.copyWithin(to, from, Math.min(n, from + Math.min(len, n - to)));
        return n;
      }
      default: { // a zeroed region
        const p = pick();
        const end = save(p, 1 + rng.below(128));
        bytes.fill(0, p, end);
        return n;
      }
    }
  };

  let accepted = 0;
  let rejected = 0;
  const start = performance.now();
  for (let c = 0; c < cases; c++) {
    // Let vitest's worker answer its RPCs during a long campaign.
    if (c % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
    const len = mutate();
    try {
      const { graph, precision } = importer(len === n ? bytes : bytes.subarray(0, len), file);
      checkGraph(graph, precision);
      accepted++;
    } catch (e) {
      if (!(e instanceof TfliteImportError)) {
        throw new Error(`case ${c} (seed ${seed}): ${String(e)}${e instanceof Error ? `\n${e.stack}` : ''}`);
      }
      if (e.message.includes('internal error')) throw new Error(`case ${c} (seed ${seed}): ${e.message}`);
      rejected++;
    }
    for (let i = undo.length - 1; i >= 0; i--) bytes.set(undo[i]!.saved, undo[i]!.pos);
    undo.length = 0;
  }
  expect(bytes).toEqual(pristine); // the restore is exact
  const seconds = (performance.now() - start) / 1000;
  console.log(`tflite fuzz ${file}: ${accepted} accepted, ${rejected} rejected (TfliteImportError) in ${seconds.toFixed(1)} s`);
  return { accepted, rejected };
}

describe('importTflite on mutated models', () => {
  for (const [file, seed] of [
    ['hello_world_int8.tflite', 1],
    ['micro_speech_quantized.tflite', 2],
    ['person_detect.tflite', 3],
  ] as const) {
    it(`${CASES} mutations of ${file}: a valid Graph or a TfliteImportError`, async () => {
      const { accepted, rejected } = await fuzzModel(file, seed + SEED);
      expect(accepted + rejected).toBe(CASES);
      expect(accepted).toBeGreaterThan(0);
      expect(rejected).toBeGreaterThan(0);
    });
  }
});

// The float32 path (post-training quantisation's input): float models made
// by the writer from the bundled ones, through importAnyTflite, which picks
// int8 or float32 validation from the graph input's dtype.
describe('importAnyTflite on mutated float models', () => {
  for (const [file, seed] of [['hello_world_int8.tflite', 4], ['micro_speech_quantized.tflite', 5]] as const) {
    const cases = Math.ceil(CASES / 5);
    it(`${cases} mutations of ${file} as float32: a valid Graph or a TfliteImportError`, async () => {
      const float = writeTflite(dequantizeGraph(importTflite(readBundled(file), file)));
      const { accepted, rejected } = await fuzzModel(file, seed + SEED, float, importAnyTflite, cases);
      expect(accepted + rejected).toBe(cases);
      expect(accepted).toBeGreaterThan(0);
      expect(rejected).toBeGreaterThan(0);
    });
  }
});
