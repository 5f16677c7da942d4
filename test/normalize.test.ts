import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countValue, integerValue, parseExactJson, stringifyExactJson } from '../src/exact-json.js';

const modules = { integerValue, parseExactJson, stringifyExactJson };
import { retryAfterMs, backoffMs, describeDelay, httpDate } from '../src/cpq/http-retry.js';
import { USER_VALUE_COLUMNS } from '../src/normalize/user-fields.js';
import { RecordError, normalizeUser } from '../src/normalize/user-record.js';

const source = { companyLogin: '_host', isIntegrationUser: false, origin: 'http://site/users' };
const column = (row: ReturnType<typeof normalizeUser>, name: string) => row.values[USER_VALUE_COLUMNS.indexOf(name)];

describe('normalizing a CPQ user record', () => {
  it('keeps partyId and id digit for digit (beyond 2^53)', () => {
    const record = parseExactJson('{"login":"a","partyId":181556695830934950,"id":3024590297,"partyNumber":"BM_1"}');
    const row = normalizeUser(record, source, 0);
    expect(column(row, 'party_id')).toBe('181556695830934950');
    expect(column(row, 'cpq_id')).toBe('3024590297');
    expect(row.raw).toContain('"partyId":181556695830934950');
  });

  it('maps drifted field names: lastname, isSuperUserPermEnabled, any case', () => {
    const row = normalizeUser({ login: 'a', lastname: 'Jones', isSuperUserPermEnabled: true, FIRSTNAME: 'John', BillCity: 'Chicago' }, source, 0);
    expect(column(row, 'last_name')).toBe('Jones');
    expect(column(row, 'is_user_admin_perm_enabled')).toBe(true);
    expect(column(row, 'first_name')).toBe('John');
    expect(column(row, 'bill_city')).toBe('Chicago');
  });

  it('prefers the canonical spelling when both arrive', () => {
    const row = normalizeUser({ login: 'a', lastname: 'old', lastName: 'new' }, source, 0);
    expect(column(row, 'last_name')).toBe('new');
  });

  it('a permission listed twice with different contents counts as the same copy in any order: granting access, then the greater name, then what no column holds (review CF)', () => {
    const copies = [
      { type: 'productFamily', variableName: 'laptops', name: '', hasAccess: false },
      { type: 'productFamily', variableName: 'laptops', name: 'Laptops', hasAccess: true, reason: 'x' },
      { type: 'productFamily', variableName: 'laptops', name: 'Laptops', hasAccess: null },
      { type: 'productFamily', variableName: 'laptops', name: 'Laptops', hasAccess: true, reason: 'y' },
      { type: 'productFamily', variableName: 'laptops', name: null, hasAccess: true },
      { type: 'other', variableName: 'one', name: 'Other', hasAccess: false },
    ];
    const orders = [copies, [...copies].reverse(), [copies[3]!, copies[0]!, copies[5]!, copies[4]!, copies[2]!, copies[1]!]];
    const rows = orders.map((items) => normalizeUser({ login: 'a', accessPermissions: { items } }, source, 0));
    for (const row of rows) {
      expect(row.accessPermissions).toEqual([
        { type: 'other', variableName: 'one', name: 'Other', hasAccess: false },
        { type: 'productFamily', variableName: 'laptops', name: 'Laptops', hasAccess: true },
      ]);
      expect(row.contentHash).toBe(rows[0]!.contentHash);
    }
    // The copy that counts is the one with reason y: the others change nothing the digest sees.
    const onlyY = normalizeUser({ login: 'a', accessPermissions: { items: [copies[3]!, copies[5]!] } }, source, 0);
    expect(onlyY.contentHash).toBe(rows[0]!.contentHash);
    const onlyX = normalizeUser({ login: 'a', accessPermissions: { items: [copies[1]!, copies[5]!] } }, source, 0);
    expect(onlyX.contentHash).not.toBe(rows[0]!.contentHash);
  });

  it('a group listed twice with different contents counts as the same copy in any order: saying label or type, then the greater label, type, what no column holds (review DC)', () => {
    const copies = [
      { variableName: 'sales', label: 'Sales', type: 'Sales' },
      { variableName: 'sales', label: 'Sales EMEA', type: null, reason: 'x' },
      { variableName: 'sales', label: 'Sales EMEA', type: 'Admin', reason: 'x' },
      { variableName: 'sales', label: 'Sales EMEA', type: 'Admin', reason: 'y' },
      { variableName: 'sales', label: null, type: 'Zeta' },
      { variableName: 'sales', expiresOn: '2030' },
      { variableName: 'other', label: 'Other', type: 'Sales' },
    ];
    const orders = [copies, [...copies].reverse(), [copies[3]!, copies[0]!, copies[6]!, copies[5]!, copies[4]!, copies[2]!, copies[1]!]];
    const rows = orders.map((items) => normalizeUser({ login: 'a', groups: { items } }, source, 0));
    for (const row of rows) {
      expect(row.groups).toEqual([
        { variableName: 'other', label: 'Other', type: 'Sales' },
        { variableName: 'sales', label: 'Sales EMEA', type: 'Admin' },
      ]);
      expect(row.groupsDescribed).toBe(true);
      expect(row.contentHash).toBe(rows[0]!.contentHash);
    }
    // The copy that counts is the one with reason y: the others change nothing the digest sees.
    const onlyY = normalizeUser({ login: 'a', groups: { items: [copies[3]!, copies[6]!] } }, source, 0);
    expect(onlyY.contentHash).toBe(rows[0]!.contentHash);
    const onlyX = normalizeUser({ login: 'a', groups: { items: [copies[2]!, copies[6]!] } }, source, 0);
    expect(onlyX.contentHash).not.toBe(rows[0]!.contentHash);
    // A copy saying neither label nor type counts only when every copy says neither: then the stored ones stay.
    for (const items of [
      [copies[5]!, { variableName: 'sales' }],
      [{ variableName: 'sales' }, copies[5]!],
    ]) {
      const bare = normalizeUser({ login: 'a', groups: { items: [...items, copies[6]!] } }, source, 0);
      expect(bare.groups).toContainEqual({ variableName: 'sales', label: null, type: null });
      expect(bare.groupsDescribed).toEqual(new Set(['other']));
    }
    // An item saying its type and no label describes the group (its label cleared), as one saying its
    // label and no type does (review EQ, mutant N16: reading only the label took it for bare, and the
    // stored label stayed).
    for (const item of [
      { variableName: 'typed', type: 'Sales' },
      { variableName: 'labelled', label: 'L' },
    ]) {
      expect(normalizeUser({ login: 'a', groups: { items: [item, { variableName: 'bare' }] } }, source, 0).groupsDescribed).toEqual(
        new Set([item.variableName]),
      );
    }
    // A label in another JSON form: the same row, and the same copy counts in either order.
    const forms = [
      { variableName: 'n', label: '123' },
      { variableName: 'n', label: parseExactJson('123') },
    ];
    const [a, b] = [forms, [...forms].reverse()].map((items) => normalizeUser({ login: 'a', groups: { items } }, source, 0));
    expect(a!.groups).toEqual(b!.groups);
    expect(a!.contentHash).toBe(b!.contentHash);
  });

  it('splits {value, displayValue} into two columns, with the documented types', () => {
    const row = normalizeUser(
      { login: 'a', status: { value: 1, displayValue: 'Active' }, timeZone: { value: 'America/Chicago', displayValue: 'Chicago' } },
      source,
      0,
    );
    expect([column(row, 'status'), column(row, 'status_display')]).toEqual(['1', 'Active']);
    expect([column(row, 'time_zone'), column(row, 'time_zone_display')]).toEqual(['America/Chicago', 'Chicago']);
  });

  it("a choice's integer value fits in a 32-bit integer column or fails the record by name (review EQ)", () => {
    // Mutant N3: reading it in the 64-bit range passed every test; a value of 2^31 then failed the
    // whole run's COPY into the integer column instead of refusing the one record.
    const status = (value: unknown) => column(normalizeUser({ login: 'a', status: { value, displayValue: 'x' } }, source, 0), 'status');
    expect(status(2147483647)).toBe('2147483647');
    expect(status(-2147483648)).toBe('-2147483648');
    expect(() => status(2147483648)).toThrow('field "status.value" 2147483648 does not fit in a 32-bit integer');
    expect(() => status(-2147483649)).toThrow('field "status.value" -2147483649 does not fit in a 32-bit integer');
    expect(() => normalizeUser({ login: 'a', units: 4294967296 }, source, 0)).toThrow('field "units.value" 4294967296 does not fit in a 32-bit integer');
  });

  it('keeps two access permissions apart whatever characters their type and variable name hold', () => {
    const permission = (type: string, variableName: string) => ({ type, variableName, name: 'P', hasAccess: true });
    const row = normalizeUser(
      { login: 'a', accessPermissions: { items: [permission('a\u0001b', 'c'), permission('a', 'b\u0001c'), permission('a', 'b')] } },
      source,
      0,
    );
    expect(row.accessPermissions!.map((p) => [p.type, p.variableName])).toEqual([
      ['a', 'b'],
      ['a', 'b\u0001c'],
      ['a\u0001b', 'c'],
    ]);
  });

  it('reads groups and access permissions, sorted and de-duplicated', () => {
    const row = normalizeUser(
      {
        login: 'a',
        groups: {
          items: [
            { variableName: 'b', label: 'B', type: 'Sales' },
            { variableName: 'a', label: 'A', type: 'Administrator' },
            { variableName: 'b', label: 'B', type: 'Sales' },
          ],
        },
        accessPermissions: { items: [{ type: 'productFamily', variableName: 'pf', name: 'PF', hasAccess: true }] },
      },
      source,
      0,
    );
    expect(row.groups!.map((g) => g.variableName)).toEqual(['a', 'b']);
    expect(row.accessPermissions).toEqual([{ type: 'productFamily', variableName: 'pf', name: 'PF', hasAccess: true }]);
    expect(normalizeUser({ login: 'a' }, source, 0).groups).toBeUndefined();
  });

  it('gives the same digest to the same content in another order, and another to changed content', () => {
    const a = normalizeUser(
      { login: 'a', email: 'x', groups: { items: [{ variableName: 'g1' }, { variableName: 'g2' }] }, links: [{ href: 'h1' }] },
      source,
      0,
    );
    const b = normalizeUser(
      { groups: { items: [{ variableName: 'g2' }, { variableName: 'g1' }] }, email: 'x', login: 'a', links: [{ href: 'h2' }] },
      source,
      0,
    );
    const c = normalizeUser({ login: 'a', email: 'y', groups: { items: [{ variableName: 'g1' }, { variableName: 'g2' }] } }, source, 0);
    expect(a.contentHash).toBe(b.contentHash);
    expect(a.contentHash).not.toBe(c.contentHash);
  });

  it('refuses bad values with a message naming record and field', () => {
    expect(() => normalizeUser({ login: 'jj', status: { value: 'yes' } }, source, 3)).toThrow(
      'user "_host/jj" (record 3 of http://site/users): field "status.value" must be a whole number, got "yes"',
    );
    expect(() => normalizeUser({ login: 'jj', dateModified: 'yesterday' }, source, 0)).toThrow(/field "dateModified" must be an ISO-8601 date-time/);
    expect(() => normalizeUser({ login: 'jj', lastLogin: '2025-02-29T10:00:00.000Z' }, source, 0)).toThrow(
      /field "lastLogin" must be an ISO-8601 date-time, got "2025-02-29T10:00:00.000Z"/,
    );
    expect(column(normalizeUser({ login: 'jj', lastLogin: '2024-02-29T10:00:00+02:00' }, source, 0), 'last_login')).toBe('2024-02-29T08:00:00.000Z');
    // Offsets that carry a date past year 1 or 9999 (which Postgres cannot read) fail the record, not the whole COPY.
    expect(() => normalizeUser({ login: 'jj', lastLogin: '0001-01-01T00:30:00+01:00' }, source, 0)).toThrow(
      'field "lastLogin" is 0000-12-31T23:30:00.000Z in UTC, outside the years 1 to 9999',
    );
    expect(() => normalizeUser({ login: 'jj', lastLogin: '9999-12-31T23:00:00-05:00' }, source, 0)).toThrow(
      'field "lastLogin" is +010000-01-01T04:00:00.000Z in UTC, outside the years 1 to 9999',
    );
    expect(() => normalizeUser({ firstName: 'x' }, source, 7)).toThrow(/record 7 of http:\/\/site\/users: field "login" is missing/);
    expect(() => normalizeUser(parseExactJson('{"login":"a","partyId":99999999999999999999}'), source, 0)).toThrow(/does not fit in a 64-bit integer/);
    expect(() => normalizeUser({ login: 'a', isNotifyEmail: 'maybe' }, source, 0)).toThrow(RecordError);
    // A key field of any length would fail the whole COPY on the index ("index row size exceeds"); the record fails by name instead.
    expect(() => normalizeUser({ login: 'a' }, { ...source, companyLogin: 'c'.repeat(1025), isIntegrationUser: true }, 0)).toThrow(
      'field "company.loginName" is 1025 bytes long; at most 1024 bytes are supported for this key field',
    );
  });

  it('bounds every key field (login, partyNumber, group and permission names) at 1024 UTF-8 bytes, not characters (review EQ)', () => {
    // Mutants N8 (partyNumber read as plain text) and N34 (the byte count skipped for keys of at most
    // 1024 characters) passed every test: such a key failed the whole run's COPY on the index
    // ("index row size exceeds") instead of the one record, by name. "€" is 3 bytes in UTF-8.
    const fits = '€'.repeat(341); // 1023 bytes
    const over = '€'.repeat(342); // 1026 bytes in 342 characters
    const refusal = (field: string) => `field "${field}" is 1026 bytes long; at most 1024 bytes are supported for this key field`;
    expect(normalizeUser({ login: fits }, source, 0).login).toBe(fits);
    expect(() => normalizeUser({ login: over }, source, 0)).toThrow(refusal('login'));
    expect(column(normalizeUser({ login: 'a', partyNumber: fits }, source, 0), 'party_number')).toBe(fits);
    expect(() => normalizeUser({ login: 'a', partyNumber: over }, source, 0)).toThrow(refusal('partyNumber'));
    expect(() => normalizeUser({ login: 'a', partyNumber: 'p'.repeat(1025) }, source, 0)).toThrow(
      'field "partyNumber" is 1025 bytes long; at most 1024 bytes are supported for this key field',
    );
    expect(() => normalizeUser({ login: 'a', groups: { items: [{ variableName: over }] } }, source, 0)).toThrow(refusal('groups.items[0].variableName'));
    expect(() => normalizeUser({ login: 'a', accessPermissions: { items: [{ type: over, variableName: 'v' }] } }, source, 0)).toThrow(
      refusal('accessPermissions.items[0].type'),
    );
    expect(() => normalizeUser({ login: 'a', accessPermissions: { items: [{ type: 't', variableName: over }] } }, source, 0)).toThrow(
      refusal('accessPermissions.items[0].variableName'),
    );
  });

  it('refuses a blank login; digests null apart from empty text, and a relation not carried apart from an empty one (review EQ)', () => {
    // Mutant N28: a login of spaces was taken for a user.
    expect(() => normalizeUser({ login: '   ' }, source, 4)).toThrow('record 4 of http://site/users: field "login" is missing or not text (got "   ")');
    const hash = (record: Record<string, unknown>) => normalizeUser({ login: 'a', ...record }, source, 0).contentHash;
    // Mutant N21: null and "" read alike, so a value going from one to the other was an unchanged record, its row left as it was.
    expect(hash({ jobTitle: '' })).not.toBe(hash({ jobTitle: null }));
    // Mutant N22: groups not carried (the stored memberships stay) digested as an empty list, so a
    // later read emptying them matched the digest stored from the one that did not carry them.
    expect(hash({})).not.toBe(hash({ groups: { items: [] } }));
    expect(hash({})).not.toBe(hash({ accessPermissions: { items: [] } }));
  });

  it("stores the company's name from company.name, not its loginName (review EQ)", () => {
    // Mutant N29: the name read from company.loginName passed every test, integration users' company_name then held the company's login.
    const row = normalizeUser(
      { login: 'a', company: { loginName: 'acme', name: 'Acme Ltd' } },
      { ...source, companyLogin: 'acme', isIntegrationUser: true },
      0,
    );
    expect(row.companyName).toBe('Acme Ltd');
    expect(
      normalizeUser({ login: 'a', company: { loginName: 'acme' } }, { ...source, companyLogin: 'acme', isIntegrationUser: true }, 0).companyName,
    ).toBeNull();
  });

  it('keeps a date-time to the microsecond (Postgres stores microseconds), refuses finer digits rather than round them, reads ±hh offsets', () => {
    const lastLogin = (value: string) => column(normalizeUser({ login: 'jj', lastLogin: value }, source, 0), 'last_login');
    expect(lastLogin('2025-09-26T12:17:59.123456Z')).toBe('2025-09-26T12:17:59.123456Z');
    expect(lastLogin('2025-09-26T12:17:59.123456000Z')).toBe('2025-09-26T12:17:59.123456Z');
    expect(lastLogin('2025-09-26T14:17:59.000001+02:00')).toBe('2025-09-26T12:17:59.000001Z');
    // One text per instant: the millisecond form when there are no microseconds.
    expect(lastLogin('2025-09-26T12:17:59.123000Z')).toBe('2025-09-26T12:17:59.123Z');
    expect(lastLogin('2025-09-26T12:17:59.5Z')).toBe('2025-09-26T12:17:59.500Z');
    expect(lastLogin('2025-09-26T17:17:59+05')).toBe('2025-09-26T12:17:59.000Z');
    expect(() => lastLogin('2025-09-26T12:17:59.1234567Z')).toThrow(
      'field "lastLogin" has 7 digits of a second, finer than the microseconds Postgres stores; refused rather than rounded: "2025-09-26T12:17:59.1234567Z"',
    );
  });

  it("digests the parts of nested objects that no column holds, but not their links or a collection's paging", () => {
    const digest = (record: Record<string, unknown>) => normalizeUser({ login: 'jj', ...record }, source, 0).contentHash;
    const status = (extra: Record<string, unknown>) => digest({ status: { value: 1, displayValue: 'Active', ...extra } });
    expect(status({ reason: 'hired' })).not.toBe(status({ reason: 'rehired' }));
    expect(status({ reason: 'hired' })).not.toBe(status({}));
    expect(status({ links: [{ rel: 'self', href: 'https://a' }] })).toBe(status({}));
    const group = (extra: Record<string, unknown>, list: Record<string, unknown> = {}) =>
      digest({ groups: { items: [{ variableName: 'g1', label: 'G1', type: 'Sales', ...extra }], ...list } });
    expect(group({ expiresOn: '2025' })).not.toBe(group({ expiresOn: '2030' }));
    expect(group({}, { hasMore: false, count: 1, limit: 25, offset: 0, totalResults: 1, links: [] })).toBe(group({}));
    expect(digest({ company: { name: 'A', loginName: '_host', region: 'EU' } })).not.toBe(digest({ company: { name: 'A', loginName: '_host' } }));
  });

  it('digests extras as the rows keep them: of a group listed twice the copy that counts, and neither spelling, key order nor item order counts', () => {
    const digest = (record: Record<string, unknown>) => normalizeUser({ login: 'jj', ...record }, source, 0).contentHash;
    const groups = (...items: Record<string, unknown>[]) => digest({ groups: { items } });
    const g1 = (extra: Record<string, unknown>) => ({ variableName: 'g1', label: 'G1', type: 'Sales', ...extra });
    const g2 = { variableName: 'g2', label: 'G2', type: 'Sales', expiresOn: '2031' };
    // The row keeps the copy of g1 that counts (equal columns: the greater extras), and so does the digest, in either order.
    expect(groups(g1({ expiresOn: '2025' }), g1({ expiresOn: '2030' }))).toBe(groups(g1({ expiresOn: '2030' })));
    expect(groups(g1({ expiresOn: '2030' }), g1({ expiresOn: '2025' }))).toBe(groups(g1({ expiresOn: '2030' })));
    expect(groups(g1({ expiresOn: '2025' }), g1({}))).toBe(groups(g1({ expiresOn: '2025' })));
    expect(groups(g1({}), g1({ expiresOn: '2025' }))).toBe(groups(g1({ expiresOn: '2025' })));
    expect(groups(g1({ expiresOn: '2025' }), g2)).toBe(groups(g2, g1({ expiresOn: '2025' })));
    const permission = (type: string, variableName: string, extra: Record<string, unknown>) => ({ type, variableName, name: 'P', hasAccess: true, ...extra });
    const permissions = (...items: Record<string, unknown>[]) => digest({ accessPermissions: { items } });
    expect(permissions(permission('t', 'p', { scope: 1 }), permission('t', 'p', { scope: 2 }))).toBe(permissions(permission('t', 'p', { scope: 2 })));
    // Spelling and key order of the parts, as for mapped fields.
    const status = (extra: Record<string, unknown>) => digest({ status: { value: 1, displayValue: 'Active', ...extra } });
    expect(status({ Reason: 'hired' })).toBe(status({ reason: 'hired' }));
    expect(status({ reason: { code: 7, by: 'hr' } })).toBe(status({ reason: { by: 'hr', code: 7 } }));
    expect(status({ reason: { code: 7, by: 'hr' } })).not.toBe(status({ reason: { code: 8, by: 'hr' } }));
    // A custom field's object, likewise.
    expect(digest({ customTier: { level: 1, since: '2025' } })).toBe(digest({ customTier: { since: '2025', level: 1 } }));
    expect(digest({ customTier: [{ level: 1, since: '2025' }] })).not.toBe(digest({ customTier: [{ level: 2, since: '2025' }] }));
    // A top-level custom field that reads like a nested part is not that part.
    expect(digest({ 'status.reason': 'x' })).not.toBe(digest({ status: { reason: 'x' } }));
    // Paging names are paging only in a collection: a company's count is data.
    const company = (count: number) => digest({ company: { name: 'A', loginName: '_host', count } });
    expect(company(1)).not.toBe(company(2));
    expect(groups(g1({ count: 1 }))).not.toBe(groups(g1({ count: 2 })));
    expect(groups(g1({ links: [{ href: 'a' }] }))).toBe(groups(g1({})));
  });

  it('digests apart what reads alike only once written out: a value holding a separator, a value sent in another JSON form', () => {
    const digest = (record: Record<string, unknown>) => normalizeUser({ login: 'jj', ...record }, source, 0).contentHash;
    expect(digest({ firstName: 'Ann\u0001Marie', lastName: 'Smith' })).not.toBe(digest({ firstName: 'Ann', lastName: 'Marie\u0001Smith' }));
    expect(digest({ phone: null, fax: '\u0001' })).not.toBe(digest({ phone: '\u0002', fax: '' }));
    expect(digest({})).not.toBe(digest({ company: { loginName: '_host', name: 'null' } }));
    // Two spellings of one part in one object are both data, whatever their order.
    const status = (parts: Record<string, unknown>) => digest({ status: { value: 1, ...parts } });
    expect(status({ Reason: 'hired', reason: 'hired' })).not.toBe(status({ Reason: 'hired', reason: 'FIRED' }));
    expect(status({ Reason: 'hired', reason: 'FIRED' })).not.toBe(status({ Reason: 'FIRED', reason: 'hired' }));
    expect(status({ Reason: 'a', reason: 'b' })).toBe(status({ reason: 'b', Reason: 'a' }));
    // The same column values, but CPQ said them otherwise: raw changes, so the record did.
    for (const [a, b] of [
      [{ phone: 5551234 }, { phone: '5551234' }],
      [{ isNotifyEmail: true }, { isNotifyEmail: 'true' }],
      [{ status: { value: 1 } }, { status: { value: '1' } }],
      [{ partyId: '' }, { partyId: null }],
      [{ partyId: 12 }, { partyId: '12' }],
      [{ lastLogin: '2025-09-26T12:17:59.000Z' }, { lastLogin: '2025-09-26T14:17:59+02:00' }],
    ] as const) {
      expect(digest(a), JSON.stringify([a, b])).not.toBe(digest(b));
      expect(digest(a)).toBe(digest(structuredClone(a)));
    }
  });

  it('refuses a list CPQ says it sent in part (hasMore, or totalResults above its items): taken whole, the rest would be removed', () => {
    const g1 = { variableName: 'g1', label: 'G1', type: 'Sales' };
    expect(() => normalizeUser({ login: 'jj', groups: { items: [g1], hasMore: true, limit: 1 } }, source, 2)).toThrow(
      'user "_host/jj" (record 2 of http://site/users): field "groups.hasMore" is true: CPQ sent 1 items of a longer list; refused rather than take it for the whole list',
    );
    expect(() => normalizeUser({ login: 'jj', accessPermissions: { items: [], totalResults: 3 } }, source, 2)).toThrow(
      'field "accessPermissions.totalResults" is 3 but 0 items were sent; refused rather than take them for the whole list',
    );
    // hasMore or totalResults in two spellings that disagree: the one picked may say the list is whole (review CE).
    expect(() => normalizeUser({ login: 'jj', groups: { items: [g1], hasMore: false, HasMore: true } }, source, 2)).toThrow(
      'field "groups" says hasMore twice, differently ("hasMore" and "HasMore"); refused rather than take one',
    );
    expect(() => normalizeUser({ login: 'jj', accessPermissions: { items: [], totalResults: 0, TotalResults: 3 } }, source, 2)).toThrow(
      'field "accessPermissions" says totalResults twice, differently ("totalResults" and "TotalResults"); refused rather than take one',
    );
    // One short of its totalResults is in part too (review CA: n + 1 against n was never tried).
    const g2 = { variableName: 'g2', label: 'G2', type: 'Sales' };
    expect(() => normalizeUser({ login: 'jj', groups: { items: [g1, g2], totalResults: 3 } }, source, 2)).toThrow(
      'field "groups.totalResults" is 3 but 2 items were sent; refused rather than take them for the whole list',
    );
    // The whole list, however CPQ describes it, is read as before.
    const whole = normalizeUser({ login: 'jj', groups: { items: [g1], hasMore: false, totalResults: 1, count: 1 } }, source, 2);
    expect(whole.groups?.map((g) => g.variableName)).toEqual(['g1']);
  });

  it('refuses a list sent as one page of it: from an offset, with a count other than its items, full without hasMore false (review DC)', () => {
    const g = (n: number) => ({ variableName: `g${n}`, label: `G${n}`, type: 'Sales' });
    const read = (list: Record<string, unknown>) => () => normalizeUser({ login: 'jj', groups: list }, source, 2);
    const refused = 'refused rather than take it for the whole list';
    expect(read({ items: [g(3)], offset: 2, hasMore: false })).toThrow(
      `user "_host/jj" (record 2 of http://site/users): field "groups.offset" is 2: CPQ sent the list from its item 2 on (counting from 0); ${refused}`,
    );
    expect(read({ items: [g(1)], count: 2 })).toThrow('field "groups.count" is 2 but 1 items were sent; refused rather than take them for the whole list');
    expect(read({ items: [g(1), g(2)], count: 1 })).toThrow('field "groups.count" is 1 but 2 items were sent');
    const full = `field "groups.limit" is 2 and 2 items were sent, without hasMore false: a full page may be followed by more; ${refused}`;
    expect(read({ items: [g(1), g(2)], limit: 2, count: 2, offset: 0 })).toThrow(full);
    expect(read({ items: [g(1), g(2)], limit: 2 })).toThrow(full);
    expect(read({ items: [], Limit: 0 })).toThrow('field "groups.limit" is 0 and 0 items were sent');
    // In any case, as hasMore is; two spellings that disagree, or a form that is no count, are refused.
    expect(read({ items: [g(1)], OFFSET: 1 })).toThrow('field "groups.offset" is 1:');
    expect(read({ items: [g(1)], LIMIT: 1 })).toThrow('field "groups.limit" is 1 and 1 items were sent');
    expect(read({ items: [g(1)], count: 1, Count: 2 })).toThrow(
      'field "groups" says count twice, differently ("count" and "Count"); refused rather than take one',
    );
    expect(read({ items: [g(1)], offset: '1' })).toThrow('field "groups.offset" must be a count, got "1"');
    expect(read({ items: [g(1)], limit: -1 })).toThrow('field "groups.limit" must be a count, got -1');
    // The whole list: offset 0, count its items, a limit not reached, or reached with hasMore false; null says nothing.
    for (const list of [
      { items: [g(1), g(2)], offset: 0, count: 2, limit: 25 },
      { items: [g(1), g(2)], offset: 0, count: 2, limit: 2, hasMore: false },
      { items: [g(1), g(2)], Limit: 2, HasMore: 'false' },
      { items: [g(1), g(2)], offset: null, count: null, limit: null },
      { items: [g(1), g(2)], offset: parseExactJson('0E0'), count: parseExactJson('2.0') },
    ]) {
      expect(read(list)().groups?.map((r) => r.variableName)).toEqual(['g1', 'g2']);
    }
  });

  it('refuses a list with items in two spellings, reads a sole one in any case (review DC)', () => {
    const g = (n: number) => ({ variableName: `g${n}`, label: `G${n}`, type: 'Sales' });
    const p = (n: number) => ({ type: 't', variableName: `p${n}`, name: `P${n}`, hasAccess: true });
    expect(() => normalizeUser({ login: 'jj', groups: { items: [g(1)], Items: [g(2)] } }, source, 2)).toThrow(
      'user "_host/jj" (record 2 of http://site/users): field "groups" has items in 2 spellings ("items", "Items"); refused rather than take one',
    );
    // Whichever the picker would take, and whatever they hold: the same list twice, null beside a list.
    expect(() => normalizeUser({ login: 'jj', groups: { ITEMS: [g(2)], items: [g(1)], Items: [] } }, source, 2)).toThrow(
      'field "groups" has items in 3 spellings ("ITEMS", "items", "Items"); refused rather than take one',
    );
    expect(() => normalizeUser({ login: 'jj', accessPermissions: { Items: [p(1)], items: [p(1)] } }, source, 2)).toThrow(
      'field "accessPermissions" has items in 2 spellings ("Items", "items")',
    );
    expect(() => normalizeUser({ login: 'jj', groups: { items: null, Items: [g(1)] } }, source, 2)).toThrow('field "groups" has items in 2 spellings');
    // One spelling, in any case, is the list, as hasMore is read in any case.
    const row = normalizeUser({ login: 'jj', groups: { Items: [g(1), g(2)] }, accessPermissions: { ITEMS: [p(1)], HasMore: false } }, source, 2);
    expect(row.groups?.map((r) => r.variableName)).toEqual(['g1', 'g2']);
    expect(row.accessPermissions?.map((r) => r.variableName)).toEqual(['p1']);
    expect(row.contentHash).toBe(normalizeUser({ login: 'jj', groups: { items: [g(1), g(2)] }, accessPermissions: { items: [p(1)] } }, source, 2).contentHash);
  });

  it('keeps two permissions whose type and name run together alike (type "ab" name "c", type "a" name "bc")', () => {
    const row = normalizeUser(
      {
        login: 'jj',
        accessPermissions: {
          items: [
            { type: 'ab', variableName: 'c', name: 'One', hasAccess: true },
            { type: 'a', variableName: 'bc', name: 'Other', hasAccess: false },
          ],
        },
      },
      source,
      0,
    );
    expect(row.accessPermissions?.map((p) => [p.type, p.variableName, p.name]).sort()).toEqual([
      ['a', 'bc', 'Other'],
      ['ab', 'c', 'One'],
    ]);
  });
});

