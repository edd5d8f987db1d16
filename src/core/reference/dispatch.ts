// The reference kernels behind the same Dispatch interface as the C core:
// decodes the dispatcher's int32 argument layout (native/core/xst.h) and runs
// the TypeScript reference on views of an in-memory arena.

import { BufferDispatch } from '../kernels.js';
import { Op, type OpId, opName, opNargs } from '../ops.js';
import * as k from './kernels.js';
import * as conv from './conv2d.js';
import * as dw from './depthwise_conv2d.js';
import * as pool from './average-pool.js';
import * as add from './add.js';
import * as softmax from './softmax.js';
import * as lqm from './lqm.js';
import { KernelArgumentError } from '../kernels.js';
import * as optim from './optim.js';

export class ReferenceDispatch extends BufferDispatch {
  readonly name = 'reference';

  // Views into whichever region (arena or flash) the offset names.
  private view(off: number, bytes: number): { buffer: ArrayBuffer; at: number } {
    const r = this.region(off, bytes);
    return { buffer: r.buf.buffer as ArrayBuffer, at: r.buf.byteOffset + r.at };
  }
  private i8(off: number, n: number): Int8Array {
    const v = this.view(off, n);
    return new Int8Array(v.buffer, v.at, n);
  }
  private u8(off: number, n: number): Uint8Array {
    const v = this.view(off, n);
    return new Uint8Array(v.buffer, v.at, n);
  }
  private i16(off: number, n: number): Int16Array {
    const v = this.view(off, 2 * n);
    return new Int16Array(v.buffer, v.at, n);
  }
  private i32(off: number, n: number): Int32Array {
    const v = this.view(off, 4 * n);
    return new Int32Array(v.buffer, v.at, n);
  }
  private f32(off: number, n: number): Float32Array {
    const v = this.view(off, 4 * n);
    return new Float32Array(v.buffer, v.at, n);
  }
  private getCell(off: number): number {
    return this.i32(off, 1)[0]!;
  }
  private setCell(off: number, v: number): void {
    this.i32(off, 1)[0] = v;
  }
  // The RNG state cell holds a uint32.
  private rng(off: number): { state: number; store(): void } {
    const v = this.view(off, 4);
    const cell = new Uint32Array(v.buffer, v.at, 1);
    const r = { state: cell[0]!, store: () => (cell[0] = r.state) };
    if (r.state === 0) throw new Error(`${this.name}: rng state is 0 (xorshift32 needs a nonzero seed)`);
    return r;
  }

  private poolDims(a: Int32Array): pool.PoolDims {
    return { batches: a[0]!, inH: a[1]!, inW: a[2]!, channels: a[3]!, outH: a[4]!, outW: a[5]!, filterH: a[6]!,
      filterW: a[7]!, strideH: a[8]!, strideW: a[9]!, padH: a[10]!, padW: a[11]! };
  }

  // LQM scalars at a[k..k+3] and the state size (what lqm_s8.c refuses).
  private lqmParams(op: OpId, a: Int32Array, k: number, stateBytes: number, n: number): lqm.LqmParams {
    const p = { bits: a[k]!, emin: a[k + 1]!, emax: a[k + 2]!, decay: a[k + 3]! };
    const err = lqm.lqmParamError(p);
    if (err) throw new KernelArgumentError(`${opName[op]}: ${err}`);
    if (stateBytes !== lqm.lqmStateBytes(p.bits, n)) {
      throw new KernelArgumentError(`${opName[op]}: state_bytes is ${stateBytes}, expected ${lqm.lqmStateBytes(p.bits, n)}`);
    }
    return p;
  }
  private lqmShift(op: OpId, off: number, O: number, b: { ocBegin: number; ocEnd: number }): Int32Array {
    const shift = this.i32(off, O);
    for (let c = b.ocBegin; c < b.ocEnd; c++) {
      if (shift[c]! < -64 || shift[c]! > 64) {
        throw new KernelArgumentError(`${opName[op]}: lqm shift[${c}] is ${shift[c]}, expected an integer in [-64, 64]`);
      }
    }
    return shift;
  }

