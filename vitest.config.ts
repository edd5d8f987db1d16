import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['host-tests/**/*.test.ts'],
    testTimeout: 60_000,
    // QEMU and the XS host are separate processes; two cores on CI machines.
    maxWorkers: 2,
  },
});
