import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CsvRowsParser } from '../src/cpq/csv-rows.js';
import { JsonItemsParser } from '../src/cpq/json-items.js';
import { JsonLinesParser } from '../src/cpq/json-lines.js';
import { parseExactJson, stringifyExactJson } from '../src/exact-json.js';
import { EntryContentError, MAX_RECORD_CHARS, entryKind } from '../src/cpq/zip-entry-kind.js';
import { ExportColumnsError, exportColumns } from '../src/cpq/export-columns.js';
import { normalizeUser } from '../src/normalize/user-record.js';
import { USER_VALUE_COLUMNS } from '../src/normalize/user-fields.js';

interface Parser {
  write(text: string): void;
  end(): void;
}

/** Feeds `text` cut at the given positions, the way chunks of a stream arrive. */
function feed(parser: Parser, text: string, cuts: number[] = []) {
  let at = 0;
  for (const cut of [...cuts, text.length]) {
    parser.write(text.slice(at, cut));
    at = cut;
  }
  parser.end();
}

function jsonItems(text: string, cuts?: number[]): { record: unknown; where: string }[] {
  const out: { record: unknown; where: string }[] = [];
  feed(new JsonItemsParser((record, where) => out.push({ record, where })), text, cuts);
  return out;
}

function jsonLines(text: string, cuts?: number[]): { record: unknown; where: string }[] {
  const out: { record: unknown; where: string }[] = [];
  feed(new JsonLinesParser((record, where) => out.push({ record, where })), text, cuts);
  return out;
}

function csvRows(text: string, cuts?: number[]): { cells: string[]; line: number }[] {
  const out: { cells: string[]; line: number }[] = [];
  feed(new CsvRowsParser((cells, line) => out.push({ cells, line })), text, cuts);
  return out;
}

const exact = (value: unknown) => stringifyExactJson(value);

describe('entry kinds', () => {
  it('reads users from .json, .jsonl, .ndjson and .csv (any case, in folders); skips folders and macOS metadata; nothing else', () => {
    expect(entryKind('users.json')).toEqual({ kind: 'users', format: 'json' });
    expect(entryKind('export/Users.JSONL')).toEqual({ kind: 'users', format: 'jsonl' });
    expect(entryKind('a/b/users.ndjson')).toEqual({ kind: 'users', format: 'jsonl' });
    expect(entryKind('usuarios-ñ.csv')).toEqual({ kind: 'users', format: 'csv' });
    expect(entryKind('export/')).toEqual({ kind: 'skip', why: 'directory' });
    expect(entryKind('__MACOSX/._users.json')).toEqual({ kind: 'skip', why: 'macOS metadata' });
    expect(entryKind('export/.DS_Store')).toEqual({ kind: 'skip', why: 'macOS metadata' });
    for (const name of ['users.xml', 'readme.txt', 'users', '.json', 'users.json.gz', 'users.csv/x']) {
      expect(entryKind(name), name).toEqual({ kind: 'unknown' });
    }
  });
});

describe('crc32', () => {
  it('matches the known check value, and continues across chunks (zlib.crc32, which the zip reader uses)', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    const data = Buffer.from('a'.repeat(1000) + 'é'.repeat(333));
    expect(crc32(data.subarray(500), crc32(data.subarray(0, 500)))).toBe(crc32(data));
  });
});

