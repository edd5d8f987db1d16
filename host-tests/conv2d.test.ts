// conv2d: the C kernels (native/core/conv2d_s8.c through the Node addon)
// against the TypeScript reference (src/core/reference/conv2d.ts) on seeded
// random shapes and quantisation parameters, bit-identical, with nothing
// written outside the outputs; the 1x1 path through the FC code; bad input.
import { describe, expect, it } from 'vitest';
import { ArenaLayout } from '../src/core/arena.js';
import { convGeometry, type Padding } from '../src/core/conv-geometry.js';
import { conv2dBackwardInputScratchBytes, KernelArgumentError, Kernels, type ConvShape } from '../src/core/kernels.js';
import { Op } from '../src/core/ops.js';
import { quantizeMultiplier } from '../src/core/quant.js';
import { ReferenceDispatch } from '../src/core/reference/dispatch.js';
import { Xorshift32 } from '../src/core/rng.js';
import { NodeDispatch } from '../src/node/addon.js';
import { Pair, randInt8 } from './support/pair.js';

const CAPACITY = 1 << 18;

interface Geo {
  batch: number; inH: number; inW: number; inC: number; outC: number;
  kH: number; kW: number; strideH: number; strideW: number; padding: Padding;
}

function shapeOf(g: Geo): ConvShape {
  const { outH, outW, padH, padW } = convGeometry(g.inH, g.inW, g.kH, g.kW, g.strideH, g.strideW, g.padding);
  return { batch: g.batch, inH: g.inH, inW: g.inW, inC: g.inC, outH, outW, outC: g.outC, kH: g.kH, kW: g.kW,
    strideH: g.strideH, strideW: g.strideW, padH, padW };
}

// Edge cases first, then random shapes.
const EDGES: Geo[] = [
  { batch: 1, inH: 1, inW: 1, inC: 1, outC: 1, kH: 1, kW: 1, strideH: 1, strideW: 1, padding: 'same' }, // 1x1 image
  { batch: 1, inH: 1, inW: 1, inC: 3, outC: 5, kH: 3, kW: 3, strideH: 1, strideW: 1, padding: 'same' }, // kernel > image
  { batch: 2, inH: 2, inW: 3, inC: 5, outC: 3, kH: 5, kW: 4, strideH: 2, strideW: 3, padding: 'same' }, // kernel > image, strided
  { batch: 1, inH: 7, inW: 9, inC: 3, outC: 6, kH: 3, kW: 3, strideH: 2, strideW: 2, padding: 'same' },
  { batch: 1, inH: 7, inW: 9, inC: 3, outC: 6, kH: 3, kW: 3, strideH: 2, strideW: 2, padding: 'valid' },
  { batch: 1, inH: 10, inW: 11, inC: 7, outC: 5, kH: 2, kW: 3, strideH: 3, strideW: 3, padding: 'same' },
  { batch: 1, inH: 10, inW: 11, inC: 7, outC: 5, kH: 4, kW: 2, strideH: 3, strideW: 2, padding: 'valid' },
  { batch: 2, inH: 5, inW: 5, inC: 9, outC: 13, kH: 1, kW: 1, strideH: 1, strideW: 1, padding: 'same' }, // FC path
  { batch: 1, inH: 5, inW: 5, inC: 4, outC: 3, kH: 1, kW: 1, strideH: 2, strideW: 2, padding: 'valid' }, // 1x1 strided
  { batch: 1, inH: 6, inW: 6, inC: 2, outC: 2, kH: 5, kW: 5, strideH: 4, strideW: 4, padding: 'same' }, // stride > taps overlap
  // person_detect (MobileNet v1 0.25, 96x96x1) at quarter scale: stem 3x3/2 conv, pointwise 1x1 convs.
  { batch: 1, inH: 24, inW: 24, inC: 1, outC: 8, kH: 3, kW: 3, strideH: 2, strideW: 2, padding: 'same' },
  { batch: 1, inH: 12, inW: 12, inC: 8, outC: 16, kH: 1, kW: 1, strideH: 1, strideW: 1, padding: 'same' },
  { batch: 1, inH: 6, inW: 6, inC: 32, outC: 32, kH: 1, kW: 1, strideH: 1, strideW: 1, padding: 'valid' },
  { batch: 1, inH: 3, inW: 3, inC: 64, outC: 2, kH: 3, kW: 3, strideH: 1, strideW: 1, padding: 'valid' },
];

