import { describe, expect } from 'vitest';
import { PERSONAL_COLUMNS, PERSONAL_FIELD_COLUMNS } from '../src/normalize/personal-fields.js';
import { forgetUser } from '../src/sync/forget.js';
import { runSync } from '../src/sync/run.js';
import { verifyChain } from '../src/sync/verify.js';
import { it, type Harness } from './helpers/harness.js';

/*
 * Review HO: a user whose personal fields were erased (`forget`, HISTORY_RETENTION) while deleted,
 * then restored in CPQ, was logged as a change of every personal field from null: an auditor read
 * "this user had no name or e-mail before". What the erased fields held is no longer known, so the
 * restore's diff says "[redacted]" on their old side, for a field that comes back empty too.
 */

type Diff = Record<string, { old: unknown; new: unknown }>;

async function restoreDiff(h: Harness, login: string): Promise<Diff> {
  const [row] = await h.t.query<{ diff: Diff }>(`SELECT diff FROM cpq.user_changes WHERE login = $1 AND change = 'restore'`, [login]);
  return row!.diff;
}

/** The personal entries of a diff: those of the personal columns. */
const personalEntries = (diff: Diff) => Object.fromEntries(Object.entries(diff).filter(([k]) => PERSONAL_COLUMNS.includes(k)));

/** What the restore's diff should say of each personal field: erased before, `record`'s value now (none for a field it lacks). */
const erasedThen = (record: Record<string, unknown>) =>
  Object.fromEntries(PERSONAL_FIELD_COLUMNS.map(({ field, column }) => [column, { old: '[redacted]', new: record[field] ?? null }]));

describe('a restore of a user whose personal fields were erased', () => {
  it('after forget: every erased field is "[redacted]" on the old side, none null, whether it came back the same, changed or empty', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 20, integrationUsers: 0 });
    await h.sync({ full: true });
    const [same, other] = h.sim.users('_host').map((u) => String(u.login));
    const records = { same: h.sim.user('_host', same!)!, other: h.sim.user('_host', other!)! };
    for (const login of [same!, other!]) h.sim.deleteUser('_host', login);
    await h.sync({ full: true });
    for (const login of [same!, other!])
      await forgetUser(h.t.pool, { site: 'default', company: '_host', login, reason: 'ticket 1', requestedBy: 'test' }, h.log);
    // One comes back as it was; the other with a new e-mail address and no first name.
    h.sim.addUser('_host', records.same, { exact: true });
    const changed: Record<string, unknown> = { ...records.other, email: 'new@example.org' };
    delete changed.firstName;
    h.sim.addUser('_host', changed, { exact: true });
    await h.sync({ full: true });
    expect(personalEntries(await restoreDiff(h, same!))).toEqual(erasedThen(records.same));
    expect(personalEntries(await restoreDiff(h, other!))).toEqual(erasedThen(changed));
    expect((await restoreDiff(h, other!)).first_name).toEqual({ old: '[redacted]', new: null });
    expect((await verifyChain(h.t.pool)).breaks).toEqual([]);
  });

  it('after HISTORY_RETENTION redacted the deleted user: the same', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 6, integrationUsers: 0 });
    const run = (retention?: number) =>
      runSync({ pool: h.t.pool, db: h.t.db, config: { ...h.config, ...(retention ? { historyRetentionMs: retention } : {}) }, log: h.log }, { full: true });
    await run();
    const [login] = h.sim.users('_host').map((u) => String(u.login));
    const record = h.sim.user('_host', login!)!;
    h.sim.deleteUser('_host', login!);
    await run();
    await new Promise((r) => setTimeout(r, 300));
    // This run's retention redacts the deleted user; the next one restores it.
    await run(200);
    const [redacted] = await h.t.query<{ first_name: string | null }>(`SELECT first_name FROM cpq.users WHERE login = $1`, [login]);
    expect(redacted!.first_name).toBeNull();
    h.sim.addUser('_host', record, { exact: true });
    await run();
    expect(personalEntries(await restoreDiff(h, login!))).toEqual(erasedThen(record));
  });

  it('a restore of a user never erased, whose fields CPQ sends as "[redacted]" under spellings the mapping does not read, says their old values as they were', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 6, integrationUsers: 0 });
    await h.sync({ full: true });
    const [login] = h.sim.users('_host').map((u) => String(u.login));
    const record: Record<string, unknown> = { ...h.sim.user('_host', login!)!, first_name: '[redacted]' };
    delete record.firstName;
    // Replaced in CPQ: the run updates it.
    h.sim.deleteUser('_host', login!);
    h.sim.addUser('_host', record, { exact: true });
    await h.sync({ full: true });
    h.sim.deleteUser('_host', login!);
    await h.sync({ full: true });
    h.sim.addUser('_host', { ...record, firstName: 'Back' }, { exact: true });
    await h.sync({ full: true });
    const diff = await restoreDiff(h, login!);
    expect(diff.first_name).toEqual({ old: null, new: 'Back' });
    expect(Object.values(personalEntries(diff)).some((e) => e.old === '[redacted]')).toBe(false);
  });
});
