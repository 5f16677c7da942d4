import { parseExactRecord } from '../exact-json.js';

/** One record of a page as normalize takes it: the parsed value, and its own text when it can be stored as sent. */
export interface PageRecord {
  value: unknown;
  storedAsSent: string | undefined;
}

/**
 * The records of a page. A JSON page of users is kept as the text of each item, cut out as the
 * page arrived, and an item is parsed only when it is used: a thousand users parsed at once
 * outlive V8's young generation while the page is worked through (and the page read ahead of it
 * waits), so every one of them was copied and promoted, which cost a fifth of a first load's CPU
 * in garbage collection; parsed one at a time, each dies young. The JSON and JSON-lines entries of
 * a zip export are kept as texts the same way, as are every JSON collection page's (companies and
 * integration users too); only CSV entries come parsed.
 */
export class PageRecords {
  private constructor(
    /** How many records the page holds. */
    readonly length: number,
    private readonly read: (index: number) => PageRecord,
  ) {}

  /** Records already parsed, with the texts of those that can be stored as sent. */
  static parsed(values: readonly unknown[], texts?: readonly (string | undefined)[]): PageRecords {
    return new PageRecords(values.length, (index) => ({ value: values[index], storedAsSent: texts?.[index] }));
  }

  /**
   * Records as item texts, parsed when used by parseExactRecord; `invalid` turns an item that is
   * not valid JSON into the error the whole page would have given.
   */
  static unparsed(texts: readonly string[], invalid: (index: number, err: unknown) => never): PageRecords {
    return new PageRecords(texts.length, (index) => {
      try {
        return parseExactRecord(texts[index]!);
      } catch (err) {
        return invalid(index, err);
      }
    });
  }

  /** Records each read by `read` when used (a zip export's page mixes parsed CSV rows and JSON texts). */
  static of(length: number, read: (index: number) => PageRecord): PageRecords {
    return new PageRecords(length, read);
  }

  /** Record `index`; an unparsed one is parsed on each call, so take it once. */
  record(index: number): PageRecord {
    return this.read(index);
  }

  /** The value of record `index` (see record). */
  value(index: number): unknown {
    return this.read(index).value;
  }

  /** Every value, parsed: for small pages (companies, integration users). */
  values(): unknown[] {
    return Array.from({ length: this.length }, (_, i) => this.value(i));
  }
}
