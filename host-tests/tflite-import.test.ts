// importTflite on the three real TFLite Micro models (models/NOTICE.md) and on
// small models written here with the flatbuffers Builder: the structure comes
// out as the notice says, and every refusal is a TfliteImportError whose
// message names the operator or tensor and what to do.
import { readFileSync } from 'node:fs';
import * as flatbuffers from 'flatbuffers';
import { describe, expect, it } from 'vitest';
import type { Graph, GraphOp, GraphTensor } from '../src/core/graph.js';
import * as tfl from '../src/compiler/tflite/generated/tflite_subset_generated.js';
import { importTflite, summarizeGraph, TfliteImportError, validateGraph } from '../src/compiler/tflite/import.js';
import { buildTflite, int32Bytes, int8Bytes, tinyFcSpec, type ModelSpec } from './support/tflite-builder.js';

const load = (f: string) => importTflite(new Uint8Array(readFileSync(new URL(`../models/${f}`, import.meta.url))), f);
const tensor = (g: Graph, v: number): GraphTensor => g.tensors[v]!;
const elements = (t: GraphTensor) => t.shape.reduce((a, b) => a * b, 1);

function expectQuant(t: GraphTensor, scale: number, zp: number) {
  expect(t.dtype).toBe('int8');
  expect(t.quant!.scale).toHaveLength(1);
  // The notice gives 4 significant digits.
  expect(Math.abs(t.quant!.scale[0]! / scale - 1)).toBeLessThan(5e-4);
  expect(t.quant!.zeroPoint).toEqual([zp]);
}

// Weights and bias of conv/dw/fc ops: int8 symmetric, per-channel scales
// over the output channels, int32 bias, data exactly elements * size.
function checkLayer(g: Graph, op: GraphOp, perChannel: boolean) {
  const w = tensor(g, op.inputs[1]!);
  const b = tensor(g, op.inputs[2]!);
  const cout = op.kind === 'depthwise_conv2d' ? w.shape[3]! : w.shape[0]!;
  expect(w.dtype).toBe('int8');
  expect(w.data!.length).toBe(elements(w));
  expect(w.quant!.zeroPoint.every((z) => z === 0)).toBe(true);
  expect(w.quant!.scale).toHaveLength(perChannel ? cout : 1);
  if (perChannel) expect(w.quant!.axis).toBe(op.kind === 'depthwise_conv2d' ? 3 : 0);
  expect(b.dtype).toBe('int32');
  expect(b.shape).toEqual([cout]);
  expect(b.data!.length).toBe(4 * cout);
  expect(b.quant!.scale).toHaveLength(perChannel ? cout : 1);
}