function randomGeo(rng: Xorshift32): Geo {
  const inH = rng.int(1, 9), inW = rng.int(1, 9), kH = rng.int(1, 5), kW = rng.int(1, 5);
  const padding: Padding = rng.below(2) && kH <= inH && kW <= inW ? 'valid' : 'same';
  return { batch: rng.int(1, 2), inH, inW, inC: rng.int(1, 7), outC: rng.int(1, 9), kH, kW,
    strideH: rng.int(1, 3), strideW: rng.int(1, 3), padding };
}

function geoFor(rng: Xorshift32, trial: number): Geo {
  return trial < EDGES.length ? EDGES[trial]! : randomGeo(rng);
}

const TRIALS = EDGES.length + 50;
const nIn = (s: ConvShape) => s.batch * s.inH * s.inW * s.inC;
const nOut = (s: ConvShape) => s.batch * s.outH * s.outW * s.outC;
const nW = (s: ConvShape) => s.outC * s.kH * s.kW * s.inC;

function forwardSetup(p: Pair, rng: Xorshift32, s: ConvShape, trial: number) {
  const t = {
    input: p.alloc('in', 'int8', [s.batch, s.inH, s.inW, s.inC]),
    weights: p.alloc('w', 'int8', [s.outC, s.kH, s.kW, s.inC]),
    bias: p.alloc('bias', 'int32', [s.outC]),
    output: p.alloc('out', 'int8', [s.batch, s.outH, s.outW, s.outC]),
    mask: p.alloc('mask', 'uint8', [Math.ceil(nOut(s) / 8)]),
    multiplier: p.alloc('mult', 'int32', [s.outC]),
    shift: p.alloc('shift', 'int32', [s.outC]),
  };
  p.set(t.input, randInt8(rng, nIn(s)));
  p.set(t.weights, randInt8(rng, nW(s), -127, 127));
  p.set(t.bias, Array.from({ length: s.outC }, () => rng.int(0, 40000) - 20000));
  const q = Array.from({ length: s.outC }, () => quantizeMultiplier(((1 + rng.below(999)) / 1000) * 2 ** -rng.int(6, 14)));
  p.set(t.multiplier, q.map((x) => x.multiplier));
  p.set(t.shift, q.map((x) => x.shift));
  const zpOut = rng.int(-128, 127);
  // none, ReLU (clamp at the zero point), ReLU6-like (a narrow band above it)
  const act = [[-128, 127], [zpOut, 127], [zpOut, Math.min(127, zpOut + 40)]][trial % 3]!;
  const quant = { inputOffset: rng.int(-127, 128), outputOffset: zpOut, actMin: act[0]!, actMax: act[1]! };
  return { t, quant, useBias: trial % 4 !== 0, useMask: trial % 5 !== 0 };
}

