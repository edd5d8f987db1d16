// The xstrain command line (host side).
//
//   xstrain infer MODEL.tflite --input FILE [--target node|xs|cortex-m4|rv32]
//     FILE holds the raw bytes of the input tensor (int8, row-major); prints
//     one JSON line {"output":[...int8 values...],"target":"..."}.
//   xstrain inspect MODEL.tflite
//     the imported graph: ops, shapes, MACs, constant bytes, arena needed.
//
// Errors (bad model, wrong input size, unknown option) print one line that
// says what to do, and exit with status 1 (2 for usage errors).

import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { importTflite, summarizeGraph } from '../compiler/tflite/import.js';
import { ForwardRunner } from '../core/runner.js';
import { infer, targets, type Target } from '../node/infer.js';

const usage = `usage:
  xstrain infer MODEL.tflite --input FILE [--target ${targets.join('|')}]
  xstrain inspect MODEL.tflite`;

class UsageError extends Error {}

function parseOptions(argv: string[], allowed: string[]): { positional: string[]; options: Map<string, string> } {
  const positional: string[] = [];
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
      if (!allowed.includes(name)) throw new UsageError(`unknown option --${name}`);
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`option --${name} needs a value`);
      options.set(name, value);
    } else positional.push(a);
  }
  return { positional, options };
}

function readInput(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

async function cmdInfer(argv: string[]): Promise<number> {
  const { positional, options } = parseOptions(argv, ['input', 'target']);
  if (positional.length !== 1) throw new UsageError('infer takes one MODEL.tflite');
  const input = options.get('input');
  if (!input) throw new UsageError('infer needs --input FILE (the raw int8 bytes of the input tensor)');
  const target = (options.get('target') ?? 'node') as Target;
  if (!targets.includes(target)) throw new UsageError(`unknown target "${target}": use one of ${targets.join(', ')}`);
  const model = positional[0]!;
  const graph = importTflite(readInput(model, 'model'), basename(model));
  const { output } = await infer(graph, readInput(input, 'input'), target);
  process.stdout.write(JSON.stringify({ output: Array.from(output), target }) + '\n');
  return 0;
}

function cmdInspect(argv: string[]): number {
  const { positional } = parseOptions(argv, []);
  if (positional.length !== 1) throw new UsageError('inspect takes one MODEL.tflite');
  const model = positional[0]!;
  const graph = importTflite(readInput(model, 'model'), basename(model));
  const runner = new ForwardRunner(graph);
  process.stdout.write(JSON.stringify({ ...summarizeGraph(graph), arenaBytes: runner.arenaBytes, flashBytes: runner.flashBytes }, null, 2) + '\n');
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const [cmd, ...rest] = argv;
    if (cmd === 'infer') return await cmdInfer(rest);
    if (cmd === 'inspect') return cmdInspect(rest);
    if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
      process.stdout.write(usage + '\n');
      return 0;
    }
    throw new UsageError(cmd ? `unknown command "${cmd}"` : 'no command');
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`xstrain: ${e.message}\n${usage}\n`);
      return 2;
    }
    process.stderr.write(`xstrain: ${(e as Error).message}\n`);
    return 1;
  }
}