describe('exact JSON', () => {
  it('takes no negative number for a count: a totalResults of -1 (a common "unknown") says nothing, rather than enable deletions', () => {
    expect(countValue(-1)).toBeUndefined();
    expect(countValue(parseExactJson('-1'))).toBeUndefined();
    expect(countValue(0)).toBe(0);
    expect(countValue(parseExactJson('3E0'))).toBe(3);
  });

  it('keeps integers beyond 2^53 exact and leaves strings that look like them alone', () => {
    const text = '{"a":181556695830934950,"b":[-935719302534024740, 12],"s":"x\\" 181556695830934950","t":"9007199254740993","f":1.5,"safe":9007199254740991}';
    const { parseExactJson, stringifyExactJson, integerValue } = modules;
    const value = parseExactJson(text) as Record<string, unknown>;
    expect(integerValue(value.a)).toBe(181556695830934950n);
    expect(integerValue((value.b as unknown[])[0])).toBe(-935719302534024740n);
    expect(value.s).toBe('x" 181556695830934950');
    expect(value.t).toBe('9007199254740993');
    expect(value.safe).toBe(9007199254740991);
    expect(stringifyExactJson(value)).toBe(
      '{"a":181556695830934950,"b":[-935719302534024740,12],"s":"x\\" 181556695830934950","t":"9007199254740993","f":1.5,"safe":9007199254740991}',
    );
  });
});

