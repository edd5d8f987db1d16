// The optimizer baselines (ops 28-32) on the XS engine: the random cases of
// src/core/optim/random-cases.ts through the C core (xsmc glue) and through
// the TypeScript reference running on XS; prints one line per case,
// `case <seed> <crc C> <crc reference>`, which host-tests/optim-baselines.test.ts
// compares with the Node addon. Usage:
//   xst-xs out/ts/xs/optim-check.js [cases]

import { crc32Hex } from '../core/crc32.js';
import { randomOptimCase, runOptimCase } from '../core/optim/random-cases.js';
import { ReferenceDispatch } from '../core/reference/dispatch.js';
import { XsDispatch } from './dispatch.js';
import { args, print } from './host.js';

const n = Number(args()[0] ?? '60');
for (let s = 1; s <= n; s++) {
  const c = randomOptimCase(2000 + s);
  const a = runOptimCase(c, (b) => new XsDispatch(b)), r = runOptimCase(c, (b) => new ReferenceDispatch(b));
  print(`case ${2000 + s} ${crc32Hex(a)} ${crc32Hex(r)}`);
}
