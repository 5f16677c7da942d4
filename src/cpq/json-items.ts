import { MAX_BODY_VALUES, TooComplexError, parseExactJsonPart, parseExactRecord, shownName } from '../exact-json.js';
import { fieldNameKey } from './user-fields.js';
import { DEFAULT_RECORD_LIMIT, EntryContentError, notValidJson, type ItemTextSink, type RecordLimit, type RecordSink } from './zip-entry-kind.js';

/*
 * A `.json` entry of the zip export, read as a stream: either a collection body
 * `{"items": [...], ...}` or a bare array of users. A whole entry may be hundreds of MB, so it is
 * never held: this scanner walks the text chunk by chunk, checks the envelope's punctuation
 * itself, and cuts out the text of each item (and of each other envelope value). An item is then
 * parsed by parseExactRecord (which also hands over its text to be stored as sent), each other
 * envelope value by parseExactJsonPart under one bound shared by them all; or an item is handed
 * over as its text, to be parsed when used (the
 * `itemText` option), so numbers (int64 exactness), strings, duplicate keys and every other rule
 * are exactly those of a JSON response. String literals are skipped with indexOf, natively:
 * only punctuation is looked at one character at a time.
 *
 * A JSON page of users is such a collection body too: cutCollectionBody reads it with this
 * scanner, so that each user's own text becomes its raw.
 */

