// The report of npm run bench:transfer: bench/results/transfer.md (the
// table per task, the goals, the plots) and one SVG of the learning curves
// per task (vega-lite through src/node/plot.ts).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TopLevelSpec, renderSvg } from '../../src/node/plot.js';
import type { ArmId, ArmResult } from './types.js';

export interface TaskReport {
  title: string;
  arms: Partial<Record<ArmId, ArmResult>>;
  missing: Partial<Record<ArmId, string>>; // why an arm has no result
}

export interface TransferReport {
  protocol: Record<string, unknown>;
  tasks: Record<'A' | 'B', TaskReport>;
  seconds: Record<string, unknown>;
}

const ARMS: readonly ArmId[] = ['i', 'ii', 'iii', 'iv', 'v', 'vi'];

// A less noisy figure than the final accuracy of one batch-1 run: the mean
// of the last four evaluations (task A: after 1,250-2,000 samples).
export function lateMean(r: ArmResult, n = 4): number {
  const last = r.curve.slice(1).slice(-n);
  return last.reduce((a, p) => a + p.accuracy, 0) / Math.max(1, last.length);
}
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const bytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${(n / 1024).toFixed(1)} KB`);

export function curveSpec(task: 'A' | 'B', t: TaskReport): TopLevelSpec {
  const values = ARMS.flatMap((a) => (t.arms[a]?.curve ?? []).map((p) => ({ arm: `(${a}) ${t.arms[a]!.label}`, samples: p.samples, accuracy: p.accuracy })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `Task ${task}: ${t.title}`,
    width: 520,
    height: 300,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'samples', type: 'quantitative', title: 'training samples (batch 1, one pass)' },
      y: { field: 'accuracy', type: 'quantitative', title: 'test accuracy', axis: { format: '.0%' } },
      color: { field: 'arm', type: 'nominal', title: 'arm', legend: { orient: 'bottom', columns: 2, labelLimit: 400 } },
    },
  };
}

// The goals of arm (i) against (ii)-(v); null when an arm is missing.
export function goals(t: TaskReport): { goal: string; met: boolean | null; detail: string }[] {
  const a = t.arms;
  const i = a.i, v = a.v;
  const out: { goal: string; met: boolean | null; detail: string }[] = [];
  const need = (what: string, ...x: (ArmResult | undefined)[]) => (x.every(Boolean) ? null : `${what}: an arm is missing`);
  out.push(i && v
    ? { goal: 'arm (i) within 1 point of arm (v)\'s final accuracy', met: i.finalAccuracy >= v.finalAccuracy - 0.01, detail: `${pct(i.finalAccuracy)} vs ${pct(v.finalAccuracy)}` }
    : { goal: 'arm (i) within 1 point of arm (v)\'s final accuracy', met: null, detail: need('(i), (v)', i, v)! });
  const tensors = (r: ArmResult) => (typeof r.memory.tensorPeakBytes === 'number' ? r.memory.tensorPeakBytes : r.peakTrainingBytes);
  out.push(i && v
    ? {
      goal: '≥1,000x less training memory than arm (v)', met: v.peakTrainingBytes / i.peakTrainingBytes >= 1000,
      detail: `${(v.peakTrainingBytes / i.peakTrainingBytes).toFixed(0)}x (${bytes(i.peakTrainingBytes)} vs ${bytes(v.peakTrainingBytes)}: ` +
        `tfjs's live tensors plus the process's RSS growth, the issue's measure); against tfjs's live tensors alone ` +
        `${(tensors(v) / i.peakTrainingBytes).toFixed(0)}x (${bytes(tensors(v))})`,
    }
    : { goal: '≥1,000x less training memory than arm (v)', met: null, detail: need('(i), (v)', i, v)! });
  for (const k of ['ii', 'iii', 'iv'] as const) {
    const o = a[k];
    out.push(i && o
      ? { goal: `arm (i) ahead of arm (${k})`, met: i.finalAccuracy > o.finalAccuracy, detail: `${pct(i.finalAccuracy)} vs ${pct(o.finalAccuracy)}` }
      : { goal: `arm (i) ahead of arm (${k})`, met: null, detail: need(`(i), (${k})`, i, o)! });
  }
  out.push(i && v
    ? { goal: '≥100x faster per host step than arm (v)', met: v.hostMsPerStep / i.hostMsPerStep >= 100, detail: `${(v.hostMsPerStep / i.hostMsPerStep).toFixed(0)}x (${i.hostMsPerStep.toFixed(2)} vs ${v.hostMsPerStep.toFixed(1)} ms)` }
    : { goal: '≥100x faster per host step than arm (v)', met: null, detail: need('(i), (v)', i, v)! });
  return out;
}

function taskMarkdown(id: 'A' | 'B', t: TaskReport, svg: string): string {
  const rows = ARMS.map((k) => {
    const r = t.arms[k];
    if (!r) return `| (${k}) | missing: ${t.missing[k] ?? 'not run'} | | | | | | | |`;
    const s = r.settings;
    const lr = typeof s.lrLog2 === 'number' ? `2^${s.lrLog2}` : String(s.lr ?? '');
    const scheme = r.engine === 'xstrain' ? `${s.scheme}` : String(s.scheme ?? s.update ?? '');
    const partial = typeof s.partial === 'string' ? ` (PARTIAL: ${s.partial})` : '';
    return `| (${k}) | ${r.label}${partial} | ${pct(r.accuracyBefore)} | **${pct(r.finalAccuracy)}** | ${pct(lateMean(r))} | ${bytes(r.peakTrainingBytes)} | ` +
      `${r.stepInstructionsM4 === null ? '–' : `${(r.stepInstructionsM4 / 1e6).toFixed(1)} M`} | ${r.hostMsPerStep.toFixed(2)} | ${lr}; ${scheme.replace(/\|/g, '\\|')} |`;
  });
  const vLast = t.arms.v?.curve.at(-1)?.samples;
  const vPartial = typeof t.arms.v?.settings.partial === 'string' ? ` (arm (v) is a partial run, ${vLast} samples so far: not yet the protocol's comparison)` : '';
  const g = goals(t).map((x) => `- ${x.met === null ? '–' : x.met ? 'met' : '**not met**'}: ${x.goal}: ${x.detail}${/arm \(v\)/.test(x.goal) ? vPartial : ''}`);
  const xs = ARMS.filter((k) => t.arms[k]?.engine === 'xstrain').map((k) => `(${k}) ${String(t.arms[k]!.settings.xsBitIdentical ?? 'not checked')}`);
  const load = ARMS.filter((k) => t.arms[k]?.engine === 'xstrain').map((k) => `(${k}) ${String(t.arms[k]!.settings.hostLoadAverage1m ?? '?')}`);
  const curves = ARMS.filter((k) => t.arms[k]).map((k) => `(${k}) ${t.arms[k]!.curve.map((p) => `${p.samples}: ${pct(p.accuracy)}`).join(', ')}`);
  return [
    `## Task ${id}: ${t.title}`, '',
    '| arm | | before | final | mean of the last 4 evaluations | peak training memory | instructions / step (Cortex-M4F) | host ms / step | lr; scheme |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows, '',
    'Goals of arm (i) (on the final accuracy, as the protocol asks; one batch-1 run moves several points between evaluations, see the curves):', '', ...g, '',
    `xstrain plans bit-identical on the XS engine and the Node addon (3 training steps, trained-region CRC, metrics, inference output): ${xs.join(', ') || '–'}. ` +
    `Host load average (1 min) when each xstrain arm ended: ${load.join(', ') || '–'} (this machine has 2 cores; ms per step grow with load).`, '',
    `![task ${id} learning curves](${svg})`, '',
    '<details><summary>curves (test accuracy after n samples)</summary>', '', ...curves.map((c) => `- ${c}`), '', '</details>', '',
  ].join('\n');
}

export async function writeReport(r: TransferReport, dir: string): Promise<string[]> {
  const written: string[] = [];
  const sections: string[] = [];
  for (const id of ['A', 'B'] as const) {
    const t = r.tasks[id];
    const svg = `transfer-${id}.svg`;
    writeFileSync(join(dir, svg), await renderSvg(curveSpec(id, t)));
    written.push(join(dir, svg));
    sections.push(taskMarkdown(id, t, svg));
  }
  const p = r.protocol;
  const md = [
    '# Transfer learning: xstrain int8 against fp32 (npm run bench:transfer)', '',
    'Generated by `bench/transfer.ts` (`npm run bench:transfer`); the figures are in `transfer.json`. ' +
    'Batch 1, one pass over the training stream, every arm the same samples in the same order; test accuracy every ' +
    `${String(p.evalEvery)} samples on the whole test set. Arms (i)-(iv) are the int8 plan on the C kernels (Node addon), ` +
    `within the ${String(p.boardArenaBytes)} B arena of boards/moddable_two.json; peak training memory is the plan's arena for them ` +
    '(frozen weights stay in flash), instructions per step are one training step on Cortex-M4F under QEMU (-icount, deterministic). ' +
    'Host ms per step is the wall time of the training steps only (no evaluation), on this machine.', '',
    `Learning rates (weights and biases): ${JSON.stringify(p.lr)}${p.tunedNow ? ' (tuned in this run, on training data only)' : ' (the protocol\'s constants in bench/transfer/int8.ts, tuned with --tune-only on training data only)'}.`, '',
    ...sections,
    `Run time: ${String((r.seconds as { total?: number }).total ?? '?')} s.`, '',
  ].join('\n');
  writeFileSync(join(dir, 'transfer.md'), md);
  written.push(join(dir, 'transfer.md'));
  return written;
}