describe('importTflite: the bundled models', () => {
  it('person_detect: MobileNetV1-0.25, 14 conv + 14 depthwise, per-channel weights', () => {
    const g = load('person_detect.tflite');
    const kinds = g.ops.map((o) => o.kind);
    expect(summarizeGraph(g).counts).toEqual({ conv2d: 14, depthwise_conv2d: 14, average_pool2d: 1, reshape: 1, softmax: 1 });
    expect(kinds.slice(-4)).toEqual(['average_pool2d', 'conv2d', 'reshape', 'softmax']);
    expect(g.inputs).toHaveLength(1);
    expect(g.outputs).toHaveLength(1);
    const x = tensor(g, g.inputs[0]!);
    expect(x.shape).toEqual([1, 96, 96, 1]);
    expectQuant(x, 0.007843, -1);
    const y = tensor(g, g.outputs[0]!);
    expect(y.shape).toEqual([1, 2]);
    expectQuant(y, 1 / 256, -128);
    for (const op of g.ops) if (op.kind === 'conv2d' || op.kind === 'depthwise_conv2d') checkLayer(g, op, true);
    // The first layer is a depthwise conv with multiplier 8 (1 -> 8 channels).
    const first = g.ops[0]!;
    expect(first.kind).toBe('depthwise_conv2d');
    if (first.kind === 'depthwise_conv2d') {
      expect(first).toMatchObject({ padding: 'same', strideH: 2, strideW: 2, dilationH: 1, depthMultiplier: 8, activation: 'relu6' });
    }
    const last = tensor(g, g.ops.at(-3)!.inputs[1]!); // the classifier conv's weights, 2x1x1x256
    expect(last.shape).toEqual([2, 1, 1, 256]);
    expect(summarizeGraph(g).paramBytes).toBe(218928);
    expect(() => validateGraph(g)).not.toThrow();
  });

  it('micro_speech: reshape, depthwise conv, fully connected, softmax', () => {
    const g = load('micro_speech_quantized.tflite');
    expect(g.ops.map((o) => o.kind)).toEqual(['reshape', 'depthwise_conv2d', 'fully_connected', 'softmax']);
    const x = tensor(g, g.inputs[0]!);
    expect(x.shape).toEqual([1, 1960]);
    expectQuant(x, 0.1017, -128);
    const y = tensor(g, g.outputs[0]!);
    expect(y.shape).toEqual([1, 4]);
    expectQuant(y, 1 / 256, -128);
    const [reshape, dw, fc, softmax] = g.ops as [GraphOp, GraphOp, GraphOp, GraphOp];
    expect(tensor(g, reshape.outputs[0]!).shape).toEqual([1, 49, 40, 1]);
    expect(dw).toMatchObject({ padding: 'same', strideH: 2, strideW: 2, depthMultiplier: 8, activation: 'relu' });
    checkLayer(g, dw, true);
    expect(tensor(g, dw.outputs[0]!).shape).toEqual([1, 25, 20, 8]);
    expect(fc).toMatchObject({ activation: 'none', keepNumDims: false });
    checkLayer(g, fc, false);
    expect(tensor(g, fc.inputs[1]!).data!.length).toBe(4 * 4000);
    expect(softmax).toMatchObject({ beta: 1 });
    expect(summarizeGraph(g).paramBytes).toBe(16704);
  });

  it('hello_world: three fully connected layers, 420 bytes of parameters', () => {
    const g = load('hello_world_int8.tflite');
    expect(g.ops.map((o) => o.kind)).toEqual(['fully_connected', 'fully_connected', 'fully_connected']);
    expectQuant(tensor(g, g.inputs[0]!), 0.02448, -128);
    expectQuant(tensor(g, g.outputs[0]!), 0.008291, 5);
    expect(tensor(g, g.inputs[0]!).shape).toEqual([1, 1]);
    expect(g.ops.map((o) => (o.kind === 'fully_connected' ? o.activation : ''))).toEqual(['relu', 'relu', 'none']);
    expect(g.ops.map((o) => tensor(g, o.inputs[1]!).shape)).toEqual([[16, 1], [16, 16], [1, 16]]);
    for (const op of g.ops) checkLayer(g, op, false);
    const s = summarizeGraph(g);
    expect(s.paramBytes).toBe(16 + 64 + 256 + 64 + 16 + 4);
    expect(s.ops.map((o) => o.macs)).toEqual([16, 256, 16]);
    expect(s.inputs).toEqual(['int8[1x1]']);
  });

  it('reads a file whose bytes do not start at an aligned offset', () => {
    const raw = readFileSync(new URL('../models/hello_world_int8.tflite', import.meta.url));
    const shifted = new Uint8Array(raw.length + 3).subarray(3);
    shifted.set(raw);
    expect(importTflite(shifted, 'hello').ops).toHaveLength(3);
  });
});

function refused(spec: ModelSpec | Uint8Array, name = 'tiny'): string {
  const bytes = spec instanceof Uint8Array ? spec : buildTflite(spec);
  try {
    importTflite(bytes, name);
  } catch (e) {
    expect(e).toBeInstanceOf(TfliteImportError);
    return (e as Error).message;
  }
  throw new Error('the model was accepted');
}