const enum State {
  /** Before the top-level value. */
  Root,
  /** After `{`: a key or `}`. */
  KeyOrEnd,
  /** After `,` in the envelope: a key. */
  Key,
  /** After a key: `:`. */
  Colon,
  /** After `:`: the key's value. */
  Value,
  /** After an envelope value: `,` or `}`. */
  CommaOrEnd,
  /** After the items `[`: an item or `]`. */
  ItemOrEnd,
  /** After `,` in the items: an item. */
  Item,
  /** After an item: `,` or `]`. */
  ItemCommaOrEnd,
  /** After the top-level value: whitespace only. */
  Done,
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const isWhitespace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** The text of one JSON value being cut out, possibly spanning chunks. */
interface Capture {
  target: 'key' | 'value' | 'item';
  /** Strings and containers end at their closing character; scalars at the next delimiter. */
  scalar: boolean;
  parts: string[];
  length: number;
  /** Where the capture starts in the current chunk. */
  start: number;
  depth: number;
  inString: boolean;
  escape: boolean;
}

function describeChar(c: number): string {
  return JSON.stringify(String.fromCharCode(c));
}

/** What else a parser hands over besides records. */
export interface ItemsParserOptions {
  /** Receives each envelope value of a collection body (not items), with its key. */
  envelope?: (key: string, value: unknown) => void;
  /** Receives each item as its text instead of parsed: the sink then gets no items. */
  itemText?: ItemTextSink;
}

export class JsonItemsParser {
  private state = State.Root;
  /** The top-level value is an object (a collection body), not an array of users. */
  envelope = false;
  private sawItems = false;
  /** What the values besides the items may still hold of one body's bound (MAX_BODY_VALUES). */
  private envelopeValuesLeft = MAX_BODY_VALUES;
  private key = '';
  private capture: Capture | undefined;
  private items = 0;
  private started = false;

  constructor(
    private readonly sink: RecordSink,
    private readonly limit: RecordLimit = DEFAULT_RECORD_LIMIT,
    private readonly options: ItemsParserOptions = {},
  ) {}

  write(chunk: string): void {
    let i = 0;
    if (!this.started && chunk.length > 0) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) i = 1; // a UTF-8 byte-order mark
    }
    const n = chunk.length;
    while (i < n) {
      const capture = this.capture;
      if (capture) {
        const end = this.scan(capture, chunk, i);
        if (end < 0) {
          capture.parts.push(chunk.slice(capture.start));
          capture.length += n - capture.start;
          capture.start = 0;
          this.checkSize(capture);
          return;
        }
        const text = capture.parts.length === 0 ? chunk.slice(capture.start, end) : capture.parts.join('') + chunk.slice(capture.start, end);
        capture.length += end - capture.start;
        this.checkSize(capture);
        this.capture = undefined;
        this.finish(capture.target, text);
        i = end;
        continue;
      }
      const c = chunk.charCodeAt(i);
      if (isWhitespace(c)) {
        i++;
        continue;
      }
      i = this.punctuation(c, i);
    }
  }

  end(): void {
    const capture = this.capture;
    if (capture?.scalar) {
      this.capture = undefined;
      this.finish(capture.target, capture.parts.join(''));
    }
    if (this.capture || this.state !== State.Done) {
      throw new EntryContentError(
        this.state === State.Root
          ? 'the entry is empty; expected a collection body {"items":[...]} or an array of users'
          : 'the JSON ends early (the entry is truncated)',
      );
    }
  }

  /** Handles one non-whitespace character outside any captured value; returns the next position. */
  private punctuation(c: number, i: number): number {
    switch (this.state) {
      case State.Root:
        if (c === LBRACKET) {
          this.state = State.ItemOrEnd;
          return i + 1;
        }
        if (c === LBRACE) {
          this.envelope = true;
          this.state = State.KeyOrEnd;
          return i + 1;
        }
        throw new EntryContentError(`expected a collection body {"items":[...]} or an array of users, found ${describeChar(c)}`);
      case State.KeyOrEnd:
      case State.Key:
        if (c === QUOTE) return this.startCapture('key', i);
        if (c === RBRACE && this.state === State.KeyOrEnd) return this.closeEnvelope(i);
        throw new EntryContentError(`expected a key in the collection body, found ${describeChar(c)}`);
      case State.Colon:
        if (c === COLON) {
          this.state = State.Value;
          return i + 1;
        }
        throw new EntryContentError(`expected ":" after the key "${this.key}", found ${describeChar(c)}`);
      case State.Value:
        if (this.key !== 'items') {
          // Read in one spelling only, an "Items" beside "items" would hold users never read
          // (and a full read would delete them), as a second paging field's spelling would end it.
          if (fieldNameKey(this.key) === 'items') throw new ItemsFormError(`the collection body has "${this.key}", another spelling of "items"`);
          return this.startCapture('value', i);
        }
        if (this.sawItems) throw new TwoItemsError();
        // Thrown, not left to a caller that reads the body whole: that keeps the last of two equal
        // keys, and a second "items" (or "hasMore") after this one would pass unseen (review DC).
        if (c !== LBRACKET) throw new ItemsFormError(`"items" in the collection body must be an array, got ${valueKind(c)}`);
        this.sawItems = true;
        this.state = State.ItemOrEnd;
        return i + 1;
      case State.CommaOrEnd:
        if (c === COMMA) {
          this.state = State.Key;
          return i + 1;
        }
        if (c === RBRACE) return this.closeEnvelope(i);
        throw new EntryContentError(`expected "," or "}" in the collection body, found ${describeChar(c)}`);
      case State.ItemOrEnd:
        if (c === RBRACKET) return this.closeItems(i);
        return this.startCapture('item', i);
      case State.Item:
        if (c === RBRACKET) throw new EntryContentError(`a "," before "]" after items[${this.items - 1}]`);
        return this.startCapture('item', i);
      case State.ItemCommaOrEnd:
        if (c === COMMA) {
          this.state = State.Item;
          return i + 1;
        }
        if (c === RBRACKET) return this.closeItems(i);
        throw new EntryContentError(`expected "," or "]" after items[${this.items - 1}], found ${describeChar(c)}`);
      case State.Done:
        throw new EntryContentError(`unexpected ${describeChar(c)} after the end of the JSON`);
    }
  }

  private startCapture(target: Capture['target'], i: number): number {
    this.capture = { target, scalar: false, parts: [], length: 0, start: i, depth: 0, inString: false, escape: false };
    return i;
  }

  private closeItems(i: number): number {
    this.state = this.envelope ? State.CommaOrEnd : State.Done;
    return i + 1;
  }

  private closeEnvelope(i: number): number {
    if (!this.sawItems) throw new EntryContentError('expected items[] in the collection body, got no items');
    this.state = State.Done;
    return i + 1;
  }

  /**
   * Advances a capture through `chunk` from `from`; returns the index just past the value's end,
   * or -1 when the value goes on in the next chunk.
   */
  private scan(capture: Capture, chunk: string, from: number): number {
    const n = chunk.length;
    let j = from;
    if (capture.length === 0 && j === capture.start && capture.depth === 0 && !capture.inString) {
      const first = chunk.charCodeAt(j);
      if (first !== QUOTE && first !== LBRACE && first !== LBRACKET) capture.scalar = true;
    }
    if (capture.scalar) {
      for (; j < n; j++) {
        const c = chunk.charCodeAt(j);
        if (c === COMMA || c === RBRACE || c === RBRACKET || isWhitespace(c)) return j;
      }
      return -1;
    }
    let { depth, inString, escape } = capture;
    while (j < n) {
      if (inString) {
        if (escape) {
          escape = false;
          if (++j >= n) break;
        }
        // The closing quote is the first one after an even run of backslashes (counted back
        // to `j` only: what stands before was read already).
        const from = j;
        let quote = chunk.indexOf('"', from);
        for (;;) {
          if (quote < 0) break;
          let k = quote - 1;
          while (k >= from && chunk.charCodeAt(k) === BACKSLASH) k--;
          if ((quote - 1 - k) % 2 === 0) break;
          quote = chunk.indexOf('"', quote + 1);
        }
        if (quote < 0) {
          // The string goes on in the next chunk: escaped there when this one ends in an odd run.
          let k = n - 1;
          while (k >= from && chunk.charCodeAt(k) === BACKSLASH) k--;
          escape = (n - 1 - k) % 2 === 1;
          break;
        }
        inString = false;
        j = quote + 1;
        if (depth === 0) return j;
        continue;
      }
      const c = chunk.charCodeAt(j);
      j++;
      if (c === QUOTE) inString = true;
      else if (c === LBRACE || c === LBRACKET) depth++;
      else if (c === RBRACE || c === RBRACKET) {
        depth--;
        if (depth <= 0) return j;
      }
    }
    capture.depth = depth;
    capture.inString = inString;
    capture.escape = escape;
    return -1;
  }

  private checkSize(capture: Capture) {
    if (capture.length > this.limit.chars) {
      const what = capture.target === 'item' ? `items[${this.items}]` : capture.target === 'key' ? 'a key of the collection body' : `"${this.key}"`;
      throw new EntryContentError(`${what} is larger than ${this.limit.name}; refused`);
    }
  }

  private finish(target: Capture['target'], text: string) {
    switch (target) {
      case 'key':
        try {
          this.key = JSON.parse(text) as string;
        } catch {
          throw new EntryContentError(`a key of the collection body is not a valid JSON string (${shownName(text)})`);
        }
        this.state = State.Colon;
        return;
      case 'value': {
        // The values besides the items share one body's bound, each key counted as one: each
        // given a bound of its own, 37 arrays of 149,000 empty objects (15.8 MB) held 336 MB (review DD).
        const { value, values } = this.parse(text, `"${this.key}" in the collection body`, (t) => parseExactJsonPart(t, this.envelopeValuesLeft));
        this.envelopeValuesLeft -= values + 1;
        if (this.envelopeValuesLeft < 0) throw notValidJson('the collection body besides its items', new TooComplexError(MAX_BODY_VALUES));
        this.options.envelope?.(this.key, value);
        this.state = State.CommaOrEnd;
        return;
      }
      case 'item': {
        const where = `items[${this.items}]`;
        this.items++;
        this.state = State.ItemCommaOrEnd;
        if (this.options.itemText) {
          this.options.itemText(text, where);
          return;
        }
        const record = this.parse(text, where, parseExactRecord);
        this.sink(record.value, where, record.storedAsSent);
      }
    }
  }

  private parse<T>(text: string, where: string, parse: (text: string) => T): T {
    try {
      return parse(text);
    } catch (err) {
      throw notValidJson(where, err);
    }
  }
}

