import { describe, expect } from 'vitest';
import { exportChanges, exportSnapshot, parseAfter, type ExportFormat } from '../src/history/export.js';
import { LosslessNumber } from 'lossless-json';
import { RawJson } from '../src/simulator/index.js';
import { cli } from './helpers/cli-process.js';
import { collect } from './helpers/export-output.js';
import { it, type StartHarness } from './helpers/harness.js';

// Every number leaves the exports exactly as Postgres stores it: never through a JavaScript double.
const PARTY_ID = '318766884429645907'; // a double would make it 318766884429645900
const NEXT_PARTY_ID = '318766884429645909';
const SCORE = '0.1234567890123456789'; // a double keeps 17 significant digits
// jsonb holds numbers as numeric: 1e400 is stored (and so exported) as its 401 digits. A double says Infinity (null).
const HUGE_STORED = `1${'0'.repeat(400)}`;

/**
 * A Fusion site whose integration user (partyId comes from the v19 feed) has an int64 partyId and
 * a user with custom fields no double can hold, synced; then the partyId changes and is synced again.
 */
async function syncedSite(startHarness: StartHarness) {
  const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 1, pathPrefix: '/cpq' });
  const login = String(h.sim.integrationUsers()[0]!.login);
  const custom = String(h.sim.users('_host').find((u) => u.login !== login)!.login);
  h.sim.updateUser('_host', login, { partyId: new LosslessNumber(PARTY_ID) });
  h.sim.updateUser('_host', custom, { score: new RawJson(SCORE), huge: new RawJson('1e400') });
  await h.sync();
  h.sim.updateUser('_host', login, { partyId: new LosslessNumber(NEXT_PARTY_ID) });
  const second = await h.sync();
  // The change log stores what the merge computed; a diff holding such numbers must leave as exactly.
  // (Custom fields are not diffed by the merge today, so this row is written as a diff could hold them.)
  await h.t.query(
    `INSERT INTO cpq.user_change_log (site, run_id, change, user_id, company_login, login, detected_at, diff)
     SELECT site, $1, 'update', id, company_login, login, now(), $2::jsonb FROM cpq.users WHERE login = $3`,
    [second.runId, `{"score":{"old":${SCORE},"new":1e400}}`, custom],
  );
  return { h, login, custom };
}

describe('exact numbers in every export', () => {
  it('changes: int64 ids and long decimals leave the change log digit for digit, as JSON lines and as CSV', async ({ startHarness }) => {
    const { h, login, custom } = await syncedSite(startHarness);
    const jsonl = await collect((out) => exportChanges(h.t.pool, parseAfter('0'), 'jsonl', out));
    const lines = jsonl.trim().split('\n');
    const of = (who: string) => lines.filter((l) => l.includes(`"login":"${who}"`));
    expect(of(login)).toHaveLength(2); // insert, update
    expect(of(login)[0]).toContain(`"party_id":{"new":${PARTY_ID},"old":null}`);
    expect(of(login)[1]).toContain(`"party_id":{"new":${NEXT_PARTY_ID},"old":${PARTY_ID}}`);
    expect(of(custom).at(-1)).toContain(`"diff":{"score":{"new":${HUGE_STORED},"old":${SCORE}}}`);
    for (const line of lines) expect(() => JSON.parse(line) as unknown).not.toThrow();

    const csv = await collect((out) => exportChanges(h.t.pool, parseAfter('0'), 'csv', out));
    const rows = csv.trim().split('\n');
    const csvOf = (who: string) => rows.filter((l) => l.includes(`,${who},`));
    expect(csvOf(login)).toHaveLength(2);
    expect(csvOf(login)[0]).toContain(`""party_id"":{""new"":${PARTY_ID},""old"":null}`);
    expect(csvOf(login)[1]).toContain(`""party_id"":{""new"":${NEXT_PARTY_ID},""old"":${PARTY_ID}}`);
    expect(csvOf(custom).at(-1)).toContain(`""score"":{""new"":${HUGE_STORED},""old"":${SCORE}}`);
  });

  it('snapshot: party_id and the custom fields of raw leave digit for digit, as JSON lines and as CSV', async ({ startHarness }) => {
    const { h, login, custom } = await syncedSite(startHarness);
    for (const format of ['jsonl', 'csv'] as ExportFormat[]) {
      const lines = (await collect((out) => exportSnapshot(h.t.pool, new Date(), format, out, { withRaw: true }))).split('\n');
      const q = format === 'csv' ? '""' : '"';
      const integrationUser = lines.find((l) => l.includes(login))!;
      expect(integrationUser).toContain(format === 'csv' ? `,${NEXT_PARTY_ID},` : `"party_id":${NEXT_PARTY_ID}`);
      expect(integrationUser).toContain(`${q}partyId${q}:${NEXT_PARTY_ID}`);
      const customUser = lines.find((l) => l.includes(custom))!;
      expect(customUser).toContain(`${q}score${q}:${SCORE}`);
      expect(customUser).toContain(`${q}huge${q}:${HUGE_STORED}`);
    }
    // As of the first run: the partyId it held then.
    const [firstRun] = await h.t.query<{ finished_at: Date }>(`SELECT finished_at FROM cpq.sync_runs ORDER BY id LIMIT 1`);
    const then = await collect((out) => exportSnapshot(h.t.pool, firstRun!.finished_at, 'jsonl', out));
    expect(then.split('\n').find((l) => l.includes(login))).toContain(`"party_id":${PARTY_ID}`);
  });

  it('snapshot --with-raw and changes --after through the CLI', async ({ startHarness }) => {
    const { h, custom } = await syncedSite(startHarness);
    const snapshot = await cli(['snapshot', '--format', 'jsonl', '--with-raw'], { DATABASE_URL: h.t.url });
    expect(snapshot.code).toBe(0);
    expect(snapshot.stdout.split('\n').find((l) => l.includes(custom))).toContain(`"score":${SCORE}`);
    const changes = await cli(['changes', '--after', '0', '--format', 'csv'], { DATABASE_URL: h.t.url });
    expect(changes.code).toBe(0);
    expect(changes.stdout).toContain(`""party_id"":{""new"":${NEXT_PARTY_ID},""old"":${PARTY_ID}}`);
  });

  it('status --json: run records and times leave as stored', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 1, integrationUsers: 0 });
    await h.t.query(
      `INSERT INTO cpq.sync_runs (site, status, mode, started_at, finished_at, http_retries, streams, warnings, error)
       VALUES ('default', 'failed', 'full', '2025-03-03T01:02:03.456789Z', '2025-03-03T01:02:04.5Z', $1, $2, '["w"]', 'boom')`,
      [`{"503": ${PARTY_ID}}`, `[{"stream": "companies/_host", "totalResults": ${SCORE}, "received": 1e400}]`],
    );
    const out = await cli(['status', '--json'], { DATABASE_URL: h.t.url });
    expect(out.code).toBe(1);
    expect(out.stdout).toContain(`"httpRetries": {"503":${PARTY_ID}}`);
    expect(out.stdout).toContain(`"streams": [{"stream":"companies/_host","received":${HUGE_STORED},"totalResults":${SCORE}}]`);
    expect(out.stdout).toContain('"startedAt": "2025-03-03T01:02:03.456789Z"');
    expect(out.stdout).toContain('"finishedAt": "2025-03-03T01:02:04.500Z"');
    expect(JSON.parse(out.stdout)).toMatchObject({ sites: [{ site: 'default', runs: [{ status: 'failed', warnings: ['w'], error: 'boom' }] }] });
  });
});
