// Structural verifier for .tflite flatbuffers, run before any generated
// accessor reads the bytes.
//
// Why it exists: the flatbuffers JavaScript runtime does not verify buffers.
// Its accessors trust every offset: an offset outside the buffer reads as
// undefined/0 or NaN, a corrupt vector length makes a loop run for billions of
// iterations, and a typed-array accessor throws a RangeError. C++ has
// flatbuffers::Verifier; no library gives JavaScript one, so this file is
// ours. It walks exactly the tables, vectors, strings and unions of
// schema/tflite_subset.fbs that import.ts reads, checking bounds, alignment,
// the signed/unsigned range the runtime assumes, and a budget on the number of
// tables visited (shared or looping offsets cannot make it do more work than
// the file size allows). After verify() returns, every accessor import.ts
// calls reads inside the buffer.

import { TfliteImportError } from './errors.js';

// Field kinds of the subset. A vector's element size is in bytes.
type FieldSpec =
  | { id: number; name: string; kind: 'scalar'; size: 1 | 2 | 4 | 8 }
  | { id: number; name: string; kind: 'string' }
  | { id: number; name: string; kind: 'vector'; elem: 1 | 4 | 8 }
  | { id: number; name: string; kind: 'table'; table: TableName }
  | { id: number; name: string; kind: 'tables'; table: TableName; firstOnly?: boolean }
  | { id: number; name: string; kind: 'union'; members: Record<number, TableName> };

type TableName =
  | 'Model' | 'OperatorCode' | 'SubGraph' | 'Tensor' | 'QuantizationParameters' | 'Buffer' | 'Operator'
  | 'Conv2DOptions' | 'DepthwiseConv2DOptions' | 'Pool2DOptions' | 'FullyConnectedOptions'
  | 'SoftmaxOptions' | 'AddOptions' | 'ReshapeOptions' | 'ReducerOptions';

const s = (id: number, name: string, size: 1 | 2 | 4 | 8): FieldSpec => ({ id, name, kind: 'scalar', size });

// Field ids as in schema/tflite_subset.fbs (a union takes two ids: type, value).
const TABLES: Record<TableName, FieldSpec[]> = {
  Model: [
    s(0, 'version', 4),
    { id: 1, name: 'operator_codes', kind: 'tables', table: 'OperatorCode' },
    // Only subgraph 0 is imported, so only it is verified.
    { id: 2, name: 'subgraphs', kind: 'tables', table: 'SubGraph', firstOnly: true },
    { id: 3, name: 'description', kind: 'string' },
    { id: 4, name: 'buffers', kind: 'tables', table: 'Buffer' },
  ],
  OperatorCode: [
    s(0, 'deprecated_builtin_code', 1),
    { id: 1, name: 'custom_code', kind: 'string' },
    s(2, 'version', 4),
    s(3, 'builtin_code', 4),
  ],
  SubGraph: [
    { id: 0, name: 'tensors', kind: 'tables', table: 'Tensor' },
    { id: 1, name: 'inputs', kind: 'vector', elem: 4 },
    { id: 2, name: 'outputs', kind: 'vector', elem: 4 },
    { id: 3, name: 'operators', kind: 'tables', table: 'Operator' },
    { id: 4, name: 'name', kind: 'string' },
  ],
  Tensor: [
    { id: 0, name: 'shape', kind: 'vector', elem: 4 },
    s(1, 'type', 1),
    s(2, 'buffer', 4),
    { id: 3, name: 'name', kind: 'string' },
    { id: 4, name: 'quantization', kind: 'table', table: 'QuantizationParameters' },
    s(5, 'is_variable', 1),
  ],
  QuantizationParameters: [
    { id: 2, name: 'scale', kind: 'vector', elem: 4 },
    { id: 3, name: 'zero_point', kind: 'vector', elem: 8 },
    s(6, 'quantized_dimension', 4),
  ],
  Buffer: [
    { id: 0, name: 'data', kind: 'vector', elem: 1 },
    s(1, 'offset', 8),
    s(2, 'size', 8),
  ],
  Operator: [
    s(0, 'opcode_index', 4),
    { id: 1, name: 'inputs', kind: 'vector', elem: 4 },
    { id: 2, name: 'outputs', kind: 'vector', elem: 4 },
    {
      id: 3, name: 'builtin_options', kind: 'union',
      members: {
        1: 'Conv2DOptions', 2: 'DepthwiseConv2DOptions', 5: 'Pool2DOptions', 8: 'FullyConnectedOptions',
        9: 'SoftmaxOptions', 11: 'AddOptions', 17: 'ReshapeOptions', 27: 'ReducerOptions',
      },
    },
  ],
  Conv2DOptions: [s(0, 'padding', 1), s(1, 'stride_w', 4), s(2, 'stride_h', 4), s(3, 'fused_activation_function', 1),
    s(4, 'dilation_w_factor', 4), s(5, 'dilation_h_factor', 4)],
  DepthwiseConv2DOptions: [s(0, 'padding', 1), s(1, 'stride_w', 4), s(2, 'stride_h', 4), s(3, 'depth_multiplier', 4),
    s(4, 'fused_activation_function', 1), s(5, 'dilation_w_factor', 4), s(6, 'dilation_h_factor', 4)],
  Pool2DOptions: [s(0, 'padding', 1), s(1, 'stride_w', 4), s(2, 'stride_h', 4), s(3, 'filter_width', 4),
    s(4, 'filter_height', 4), s(5, 'fused_activation_function', 1)],
  FullyConnectedOptions: [s(0, 'fused_activation_function', 1), s(1, 'weights_format', 1), s(2, 'keep_num_dims', 1)],
  SoftmaxOptions: [s(0, 'beta', 4)],
  AddOptions: [s(0, 'fused_activation_function', 1)],
  ReshapeOptions: [{ id: 0, name: 'new_shape', kind: 'vector', elem: 4 }],
  ReducerOptions: [s(0, 'keep_dims', 1)],
};

