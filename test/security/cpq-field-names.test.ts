import { describe, expect, it } from 'vitest';
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
