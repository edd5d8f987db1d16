// Traces of kernel calls for the bare-metal images (native/baremetal/):
// writing them, and reading back what the images print. Platform-free.
//
// A trace is a sequence of little-endian u32 records `tag, nwords, payload`:
//   1 ARENA [size]                      set the arena size in use, zero it
//   2 WRITE [offset, nbytes, data...]   data padded to a multiple of 4 bytes
//   3 CALL  [op, nargs, args...]        xst_dispatch(op, args, nargs, arena)
//   4 CRC   [offset, nbytes]            print the CRC-32 of the region
//   5 READ  [offset, nbytes]            print the region as hex
//   6 PLAN  [nbytes, blob...]           load a plan blob (plan-format.ts) as
//                                       the read-only region, validate it,
//                                       size and reset the arena from it
//   7 STEP  [which]                     run the plan's TRAIN (0) or INFER (1) ops
//   8 PLANCRC []                        print the CRC-32 of the plan's
//                                       trainable regions, concatenated
//   0 END   []                          print `done`, exit 0

export const TRACE_TAG = {
  end: 0,
  arena: 1,
  write: 2,
  call: 3,
  crc: 4,
  read: 5,
  plan: 6,
  step: 7,
  planCrc: 8,
} as const;

/** Exit statuses of the bare-metal images (driver.c). */
export const TRACE_EXIT = {
  done: 0,
  kernelStatus: 2,
  badTrace: 3,
  host: 4,
  counter: 5,
  cpuFault: 6,
  planRejected: 7,
} as const;

function checkU32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`trace: ${name} must be an integer in [0, 2^32), got ${v}`);
  }
  return v;
}

function checkI32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
    throw new RangeError(`trace: ${name} must be an int32, got ${v}`);
  }
  return v;
}

/** Builds a trace. Each method appends one record and returns this. */
export class TraceWriter {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;
  private ended = false;

  constructor(initialBytes = 1024) {
    this.buf = new Uint8Array(Math.max(16, initialBytes));
    this.view = new DataView(this.buf.buffer);
  }

  /** Sets the arena size in use (at most the image's capacity) and zeroes it. */
  arena(size: number): this {
    this.record(TRACE_TAG.arena, [checkU32('arena size', size)]);
    return this;
  }

  /** Copies bytes into the arena at offset. */
  write(offset: number, bytes: Uint8Array): this {
    checkU32('write offset', offset);
    const padded = (bytes.length + 3) & ~3;
    this.header(TRACE_TAG.write, 2 + padded / 4);
    this.word(offset);
    this.word(bytes.length);
    this.reserve(padded);
    this.buf.set(bytes, this.len);
    this.buf.fill(0, this.len + bytes.length, this.len + padded);
    this.len += padded;
    return this;
  }

  /** Calls kernel op with int32 args (arena offsets, dims, parameters). */
  call(op: number, args: ArrayLike<number>): this {
    const words = [checkI32('op', op) >>> 0, args.length];
    for (let i = 0; i < args.length; i++) words.push(checkI32(`arg ${i}`, args[i]!) >>> 0);
    this.record(TRACE_TAG.call, words);
    return this;
  }

  /** Prints the CRC-32 of arena[offset, offset + n). */
  crc(offset: number, n: number): this {
    this.record(TRACE_TAG.crc, [checkU32('crc offset', offset), checkU32('crc length', n)]);
    return this;
  }

  /** Prints arena[offset, offset + n) as hex. */
  read(offset: number, n: number): this {
    this.record(TRACE_TAG.read, [checkU32('read offset', offset), checkU32('read length', n)]);
    return this;
  }

  /** Loads a plan blob (validated by the image before anything runs). */
  plan(blob: Uint8Array): this {
    const padded = (blob.length + 3) & ~3;
    this.header(TRACE_TAG.plan, 1 + padded / 4);
    this.word(blob.length);
    this.reserve(padded);
    this.buf.set(blob, this.len);
    this.buf.fill(0, this.len + blob.length, this.len + padded);
    this.len += padded;
    return this;
  }

  /** Runs the loaded plan's training step or inference. */
  planStep(which: 'train' | 'infer'): this {
    this.record(TRACE_TAG.step, [which === 'train' ? 0 : 1]);
    return this;
  }

