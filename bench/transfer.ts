// npm run bench:transfer: transfer learning, batch 1, one pass, six arms on
// two tasks (bench/transfer/data.ts):
//   A: person_detect with a new 10-class head on Fashion-MNIST 96x96
//      (2,000 training images in a seeded order, 2,000 test images);
//   B: an MNIST CNN pretrained in fp32 (tfjs), brought in through the float
//      path (post-training quantisation), adapted to sklearn's 8x8 digits
//      at 28x28 (1,000 / 797).
// Arms: (i)-(iv) xstrain int8 on the C kernels (bench/transfer/int8.ts),
// (v) fp32 full fine-tuning with Adam and (vi) fp32 classifier only, in
// tfjs (bench/transfer/fp32.ts). Test accuracy every 250 samples.
//
//   tsx bench/transfer.ts               every arm; writes bench/results/transfer.{json,md} and the SVGs
//   tsx bench/transfer.ts --rerun-fp32  also re-run task A's arm (v) (about 2 hours) and cache it
//   tsx bench/transfer.ts --tune        first tune the xstrain arms' learning rates (training data only)
//   tsx bench/transfer.ts --tune-only   only that (prints the rates to put in int8.ts LR)
//   tsx bench/transfer.ts --quick       a smoke run (300 samples, 300 test images) into out/transfer-quick/
//   --arms i,ii,...  --tasks A,B        a subset
//   tsx bench/transfer.ts --report-only rewrites transfer.md and the SVGs from transfer.json
//
// Task A's arm (v) takes hours on this machine, so it is read from
// bench/results/transfer-fp32-A.json ({protocolHash, protocol, result})
// when its protocol hash matches; otherwise the arm is reported missing
// (and why) unless --rerun-fp32 is given.
//
// The arms run as jobs in a pool of child processes (--jobs, default 2: the
// machine's two cores), each one task and arm; a child sends its ArmResult
// back over the IPC channel.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../src/node/addon.js';
import { TASK_A, TASK_B, type TaskOptions, type TransferTask, loadTaskA, loadTaskB } from './transfer/data.js';
import {
  ARM_SPECS, CALIBRATION, EVAL_EVERY, RATES, RATE_GRID, type Rate, TUNE, XSTRAIN_ARMS, rateText, type XstrainArm, type XstrainModel,
  boardArenaBytes, runXstrainArm, taskAModel, taskBModel, tuneArm,
} from './transfer/int8.js';
import { cachedTaskAv, runFp32, taskBFloatTflite, withIssuePeak } from './transfer/fp32-link.js';
import { type TransferReport, writeReport } from './transfer/report.js';
import type { ArmId, ArmResult } from './transfer/types.js';

type TaskId = 'A' | 'B';
const ARMS: readonly ArmId[] = ['i', 'ii', 'iii', 'iv', 'v', 'vi'];

interface Job {
  task: TaskId;
  arm: ArmId;
  tune?: boolean; // tune the learning rate (xstrain arms) instead of running the arm
  quick: boolean;
  floatModel: string; // task B's float32 .tflite, a file
}

type JobResult = { kind: 'arm'; result: ArmResult } | { kind: 'tune'; best: Rate; rows: { rate: Rate; accuracy: number }[] };

const QUICK: TaskOptions = { train: 300, test: 300 };
const taskOptions = (quick: boolean): TaskOptions => (quick ? QUICK : {});
const loadTask = (id: TaskId, quick: boolean): TransferTask => (id === 'A' ? loadTaskA(taskOptions(quick)) : loadTaskB(taskOptions(quick)));

// ---- a job, in a child process -----------------------------------------------------------

function xstrainModel(job: Job): XstrainModel {
  return job.task === 'A' ? taskAModel() : taskBModel(new Uint8Array(readFileSync(job.floatModel)));
}