describe('retry timing', () => {
  it('reads Retry-After in seconds and as an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(retryAfterMs('7', null, now)).toBe(7000);
    expect(retryAfterMs('Wed, 01 Jan 2025 00:00:30 GMT', null, now)).toBe(30_000);
    expect(retryAfterMs('garbage', null, now)).toBeUndefined();
    expect(retryAfterMs(null, null, now)).toBeUndefined();
  });

  it('reads only seconds and HTTP dates: any other Retry-After is no wait of its own (the backoff applies), and of two headers the longer is waited', () => {
    const now = Date.parse('2026-12-07T10:00:00Z');
    // Date.parse read these as dates long past (no wait: every retry at once) or, "-2030", far ahead.
    for (const value of ['-5', '1.5', '+5', '1 2 3', '-2030', '5s', '0x10', 'Mon, 07 Dec 2026 10:00:30', '2026-12-07T10:00:30Z'])
      expect(retryAfterMs(value, null, now), value).toBeUndefined();
    // Two Retry-After headers (a proxy's and CPQ's) reach fetch as one, joined by ", ".
    expect(retryAfterMs('5, 10', null, now)).toBe(10_000);
    expect(retryAfterMs('120,1', null, now)).toBe(120_000);
    expect(retryAfterMs(' 0 ', null, now)).toBe(0);
    expect(retryAfterMs('Mon, 07 Dec 2026 10:00:30 GMT, Mon, 07 Dec 2026 10:00:40 GMT', null, now)).toBeUndefined();
  });

  it("reads RFC 9110's two obsolete date forms too, as GMT, and no date that does not exist", () => {
    const now = Date.parse('2026-12-07T10:00:00Z');
    // RFC 850 (a two-digit year: more than 50 years ahead is the last such year past) and asctime.
    expect(retryAfterMs('Monday, 07-Dec-26 10:00:30 GMT', null, now)).toBe(30_000);
    expect(retryAfterMs('Mon Dec  7 10:00:30 2026', null, now)).toBe(30_000);
    expect(retryAfterMs('Mon Dec 17 10:00:30 2026', null, now)).toBe(10 * 86_400_000 + 30_000);
    // Counted from a Date header in either form.
    expect(retryAfterMs('Mon Dec  7 09:00:30 2026', 'Monday, 07-Dec-26 09:00:00 GMT', now)).toBe(30_000);
    const at = (header: string) => new Date(httpDate(header, now)!).toISOString();
    expect(at('Sunday, 06-Nov-94 08:49:37 GMT')).toBe('1994-11-06T08:49:37.000Z');
    expect(at('Friday, 06-Nov-76 08:49:37 GMT')).toBe('2076-11-06T08:49:37.000Z');
    expect(at('Sun, 06 Nov 1994 08:49:37 GMT')).toBe('1994-11-06T08:49:37.000Z');
    // Date.parse rolled these over (31 Feb to 3 March); 24:00, a lower-case name or a zone other than GMT is no HTTP date.
    for (const header of [
      'Sat, 31 Feb 2026 10:00:00 GMT',
      'Mon, 07 Dec 2026 24:00:00 GMT',
      'mon, 07 Dec 2026 10:00:00 GMT',
      'Mon, 07 Dec 2026 10:00:00 UTC',
      'Mon Feb 30 10:00:00 2026',
    ])
      expect(httpDate(header, now), header).toBeUndefined();
  });

  it("counts a Retry-After date from the response's own Date, the server's clock, when that is an HTTP date; else from ours", () => {
    const now = Date.parse('2025-01-01T01:00:00Z');
    // CPQ's clock an hour behind ours: 30 seconds by it, not none.
    expect(retryAfterMs('Wed, 01 Jan 2025 00:00:30 GMT', 'Wed, 01 Jan 2025 00:00:00 GMT', now)).toBe(30_000);
    // An hour ahead: 30 seconds, not an hour and 30 seconds.
    expect(retryAfterMs('Wed, 01 Jan 2025 02:00:30 GMT', 'Wed, 01 Jan 2025 02:00:00 GMT', now)).toBe(30_000);
    // A Date that is no HTTP date (or of a year before 1970) is no clock: ours counts.
    expect(retryAfterMs('Wed, 01 Jan 2025 01:00:30 GMT', 'yesterday', now)).toBe(30_000);
    expect(retryAfterMs('Wed, 01 Jan 2025 01:00:30 GMT', 'Thu, 01 Jan 0099 00:00:00 GMT', now)).toBe(30_000);
    // Seconds are seconds whatever the Date.
    expect(retryAfterMs('7', 'Wed, 01 Jan 2025 00:00:00 GMT', now)).toBe(7000);
  });

  it('backs off exponentially with jitter, up to the ceiling', () => {
    const policy = { maxRetries: 5, baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffMs(0, policy, () => 0)).toBe(50);
    expect(backoffMs(0, policy, () => 1)).toBe(100);
    expect(backoffMs(3, policy, () => 1)).toBe(800);
    expect(backoffMs(10, policy, () => 1)).toBe(1000);
  });

  it('a Retry-After date already past asks for no wait, not a negative one (review EK)', () => {
    expect(retryAfterMs('Wed, 01 Jan 2025 00:00:30 GMT', null, Date.parse('2025-01-01T00:01:00Z'))).toBe(0);
  });

  it('names a delay in the unit a person reads: ms below a second, s below two minutes, min below two hours, h up to a year (review EK)', () => {
    expect(describeDelay(999)).toBe('999ms');
    expect(describeDelay(1000)).toBe('1s');
    expect(describeDelay(59_999)).toBe('60s');
    expect(describeDelay(119_900)).toBe('119.9s');
    expect(describeDelay(120_000)).toBe('2min');
    expect(describeDelay(3_600_000)).toBe('60min');
    expect(describeDelay(2 * 3_600_000 - 60_000)).toBe('119min');
    expect(describeDelay(2 * 3_600_000)).toBe('2h');
    expect(describeDelay(365 * 86_400_000)).toBe('8760h');
    expect(describeDelay(365 * 86_400_000 + 1)).toBe('more than a year');
    // A Retry-After of hundreds of digits is Infinity once read.
    expect(describeDelay(Number(retryAfterMs('9'.repeat(400))))).toBe('more than a year');
  });
});

