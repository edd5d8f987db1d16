// A Graph as one byte blob, for engines that cannot read a .tflite (the XS
// engine on a board carries no flatbuffers runtime): the host imports the
// model once, the device reads this.
//
// Layout (little-endian):
//   0  u32 magic "XSTG"   4  u32 version (1)   8  u32 total length
//   12 u32 CRC-32 of bytes [16, total)         16 u32 JSON length J
//   20 JSON (ASCII; non-ASCII escaped), padded to 4 bytes, then the constant
//      data; the JSON names each constant's [offset, length) in that data.
// Untrusted on decode: every length and offset is checked; a bad blob is a
// GraphError saying what is wrong, never a wrong graph.

import { crc32 } from './crc32.js';
import { type Graph, GraphError, type GraphTensor } from './graph.js';

const MAGIC = 0x47545358; // "XSTG"
const VERSION = 1;
const HEADER = 20;

interface BlobTensor extends Omit<GraphTensor, 'data'> {
  data: [number, number] | null;
}

function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function asciiBytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

function asciiString(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode(...b.subarray(i, Math.min(b.length, i + 4096)));
  return s;
}

export function encodeGraph(g: Graph): Uint8Array {
  let dataLen = 0;
  const tensors: BlobTensor[] = g.tensors.map((t) => {
    if (!t.data) return { ...t, data: null };
    const at = dataLen;
    dataLen += Math.ceil(t.data.length / 4) * 4;
    return { ...t, data: [at, t.data.length] };
  });
  const json = asciiBytes(asciiJson({ name: g.name, tensors, ops: g.ops, inputs: g.inputs, outputs: g.outputs }));
  const jsonPadded = Math.ceil(json.length / 4) * 4;
  const total = HEADER + jsonPadded + dataLen;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, VERSION, true);
  dv.setUint32(8, total, true);
  dv.setUint32(16, json.length, true);
  out.set(json, HEADER);
  g.tensors.forEach((t, i) => {
    const d = tensors[i]!.data;
    if (t.data && d) out.set(t.data, HEADER + jsonPadded + d[0]);
  });
  dv.setUint32(12, crc32(out.subarray(16)), true);
  return out;
}

function fail(why: string): never {
  throw new GraphError(`model blob: ${why}; re-create it with \`npx xstrain\` from the .tflite`);
}

export function decodeGraph(bytes: Uint8Array): Graph {
  if (bytes.length < HEADER) fail(`${bytes.length} bytes is shorter than the header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) fail('wrong magic (not an xstrain model blob)');
  if (dv.getUint32(4, true) !== VERSION) fail(`version ${dv.getUint32(4, true)}, this build reads ${VERSION}`);
  const total = dv.getUint32(8, true);
  if (total !== bytes.length) fail(`header says ${total} bytes, the blob has ${bytes.length} (truncated?)`);
  if (crc32(bytes.subarray(16)) !== dv.getUint32(12, true)) fail('CRC mismatch (corrupted)');
  const jsonLen = dv.getUint32(16, true);
  const jsonPadded = Math.ceil(jsonLen / 4) * 4;
  if (HEADER + jsonPadded > total) fail('JSON section runs past the end');
  let parsed: { name: string; tensors: BlobTensor[]; ops: Graph['ops']; inputs: number[]; outputs: number[] };
  try {
    parsed = JSON.parse(asciiString(bytes.subarray(HEADER, HEADER + jsonLen)));
  } catch {
    fail('JSON section does not parse');
  }
  const dataStart = HEADER + jsonPadded;
  if (!parsed || !Array.isArray(parsed.tensors) || !Array.isArray(parsed.ops)) fail('JSON has no tensors/ops');
  const tensors: GraphTensor[] = parsed.tensors.map((t, i) => {
    if (!t.data) return { ...t, data: null };
    const [at, len] = t.data;
    if (!Number.isInteger(at) || !Number.isInteger(len) || at < 0 || len < 0 || dataStart + at + len > total) {
      fail(`tensor ${i} data [${at}, +${len}) lies outside the blob`);
    }
    return { ...t, data: bytes.slice(dataStart + at, dataStart + at + len) };
  });
  return { name: parsed.name, tensors, ops: parsed.ops, inputs: parsed.inputs, outputs: parsed.outputs };
}
