import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JsonItemsParser, RepeatedPagingFieldError, TwoItemsError, cutCollectionBody } from '../../src/cpq/json-items.js';
import { parseExactJson, parseExactRecord } from '../../src/exact-json.js';
import { propertyTimeout, runs } from './arbitraries.js';
import { writeInChunks } from './chunks.js';
import { comparable, jsonText, space, stringLiteral } from './json-texts.js';

/*
 * A JSON page of users is cut into its items as it arrives (cutCollectionBody), each item parsed
 * when it is used, and an item's own text may become its raw. Whatever the page holds, the cut
 * page reads as the whole page parsed (or the page is handed back to be parsed whole, or refused
 * for a second items key, which JSON.parse would read as the page and drop the first); a page
 * JSON.parse refuses has an item that is refused (or hasMore said twice, differently, refused);
 * an item's text means exactly its parsed
 * value; cut into chunks anywhere, as a zip entry arrives, the items and texts are the same.
 */

// The shared settings: FC_NUM_RUNS, FC_SEED and FC_PATH (a failure's replay), a time limit that reports.
const settings = runs(200, propertyTimeout(120_000));

/** JSON.parse's verdict (duplicate keys allowed: the last one wins). */
function valid(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * A collection body: envelope members around one items array (or, sometimes, a second items key,
 * or a key spelled with escapes), with how many of its keys read "items".
 */
const pageWithItemsKeys = fc
  .tuple(
    fc.array(fc.tuple(space, jsonText, space), { maxLength: 5 }),
    fc.array(fc.tuple(fc.constantFrom('"links"', '"hasMore"', '"__proto__"', '"count"', '"it\\u0065ms"', '"items"'), jsonText), { maxLength: 3 }),
    fc.array(fc.tuple(stringLiteral, jsonText), { maxLength: 2 }),
    space,
  )
  .map(([items, named, other, ws]): [string, number, number] => {
    const members = [`"items":[${items.map((p) => p.join('')).join(',')}]`, ...[...named, ...other].map(([k, v]) => `${k}:${v}`)];
    const itemsKeys = 1 + [...named, ...other].filter(([k]) => JSON.parse(k) === 'items').length;
    // How many different things the page says hasMore is (a paging field said twice, differently, is refused).
    const hasMores = new Set(
      [...named, ...other]
        .filter(([k]) => (JSON.parse(k) as string).toLowerCase() === 'hasmore')
        .map(([, v]) => (valid(v) ? JSON.stringify(comparable(parseExactJson(v))) : v)),
    );
    return [`${ws}{${members.join(`,${ws}`)}}${ws}`, itemsKeys, hasMores.size];
  });
const page = pageWithItemsKeys.map(([text]) => text);

/** cutCollectionBody's answer, or why it refused the page: a second items key, a paging field said twice differently. */
function cut(text: string): ReturnType<typeof cutCollectionBody> | 'two items' | 'paging twice' {
  try {
    return cutCollectionBody(text);
  } catch (err) {
    if (err instanceof TwoItemsError) return 'two items';
    if (err instanceof RepeatedPagingFieldError) return 'paging twice';
    throw err;
  }
}

describe('a JSON page cut into its items', () => {
  it('reads as the whole page parsed, each item text meaning its item; an invalid page has an invalid item; a second items key is refused', () => {
    fc.assert(
      fc.property(pageWithItemsKeys, ([text, itemsKeys, hasMores]) => {
        const answer = cut(text);
        // JSON.parse would keep the last items array (or hasMore) and drop the other unseen.
        if (valid(text) && (itemsKeys > 1 || hasMores > 1)) expect(['two items', 'paging twice']).toContain(answer);
        if (answer === 'two items') expect(itemsKeys).toBeGreaterThan(1);
        if (answer === 'paging twice') expect(hasMores).toBeGreaterThan(1);
        if (answer === undefined || answer === 'two items' || answer === 'paging twice') return;
        const records = answer.itemTexts.map((itemText) => {
          try {
            return parseExactRecord(itemText);
          } catch {
            return 'invalid';
          }
        });
        if (!valid(text)) {
          expect(records).toContain('invalid');
          return;
        }
        const whole = parseExactJson(text) as Record<string, unknown>;
        const { items, ...envelope } = whole;
        expect(comparable(answer.envelope)).toEqual(comparable(envelope));
        expect(records.map((r) => (r === 'invalid' ? r : comparable(r.value)))).toEqual(comparable(items));
        for (const r of records)
          if (r !== 'invalid' && r.storedAsSent !== undefined) expect(comparable(parseExactJson(r.storedAsSent))).toEqual(comparable(r.value));
      }),
      settings,
    );
  });

  it('takes the fast path for every valid page with one plain "items" key', () => {
    fc.assert(
      fc.property(pageWithItemsKeys, ([text, , hasMores]) => {
        fc.pre(valid(text) && text.split('"items"').length === 2 && !text.includes('it\\u0065ms') && hasMores <= 1);
        expect(cutCollectionBody(text)).toBeDefined();
      }),
      settings,
    );
  });

  it('gives the same items and texts whatever the chunking', () => {
    const read = (text: string, cuts: number[]) => {
      const out: unknown[] = [];
      writeInChunks(new JsonItemsParser((record, where, storedAsSent) => out.push([comparable(record), where, storedAsSent])), text, cuts);
      return out;
    };
    fc.assert(
      fc.property(
        page.filter((text) => typeof cut(text) === 'object'),
        fc.array(fc.nat(), { maxLength: 6 }),
        (text, positions) => {
          const cuts = [...new Set(positions.map((p) => p % (text.length + 1)))].sort((a, b) => a - b);
          expect(read(text, cuts)).toEqual(read(text, []));
        },
      ),
      settings,
    );
  });
});
