import { describe, expect } from 'vitest';
import { runSteps, step, type Step } from '../src/db/steps.js';
import { mergeSteps } from '../src/sync/merge-plan.js';
import { BATCH_STEPS } from '../src/sync/new-user-steps.js';
import { it } from './helpers/fixtures.js';

/*
 * The merge's steps name their parameters (db/steps.ts): each is numbered once where the step is
 * written, so a step may take any number of them, and takes only those it uses.
 */

/** The distinct $n of a statement, in increasing order. */
const placeholders = (text: string) => [...new Set([...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])))].sort((a, b) => a - b);

const TWELVE = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l'] as const;

describe('step: named parameters', () => {
  it('numbers the names in the order the statement first reads them, the same name the same number, up to $12 and past', () => {
    const s = step('twelve', TWELVE, (p) => `SELECT ${p.l}, ${p.a}, ${TWELVE.map((k) => p[k]).join(', ')}, ${p.l}`);
    expect(s.params).toEqual(['l', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k']);
    expect(s.text).toBe('SELECT $1, $2, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $1, $1');
  });

  it('takes only the parameters the statement reads', () => {
    const s = step('two of four', ['runId', 'effectiveAt', 'afterSeq', 'toSeq'], (p) => `SELECT ${p.toSeq} - ${p.afterSeq}`);
    expect(s).toEqual({ name: 'two of four', text: 'SELECT $1 - $2', params: ['toSeq', 'afterSeq'] });
    expect(step('none', ['runId'], () => 'SELECT 1').params).toEqual([]);
  });

  it('every merge and batch step is numbered $1..$n for its n parameters, and has a name of its own', () => {
    const steps: Step<string>[] = [...BATCH_STEPS, ...mergeSteps(['"id"', '"login"'])];
    for (const s of steps) {
      const used = placeholders(s.text);
      expect(used, s.name).toEqual(s.params.map((_, i) => i + 1));
    }
    const names = mergeSteps([]).map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(new Set(BATCH_STEPS.map((s) => s.name)).size).toBe(BATCH_STEPS.length);
  });
});

describe('runSteps against Postgres', () => {
  it('gives a step of twelve parameters each value where its name is', async ({ createDatabase }) => {
    const t = await createDatabase();
    const client = await t.pool.connect();
    try {
      await client.query('BEGIN');
      const steps = [
        step('table', [], () => 'CREATE TEMP TABLE got (n int, v text) ON COMMIT DROP'),
        step(
          'twelve',
          TWELVE,
          (p) =>
            `INSERT INTO got SELECT * FROM unnest(ARRAY[1,2,3,4,5,6,7,8,9,10,11,12], ARRAY[${[...TWELVE]
              .reverse()
              .map((k) => `${p[k]}::text`)
              .join(', ')}])`,
        ),
      ];
      const values = Object.fromEntries(TWELVE.map((k) => [k, `value of ${k}`])) as Record<(typeof TWELVE)[number], string>;
      await runSteps(client, steps, values, 'test step');
      const { rows } = await client.query<{ v: string }>('SELECT v FROM got ORDER BY n');
      expect(rows.map((r) => r.v)).toEqual([...TWELVE].reverse().map((k) => `value of ${k}`));
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
  });
});
