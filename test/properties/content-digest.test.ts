import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { numericOverflow, parseExactJson } from '../../src/exact-json.js';
import { normalizeUser } from '../../src/normalize/user-record.js';
import { RawJson } from '../../src/simulator/index.js';
import { type Json, anyJson, anyText, num, numberLiteral, propertyTimeout, runs, wireText } from './arbitraries.js';

/*
 * The content digest says whether a user changed: the same content restated (keys in another
 * order at any depth, the parts of nested objects under another case, groups and permissions in
 * another order, an item listed twice in another order) must give the same digest, or every run
 * rewrites the user and writes a version; a changed part must give another.
 */

const source = { companyLogin: '_host', isIntegrationUser: false, origin: 'http://site/users' };

/** Parts no column holds, under names none of the nested objects maps (count and hasMore are paging only in a collection). */
const extras = fc.dictionary(fc.constantFrom('reason', 'expiresOn', 'scope', 'region', 'count', 'hasMore'), anyJson, { maxKeys: 3 });
type Extras = Record<string, Json>;

interface Item {
  key: string;
  parts: Record<string, Json>;
  extras: Extras;
}
const group = fc
  .record({ key: fc.constantFrom('g1', 'g2', 'G1', 'g3'), label: anyText, extras })
  .map(({ key, label, extras }): Item => ({ key, parts: { variableName: key, label, type: 'Sales' }, extras }));
const permission = fc
  .record({ type: fc.constantFrom('productFamily', 'a/b'), variableName: fc.constantFrom('laptops', 'b/c', 'c'), hasAccess: fc.boolean(), extras })
  .map(({ type, variableName, hasAccess, extras }): Item => ({ key: JSON.stringify([type, variableName]), parts: { type, variableName, hasAccess }, extras }));

/** A list as sent: earlier copies of some items (of a group's or a permission's copies, one counts whatever their order), then the last copy of each. */
const itemList = (item: fc.Arbitrary<Item>) =>
  fc.record({ last: fc.uniqueArray(item, { selector: (i) => i.key, maxLength: 3 }), earlier: fc.array(item, { maxLength: 2 }) }).map(({ last, earlier }) => ({
    last,
    earlier: earlier.filter((e) => last.some((l) => l.key === e.key)),
  }));

const userContent = fc.record({
  status: fc.option(extras),
  company: fc.option(extras),
  groups: itemList(group),
  permissions: itemList(permission),
  custom: fc.dictionary(fc.constantFrom('customTier', 'customTags', 'region_c'), anyJson, { maxKeys: 2 }),
  restate: fc.record({ seed: fc.integer() }),
});
type UserContent = typeof userContent extends fc.Arbitrary<infer T> ? T : never;

/** A small seeded generator (mulberry32) for the restatement's shuffles and case flips. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function shuffled<T>(items: readonly T[], next: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
/** Every object's keys in another order, at every depth (arrays keep theirs: their order is data). */
function shuffleKeys(value: Json, next: () => number): Json {
  if (value === null || typeof value !== 'object' || value instanceof RawJson) return value;
  if (Array.isArray(value)) return value.map((v) => shuffleKeys(v, next));
  const out: Record<string, Json> = {};
  for (const key of shuffled(Object.keys(value), next)) Object.defineProperty(out, key, { value: shuffleKeys(value[key]!, next), enumerable: true });
  return out;
}
const flipCase = (key: string, next: () => number) => (next() < 0.5 ? key : key.toUpperCase());
const withExtras = (parts: Record<string, Json>, more: Extras, next?: () => number): Record<string, Json> =>
  Object.fromEntries([...Object.entries(parts), ...Object.entries(more).map(([k, v]) => [next ? flipCase(k, next) : k, v])]) as Record<string, Json>;

/** The user as CPQ sends it; with `restate`, the same content said another way. */
function record(c: UserContent, restate: boolean): Json {
  const next = restate ? random(c.restate.seed) : undefined;
  // Of a group's or a permission's copies one counts whatever their order (a group's last copy
  // counted until review DC), so a restatement sends the same copies in any order.
  const list = (l: { last: Item[]; earlier: Item[] }) => {
    const items = restate ? shuffled([...l.earlier, ...l.last], next!) : [...l.earlier, ...l.last];
    return { items: items.map((i) => withExtras(i.parts, i.extras, next)) };
  };
  const user: Record<string, Json> = {
    login: 'jj',
    groups: list(c.groups),
    accessPermissions: list(c.permissions),
    ...c.custom,
  };
  if (c.status) user.status = withExtras({ value: num('1'), displayValue: 'Active' }, c.status, next);
  if (c.company) user.company = withExtras({ name: 'Host', loginName: '_host' }, c.company, next);
  return next ? shuffleKeys(user, next) : user;
}

/** The normalized row as sent over the wire and parsed as the sync parses it, or the refusal's message. */
function normalized(user: Json) {
  try {
    return normalizeUser(parseExactJson(wireText(user)), source, 0);
  } catch (error) {
    return { refused: (error as Error).message };
  }
}

