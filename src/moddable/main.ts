// The device app (Moddable: the manifest's "main"). Boot: the plan from its
// resource in flash, the C core on the board's static arena, the newest
// valid checkpoint from the flash partition; then every sample period a
// Timer polls the LIS3DH capture, each window is inferred and learned from
// when it has a label (button, serial console, or self-training), and the
// training state is checkpointed every N steps. Messages go to trace() and,
// where the board has one, the serial console.

import Resource from 'Resource';
import Timer from 'timer';
import { CheckpointStore, planCheckpointState, planIdentity } from '../core/checkpoint.js';
import { Button, OnlineLearner, planTrainer } from '../core/labels.js';
import { decodePlan } from '../core/plan-format.js';
import { PlanRuntime } from '../core/plan-runtime.js';
import { AccelerometerFeatures, Capture, STANDARD_GRAVITY } from '../core/sensor.js';
import { boardConfig } from './board.js';
import { openButton } from './button.js';
import { openConsole, type LineConsole } from './console.js';
import { DeviceDispatch } from './dispatch.js';
import { openPartition } from './flash.js';
import { LIS3DH_RANGE_4G, openLis3dh } from './lis3dh.js';

let serial: LineConsole | null = null;

function say(message: string): void {
  trace(`xstrain: ${message}\n`);
  serial?.write(message);
}

// ---- the plan and the arena -------------------------------------------------------

const cfg = boardConfig();
if (!Resource.exists(cfg.plan)) throw new Error(`no plan resource "${cfg.plan}": compile one to out/device/plan.xstp before mcconfig (README)`);
const resource = new Resource(cfg.plan);
const blob = new Uint8Array(resource);

// The plan's flash section (frozen weights) as a view of the resource, not a
// copy. (This decode is dropped at once; PlanRuntime.load keeps its own.)
function frozenWeights(): HostBuffer | null {
  const { flash } = decodePlan(blob);
  return flash.length ? resource.slice(flash.byteOffset, flash.byteOffset + flash.length, false) : null;
}

const dispatch = new DeviceDispatch(frozenWeights());
const rt = PlanRuntime.load(dispatch, blob, { arenaCapacity: dispatch.arenaCapacity });
say(`${cfg.board}: plan ${rt.plan.arenaBytes} B of the ${dispatch.arenaCapacity} B arena, ${rt.plan.io.classes} classes`);

// ---- checkpoints ------------------------------------------------------------------

const store = new CheckpointStore(openPartition(cfg.checkpointPartition), planCheckpointState(rt), planIdentity(blob));
const boot = store.boot();
for (const m of boot.messages) say(m);
let stepsAtSave = boot.restored ? boot.restored.step : 0;

// ---- sensor, learner, labels ------------------------------------------------------

const capture = new Capture(openLis3dh({ address: cfg.lis3dhAddress, rateHz: cfg.rateHz, onError: (e) => say(`LIS3DH error: ${String(e)}`) }), {
  features: new AccelerometerFeatures({ range: LIS3DH_RANGE_4G.metersPerSecond2, normalize: 'center', gain: 1 / STANDARD_GRAVITY }),
  input: rt.plan.io.input,
  arena: dispatch,
  size: cfg.window,
  hop: cfg.hop,
  rateHz: cfg.rateHz,
  onStatus: (s) => say(`sensor ${s.state}: ${s.message}`),
});
const learner = new OnlineLearner(planTrainer(rt), capture, { report: say });
const button = new Button({ now: () => Date.now(), onPress: () => learner.press() });
openButton(button);
serial = openConsole((line) => learner.command(line));

// ---- TRAINER HOOK ---------------------------------------------------------------------
// The trainer service (src/core/trainer.ts, TrainerService: written on
// another branch) takes over from here: checkpoint policy, the held-out
// check and rollback (src/core/rollback.ts). Until it lands, the step count
// since boot drives a plain save every checkpointEverySteps steps.
function afterWindow(): void {
  const steps = stepsAtSave + learner.steps;
  if (learner.steps > 0 && learner.steps % cfg.checkpointEverySteps === 0 && store.newest()?.step !== steps) {
    const saved = store.save(steps);
    say(`checkpoint generation ${saved.generation} (step ${saved.step}) saved in slot ${saved.slot}`);
  }
}
// ---- end of the trainer hook ----------------------------------------------------------

// ---- the poll loop: one sample a period ---------------------------------------------

Timer.repeat(() => {
  if (capture.poll(Date.now())) {
    learner.onWindow();
    afterWindow();
  }
}, Math.max(1, Math.round(1000 / cfg.rateHz)));
say(`sampling the LIS3DH at ${cfg.rateHz} Hz, windows of ${cfg.window} samples every ${cfg.hop}; press the button to label a window (class ${learner.buttonLabel})`);
