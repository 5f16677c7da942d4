import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostileSite, zipExport, type HostileSite } from './cpq-hostile.js';

/*
 * Issue 17 item 1. A hostile zip export names CSV columns after JavaScript's prototype chain
 * (`constructor.prototype.X`, `__proto__.X`) to write Object.prototype for the whole process: `ca`
 * would replace the TLS trust store of every later connection, `displayValue` would forge the
 * status_display of every later user whose status comes without one. The header must be refused
 * with a one-line error naming the entry and the column, and nothing outside the record may change.
 */

let site: HostileSite | undefined;
const PROBES = ['ca', 'displayValue', 'x', 'polluted'];

beforeAll(async () => {
  site = await hostileSite();
});

afterAll(async () => {
  // Were the defence missing, do not leave the pollution to the rest of this process.
  // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- removes whatever probe a failed defence planted on Object.prototype
  for (const name of PROBES) delete (Object.prototype as Record<string, unknown>)[name];
  await site?.close();
});

function expectPrototypeUntouched() {
  for (const name of PROBES) expect(Object.prototype, `Object.prototype.${name}`).not.toHaveProperty(name);
  expect(({} as Record<string, unknown>).displayValue).toBeUndefined();
  expect(Object.getPrototypeOf({})).toBe(Object.prototype);
}

const headers: [string, string][] = [
  ['constructor.prototype.ca', 'constructor'],
  ['constructor.prototype.displayValue', 'constructor'],
  ['__proto__.x', '__proto__'],
  ['status.__proto__.polluted', '__proto__'],
  ['company.constructor.prototype.polluted', 'constructor'],
  ['prototype.x', 'prototype'],
  ['Constructor.Prototype.polluted', 'Constructor'],
];

describe('a hostile CSV header in a zip export', () => {
  it.each(headers)('%s is refused, naming the entry and the column, and Object.prototype is untouched', async (column, part) => {
    const company = `evil_${headers.findIndex(([c]) => c === column)}`;
    site!.serve(
      company,
      zipExport([{ name: 'users.csv', text: `login,status.value,${column}\r\nmallory,1,-----BEGIN CERTIFICATE-----FORGED\r\n` }]),
      'application/zip',
    );
    const error = await site!.refused(company, { format: 'zip' });
    expect(error.message).toMatch(/zip export: entry "users\.csv": header \(line 1\): column "[^"]+"/);
    expect(error.message).toContain(`column "${column}"`);
    expect(error.message).toContain(`"${part}"`);
    expectPrototypeUntouched();
  });

  it('cannot forge the status_display of a user read later (status without displayValue)', async () => {
    site!.serve(
      'evil_forge',
      zipExport([{ name: 'users.csv', text: 'login,status.value,constructor.prototype.displayValue\r\nmallory,1,FORGED\r\n' }]),
      'application/zip',
    );
    await site!.refused('evil_forge', { format: 'zip' });
    site!.serve('later', JSON.stringify({ items: [{ login: 'honest', status: { value: 1 } }], hasMore: false }));
    const { error } = await site!.run('later');
    expect(error).toBeUndefined();
    const rows = await site!.h.t.query(`SELECT login, status, status_display FROM cpq.users WHERE company_login = 'later'`);
    expect(rows).toEqual([{ login: 'honest', status: 1, status_display: null }]);
    expectPrototypeUntouched();
  });

  it('a record is an object without a prototype: a column named like an Object method stays data', async () => {
    site!.serve('odd_columns', zipExport([{ name: 'users.csv', text: 'login,toString,hasOwnProperty.x,valueOf\r\nodd,a,b,c\r\n' }]), 'application/zip');
    const { error } = await site!.run('odd_columns', { format: 'zip' });
    expect(error).toBeUndefined();
    const [row] = await site!.h.t.query<{ raw: string }>(`SELECT raw::text AS raw FROM cpq.users WHERE company_login = 'odd_columns'`);
    expect(JSON.parse(row!.raw)).toEqual({ login: 'odd', toString: 'a', hasOwnProperty: { x: 'b' }, valueOf: 'c' });
    expectPrototypeUntouched();
  });
});