describe('importTflite: models it refuses, and why', () => {
  const supported = 'CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D, MEAN, ADD, RESHAPE, SOFTMAX';

  it('the builder model itself is accepted', () => {
    const g = importTflite(buildTflite(tinyFcSpec()), 'tiny');
    expect(g.ops).toHaveLength(1);
    expect(tensor(g, 1).data).toEqual(int8Bytes([1, 2, 3, 4, -1, -2, -3, -4]));
  });

  it('an unsupported op is named with its index and builtin code', () => {
    const spec = tinyFcSpec();
    spec.tensors.push({ name: 'z', shape: [1, 2], scale: [0.1], zeroPoint: [0] });
    spec.ops.push({ builtin: tfl.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM, inputs: [3], outputs: [4] });
    spec.outputs = [4];
    expect(refused(spec)).toBe(
      `tiny: operator 1 (UNIDIRECTIONAL_SEQUENCE_LSTM, builtin 44) is not supported; xstrain supports ${supported}; ` +
        'rebuild the model from those ops (or file an issue naming the op)',
    );
  });

  it('an op code above 127 comes from builtin_code (max of the two fields, as TFLite does)', () => {
    const spec = tinyFcSpec();
    spec.ops[0]!.builtin = tfl.BuiltinOperator.GELU;
    expect(refused(spec)).toContain('operator 0 (GELU, builtin 150) is not supported');
  });

  it('a custom op is named', () => {
    const spec = tinyFcSpec();
    spec.ops[0] = { builtin: tfl.BuiltinOperator.CUSTOM, custom: 'TFLite_Detection_PostProcess', inputs: [0], outputs: [3] };
    expect(refused(spec)).toBe(`tiny: operator 0 (custom "TFLite_Detection_PostProcess") is not supported; xstrain supports ${supported}`);
  });

  it('a float model is refused with how to convert it', () => {
    const spec = tinyFcSpec();
    spec.tensors[0] = { name: 'x', type: tfl.TensorType.FLOAT32, shape: [1, 4] };
    const msg = refused(spec);
    expect(msg).toContain('graph input "x" is float32[1x4]; xstrain needs a fully int8 model');
    expect(msg).toContain('representative_dataset');
    expect(msg).toContain('inference_input_type = tf.int8');
  });

  it('a uint8 activation is refused the same way', () => {
    const spec = tinyFcSpec();
    spec.tensors[3] = { name: 'y', type: tfl.TensorType.UINT8, shape: [1, 2], scale: [0.1], zeroPoint: [128] };
    expect(refused(spec)).toContain('operator 0 (FULLY_CONNECTED) output "y" is uint8[1x2]; xstrain needs a fully int8 model');
  });

  it('missing quantisation on an activation', () => {
    const spec = tinyFcSpec();
    spec.tensors[0] = { name: 'x', shape: [1, 4] };
    expect(refused(spec)).toContain('graph input "x" is int8 without quantisation parameters');
  });

  it('asymmetric weights, and weights that are not int8', () => {
    const spec = tinyFcSpec();
    spec.tensors[1]!.zeroPoint = [3];
    expect(refused(spec)).toContain('operator 0 (FULLY_CONNECTED): weights "w" are asymmetric (zero points 3)');
    const spec2 = tinyFcSpec();
    spec2.tensors[1] = { name: 'w', type: tfl.TensorType.INT16, shape: [2, 4], scale: [0.01], data: new Uint8Array(16) };
    expect(refused(spec2)).toContain('weights "w" are int16[2x4], expected int8');
  });

  it('a bias that is not int32', () => {
    const spec = tinyFcSpec();
    spec.tensors[2] = { name: 'b', shape: [2], scale: [0.0005], data: int8Bytes([1, 2]) };
    expect(refused(spec)).toContain('bias "b" is int8[2], expected int32');
  });

  it('constant data whose size disagrees with the shape', () => {
    const spec = tinyFcSpec();
    spec.tensors[1]!.data = int8Bytes([1, 2, 3]);
    expect(refused(spec)).toBe('tiny: tensor 1 "w" is int8[2x4] (8 bytes) but its buffer 1 has 3 bytes');
  });

  it('fully connected input features that disagree with the weights', () => {
    const spec = tinyFcSpec();
    spec.tensors[0]!.shape = [1, 3];
    expect(refused(spec)).toContain('input "x" has shape [1,3], weights "w" expect 4 input features');
  });

  it('tensor indices out of range, negative and absurd shapes', () => {
    const spec = tinyFcSpec();
    spec.ops[0]!.inputs = [0, 9, 2];
    expect(refused(spec)).toBe('tiny: operator 0 (FULLY_CONNECTED) input 1 refers to tensor 9, the subgraph has 4 tensors');
    const spec2 = tinyFcSpec();
    spec2.tensors[0]!.shape = [1, -4];
    expect(refused(spec2)).toContain('dimension 1 is -4, must be positive');
    const spec3 = tinyFcSpec();
    spec3.tensors[0]!.shape = [65536, 65536];
    expect(refused(spec3)).toContain('more than 2^28 elements');
    const spec4 = tinyFcSpec();
    spec4.outputs = [7];
    expect(refused(spec4)).toBe('tiny: graph output 0 refers to tensor 7, the subgraph has 4 tensors');
  });

  // x int8[1,5,5,2] -> CONV_2D w [3,3,3,2] -> y [1,Ho,Wo,3]
  function convSpec(yShape: number[], conv: NonNullable<ModelSpec['ops'][0]['conv']>, wIn = 2): ModelSpec {
    return {
      tensors: [
        { name: 'x', shape: [1, 5, 5, 2], scale: [0.05], zeroPoint: [0] },
        { name: 'w', shape: [3, 3, 3, wIn], scale: [0.01, 0.02, 0.03], axis: 0, data: new Uint8Array(27 * wIn) },
        { name: 'b', type: tfl.TensorType.INT32, shape: [3], scale: [1e-3, 2e-3, 3e-3], data: int32Bytes([0, 0, 0]) },
        { name: 'y', shape: yShape, scale: [0.1], zeroPoint: [0] },
      ],
      ops: [{ builtin: tfl.BuiltinOperator.CONV_2D, inputs: [0, 1, 2], outputs: [3], conv }],
      inputs: [0],
      outputs: [3],
    };
  }

  it('conv geometry follows TFLite: SAME ceil(in/stride), VALID ceil((in-k+1)/stride)', () => {
    const same = importTflite(buildTflite(convSpec([1, 3, 3, 3], { padding: tfl.Padding.SAME, stride: 2 })), 'c');
    expect(same.ops[0]).toMatchObject({ kind: 'conv2d', padding: 'same', strideH: 2 });
    expect(() => importTflite(buildTflite(convSpec([1, 2, 2, 3], { padding: tfl.Padding.VALID, stride: 2 })), 'c')).not.toThrow();
    expect(refused(convSpec([1, 3, 3, 3], { padding: tfl.Padding.VALID, stride: 2 }))).toBe(
      'tiny: operator 0 (CONV_2D): output "y" has shape [1,3,3,3], expected [1,2,2,3]',
    );
  });

  it('conv weights whose input channels disagree with the input', () => {
    expect(refused(convSpec([1, 3, 3, 3], { padding: tfl.Padding.VALID }, 4))).toContain(
      'weights "w" have 4 input channels, the input "x" has 2',
    );
  });

  it('dilation other than 1', () => {
    expect(refused(convSpec([1, 1, 1, 3], { padding: tfl.Padding.VALID, dilation: 2 }))).toContain(
      'operator 0 (CONV_2D) has dilation 2x2; xstrain supports dilation 1 only',
    );
  });

  it('not a TFLite file', () => {
    const bytes = buildTflite(tinyFcSpec());
    bytes.set([0x54, 0x46, 0x4c, 0x32], 4); // "TFL2"
    expect(refused(bytes)).toBe(
      'tiny: not a TFLite model: file identifier is "TFL2", expected "TFL3" (is this a .tflite flatbuffer, not a SavedModel, .h5 or a C array?)',
    );
    expect(refused(new Uint8Array(5))).toContain('shorter than the 8-byte flatbuffer header');
    const truncated = buildTflite(tinyFcSpec()).subarray(0, 100);
    expect(refused(truncated)).toContain('not a valid .tflite file');
  });
});

