import { describe, expect, it } from 'vitest';
import { instantMicros } from '../src/date-time.js';
import { mergeBothFeeds } from '../src/normalize/feed-fields.js';

/*
 * The two feeds' dates compared as the normalizer stores them (review CO): a date-time without a
 * zone is UTC whatever the machine's TZ, microseconds count, `±hh` is an offset. A bare Date.parse
 * read the zoneless one in the machine's zone, so on a machine not set to UTC the same instant
 * written two ways was a "later edit", and the company feed won every field both send.
 */

function inZone<T>(tz: string, work: () => T): T {
  const saved = process.env.TZ;
  process.env.TZ = tz;
  try {
    return work();
  } finally {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  }
}

describe('instantMicros', () => {
  it('reads a date-time with no zone as UTC, an hours-only offset, and microseconds', () => {
    inZone('America/Chicago', () => {
      expect(instantMicros('2025-01-01T10:00:00')).toBe(instantMicros('2025-01-01T10:00:00.000Z'));
      expect(instantMicros('2025-01-01T12:00:00+02')).toBe(instantMicros('2025-01-01T10:00:00Z'));
      expect(instantMicros('2025-01-01T10:00:00.000001Z')! - instantMicros('2025-01-01T10:00:00Z')!).toBe(1);
      expect(instantMicros('not a date')).toBeUndefined();
    });
  });
});

describe('mergeBothFeeds', () => {
  it('the same instant, one feed writing Z and the other no zone, is no later edit in any TZ: the integration feed wins a field both send', () => {
    for (const tz of ['America/Chicago', 'Asia/Tokyo', 'UTC']) {
      inZone(tz, () => {
        const integration = { login: 'u', dateModified: '2025-01-01T10:00:00.000Z', isUserAdminPermEnabled: true };
        const company = { login: 'u', dateModified: '2025-01-01T10:00:00', isUserAdminPermEnabled: false };
        expect(mergeBothFeeds(integration, company).isUserAdminPermEnabled, tz).toBe(true);
      });
    }
  });

  it('a company record modified a microsecond later wins it', () => {
    const integration = { login: 'u', dateModified: '2025-01-01T10:00:00.000000Z', isUserAdminPermEnabled: true };
    const company = { login: 'u', dateModified: '2025-01-01T10:00:00.000001Z', isUserAdminPermEnabled: false };
    expect(mergeBothFeeds(integration, company).isUserAdminPermEnabled).toBe(false);
  });
});

describe('mergeBothFeeds, a CSV company record (groups named only) and an integration record listing a group twice', () => {
  it('each group gets the label and type of the copy a user’s own list counts, whatever the order of the copies', () => {
    const company = {
      login: 'u',
      dateModified: '2025-01-02T00:00:00Z',
      groups: { items: [{ variableName: 'g1' }, { variableName: 'g2' }, { variableName: 'g3' }] },
    };
    const copies = [
      { variableName: 'g1', label: 'Alpha', type: 'sales' },
      { variableName: 'g1', label: 'Beta', type: 'sales' },
      { variableName: 'g2' },
      { variableName: 'g2', type: 'admin' },
      { variableName: 'g2', label: null, type: 'zeta' },
      // A number stands as the text it is stored as: 5 is "5", above "10".
      { variableName: 'g3', label: 5 },
      { variableName: 'g3', label: '10' },
    ];
    const merged = (items: object[]) => mergeBothFeeds({ login: 'u', dateModified: '2025-01-01T00:00:00Z', groups: { items } }, company).groups;
    const expected = {
      items: [
        { variableName: 'g1', label: 'Beta', type: 'sales' },
        { variableName: 'g2', label: null, type: 'zeta' },
        { variableName: 'g3', label: 5 },
      ],
    };
    expect(merged(copies)).toEqual(expected);
    expect(merged([...copies].reverse())).toEqual(expected);
  });
});

describe('mergeBothFeeds, a record that spells dateModified twice (review GV)', () => {
  it('compares the spelling the normalizer stores (dateModified), in either key order', () => {
    const integration = { login: 'u', dateModified: '2025-01-02T00:00:00Z', isUserAdminPermEnabled: true };
    const earlier = { dateModified: '2025-01-01T00:00:00Z' };
    const later = { DateModified: '2025-01-03T00:00:00Z' };
    const company = { login: 'u', isUserAdminPermEnabled: false };
    expect(mergeBothFeeds(integration, { ...later, ...company, ...earlier }).isUserAdminPermEnabled).toBe(true);
    expect(mergeBothFeeds(integration, { ...earlier, ...company, ...later }).isUserAdminPermEnabled).toBe(true);
  });

  it('describes the groups of the spelling the normalizer reads (groups), in either key order', () => {
    const integration = { login: 'u', dateModified: '2025-01-01T00:00:00Z', groups: { items: [{ variableName: 'g1', label: 'Alpha', type: 'sales' }] } };
    const read = { groups: { items: [{ variableName: 'g1' }] } };
    const lost = { Groups: { items: [{ variableName: 'g2' }] } };
    const company = { login: 'u', dateModified: '2025-01-02T00:00:00Z' };
    for (const record of [
      { ...lost, ...company, ...read },
      { ...read, ...company, ...lost },
    ]) {
      expect(mergeBothFeeds(integration, record).groups).toEqual({ items: [{ variableName: 'g1', label: 'Alpha', type: 'sales' }] });
    }
  });
});