const MAX_DEPTH = 8; // Model > SubGraph > Operator > options is 4 deep; the subset never recurses

export function verifyTflite(bytes: Uint8Array): void {
  new Verifier(bytes).verifyRoot();
}

class Verifier {
  private readonly view: DataView;
  private readonly n: number;
  private tablesLeft: number;
  private bytesLeft: number;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.n = bytes.byteLength;
    // Every distinct table needs at least 4 bytes (its vtable offset); more
    // visits than that means offsets are shared or loop, which a real model
    // does not need.
    this.tablesLeft = Math.floor(this.n / 4) + 16;
    // Distinct tables, vectors and strings do not overlap, so the bytes they
    // cover add up to at most the file size; more means the same vector is
    // reached through many offsets (say 30,000 operators sharing one inputs
    // vector of 30,000 entries), which would make the reader do quadratic work.
    this.bytesLeft = this.n;
  }

  private fail(where: string, what: string): never {
    throw new TfliteImportError(`not a valid .tflite file: ${where}: ${what} (file is ${this.n} bytes; truncated or corrupted?)`);
  }

  private u32(pos: number): number {
    return this.view.getUint32(pos, true);
  }

  verifyRoot(): void {
    if (this.n < 8) this.fail('header', 'shorter than the 8-byte flatbuffer header');
    if (this.n > 0x7fffffff) this.fail('header', 'larger than 2 GB');
    const id = String.fromCharCode(this.bytes[4]!, this.bytes[5]!, this.bytes[6]!, this.bytes[7]!);
    if (id !== 'TFL3') {
      const shown = JSON.stringify(id);
      throw new TfliteImportError(
        `not a TFLite model: file identifier is ${shown}, expected "TFL3" (is this a .tflite flatbuffer, ` +
          `not a SavedModel, .h5 or a C array?)`,
      );
    }
    const root = this.offsetTarget(0, 'root');
    this.verifyTable(root, 'Model', 'Model', 0);
  }

  // Follows the uoffset stored at pos; the runtime reads it as int32, so it
  // must stay below 2^31 and land inside the buffer, 4-aligned.
  private offsetTarget(pos: number, where: string): number {
    if (pos % 4 !== 0) this.fail(where, `offset at byte ${pos} is not 4-aligned`);
    if (pos + 4 > this.n) this.fail(where, `offset at byte ${pos} is past the end`);
    const off = this.u32(pos);
    if (off === 0 || off >= 0x80000000) this.fail(where, `offset ${off} at byte ${pos} is out of range`);
    const target = pos + off;
    if (target + 4 > this.n) this.fail(where, `offset at byte ${pos} points to byte ${target}, past the end`);
    if (target % 4 !== 0) this.fail(where, `offset at byte ${pos} points to byte ${target}, not 4-aligned`);
    return target;
  }

  private verifyTable(pos: number, type: TableName, where: string, depth: number): void {
    if (depth > MAX_DEPTH) this.fail(where, 'tables nested too deeply');
    if (--this.tablesLeft < 0) this.fail(where, 'more tables than the file size allows (shared or looping offsets)');
    // pos is 4-aligned and pos + 4 <= n (offsetTarget).
    const soff = this.view.getInt32(pos, true);
    const vt = pos - soff;
    if (vt < 0 || vt + 4 > this.n || vt % 2 !== 0) this.fail(where, `table at byte ${pos} has its vtable outside the file`);
    const vtSize = this.view.getUint16(vt, true);
    const tableSize = this.view.getUint16(vt + 2, true);
    // The runtime reads vtable entries as int16: keep them below 2^15.
    if (vtSize < 4 || vtSize % 2 !== 0 || vtSize >= 0x8000 || vt + vtSize > this.n) {
      this.fail(where, `table at byte ${pos} has a vtable of bad size ${vtSize}`);
    }
    if (tableSize < 4 || tableSize >= 0x8000 || pos + tableSize > this.n) {
      this.fail(where, `table at byte ${pos} has bad size ${tableSize}`);
    }
    this.spend(tableSize, where);
    // Only the fields the importer reads are checked (fieldPos): a vtable can
    // have 16K entries, and many tables can share it, so walking all of them
    // on every visit would cost more than the file size allows.
    for (const f of TABLES[type]) {
      const fieldPos = this.fieldPos(pos, vt, vtSize, tableSize, f.id, f.kind === 'scalar' ? f.size : f.kind === 'union' ? 1 : 4, `${where}.${f.name}`);
      if (fieldPos === 0) continue;
      const w = `${where}.${f.name}`;
      switch (f.kind) {
        case 'scalar':
          break;
        case 'string': {
          const t = this.offsetTarget(fieldPos, w);
          const len = this.u32(t);
          if (len >= 0x80000000 || t + 4 + len + 1 > this.n) this.fail(w, `string of length ${len} runs past the end`);
          if (this.bytes[t + 4 + len] !== 0) this.fail(w, 'string is not zero-terminated');
          this.spend(4 + len, w);
          break;
        }
        case 'vector':
          this.vector(fieldPos, f.elem, w);
          break;
        case 'table':
          this.verifyTable(this.offsetTarget(fieldPos, w), f.table, w, depth + 1);
          break;
        case 'tables': {
          const { start, len } = this.vector(fieldPos, 4, w);
          const count = f.firstOnly ? Math.min(len, 1) : len;
          for (let i = 0; i < count; i++) {
            this.verifyTable(this.offsetTarget(start + 4 * i, `${w}[${i}]`), f.table, `${w}[${i}]`, depth + 1);
          }
          break;
        }
        case 'union': {
          // The type (ubyte) is field id, the value (uoffset) field id + 1.
          const typeByte = this.bytes[fieldPos]!;
          const valuePos = this.fieldPos(pos, vt, vtSize, tableSize, f.id + 1, 4, w);
          const member = f.members[typeByte];
          // Members outside the subset are never read; the importer refuses
          // the operator instead.
          if (member !== undefined && valuePos !== 0) {
            this.verifyTable(this.offsetTarget(valuePos, w), member, `${w}(${member})`, depth + 1);
          }
          break;
        }
      }
    }
  }

  private spend(bytes: number, where: string): void {
    this.bytesLeft -= bytes;
    if (this.bytesLeft < 0) this.fail(where, 'tables and vectors cover more bytes than the file has (shared or looping offsets)');
  }

  // Absolute position of field `id` (0 when absent), checked to lie in the table.
  private fieldPos(pos: number, vt: number, vtSize: number, tableSize: number, id: number, size: number, where: string): number {
    const e = 4 + 2 * id;
    if (e + 2 > vtSize) return 0;
    const fo = this.view.getUint16(vt + e, true);
    if (fo === 0) return 0;
    if (fo < 4 || fo + size > tableSize) this.fail(where, `field runs past the end of its table`);
    const at = pos + fo;
    if (size > 1 && at % Math.min(size, 4) !== 0) this.fail(where, `field at byte ${at} is not aligned`);
    return at;
  }

  private vector(fieldPos: number, elem: number, where: string): { start: number; len: number } {
    const t = this.offsetTarget(fieldPos, where);
    const len = this.u32(t);
    // The runtime reads the length as int32 too.
    if (len >= 0x80000000 || t + 4 + len * elem > this.n) this.fail(where, `vector of ${len} elements runs past the end`);
    this.spend(4 + len * elem, where);
    const start = t + 4;
    if (elem === 8 && start % 8 !== 0) this.fail(where, `vector of 8-byte elements at byte ${start} is not 8-aligned`);
    return { start, len };
  }
}