describe('conv2d C kernels are bit-identical to the TypeScript reference', () => {
  it('conv2d_s8_forward (SAME/VALID, strides 1-3, bias/mask on and off, all activations)', () => {
    const rng = new Xorshift32(1010);
    for (let trial = 0; trial < TRIALS; trial++) {
      const p = new Pair(rng, CAPACITY);
      const s = shapeOf(geoFor(rng, trial));
      const { t, quant, useBias, useMask } = forwardSetup(p, rng, s, trial);
      p.both((k) => k.conv2dForward({ ...s, ...quant, ...t, bias: useBias ? t.bias : null, mask: useMask ? t.mask : null }));
      expect(p.differences(), `trial ${trial} ${JSON.stringify(s)}`).toEqual([]);
    }
  });

  it('the 1x1/stride-1 conv is the FC kernel over batch*h*w rows (same bytes, mask included)', () => {
    const rng = new Xorshift32(1111);
    for (let trial = 0; trial < 20; trial++) {
      const p = new Pair(rng, CAPACITY);
      const s = shapeOf({ batch: rng.int(1, 3), inH: rng.int(1, 8), inW: rng.int(1, 8), inC: rng.int(1, 20),
        outC: rng.int(1, 20), kH: 1, kW: 1, strideH: 1, strideW: 1, padding: 'same' });
      const { t, quant } = forwardSetup(p, rng, s, trial);
      const rows = s.batch * s.inH * s.inW;
      const fcOut = p.alloc('fc_out', 'int8', [rows, s.outC]);
      const fcMask = p.alloc('fc_mask', 'uint8', [Math.ceil((rows * s.outC) / 8)]);
      p.both((k) => {
        k.conv2dForward({ ...s, ...quant, ...t });
        k.fcForward({ rows, inFeatures: s.inC, outFeatures: s.outC, ...quant, ...t, output: fcOut, mask: fcMask });
      });
      expect(p.differences(), `trial ${trial}`).toEqual([]);
      expect([...p.c.read(fcOut)]).toEqual([...p.c.read(t.output)]);
      // bits past rows*out_c are never written (random arena bytes there)
      const bits = (m: Uint8Array) => Array.from({ length: rows * s.outC }, (_, j) => (m[j >> 3]! >> (j & 7)) & 1);
      expect(bits(p.c.read(fcMask))).toEqual(bits(p.c.read(t.mask)));
    }
  });

  it('conv2d_s8_backward_input (transposed conv, per-channel weight scales, normalised exponent)', () => {
    const rng = new Xorshift32(1212);
    for (let trial = 0; trial < TRIALS + 2; trial++) {
      const p = new Pair(rng, CAPACITY);
      // Two wide layers at the end: terms per element > 2^9, so pre grows past 8.
      const g = trial === TRIALS ? { ...EDGES[7]!, outC: 1100, inH: 2, inW: 2 }
        : trial === TRIALS + 1 ? { ...EDGES[3]!, outC: 300, inC: 2, inH: 4, inW: 4 } : geoFor(rng, trial);
      const s = shapeOf(g);
      const t = {
        wscaleMantissa: p.alloc('wscale', 'int16', [s.outC]),
        gradOut: p.alloc('grad_out', 'int8', [s.batch, s.outH, s.outW, s.outC]),
        gradOutExp: p.alloc('grad_out_exp', 'int32', [1]),
        weights: p.alloc('w', 'int8', [s.outC, s.kH, s.kW, s.inC]),
        gradIn: p.alloc('grad_in', 'int8', [s.batch, s.inH, s.inW, s.inC]),
        gradInExp: p.alloc('grad_in_exp', 'int32', [1]),
        scratch: p.alloc('scratch', 'uint8', [conv2dBackwardInputScratchBytes(s)]),
      };
      p.set(t.wscaleMantissa, Array.from({ length: s.outC }, () => rng.int(0, 32767)));
      // Small gradients sometimes, so the exponent normalisation shifts left too.
      p.set(t.gradOut, randInt8(rng, nOut(s), trial % 3 ? -128 : -2, trial % 3 ? 127 : 2));
      p.set(t.gradOutExp, [rng.int(-20, 0)]);
      p.set(t.weights, randInt8(rng, nW(s), -127, 127));
      const wscaleExp = rng.int(-10, 2);
      p.both((k) => k.conv2dBackwardInput({ ...s, wscaleExp, ...t }));
      expect(p.differences([t.scratch]), `trial ${trial} ${JSON.stringify(s)}`).toEqual([]);
    }
  });

  it('conv2d_s8_backward_bias and _backward_weight on channel blocks (sparse update)', () => {
    const rng = new Xorshift32(1313);
    for (let trial = 0; trial < TRIALS; trial++) {
      const p = new Pair(rng, CAPACITY);
      const s = shapeOf(geoFor(rng, trial));
      const ocBegin = rng.int(0, s.outC - 1), icBegin = rng.int(0, s.inC - 1);
      const b = { ocBegin, ocEnd: rng.int(ocBegin + 1, s.outC), icBegin, icEnd: rng.int(icBegin + 1, s.inC) };
      const noc = b.ocEnd - b.ocBegin, nic = b.icEnd - b.icBegin;
      const gradOut = p.alloc('grad_out', 'int8', [s.batch, s.outH, s.outW, s.outC]);
      const input = p.alloc('in', 'int8', [s.batch, s.inH, s.inW, s.inC]);
      const gradBias = p.alloc('grad_bias', 'int32', [noc]);
      const gradWeights = p.alloc('grad_w', 'int32', [noc, s.kH, s.kW, nic]);
      p.set(gradOut, randInt8(rng, nOut(s)).map((v) => (rng.below(4) ? v : 0)));
      p.set(input, randInt8(rng, nIn(s)));
      const inputOffset = rng.int(-127, 128);
      p.both((k) => {
        k.conv2dBackwardBias({ ...s, ocBegin: b.ocBegin, ocEnd: b.ocEnd, gradOut, gradBias });
        k.conv2dBackwardWeight({ ...s, ...b, inputOffset, gradOut, input, gradWeights });
      });
      expect(p.differences(), `trial ${trial} ${JSON.stringify(s)}`).toEqual([]);
    }
  });
});