async function runJob(job: Job): Promise<JobResult> {
  const log = (s: string) => console.log(`  ${s}`);
  if (job.arm === 'v' || job.arm === 'vi') {
    return { kind: 'arm', result: await runFp32(job.task, job.arm, loadTask(job.task, job.quick), log) };
  }
  const task = loadTask(job.task, job.quick), model = xstrainModel(job);
  const arm = job.arm as XstrainArm;
  if (job.tune) return { kind: 'tune', ...tuneArm(task, model, arm, RATE_GRID[job.task][arm]) };
  return { kind: 'arm', result: await runXstrainArm(task, model, arm, { every: job.quick ? 100 : EVAL_EVERY, log }) };
}

// ---- the pool --------------------------------------------------------------------------

const self = fileURLToPath(import.meta.url);

function runInChild(job: Job): Promise<JobResult> {
  return new Promise((done, fail) => {
    const child: ChildProcess = fork(self, ['--worker', JSON.stringify(job)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: JobResult | null = null, error: string | null = null;
    child.on('message', (m: { result?: JobResult; error?: string }) => {
      if (m.result) result = m.result;
      if (m.error) error = m.error;
    });
    child.on('exit', (code) => {
      if (result) done(result);
      else fail(new Error(`task ${job.task} arm ${job.arm}${job.tune ? ' (tuning)' : ''}: ${error ?? `the child process exited with ${code}`}`));
    });
  });
}

async function pool<T>(jobs: readonly Job[], width: number, each: (job: Job, r: JobResult | Error) => T): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const lane = async () => {
    while (next < jobs.length) {
      const k = next++;
      const job = jobs[k]!;
      out[k] = each(job, await runInChild(job).catch((e: Error) => e));
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, lane));
  return out;
}

// ---- main ------------------------------------------------------------------------------

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? undefined : args[i + 1];
}