describe('content digest', () => {
  it('is the same for the same content restated, and the rows are too (property)', () => {
    fc.assert(
      fc.property(userContent, (c) => {
        const [sent, restated] = [normalized(record(c, false)), normalized(record(c, true))];
        if ('refused' in sent) {
          expect(restated).toHaveProperty('refused');
          return;
        }
        expect(restated).not.toHaveProperty('refused');
        const again = restated as typeof sent;
        expect({ hash: again.contentHash, groups: again.groups, permissions: again.accessPermissions, values: again.values }).toEqual({
          hash: sent.contentHash,
          groups: sent.groups,
          permissions: sent.accessPermissions,
          values: sent.values,
        });
      }),
      runs(300, propertyTimeout(120_000)),
    );
  });

  it('differs when one part no column holds changed, in a status, a company, a group or a permission listed once (property)', () => {
    fc.assert(
      fc.property(userContent, fc.constantFrom('status', 'company', 'groups', 'accessPermissions'), (c, where) => {
        const changed = record(c, false) as Record<string, Json>;
        const list = where === 'groups' ? c.groups : where === 'accessPermissions' ? c.permissions : undefined;
        // The object changed: the status or company, else the last copy of the list's first item.
        const target = (list ? (changed[where] as { items: Json[] }).items[list.earlier.length] : changed[where]) as Record<string, Json> | undefined | null;
        const key = (list ? list.last[0]?.extras : where === 'status' ? c.status : c.company) ?? {};
        const extra = Object.keys(key)[0];
        fc.pre(target !== undefined && target !== null && extra !== undefined);
        // Of a group's or permission's copies the one that counts is not always the last (the next property and the restatements cover them).
        if (list) fc.pre(!list.earlier.some((e) => e.key === list.last[0]!.key));
        target[extra] = { was: target[extra]! };
        const [before, after] = [normalized(record(c, false)), normalized(changed)];
        fc.pre(!('refused' in before) && !('refused' in after));
        expect((after as { contentHash: string }).contentHash).not.toBe((before as { contentHash: string }).contentHash);
      }),
      runs(200, propertyTimeout(120_000)),
    );
  });

  // Review HN: a number a double cannot spell back is parsed into its literal, a string: as text it
  // was digested as that string, so the same text sent as a string and as such a number was one
  // record, and raw kept the form read first.
  it('counts the JSON form of a text: any number literal against the same text in a string, in a field, a status, a company, a group or a permission (property)', () => {
    fc.assert(
      fc.property(
        userContent,
        fc.constantFrom('phone', 'status', 'company', 'groups', 'accessPermissions'),
        numberLiteral.filter((l) => numericOverflow(l) === undefined),
        (c, where, literal) => {
          const list = where === 'groups' ? c.groups : where === 'accessPermissions' ? c.permissions : undefined;
          if (list) fc.pre(list.last.length > 0 && !list.earlier.some((e) => e.key === list.last[0]!.key));
          /** The user with the text at `where`: a field, a status's displayValue, a company's name, the label or name of the list's first item. */
          const sent = (value: Json) => {
            const user = record(c, false) as Record<string, Json>;
            if (where === 'phone') user.phone = value;
            else if (where === 'status') user.status = { value: num('1'), displayValue: value };
            else if (where === 'company') user.company = { name: value, loginName: '_host' };
            else (user[where] as { items: Record<string, Json>[] }).items[list!.earlier.length]![where === 'groups' ? 'label' : 'name'] = value;
            return normalized(user);
          };
          const [asText, asNumber] = [sent(literal), sent(num(literal))];
          fc.pre(!('refused' in asText));
          const rows = (r: ReturnType<typeof normalized>) => ('refused' in r ? r : { groups: r.groups, permissions: r.accessPermissions, values: r.values });
          // The same rows, another record: raw must be rewritten.
          expect(rows(asNumber)).toEqual(rows(asText));
          expect((asNumber as { contentHash: string }).contentHash, literal).not.toBe((asText as { contentHash: string }).contentHash);
        },
      ),
      runs(300, propertyTimeout(120_000)),
    );
  });

  it('counts the JSON form of a group\'s or permission\'s part (123 for "123", "true" for true), of its copies whatever their order (property)', () => {
    fc.assert(
      fc.property(userContent, fc.constantFrom('groups', 'accessPermissions'), (c, where) => {
        const list = where === 'groups' ? c.groups : c.permissions;
        fc.pre(list.last.length > 0);
        // A form counts in the copy that counts: here its only one (the copies made below aside).
        fc.pre(!list.earlier.some((e) => e.key === list.last[0]!.key));
        const [part, own, other]: [string, Json, Json] = where === 'groups' ? ['label', '123', num('123')] : ['hasAccess', true, 'true'];
        /** The user with the last copy of the list's first item holding `value`, and an earlier copy holding `earlier` before all. */
        const sent = (value: Json, earlier?: Json) => {
          const user = record(c, false) as Record<string, Json>;
          const items = (user[where] as { items: Record<string, Json>[] }).items;
          const last = items[list.earlier.length]!;
          last[part] = value;
          if (earlier !== undefined) items.unshift({ ...last, [part]: earlier });
          return normalized(user);
        };
        const [base, otherForm, earlierOtherForm] = [sent(own), sent(other), sent(own, other)];
        fc.pre(!('refused' in base));
        const rows = (r: ReturnType<typeof normalized>) => ('refused' in r ? r : { groups: r.groups, permissions: r.accessPermissions });
        // The same rows, another record: raw must be rewritten.
        expect(rows(otherForm)).toEqual(rows(base));
        expect((otherForm as { contentHash: string }).contentHash).not.toBe((base as { contentHash: string }).contentHash);
        // Of two copies equal but for a form, the same one counts whatever their order (a group's last one did until review DC).
        expect((sent(other, own) as { contentHash: string }).contentHash).toBe((earlierOtherForm as { contentHash: string }).contentHash);
      }),
      runs(200, propertyTimeout(120_000)),
    );
  });
});