  /** Prints the CRC-32 of the plan's trainable regions. */
  planCrc(): this {
    this.record(TRACE_TAG.planCrc, []);
    return this;
  }

  /** Appends END and returns the trace bytes (a copy). */
  end(): Uint8Array {
    if (!this.ended) {
      this.header(TRACE_TAG.end, 0);
      this.ended = true;
    }
    return this.buf.slice(0, this.len);
  }

  private record(tag: number, words: number[]): void {
    this.header(tag, words.length);
    for (const w of words) this.word(w);
  }

  private header(tag: number, nwords: number): void {
    if (this.ended) throw new Error('trace: record after end()');
    this.word(tag);
    this.word(checkU32('record length', nwords));
  }

  private word(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.len, v >>> 0, true);
    this.len += 4;
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
}

export interface TraceCall {
  index: number;
  op: number;
  instructions: number;
  status: number;
}

export interface TracePlanLoad {
  status: number;
  section: number;
  index: number;
  arenaBytes: number;
}

export interface TraceStep {
  which: number;
  instructions: number;
  status: number;
  failedOp: number;
}

export interface TraceOutput {
  calls: TraceCall[];
  plans: TracePlanLoad[];
  steps: TraceStep[];
  planCrcs: number[];
  crcs: { offset: number; nbytes: number; crc: number }[];
  reads: { offset: number; bytes: Uint8Array }[];
  done: boolean;
  errors: string[];
  /** Instructions of one counter reading, subtracted from every call. */
  overhead: number | null;
  /** Name of the image's instruction counter (from its `info` line). */
  counter: string | null;
}

function hexToBytes(hex: string): Uint8Array | null {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Parses what a bare-metal image printed. Lines it does not know (QEMU's
 * own messages) are ignored; malformed result lines become errors. */
export function parseTraceOutput(text: string): TraceOutput {
  const out: TraceOutput = {
    calls: [],
    plans: [],
    steps: [],
    planCrcs: [],
    crcs: [],
    reads: [],
    done: false,
    errors: [],
    overhead: null,
    counter: null,
  };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    let m: RegExpExecArray | null;
    if ((m = /^call (\d+) (-?\d+) (\d+) (-?\d+)$/.exec(line))) {
      out.calls.push({
        index: Number(m[1]),
        op: Number(m[2]),
        instructions: Number(m[3]),
        status: Number(m[4]),
      });
    } else if ((m = /^crc (\d+) (\d+) ([0-9a-f]{8})$/.exec(line))) {
      out.crcs.push({ offset: Number(m[1]), nbytes: Number(m[2]), crc: parseInt(m[3]!, 16) >>> 0 });
    } else if ((m = /^read (\d+) ([0-9a-f]*)$/.exec(line))) {
      const bytes = hexToBytes(m[2]!);
      if (bytes) out.reads.push({ offset: Number(m[1]), bytes });
      else out.errors.push(`unparsable read line: ${line.slice(0, 80)}`);
    } else if ((m = /^plan (-?\d+) (-?\d+) (-?\d+) (\d+)$/.exec(line))) {
      out.plans.push({ status: Number(m[1]), section: Number(m[2]), index: Number(m[3]), arenaBytes: Number(m[4]) });
    } else if ((m = /^step (\d+) (\d+) (-?\d+) (-?\d+)$/.exec(line))) {
      out.steps.push({ which: Number(m[1]), instructions: Number(m[2]), status: Number(m[3]), failedOp: Number(m[4]) });
    } else if ((m = /^plancrc ([0-9a-f]{8})$/.exec(line))) {
      out.planCrcs.push(parseInt(m[1]!, 16) >>> 0);
    } else if (line === 'done') {
      out.done = true;
    } else if (line.startsWith('error ')) {
      out.errors.push(line.slice(6));
    } else if ((m = /^info counter (\S+) overhead (\d+)/.exec(line))) {
      out.counter = m[1]!;
      out.overhead = Number(m[2]);
    } else if (/^(call|crc|read|plan|step|plancrc) /.test(line)) {
      out.errors.push(`unparsable line: ${line.slice(0, 80)}`);
    }
  }
  return out;
}