describe('importTflite: hostile files', () => {
  // Positions inside the tiny model, found with the generated accessors.
  function layout() {
    const bytes = buildTflite(tinyFcSpec());
    const bb = new flatbuffers.ByteBuffer(bytes);
    const model = tfl.Model.getRootAsModel(bb);
    const sg = model.subgraphs(0)!;
    const tensorsField = sg.bb_pos + bb.__offset(sg.bb_pos, 4);
    const tensorsLen = bb.__vector(tensorsField) - 4;
    return { bytes, view: new DataView(bytes.buffer), tensorsField, tensorsLen, sgPos: sg.bb_pos };
  }

  it('an absurd vector length is refused, not looped over', () => {
    const { bytes, view, tensorsLen } = layout();
    view.setUint32(tensorsLen, 0x7fffffff, true);
    expect(refused(bytes)).toMatch(/^tiny: not a valid \.tflite file: Model\.subgraphs\[0\]\.tensors: vector of 2147483647 elements runs past the end/);
  });

  it('an offset outside the buffer is refused', () => {
    const { bytes, view, tensorsField } = layout();
    view.setUint32(tensorsField, bytes.length, true);
    expect(refused(bytes)).toContain('Model.subgraphs[0].tensors: offset at byte');
    view.setUint32(0, 0xfffffff0, true); // the root offset
    expect(refused(bytes)).toContain('root: offset 4294967280 at byte 0 is out of range');
  });

  it('a vtable outside the buffer is refused', () => {
    const { bytes, view, sgPos } = layout();
    view.setInt32(sgPos, -0x100000, true);
    expect(refused(bytes)).toContain(`Model.subgraphs[0]: table at byte ${sgPos} has its vtable outside the file`);
  });

  it('one operator table shared by 20,000 entries is refused before the reader walks it', () => {
    const spec = tinyFcSpec();
    spec.opRepeat = 20_000;
    expect(refused(spec)).toContain('Model.subgraphs[0].operators[');
    expect(refused(spec)).toContain('(shared or looping offsets)');
  });
});
