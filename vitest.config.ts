import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Opt-in (npm run test:chaos): its generated faults still find cases its model misreads (a
    // deletion the guard refuses, a signal before a second process's handlers), which would fail CI
    // at random; README "Guarantees" says so.
    exclude: process.env.CHAOS === '1' ? ['**/node_modules/**'] : ['**/node_modules/**', 'test/chaos-process.test.ts'],
    globalSetup: ['test/setup/global-database.ts'],
    // Twice what the slowest tests take on a loaded 2-core machine (review W saw 55 s and 63 s at load 10+).
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
