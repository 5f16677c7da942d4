import type pg from 'pg';
import type { Logger } from '../logger.js';

/**
 * One statement of a multi-statement plan (the merge): a name for logs and tests, its SQL text,
 * and the names of the parameters it takes, in the order of its placeholders ($1 is params[0]).
 */
export interface Step<K extends string> {
  readonly name: string;
  readonly text: string;
  readonly params: readonly K[];
}

/** Placeholders by parameter name: reading `p.runId` in a step's builder puts `runId` in its parameters. */
type Placeholders<K extends string> = Readonly<Record<K, string>>;

/**
 * Builds a step whose SQL names its parameters: `build` writes `${p.runId}` where the run id goes,
 * and each name gets the next `$n` the first time it is read, the same one after. A step is thus
 * numbered once, where it is written, for any number of parameters, and takes only the ones it
 * uses (Postgres refuses a parameter whose type it cannot infer from the statement).
 */
export function step<K extends string>(name: string, keys: readonly K[], build: (p: Placeholders<K>) => string): Step<K> {
  const used: K[] = [];
  const placeholders = {} as Record<K, string>;
  for (const key of keys) {
    Object.defineProperty(placeholders, key, {
      enumerable: true,
      get: () => {
        if (!used.includes(key)) used.push(key);
        return `$${used.indexOf(key) + 1}`;
      },
    });
  }
  return { name, text: build(placeholders), params: used };
}

/** Runs steps in order on one connection, each given the values of the parameters it names; timings at debug. */
export async function runSteps<P extends Record<string, unknown>>(
  client: pg.PoolClient,
  steps: readonly Step<keyof P & string>[],
  values: P,
  what: string,
  log?: Logger,
): Promise<void> {
  for (const s of steps) {
    const started = performance.now();
    // A step without parameters may hold several statements, which only the simple query
    // protocol runs.
    if (s.params.length === 0) await client.query(s.text);
    else
      await client.query(
        s.text,
        s.params.map((key) => values[key]),
      );
    log?.debug({ step: s.name, ms: Math.round(performance.now() - started) }, what);
  }
}
