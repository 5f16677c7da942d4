import { createRequire } from 'node:module';

/**
 * Loads a CommonJS package when a run first needs it instead of when the process starts: undici only
 * with CPQ_CA_FILE, yaml only with CPQ_SITES_FILE, pino-pretty only for human-readable logs. Loading
 * them up front cost every CLI call ~80 ms of its ~0.3 s start-up. Synchronous (require, not import()),
 * because the functions that need them are: Node caches the package after the first call.
 */
export const requireWhenUsed = createRequire(import.meta.url);
