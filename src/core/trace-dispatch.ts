// A Dispatch that records instead of running: the kernel calls and arena
// writes of any TypeScript orchestration become a trace that the bare-metal
// images replay (native/baremetal). Nothing can be read back while recording.

import type { Dispatch } from './kernels.js';
import type { OpId } from './ops.js';
import { TraceWriter } from './trace.js';

export class TraceDispatch implements Dispatch {
  readonly name = 'trace';
  readonly writer = new TraceWriter(1 << 16);

  constructor(arenaBytes: number) {
    this.writer.arena(arenaBytes);
  }

  call(op: OpId, args: Int32Array): void {
    this.writer.call(op, args);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.writer.write(offset, bytes);
  }

  read(): Uint8Array {
    throw new Error('trace: tensors cannot be read while recording; add a crc() or read() record instead');
  }
}
