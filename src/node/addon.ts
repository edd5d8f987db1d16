// Node adapter: the C core through the Node-API addon (build/Release).

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BufferDispatch } from '../core/kernels.js';
import type { OpId } from '../core/ops.js';

interface Addon {
  call(op: number, args: Int32Array, arena: ArrayBuffer, flash?: ArrayBuffer): void;
  crc32(arena: ArrayBuffer, offset: number, length: number): number;
  validatePlan(blob: Uint8Array, arenaCapacity: number): [number, number, number];
}

let addon: Addon | null = null;

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function loadAddon(): Addon {
  if (addon) return addon;
  const path = join(repoRoot, 'build', 'Release', 'xstrain.node');
  if (!existsSync(path)) throw new Error(`Node addon not built (${path}); run: npm run build:addon`);
  addon = createRequire(import.meta.url)(path) as Addon;
  return addon;
}

export class NodeDispatch extends BufferDispatch {
  readonly name = 'node-addon';
  private readonly addon = loadAddon();

  call(op: OpId, args: Int32Array): void {
    if (this.flash) this.addon.call(op, args, this.arena, this.flash);
    else this.addon.call(op, args, this.arena);
  }

  crc32(offset: number, length: number): number {
    return this.addon.crc32(this.arena, offset, length);
  }

  validatePlan(blob: Uint8Array, arenaCapacity: number): readonly [number, number, number] {
    return validatePlanC(blob, arenaCapacity);
  }
}

// xst_plan_validate on blob (copied to a 4-aligned buffer when it is not:
// the C needs the flash section's int32 tables aligned).
export function validatePlanC(blob: Uint8Array, arenaCapacity: number): readonly [number, number, number] {
  const aligned = blob.byteOffset % 4 === 0 ? blob : blob.slice();
  return loadAddon().validatePlan(aligned, arenaCapacity);
}
