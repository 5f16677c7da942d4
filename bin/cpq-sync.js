#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';

// V8 lets its old generation grow by a factor it picks between full collections; under a capped
// heap (the image's --max-old-space-size=192) it picks ~1.2, so a run that streams pages
// through the heap ran a full collection every ~7 MB allocated: 54 per 100,000 users, a fifth of
// the sync's CPU. A factor of 3 runs 15-18 of them for ~40 MB more peak RSS (README, "Memory").
// A factor given on node's own command line wins (NODE_OPTIONS may not carry this flag).
if (!process.execArgv.some((flag) => /^--heap[-_]growing[-_]percent\b/.test(flag))) setFlagsFromString('--heap-growing-percent=200');

const entry = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error('cpq-sync: dist/ is missing; run `npm ci` (or `npm run build`) in the package folder first');
  process.exit(1);
}
await import(entry.href);
