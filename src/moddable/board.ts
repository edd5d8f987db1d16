// Device adapter: the board's settings as the manifest gives them
// (manifest.json "config": {"xstrain": {...}} in each board's platforms
// section; boards/<board>.json documents the same figures and how they were
// chosen). The wiring itself (I2C pins and port, the button pin, the
// serial console) is the SDK's own board description: the global `device`
// (embedded:provider/builtin), read where each adapter opens its IO.

import config from 'mc/config';

export interface BoardConfig {
  board: string; // boards/<board>.json
  lis3dhAddress: number; // 7-bit I2C address: 0x18 (SDO low) or 0x19
  rateHz: number; // accelerometer samples a second
  window: number; // samples a window (the plan's input is int8[window x 3])
  hop: number; // samples between window starts
  checkpointPartition: string; // the flash partition the checkpoints live in
  checkpointEverySteps: number; // windows between checkpoint saves (TrainerService's checkpointEvery)
  plan: string; // the plan blob's resource name
}

function integer(o: Record<string, unknown>, key: string, min: number, max: number): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`manifest config xstrain.${key} = ${String(v)}: give an integer in [${min}, ${max}] in the board's platforms section`);
  }
  return v;
}

function text(o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v.length === 0) throw new RangeError(`manifest config xstrain.${key} must be a non-empty string`);
  return v;
}

// The config, checked: a missing or wrong value names the key to fix.
export function boardConfig(): BoardConfig {
  const o = config.xstrain as Record<string, unknown> | undefined;
  if (!o || typeof o !== 'object') throw new Error('manifest config has no xstrain section: build with a board the manifest lists (boards/)');
  return {
    board: text(o, 'board'),
    lis3dhAddress: integer(o, 'lis3dh_address', 0x18, 0x19),
    rateHz: integer(o, 'rate_hz', 1, 400),
    window: integer(o, 'window', 1, 4096),
    hop: integer(o, 'hop', 1, 4096),
    checkpointPartition: text(o, 'checkpoint_partition'),
    checkpointEverySteps: integer(o, 'checkpoint_every_steps', 1, 0x7fffffff),
    plan: text(o, 'plan'),
  };
}