describe('choice fields read own keys only', () => {
  it('a polluted Object.prototype cannot supply a displayValue', () => {
    // Defence in depth behind the CSV parser's own refusal (test/security/cpq-prototype-pollution.test.ts).
    const proto = Object.prototype as Record<string, unknown>;
    proto.displayValue = 'Forged';
    try {
      const row = normalizeUser({ login: 'a', status: { value: 1 } }, { companyLogin: 'acme', isIntegrationUser: false, origin: 'test' }, 0);
      expect(row.values[USER_VALUE_COLUMNS.indexOf('status_display')]).toBeNull();
    } finally {
      delete proto.displayValue;
    }
  });
});

describe('a record nested thousands of levels deep', () => {
  it('loads or fails naming its field, at every depth and stack size: never a stack overflow named nowhere (reviews AA, BA)', () => {
    // In processes of their own, with stacks of several sizes: which of the walks overflows first
    // (raw's JSON.stringify, its check of what Postgres cannot store, the digest of unknown fields,
    // the sort of their keys) depends on the stack. Arrays, objects of one key, objects of two; a
    // plain innermost value, or one with a control character, which sends raw's check walking too.
    const script = join(mkdtempSync(join(tmpdir(), 'cpq-deep-')), 'deep.mjs');
    writeFileSync(
      script,
      `import { normalizeUser } from ${JSON.stringify(new URL('../dist/normalize/user-record.js', import.meta.url).href)};
      const shapes = [(inner) => [inner], (inner) => ({ a: inner }), (inner) => ({ b: inner, a: 0 })];
      const outcomes = {};
      for (const [s, wrap] of shapes.entries()) for (const leaf of ['x', 'x\\u0001']) for (let depth = 500; depth <= 12000; depth += 250) {
        let custom = leaf;
        for (let i = 0; i < depth; i++) custom = wrap(custom);
        let outcome;
        try {
          normalizeUser({ login: 'a', zz: custom }, { companyLogin: '_host', isIntegrationUser: false, origin: 'test' }, 0);
          outcome = 'loaded';
        } catch (err) {
          const named = err.name === 'RecordError' && err.message === 'user "_host/a" (record 0 of test): field "zz" is nested too deeply to be stored';
          outcome = named ? 'refused' : err.name + ': ' + err.message + ' (shape ' + s + ', depth ' + depth + ')';
        }
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      }
      console.log(JSON.stringify(outcomes));`,
    );
    for (const stackKb of [300, 500, 984]) {
      const child = spawnSync(process.execPath, [`--stack-size=${stackKb}`, script], { encoding: 'utf8' });
      expect(child.stderr, `stack ${stackKb}`).toBe('');
      const outcomes = JSON.parse(child.stdout) as Record<string, number>;
      // Both ends are reached, and nothing else: shallow records load, the deepest are refused.
      expect(Object.keys(outcomes).sort(), `stack ${stackKb}`).toEqual(['loaded', 'refused']);
    }
  });
});