async function main(args: string[]): Promise<void> {
  const t0 = Date.now();
  const secs = () => Math.round((Date.now() - t0) / 1000);
  const log = (s: string) => console.log(`[${secs()} s] ${s}`);
  const quick = args.includes('--quick'), rerunFp32 = args.includes('--rerun-fp32');
  const tuneOnly = args.includes('--tune-only'), tune = tuneOnly || args.includes('--tune');
  const tasks = (option(args, 'tasks') ?? 'A,B').split(',') as TaskId[];
  const arms = (option(args, 'arms') ?? ARMS.join(',')).split(',') as ArmId[];
  const width = Number(option(args, 'jobs') ?? 2);
  const outDir = quick ? join(repoRoot, 'out', 'transfer-quick') : join(repoRoot, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  if (args.includes('--report-only')) {
    const report = JSON.parse(readFileSync(join(outDir, 'transfer.json'), 'utf8')) as TransferReport;
    // Task A's arm (v) as the cache has it now (a run still going adds
    // evaluations to it).
    const c = cachedTaskAv();
    if ('result' in c && !report.protocol.quick) {
      report.tasks.A.arms.v = c.result;
      delete report.tasks.A.missing.v;
    }
    for (const t of Object.values(report.tasks)) for (const r of Object.values(t.arms)) if (r) withIssuePeak(r);
    writeFileSync(join(outDir, 'transfer.json'), `${JSON.stringify(report, null, 1)}\n`);
    const written = await writeReport(report, outDir);
    log(`wrote ${written.map((f) => f.slice(repoRoot.length + 1)).join(', ')}`);
    return;
  }
  mkdirSync(join(repoRoot, 'out', 'transfer'), { recursive: true });

  const floatB = await taskBFloatTflite(log);
  const floatModel = join(repoRoot, 'out', 'transfer', 'mnist-cnn.tflite');
  writeFileSync(floatModel, floatB.bytes);
  log(`task B: ${floatB.source}`);

  // Learning rates: the protocol's constants, or tuned now (training data only).
  const lr: Record<TaskId, Record<XstrainArm, Rate>> = { A: { ...RATES.A }, B: { ...RATES.B } };
  const tuning: Record<string, unknown> = {};
  if (tune) {
    const jobs = tasks.flatMap((task) => XSTRAIN_ARMS.filter((a) => arms.includes(a)).map((arm): Job => ({ task, arm, tune: true, quick, floatModel })));
    log(`tuning ${jobs.length} xstrain arms: the first ${100 * TUNE.trainShare}% of the stream trained, its last images scored`);
    await pool(jobs, width, (job, r) => {
      if (r instanceof Error) throw r;
      if (r.kind !== 'tune') throw new Error('tuning job returned an arm');
      lr[job.task][job.arm as XstrainArm] = r.best;
      tuning[`${job.task}.${job.arm}`] = { best: rateText(r.best), rows: r.rows.map((x) => ({ lrLog2: Math.log2(x.rate.lr), backboneLog2: Math.log2(x.rate.backbone), accuracy: x.accuracy })) };
      log(`tuned task ${job.task} arm ${job.arm}: ${rateText(r.best)} (${r.rows.map((x) => `${rateText(x.rate)}: ${(100 * x.accuracy).toFixed(1)}%`).join('; ')})`);
    });
    if (tasks.some((t) => XSTRAIN_ARMS.some((a) => rateText(lr[t][a]) !== rateText(RATES[t][a])))) log('tuned learning rates differ from the constants in bench/transfer/int8.ts RATES: update them to fix the protocol');
    if (tuneOnly) {
      // Merged into what earlier tunings wrote (one task at a time).
      const file = join(outDir, 'transfer-tuning.json');
      const before = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { tuning?: Record<string, unknown> }).tuning ?? {} : {};
      writeFileSync(file, `${JSON.stringify({ when: new Date().toISOString(), tune: TUNE, tuning: { ...before, ...tuning } }, null, 1)}\n`);
      log(`wrote ${join(outDir, 'transfer-tuning.json').slice(repoRoot.length + 1)}`);
      return;
    }
  }

  // The arms: task A's (v) from the cache unless --rerun-fp32.
  const results: Record<TaskId, Partial<Record<ArmId, ArmResult>>> = { A: {}, B: {} };
  const missing: Record<TaskId, Partial<Record<ArmId, string>>> = { A: {}, B: {} };
  const jobs: Job[] = [];
  let cachedHash: string | null = null;
  let fp32Rerun: Promise<number> | null = null;
  for (const task of tasks) {
    for (const arm of arms) {
      if (task === 'A' && arm === 'v' && rerunFp32 && !quick) {
        // run-fp32.ts writes the cache (protocol hash, progress after every
        // evaluation); read back when it ends.
        log('task A arm v: re-running it (bench/transfer/run-fp32.ts --force), beside the other arms');
        fp32Rerun = new Promise((done) => {
          const child = spawn(process.execPath, [...process.execArgv, join(repoRoot, 'bench', 'transfer', 'run-fp32.ts'), '--task', 'A', '--arm', 'v', '--force'],
            { stdio: ['ignore', 'inherit', 'inherit'] });
          child.on('exit', (code) => done(code ?? 1));
        });
        continue;
      }
      if (task === 'A' && arm === 'v') {
        if (quick) {
          missing.A.v = 'not in --quick (the cached run is the full protocol; --rerun-fp32 runs it)';
          continue;
        }
        const c = cachedTaskAv();
        if ('result' in c) {
          results.A.v = c.result;
          cachedHash = c.cache.protocolHash;
          log(`task A arm v: from bench/results/transfer-fp32-A.json (protocol hash matches${c.cache.complete ? '' : `; PARTIAL: ${String(c.result.settings.partial)}`})`);
        } else {
          missing.A.v = c.missing;
          log(`task A arm v: MISSING: ${c.missing}`);
        }
        continue;
      }
      jobs.push({ task, arm, quick, floatModel });
    }
  }
  // Longest first: the tfjs arms, then task A's xstrain arms.
  const cost = (j: Job) => (j.arm === 'v' || j.arm === 'vi' ? 3 : 0) + (j.task === 'A' ? 2 : 0) + (j.arm === 'iv' ? 0 : 1);
  jobs.sort((a, b) => cost(b) - cost(a));
  const jobSeconds: Record<string, number> = {};
  log(`${jobs.length} arms in ${width} processes: ${jobs.map((j) => `${j.task}.${j.arm}`).join(', ')}`);
  await pool(jobs, width, (job, r) => {
    const key = `${job.task}.${job.arm}`;
    jobSeconds[key] = Math.round((Date.now() - t0) / 1000);
    if (r instanceof Error) {
      missing[job.task][job.arm] = r.message;
      log(`${key}: FAILED: ${r.message}`);
      return;
    }
    if (r.kind !== 'arm') throw new Error('an arm job returned tuning');
    results[job.task][job.arm] = r.result;
    log(`${key} done: ${(100 * r.result.accuracyBefore).toFixed(1)}% -> ${(100 * r.result.finalAccuracy).toFixed(1)}%, ` +
      `${r.result.peakTrainingBytes} B, ${r.result.hostMsPerStep.toFixed(2)} ms/step` +
      `${r.result.stepInstructionsM4 !== null ? `, ${(r.result.stepInstructionsM4 / 1e6).toFixed(1)} M instructions/step on M4` : ''}`);
  });
  if (fp32Rerun) {
    const code = await fp32Rerun;
    const c = cachedTaskAv();
    if (code === 0 && 'result' in c) [results.A.v, cachedHash] = [c.result, c.cache.protocolHash];
    else missing.A.v = `the re-run of task A arm v failed (exit ${code})${'missing' in c ? `: ${c.missing}` : ''}`;
  }

  const report: TransferReport = {
    protocol: {
      quick, taskA: quick ? { ...TASK_A, ...QUICK } : TASK_A, taskB: quick ? { ...TASK_B, ...QUICK } : TASK_B,
      evalEvery: quick ? 100 : EVAL_EVERY, board: 'moddable_two', boardArenaBytes: boardArenaBytes(), calibration: CALIBRATION,
      taskBModel: floatB.source, lr: Object.fromEntries(Object.entries(lr).map(([t, m]) => [t, Object.fromEntries(Object.entries(m).map(([a, v]) => [a, rateText(v)]))])),
      tunedNow: tune, ...(tune ? { tuning } : {}), armLabels: Object.fromEntries(XSTRAIN_ARMS.map((a) => [a, ARM_SPECS[a].label])),
      ...(cachedHash ? { fp32CacheHash: cachedHash } : {}),
    },
    tasks: {
      A: { title: 'person_detect, new 10-class head, Fashion-MNIST 96x96', arms: results.A, missing: missing.A },
      B: { title: `MNIST CNN (fp32, quantised by xstrain) adapted to sklearn 8x8 digits at 28x28`, arms: results.B, missing: missing.B },
    },
    seconds: { total: secs(), finishedAt: jobSeconds },
  };
  writeFileSync(join(outDir, 'transfer.json'), `${JSON.stringify(report, null, 1)}\n`);
  const written = await writeReport(report, outDir);
  log(`wrote ${[join(outDir, 'transfer.json'), ...written].map((f) => f.slice(repoRoot.length + 1)).join(', ')}`);
}

if (process.argv[1] && resolve(process.argv[1]) === self) {
  const i = process.argv.indexOf('--worker');
  if (i >= 0) {
    const job = JSON.parse(process.argv[i + 1]!) as Job;
    try {
      process.send!({ result: await runJob(job) });
    } catch (e) {
      process.send!({ error: (e as Error).stack ?? String(e) });
    }
    process.disconnect?.();
  } else {
    await main(process.argv.slice(2));
  }
}