describe('.json entries', () => {
  const body =
    '\uFEFF{"links":[{"rel":"self","href":"x]}"}],"items":[ {"login":"a","partyId":181556695830934950,"n":{"x":[1,2,{"y":"}]\\""}]}},\n' +
    '{"login":"b\\u00e9","id":3024590297, "f":1.5e3}\n],"count":2,"hasMore":false,"nested":{"items":[1]}}  \n';

  it('streams the items of a collection body, keeping every number literal exact, whatever the chunking', () => {
    const whole = jsonItems(body);
    expect(whole.map((r) => r.where)).toEqual(['items[0]', 'items[1]']);
    const first = whole[0]!.record as Record<string, unknown>;
    expect(exact(first.partyId)).toBe('181556695830934950');
    expect(first.n).toEqual({ x: [1, 2, { y: '}]"' }] });
    expect(exact(whole[1]!.record)).toBe('{"login":"bé","id":3024590297,"f":1.5e3}');
    // Every single cut, and cuts at every character: the same records.
    for (let cut = 1; cut < body.length; cut++) expect(jsonItems(body, [cut]).map((r) => exact(r.record))).toEqual(whole.map((r) => exact(r.record)));
    const everyChar = Array.from({ length: body.length - 1 }, (_, i) => i + 1);
    expect(jsonItems(body, everyChar).map((r) => exact(r.record))).toEqual(whole.map((r) => exact(r.record)));
  });

  it('streams a bare array of users, and an empty one', () => {
    expect(jsonItems('[{"login":"a"},{"login":"b"}]').map((r) => r.record)).toEqual([{ login: 'a' }, { login: 'b' }]);
    expect(jsonItems(' [ ] ')).toEqual([]);
    expect(jsonItems('{"items":[]}')).toEqual([]);
  });

  it('parses each item exactly as the JSON path does (same parser: duplicate keys, escapes, int64)', () => {
    const item = '{"login":"a","login":"b","s":"\\u00e9\\n","big":9007199254740993,"neg":-9223372036854775808,"f":1.25}';
    expect(exact(jsonItems(`[${item}]`)[0]!.record)).toBe(exact(parseExactJson(item)));
    expect(exact(jsonItems(`[${item}]`)[0]!.record)).toContain('"big":9007199254740993');
  });

  it('hands non-object items on, for the caller to name', () => {
    expect(jsonItems('[1,"x",null,[2]]').map((r) => r.record)).toEqual([1, 'x', null, [2]]);
  });

  it.each([
    ['', /the entry is empty/],
    ['   ', /the entry is empty/],
    ['"users"', /expected a collection body .* or an array of users, found "\\""/],
    ['{"count":1}', /expected items\[\] in the collection body, got no items/],
    ['{"items":{}}', /"items" in the collection body must be an array/],
    ['{"items":[],"items":[]}', /two "items" keys/],
    ['{"items":[{"login":"a"}', /the JSON ends early/],
    ['{"items":[{"login":"a"}]', /the JSON ends early/],
    ['[{"login":"a"}', /the JSON ends early/],
    ['[{"login":"a"},]', /a "," before "\]" after items\[0\]/],
    ['[{"login":"a"} {"login":"b"}]', /expected "," or "\]" after items\[0\], found "\{"/],
    ['[{"login":"a"}] x', /unexpected "x" after the end of the JSON/],
    ['[{"login":"a",}]', /items\[0\] is not valid JSON/],
    ['[tru]', /items\[0\] is not valid JSON/],
    ['{"count":1x,"items":[]}', /"count" in the collection body is not valid JSON/],
    ['{items:[]}', /expected a key in the collection body/],
    ['{"items" []}', /expected ":" after the key "items"/],
  ])('refuses %j naming the problem', (text, message) => {
    expect(() => jsonItems(text)).toThrow(EntryContentError);
    expect(() => jsonItems(text)).toThrow(message);
  });

  it('refuses a single item larger than the record bound instead of buffering it', () => {
    const parser = new JsonItemsParser(() => undefined);
    parser.write('[{"login":"a","pad":"');
    const block = 'x'.repeat(1024 * 1024);
    expect(() => {
      for (let i = 0; i <= MAX_RECORD_CHARS / block.length; i++) parser.write(block);
    }).toThrow(/items\[0\] is larger than 16 MiB/);
  });
});

describe('.jsonl entries', () => {
  it('reads one user per line: CRLF, blank lines, a missing last newline, int64, any chunking', () => {
    const text = '\uFEFF{"login":"a","partyId":935719302534024740}\r\n\n  \r\n{"login":"b"}\n{"login":"c"}';
    const whole = jsonLines(text);
    expect(whole.map((r) => r.where)).toEqual(['line 1', 'line 4', 'line 5']);
    expect(exact(whole[0]!.record)).toBe('{"login":"a","partyId":935719302534024740}');
    for (let cut = 1; cut < text.length; cut++) expect(jsonLines(text, [cut]).map((r) => exact(r.record))).toEqual(whole.map((r) => exact(r.record)));
  });

  it('names the line that is not JSON', () => {
    expect(() => jsonLines('{"login":"a"}\n{"login":\n')).toThrow(/^line 2 is not valid JSON/);
  });
});

describe('CSV rows', () => {
  it('reads RFC 4180: quotes, doubled quotes, commas and line breaks in fields, CRLF/LF/CR, BOM, blank lines', () => {
    const text = '\uFEFFlogin,note,groups\r\na,"x, ""y""",g1;g2\r\n\r\nb,"two\nlines",\nc,,\r"d",plain,""\r\nlast,"",no newline';
    expect(csvRows(text)).toEqual([
      { cells: ['login', 'note', 'groups'], line: 1 },
      { cells: ['a', 'x, "y"', 'g1;g2'], line: 2 },
      { cells: ['b', 'two\nlines', ''], line: 4 },
      { cells: ['c', '', ''], line: 6 },
      { cells: ['d', 'plain', ''], line: 7 },
      { cells: ['last', '', 'no newline'], line: 8 },
    ]);
  });

  it('gives the same rows whatever the chunking', () => {
    const text = 'login,note\r\na,"x, ""y"""\r\nb,"two\r\nlines"\nc,\rd,e\r\n';
    const whole = csvRows(text);
    expect(whole.map((r) => r.cells)).toEqual([
      ['login', 'note'],
      ['a', 'x, "y"'],
      ['b', 'two\r\nlines'],
      ['c', ''],
      ['d', 'e'],
    ]);
    expect(whole.map((r) => r.line)).toEqual([1, 2, 3, 5, 6]);
    for (let cut = 1; cut < text.length; cut++) expect(csvRows(text, [cut]), `cut at ${cut}`).toEqual(whole);
    const everyChar = Array.from({ length: text.length - 1 }, (_, i) => i + 1);
    expect(csvRows(text, everyChar)).toEqual(whole);
  });

  it('refuses a row beyond the record bound, be it one open quote or a million empty fields', () => {
    const block = ','.repeat(1024 * 1024);
    for (const start of ['login\n"', 'login\n']) {
      const parser = new CsvRowsParser(() => undefined);
      parser.write(start);
      expect(() => {
        for (let i = 0; i <= MAX_RECORD_CHARS / block.length; i++) parser.write(block);
      }).toThrow(/^line 2: a row longer than 16 MiB/);
    }
  });

  it.each([
    ['login\na"b\n', /^line 2: a quote inside an unquoted field/],
    ['login\n"a"b\n', /^line 2: text after the closing quote/],
    ['login\n"a\n', /^line 2: a quoted field is not closed before the end of the entry/],
  ])('refuses %j naming the line', (text, message) => {
    expect(() => csvRows(text)).toThrow(message);
  });
});

describe('export columns', () => {
  const HEADER = [
    'login',
    'lastname',
    'EMAIL',
    'fax',
    'isSuperUserPermEnabled',
    'isNotifyFax',
    'partyId',
    'id',
    'status.value',
    'Status.DisplayValue',
    'timeZone.value',
    'dateModified',
    'lastLogin',
    'groups',
    'customAttr1',
    'company.loginName',
  ];

  it('maps JSON field names (any case, aliases), dotted objects and ;-groups to a record typed like the JSON one', () => {
    const columns = exportColumns(HEADER);
    const record = columns.record([
      'jdoe',
      'Doe',
      'j@x.com',
      '',
      'TRUE',
      'false',
      '935719302534024740',
      '3024590297',
      '1',
      'Active',
      'America/Chicago',
      '2025-09-26T12:17:59.000Z',
      '',
      'g1; g2;;',
      'c1',
      'acme',
    ]);
    expect(exact(record)).toBe(
      '{"login":"jdoe","lastname":"Doe","EMAIL":"j@x.com","fax":"","isSuperUserPermEnabled":true,"isNotifyFax":false,' +
        '"partyId":935719302534024740,"id":3024590297,"status":{"value":1,"DisplayValue":"Active"},"timeZone":{"value":"America/Chicago"},' +
        '"dateModified":"2025-09-26T12:17:59.000Z","groups":{"items":[{"variableName":"g1"},{"variableName":"g2"}]},"customAttr1":"c1",' +
        '"company":{"loginName":"acme"}}',
    );
    // ...and normalizes to the typed columns the JSON path fills.
    const row = normalizeUser(record, { companyLogin: '_host', isIntegrationUser: false, origin: 'test' }, 0);
    const value = (column: string) => row.values[USER_VALUE_COLUMNS.indexOf(column)];
    expect(value('last_name')).toBe('Doe');
    expect(value('email')).toBe('j@x.com');
    expect(value('is_user_admin_perm_enabled')).toBe(true);
    expect(value('party_id')).toBe('935719302534024740');
    expect(value('cpq_id')).toBe('3024590297');
    expect(value('status')).toBe('1');
    expect(value('status_display')).toBe('Active');
    expect(value('time_zone')).toBe('America/Chicago');
    expect(value('last_login')).toBe(null);
    expect(row.groups?.map((g) => g.variableName)).toEqual(['g1', 'g2']);
    expect(row.accessPermissions).toBeUndefined();
  });

  it('leaves empty cells out, except plain text fields (""), and an empty groups cell means no groups', () => {
    const record = exportColumns(HEADER).record(HEADER.map(() => ''));
    expect(record).toEqual({ login: '', lastname: '', EMAIL: '', fax: '', groups: { items: [] } });
  });

  it('keeps a value that does not fit its field as text, so normalizeUser names the user and field', () => {
    const columns = exportColumns(['login', 'isNotifyFax', 'partyId']);
    const source = { companyLogin: '_host', isIntegrationUser: false, origin: 'x' };
    const flag = columns.record(['jdoe', 'yes', '']);
    expect(flag).toEqual({ login: 'jdoe', isNotifyFax: 'yes' });
    expect(() => normalizeUser(flag, source, 0)).toThrow(/user "_host\/jdoe".*"isNotifyFax" must be true or false, got "yes"/);
    const id = columns.record(['jdoe', '', '1.8E+17']);
    expect(id).toEqual({ login: 'jdoe', partyId: '1.8E+17' });
    expect(() => normalizeUser(id, source, 0)).toThrow(/"partyId" must be a whole number, got "1.8E\+17"/);
  });

  it('groups dotted columns in ASCII case only, as keys are read: a Kelvin sign is not a k (review GT)', () => {
    const columns = exportColumns(['login', 'Kx.a', 'kx.b', '\u212ax.c']);
    expect(columns.record(['jdoe', '1', '2', '3'])).toEqual({ login: 'jdoe', Kx: { a: '1', b: '2' }, '\u212ax': { c: '3' } });
  });

  it.each([
    [['login', ''], /column 2 has no name/],
    [['login', 'status.'], /column "status\." has an empty part/],
    [['login', 'email', 'Email'], /columns "email" and "Email" name the same field/],
    [['login', 'status', 'status.value'], /columns "status" and "status.value" conflict/],
    [['login', 'status.value', 'status'], /columns "status.value" and "status" conflict/],
    [['login', 'accessPermissions'], /column "accessPermissions": accessPermissions cannot be given in a CSV export/],
    [['login', 'groups.items'], /groups are one column named groups/],
    [['login', 'links'], /links cannot be given/],
    [['login', 'email.domain'], /column "email.domain": email is not an object/],
    [['login', 'x.__proto__'], /"__proto__" is not accepted as a field name/],
  ])('refuses header %j naming the column', (header, message) => {
    expect(() => exportColumns(header)).toThrow(ExportColumnsError);
    expect(() => exportColumns(header)).toThrow(message);
  });
});
