// Device adapter: a flash partition through the SDK's flash module
// (modules/files/flash), as the core's Flash (src/core/flash.ts) for the
// checkpoints. The module's object has the core's shape except that its
// write() takes an ArrayBuffer, a Uint8Array, an Int8Array or a DataView
// (the core may pass any view): other views go as a Uint8Array over the
// same bytes. A missing partition is named with what creates it.

import Flash from 'flash';
import { type Flash as CoreFlash, bufferBytes } from '../core/flash.js';

export function openPartition(partition: string): CoreFlash {
  let f: Flash;
  try {
    f = new Flash(partition);
  } catch (e) {
    throw new Error(`flash partition "${partition}" not found (${e instanceof Error ? e.message : String(e)}): ` +
      'the manifest creates it (defines.file.partition on ESP32; "storage" on nRF52), see README "Building firmware for a board"');
  }
  return {
    byteLength: f.byteLength,
    blockSize: f.blockSize,
    erase: (sector) => f.erase(sector),
    // Without useHostBuffer the module returns an ArrayBuffer copy.
    read: (offset, byteLength) => f.read(offset, byteLength) as ArrayBuffer,
    write: (offset, byteLength, buffer) => f.write(offset, byteLength, buffer instanceof ArrayBuffer ? buffer : bufferBytes(buffer)),
  };
}