  // A per-channel learning rate as the fused conv/depthwise updates check it
  // (ops 37-38): multiplier >= 0, shift in [-62, 62] over the block.
  private lr(op: OpId, mOff: number, sOff: number, O: number, b: { ocBegin: number; ocEnd: number }): k.Lr {
    const multiplier = this.i32(mOff, O), shift = this.i32(sOff, O);
    for (let c = b.ocBegin; c < b.ocEnd; c++) {
      if (multiplier[c]! < 0 || shift[c]! < -62 || shift[c]! > 62) {
        throw new KernelArgumentError(`${opName[op]}: lr[${c}] is multiplier ${multiplier[c]}, shift ${shift[c]}; ` +
          'expected a multiplier >= 0 and a shift in [-62, 62]');
      }
    }
    return { multiplier, shift };
  }

  // W = [wLo | wHi] (out x in) of a split weight (ops 33-34): the
  // reference is the whole-weight kernel on the joined weights.
  private joined(O: number, I: number, S: number, lo: number, hi: number): Int8Array {
    const wLo = this.i8(lo, O * S), wHi = S < I ? this.i8(hi, O * (I - S)) : new Int8Array(0);
    const w = new Int8Array(O * I);
    for (let c = 0; c < O; c++) {
      w.set(wLo.subarray(c * S, (c + 1) * S), c * I);
      w.set(wHi.subarray(c * (I - S), (c + 1) * (I - S)), c * I + S);
    }
    return w;
  }