/** What a JSON value starting with the character `c` is, for an error. */
function valueKind(c: number): string {
  if (c === LBRACE) return 'an object';
  if (c === QUOTE) return 'text';
  const first = String.fromCharCode(c);
  if (first === 'n') return 'null';
  if (first === 't' || first === 'f') return 'true or false';
  return /[-\d]/.test(first) ? 'a number' : describeChar(c);
}

/**
 * A collection body whose items are not one array under "items": refused as it is, since read
 * whole (as JSON.parse reads it) a repeated key would no longer show.
 */
export class ItemsFormError extends EntryContentError {}

/**
 * A collection body with two "items" keys: which is the page? JSON.parse would keep the last and
 * drop the users of the other unseen, so it is refused, on every path.
 */
export class TwoItemsError extends EntryContentError {
  constructor() {
    super('the collection body has two "items" keys');
  }
}

export type PagingField = 'hasMore' | 'totalResults' | 'offset' | 'count' | 'limit';
/** Paging fields by their names in lower case: read in any case, as every field name is. */
type PagingNames = Readonly<Record<string, PagingField>>;
/** The paging fields of a collection envelope. */
const PAGING_FIELDS: PagingNames = { hasmore: 'hasMore', totalresults: 'totalResults', offset: 'offset' };
/**
 * Those of a user's expanded groups or permissions, and what it says of its size (count, limit):
 * no next page of it is read, so each may tell that the list was sent in part (itemsOf).
 */
