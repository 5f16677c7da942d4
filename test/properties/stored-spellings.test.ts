import fc from 'fast-check';
import { describe, expect } from 'vitest';
import { numberAsWritten, numberSignature, parseExactJson, stringifyExactJson } from '../../src/exact-json.js';
import { SPELLED_COLUMNS, withStoredSpellings } from '../../src/normalize/stored-spellings.js';
import { USER_VALUE_COLUMNS } from '../../src/normalize/user-fields.js';
import { RecordError, groupDescribed, normalizeUser, storedText, type UserRow } from '../../src/normalize/user-record.js';
import type { TestDatabase } from '../helpers/database.js';
import { it } from '../helpers/fixtures.js';
import { propertyTimeout, runs } from './arbitraries.js';
import { literal } from './json-texts.js';

/*
 * jsonb keeps a number's value, not its spelling; a text column keeps the spelling (1E2 stays
 * 1E2). A record re-read from raw gets each number's spelling back from the columns and
 * permission rows its first read stored (src/normalize/stored-spellings.ts), and then reads as
 * the first read did. Postgres is the judge of what jsonb gives back and of which literals it
 * writes out alike.
 */

const settings = runs(150, propertyTimeout(120_000));
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
/** The same number spelled otherwise (the point moved, a zero added, the sign of a zero), or a text that is no JSON number. */
function respell(text: string, how: number): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text)!;
  const [, sign = '', int = '', fraction = '', written = '0'] = m;
  const all = `${int}${fraction}`.replace(/^0+(?=\d)/, '');
  const exponent = Number(written) - fraction.length;
  const variants = [
    `${sign}${all}e${exponent}`,
    `${sign}0.${all}E${exponent + all.length}`,
    `${sign}${all}0e${exponent - 1}`,
    `${sign}${all}.0e${exponent}`,
    /^-?0(\.0+)?$/.test(text) ? text.replace(/^-?/, sign === '-' ? '' : '-') : `-${text.replace(/^-/, '')}`,
    `+${text}`,
    ` ${text}`,
    `0${text.replace(/^-/, '')}`,
  ];
  return variants[how % variants.length]!;
}

/**
 * `text` read, its raw through Postgres jsonb, re-read with its row's spellings put back (the group
 * rows as readStoredRecords gives them: a group the read describes with the label and type it
 * said, another with the site's, `site`, and every group so where `siteChanged`), and read again;
 * undefined when the first read refuses it.
 */
async function readTwice(db: TestDatabase, text: string, site: [string | null, string | null], siteChanged = false) {
  const source = { companyLogin: '_host', isIntegrationUser: true, origin: 'x' };
  let first: UserRow;
  try {
    first = normalizeUser(parseExactJson(text), source, 0);
  } catch (err) {
    if (err instanceof RecordError) return undefined;
    throw err;
  }
  const [stored] = await db.query<{ raw: string }>('SELECT $1::jsonb::text AS raw', [first.raw]);
  const texts = SPELLED_COLUMNS.map((c) =>
    c.column === 'company_name' ? first.companyName : (first.values[USER_VALUE_COLUMNS.indexOf(c.column)] as string | null),
  );
  const siteGroups = (first.groups ?? []).map((g) => (groupDescribed(first, g.variableName) && !siteChanged ? g : { ...g, label: site[0], type: site[1] }));
  const reread = withStoredSpellings(parseExactJson(stored!.raw) as Record<string, unknown>, {
    texts,
    permissions: first.accessPermissions ?? [],
    groups: siteGroups,
  });
  return { first, again: normalizeUser(reread, source, 0), siteGroups };
}

