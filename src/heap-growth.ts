import { setFlagsFromString } from 'node:v8';
import { envSchema } from './config-env.js';

/** The flag as node's command line may give it (V8 takes one dash or two, and `_` for `-`). */
const GIVEN_ON_COMMAND_LINE = /^--?heap[-_]growing[-_]percent(=|$)/;

/**
 * The V8 flag that sets how much the old generation may grow between two full collections
 * (SYNC_HEAP_GROWING_PERCENT, README "Memory"), or undefined when V8 is left to choose: the
 * variable is 0, or invalid (loadConfig then names it), or node's own command line gave the flag.
 *
 * Why: under a capped heap (the image's --max-old-space-size=192) V8 picks a growing factor of
 * ~1.2, so a run that streams pages through the heap ran a full collection each time the old
 * generation grew ~7 MB: 54 per 100,000 users, about a fifth of the sync's CPU.
 */
export function heapGrowingFlag(env: NodeJS.ProcessEnv, execArgv: readonly string[]): string | undefined {
  if (execArgv.some((arg) => GIVEN_ON_COMMAND_LINE.test(arg))) return undefined;
  const parsed = envSchema.shape.SYNC_HEAP_GROWING_PERCENT.safeParse(env.SYNC_HEAP_GROWING_PERCENT);
  return parsed.success && parsed.data > 0 ? `--heap-growing-percent=${parsed.data}` : undefined;
}

/** Sets heapGrowingFlag's flag in this process; V8 reads it whenever it sets its next collection's limit. */
export function setHeapGrowingFactor(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): void {
  const flag = heapGrowingFlag(env, execArgv);
  if (flag !== undefined) setFlagsFromString(flag);
}
