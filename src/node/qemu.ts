// Node adapter: runs a trace (src/core/trace.ts) on a bare-metal image of the
// C core under QEMU (native/baremetal/) and parses what it prints.
//
//   cortex-m4: qemu-system-arm -M mps2-an386, -icount shift=6 (SysTick at
//              25 MHz, 64 ns per instruction: exact instruction counts)
//   cortex-m4-portable: the same machine, the image built with XST_PORTABLE
//              (the portable C instead of the DSP/SMLAD paths)
//   cortex-m4-big: the same machine and the cortex-m4 image's code with a
//              4 MB arena in the machine's PSRAM (bench only: full-update
//              plans; no board has that RAM, see native/baremetal/Makefile)
//   rv32:      qemu-system-riscv32 -M virt -bios none, -icount shift=0
//              (minstret)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { parseTraceOutput, type TraceOutput } from '../core/trace.js';

export type BaremetalTarget = 'cortex-m4' | 'cortex-m4-portable' | 'rv32' | 'cortex-m4-big';

export interface RunTraceOptions {
  /** Image to run instead of imagePath(target). */
  image?: string;
  /** Kill QEMU after this many milliseconds (default 120000). */
  timeoutMs?: number;
  /** Repository root (default: found from this file's location). */
  root?: string;
}

export interface RunTraceResult {
  /** QEMU's exit status: the image's (0 done, 2 kernel status, 3 bad
   * trace, 4 host I/O, 5 counter, 6 CPU fault), 1 for QEMU's own errors,
   * null if QEMU was killed (see timedOut). */
  exitCode: number | null;
  timedOut: boolean;
  /** The semihosting console: the image's result lines. */
  stdout: string;
  /** QEMU's own diagnostics. */
  stderr: string;
  parsed: TraceOutput;
  /** The command that ran (for error messages). */
  command: string[];
}

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'native', 'baremetal', 'Makefile'))) return dir;
    const up = dirname(dir);
    if (up === dir) {
      throw new Error('cannot find the xstrain repository root (native/baremetal/Makefile) above ' +
        dirname(fileURLToPath(import.meta.url)));
    }
    dir = up;
  }
}

/** Path of the bare-metal image for a target; throws if it is not built. */
export function imagePath(target: BaremetalTarget, root: string = findRoot()): string {
  const path = resolve(root, 'out', 'baremetal', target, `xstrain-${target}.elf`);
  if (!existsSync(path)) {
    throw new Error(`bare-metal image for ${target} not found at ${path}: run npm run build:baremetal`);
  }
  return path;
}

/** QEMU option values are comma-separated: a comma in a value is doubled. */
function qemuEscape(value: string): string {
  return value.replace(/,/g, ',,');
}

/** The QEMU command line that runs image on traceFile. */
export function qemuCommand(target: BaremetalTarget, image: string, traceFile: string): string[] {
  const machine = target !== 'rv32'
    ? ['qemu-system-arm', '-M', 'mps2-an386', '-icount', 'shift=6']
    : ['qemu-system-riscv32', '-M', 'virt', '-bios', 'none', '-icount', 'shift=0'];
  return [
    ...machine,
    '-nographic', '-monitor', 'none', '-serial', 'none',
    // The semihosting console goes to stdout through this chardev; without
    // it QEMU writes it to stderr.
    '-chardev', 'stdio,id=semihost',
    '-semihosting-config',
    `enable=on,target=native,chardev=semihost,arg=xstrain,arg=${qemuEscape(traceFile)}`,
    '-kernel', image,
  ];
}

/** Runs trace on the target's image under QEMU. */
export async function runTrace(
  target: BaremetalTarget,
  trace: Uint8Array,
  opts: RunTraceOptions = {},
): Promise<RunTraceResult> {
  const image = opts.image ?? imagePath(target, opts.root);
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const dir = await mkdtemp(join(tmpdir(), 'xstrain-trace-'));
  const traceFile = join(dir, 'trace.bin');
  try {
    await writeFile(traceFile, trace);
    const command = qemuCommand(target, image, traceFile);
    const [exe, ...args] = command;
    const result = await new Promise<{ code: number | null; timedOut: boolean; stdout: string; stderr: string }>(
      (resolvePromise, reject) => {
        const child = spawn(exe!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, timeoutMs);
        child.stdout.on('data', (b: Buffer) => out.push(b));
        child.stderr.on('data', (b: Buffer) => err.push(b));
        child.on('error', (e: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          reject(e.code === 'ENOENT'
            ? new Error(`${exe} not found: install QEMU (Debian: qemu-system-arm, qemu-system-misc)`)
            : e);
        });
        child.on('close', (code) => {
          clearTimeout(timer);
          resolvePromise({
            code,
            timedOut,
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
          });
        });
      },
    );
    return {
      exitCode: result.code,
      timedOut: result.timedOut,
      stdout: result.stdout,
      stderr: result.stderr,
      parsed: parseTraceOutput(result.stdout),
      command,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