describe('the spelling of a number a text column stored', () => {
  it('numberAsWritten gives the text back exactly when Postgres numeric writes it out as the number jsonb holds', async ({ fileDatabase }) => {
    // `other` a JSON number (raw holds one); `text` the same number respelled, or another, or no JSON number at all.
    const pair = fc.tuple(literal, fc.nat(), fc.nat(), fc.option(literal, { nil: undefined })).map(([l, a, b, unrelated]) => {
      const other = respell(l, a);
      return [unrelated ?? respell(l, b), JSON_NUMBER.test(other) ? other : l] as const;
    });
    await fc.assert(
      fc.asyncProperty(pair, async ([text, other]) => {
        const [judged] = await fileDatabase.query<{ written: string; same: boolean }>(
          `SELECT $2::jsonb::text AS written,
                  CASE WHEN $1 ~ '^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$' THEN $1::numeric::text = $2::numeric::text ELSE false END AS same`,
          [text, other],
        );
        const back = numberAsWritten(text, judged!.written);
        expect(back !== undefined, `${text} against ${judged!.written}`).toBe(judged!.same);
        if (back !== undefined) expect(stringifyExactJson(back)).toBe(text);
      }),
      settings,
    );
  });

  // A permission part or a text field: a number in several spellings of one value, text that reads like one, plain text.
  const part = fc.constantFrom('1E2', '100', '"100"', '1.0E2', '100.0', '-0', '-0.0', '0', '"0"', '1.5e-3', '0.0015', '"a"', 'null');
  const item = fc.record({
    keys: fc.constantFrom(['type', 'variableName', 'name', 'hasAccess'], ['Type', 'VariableName', 'NAME', 'hasaccess']),
    type: fc.constantFrom('"productFamily"', '1E2', '100', '"100"'),
    variableName: part.filter((p) => p !== 'null'),
    // A long name too: the search for a copy listed twice was bounded by a budget a 24-character name used up (review GD).
    name: fc.oneof(part, fc.constant('"Quote approval for partner organizations"')),
    hasAccess: fc.constantFrom('true', 'false', 'null', '"true"'),
    extra: fc.constantFrom('', ',"note":1E2'),
  });
  // A group: its name never null; a label or type left out (a copy that does not describe the group) at times.
  const group = fc.record({
    keys: fc.constantFrom(['variableName', 'label', 'type'], ['VariableName', 'Label', 'TYPE']),
    variableName: part.filter((p) => p !== 'null'),
    label: fc.oneof(part, fc.constant(undefined), fc.constant('"Sales representatives of partner organizations"')),
    type: fc.oneof(part, fc.constant(undefined)),
    extra: fc.constantFrom('', ',"note":1E2', ',"note":"b"'),
  });
  /** The group a drawn item names: its name as cpq.user_groups stores it. */
  const groupName = (g: { variableName: string }) => storedText(parseExactJson(g.variableName))!;
  const record = fc.record({
    lastName: part,
    companyName: part,
    type: fc.tuple(fc.constantFrom('"Full"', '1E2', '-0'), part),
    items: fc.array(item, { maxLength: 5 }),
    // Copies of one group listed twice are frequent: names are drawn from a few spellings of few
    // numbers. Not a group listed twice whose name spells the number another group's name spells
    // (0 and -0, 100 and 1E2): which copy named which group is guessed there, and at times wrongly
    // (README, Tables).
    groups: fc.array(group, { maxLength: 5 }).filter((gs) => {
      const copies = new Map<string, number>();
      for (const name of gs.map(groupName)) copies.set(name, (copies.get(name) ?? 0) + 1);
      const spelling = (name: string) => numberSignature(name) ?? `text ${name}`;
      const spellings = new Map<string, number>();
      for (const name of copies.keys()) spellings.set(spelling(name), (spellings.get(spelling(name)) ?? 0) + 1);
      return [...copies].every(([name, count]) => count === 1 || spellings.get(spelling(name)) === 1);
    }),
    // The label and type cpq.groups holds of a group this read does not describe (the site's, from another user's record).
    siteGroup: fc.tuple(part, part),
    itemsKey: fc.constantFrom('items', 'Items'),
  });

  it('a record re-read from raw, its spellings put back from its stored row, reads as its first read did', async ({ fileDatabase }) => {
    await fc.assert(
      fc.asyncProperty(record, async ({ lastName, companyName, type, items, itemsKey, groups, siteGroup }) => {
        const permissions = items.map(
          (i) => `{"${i.keys[0]}":${i.type},"${i.keys[1]}":${i.variableName},"${i.keys[2]}":${i.name},"${i.keys[3]}":${i.hasAccess}${i.extra}}`,
        );
        const groupItems = groups.map((g) => {
          const said = [`"${g.keys[0]}":${g.variableName}`];
          if (g.label !== undefined) said.push(`"${g.keys[1]}":${g.label}`);
          if (g.type !== undefined) said.push(`"${g.keys[2]}":${g.type}`);
          return `{${said.join(',')}${g.extra}}`;
        });
        const text = `{"login":"u1","groups":{"${itemsKey}":[${groupItems.join(',')}]},"lastName":${lastName},"company":{"loginName":"_host","name":${companyName}},"type":{"value":${type[0]},"displayValue":${type[1]}},"accessPermissions":{"${itemsKey}":[${permissions.join(',')}]}}`;
        const site = siteGroup.map((p) => storedText(parseExactJson(p)) ?? null) as [string | null, string | null];
        const read = await readTwice(fileDatabase, text, site);
        if (read === undefined) return;
        const { first, again, siteGroups } = read;
        expect(again.values, text).toEqual(first.values);
        expect(again.companyName, text).toBe(first.companyName);
        expect(again.accessPermissions, text).toEqual(first.accessPermissions);
        // The groups, and what cpq.groups takes of each (a group a read describes: its label and type;
        // another: the site's, kept). Not the rows' labels alone: where two spellings of one number
        // name two groups of the same label and type, one described and one not, nothing stored
        // tells which copy named which, and the content digest may differ (a restated version).
        const said = (row: UserRow) =>
          (row.groups ?? []).map((g, at) => {
            const kept = groupDescribed(row, g.variableName) ? g : siteGroups[at]!;
            return { variableName: g.variableName, label: kept.label, type: kept.type };
          });
        expect(said(again), text).toEqual(said(first));
      }),
      settings,
    );
  });

  it('three permissions whose keys jsonb makes alike in pairs keep their three rows (greedy matching gave the first the row another alone fits)', async ({
    fileDatabase,
  }) => {
    // "100"/1E2, 1E2/"100" and 100/"100": jsonb gives "100"/100, 100/"100" and 100/"100".
    const permissions = ['{"type":"100","variableName":1E2', '{"type":1E2,"variableName":"100"', '{"type":100,"variableName":"100"'].map(
      (key) => `${key},"name":"n","hasAccess":true}`,
    );
    const read = await readTwice(fileDatabase, `{"login":"u1","accessPermissions":{"items":[${permissions.join(',')}]}}`, [null, null]);
    expect(read!.first.accessPermissions).toHaveLength(3);
    expect(read!.again.accessPermissions).toEqual(read!.first.accessPermissions);
  });

  it("where cpq.groups holds another user's label, the copy of a group that counted still counts (review GF: 1E2 was made to win over 9)", async ({
    fileDatabase,
  }) => {
    const read = await readTwice(fileDatabase, '{"login":"u1","groups":[{"variableName":"g","label":1E2},{"variableName":"g","label":9}]}', ['y', null], true);
    expect(read!.first.groups).toEqual([{ variableName: 'g', label: '9', type: null }]);
    expect(read!.again.groups).toEqual(read!.first.groups);
  });

  it('a copy labelled -0 still loses to one labelled -0.0 (review GF: -0 was spelled low as -0.00000E5, which sorts above -0.0)', async ({ fileDatabase }) => {
    const read = await readTwice(fileDatabase, '{"login":"u1","groups":[{"variableName":"g","label":-0},{"variableName":"g","label":-0.0,"type":1E2}]}', [
      null,
      null,
    ]);
    expect(read!.first.groups).toEqual([{ variableName: 'g', label: '-0.0', type: '1E2' }]);
    expect(read!.again.groups).toEqual(read!.first.groups);
  });
});