describe('convGeometry (TFLite padding)', () => {
  it('matches TFLite ComputePaddingHeightWidth on known cases', () => {
    // person_detect stem: 96x96, 3x3 stride 2 SAME -> 48x48, pad top/left 0 (total 1 goes bottom/right)
    expect(convGeometry(96, 96, 3, 3, 2, 2, 'same')).toEqual({ outH: 48, outW: 48, padH: 0, padW: 0 });
    expect(convGeometry(5, 5, 3, 3, 1, 1, 'same')).toEqual({ outH: 5, outW: 5, padH: 1, padW: 1 });
    expect(convGeometry(5, 7, 3, 3, 2, 2, 'valid')).toEqual({ outH: 2, outW: 3, padH: 0, padW: 0 });
    expect(convGeometry(1, 1, 3, 5, 1, 1, 'same')).toEqual({ outH: 1, outW: 1, padH: 1, padW: 2 });
    expect(convGeometry(10, 10, 4, 4, 3, 3, 'same')).toEqual({ outH: 4, outW: 4, padH: 1, padW: 1 });
    expect(() => convGeometry(2, 2, 3, 3, 1, 1, 'valid')).toThrow('VALID padding needs height kernel 3 <= input 2');
  });
});

describe('conv2d bad input', () => {
  const s: ConvShape = { batch: 1, inH: 4, inW: 4, inC: 3, outH: 4, outW: 4, outC: 2, kH: 3, kW: 3, strideH: 1,
    strideW: 1, padH: 1, padW: 1 };

  for (const make of [(b: ArrayBuffer) => new NodeDispatch(b), (b: ArrayBuffer) => new ReferenceDispatch(b)]) {
    const name = make(new ArrayBuffer(8)).name;
    it(`a wrong tensor shape throws KernelArgumentError naming the tensor (${name})`, () => {
      const L = new ArenaLayout(4096);
      const k = new Kernels(make(new ArrayBuffer(4096)));
      const t = {
        input: L.alloc('conv1.input', 'int8', [1, 4, 4, 3]),
        weights: L.alloc('conv1.weights', 'int8', [2, 3, 3, 2]), // in_c 2, not 3
        bias: null, mask: null,
        output: L.alloc('conv1.output', 'int8', [1, 4, 4, 2]),
        multiplier: L.alloc('conv1.multiplier', 'int32', [2]),
        shift: L.alloc('conv1.shift', 'int32', [2]),
      };
      const q = { inputOffset: 0, outputOffset: 0, actMin: -128, actMax: 127 };
      const call = () => k.conv2dForward({ ...s, ...q, ...t });
      expect(call).toThrow(KernelArgumentError);
      expect(call).toThrow(
        'conv2d_s8_forward: weights tensor "conv1.weights" is int8[2x3x3x2] (36 bytes), expected int8[2x3x3x3] (54 bytes)',
      );
      const gw = L.alloc('conv1.grad_w', 'int32', [2, 3, 3, 2]);
      expect(() => k.conv2dBackwardWeight({ ...s, ocBegin: 0, ocEnd: 2, icBegin: 0, icEnd: 3, inputOffset: 0,
        gradOut: t.output, input: t.input, gradWeights: gw })).toThrow('grad_weights tensor "conv1.grad_w" is int32[2x3x3x2]');
      expect(() => k.conv2dBackwardBias({ ...s, ocBegin: 0, ocEnd: 3, gradOut: t.output, gradBias: t.multiplier }))
        .toThrow('output-channel range [0, 3) is not inside [0, 2)');
      const small = L.alloc('conv1.scratch', 'uint8', [conv2dBackwardInputScratchBytes(s) - 4]);
      expect(() => k.conv2dBackwardInput({ ...s, wscaleMantissa: L.alloc('ws', 'int16', [2]), wscaleExp: 0,
        gradOut: t.output, gradOutExp: L.cell('ge'), weights: L.alloc('w', 'int8', [2, 3, 3, 3]), gradIn: t.input,
        gradInExp: L.cell('gie'), scratch: small })).toThrow('scratch tensor "conv1.scratch" has 192 bytes, needs 196');
      // geometry the C core would refuse
      expect(() => k.conv2dForward({ ...s, ...q, ...t, padH: 3 })).toThrow('pad_h is 3, expected an integer in [0, 2]');
      expect(() => k.conv2dForward({ ...s, ...q, ...t, outH: 7 })).toThrow('out_h 7 with stride 1 and padding 1 puts the last window outside the input (4)');
    });
  }

  it('the C dispatcher returns a status for bad dims, params, offsets, alignment and aliasing', () => {
    const d = new NodeDispatch(new ArrayBuffer(4096));
    const dims = [1, 4, 4, 3, 4, 4, 2, 3, 3, 1, 1, 1, 1];
    // in @0 (48), w @64 (54), out @128 (32), mult @160, shift @168; mult/shift cells valid
    const k = new Kernels(d);
    k.writeInt32({ name: 'm', dtype: 'int32', shape: [4], offset: 160, bytes: 16 }, [1 << 30, 1 << 30, -1, -1]);
    const fwd = (dm: number[], q: number[], tensors: number[]) => () => d.call(Op.Conv2dForward, Int32Array.of(...dm, ...q, ...tensors));
    const q = [0, 0, -128, 127];
    const good = [0, 64, -1, 128, -1, 160, 168];
    expect(fwd(dims, q, good)).not.toThrow();
    const status = (f: () => void) => {
      try { f(); return 'ok'; } catch (e) { return (e as Error).message; }
    };
    expect(status(fwd([1, 4, 4, 3, 4, 4, 2, 3, 3, 1, 1, 3, 1], q, good))).toContain('bad dimensions (status 3)'); // pad >= k
    expect(status(fwd([1, 4, 4, 3, 6, 4, 2, 3, 3, 1, 1, 1, 1], q, good))).toContain('bad dimensions'); // out_h too big
    expect(status(fwd([1, 4, 4, 3, 4, 4, 2, 3, 3, 0, 1, 1, 1], q, good))).toContain('bad dimensions'); // stride 0
    expect(status(fwd([1, 4, 4, 0x7fffffff, 4, 4, 2, 3, 3, 1, 1, 1, 1], q, good))).toContain('bad dimensions');
    expect(status(fwd([1 << 24, 1 << 24, 1 << 24, 1 << 24, 1 << 24, 1 << 24, 1, 1, 1, 1, 1, 0, 0], q, good))).toContain('bad dimensions');
    expect(status(fwd(dims, [0, 0, 10, -10], good))).toContain('quantisation parameter out of range (status 7)');
    expect(status(fwd(dims, [200, 0, -128, 127], good))).toContain('quantisation parameter');
    k.writeInt32({ name: 'm', dtype: 'int32', shape: [2], offset: 160, bytes: 8 }, [-5, 1 << 30]);
    expect(status(fwd(dims, q, good))).toContain('quantisation parameter'); // negative multiplier
    expect(status(fwd(dims, q, [0, 4090, -1, 128, -1, 160, 168]))).toContain('tensor outside the arena (status 5)');
    expect(status(fwd(dims, q, [-8, 64, -1, 128, -1, 160, 168]))).toContain('tensor outside the arena');
    expect(status(fwd(dims, q, [0, 64, 2, 128, -1, 160, 168]))).toContain('tensor misaligned (status 6)');
    expect(status(fwd(dims, q, [0, 64, -1, 40, -1, 160, 168]))).toContain('output tensor overlaps another tensor (status 8)');
    // backward weight: empty channel block, misaligned gradient, too many pixels for an exact int32 sum
    const bw = (dm: number[], rest: number[]) => () => d.call(Op.Conv2dBackwardWeight, Int32Array.of(...dm, ...rest));
    expect(status(bw(dims, [0, 2, 0, 3, 0, 128, 0, 256]))).toBe('ok');
    expect(status(bw(dims, [1, 1, 0, 3, 0, 128, 0, 256]))).toContain('channel range out of bounds (status 4)');
    expect(status(bw(dims, [0, 2, 0, 4, 0, 128, 0, 256]))).toContain('channel range');
    expect(status(bw(dims, [0, 2, 0, 3, 0, 128, 0, 258]))).toContain('tensor misaligned');
    expect(status(bw(dims, [0, 2, 0, 3, 300, 128, 0, 256]))).toContain('quantisation parameter');
    const big = new NodeDispatch(new ArrayBuffer(1 << 18));
    const many = [1, 256, 256, 1, 256, 256, 1, 1, 1, 1, 1, 0, 0]; // 65536 output pixels
    expect(() => big.call(Op.Conv2dBackwardWeight, Int32Array.of(...many, 0, 1, 0, 1, 0, 0, 65536, 131072)))
      .toThrow('bad dimensions');
    // backward input: scratch too small for the arena, wscale exponent out of range
    const bi = (rest: number[]) => () => d.call(Op.Conv2dBackwardInput, Int32Array.of(...dims, ...rest));
    expect(status(bi([512, 0, 128, 516, 64, 0, 520, 1024]))).toBe('ok');
    expect(status(bi([512, 99, 128, 516, 64, 0, 520, 1024]))).toContain('quantisation parameter');
    expect(status(bi([512, 0, 128, 516, 64, 0, 520, 3904]))).toContain('tensor outside the arena');
    expect(status(bi([512, 0, 128, 516, 64, 0, 520, 32]))).toContain('overlaps');
    // bias: oc range
    expect(status(() => d.call(Op.Conv2dBackwardBias, Int32Array.of(...dims, 0, 3, 128, 256)))).toContain('channel range');
  });
});
