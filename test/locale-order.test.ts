import { describe, expect } from 'vitest';
import { exportChanges, parseAfter } from '../src/history/export.js';
import { collectJsonLines } from './helpers/export-output.js';
import { it, type Harness, type StartHarness } from './helpers/harness.js';

/*
 * Review GX: the same CPQ edits synced into a database of the C locale (the test template) and one
 * of ICU en-US. README: "Lists are in code-point order, whatever the database's collation ... so
 * the same state and the same change read alike from any database". A run's change rows, its group
 * changes and its alerts were numbered in the database's collation order.
 */
const NAMES = ['alpha', 'Beta', '_under', 'Ärger', 'zeta'];
const CODE_POINT = ['Beta', '_under', 'alpha', 'zeta', 'Ärger'];

interface Outcome {
  run: string;
  h: Harness;
  first: string;
}

async function scenario(startHarness: StartHarness, icuLocale?: string): Promise<Outcome> {
  const h = await startHarness(
    { partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0, seed: 5 },
    {
      ALERT_RULES: 'group_membership',
      ALERT_GROUPS: '*',
      ALERT_WEBHOOK_URL: 'http://127.0.0.1:9/hook',
      ALERT_WEBHOOK_SECRET: 'locale-order-secret-0123456789abcdef',
      ALERT_RETRY_BASE_DELAY: '0',
    },
    icuLocale ? { icuLocale } : {},
  );
  if (icuLocale) {
    const sorted = (await h.t.query<{ s: string[] }>(`SELECT array_agg(n ORDER BY n) AS s FROM unnest($1::text[]) n`, [NAMES]))[0]!.s;
    expect(sorted).not.toEqual(CODE_POINT); // the database does sort otherwise
  }
  await h.sync();
  const first = String(h.sim.users('_host')[0]!.login);
  for (const n of NAMES) h.sim.addUser('_host', { login: `${n}-user` });
  await h.sync();
  for (const variableName of NAMES) h.sim.addGroup('_host', first, { variableName, label: variableName, type: 'Administrator' });
  for (const n of NAMES) h.sim.updateUser('_host', `${n}-user`, { firstName: `changed ${n}` });
  await h.sync();
  const run = (await h.t.query<{ id: string }>(`SELECT max(id)::text AS id FROM cpq.sync_runs WHERE status = 'succeeded'`))[0]!.id;
  return { run, h, first };
}

const both = async (startHarness: StartHarness) => ({ c: await scenario(startHarness), icu: await scenario(startHarness, 'en-US') });

/** What `read` lists of the same edits, from the C database and the ICU one: code-point order in both. */
async function expectCodePointOrderInBoth(startHarness: StartHarness, read: (o: Outcome) => Promise<string[]>): Promise<void> {
  const { c, icu } = await both(startHarness);
  expect(await read(c)).toEqual(CODE_POINT);
  expect(await read(icu)).toEqual(CODE_POINT);
}

describe('a database of ICU en-US against one of the C locale, the same CPQ edits (review GX)', () => {
  it('`changes` exports the same run in the same order (commit_seq, then change_id)', async ({ startHarness }) => {
    const { c, icu } = await both(startHarness);
    const logins = async (o: Outcome) =>
      (await collectJsonLines((out) => exportChanges(o.h.t.pool, parseAfter('0'), 'jsonl', out)))
        .filter((l) => l.change === 'update')
        .map((l) => String(l.login));
    const inC = await logins(c);
    expect(inC.filter((l) => l !== c.first)).toEqual(CODE_POINT.map((n) => `${n}-user`));
    expect(await logins(icu)).toEqual(inC);
  });

  it('cpq.group_changes numbers the groups of one run alike (its ORDER BY variable_name)', async ({ startHarness }) => {
    await expectCodePointOrderInBoth(startHarness, async (o) =>
      (await o.h.t.query<{ g: string }>(`SELECT group_variable_name AS g FROM cpq.group_changes WHERE run_id = $1 ORDER BY id`, [o.run])).map((r) => r.g),
    );
  });

  it('the alert outbox (delivery order) numbers the alerts of one change alike (ORDER BY change_id, rule, subject)', async ({ startHarness }) => {
    await expectCodePointOrderInBoth(startHarness, async (o) =>
      (await o.h.t.query<{ s: string }>(`SELECT subject AS s FROM cpq.alert_outbox WHERE run_id = $1 ORDER BY id`, [o.run])).map((r) => r.s),
    );
  });

  it("cpq.administrators lists a user's Administrator-type groups alike (its array_agg ORDER BY variable_name, migration 0041)", async ({ startHarness }) => {
    await expectCodePointOrderInBoth(startHarness, async (o) =>
      (await o.h.t.query<{ g: string[] }>(`SELECT administrator_groups AS g FROM cpq.administrators WHERE login = $1`, [o.first]))[0]!.g.filter((g) =>
        NAMES.includes(g),
      ),
    );
  });
});
