// The device app (Moddable: the manifest's "main"). Boot: the plan from its
// resource in flash, the C core on the board's static arena, the newest
// valid checkpoint from the flash partition; then every sample period a
// Timer polls the LIS3DH capture, each window is inferred and learned from
// when it has a label (button, serial console, or self-training), and the
// training state is checkpointed every N windows: TrainerService
// (src/core/trainer.ts) does all of it, as in the XS host's main job.
// Messages go to trace() and, where the board has one, the serial console.

import Resource from 'Resource';
import Timer from 'timer';
import { Button } from '../core/labels.js';
import { AccelerometerFeatures, type Acceleration, STANDARD_GRAVITY } from '../core/sensor.js';
import { TrainerService } from '../core/trainer.js';
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

// The plan runs in C from the resource (XsDispatch.bindPlan: xst_plan_run
// reads the ops and the frozen weights in place, in flash); the arena is the
// board's static array.
const dispatch = new DeviceDispatch(null);

// ---- the trainer service: plan, LIS3DH windows, learner, checkpoints -----------
// TrainerService (src/core/trainer.ts, as the XS host's main job uses it):
// validates the plan, restores the newest valid checkpoint (or says why it
// falls back), infers every window, trains on the labels the button and the
// console give, keeps a running accuracy and loss, and saves a checkpoint
// every checkpointEverySteps windows (the stream position).

const service = new TrainerService<Acceleration>({
  blob, what: `plan resource "${cfg.plan}"`,
  dispatch: () => dispatch,
  arenaCapacity: dispatch.arenaCapacity,
  flash: () => openPartition(cfg.checkpointPartition),
  sensor: openLis3dh({ address: cfg.lis3dhAddress, rateHz: cfg.rateHz, onError: (e) => say(`LIS3DH error: ${String(e)}`) }),
  windows: {
    features: new AccelerometerFeatures({ range: LIS3DH_RANGE_4G.metersPerSecond2, normalize: 'center', gain: 1 / STANDARD_GRAVITY }),
    size: cfg.window,
    hop: cfg.hop,
    rateHz: cfg.rateHz,
    onStatus: (s) => say(`sensor ${s.state}: ${s.message}`),
  },
  learner: { report: say },
  checkpointEvery: cfg.checkpointEverySteps,
  onMessage: say,
});
const rt = service.rt;
say(`${cfg.board}: plan ${rt.plan.arenaBytes} B of the ${dispatch.arenaCapacity} B arena, ${rt.plan.io.classes} classes`);
const from = service.start();

// ---- labels: the button and the serial console -----------------------------------

const button = new Button({ now: () => Date.now(), onPress: () => service.press() });
openButton(button);
serial = openConsole((line) => service.command(line));

// ---- the poll loop: one sample a period ---------------------------------------------

Timer.repeat(() => {
  if (service.poll(Date.now(), () => null) !== null && service.windows % cfg.checkpointEverySteps === 0) say(service.progress());
}, Math.max(1, Math.round(1000 / cfg.rateHz)));
say(`sampling the LIS3DH at ${cfg.rateHz} Hz, windows of ${cfg.window} samples every ${cfg.hop}; ` +
  `${from ? `resuming at window ${from}` : 'starting at window 0'}; press the button to label a window (class ${service.learner.buttonLabel})`);
