import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global-database.ts'],
    setupFiles: ['test/setup/property-cases.ts'],
    // Twice what the slowest tests take on a loaded 2-core machine (review W saw 55 s and 63 s at load 10+).
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
