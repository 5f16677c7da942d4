#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error('cpq-sync: dist/ is missing; run `npm ci` (or `npm run build`) in the package folder first');
  process.exit(1);
}
await import(entry.href);
