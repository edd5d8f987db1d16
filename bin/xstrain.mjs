#!/usr/bin/env node
// The xstrain command line. The host tools are TypeScript, run through tsx
// (no separate build step for developers who change them).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/xstrain.ts');
process.exitCode = await main(process.argv.slice(2));
