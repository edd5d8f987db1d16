// The MNIST trainers of bench:optim, one per optimizer name: the int8 MLP of
// the C core (src/core/mlp.ts) for LQM ('lqm', and 'lqm-m16' with the int16
// master copy of the weights) and int8 SGD, the float MLP
// (src/core/float-mlp.ts) for the fp32 and 16-bit fixed-point baselines
// (their updates mostly on the C ops: registry.ts mnistBaselines).
import { FloatMlp, defaultFloatMlpConfig } from '../../src/core/float-mlp.js';
import { Kernels } from '../../src/core/kernels.js';
import { MlpTrainer, defaultLqm, defaultMlpConfig, mlpLayout } from '../../src/core/mlp.js';
import { NodeDispatch } from '../../src/node/addon.js';
import { mnistBaselines } from './registry.js';

export interface TrainerSpec {
  optimizer: string;
  lr: number;
  seed: number;
  passes: number;
  qas?: boolean; // int8 trainers: quantisation-aware scaling on (default) or off
}

export interface MnistTrainer {
  trainStep(pixels: Uint8Array, label: number): void;
  predict(pixels: Uint8Array): number;
  readonly stateBitsPerParam: number;
}

export function makeTrainer(spec: TrainerSpec): MnistTrainer {
  if (spec.optimizer === 'lqm' || spec.optimizer === 'lqm-m16' || spec.optimizer === 'sgd-int8') {
    // 'lqm-m16': LQM with the int16 master copy of the weights (op 26).
    const lqm = spec.optimizer !== 'sgd-int8', master = spec.optimizer === 'lqm-m16';
    // Biases always use integer SGD: at the weights' rate under SGD; under LQM
    // (whose eta is not an SGD rate) at the SGD default 2^-6, or 2^13 without
    // QAS (the same step without the (s_W s_x)^-2 factor: bench/lqm-variants.ts).
    const qas = spec.qas ?? true;
    const lrBias = lqm ? (qas ? 2 ** -6 : 2 ** 13) : spec.lr;
    const cfg = { ...defaultMlpConfig, lr: spec.lr, lrBias, seed: spec.seed,
      optimizer: lqm ? 'lqm' as const : 'sgd' as const, qas, lqmMaster: master };
    const m = new MlpTrainer(new Kernels(new NodeDispatch(new ArrayBuffer(mlpLayout(cfg).layout.capacity))), cfg);
    m.init();
    return Object.assign(m, { stateBitsPerParam: lqm ? defaultLqm.bits + (master ? 8 : 0) : 0 });
  }
  const factory = mnistBaselines[spec.optimizer];
  if (!factory) throw new Error(`bench:optim: unknown optimizer "${spec.optimizer}"`);
  const m = new FloatMlp(factory, spec.lr, { ...defaultFloatMlpConfig, seed: spec.seed });
  const bits = factory(1, spec.lr, 1).stateBitsPerParam;
  return { trainStep: (p, l) => { m.train(p, l); }, predict: (p) => m.predict(p), stateBitsPerParam: bits };
}
