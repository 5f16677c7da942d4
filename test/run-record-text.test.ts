import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRun, recordFailedStart } from '../src/db/sql/create-run.js';
import { finishRun } from '../src/db/sql/finish-run.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

/*
 * A run record quotes what CPQ sent (a company's loginName in a warning, a value in an error).
 * Postgres text holds no NUL, and jsonb no unpaired surrogate: such a quote made the record of a
 * failed run fail to save, and the run stayed "running" until another worker called it abandoned.
 */
describe('a run record stores what it quotes', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase();
  });
  afterAll(() => t.drop());

  const hostile = 'company "a\u0000b\ud800c\u001b[2J"';
  const shown = 'company "a\\x00b\\ud800c\\x1b[2J"';

  it('a failed run: its error and warnings, with a NUL, an unpaired surrogate and an escape sequence written as text', async () => {
    const runId = await createRun(t.pool, 'default', 'full');
    const written = await finishRun(t.pool, runId, {
      status: 'failed',
      mode: 'full',
      pages: 1,
      streams: [],
      warnings: [`integration users name the ${hostile}`],
      http: { requests: 1, retries: {} },
      error: `data error: ${hostile}`,
      progress: null,
    });
    expect(written).toBe(true);
    const [row] = await t.query<{ status: string; error: string; warnings: string[] }>(`SELECT status, error, warnings FROM cpq.sync_runs WHERE id = $1`, [
      runId,
    ]);
    expect(row).toEqual({ status: 'failed', error: `data error: ${shown}`, warnings: [`integration users name the ${shown}`] });
  });

  it('a run that could not start', async () => {
    const runId = await recordFailedStart(t.pool, 'default', 'incremental', `lock held: ${hostile}`);
    const [row] = await t.query<{ error: string }>(`SELECT error FROM cpq.sync_runs WHERE id = $1`, [runId]);
    expect(row!.error).toBe(`lock held: ${shown}`);
  });
});