  call(op: OpId, a: Int32Array): void {
    if (a.length !== opNargs[op]) throw new Error(`${opName[op]}: ${a.length} arguments, expected ${opNargs[op]}`);
    switch (op) {
      case Op.FcForwardSplit: {
        const [R, I, O, S] = [a[0]!, a[1]!, a[2]!, a[3]!];
        k.fcForward(R, I, O,
          { inputOffset: a[4]!, outputOffset: a[5]!, actMin: a[6]!, actMax: a[7]!,
            multiplier: this.i32(a[14]!, O), shift: this.i32(a[15]!, O) },
          this.i8(a[8]!, R * I), this.joined(O, I, S, a[9]!, a[10]!), a[11] === -1 ? null : this.i32(a[11]!, O),
          this.i8(a[12]!, R * O), a[13] === -1 ? null : this.u8(a[13]!, Math.ceil((R * O) / 8)));
        return;
      }
      case Op.FcBackwardInputRows: {
        const [R, I, O, S] = [a[0]!, a[1]!, a[2]!, a[3]!];
        const e = k.fcBackwardInput(R, I, O, this.i16(a[4]!, O), a[5]!, this.i8(a[6]!, R * O), this.getCell(a[7]!),
          this.joined(O, I, S, a[8]!, a[9]!), this.i8(a[10]!, R * I));
        this.setCell(a[11]!, e); // scratch (a[12]) left alone
        return;
      }
      case Op.DepthwiseConv2dBackwardInputRows: {
        const d = dwDims(a);
        const [IN, OUT, OC, W] = dwSizes(d);
        const e = dw.dwBackwardInput(d, this.i16(a[13]!, OC), a[14]!, this.i8(a[15]!, OUT), this.getCell(a[16]!),
          this.i8(a[17]!, W), this.i8(a[18]!, IN));
        this.setCell(a[19]!, e);
        return;
      }
      case Op.FcForward: {
        const [R, I, O] = [a[0]!, a[1]!, a[2]!];
        k.fcForward(R, I, O,
          { inputOffset: a[3]!, outputOffset: a[4]!, actMin: a[5]!, actMax: a[6]!,
            multiplier: this.i32(a[12]!, O), shift: this.i32(a[13]!, O) },
          this.i8(a[7]!, R * I), this.i8(a[8]!, O * I), a[9] === -1 ? null : this.i32(a[9]!, O),
          this.i8(a[10]!, R * O), a[11] === -1 ? null : this.u8(a[11]!, Math.ceil((R * O) / 8)));
        return;
      }
      case Op.FcBackwardInput: {
        const [R, I, O] = [a[0]!, a[1]!, a[2]!];
        const e = k.fcBackwardInput(R, I, O, this.i16(a[3]!, O), a[4]!, this.i8(a[5]!, R * O), this.getCell(a[6]!),
          this.i8(a[7]!, O * I), this.i8(a[8]!, R * I));
        this.setCell(a[9]!, e);
        // The C kernel also uses its scratch; the reference leaves it alone,
        // so tests compare everything but the scratch.
        return;
      }
      case Op.FcBackwardBias: {
        const [R, , O] = [a[0]!, a[1]!, a[2]!];
        k.fcBackwardBias(R, O, a[3]!, a[4]!, this.i8(a[5]!, R * O), this.i32(a[6]!, a[4]! - a[3]!));
        return;
      }
      case Op.FcBackwardWeight: {
        const [R, I, O] = [a[0]!, a[1]!, a[2]!];
        const b = { ocBegin: a[3]!, ocEnd: a[4]!, icBegin: a[5]!, icEnd: a[6]! };
        k.fcBackwardWeight(R, I, O, b, a[7]!, this.i8(a[8]!, R * O), this.i8(a[9]!, R * I),
          this.i32(a[10]!, (b.ocEnd - b.ocBegin) * (b.icEnd - b.icBegin)));
        return;
      }
      case Op.FcBackwardWeightSgd: {
        const [R, I, O] = [a[0]!, a[1]!, a[2]!];
        const b = { ocBegin: a[3]!, ocEnd: a[4]!, icBegin: a[5]!, icEnd: a[6]! };
        const rng = this.rng(a[14]!);
        k.fcBackwardWeightSgd(R, I, O, b, a[7]!, this.i8(a[8]!, R * O), this.getCell(a[9]!), this.i8(a[10]!, R * I),
          { multiplier: this.i32(a[11]!, O), shift: this.i32(a[12]!, O) }, this.i8(a[13]!, O * I), rng);
        rng.store();
        return;
      }
      case Op.SgdS8Update: {
        const [I, O] = [a[0]!, a[1]!];
        const b = { ocBegin: a[2]!, ocEnd: a[3]!, icBegin: a[4]!, icEnd: a[5]! };
        const rng = this.rng(a[11]!);
        k.sgdS8Update(I, b, this.i32(a[6]!, (b.ocEnd - b.ocBegin) * (b.icEnd - b.icBegin)), this.getCell(a[7]!),
          { multiplier: this.i32(a[8]!, O), shift: this.i32(a[9]!, O) }, this.i8(a[10]!, O * I), rng);
        rng.store();
        return;
      }
      case Op.SgdS32Update: {
        const O = a[0]!;
        const rng = this.rng(a[8]!);
        k.sgdS32Update(a[1]!, a[2]!, this.i32(a[3]!, a[2]! - a[1]!), this.getCell(a[4]!),
          { multiplier: this.i32(a[5]!, O), shift: this.i32(a[6]!, O) }, this.i32(a[7]!, O), rng);
        rng.store();
        return;
      }
      case Op.ChannelSlice: {
        const [R, C, b, e] = [a[0]!, a[1]!, a[2]!, a[3]!];
        k.channelSlice(R, C, b, e, this.i8(a[4]!, R * C), this.i8(a[5]!, R * (e - b)));
        return;
      }
      case Op.ActivationBackward:
        k.activationBackward(a[0]!, this.u8(a[1]!, Math.ceil(a[0]! / 8)), this.i8(a[2]!, a[0]!));
        return;
      case Op.SoftmaxXentBackward: {
        const n = a[0]!;
        const p = k.softmaxXentBackward(n, this.i8(a[1]!, n), a[2]!, this.getCell(a[3]!), this.i8(a[4]!, n));
        this.setCell(a[5]!, -7);
        if (a[6] !== -1) this.setCell(a[6]!, p);
        return;
      }
      // conv2d: args start with the 13 xst_conv_dims (native/core/xst.h).
      case Op.Conv2dForward: {
        const d = conv.convDimsFromArgs(a);
        const nIn = d.batch * d.inH * d.inW * d.inC, nOut = d.batch * d.outH * d.outW * d.outC;
        conv.conv2dForward(d,
          { inputOffset: a[13]!, outputOffset: a[14]!, actMin: a[15]!, actMax: a[16]!,
            multiplier: this.i32(a[22]!, d.outC), shift: this.i32(a[23]!, d.outC) },
          this.i8(a[17]!, nIn), this.i8(a[18]!, d.outC * d.kH * d.kW * d.inC),
          a[19] === -1 ? null : this.i32(a[19]!, d.outC), this.i8(a[20]!, nOut),
          a[21] === -1 ? null : this.u8(a[21]!, Math.ceil(nOut / 8)));
        return;
      }
      case Op.Conv2dBackwardInput: {
        const d = conv.convDimsFromArgs(a);
        const e = conv.conv2dBackwardInput(d, this.i16(a[13]!, d.outC), a[14]!,
          this.i8(a[15]!, d.batch * d.outH * d.outW * d.outC), this.getCell(a[16]!),
          this.i8(a[17]!, d.outC * d.kH * d.kW * d.inC), this.i8(a[18]!, d.batch * d.inH * d.inW * d.inC));
        this.setCell(a[19]!, e); // the scratch (a[20]) is left alone, as for the FC
        return;
      }
      case Op.Conv2dBackwardBias: {
        const d = conv.convDimsFromArgs(a);
        conv.conv2dBackwardBias(d, a[13]!, a[14]!, this.i8(a[15]!, d.batch * d.outH * d.outW * d.outC),
          this.i32(a[16]!, a[14]! - a[13]!));
        return;
      }
      case Op.Conv2dBackwardWeight: {
        const d = conv.convDimsFromArgs(a);
        const b = { ocBegin: a[13]!, ocEnd: a[14]!, icBegin: a[15]!, icEnd: a[16]! };
        conv.conv2dBackwardWeight(d, b, a[17]!, this.i8(a[18]!, d.batch * d.outH * d.outW * d.outC),
          this.i8(a[19]!, d.batch * d.inH * d.inW * d.inC),
          this.i32(a[20]!, (b.ocEnd - b.ocBegin) * d.kH * d.kW * (b.icEnd - b.icBegin)));
        return;
      }
      case Op.DepthwiseConv2dForward: {
        const d = dwDims(a);
        const [IN, OUT, OC, W] = dwSizes(d);
        dw.dwForward(d,
          { inputOffset: a[13]!, outputOffset: a[14]!, actMin: a[15]!, actMax: a[16]!,
            multiplier: this.i32(a[22]!, OC), shift: this.i32(a[23]!, OC) },
          this.i8(a[17]!, IN), this.i8(a[18]!, W), a[19] === -1 ? null : this.i32(a[19]!, OC),
          this.i8(a[20]!, OUT), a[21] === -1 ? null : this.u8(a[21]!, Math.ceil(OUT / 8)));
        return;
      }
      case Op.DepthwiseConv2dBackwardInput: {
        const d = dwDims(a);
        const [IN, OUT, OC, W] = dwSizes(d);
        const e = dw.dwBackwardInput(d, this.i16(a[13]!, OC), a[14]!, this.i8(a[15]!, OUT), this.getCell(a[16]!),
          this.i8(a[17]!, W), this.i8(a[18]!, IN));
        this.setCell(a[19]!, e); // scratch (a[20]) left alone, as for the FC op
        return;
      }
      case Op.DepthwiseConv2dBackwardBias: {
        const d = dwDims(a);
        const [, OUT] = dwSizes(d);
        dw.dwBackwardBias(d, a[13]!, a[14]!, this.i8(a[15]!, OUT), this.i32(a[16]!, a[14]! - a[13]!));
        return;
      }
      case Op.DepthwiseConv2dBackwardWeight: {
        const d = dwDims(a);
        const [IN, OUT] = dwSizes(d);
        const blk = { ocBegin: a[13]!, ocEnd: a[14]! };
        dw.dwBackwardWeight(d, blk, a[15]!, this.i8(a[16]!, OUT), this.i8(a[17]!, IN),
          this.i32(a[18]!, d.kH * d.kW * (blk.ocEnd - blk.ocBegin)));
        return;
      }
      case Op.Conv2dBackwardWeightSgd: {
        const d = conv.convDimsFromArgs(a);
        const b = { ocBegin: a[13]!, ocEnd: a[14]!, icBegin: a[15]!, icEnd: a[16]! };
        const lr = this.lr(op, a[21]!, a[22]!, d.outC, b);
        const rng = this.rng(a[24]!);
        conv.conv2dBackwardWeightSgd(d, b, a[17]!, this.i8(a[18]!, d.batch * d.outH * d.outW * d.outC), this.getCell(a[19]!),
          this.i8(a[20]!, d.batch * d.inH * d.inW * d.inC), lr, this.i8(a[23]!, d.outC * d.kH * d.kW * d.inC), rng);
        rng.store();
        return;
      }
      case Op.DepthwiseConv2dBackwardWeightSgd: {
        const d = dwDims(a);
        const [IN, OUT, OC, W] = dwSizes(d);
        const b = { ocBegin: a[13]!, ocEnd: a[14]! };
        const lr = this.lr(op, a[19]!, a[20]!, OC, b);
        const rng = this.rng(a[22]!);
        dw.dwBackwardWeightSgd(d, b, a[15]!, this.i8(a[16]!, OUT), this.getCell(a[17]!), this.i8(a[18]!, IN), lr,
          this.i8(a[21]!, W), rng);
        rng.store();
        return;
      }
      case Op.Conv2dBackwardWeightLqm: {
        const d = conv.convDimsFromArgs(a);
        const b = { ocBegin: a[13]!, ocEnd: a[14]!, icBegin: a[15]!, icEnd: a[16]! };
        const W = d.outC * d.kH * d.kW * d.inC;
        const p = this.lqmParams(op, a, 22, a[27]!, W);
        const shift = this.lqmShift(op, a[21]!, d.outC, b);
        const rng = this.rng(a[29]!);
        conv.conv2dBackwardWeightLqm(d, b, a[17]!, this.i8(a[18]!, d.batch * d.outH * d.outW * d.outC), this.getCell(a[19]!),
          this.i8(a[20]!, d.batch * d.inH * d.inW * d.inC), shift, p, this.u8(a[26]!, a[27]!), this.i8(a[28]!, W), rng);
        rng.store();
        return;
      }
      case Op.DepthwiseConv2dBackwardWeightLqm: {
        const d = dwDims(a);
        const [IN, OUT, OC, W] = dwSizes(d);
        const b = { ocBegin: a[13]!, ocEnd: a[14]! };
        const p = this.lqmParams(op, a, 20, a[25]!, W);
        const shift = this.lqmShift(op, a[19]!, OC, b);
        const rng = this.rng(a[27]!);
        dw.dwBackwardWeightLqm(d, b, a[15]!, this.i8(a[16]!, OUT), this.getCell(a[17]!), this.i8(a[18]!, IN), shift, p,
          this.u8(a[24]!, a[25]!), this.i8(a[26]!, W), rng);
        rng.store();
        return;
      }
      // ---- log-quantized momentum (ids 24-26): the C checks, then the reference ----
      case Op.LqmS8Update: {
        const [I, O] = [a[0]!, a[1]!];
        const b = { ocBegin: a[2]!, ocEnd: a[3]!, icBegin: a[4]!, icEnd: a[5]! };
        const p = this.lqmParams(op, a, 9, a[14]!, I * O);
        const shift = this.lqmShift(op, a[8]!, O, b);
        const rng = this.rng(a[16]!);
        lqm.lqmS8Update(I, b, this.i32(a[6]!, (b.ocEnd - b.ocBegin) * (b.icEnd - b.icBegin)), this.getCell(a[7]!),
          shift, p, this.u8(a[13]!, a[14]!), this.i8(a[15]!, O * I), rng);
        rng.store();
        return;
      }
      case Op.FcBackwardWeightLqm: {
        const [R, I, O] = [a[0]!, a[1]!, a[2]!];
        const b = { ocBegin: a[3]!, ocEnd: a[4]!, icBegin: a[5]!, icEnd: a[6]! };
        const p = this.lqmParams(op, a, 12, a[17]!, I * O);
        const shift = this.lqmShift(op, a[11]!, O, b);
        const rng = this.rng(a[19]!);
        lqm.fcBackwardWeightLqm(R, I, O, b, a[7]!, this.i8(a[8]!, R * O), this.getCell(a[9]!), this.i8(a[10]!, R * I),
          shift, p, this.u8(a[16]!, a[17]!), this.i8(a[18]!, O * I), rng);
        rng.store();
        return;
      }
      case Op.FcBackwardWeightLqm16: {
        const [R, I, O] = [a[0]!, a[1]!, a[2]!];
        const b = { ocBegin: a[3]!, ocEnd: a[4]!, icBegin: a[5]!, icEnd: a[6]! };
        const p = this.lqmParams(op, a, 12, a[17]!, I * O);
        const shift = this.lqmShift(op, a[11]!, O, b);
        const rng = this.rng(a[20]!);
        lqm.fcBackwardWeightLqm16(R, I, O, b, a[7]!, this.i8(a[8]!, R * O), this.getCell(a[9]!),
          this.i8(a[10]!, R * I), shift, p, this.u8(a[16]!, a[17]!), this.i8(a[18]!, O * I), this.i8(a[19]!, O * I), rng);
        rng.store();
        return;
      }
      // ---- average pool, global mean, add, softmax ----
      case Op.AvgPoolForward: {
        const d = this.poolDims(a);
        const I = d.batches * d.inH * d.inW * d.channels, O = d.batches * d.outH * d.outW * d.channels;
        pool.averagePoolForward(d, a[12]!, a[13]!, this.i8(a[14]!, I), this.i8(a[15]!, O),
          a[16] === -1 ? null : this.u8(a[16]!, Math.ceil(O / 8)));
        return;
      }
      case Op.AvgPoolBackward: {
        const d = this.poolDims(a);
        const I = d.batches * d.inH * d.inW * d.channels, O = d.batches * d.outH * d.outW * d.channels;
        // The C kernel also uses its scratch; the reference leaves it alone.
        this.setCell(a[15]!, pool.averagePoolBackward(d, this.i8(a[12]!, O), this.getCell(a[13]!), this.i8(a[14]!, I)));
        return;
      }
      case Op.MeanForward: {
        const [B, H, W, C] = [a[0]!, a[1]!, a[2]!, a[3]!];
        pool.meanForward(B, H, W, C, a[4]!, a[5]!, a[6]!, a[7]!, this.i8(a[8]!, B * H * W * C), this.i8(a[9]!, B * C));
        return;
      }
      case Op.AddForward: {
        const n = a[0]!;
        add.addForward(n,
          { input1Offset: a[1]!, input1Multiplier: a[2]!, input1Shift: a[3]!, input2Offset: a[4]!,
            input2Multiplier: a[5]!, input2Shift: a[6]!, leftShift: a[7]!, outputOffset: a[8]!,
            outputMultiplier: a[9]!, outputShift: a[10]!, actMin: a[11]!, actMax: a[12]! },
          this.i8(a[13]!, n), this.i8(a[14]!, n), this.i8(a[15]!, n), a[16] === -1 ? null : this.u8(a[16]!, Math.ceil(n / 8)));
        return;
      }
      case Op.GradAdd: {
        const n = a[0]!;
        this.setCell(a[6]!, add.gradAdd(n, this.i8(a[1]!, n), this.getCell(a[2]!), this.i8(a[3]!, n), this.getCell(a[4]!),
          this.i8(a[5]!, n)));
        return;
      }
      case Op.SoftmaxForward: {
        const n = a[0]! * a[1]!;
        softmax.softmaxForward(a[0]!, a[1]!, { inputMultiplier: a[2]!, inputLeftShift: a[3]!, diffMin: a[4]! },
          this.i8(a[5]!, n), this.i8(a[6]!, n));
        return;
      }
      // ---- optimizer baselines (ids 28-32) ----
      case Op.SgdF32Update:
        optim.sgdF32(a[0]!, optim.f32FromBits(a[1]!), this.f32(a[2]!, a[0]!), this.f32(a[3]!, a[0]!));
        return;
      case Op.MomentumF32Update:
        optim.momentumF32(a[0]!, optim.f32FromBits(a[1]!), optim.f32FromBits(a[2]!), this.f32(a[3]!, a[0]!),
          this.f32(a[4]!, a[0]!), this.f32(a[5]!, a[0]!));
        return;
      case Op.AdamF32Update: {
        const n = a[0]!;
        optim.adamF32(n, { lr: optim.f32FromBits(a[1]!), beta1: optim.f32FromBits(a[2]!), beta2: optim.f32FromBits(a[3]!),
          eps: optim.f32FromBits(a[4]!) }, this.f32(a[5]!, n), this.f32(a[6]!, n), this.f32(a[7]!, n), this.f32(a[8]!, 2),
        this.f32(a[9]!, n));
        return;
      }
      case Op.SgdS16Update: {
        const n = a[0]!;
        const rng = this.rng(a[7]!);
        optim.sgdS16(n, { paramExp: a[1]!, stateExp: 0, lrMultiplier: a[2]!, lrShift: a[3]!, momentumQ15: 0 },
          this.i32(a[4]!, n), this.getCell(a[5]!), this.i16(a[6]!, n), rng);
        rng.store();
        return;
      }
      case Op.MomentumS16Update: {
        const n = a[0]!;
        const rng = this.rng(a[10]!);
        optim.momentumS16(n, { paramExp: a[1]!, stateExp: a[2]!, lrMultiplier: a[3]!, lrShift: a[4]!, momentumQ15: a[5]! },
          this.i32(a[6]!, n), this.getCell(a[7]!), this.i16(a[8]!, n), this.i16(a[9]!, n), rng);
        rng.store();
        return;
      }
    }
  }
}

// Depthwise conv2d: args 0-12 are the dims (xst_dwconv_dims order).
function dwDims(a: Int32Array): dw.DwDims {
  return {
    batch: a[0]!, inH: a[1]!, inW: a[2]!, inC: a[3]!, outH: a[4]!, outW: a[5]!, mult: a[6]!, kH: a[7]!, kW: a[8]!,
    strideH: a[9]!, strideW: a[10]!, padH: a[11]!, padW: a[12]!,
  };
}

// Element counts [input, output, output channels, weights].
function dwSizes(d: dw.DwDims): [number, number, number, number] {
  const oc = d.inC * d.mult;
  return [d.batch * d.inH * d.inW * d.inC, d.batch * d.outH * d.outW * oc, oc, d.kH * d.kW * oc];
}
