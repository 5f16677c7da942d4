import { describe, expect, it } from 'vitest';
import { normalizeUser } from '../../src/normalize/user-record.js';
import { builtModule, runWithHeap } from '../helpers/small-heap.js';

/*
 * Review CW: the caches of field spellings (which canonical field a received key is, per
 * picker) live as long as the process, across runs in a `schedule` worker. They held every new
 * key up to 10,000 of them, whatever its length: a site sending records with new keys of a MiB
 * each (each record within every page and value bound) grew the heap until the process died.
 */
describe('field-name caches hold no key of any length', () => {
  it('100 records, each with new 1 MiB keys at the top, in a group and in a permission, are normalized within a 64 MB heap', async () => {
    // The built normalizer in a process of its own, whose heap the keys would exhaust if held.
    const script = `import { normalizeUser } from ${builtModule('normalize/user-record.js')};
      const source = { companyLogin: '_host', isIntegrationUser: false, origin: 'http://site/users' };
      const long = (tag, i) => tag + i + 'x'.repeat(1 << 20);
      let normalized = 0;
      for (let i = 0; i < 100; i++) {
        const record = {
          login: 'user' + i,
          [long('custom', i)]: i,
          groups: { items: [{ variableName: 'g', label: 'G', type: 'User', [long('group', i)]: i }] },
          accessPermissions: { items: [{ type: 'Company', variableName: 'p', name: 'P', hasAccess: true, [long('permission', i)]: i }] },
        };
        const row = normalizeUser(record, source, i);
        if (row.login === 'user' + i) normalized++;
      }
      console.log(normalized);`;
    expect((await runWithHeap(64, script)).trim()).toBe('100');
  });
});

/*
 * Review DD: a record's second spellings of a field (lost to the canonical one, kept in raw) were
 * each searched for among all the others: one record of 40,000 case variants of each of two
 * fields, within every size and value bound, took 31 s with the event loop blocked, and a 16 MiB
 * page of them four minutes. The spellings are now counted once.
 */
describe('a record of many second spellings costs time in proportion to them', () => {
  /** `count` spellings of `name` other than itself, each a different mix of upper and lower case. */
  function caseVariants(name: string, count: number): string[] {
    const out: string[] = [];
    for (let mask = 1; out.length < count; mask++)
      out.push(
        name
          .split('')
          .map((c, i) => ((mask >> i) & 1 ? c.toUpperCase() : c.toLowerCase()))
          .join(''),
      );
    return out.filter((v) => v !== name);
  }

  it('40,000 variants of each of two fields are normalized in well under two seconds of CPU (before: half a minute)', () => {
    const record: Record<string, unknown> = { login: 'u1', billStateProvince: 'IL', shipStateProvince: 'IL' };
    for (const key of [...caseVariants('billStateProvince', 40_000), ...caseVariants('shipStateProvince', 40_000)]) record[key] = 'x';
    const cpuBefore = process.cpuUsage();
    const row = normalizeUser(record, { companyLogin: '_host', isIntegrationUser: false, origin: 'http://site/users' }, 0);
    // CPU time, not wall time: other processes on a loaded machine (a CI beside review sessions)
    // stretched the wall time past the bound (2.1 s and 5.2 s seen), not the work. A bound some ten
    // times what it takes, and a tenth of what the search per key took.
    const cpu = process.cpuUsage(cpuBefore);
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(2000);
    expect(row.login).toBe('u1');
    expect(Object.keys(JSON.parse(row.raw) as object)).toHaveLength(Object.keys(record).length);
  });
});