export const EXPANDED_LIST_PAGING: PagingNames = { ...PAGING_FIELDS, count: 'count', limit: 'limit' };

/**
 * A collection body saying a paging field twice, differently: in two spellings ("hasMore": false
 * beside "HasMore": true) or in one (JSON.parse keeps the last of two equal keys). Taking either
 * drops the other unread, and a page saying more follow could end the read, its users unread.
 */
export class RepeatedPagingFieldError extends EntryContentError {
  /** What was said twice, without naming where: `hasMore twice, differently ("hasMore" and "HasMore")`. */
  readonly said: string;
  constructor(name: PagingField, first: string, second: string) {
    const said = `${name} twice, differently ("${first}" and "${second}")`;
    super(`the collection body says ${said}`);
    this.said = said;
  }
}

/**
 * A collection envelope's paging fields (hasMore, totalResults, offset; `names` says which),
 * taken key by key as they come; RepeatedPagingFieldError for one said twice differently.
 */
export class PagingFields {
  // Made at the first paging key: a user's groups and permissions are read through `of` too, for
  // every user, and most say none.
  private said: Map<PagingField, { key: string; value: unknown }> | undefined;

  constructor(private readonly names: PagingNames = PAGING_FIELDS) {}

  /** Those of a body parsed whole (its equal keys already one, the last). */
  static of(body: Record<string, unknown>, names: PagingNames = PAGING_FIELDS): PagingFields {
    const fields = new PagingFields(names);
    for (const key of Object.keys(body)) fields.take(key, body[key]);
    return fields;
  }

  take(key: string, value: unknown): void {
    const lower = fieldNameKey(key);
    const name = Object.hasOwn(this.names, lower) ? this.names[lower] : undefined;
    if (name === undefined) return;
    this.said ??= new Map();
    const before = this.said.get(name);
    // Compared by their JSON text, and only when said again.
    if (before !== undefined && JSON.stringify(before.value) !== JSON.stringify(value)) throw new RepeatedPagingFieldError(name, before.key, key);
    this.said.set(name, { key, value });
  }

  /** The field's value as sent; undefined when the body does not say it. */
  get(name: PagingField): unknown {
    return this.said?.get(name)?.value;
  }
}

/**
 * A JSON page of users, `{"items":[...], "hasMore":..., ...}`, cut into the text of each item
 * (parsed later, one at a time: PageRecords), and its other values parsed as parseExactJson
 * would. Undefined for any other body (an array, bad JSON outside the items): the caller then
 * parses it whole, which reports it or reads it as it always did. Throws TwoItemsError,
 * RepeatedPagingFieldError and ItemsFormError.
 */
export function cutCollectionBody(text: string): { envelope: Record<string, unknown>; itemTexts: string[] } | undefined {
  // The parser skips a byte-order mark, as a zip entry may start with one; the decoder of an HTTP
  // body dropped one already, and JSON.parse refuses another.
  if (text.charCodeAt(0) === 0xfeff) return undefined;
  const itemTexts: string[] = [];
  const envelope: Record<string, unknown> = {};
  const paging = new PagingFields();
  const parser = new JsonItemsParser(
    () => undefined,
    { chars: Number.POSITIVE_INFINITY, name: 'the page' },
    {
      // As JSON.parse builds an object: every key an own property (a "__proto__" key too, never the
      // prototype), the last of two equal keys winning.
      envelope: (key, value) => {
        paging.take(key, value);
        Object.defineProperty(envelope, key, { value, writable: true, enumerable: true, configurable: true });
      },
      // Each item is held as its text until it is used, ~30 bytes of heap even when it is `{}`: 5.6
      // million of them (16 MiB, within the page cap) filled the image's 192 MB heap before the
      // page's count could be checked against the limit asked for (at most 1,000). A page holds
      // at most as many items as a body read whole holds values.
      itemText: (itemText) => {
        if (itemTexts.length === MAX_BODY_VALUES) throw new ItemsFormError(`the collection body holds more than ${MAX_BODY_VALUES} items`);
        itemTexts.push(itemText);
      },
    },
  );
  try {
    parser.write(text);
    parser.end();
  } catch (err) {
    if (err instanceof TwoItemsError || err instanceof RepeatedPagingFieldError || err instanceof ItemsFormError) throw err;
    return undefined;
  }
  return parser.envelope ? { envelope, itemTexts } : undefined;
}
